/**
 * Tests of `RaftNode` (src/node/raft_node.ts) in virtual time: `VirtualClock`, `MemoryNetwork`
 * and `MemoryStorage`, plus wrappers that make storage asynchronous or failing and that watch
 * what the transport sends. (They live here, not in tests/node/, which belongs to node-tap.)
 *
 * @module
 */
import assert from "node:assert/strict";
import { ConfigError, NotLeaderError } from "../../src/core/errors.ts";
import type { HardState, Message, NodeId } from "../../src/core/types.ts";
import {
  type Applied,
  NodeStoppedError,
  ProposalLostError,
  RaftNode,
  type RaftNodeOptions,
  type StateChange,
  type StateMachine,
} from "../../src/node/raft_node.ts";
import { RealClock } from "../../src/node/clock.ts";
import { MemoryStorage } from "../../src/storage/memory_storage.ts";
import type { Storage, StorageUpdate } from "../../src/storage/storage.ts";
import { Random } from "../../src/testing/random.ts";
import { VirtualClock } from "../../src/testing/virtual_clock.ts";
import { MemoryNetwork } from "../../src/transport/memory_network.ts";
import type { Transport } from "../../src/transport/transport.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const cmd = (s: string): Uint8Array => enc.encode(s);

/** Let promise continuations (an async save's `then`, a test's awaits) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

interface ClusterOptions {
  readonly n?: number;
  readonly seed?: number;
  readonly storage?: (id: NodeId, clock: VirtualClock) => Storage;
  readonly transport?: (id: NodeId, inner: Transport) => Transport;
  readonly stateMachine?: (id: NodeId) => StateMachine;
  readonly node?: Partial<RaftNodeOptions>;
}

/** Nodes on a reliable `MemoryNetwork`, in virtual time. */
class Cluster {
  readonly clock = new VirtualClock();
  readonly net: MemoryNetwork;
  readonly ids: NodeId[];
  readonly storages = new Map<NodeId, Storage>();
  readonly nodes = new Map<NodeId, RaftNode>();
  readonly changes = new Map<NodeId, StateChange[]>();

  private constructor(readonly options: ClusterOptions) {
    const random = new Random(options.seed ?? 1);
    this.net = new MemoryNetwork({ scheduler: this.clock, random: () => random.next() });
    this.ids = Array.from({ length: options.n ?? 3 }, (_, i) => `n${i}`);
  }

  static async create(options: ClusterOptions = {}): Promise<Cluster> {
    const c = new Cluster(options);
    for (const id of c.ids) {
      c.storages.set(id, options.storage?.(id, c.clock) ?? new MemoryStorage());
      await c.startNode(id);
    }
    return c;
  }

  async startNode(id: NodeId, storage = this.storages.get(id)!): Promise<RaftNode> {
    this.storages.set(id, storage);
    const inner = this.net.transport(id);
    const changes: StateChange[] = [];
    this.changes.set(id, changes);
    const node = await RaftNode.start({
      id,
      peers: this.ids,
      storage,
      transport: this.options.transport?.(id, inner) ?? inner,
      clock: this.clock,
      seed: (this.options.seed ?? 1) * 100 + this.ids.indexOf(id),
      stateMachine: this.options.stateMachine?.(id),
      onStateChange: (s) => changes.push(s),
      ...this.options.node,
    });
    this.nodes.set(id, node);
    return node;
  }

  node(id: NodeId): RaftNode {
    return this.nodes.get(id)!;
  }

  /** Advance virtual time by `ms`, letting promise continuations run as it goes. */
  async run(ms: number, step = 5): Promise<void> {
    const end = this.clock.now() + ms;
    while (this.clock.now() < end) {
      await settle();
      this.clock.advance(Math.min(step, end - this.clock.now()));
    }
    await settle();
  }

  leaders(): RaftNode[] {
    return [...this.nodes.values()].filter((n) => n.state().isLeader);
  }

  /** Run until exactly one leader is known to every running node. */
  async leader(maxMs = 5000): Promise<RaftNode> {
    for (let t = 0; t < maxMs; t += 50) {
      const ls = this.leaders();
      if (ls.length === 1) {
        const id = ls[0].id;
        const all = [...this.nodes.values()].filter((n) =>
          n.status().running && this.net.isConnected(n.id)
        );
        if (all.every((n) => n.status().leader === id)) return ls[0];
      }
      await this.run(50);
    }
    throw new Error(`no single leader within ${maxMs} ms`);
  }

  followers(leader: RaftNode): RaftNode[] {
    return [...this.nodes.values()].filter((n) => n !== leader);
  }

  async stop(): Promise<void> {
    for (const n of this.nodes.values()) await n.stop();
  }
}

/** Items already in `it`, stopping at the first that would wait (after settling). */
async function drainAvailable(it: AsyncIterableIterator<Applied>): Promise<Applied[]> {
  const out: Applied[] = [];
  for (;;) {
    let done = false;
    let item: IteratorResult<Applied> | undefined;
    const p = it.next().then((r) => {
      item = r;
      done = true;
    });
    await settle();
    if (!done) {
      // Nothing queued: leave the pending read behind (single test reader, discarded after).
      void p;
      return out;
    }
    if (item!.done) return out;
    out.push(item!.value);
  }
}

/** The next `n` items of `it`. */
async function take(it: AsyncIterableIterator<Applied>, n: number): Promise<Applied[]> {
  const out: Applied[] = [];
  for (let i = 0; i < n; i++) {
    const r = await it.next();
    assert.equal(r.done, false, `stream ended after ${i} of ${n} items`);
    out.push(r.value);
  }
  return out;
}

/** The commands of applied entries (these tests never compact, so every item is an entry). */
function texts(items: Applied[]): string[] {
  return items.map((a) => {
    assert.equal(a.type, "entry");
    return a.type === "entry" ? dec.decode(a.command) : "";
  });
}

// ---- election and replication --------------------------------------------------------------------

Deno.test("RaftNode: three nodes elect a leader and replicate in log order", async () => {
  const c = await Cluster.create();
  try {
    const leader = await c.leader();
    assert.equal(c.leaders().length, 1);
    const streams = c.ids.map((id) => c.node(id).applied());
    const proposals = ["a", "b", "c"].map((s) => leader.start(cmd(s)));
    assert.deepEqual(proposals.map((p) => p.index), [1, 2, 3]);
    await c.run(300);
    for (const [i, id] of c.ids.entries()) {
      const items = await take(streams[i], 3);
      assert.deepEqual(texts(items), ["a", "b", "c"], id);
      assert.deepEqual(items.map((a) => a.index), [1, 2, 3], id);
      assert.ok(items.every((a) => a.type === "entry" && a.term === proposals[0].term));
      const s = c.node(id).status();
      assert.equal(s.commit, 3, id);
      assert.equal(s.applied, 3, id);
      assert.equal(s.running, true);
      assert.equal((c.storages.get(id) as MemoryStorage).lastIndex, 3, `${id} persisted`);
    }
  } finally {
    await c.stop();
  }
});

Deno.test("RaftNode: propose resolves with the state machine's result", async () => {
  const appliedBy = new Map<NodeId, string[]>();
  const c = await Cluster.create({
    stateMachine: (id) => ({
      apply(command, index) {
        const s = dec.decode(command);
        appliedBy.set(id, [...(appliedBy.get(id) ?? []), s]);
        return cmd(`${s.toUpperCase()}@${index}`);
      },
    }),
  });
  try {
    const leader = await c.leader();
    const p1 = leader.propose(cmd("x"));
    const p2 = leader.propose(cmd("y"));
    await c.run(300);
    assert.equal(dec.decode((await p1)!), "X@1");
    assert.equal(dec.decode((await p2)!), "Y@2");
    for (const id of c.ids) assert.deepEqual(appliedBy.get(id), ["x", "y"], id);
    // The stream carries the result too.
    const items = await take(leader.applied(), 2);
    assert.deepEqual(
      items.map((a) => a.type === "entry" && a.result && dec.decode(a.result)),
      ["X@1", "Y@2"],
    );
  } finally {
    await c.stop();
  }
});

Deno.test("RaftNode: proposals in one burst leave in one append per follower", async () => {
  const sent: Message[] = [];
  const c = await Cluster.create({
    transport: (_id, inner) => ({
      send: (to, msgs) => {
        sent.push(...msgs);
        inner.send(to, msgs);
      },
      listen: (h) => inner.listen(h),
      close: () => inner.close(),
    }),
  });
  try {
    const leader = await c.leader();
    leader.start(cmd("warm-up"));
    await c.run(300);
    sent.length = 0;
    for (let i = 0; i < 5; i++) leader.start(cmd(`p${i}`));
    await c.run(50);
    for (const f of c.followers(leader)) {
      const apps = sent.filter((m) => m.type === "app" && m.to === f.id && m.entries.length > 0);
      assert.equal(apps.length, 1, `one append to ${f.id}`);
      assert.equal(apps[0].type === "app" && apps[0].entries.length, 5);
    }
  } finally {
    await c.stop();
  }
});

Deno.test("RaftNode: start on a follower throws NotLeaderError with the leader hint", async () => {
  const c = await Cluster.create();
  try {
    const leader = await c.leader();
    const follower = c.followers(leader)[0];
    assert.equal(follower.state().isLeader, false);
    assert.throws(() => follower.start(cmd("x")), (e: unknown) => {
      assert.ok(e instanceof NotLeaderError);
      assert.equal(e.leaderHint, leader.id);
      return true;
    });
    await assert.rejects(follower.propose(cmd("x")), (e: unknown) => {
      assert.ok(e instanceof NotLeaderError);
      assert.equal(e.leaderHint, leader.id);
      return true;
    });
  } finally {
    await c.stop();
  }
});

Deno.test("RaftNode: onStateChange reports role, term and leader changes", async () => {
  const c = await Cluster.create();
  try {
    const leader = await c.leader();
    const term = leader.state().term;
    const mine = c.changes.get(leader.id)!;
    assert.deepEqual(mine[0], { term: 0, role: "follower", leader: "" }, "the initial state");
    assert.deepEqual(mine.at(-1), { term, role: "leader", leader: leader.id });
    const roles = mine.map((s) => s.role);
    assert.ok(roles.includes("precandidate") && roles.includes("candidate"), roles.join(","));
    for (const f of c.followers(leader)) {
      assert.deepEqual(c.changes.get(f.id)!.at(-1), { term, role: "follower", leader: leader.id });
    }
    // Depose the leader: cut it off; the others elect another; it learns when it returns.
    c.net.disconnect(leader.id);
    await c.run(2000);
    c.net.connect(leader.id);
    const next = await c.leader();
    assert.notEqual(next.id, leader.id);
    const last = mine.at(-1)!;
    assert.equal(last.role, "follower");
    assert.equal(last.leader, next.id);
    assert.ok(last.term > term);
    for (let i = 1; i < mine.length; i++) {
      assert.notDeepEqual(mine[i], mine[i - 1], "only changes are reported");
    }
  } finally {
    await c.stop();
  }
});

Deno.test("RaftNode: a proposal overwritten by another leader rejects with ProposalLostError", async () => {
  const c = await Cluster.create();
  try {
    const old = await c.leader();
    old.start(cmd("kept"));
    await c.run(300);
    c.net.disconnect(old.id);
    const lost = old.propose(cmd("lost"));
    let settled = false;
    lost.then(() => settled = true, () => settled = true);
    await c.run(1500);
    const next = await c.leader();
    assert.notEqual(next.id, old.id);
    const won = next.propose(cmd("won"));
    await c.run(300);
    assert.equal(settled, false, "still waiting while cut off");
    c.net.connect(old.id);
    await c.run(1000);
    await won;
    await assert.rejects(lost, (e: unknown) => {
      assert.ok(e instanceof ProposalLostError);
      assert.equal(e.index, 2);
      return true;
    });
    assert.deepEqual(texts(await take(old.applied(), 2)), ["kept", "won"]);
  } finally {
    await c.stop();
  }
});

Deno.test("RaftNode: invalid timing options are a ConfigError", async () => {
  const clock = new VirtualClock();
  const net = new MemoryNetwork({ scheduler: clock, random: () => 0.5 });
  const base = {
    id: "a",
    peers: ["a", "b", "c"],
    storage: new MemoryStorage(),
    transport: net.transport("a"),
    clock,
  };
  for (
    const bad of [
      { tickMs: 0 },
      { heartbeatMs: -1 },
      { electionMinMs: NaN },
      { heartbeatMs: 300, electionMinMs: 300 },
      { electionMinMs: 600, electionMaxMs: 300 },
    ]
  ) {
    await assert.rejects(RaftNode.start({ ...base, ...bad }), ConfigError, JSON.stringify(bad));
  }
});

// ---- applied() ----------------------------------------------------------------------------------

Deno.test("RaftNode: the first applied() reader receives entries applied before it subscribed", async () => {
  const c = await Cluster.create();
  try {
    const leader = await c.leader();
    for (const s of ["a", "b", "c"]) leader.start(cmd(s));
    await c.run(300);
    const follower = c.followers(leader)[0];
    assert.equal(follower.status().applied, 3);
    const first = follower.applied(); // subscribes after the fact
    assert.deepEqual(texts(await take(first, 3)), ["a", "b", "c"]);
    const second = follower.applied(); // a later reader sees only what comes next
    leader.start(cmd("d"));
    await c.run(300);
    assert.deepEqual(texts(await take(first, 1)), ["d"]);
    assert.deepEqual(texts(await drainAvailable(second)), ["d"]);
  } finally {
    await c.stop();
  }
});

Deno.test("RaftNode: a restarted node re-applies its committed log to its first reader", async () => {
  const c = await Cluster.create();
  try {
    const leader = await c.leader();
    for (const s of ["a", "b"]) leader.start(cmd(s));
    await c.run(300);
    const follower = c.followers(leader)[0];
    const before = follower.status();
    await follower.stop();
    const storage = (c.storages.get(follower.id) as MemoryStorage).crashCopy();
    const restarted = await c.startNode(follower.id, storage);
    const s = restarted.status();
    assert.equal(s.term, before.term);
    assert.equal(s.vote, before.vote);
    assert.equal(s.commit, 2);
    assert.deepEqual(texts(await take(restarted.applied(), 2)), ["a", "b"]);
    leader.start(cmd("c"));
    await c.run(300);
    assert.equal(restarted.status().applied, 3);
  } finally {
    await c.stop();
  }
});

// ---- stop ---------------------------------------------------------------------------------------

Deno.test("RaftNode: stop() rejects pending proposals and ends applied() streams", async () => {
  const sends = new Map<NodeId, number>();
  const c = await Cluster.create({
    transport: (id, inner) => ({
      send: (to, msgs) => {
        sends.set(id, (sends.get(id) ?? 0) + 1);
        inner.send(to, msgs);
      },
      listen: (h) => inner.listen(h),
      close: () => inner.close(),
    }),
  });
  try {
    const leader = await c.leader();
    leader.start(cmd("done"));
    await c.run(300);
    for (const f of c.followers(leader)) c.net.disconnect(f.id);
    const stream = leader.applied();
    assert.deepEqual(texts(await take(stream, 1)), ["done"]);
    const waiting = stream.next(); // a reader waiting for more
    const p1 = leader.propose(cmd("never"));
    const p2 = leader.propose(cmd("never either"));
    await c.run(50);
    await leader.stop();
    await assert.rejects(p1, NodeStoppedError);
    await assert.rejects(p2, NodeStoppedError);
    assert.deepEqual(await waiting, { value: undefined, done: true });
    assert.deepEqual(await leader.applied().next(), { value: undefined, done: true });
    assert.equal(leader.status().running, false);
    assert.equal(leader.status().error, undefined, "a clean stop is no error");
    assert.equal(leader.state().isLeader, false);
    assert.throws(() => leader.start(cmd("x")), NodeStoppedError);
    await assert.rejects(leader.propose(cmd("x")), NodeStoppedError);
    await leader.stop(); // twice is fine
    // A stopped node sends nothing more, though it was a leader with heartbeats to send.
    const sent = sends.get(leader.id);
    await c.run(1000);
    assert.equal(sends.get(leader.id), sent);
  } finally {
    await c.stop();
  }
});

// ---- asynchronous and failing storage -----------------------------------------------------------

/** A storage whose saves complete `delayMs` later in virtual time; durable only then. */
class SlowStorage implements Storage {
  readonly inner = new MemoryStorage();
  saves = 0;
  pending = 0;
  constructor(readonly clock: VirtualClock, readonly delayMs: number) {}

  load() {
    return this.inner.load();
  }

  save(update: StorageUpdate): Promise<void> {
    this.saves++;
    this.pending++;
    assert.equal(this.pending, 1, "saves are issued one at a time");
    return new Promise((resolve) => {
      this.clock.schedule(this.delayMs, () => {
        this.inner.save(update);
        this.pending--;
        resolve();
      });
    });
  }

  close() {
    this.inner.close();
  }
}

/** Checks, as each message leaves, that what it promises is already durable on its sender. */
function durabilityViolation(hs: HardState, lastIndex: number, m: Message): string | undefined {
  if (m.type === "prevote" || m.type === "prevoteResp") return undefined;
  if (hs.term < m.term) return `${m.type} at term ${m.term} with term ${hs.term} durable`;
  if (m.type === "voteResp" && !m.reject && (hs.vote !== m.to || hs.term !== m.term)) {
    return `vote for ${m.to} in term ${m.term} sent with ${JSON.stringify(hs)} durable`;
  }
  if (m.type === "appResp" && !m.reject && lastIndex < m.index) {
    return `ack of ${m.index} sent with ${lastIndex} entries durable`;
  }
  return undefined;
}

Deno.test("RaftNode: with an asynchronous storage, no vote or ack leaves before its save resolved", async () => {
  const violations: string[] = [];
  const checked = { votes: 0, acks: 0 };
  let c: Cluster | undefined = undefined;
  c = await Cluster.create({
    storage: (_id, clock) => new SlowStorage(clock, 7),
    transport: (id, inner) => ({
      send: (to, msgs) => {
        const st = (c!.storages.get(id) as SlowStorage).inner;
        for (const m of msgs) {
          const v = durabilityViolation(st.hardState, st.lastIndex, m);
          if (v) violations.push(`${id} at ${c!.clock.now()} ms: ${v}`);
          if (m.type === "voteResp" && !m.reject) checked.votes++;
          if (m.type === "appResp" && !m.reject && m.index > 0) checked.acks++;
        }
        inner.send(to, msgs);
      },
      listen: (h) => inner.listen(h),
      close: () => inner.close(),
    }),
  });
  try {
    const leader = await c.leader();
    const results = [];
    for (let i = 0; i < 20; i++) {
      results.push(leader.propose(cmd(`x${i}`)));
      if (i % 4 === 0) await c.run(3);
    }
    await c.run(1000);
    await Promise.all(results);
    const streams = c.ids.map((id) => c!.node(id).applied());
    for (const [i, id] of c.ids.entries()) {
      const items = await take(streams[i], 20);
      assert.deepEqual(texts(items), Array.from({ length: 20 }, (_, k) => `x${k}`), id);
      assert.equal((c.storages.get(id) as SlowStorage).inner.lastIndex, 20, `${id} durable`);
    }
    assert.deepEqual(violations, []);
    assert.ok(checked.votes >= 1, "some vote was granted and checked");
    assert.ok(checked.acks >= 2, "some acknowledgements were checked");
    // A new leader (votes again under the slow storage), then more writes.
    c.net.disconnect(leader.id);
    await c.run(2000);
    c.net.connect(leader.id);
    const next = await c.leader();
    const after = next.propose(cmd("after"));
    await c.run(500);
    await after;
    for (const id of c.ids) assert.equal(c.node(id).status().applied, 21, id);
    assert.deepEqual(violations, []);
  } finally {
    await c.stop();
  }
});

Deno.test("RaftNode: stop() waits for an in-flight asynchronous save", async () => {
  const c = await Cluster.create({ storage: (_id, clock) => new SlowStorage(clock, 50) });
  try {
    const leader = await c.leader();
    const st = c.storages.get(leader.id) as SlowStorage;
    leader.start(cmd("x"));
    await c.run(1); // the save starts
    assert.equal(st.pending, 1);
    let stopped = false;
    const stopping = leader.stop().then(() => stopped = true);
    await settle();
    assert.equal(stopped, false, "stop waits for the save");
    await c.run(60);
    await stopping;
    assert.equal(st.pending, 0);
  } finally {
    await c.stop();
  }
});

/** A MemoryStorage whose saves fail once `failing` is set: by throwing, or by rejecting. */
class FailingStorage extends MemoryStorage {
  failing = false;
  constructor(readonly mode: "throw" | "reject") {
    super();
  }

  override save(update: StorageUpdate): void {
    if (this.failing) {
      if (this.mode === "throw") throw new Error("disk full (thrown)");
      return Promise.reject(new Error("disk full (rejected)")) as unknown as void;
    }
    super.save(update);
  }
}

for (const mode of ["throw", "reject"] as const) {
  Deno.test(`RaftNode: a storage save that fails (${mode}) stops the node with status().error`, async () => {
    const c = await Cluster.create({ storage: () => new FailingStorage(mode) });
    try {
      const leader = await c.leader();
      const st = c.storages.get(leader.id) as FailingStorage;
      const stream = leader.applied();
      st.failing = true;
      const p = leader.propose(cmd("lost"));
      await c.run(50);
      await assert.rejects(p, NodeStoppedError);
      const s = leader.status();
      assert.equal(s.running, false);
      assert.match(s.error ?? "", /disk full/);
      assert.equal(leader.state().isLeader, false);
      assert.throws(() => leader.start(cmd("x")), NodeStoppedError);
      assert.deepEqual(await stream.next(), { value: undefined, done: true }, "stream ended");
      // A follower whose save fails on an incoming append stops too; the rest carry on.
      c.net.disconnect(leader.id);
      const next = await c.leader();
      const follower = c.followers(next).find((n) => n !== leader)!;
      (c.storages.get(follower.id) as FailingStorage).failing = true;
      next.start(cmd("y"));
      await c.run(300);
      assert.equal(follower.status().running, false);
      assert.match(follower.status().error ?? "", /disk full/);
      assert.equal(next.status().running, true);
    } finally {
      await c.stop();
    }
  });
}

// ---- clock ----------------------------------------------------------------------------------------

Deno.test("RealClock: now() never decreases; schedule runs, cancel prevents, defer runs first", async () => {
  const clock = new RealClock();
  const t0 = clock.now();
  const order: string[] = [];
  const fired = new Promise<void>((resolve) => {
    clock.schedule(5, () => {
      order.push("timer");
      resolve();
    });
  });
  const cancel = clock.schedule(1, () => order.push("cancelled"));
  cancel();
  clock.defer(() => order.push("deferred"));
  await fired;
  assert.deepEqual(order, ["deferred", "timer"]);
  assert.ok(clock.now() >= t0 + 3, "about 5 ms passed");
  cancel(); // after the fact: harmless
});
