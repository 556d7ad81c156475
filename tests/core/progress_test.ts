/**
 * Unit tests of `Progress` and `Inflights` (src/core/progress.ts): the leader's per-follower
 * replication state — probing, pipelining within a window, and backing off on rejections.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Inflights, Progress } from "../../src/core/progress.ts";

Deno.test("Inflights: fills up to capacity, then refuses", () => {
  const inf = new Inflights(3);
  assert.equal(inf.count, 0);
  assert.equal(inf.full(), false);
  inf.add(5);
  inf.add(7);
  inf.add(9);
  assert.equal(inf.count, 3);
  assert.equal(inf.full(), true);
  assert.throws(() => inf.add(11));
});

Deno.test("Inflights: freeLE forgets every append acknowledged, oldest first", () => {
  const inf = new Inflights(4);
  for (const last of [2, 4, 6, 8]) inf.add(last);
  inf.freeLE(1);
  assert.equal(inf.count, 4, "nothing acknowledged");
  inf.freeLE(5);
  assert.equal(inf.count, 2, "appends ending at 2 and 4 freed");
  inf.freeLE(6);
  assert.equal(inf.count, 1);
  // The ring wraps around.
  inf.add(10);
  inf.add(12);
  inf.add(14);
  assert.equal(inf.full(), true);
  inf.freeLE(12);
  assert.equal(inf.count, 1);
  inf.freeLE(100);
  assert.equal(inf.count, 0);
  inf.freeLE(100);
  assert.equal(inf.count, 0);
});

Deno.test("Inflights: freeFirst frees one slot; reset frees all", () => {
  const inf = new Inflights(2);
  inf.freeFirst();
  assert.equal(inf.count, 0, "freeFirst on an empty window is harmless");
  inf.add(1);
  inf.add(2);
  assert.equal(inf.full(), true);
  inf.freeFirst();
  assert.equal(inf.full(), false);
  assert.equal(inf.count, 1);
  inf.add(3);
  inf.freeLE(2);
  assert.equal(inf.count, 1, "the append ending at 3 is still out");
  inf.reset();
  assert.equal(inf.count, 0);
});

Deno.test("Progress: probe sends one append at a time", () => {
  const pr = new Progress(11, 4);
  assert.equal(pr.state, "probe");
  assert.equal(pr.isPaused(), false);
  pr.sent(15);
  assert.equal(pr.isPaused(), true, "waits for the answer to the probe");
  assert.equal(pr.next, 11, "a probe does not move next");
  assert.equal(pr.inflights.count, 0);
});

Deno.test("Progress: an acknowledgement moves probe to replicate", () => {
  const pr = new Progress(11, 4);
  pr.sent(15);
  assert.equal(pr.maybeUpdate(15), true);
  assert.equal(pr.match, 15);
  assert.equal(pr.next, 16);
  assert.equal(pr.probeSent, false);
  pr.becomeReplicate();
  assert.equal(pr.state, "replicate");
  assert.equal(pr.next, 16);
  assert.equal(pr.isPaused(), false);
  assert.equal(pr.maybeUpdate(15), false, "old news");
  assert.equal(pr.maybeUpdate(3), false);
  assert.equal(pr.match, 15, "match never lowered");
});

Deno.test("Progress: replicate pipelines up to the window, then pauses", () => {
  const pr = new Progress(1, 3);
  pr.becomeReplicate();
  pr.sent(2);
  pr.sent(4);
  assert.equal(pr.next, 5, "next moves optimistically");
  assert.equal(pr.isPaused(), false);
  pr.sent(6);
  assert.equal(pr.isPaused(), true, "three appends in flight");
  pr.sent(undefined); // an empty append does not take a slot
  assert.equal(pr.inflights.count, 3);
  assert.equal(pr.maybeUpdate(4), true);
  pr.inflights.freeLE(4);
  assert.equal(pr.inflights.count, 1);
  assert.equal(pr.isPaused(), false);
});

Deno.test("Progress: stale rejections are ignored (maybeDecrTo returns false)", () => {
  // Replicate: a rejection at or below match answers an old message.
  const pr = new Progress(1, 8);
  pr.maybeUpdate(10);
  pr.becomeReplicate();
  pr.sent(15);
  assert.equal(pr.maybeDecrTo(10, 0), false);
  assert.equal(pr.maybeDecrTo(7, 0), false);
  assert.equal(pr.next, 16, "unchanged");
  assert.equal(pr.state, "replicate");
  // A real rejection above match falls back to just after match.
  assert.equal(pr.maybeDecrTo(12, 0), true);
  assert.equal(pr.next, 11);

  // Probe: only a rejection of the append just sent (prevIndex = next - 1) counts.
  const probe = new Progress(21, 8);
  probe.sent(25);
  assert.equal(probe.maybeDecrTo(15, 10), false, "not the outstanding probe");
  assert.equal(probe.next, 21);
  assert.equal(probe.isPaused(), true, "still waiting for the real answer");
  assert.equal(probe.maybeDecrTo(20, 19), true);
  assert.equal(probe.next, 20, "one step back without a better hint");
  assert.equal(probe.isPaused(), false, "may probe again");
  assert.equal(probe.maybeDecrTo(20, 5), false, "a duplicate of the same rejection");
});

Deno.test("Progress: hint-driven backoff skips to the hinted index", () => {
  const pr = new Progress(101, 8);
  pr.sent(undefined);
  assert.equal(pr.maybeDecrTo(100, 40), true);
  assert.equal(pr.next, 41, "skip straight past the follower's hint");
  // The hint never moves next above the rejected index ...
  pr.sent(undefined);
  assert.equal(pr.maybeDecrTo(40, 90), true);
  assert.equal(pr.next, 40);
  // ... nor below match + 1.
  const m = new Progress(101, 8);
  m.match = 30;
  m.sent(undefined);
  assert.equal(m.maybeDecrTo(100, 3), true);
  assert.equal(m.next, 31);
});

Deno.test("Progress: becomeProbe / becomeReplicate restart from match + 1", () => {
  const pr = new Progress(1, 2);
  pr.maybeUpdate(5);
  pr.becomeReplicate();
  pr.sent(8);
  pr.sent(9);
  assert.equal(pr.isPaused(), true);
  pr.becomeProbe();
  assert.equal(pr.state, "probe");
  assert.equal(pr.next, 6);
  assert.equal(pr.inflights.count, 0);
  assert.equal(pr.isPaused(), false);
});
