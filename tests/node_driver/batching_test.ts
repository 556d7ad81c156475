// RaftNode's batching, in virtual time: linearizable reads that arrive while a heartbeat round is
// out share the next round (and stay linearizable), a commit-only hard state does not cost a
// save of its own on an asynchronous storage, and committed entries are applied while the next
// save runs.
import assert from "node:assert/strict";
import type { HardState, Message, NodeId } from "../../src/core/types.ts";
import { RaftNode } from "../../src/node/raft_node.ts";
import { MemoryStorage } from "../../src/storage/memory_storage.ts";
import type { StorageUpdate } from "../../src/storage/storage.ts";
import { Random } from "../../src/testing/random.ts";
import { VirtualClock } from "../../src/testing/virtual_clock.ts";
import { MemoryNetwork } from "../../src/transport/memory_network.ts";
import type { Transport } from "../../src/transport/transport.ts";
import { register } from "./solo_node.ts";

const enc = new TextEncoder();
const decoder = new TextDecoder();
const dec = (b: Uint8Array | undefined) => decoder.decode(b);

async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

/** A MemoryStorage whose saves resolve on the next virtual millisecond, like a disk's. */
class SlowStorage extends MemoryStorage {
  readonly updates: StorageUpdate[] = [];
  constructor(readonly clock: VirtualClock) {
    super();
  }
  override save(update: StorageUpdate): void {
    this.updates.push(update);
    super.save(update);
    return new Promise<void>((resolve) => this.clock.schedule(1, resolve)) as unknown as void;
  }
}

/** Three nodes; `held` follower answers to heartbeats wait while `holdHeartbeats` is set. */
class Trio {
  readonly clock = new VirtualClock();
  readonly net: MemoryNetwork;
  readonly ids = ["n0", "n1", "n2"];
  readonly nodes = new Map<NodeId, RaftNode>();
  readonly storages = new Map<NodeId, SlowStorage>();
  readonly sent: Message[] = [];
  holdHeartbeats = false;
  readonly held: { inner: Transport; to: NodeId; m: Message }[] = [];

  private constructor(seed: number) {
    const random = new Random(seed);
    this.net = new MemoryNetwork({ scheduler: this.clock, random: () => random.next() });
  }

  static async start(seed = 3): Promise<Trio> {
    const t = new Trio(seed);
    for (const id of t.ids) {
      const inner = t.net.transport(id);
      const transport: Transport = {
        send: (to, messages) => {
          const pass: Message[] = [];
          for (const m of messages) {
            t.sent.push(m);
            if (t.holdHeartbeats && m.type === "hbResp") t.held.push({ inner, to, m });
            else pass.push(m);
          }
          if (pass.length > 0) inner.send(to, pass);
        },
        listen: (handler) => inner.listen(handler),
        close: () => inner.close(),
      };
      const storage = new SlowStorage(t.clock);
      t.storages.set(id, storage);
      t.nodes.set(
        id,
        await RaftNode.start({
          id,
          peers: t.ids,
          storage,
          transport,
          clock: t.clock,
          seed: seed * 10 + t.ids.indexOf(id),
          stateMachine: register(),
          leaderNoop: true,
        }),
      );
    }
    return t;
  }

  releaseHeartbeats(): void {
    this.holdHeartbeats = false;
    for (const { inner, to, m } of this.held.splice(0)) inner.send(to, [m]);
  }

  async run(ms: number): Promise<void> {
    const end = this.clock.now() + ms;
    while (this.clock.now() < end) {
      await settle();
      this.clock.advance(Math.min(1, end - this.clock.now()));
    }
    await settle();
  }

  /** Run virtual time until `p` settles (at most `maxMs`). */
  async until<T>(p: Promise<T>, maxMs = 2000): Promise<T> {
    let done = false;
    p.then(() => done = true, () => done = true);
    for (let i = 0; i < maxMs && !done; i++) await this.run(1);
    return await p;
  }

  async leader(): Promise<RaftNode> {
    for (let i = 0; i < 100; i++) {
      const leaders = [...this.nodes.values()].filter((n) => n.state().isLeader);
      if (leaders.length === 1) {
        const l = leaders[0];
        if ([...this.nodes.values()].every((n) => n.status().leader === l.id)) return l;
      }
      await this.run(50);
    }
    throw new Error("no leader");
  }

  // Read rounds the leader started: distinct heartbeat ctx values above `after`.
  readRounds(leader: NodeId, after: number): Set<number> {
    const rounds = new Set<number>();
    for (const m of this.sent) {
      if (m.from === leader && m.type === "hb" && m.ctx > after) rounds.add(m.ctx);
    }
    return rounds;
  }

  async stop(): Promise<void> {
    // A save in flight (which stop() waits for) completes in virtual time.
    const stopping = Promise.all([...this.nodes.values()].map((n) => n.stop()));
    await this.until(stopping);
  }
}

function lastRound(t: Trio, leader: NodeId): number {
  let last = 0;
  for (const m of t.sent) if (m.from === leader && m.type === "hb" && m.ctx > last) last = m.ctx;
  return last;
}

Deno.test("batching: reads arriving while a heartbeat round is out share the next round", async () => {
  const t = await Trio.start();
  try {
    const leader = await t.leader();
    await t.until(leader.propose(enc.encode("v1")));
    const before = lastRound(t, leader.id);
    t.holdHeartbeats = true;
    const first = leader.read(new Uint8Array(0));
    await t.run(2);
    assert.equal(t.readRounds(leader.id, before).size, 1, "the first read starts a round");
    // Twenty reads while that round is unanswered: none starts a round of its own.
    const later = Array.from({ length: 20 }, () => leader.read(new Uint8Array(0)));
    await t.run(2);
    assert.equal(t.readRounds(leader.id, before).size, 1, "reads held behind the round");
    t.releaseHeartbeats();
    await t.run(20);
    for (const r of [first, ...later]) assert.equal(dec(await r), "v1");
    // The first round, then one round for all twenty.
    assert.equal(t.readRounds(leader.id, before).size, 2);
  } finally {
    await t.stop();
  }
});

Deno.test("batching: a read held behind a round still sees a write acknowledged before it", async () => {
  const t = await Trio.start(5);
  try {
    const leader = await t.leader();
    await t.until(leader.propose(enc.encode("v1")));
    t.holdHeartbeats = true;
    // An early read's round is out (and unanswered) while v2 commits and is acknowledged.
    const early = leader.read(new Uint8Array(0));
    await t.run(2);
    await t.until(leader.propose(enc.encode("v2")));
    // This read arrives after v2 was acknowledged: it may not join the early round (which was
    // sent before it), and must see v2.
    const late = leader.read(new Uint8Array(0));
    t.releaseHeartbeats();
    await t.run(20);
    assert.ok(["v1", "v2"].includes(dec(await early)));
    assert.equal(dec(await late), "v2");
  } finally {
    await t.stop();
  }
});

Deno.test("batching: held reads still get a round when the one ahead of them is lost", async () => {
  const t = await Trio.start(7);
  try {
    const leader = await t.leader();
    await t.until(leader.propose(enc.encode("v1")));
    t.holdHeartbeats = true;
    const first = leader.read(new Uint8Array(0));
    await t.run(2);
    const second = leader.read(new Uint8Array(0));
    await t.run(2);
    // The first round's answers are lost for good.
    t.held.splice(0);
    t.holdHeartbeats = false;
    await t.run(300);
    assert.equal(dec(await second), "v1");
    assert.equal(dec(await first), "v1", "the next heartbeat confirms the lost round too");
  } finally {
    await t.stop();
  }
});

Deno.test("batching: a commit-only hard state rides with the next save, or is saved when idle", async () => {
  const t = await Trio.start(9);
  try {
    const leader = await t.leader();
    const storage = t.storages.get(leader.id)!;
    const isCommitOnly = (u: StorageUpdate, prev: HardState | undefined) =>
      u.entries.length === 0 && u.snapshot === undefined && u.hardState !== undefined &&
      prev !== undefined && u.hardState.term === prev.term && u.hardState.vote === prev.vote;
    const from = storage.updates.length;
    const started = t.clock.now();
    for (let i = 0; i < 20; i++) {
      await t.until(Promise.all([
        leader.propose(enc.encode(`a${i}`)),
        leader.propose(enc.encode(`b${i}`)),
      ]));
    }
    // Every proposal round is one save of entries; the commit index it moves is not saved on
    // its own (that was one more save per round), except at a tick that finds the node idle.
    const updates = storage.updates.slice(from);
    let prev: HardState | undefined = updates[0]?.hardState;
    let commitOnly = 0;
    for (const u of updates) {
      if (isCommitOnly(u, prev)) commitOnly++;
      prev = u.hardState ?? prev;
    }
    const ticks = Math.ceil((t.clock.now() - started) / 10);
    assert.ok(
      commitOnly <= ticks && commitOnly < 10,
      `${commitOnly} commit-only saves in ${updates.length}, ${ticks} ticks, 20 rounds`,
    );
    // Idle for a few ticks: the latest commit index is saved, so a restart knows it.
    await t.run(50);
    const last = [...storage.updates].reverse().find((u) => u.hardState !== undefined)!;
    assert.equal(last.hardState!.commit, leader.status().commit);
  } finally {
    await t.stop();
  }
});

Deno.test("batching: stop() saves a commit index still waiting for a save", async () => {
  const t = await Trio.start(11);
  try {
    const leader = await t.leader();
    await t.until(leader.propose(enc.encode("x")));
    const commit = leader.status().commit;
    const storage = t.storages.get(leader.id)!;
    await t.until(leader.stop());
    const last = [...storage.updates].reverse().find((u) => u.hardState !== undefined)!;
    assert.equal(last.hardState!.commit, commit);
  } finally {
    await t.stop();
  }
});
