/**
 * Unit tests of `RaftLog` (src/core/log.ts): term lookups, the log-matching check, appending
 * with conflict truncation, the follower's `maybeAppend`, conflict hints, limited slices and the
 * commit / apply / stable bookkeeping.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LogInvariantError, RaftLog } from "../../src/core/log.ts";
import type { Entry } from "../../src/core/types.ts";

function ent(index: number, term: number, size = 0): Entry {
  return { index, term, data: new Uint8Array(size) };
}

/** Entries `from..from+terms.length-1` with the given terms. */
function ents(from: number, terms: number[], size = 0): Entry[] {
  return terms.map((t, i) => ent(from + i, t, size));
}

function terms(log: RaftLog): number[] {
  const out: number[] = [];
  for (let i = log.firstIndex(); i <= log.lastIndex(); i++) out.push(log.term(i)!);
  return out;
}

Deno.test("RaftLog: an empty log", () => {
  const log = new RaftLog([]);
  assert.equal(log.firstIndex(), 1);
  assert.equal(log.lastIndex(), 0);
  assert.equal(log.lastTerm(), 0);
  assert.equal(log.term(0), 0);
  assert.equal(log.term(1), undefined);
  assert.equal(log.matchTerm(0, 0), true);
  assert.equal(log.matchTerm(1, 1), false);
  assert.equal(log.committed, 0);
  assert.equal(log.applied, 0);
  assert.equal(log.stabled, 0);
  assert.equal(log.hasUnstable(), false);
  assert.equal(log.hasNextCommitted(), false);
  assert.deepEqual(log.nextCommitted(100), []);
});

Deno.test("RaftLog: constructor checks the persisted log and treats it as stable", () => {
  const log = new RaftLog(ents(1, [1, 1, 2]));
  assert.equal(log.lastIndex(), 3);
  assert.equal(log.lastTerm(), 2);
  assert.equal(log.stabled, 3);
  assert.equal(log.hasUnstable(), false);
  assert.throws(() => new RaftLog([ent(1, 1), ent(3, 1)]), LogInvariantError);
  assert.throws(() => new RaftLog([ent(2, 1)]), LogInvariantError);
  assert.throws(() => new RaftLog([ent(1, 2), ent(2, 1)]), LogInvariantError);
});

Deno.test("RaftLog: term and matchTerm across a snapshot offset", () => {
  // A log whose first 10 entries are covered by a snapshot at (10, term 3).
  const log = new RaftLog(ents(11, [3, 4, 4]), 10, 3);
  assert.equal(log.firstIndex(), 11);
  assert.equal(log.lastIndex(), 13);
  assert.equal(log.lastTerm(), 4);
  assert.equal(log.term(9), undefined, "compacted away");
  assert.equal(log.term(10), 3, "the snapshot's own term");
  assert.equal(log.term(11), 3);
  assert.equal(log.term(12), 4);
  assert.equal(log.term(13), 4);
  assert.equal(log.term(14), undefined, "beyond the end");
  assert.equal(log.matchTerm(10, 3), true);
  assert.equal(log.matchTerm(10, 2), false);
  assert.equal(log.matchTerm(9, 3), false);
  assert.equal(log.matchTerm(12, 4), true);
  assert.equal(log.entry(10), undefined);
  assert.deepEqual(log.entry(12), ent(12, 4));
  assert.equal(log.committed, 10, "a snapshot is committed");
  assert.equal(log.applied, 10);
  assert.throws(() => log.slice(10, 12), LogInvariantError);
  assert.deepEqual(log.slice(11, 13), ents(11, [3, 4]));
  // An empty log after a snapshot reports the snapshot as its last entry.
  const empty = new RaftLog([], 7, 2);
  assert.equal(empty.lastIndex(), 7);
  assert.equal(empty.lastTerm(), 2);
  assert.equal(empty.firstIndex(), 8);
  assert.equal(empty.findConflictByTerm(7, 5), 7);
});

Deno.test("RaftLog: append continues the log and leaves new entries unstable", () => {
  const log = new RaftLog(ents(1, [1, 1]));
  log.append(ents(3, [2, 2]));
  assert.deepEqual(terms(log), [1, 1, 2, 2]);
  assert.equal(log.stabled, 2);
  assert.deepEqual(log.unstable(), ents(3, [2, 2]));
  log.stableTo(4, 2);
  assert.equal(log.stabled, 4);
  assert.equal(log.hasUnstable(), false);
  log.append([]);
  assert.equal(log.lastIndex(), 4);
});

Deno.test("RaftLog: append truncates a conflicting suffix and lowers stabled", () => {
  const log = new RaftLog(ents(1, [1, 1, 1, 1, 1]));
  assert.equal(log.stabled, 5);
  log.append(ents(3, [2]));
  assert.deepEqual(terms(log), [1, 1, 2]);
  assert.equal(log.stabled, 2, "index 3 of the durable log was replaced");
  assert.deepEqual(log.unstable(), ents(3, [2]));
  // Overwriting unstable entries only leaves stabled where it was.
  log.append(ents(3, [3, 3]));
  assert.equal(log.stabled, 2);
  assert.deepEqual(terms(log), [1, 1, 3, 3]);
});

Deno.test("RaftLog: append refuses gaps and overwriting committed entries", () => {
  const log = new RaftLog(ents(1, [1, 1, 1]));
  assert.throws(() => log.append(ents(5, [1])), LogInvariantError);
  log.commitTo(2);
  assert.throws(() => log.append(ents(2, [2])), LogInvariantError);
  assert.throws(() => log.append(ents(1, [2, 2])), LogInvariantError);
  assert.deepEqual(terms(log), [1, 1, 1], "a refused append changes nothing");
  log.append(ents(3, [2]));
  assert.deepEqual(terms(log), [1, 1, 2]);
});

Deno.test("RaftLog: stableTo ignores an acknowledgement for entries since replaced", () => {
  const log = new RaftLog([]);
  log.append(ents(1, [1, 1, 1]));
  log.append(ents(2, [2])); // replaces 2..3 before they were saved
  log.stableTo(3, 1); // the save of the old entries completes
  assert.equal(log.stabled, 0, "index 3 is gone, 2 has another term");
  log.stableTo(2, 2);
  assert.equal(log.stabled, 2);
  log.stableTo(1, 1);
  assert.equal(log.stabled, 2, "never lowered");
});

Deno.test("RaftLog: maybeAppend rejects when the previous entry does not match", () => {
  const log = new RaftLog(ents(1, [1, 2]));
  assert.equal(log.maybeAppend(2, 1, 0, ents(3, [3])), -1, "term mismatch at prevIndex");
  assert.equal(log.maybeAppend(5, 2, 0, ents(6, [3])), -1, "prevIndex beyond the end");
  assert.equal(log.lastIndex(), 2);
});

Deno.test("RaftLog: maybeAppend appends new entries and advances commit up to lastNew", () => {
  const log = new RaftLog(ents(1, [1]));
  assert.equal(log.maybeAppend(1, 1, 10, ents(2, [1, 1])), 3);
  assert.deepEqual(terms(log), [1, 1, 1]);
  assert.equal(log.committed, 3, "leader commit 10 capped at the last new index");
  // An empty append (heartbeat-like) matches and returns prevIndex.
  assert.equal(log.maybeAppend(2, 1, 3, []), 2);
});

Deno.test("RaftLog: maybeAppend never truncates on a stale or duplicated message", () => {
  const log = new RaftLog([]);
  assert.equal(log.maybeAppend(0, 0, 0, ents(1, [1, 1, 1, 1, 1])), 5);
  log.stableTo(5, 1);
  // A delayed copy of an earlier, shorter append arrives.
  assert.equal(log.maybeAppend(0, 0, 0, ents(1, [1, 1])), 2);
  assert.equal(log.lastIndex(), 5, "entries 3..5 survive");
  assert.equal(log.stabled, 5);
  assert.equal(log.hasUnstable(), false);
  // The same entries again, and a partial overlap with one new entry at the end.
  assert.equal(log.maybeAppend(2, 1, 0, ents(3, [1, 1, 1])), 5);
  assert.equal(log.maybeAppend(3, 1, 0, ents(4, [1, 1, 1])), 6);
  assert.deepEqual(terms(log), [1, 1, 1, 1, 1, 1]);
  assert.equal(log.stabled, 5, "only the new entry is unstable");
  assert.deepEqual(log.unstable(), ents(6, [1]));
});

Deno.test("RaftLog: maybeAppend truncates from the first real conflict only", () => {
  const log = new RaftLog(ents(1, [1, 1, 2, 2, 2]));
  assert.equal(log.maybeAppend(1, 1, 0, ents(2, [1, 3])), 3);
  assert.deepEqual(terms(log), [1, 1, 3]);
  assert.equal(log.stabled, 2);
});

Deno.test("RaftLog: maybeAppend never moves commit past lastNew or backwards", () => {
  const log = new RaftLog(ents(1, [1, 1, 1, 1]));
  log.commitTo(3);
  // Matches at 1, carries nothing, leader commit 4: only index 1 is known to match.
  assert.equal(log.maybeAppend(1, 1, 4, []), 1);
  assert.equal(log.committed, 3, "commit never lowered");
});

Deno.test("RaftLog: commitTo never goes beyond the last index and never lowers", () => {
  const log = new RaftLog(ents(1, [1, 1]));
  assert.throws(() => log.commitTo(3), LogInvariantError);
  assert.equal(log.committed, 0);
  log.commitTo(2);
  log.commitTo(1);
  assert.equal(log.committed, 2);
});

Deno.test("RaftLog: findConflictByTerm", () => {
  // index: 1 2 3 4 5 6 7
  // term:  1 1 2 2 2 4 4
  const log = new RaftLog(ents(1, [1, 1, 2, 2, 2, 4, 4]));
  assert.equal(log.findConflictByTerm(7, 4), 7);
  assert.equal(log.findConflictByTerm(7, 3), 5, "skips the whole of term 4");
  assert.equal(log.findConflictByTerm(7, 2), 5);
  assert.equal(log.findConflictByTerm(5, 1), 2, "skips the whole of term 2");
  assert.equal(log.findConflictByTerm(7, 0), 0);
  assert.equal(log.findConflictByTerm(100, 9), 7, "capped at the last index");
  assert.equal(log.findConflictByTerm(4, 9), 4);
  assert.equal(log.findConflictByTerm(0, 9), 0);
});

Deno.test("RaftLog: sliceLimited respects count and byte limits, always at least one entry", () => {
  const log = new RaftLog(ents(1, [1, 1, 1, 1, 1, 1], 10));
  assert.equal(log.sliceLimited(1, 100, 1 << 20).length, 6);
  assert.deepEqual(log.sliceLimited(2, 3, 1 << 20).map((e) => e.index), [2, 3, 4]);
  assert.deepEqual(log.sliceLimited(1, 100, 30).map((e) => e.index), [1, 2, 3], "30 bytes");
  assert.deepEqual(log.sliceLimited(1, 100, 29).map((e) => e.index), [1, 2]);
  assert.deepEqual(log.sliceLimited(1, 100, 1).map((e) => e.index), [1], "one large entry alone");
  assert.deepEqual(log.sliceLimited(4, 100, 0).map((e) => e.index), [4]);
  assert.deepEqual(log.sliceLimited(7, 100, 100), [], "nothing past the end");
  // Both limits at once: the tighter one wins.
  assert.deepEqual(log.sliceLimited(1, 2, 1000).map((e) => e.index), [1, 2]);
  assert.deepEqual(log.sliceLimited(1, 5, 20).map((e) => e.index), [1, 2]);
});

Deno.test("RaftLog: slice returns [lo, hi) clipped to the log", () => {
  const log = new RaftLog(ents(1, [1, 1, 1]));
  assert.deepEqual(log.slice(2, 3).map((e) => e.index), [2]);
  assert.deepEqual(log.slice(2, 100).map((e) => e.index), [2, 3]);
  assert.deepEqual(log.slice(4, 10), []);
  assert.throws(() => log.slice(0, 2), LogInvariantError);
});

Deno.test("RaftLog: isUpToDate compares last term first, then length (§5.4.1)", () => {
  const log = new RaftLog(ents(1, [1, 2, 2]));
  assert.equal(log.isUpToDate(3, 2), true, "same log");
  assert.equal(log.isUpToDate(4, 2), true, "longer, same last term");
  assert.equal(log.isUpToDate(2, 2), false, "shorter, same last term");
  assert.equal(log.isUpToDate(1, 3), true, "shorter but newer last term");
  assert.equal(log.isUpToDate(10, 1), false, "longer but older last term");
});

Deno.test("RaftLog: committed entries are handed out once, in order, within maxBytes", () => {
  const log = new RaftLog(ents(1, [1, 1, 1, 1], 10));
  log.commitTo(3);
  assert.equal(log.hasNextCommitted(), true);
  const first = log.nextCommitted(15);
  assert.deepEqual(first.map((e) => e.index), [1], "15 bytes fit one 10-byte entry");
  log.appliedTo(1);
  assert.deepEqual(log.nextCommitted(1 << 20).map((e) => e.index), [2, 3], "never past commit");
  log.appliedTo(3);
  assert.equal(log.hasNextCommitted(), false);
  assert.deepEqual(log.nextCommitted(1 << 20), []);
  assert.throws(() => log.appliedTo(4), LogInvariantError);
  log.appliedTo(2);
  assert.equal(log.applied, 3, "never lowered");
});
