/**
 * A local floe cluster in ONE process, through the library form of `floe node`
 * (`startFloeServer`): N nodes (default 3) on loopback, each with its write-ahead log under
 * ./data/<id>, the replicated key-value store and the HTTP API on its port. A writer keeps putting
 * a counter through the HTTP API of n1 (a follower forwards it to the leader); every node's status
 * prints every two seconds. Ctrl-C stops everything cleanly; run it again and the cluster resumes
 * from its data. For one process per node, use `floe cluster` (`npm start`).
 *
 *   deno run -A examples/local_cluster.ts [--nodes 3] [--port 7401] [--data ./data]
 */
import { type FloeServer, startFloeServer } from "../src/service/floe_server.ts";

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
  const peers = Array.from({ length: opts.nodes }, (_, i) => ({
    id: `n${i + 1}`,
    address: { hostname: "127.0.0.1", port: opts.port + i },
  }));
  const servers: FloeServer[] = [];
  for (const peer of peers) {
    const server = await startFloeServer({
      id: peer.id,
      listen: peer.address,
      dataDir: `${opts.data}/${peer.id}`,
      peers,
      secret: "local-cluster-secret-change-me",
      cluster: "local",
    });
    servers.push(server);
    console.log(
      `${peer.id} serving ${server.url} (peers at ${server.peerUrl}), data in ${opts.data}/${peer.id}`,
    );
  }
  const api = servers[0].url;

  let stopping = false;
  let writes = 0;
  const writer = (async () => {
    while (!stopping) {
      try {
        const r = await fetch(`${api}/kv/counter`, { method: "PUT", body: String(++writes) });
        await r.body?.cancel();
        // 503 while there is no leader yet: wait a little and go on.
        if (r.status !== 200) await new Promise((r) => setTimeout(r, 200));
      } catch (e) {
        if (!stopping) console.warn(`write failed: ${e}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();

  const timer = setInterval(async () => {
    let counter = "-";
    try {
      const r = await fetch(`${api}/kv/counter`); // linearizable by default
      counter = r.status === 200 ? await r.text() : (await r.body?.cancel(), `(${r.status})`);
    } catch { /* stopping */ }
    const rows = servers.map((s) => {
      const st = s.node.status();
      return `${st.id}: ${
        st.role.padEnd(9)
      } term ${st.term} commit ${st.commit} applied ${st.applied}`;
    });
    console.log(`counter=${counter} (linearizable read)\n  ${rows.join("\n  ")}`);
  }, 2000);

  await new Promise<void>((resolve) => Deno.addSignalListener("SIGINT", () => resolve()));
  console.log("\nstopping…");
  stopping = true;
  clearInterval(timer);
  await writer.catch(() => {});
  for (const s of servers) await s.stop();
  console.log("stopped cleanly");
}

if (import.meta.main) await main();
