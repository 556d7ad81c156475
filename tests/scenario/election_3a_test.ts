// The 6.5840 lab's part 3A scenarios (leader election), in virtual time.
import assert from "node:assert/strict";
import { withCluster } from "./seeded.ts";

/** The lab's RaftElectionTimeout: the tester's allowance for one election. */
const ELECTION_TIMEOUT = 1000;

Deno.test("3A: initial election", async () => {
  await withCluster("3A: initial election", { servers: 3 }, async (c) => {
    await c.checkOneLeader();
    // Followers hear of the leader within a heartbeat, so terms agree shortly after.
    await c.sleep(50);
    const term1 = c.checkTerms();
    assert.ok(term1 >= 1, `term is ${term1}, but should be at least 1`);
    // With no failures there is no reason for a new election.
    await c.sleep(2 * ELECTION_TIMEOUT);
    const term2 = c.checkTerms();
    assert.equal(term2, term1, "term changed even though there were no failures");
    await c.checkOneLeader();
  });
});

Deno.test("3A: election after network failure", async () => {
  await withCluster("3A: election after network failure", { servers: 3 }, async (c) => {
    const leader1 = await c.checkOneLeader();
    // The leader leaves: a new one must be elected.
    c.disconnect(leader1);
    await c.checkOneLeader();
    // The old leader rejoins: it must not disturb the new one.
    c.connect(leader1);
    const leader2 = await c.checkOneLeader();
    // Without a quorum no leader may be elected.
    c.disconnect(leader2);
    c.disconnect((leader2 + 1) % 3);
    await c.sleep(2 * ELECTION_TIMEOUT);
    c.checkNoLeader();
    // A quorum again: a leader.
    c.connect((leader2 + 1) % 3);
    await c.checkOneLeader();
    c.connect(leader2);
    await c.checkOneLeader();
  });
});

Deno.test("3A: multiple elections", async () => {
  await withCluster("3A: multiple elections", { servers: 7 }, async (c) => {
    await c.checkOneLeader();
    for (let iter = 0; iter < 10; iter++) {
      const i1 = c.random.int(7);
      const i2 = c.random.int(7);
      const i3 = c.random.int(7);
      c.disconnect(i1);
      c.disconnect(i2);
      c.disconnect(i3);
      // Either the current leader is still alive, or the remaining four elect a new one.
      await c.checkOneLeader();
      c.connect(i1);
      c.connect(i2);
      c.connect(i3);
    }
    await c.checkOneLeader();
  });
});
