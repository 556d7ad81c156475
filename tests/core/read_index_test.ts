// ReadIndex in the core: a read is confirmed only by a quorum answering a heartbeat round sent
// after the read arrived, and only once the leader committed an entry of its own term (the
// first read of a term with no entry appends the no-op).
import assert from "node:assert/strict";
import { NotLeaderError } from "../../src/core/errors.ts";
import { RaftCore } from "../../src/core/raft.ts";
import { enc, Trio } from "./core_trio.ts";

Deno.test("readIndex: a single server confirms a read at once, at its commit index", () => {
  const core = new RaftCore({ id: "a", voters: ["a"], seed: 1, leaderNoop: true });
  core.campaign();
  for (let i = 0; i < 3; i++) core.advance(core.ready()); // elect, persist and apply the no-op
  core.readIndex(7);
  const rd = core.ready();
  core.advance(rd);
  assert.deepEqual(rd.readStates, [{ ctx: 7, index: 1 }]);
});

Deno.test("readIndex: confirmed after a quorum answers the heartbeat round", () => {
  const t = new Trio();
  t.elect("a");
  t.propose("a", 2);
  const a = t.core("a");
  a.readIndex(1);
  a.readIndex(2);
  // Without any answer, nothing is confirmed.
  t.run((m) => m.type === "hbResp");
  assert.deepEqual(t.reads.get("a"), []);
  // One follower's answer makes a quorum with the leader.
  a.readIndex(3);
  t.run((m) => m.type === "hbResp" && m.from === "c");
  assert.deepEqual(t.reads.get("a"), [
    { ctx: 1, index: 2 },
    { ctx: 2, index: 2 },
    { ctx: 3, index: 2 },
  ]);
});

Deno.test("readIndex: a leader without an entry of its term appends the no-op on the first read", () => {
  const t = new Trio();
  t.elect("a");
  const a = t.core("a");
  assert.equal(a.status().lastIndex, 0, "no no-op before anyone reads (6.5840 numbering)");
  a.readIndex(1);
  a.readIndex(2);
  t.run();
  // One no-op for both reads, confirmed once it committed.
  assert.deepEqual(t.reads.get("a"), [{ ctx: 1, index: 1 }, { ctx: 2, index: 1 }]);
  assert.equal(a.status().lastIndex, 1);
  assert.deepEqual(t.applied.get("b"), [1]);
});

Deno.test("readIndex: an uncommitted entry of the leader's term is waited for, not doubled", () => {
  const t = new Trio();
  t.elect("a");
  const a = t.core("a");
  a.propose(enc("x"));
  a.readIndex(1);
  assert.equal(a.status().lastIndex, 1, "no no-op after the proposal");
  t.run();
  assert.deepEqual(t.reads.get("a"), [{ ctx: 1, index: 1 }]);
});

Deno.test("readIndex: leaderNoop lets a new leader confirm reads without a proposal", () => {
  const t = new Trio({ config: { leaderNoop: true } });
  t.elect("a");
  t.core("a").readIndex(5);
  t.run();
  assert.deepEqual(t.reads.get("a"), [{ ctx: 5, index: 1 }]);
  // The no-op is an empty command, applied everywhere like any entry.
  assert.deepEqual(t.applied.get("b"), [1]);
});

Deno.test("readIndex: a follower refuses with the leader's id; a deposed leader drops reads", () => {
  const t = new Trio();
  t.elect("a");
  t.propose("a", 1);
  assert.throws(() => t.core("b").readIndex(1), (e: unknown) => {
    assert.ok(e instanceof NotLeaderError);
    assert.equal(e.leaderHint, "a");
    return true;
  });
  const a = t.core("a");
  a.readIndex(9);
  // a is cut off; it steps down (check-quorum) before any answer arrives.
  t.run(() => true);
  for (let i = 0; i < 45; i++) a.tick();
  t.run(() => true);
  assert.equal(a.role, "follower");
  assert.deepEqual(t.reads.get("a"), []);
});

Deno.test("propose: an empty command is refused (it is reserved for the leader's no-op)", () => {
  const t = new Trio();
  t.elect("a");
  assert.throws(() => t.core("a").propose(new Uint8Array(0)), RangeError);
  assert.equal(t.core("a").propose(enc("x")).index, 1);
});
