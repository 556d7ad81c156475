// A three-node cluster in this Node process over loopback WebSockets: `ws` dials
// (wsDial) and accepts (WsPeerServer), FileStorage keeps each node's log, and every node applies
// the same entries in the same order, also the one that was stopped and restarted meanwhile.
// Then the same HTTP API as under Deno, served through node:http by startNodeFloeServer.
import * as path from "node:path";
import t from "tap";
import { LIB, requireBuild, tempDir, waitFor } from "./fixtures/node_test_support.mjs";

requireBuild();
const floe = await import(LIB);
const {
  encodeKvCommand,
  FileStorage,
  KvStateMachine,
  NotLeaderError,
  RaftNode,
  startNodeFloeServer,
  WebSocketTransport,
  wsDial,
  WsPeerServer,
} = floe;

const SECRET = "node-tap-cluster-secret";
const IDS = ["a", "b", "c"];
const TIMING = { tickMs: 10, heartbeatMs: 50, electionMinMs: 200, electionMaxMs: 400 };
const hex = (b) => Buffer.from(b).toString("hex");

/** One member: its server, transport, node and the entries it applied (index → term:command). */
async function startMember(id, dir, ports, server) {
  server ??= await WsPeerServer.listen({ hostname: "127.0.0.1", port: ports.get(id) });
  const transport = new WebSocketTransport({
    id,
    cluster: "node-tap",
    secret: SECRET,
    peers: IDS.filter((p) => p !== id).map((p) => ({
      id: p,
      url: `ws://127.0.0.1:${ports.get(p)}/floe`,
    })),
    dial: wsDial,
  });
  server.acceptor = transport;
  const applied = new Map();
  const node = await RaftNode.start({
    ...TIMING,
    id,
    peers: IDS,
    storage: await FileStorage.open(path.join(dir, id)),
    transport,
    stateMachine: new KvStateMachine(),
    leaderNoop: true,
    onApply: (item) => {
      if (item.type === "entry") applied.set(item.index, `${item.term}:${hex(item.command)}`);
    },
  });
  return {
    id,
    server,
    transport,
    node,
    applied,
    async stop() {
      await node.stop();
      await server.close();
    },
  };
}

async function leaderOf(members) {
  return await waitFor("a leader", () => members.find((m) => m.node.state().isLeader), 30_000);
}

/** Propose `count` puts through whoever leads, retrying on leader changes. */
async function write(members, prefix, count) {
  let last = 0;
  for (let i = 0; i < count; i++) {
    const command = encodeKvCommand({
      op: "put",
      key: `${prefix}${i}`,
      value: new TextEncoder().encode(`v${i}`),
      ts: Date.now(),
    });
    await waitFor(`write ${prefix}${i}`, async () => {
      const leader = await leaderOf(members);
      try {
        await leader.node.propose(command);
        last = Math.max(last, leader.node.status().commit);
        return true;
      } catch (e) {
        if (e instanceof NotLeaderError || e?.name === "ProposalLostError") return false;
        throw e;
      }
    });
  }
  return last;
}

function sameLog(t, members, through, what) {
  const logs = members.map((m) => {
    const entries = [];
    for (let i = 1; i <= through; i++) entries.push(m.applied.get(i));
    return entries;
  });
  for (const [i, m] of members.entries()) {
    t.same(logs[i], logs[0], `${what}: ${m.id} applied the same ${through} entries as ${IDS[0]}`);
  }
}

t.test("three Node nodes over ws agree on a log, also after a restart", async (t) => {
  const dir = tempDir(t);
  const probe = await Promise.all(IDS.map(() => WsPeerServer.listen({ hostname: "127.0.0.1" })));
  const ports = new Map(IDS.map((id, i) => [id, probe[i].port]));
  const members = await Promise.all(IDS.map((id, i) => startMember(id, dir, ports, probe[i])));
  t.teardown(() => Promise.all(members.map((m) => m.stop())));

  const through = await write(members, "k", 40);
  await waitFor(
    "every node applies the writes",
    () => members.every((m) => m.applied.size >= through),
  );
  sameLog(t, members, through, "first round");
  const accepted = members.reduce((n, m) => n + m.transport.metrics().acceptedSockets, 0);
  t.ok(accepted >= 2, `WsPeerServer accepted the peer sockets (${accepted})`);

  // Stop a follower, write on, restart it from its directory: it catches up.
  const leader = await leaderOf(members);
  const out = members.find((m) => m !== leader);
  await out.stop();
  const rest = members.filter((m) => m !== out);
  const through2 = await write(rest, "later", 20);
  const back = await startMember(out.id, dir, ports);
  members[members.indexOf(out)] = back;
  await waitFor(
    `${back.id} catches up to ${through2}`,
    () => back.node.status().applied >= through2,
    30_000,
  );
  await waitFor("all applied", () => members.every((m) => m.applied.size >= through2));
  // The restarted node replays its own log (index 1 on) and then what it missed.
  sameLog(t, members, through2, "after the restart");
});

t.test("WsPeerServer refuses what is not a peer upgrade on its path", async (t) => {
  const server = await WsPeerServer.listen({ hostname: "127.0.0.1" });
  t.teardown(() => server.close());
  t.match(server.url, /^ws:\/\/127\.0\.0\.1:\d+\/floe$/, "url");
  const base = `http://127.0.0.1:${server.port}`;
  t.equal((await fetch(`${base}/floe`)).status, 426, "a plain request on /floe: 426");
  t.equal((await fetch(`${base}/other`)).status, 404, "another path: 404");
});

t.test("startNodeFloeServer serves the HTTP API through node:http", async (t) => {
  const dir = tempDir(t);
  const server = await startNodeFloeServer({
    id: "solo",
    listen: { hostname: "127.0.0.1", port: 0 },
    dataDir: path.join(dir, "solo"),
    raft: TIMING,
    log: () => {},
  });
  t.teardown(() => server.stop());
  t.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/, "url");
  await waitFor("leader", async () => (await fetch(`${server.url}/healthz`)).status === 200);
  const put = await fetch(`${server.url}/kv/dir/key`, { method: "PUT", body: "hello node" });
  t.equal(put.status, 200, "PUT 200");
  const { revision } = await put.json();
  const get = await fetch(`${server.url}/kv/dir/key`);
  t.equal(get.status, 200, "GET 200");
  t.equal(await get.text(), "hello node", "the value");
  t.equal(get.headers.get("etag"), `"${revision}"`, "ETag is the revision");
  t.equal(get.headers.get("floe-node"), "solo", "Floe-Node header");
  const cas = await fetch(`${server.url}/kv/dir/key`, {
    method: "PUT",
    body: "x",
    headers: { "if-match": `"${revision + 100}"` },
  });
  t.equal(cas.status, 412, "a failed If-Match: 412");
  await cas.body?.cancel();
  const status = await (await fetch(`${server.url}/status`)).json();
  t.equal(status.role, "leader", "/status: the lone node leads");

  // A watch streams a change as it happens, through the bridge, without buffering.
  const ac = new AbortController();
  const watch = await fetch(`${server.url}/kv?prefix=w/&watch`, { signal: ac.signal });
  t.equal(watch.headers.get("content-type")?.split(";")[0], "text/event-stream", "watch");
  const reader = watch.body.getReader();
  await fetch(`${server.url}/kv/w/1`, { method: "PUT", body: "x" }).then((r) => r.body?.cancel());
  let seen = "";
  await waitFor(
    "the put event",
    async () => {
      const { value } = await reader.read();
      seen += new TextDecoder().decode(value);
      return /event: put/.test(seen) && /"key":"w\/1"/.test(seen);
    },
    15_000,
    0,
  );
  ac.abort();
  await reader.cancel().catch(() => {});
  t.pass("the watch delivered the put");
});
