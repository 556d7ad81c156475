// RaftNode's bounds, in virtual time: proposal and read timeouts, the command size limit, and
// the limit of requests waiting at once.
import assert from "node:assert/strict";
import { ConfigError } from "../../src/core/errors.ts";
import type { Applied, StateMachine } from "../../src/node/raft_node.ts";
import {
  CommandTooLargeError,
  NodeBusyError,
  ProposalTimeoutError,
  ReadTimeoutError,
} from "../../src/node/node_errors.ts";
import { SoloNode } from "./solo_node.ts";

const enc = new TextEncoder();
const cmd = (s: string): Uint8Array => enc.encode(s);

// Counts commands; a query answers the count.
function counter(): StateMachine & { count: number } {
  const sm = {
    count: 0,
    apply() {
      sm.count++;
      return enc.encode(String(sm.count));
    },
    query() {
      return enc.encode(String(sm.count));
    },
  };
  return sm;
}

Deno.test("limits: a proposal not applied in time rejects with ProposalTimeoutError, and may still apply later", async () => {
  const s = await SoloNode.start({ proposalTimeoutMs: 1000 });
  try {
    const applied = s.node.applied();
    s.storage.hold();
    const p = s.node.propose(cmd("late"));
    await s.run(999);
    assert.equal(await SoloNode.outcome(p), "pending", "rejected before the timeout");
    await s.run(2);
    const out = await SoloNode.outcome(p);
    assert.ok(out !== "pending" && "error" in out, "still pending after the timeout");
    const e = out.error;
    assert.ok(e instanceof ProposalTimeoutError, String(e));
    assert.equal(e.index, 1);
    assert.equal(e.term, s.node.state().term);
    assert.equal(e.timeoutMs, 1000);
    // The command was in the log all along: once the disk answers, it commits and applies.
    s.storage.release();
    await s.run(50);
    const first = (await applied.next()).value as Applied;
    assert.equal(first.type, "entry");
    assert.equal(first.index, 1);
    assert.equal(s.node.status().applied, 1);
  } finally {
    s.storage.release();
    await s.node.stop();
  }
});

Deno.test("limits: the proposal timeout is in the node's clock, and 0 or Infinity turns it off", async () => {
  for (const proposalTimeoutMs of [0, Infinity]) {
    const s = await SoloNode.start({ proposalTimeoutMs });
    try {
      s.storage.hold();
      const timers = s.clock.pendingTimers();
      const p = s.node.propose(cmd("x"));
      assert.equal(s.clock.pendingTimers(), timers, "a timer was scheduled");
      await s.run(60_000, 100);
      assert.equal(await SoloNode.outcome(p), "pending", `timeout ${proposalTimeoutMs}`);
      s.storage.release();
      await s.run(20);
      assert.deepEqual(await SoloNode.outcome(p), { value: undefined });
    } finally {
      await s.node.stop();
    }
  }
  // The default (10 s) applies when nothing is said.
  const s = await SoloNode.start();
  try {
    s.storage.hold();
    const p = s.node.propose(cmd("x"));
    await s.run(9_990, 100);
    assert.equal(await SoloNode.outcome(p), "pending");
    await s.run(20);
    const out = await SoloNode.outcome(p);
    assert.ok(out !== "pending" && "error" in out && out.error instanceof ProposalTimeoutError);
    assert.equal(out.error.timeoutMs, 10_000);
  } finally {
    s.storage.release();
    await s.node.stop();
  }
});

Deno.test("limits: a command over maxCommandBytes is refused before it is proposed", async () => {
  const s = await SoloNode.start({ maxCommandBytes: 16 });
  try {
    const before = s.node.status().lastIndex;
    assert.throws(() => s.node.start(new Uint8Array(17)), (e: unknown) => {
      assert.ok(e instanceof CommandTooLargeError);
      assert.equal(e.size, 17);
      assert.equal(e.limit, 16);
      return true;
    });
    await assert.rejects(s.node.propose(new Uint8Array(100)), (e: unknown) => {
      assert.ok(e instanceof CommandTooLargeError);
      assert.equal(e.size, 100);
      return true;
    });
    assert.equal(s.node.status().lastIndex, before, "something was proposed");
    // At the limit it is accepted.
    const p = s.node.propose(new Uint8Array(16).fill(1));
    await s.run(20);
    assert.deepEqual(await SoloNode.outcome(p), { value: undefined });
    assert.equal(s.node.metrics().proposalsFailed, 2);
  } finally {
    s.storage.release();
    await s.node.stop();
  }
  // The default is 1 MiB.
  const d = await SoloNode.start();
  try {
    assert.throws(() => d.node.start(new Uint8Array((1 << 20) + 1)), CommandTooLargeError);
  } finally {
    await d.node.stop();
  }
});

Deno.test("limits: past maxPendingProposals, propose fails with a retryable NodeBusyError", async () => {
  const s = await SoloNode.start({ maxPendingProposals: 2, stateMachine: counter() });
  try {
    s.storage.hold();
    const a = s.node.propose(cmd("a"));
    const b = s.node.propose(cmd("b"));
    const lastIndex = s.node.status().lastIndex;
    await assert.rejects(s.node.propose(cmd("c")), (e: unknown) => {
      assert.ok(e instanceof NodeBusyError);
      assert.equal(e.pending, 2);
      assert.equal(e.limit, 2);
      assert.equal(e.retryable, true);
      return true;
    });
    assert.equal(s.node.status().lastIndex, lastIndex, "the refused command was proposed");
    // start() does not wait, so it is not refused.
    s.node.start(cmd("d"));
    s.storage.release();
    await s.run(20);
    assert.deepEqual(await SoloNode.outcome(a), { value: cmd("1") });
    assert.deepEqual(await SoloNode.outcome(b), { value: cmd("2") });
    // Room again.
    const e = s.node.propose(cmd("e"));
    await s.run(20);
    assert.deepEqual(await SoloNode.outcome(e), { value: cmd("4") });
  } finally {
    s.storage.release();
    await s.node.stop();
  }
});

Deno.test("limits: linearizable reads are bounded by maxPendingProposals and time out", async () => {
  // A read waits for an entry of the leader's term to commit: with saves held, its no-op cannot.
  const s = await SoloNode.start({
    maxPendingProposals: 1,
    proposalTimeoutMs: 3000,
    stateMachine: counter(),
  });
  try {
    const q = new Uint8Array(0);
    s.storage.hold();
    const r1 = s.node.read(q);
    await s.run(100);
    assert.equal(await SoloNode.outcome(r1), "pending");
    await assert.rejects(s.node.read(q), (e: unknown) => {
      assert.ok(e instanceof NodeBusyError);
      assert.equal(e.pending, 1);
      assert.equal(e.limit, 1);
      return true;
    });
    // A stale read is not counted.
    assert.deepEqual(await s.node.read(q, { consistency: "stale" }), cmd("0"));
    await s.run(3000);
    const out = await SoloNode.outcome(r1);
    assert.ok(out !== "pending" && "error" in out, "the read neither answered nor timed out");
    assert.ok(out.error instanceof ReadTimeoutError, String(out.error));
    assert.equal(out.error.timeoutMs, 3000);
    // With the slot free and saves flowing again, a read that can be served is.
    s.storage.release();
    const r2 = s.node.read(q);
    const w = s.node.propose(cmd("w"));
    await s.run(50);
    assert.deepEqual(await SoloNode.outcome(w), { value: cmd("1") });
    assert.deepEqual(await SoloNode.outcome(r2), { value: cmd("1") });
  } finally {
    s.storage.release();
    await s.node.stop();
  }
});

Deno.test("limits: bad limits are a ConfigError", async () => {
  const bad = [
    { proposalTimeoutMs: -1 },
    { proposalTimeoutMs: NaN },
    { maxCommandBytes: 0 },
    { maxPendingProposals: 1.5 },
    { autoCompact: { logEntries: 0 } },
    { autoCompact: { logBytes: -5 } },
  ];
  for (const options of bad) {
    await assert.rejects(SoloNode.start(options), ConfigError, JSON.stringify(options));
  }
});
