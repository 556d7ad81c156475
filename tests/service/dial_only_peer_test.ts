// Dial-only members (`--peers ...,n3=dial-only`, `dialOnlyPeers`): parsed and checked in the
// node config, and, in one process, a voting member that only dials: two servers know it by id
// alone and reach it over the connections it opens (what a browser tab does; the Chromium test is
// tests/browser/browser_peer_test.ts).
import assert from "node:assert/strict";
import { KvStateMachine } from "../../src/kv/kv_state_machine.ts";
import { RaftNode } from "../../src/node/raft_node.ts";
import { type FloeServer, startFloeServer } from "../../src/service/floe_server.ts";
import {
  NodeConfigError,
  parseMembers,
  parsePeers,
  resolveNodeConfig,
} from "../../src/service/node_config.ts";
import { MemoryStorage } from "../../src/storage/memory_storage.ts";
import { nativeDial } from "../../src/transport/socket.ts";
import { WebSocketTransport } from "../../src/transport/websocket_transport.ts";
import { freePorts } from "../../src/testing/free_port.ts";

const SECRET = "dial-only-test-secret-0123456789";
const FAST = { heartbeatMs: 50, electionMinMs: 300, electionMaxMs: 600 };

Deno.test("node config: id=dial-only lists a member without an address", () => {
  const c = resolveNodeConfig({
    flags: new Map([
      ["id", "n1"],
      ["peers", "n1=127.0.0.1:7401,n2=127.0.0.1:7402,n3=dial-only"],
      ["secret", SECRET],
    ]),
  });
  assert.deepEqual(c.peers.map((p) => p.id), ["n1", "n2"]);
  assert.deepEqual(c.dialOnlyPeers, ["n3"]);
  // A config without dial-only members has no such key (configs compare equal as before).
  const plain = resolveNodeConfig({ flags: new Map([["id", "solo"]]) });
  assert.equal("dialOnlyPeers" in plain, false);
  // The JSON file's object form says the same.
  const fromFile = resolveNodeConfig({
    file: {
      name: "floe.json",
      value: { id: "n2", peers: { n1: ":7401", n2: ":7402", b: "dial-only" }, secret: SECRET },
    },
  });
  assert.deepEqual(fromFile.dialOnlyPeers, ["b"]);
  assert.deepEqual(parseMembers("a=:1, b=dial-only ,c=dial-only"), {
    peers: [{ id: "a", address: { hostname: "127.0.0.1", port: 1 } }],
    dialOnly: ["b", "c"],
  });
});

Deno.test("node config: dial-only mistakes are named", () => {
  const config = (peers: string, id = "n1", secret: string | undefined = SECRET) =>
    resolveNodeConfig({
      flags: new Map([["id", id], ["peers", peers], ...(secret ? [["secret", secret]] : [])] as [
        string,
        string,
      ][]),
    });
  // This node listens: it cannot be dial-only itself.
  assert.throws(() => config("n1=dial-only,n2=:7402"), /n1.*cannot be dial-only/);
  assert.throws(() => config("n1=:7401,n2=dial-only,n2=:7402"), /n2 is listed twice/);
  // A dial-only member counts: two members need a secret.
  assert.throws(() => config("n1=:7401,n3=dial-only", "n1", ""), /cluster of 2 nodes/);
  // A dial-only member has no HTTP API to forward to.
  assert.throws(
    () =>
      resolveNodeConfig({
        flags: new Map([
          ["id", "n1"],
          ["peers", "n1=:7401,n3=dial-only"],
          ["secret", SECRET],
          ["peer-clients", "n3=http://127.0.0.1:9000"],
        ]),
      }),
    NodeConfigError,
  );
  // Where every member needs an address (floe snapshot restore), dial-only is refused by name.
  assert.throws(() => parsePeers("n1=:7401,n3=dial-only", "--peers"), /n3 needs an address/);
});

async function until<T>(what: string, f: () => T | undefined | Promise<T | undefined>) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const v = await Promise.resolve().then(f).catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function put(url: string, key: string, value: string): Promise<number> {
  const r = await fetch(`${url}/kv/${key}`, { method: "PUT", body: value });
  const body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  return body.revision;
}

Deno.test("startFloeServer: a dial-only member votes, and a write commits through it", async () => {
  const dirs = await Promise.all([0, 1].map(() => Deno.makeTempDir({ prefix: "floe-dialonly-" })));
  const ports = freePorts(2);
  const peers = ["a", "b"].map((id, i) => ({
    id,
    address: { hostname: "127.0.0.1", port: ports[i] },
  }));
  const servers = new Map<string, FloeServer>();
  let dialer: RaftNode | undefined;
  try {
    for (const [i, { id }] of peers.entries()) {
      servers.set(
        id,
        await startFloeServer({
          id,
          listen: peers[i].address,
          dataDir: dirs[i],
          peers,
          dialOnlyPeers: ["c"],
          secret: SECRET,
          raft: FAST,
        }),
      );
    }
    const kv = new KvStateMachine();
    dialer = await RaftNode.start({
      id: "c",
      peers: ["a", "b", "c"],
      storage: new MemoryStorage(),
      transport: new WebSocketTransport({
        id: "c",
        cluster: "floe",
        secret: SECRET,
        // The runtime's own WebSocket, as in a browser; nobody can dial c.
        dial: nativeDial,
        peers: peers.map((p) => ({ id: p.id, url: `ws://127.0.0.1:${p.address.port}/floe` })),
      }),
      stateMachine: kv,
      leaderNoop: true,
      // Slower to call elections than the servers, so a server leads (requests cannot be
      // forwarded to c); c still votes and acknowledges.
      heartbeatMs: 50,
      electionMinMs: 2000,
      electionMaxMs: 3000,
    });
    const leaderId = await until("a server leads", () => {
      const s = [...servers.values()].find((s) => s.node.role === "leader");
      return s?.id;
    });
    const leader = servers.get(leaderId)!;
    const first = await put(leader.url, "k1", "one");
    await until("c applies k1", () => (kv.appliedIndex >= first ? true : undefined));
    assert.equal(new TextDecoder().decode(kv.get("k1")?.value), "one");

    // With the other server stopped, only c's acknowledgement makes a majority.
    const other = [...servers.values()].find((s) => s.id !== leaderId)!;
    await other.stop();
    servers.delete(other.id);
    const second = await put(leader.url, "k2", "two");
    assert.ok(second > first);
    assert.equal(leader.node.role, "leader");
    await until("c applies k2", () => (kv.get("k2") !== undefined ? true : undefined));
    assert.equal(new TextDecoder().decode(kv.get("k2")?.value), "two");
  } finally {
    await dialer?.stop();
    for (const s of servers.values()) await s.stop();
    for (const d of dirs) await Deno.remove(d, { recursive: true });
  }
});
