// A mixed cluster: one floe node under Node 20 (dist/node/floe_node.js: ws accepts and dials,
// node:http serves the API) and two under Deno (`deno run -A src/cli/floe.ts node`). Writes go
// to every member (followers forward to the leader); all three must end with the same applied
// index and the same key-value state, revisions included (a revision is the log index that wrote
// it, so equal states at equal applied indexes mean the same log was applied). Then the Node
// member is killed (SIGKILL), the cluster writes on, and the Node member restarted from its data
// directory catches up. Last, a Node member that leads: the Deno followers replicate from it
// and forward their writes to its HTTP API.
import * as path from "node:path";
import t from "tap";
import {
  freePorts,
  getJson,
  LIB,
  requireBuild,
  startDenoNode,
  startNodeNode,
  tempDir,
  waitFor,
} from "./fixtures/node_test_support.mjs";

requireBuild();

const SECRET = "mixed-cluster-secret-0123";

/** PUT `value` at `key` through `url`, retrying while there is no leader (503). */
async function put(url, key, value) {
  return await waitFor(
    `PUT ${key} via ${url}`,
    async () => {
      const r = await fetch(`${url}/kv/${key}`, {
        method: "PUT",
        body: value,
        signal: AbortSignal.timeout(15_000),
      });
      const body = await r.text();
      if (r.status === 503 || r.status === 504) return undefined;
      if (r.status !== 200) throw new Error(`PUT ${key} via ${url}: ${r.status} ${body}`);
      return JSON.parse(body);
    },
    60_000,
    200,
  );
}

/** This node's own applied state under `prefix`: `{appliedIndex, entries}` (a stale read). */
async function localState(url, prefix) {
  const entries = [];
  let from;
  let appliedIndex;
  for (;;) {
    const q = new URLSearchParams({ prefix, consistency: "stale" });
    if (from !== undefined) q.set("from", from);
    const page = await getJson(`${url}/kv?${q}`);
    appliedIndex ??= page.appliedIndex;
    entries.push(...page.entries);
    if (page.next === undefined) break;
    from = page.next;
  }
  return { appliedIndex, entries };
}

/** Wait until every url reports the same applied index and state; returns that state. */
async function agreement(urls, prefix, atLeast) {
  let states;
  return await waitFor(
    "the nodes to agree",
    async () => {
      states = await Promise.all(urls.map((u) => localState(u, prefix)));
      const [first, ...others] = states;
      if (first.appliedIndex < atLeast) return undefined;
      const same = others.every((s) =>
        s.appliedIndex === first.appliedIndex &&
        JSON.stringify(s.entries) === JSON.stringify(first.entries)
      );
      return same ? first : undefined;
    },
    60_000,
    200,
  ).catch((e) => {
    throw new Error(`${e.message}\nlast states: ${JSON.stringify(states).slice(0, 2000)}`);
  });
}

/** The leader every url's /status names, once they all name the same one. */
async function agreedLeader(urls) {
  let statuses;
  return await waitFor(
    "one leader all agree on",
    async () => {
      statuses = await Promise.allSettled(urls.map((u) => getJson(`${u}/status`)));
      const s = statuses.map((x) => x.value ?? {});
      const l = s[0].leader;
      return l && s.every((x) => x.leader === l) ? l : undefined;
    },
    60_000,
    200,
  ).catch((e) => {
    throw new Error(`${e.message}\nlast /status answers: ${JSON.stringify(statuses)}`);
  });
}

t.test("one Node and two Deno nodes agree on a log; the Node one restarts and catches up", async (t) => {
  const dir = tempDir(t);
  const [p1, p2, p3] = await freePorts(3);
  const members = [{ id: "n1", port: p1 }, { id: "n2", port: p2 }, { id: "n3", port: p3 }];
  const procs = {
    n1: startNodeNode("n1", members, dir, SECRET),
    n2: startDenoNode("n2", members, dir, SECRET),
    n3: startDenoNode("n3", members, dir, SECRET),
  };
  t.teardown(async () => {
    await Promise.all(Object.values(procs).map((p) => p.stop("SIGKILL")));
    // On a failure, what the nodes said is the first thing to read.
    if (!t.passing()) {
      for (const [id, p] of Object.entries(procs)) t.comment(`--- ${id} output:\n${p.output}`);
    }
  });
  const urls = await Promise.all(Object.values(procs).map((p) => p.readyWithin));
  t.same(urls, members.map((m) => `http://127.0.0.1:${m.port}`), "each printed its ready line");

  const leader = await agreedLeader(urls);
  t.ok(["n1", "n2", "n3"].includes(leader), `leader ${leader}`);

  // 30 writes, spread over all three members (so some go through the Node node's forwarding).
  let last = 0;
  for (let i = 0; i < 30; i++) {
    const r = await put(urls[i % 3], `mix/a${String(i).padStart(2, "0")}`, `value ${i}`);
    last = Math.max(last, r.revision);
  }
  const first = await agreement(urls, "mix/", last);
  t.equal(first.entries.length, 30, "all 30 keys, on every node");
  t.equal(
    Buffer.from(first.entries[7].value, "base64").toString(),
    "value 7",
    "values as written",
  );

  // Kill the Node member; the Deno two keep a quorum and go on.
  const killed = await procs.n1.stop("SIGKILL");
  t.equal(killed.signal, "SIGKILL", "n1 (Node) killed");
  for (let i = 0; i < 20; i++) {
    const r = await put(urls[1 + (i % 2)], `mix/b${String(i).padStart(2, "0")}`, `later ${i}`);
    last = Math.max(last, r.revision);
  }

  procs.n1 = startNodeNode("n1", members, dir, SECRET);
  t.equal(await procs.n1.readyWithin, urls[0], "n1 restarted from its data directory");
  const second = await agreement(urls, "mix/", last);
  t.equal(second.entries.length, 50, "n1 caught up: all 50 keys, on every node");
  t.same(
    second.entries.slice(0, 30),
    first.entries,
    "what was applied before the kill is unchanged",
  );
  const got = await fetch(`${urls[0]}/kv/mix/b19`, { signal: AbortSignal.timeout(15_000) });
  t.equal(await got.text(), "later 19", "a linearizable read through n1 sees the last write");

  const exits = await Promise.all(Object.values(procs).map((p) => p.stop("SIGTERM")));
  t.same(exits.map((e) => e.code), [0, 0, 0], "SIGTERM stops every node cleanly (exit 0)");
});

t.test("a Node leader replicates to Deno followers, which forward writes to it", async (t) => {
  const { startNodeFloeServer } = await import(LIB);
  const dir = tempDir(t);
  const [p1, p2, p3] = await freePorts(3);
  const members = [{ id: "n1", port: p1 }, { id: "n2", port: p2 }, { id: "n3", port: p3 }];
  // n1 runs in this process, with election timeouts shorter than the Deno nodes' (300-600 ms):
  // it wins the elections it takes part in, so it ends up leading.
  const n1 = await startNodeFloeServer({
    id: "n1",
    listen: { hostname: "127.0.0.1", port: p1 },
    dataDir: path.join(dir, "n1"),
    peers: members.map((m) => ({ id: m.id, address: { hostname: "127.0.0.1", port: m.port } })),
    secret: SECRET,
    raft: { heartbeatMs: 30, electionMinMs: 100, electionMaxMs: 130 },
    log: () => {},
  });
  const procs = {
    n2: startDenoNode("n2", members, dir, SECRET),
    n3: startDenoNode("n3", members, dir, SECRET),
  };
  t.teardown(async () => {
    await Promise.all(Object.values(procs).map((p) => p.stop("SIGKILL")));
    await n1.stop();
    if (!t.passing()) {
      for (const [id, p] of Object.entries(procs)) t.comment(`--- ${id} output:\n${p.output}`);
    }
  });
  const urls = [n1.url, await procs.n2.readyWithin, await procs.n3.readyWithin];

  let leader = await agreedLeader(urls);
  // Should a Deno node have won, restart it: the next election is n1's.
  for (let attempt = 0; leader !== "n1" && attempt < 3; attempt++) {
    t.comment(`${leader} (Deno) won the election: restarting it`);
    await procs[leader].stop("SIGTERM");
    procs[leader] = startDenoNode(leader, members, dir, SECRET);
    await procs[leader].readyWithin;
    leader = await agreedLeader(urls);
  }
  t.equal(leader, "n1", "the Node node leads");

  let last = 0;
  for (let i = 0; i < 20; i++) {
    const r = await put(urls[i % 3], `lead/k${String(i).padStart(2, "0")}`, `v${i}`);
    last = Math.max(last, r.revision);
  }
  const state = await agreement(urls, "lead/", last);
  t.equal(state.entries.length, 20, "20 keys on all three nodes, written through all three");
  // The leader learns a follower's match from its acknowledgement, which may trail its apply.
  const peers = await waitFor("the leader to see both followers match", async () => {
    const { peers } = await getJson(`${n1.url}/status`);
    return peers.length === 2 && peers.every((p) => p.match >= last) ? peers : undefined;
  }, 15_000);
  t.same(
    peers.map((p) => p.id).sort(),
    ["n2", "n3"],
    "the Node leader tracks both Deno followers, whose logs match its own",
  );

  const exits = await Promise.all(Object.values(procs).map((p) => p.stop("SIGTERM")));
  t.same(exits.map((e) => e.code), [0, 0], "the Deno nodes stop cleanly");
});
