// RaftNode.metrics() and the duration histogram.
import assert from "node:assert/strict";
import { DURATION_BUCKETS, DurationHistogram } from "../../src/node/histogram.ts";
import { SimCluster } from "../../src/testing/sim_cluster.ts";
import { SoloNode } from "./solo_node.ts";
import { NotLeaderError } from "../../src/core/errors.ts";

const enc = new TextEncoder();

Deno.test("histogram: counts per bucket (not cumulative), +Inf last, sum and count in seconds", () => {
  const h = new DurationHistogram([0.001, 0.01, 0.1]);
  for (const s of [0, 0.001, 0.0011, 0.05, 0.1, 3, -1]) h.observe(s);
  const snap = h.snapshot();
  assert.deepEqual(snap.bounds, [0.001, 0.01, 0.1]);
  assert.deepEqual(snap.counts, [3, 1, 2, 1]);
  assert.equal(snap.count, 7);
  assert.ok(Math.abs(snap.sum - 3.1521) < 1e-9, String(snap.sum));
  // A snapshot is a copy.
  h.observe(0);
  assert.equal(snap.count, 7);
  assert.throws(() => new DurationHistogram([0.1, 0.01]), RangeError);
  for (let i = 1; i < DURATION_BUCKETS.length; i++) {
    assert.ok(DURATION_BUCKETS[i] > DURATION_BUCKETS[i - 1]);
  }
});

Deno.test("metrics: save and apply durations come from the node's clock", async () => {
  // Each command applied appears to take 2 ms.
  const skew = { by: (_ms: number) => {} };
  const s = await SoloNode.start({ stateMachine: { apply: () => skew.by(2) } });
  skew.by = (ms) => s.skewed.skew += ms;
  try {
    const before = s.node.metrics();
    assert.ok(before.saveDuration.count > 0, "the election's saves were not counted");
    assert.equal(before.saveDuration.sum, 0, "virtual time does not move during a save");
    // Each save now appears to take 3 ms, synchronous or not.
    s.storage.saveMs = 3;
    s.node.start(enc.encode("a"));
    await s.run(20);
    s.storage.hold();
    s.node.start(enc.encode("b"));
    await s.run(20);
    s.storage.release();
    await s.run(20);
    const m = s.node.metrics();
    const saves = m.saveDuration.count - before.saveDuration.count;
    assert.ok(saves >= 2, `${saves} saves`);
    // The held save also lasted the 20 ms it was held: an asynchronous save is timed until its
    // promise resolves.
    assert.ok(
      Math.abs(m.saveDuration.sum - (saves * 0.003 + 0.02)) < 1e-9,
      String(m.saveDuration.sum),
    );
    const b5 = m.saveDuration.bounds.indexOf(0.005);
    const b25 = m.saveDuration.bounds.indexOf(0.025);
    assert.equal(m.saveDuration.counts[b5] - before.saveDuration.counts[b5], saves - 1);
    assert.equal(m.saveDuration.counts[b25] - before.saveDuration.counts[b25], 1);
    assert.equal(m.saveDuration.counts.length, m.saveDuration.bounds.length + 1);
    assert.equal(m.saveDuration.counts.reduce((a, b) => a + b, 0), m.saveDuration.count);
    // One observation per applied batch; both commands applied.
    assert.equal(m.applyDuration.count - before.applyDuration.count, 2);
    assert.ok(Math.abs(m.applyDuration.sum - before.applyDuration.sum - 0.004) < 1e-9);
    assert.equal(m.proposalsCommitted, 2);
    assert.equal(m.proposalsFailed, 0);
    assert.equal(m.leaderChanges, 1);
  } finally {
    s.storage.release();
    await s.node.stop();
  }
});

Deno.test("metrics: leader changes, committed and failed proposals across a failover", async () => {
  const c = await SimCluster.create({ servers: 3, seed: 9 });
  try {
    const l = await c.checkOneLeader();
    const leader = c.node(l)!;
    const p = [1, 2, 3].map((i) => leader.propose(enc.encode(`c${i}`)));
    await c.sleep(200);
    await Promise.all(p);
    const f = (l + 1) % 3;
    assert.throws(() => c.node(f)!.start(enc.encode("x")), NotLeaderError);
    assert.equal(c.node(f)!.metrics().proposalsFailed, 1);
    let m = leader.metrics();
    assert.equal(m.proposalsCommitted, 3);
    assert.equal(m.proposalsFailed, 0);
    for (let i = 0; i < 3; i++) assert.equal(c.node(i)!.metrics().leaderChanges, 1);
    // Proposals on a leader cut off: another leader takes over and overwrites them.
    c.disconnect(l);
    const lost = leader.propose(enc.encode("lost"));
    lost.catch(() => {});
    await c.sleep(2000);
    const l2 = await c.checkOneLeader();
    await c.one(enc.encode("after"), 2, true);
    c.connect(l);
    await c.sleep(1000);
    await assert.rejects(lost);
    m = leader.metrics();
    assert.equal(m.proposalsCommitted, 3);
    assert.equal(m.proposalsFailed, 1);
    assert.equal(m.leaderChanges, 2, "itself, then the new leader");
    assert.equal(c.node(l2)!.metrics().leaderChanges, 2);
  } finally {
    await c.cleanup();
  }
});
