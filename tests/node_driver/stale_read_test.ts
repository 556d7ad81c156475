// Stale reads with a staleness bound, in virtual time: a follower answers only while it hears
// from a current leader, a leader only while a quorum answers it.
import assert from "node:assert/strict";
import { StaleReadError } from "../../src/node/node_errors.ts";
import { SimCluster } from "../../src/testing/sim_cluster.ts";
import { register, SoloNode } from "./solo_node.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) => new TextDecoder().decode(b);
const Q = new Uint8Array(0);

function isStale(boundMs: number, atLeastMs?: number) {
  return (e: unknown) => {
    assert.ok(e instanceof StaleReadError, String(e));
    assert.equal(e.boundMs, boundMs);
    if (e.lastContactMs !== undefined) {
      assert.ok(e.lastContactMs > boundMs, `contact ${e.lastContactMs} ms ago is within bound`);
      if (atLeastMs !== undefined) assert.ok(e.lastContactMs >= atLeastMs);
    }
    return true;
  };
}

Deno.test("stale read: a follower in touch with the leader answers within the bound", async () => {
  const c = await SimCluster.create({ servers: 3, seed: 5, stateMachine: () => register() });
  try {
    const l = await c.checkOneLeader();
    await c.one(enc("v1"), 3, true);
    for (let i = 0; i < 3; i++) {
      // Heartbeats every 100 ms: contact is never older than that, plus delivery.
      assert.equal(
        dec(await c.node(i)!.read(Q, { consistency: "stale", maxStalenessMs: 150 })),
        "v1",
      );
      const since = c.node(i)!.lastLeaderContactMs();
      assert.ok(since !== undefined && since <= 150, `${c.ids[i]}: ${since}`);
    }
    assert.equal(c.node(l)!.role, "leader");
  } finally {
    await c.cleanup();
  }
});

Deno.test("stale read: a follower cut off from the leader refuses past the bound", async () => {
  const c = await SimCluster.create({ servers: 3, seed: 6, stateMachine: () => register() });
  try {
    const l = await c.checkOneLeader();
    await c.one(enc("v1"), 3, true);
    const f = (l + 1) % 3;
    c.disconnect(f);
    await c.sleep(250);
    // Within the election timeout it still knows the leader, but has not heard it for 250 ms.
    await assert.rejects(
      c.node(f)!.read(Q, { consistency: "stale", maxStalenessMs: 100 }),
      isStale(100, 150),
    );
    assert.equal(
      dec(await c.node(f)!.read(Q, { consistency: "stale", maxStalenessMs: 1000 })),
      "v1",
      "a looser bound is met",
    );
    await c.sleep(2000);
    // By now it gave up on the leader (pre-vote): no leader known, no contact at all.
    await assert.rejects(
      c.node(f)!.read(Q, { consistency: "stale", maxStalenessMs: 10_000 }),
      isStale(10_000),
    );
    // Without a bound, a stale read always answers.
    assert.equal(dec(await c.node(f)!.read(Q, { consistency: "stale" })), "v1");
    c.connect(f);
    await c.sleep(500);
    assert.equal(
      dec(await c.node(f)!.read(Q, { consistency: "stale", maxStalenessMs: 150 })),
      "v1",
    );
  } finally {
    await c.cleanup();
  }
});

Deno.test("stale read: a leader cut off from its followers refuses past the bound", async () => {
  const c = await SimCluster.create({ servers: 3, seed: 7, stateMachine: () => register() });
  try {
    const l = await c.checkOneLeader();
    await c.one(enc("v1"), 3, true);
    const leader = c.node(l)!;
    assert.equal(dec(await leader.read(Q, { consistency: "stale", maxStalenessMs: 150 })), "v1");
    c.disconnect(l);
    await c.sleep(400);
    // Check-quorum has not deposed it yet (its window is 600 ms), but no quorum answered lately.
    assert.equal(leader.role, "leader");
    await assert.rejects(
      leader.read(Q, { consistency: "stale", maxStalenessMs: 200 }),
      isStale(200, 300),
    );
  } finally {
    await c.cleanup();
  }
});

Deno.test("stale read: a single server is its own quorum; bad bounds are refused", async () => {
  const s = await SoloNode.start({ stateMachine: register() });
  try {
    assert.equal(s.node.lastLeaderContactMs(), 0);
    assert.equal(dec(await s.node.read(Q, { consistency: "stale", maxStalenessMs: 0 })), "");
    await assert.rejects(s.node.read(Q, { consistency: "stale", maxStalenessMs: -1 }), RangeError);
    await assert.rejects(
      s.node.read(Q, { consistency: "sometimes" as "stale" }),
      TypeError,
    );
  } finally {
    await s.node.stop();
  }
});
