/**
 * A local floe cluster in one process: N nodes (default 3) on loopback WebSockets, each with
 * its write-ahead log under ./data/<id> and the replicated key-value state machine. A writer
 * keeps putting a counter through whichever node leads; the status of every node prints every
 * two seconds. Ctrl-C stops everything cleanly; run it again and the cluster resumes from its
 * data. (The multi-process `floe cluster` command comes with the CLI.)
 *
 *   deno run -A examples/local_cluster.ts [--nodes 3] [--port 7401] [--data ./data]
 */
import { NotLeaderError } from "../src/core/errors.ts";
import { encodeKvCommand } from "../src/kv/kv_command.ts";
import { decodeKvQueryResult, encodeKvQuery } from "../src/kv/kv_query.ts";
import { KvStateMachine } from "../src/kv/kv_state_machine.ts";
import { RaftNode } from "../src/node/raft_node.ts";
import { FileStorage } from "../src/storage/file_storage.ts";
import { WebSocketServer } from "../src/transport/websocket_server.ts";
import { WebSocketTransport } from "../src/transport/websocket_transport.ts";
import { wsDial } from "../src/transport/ws_dial.ts";

const USAGE = "usage: deno run -A examples/local_cluster.ts [--nodes N] [--port P] [--data DIR]";

function parseArgs(args: string[]): { nodes: number; port: number; data: string } {
  const out = { nodes: 3, port: 7401, data: "./data" };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const value = args[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === "--nodes" || flag === "--port") {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1 || (flag === "--port" && n > 65000)) {
        throw new Error(`${flag} must be a positive integer, got ${value}`);
      }
      if (flag === "--nodes") out.nodes = n;
      else out.port = n;
    } else if (flag === "--data") out.data = value;
    else throw new Error(`unknown flag ${flag}`);
  }
  return out;
}

async function main(): Promise<void> {
  let opts;
  try {
    opts = parseArgs(Deno.args);
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    Deno.exit(2);
  }
  const ids = Array.from({ length: opts.nodes }, (_, i) => `n${i + 1}`);
  const url = (i: number) => `ws://127.0.0.1:${opts.port + i}/floe`;
  const secret = "local-cluster-secret-change-me";
  const nodes: RaftNode[] = [];
  const servers: WebSocketServer[] = [];
  for (const [i, id] of ids.entries()) {
    const server = WebSocketServer.listen({ hostname: "127.0.0.1", port: opts.port + i });
    const transport = new WebSocketTransport({
      id,
      cluster: "local",
      secret,
      peers: ids.filter((p) => p !== id).map((p) => ({ id: p, url: url(ids.indexOf(p)) })),
      dial: wsDial,
    });
    server.acceptor = transport;
    servers.push(server);
    const kv = new KvStateMachine();
    const node = await RaftNode.start({
      id,
      peers: ids,
      storage: await FileStorage.open(`${opts.data}/${id}`),
      transport,
      stateMachine: kv,
      leaderNoop: true,
      onApply: (item) => {
        // Compact every 1,000 entries so the log stays small.
        if (item.type === "entry" && item.index % 1000 === 0) {
          queueMicrotask(() => node.compact(item.index, kv.snapshot()));
        }
      },
    });
    nodes.push(node);
    console.log(`${id} listening on ${url(i)}, data in ${opts.data}/${id}`);
  }

  let stopping = false;
  let writes = 0;
  const writer = (async () => {
    while (!stopping) {
      const leader = nodes.find((n) => n.state().isLeader);
      if (!leader) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      try {
        await leader.propose(encodeKvCommand({
          op: "put",
          key: "counter",
          value: new TextEncoder().encode(String(++writes)),
          ts: Date.now(),
        }));
      } catch (e) {
        if (!(e instanceof NotLeaderError)) console.warn(`write failed: ${e}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();

  const timer = setInterval(async () => {
    const leader = nodes.find((n) => n.state().isLeader);
    let counter = "-";
    if (leader) {
      try {
        const r = decodeKvQueryResult(
          (await leader.read(encodeKvQuery({ op: "get", key: "counter" })))!,
        );
        if (r.status === "ok" && r.op === "get" && r.entry) {
          counter = new TextDecoder().decode(r.entry.value);
        }
      } catch { /* leadership moved; the next round reads again */ }
    }
    const rows = nodes.map((n) => {
      const s = n.status();
      return `${s.id}: ${s.role.padEnd(9)} term ${s.term} commit ${s.commit} applied ${s.applied}`;
    });
    console.log(`counter=${counter} (linearizable read)\n  ${rows.join("\n  ")}`);
  }, 2000);

  await new Promise<void>((resolve) => Deno.addSignalListener("SIGINT", () => resolve()));
  console.log("\nstopping…");
  stopping = true;
  clearInterval(timer);
  await writer.catch(() => {});
  for (const n of nodes) await n.stop();
  for (const s of servers) await s.close();
  console.log("stopped cleanly");
}

if (import.meta.main) await main();
