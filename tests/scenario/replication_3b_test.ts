// The 6.5840 lab's part 3B scenarios (log replication), in virtual time.
import assert from "node:assert/strict";
import { commandKey } from "../../src/testing/safety_checker.ts";
import { intCommand, type SimCluster } from "../../src/testing/sim_cluster.ts";
import { withCluster } from "./seeded.ts";

/** The lab's RaftElectionTimeout: the tester's allowance for one election. */
const ELECTION_TIMEOUT = 1000;

function randomInt(c: SimCluster): Uint8Array {
  return intCommand(c.random.int(2 ** 31));
}

Deno.test("3B: basic agreement", async () => {
  await withCluster("3B: basic agreement", { servers: 3 }, async (c) => {
    for (let index = 1; index <= 3; index++) {
      assert.equal(c.nCommitted(index).count, 0, "some have committed before start()");
      const xindex = await c.one(intCommand(index * 100), 3, false);
      assert.equal(xindex, index, `got index ${xindex} but expected ${index}`);
    }
  });
});

Deno.test("3B: RPC byte count", async () => {
  await withCluster("3B: RPC byte count", { servers: 3 }, async (c) => {
    await c.one(intCommand(99), 3, false);
    const bytes0 = c.bytesTotal();
    let sent = 0;
    for (let index = 2; index < 12; index++) {
      const cmd = new Uint8Array(5000);
      for (let k = 0; k < cmd.length; k++) cmd[k] = c.random.int(256);
      const xindex = await c.one(cmd, 3, false);
      assert.equal(xindex, index, `got index ${xindex} but expected ${index}`);
      sent += cmd.length;
    }
    const got = c.bytesTotal() - bytes0;
    const expected = 3 * sent;
    assert.ok(got <= expected + 50_000, `too many RPC bytes; got ${got}, expected ${expected}`);
  });
});

Deno.test("3B: test progressive failure of followers", async () => {
  await withCluster("3B: test progressive failure of followers", { servers: 3 }, async (c) => {
    await c.one(intCommand(101), 3, false);
    // One follower fails: the other two still agree.
    const leader1 = await c.checkOneLeader();
    c.disconnect((leader1 + 1) % 3);
    await c.one(intCommand(102), 2, false);
    await c.sleep(ELECTION_TIMEOUT);
    await c.one(intCommand(103), 2, false);
    // The remaining follower fails too: the leader still accepts, nothing commits.
    const leader2 = await c.checkOneLeader();
    c.disconnect((leader2 + 1) % 3);
    c.disconnect((leader2 + 2) % 3);
    const p = c.start(leader2, intCommand(104));
    assert.ok(p, "leader rejected start()");
    assert.equal(p.index, 4, `expected index 4, got ${p.index}`);
    await c.sleep(2 * ELECTION_TIMEOUT);
    assert.equal(c.nCommitted(p.index).count, 0, `${p.index} committed but no majority`);
  });
});

Deno.test("3B: test failure of leaders", async () => {
  await withCluster("3B: test failure of leaders", { servers: 3 }, async (c) => {
    await c.one(intCommand(101), 3, false);
    const leader1 = await c.checkOneLeader();
    c.disconnect(leader1);
    // The remaining followers elect a new leader.
    await c.one(intCommand(102), 2, false);
    await c.sleep(ELECTION_TIMEOUT);
    await c.one(intCommand(103), 2, false);
    // That leader fails too: no majority, nothing commits, whoever is asked.
    const leader2 = await c.checkOneLeader();
    c.disconnect(leader2);
    for (let i = 0; i < 3; i++) c.start(i, intCommand(104));
    await c.sleep(2 * ELECTION_TIMEOUT);
    assert.equal(c.nCommitted(4).count, 0, "4 committed but no majority");
  });
});

Deno.test("3B: agreement after follower reconnects", async () => {
  await withCluster("3B: agreement after follower reconnects", { servers: 3 }, async (c) => {
    await c.one(intCommand(101), 3, false);
    const leader = await c.checkOneLeader();
    c.disconnect((leader + 1) % 3);
    await c.one(intCommand(102), 2, false);
    await c.one(intCommand(103), 2, false);
    await c.sleep(ELECTION_TIMEOUT);
    await c.one(intCommand(104), 2, false);
    await c.one(intCommand(105), 2, false);
    // The follower returns and catches up.
    c.connect((leader + 1) % 3);
    await c.one(intCommand(106), 3, true);
    await c.sleep(ELECTION_TIMEOUT);
    await c.one(intCommand(107), 3, true);
  });
});

Deno.test("3B: no agreement if too many followers disconnect", async () => {
  await withCluster(
    "3B: no agreement if too many followers disconnect",
    { servers: 5 },
    async (c) => {
      await c.one(intCommand(10), 5, false);
      const leader = await c.checkOneLeader();
      for (let k = 1; k <= 3; k++) c.disconnect((leader + k) % 5);
      const p = c.start(leader, intCommand(20));
      assert.ok(p, "leader rejected start()");
      assert.equal(p.index, 2, `expected index 2, got ${p.index}`);
      await c.sleep(2 * ELECTION_TIMEOUT);
      assert.equal(c.nCommitted(p.index).count, 0, `${p.index} committed but no majority`);
      for (let k = 1; k <= 3; k++) c.connect((leader + k) % 5);
      // The disconnected majority may have chosen a new leader; either way the next entry lands at
      // index 2 (if the uncommitted 20 was discarded) or 3 (if it survived).
      const leader2 = await c.checkOneLeader();
      const p2 = c.start(leader2, intCommand(30));
      assert.ok(p2, "leader2 rejected start()");
      assert.ok(p2.index >= 2 && p2.index <= 3, `unexpected index ${p2.index}`);
      await c.one(intCommand(1000), 5, true);
    },
  );
});

Deno.test("3B: concurrent Start()s", async () => {
  await withCluster("3B: concurrent Start()s", { servers: 3 }, async (c) => {
    let success = false;
    attempts: for (let attempt = 0; attempt < 5; attempt++) {
      if (attempt > 0) await c.sleep(3000); // give the cluster a chance to settle
      const leader = await c.checkOneLeader();
      const first = c.start(leader, intCommand(1));
      if (!first) continue;
      const indexes: number[] = [];
      for (let ii = 0; ii < 5; ii++) {
        const p = c.start(leader, intCommand(100 + ii));
        if (!p || p.term !== first.term) continue attempts;
        indexes.push(p.index);
      }
      for (let j = 0; j < 3; j++) {
        if (c.getState(j)?.term !== first.term) continue attempts; // term changed
      }
      const seen: string[] = [];
      for (const index of indexes) {
        const cmd = await c.wait(index, 3, first.term);
        if (cmd === undefined) continue attempts; // term changed
        seen.push(cmd);
      }
      for (let ii = 0; ii < 5; ii++) {
        assert.ok(seen.includes(commandKey(intCommand(100 + ii))), `cmd ${100 + ii} missing`);
      }
      success = true;
      break;
    }
    assert.ok(success, "term changed too often");
  });
});

Deno.test("3B: rejoin of partitioned leader", async () => {
  await withCluster("3B: rejoin of partitioned leader", { servers: 3 }, async (c) => {
    await c.one(intCommand(101), 3, true);
    // The leader is cut off and takes commands that can never commit.
    const leader1 = await c.checkOneLeader();
    c.disconnect(leader1);
    c.start(leader1, intCommand(102));
    c.start(leader1, intCommand(103));
    c.start(leader1, intCommand(104));
    // The others elect a new leader and commit at the same indexes.
    await c.one(intCommand(103), 2, true);
    const leader2 = await c.checkOneLeader();
    c.disconnect(leader2);
    // The old leader returns while the new one is cut off; its stale entries must lose.
    c.connect(leader1);
    await c.one(intCommand(104), 2, true);
    c.connect(leader2);
    await c.one(intCommand(105), 3, true);
  });
});

Deno.test("3B: leader backs up quickly over incorrect follower logs", async () => {
  await withCluster(
    "3B: leader backs up quickly over incorrect follower logs",
    { servers: 5 },
    async (c) => {
      await c.one(randomInt(c), 5, true);
      // The leader and one follower are cut off from the other three.
      const leader1 = await c.checkOneLeader();
      c.disconnect((leader1 + 2) % 5);
      c.disconnect((leader1 + 3) % 5);
      c.disconnect((leader1 + 4) % 5);
      // Lots of commands that will not commit.
      for (let i = 0; i < 50; i++) c.start(leader1, randomInt(c));
      await c.sleep(ELECTION_TIMEOUT / 2);
      c.disconnect((leader1 + 0) % 5);
      c.disconnect((leader1 + 1) % 5);
      // The other three form a majority and commit lots of commands.
      c.connect((leader1 + 2) % 5);
      c.connect((leader1 + 3) % 5);
      c.connect((leader1 + 4) % 5);
      for (let i = 0; i < 50; i++) await c.one(randomInt(c), 3, true);
      // Now another partitioned leader and one follower.
      const leader2 = await c.checkOneLeader();
      let other = (leader1 + 2) % 5;
      if (leader2 === other) other = (leader2 + 1) % 5;
      c.disconnect(other);
      // More commands that will not commit.
      for (let i = 0; i < 50; i++) c.start(leader2, randomInt(c));
      await c.sleep(ELECTION_TIMEOUT / 2);
      // The original leader and its follower come back with the server cut off last.
      for (let i = 0; i < 5; i++) c.disconnect(i);
      c.connect((leader1 + 0) % 5);
      c.connect((leader1 + 1) % 5);
      c.connect(other);
      // Lots of successful commands to the new group.
      for (let i = 0; i < 50; i++) await c.one(randomInt(c), 3, true);
      // Now everyone.
      for (let i = 0; i < 5; i++) c.connect(i);
      await c.one(randomInt(c), 5, true);
    },
  );
});

Deno.test("3B: RPC counts aren't too high", async () => {
  await withCluster("3B: RPC counts aren't too high", { servers: 3 }, async (c) => {
    let leader = await c.checkOneLeader();
    let total1 = c.rpcTotal();
    assert.ok(
      total1 >= 1 && total1 <= 30,
      `too many or few RPCs (${total1}) to elect initial leader`,
    );
    let total2 = 0;
    let success = false;
    attempts: for (let attempt = 0; attempt < 5; attempt++) {
      if (attempt > 0) await c.sleep(3000); // give the cluster a chance to settle
      leader = await c.checkOneLeader();
      total1 = c.rpcTotal();
      const iters = 10;
      const first = c.start(leader, intCommand(1));
      if (!first) continue;
      const cmds: Uint8Array[] = [];
      for (let i = 1; i < iters + 2; i++) {
        const x = randomInt(c);
        cmds.push(x);
        const p = c.start(leader, x);
        if (!p || p.term !== first.term) continue attempts;
        assert.equal(p.index, first.index + i, "start() failed");
      }
      for (let i = 1; i < iters + 1; i++) {
        const cmd = await c.wait(first.index + i, 3, first.term);
        if (cmd === undefined) continue attempts;
        assert.equal(cmd, commandKey(cmds[i - 1]), "wrong value committed");
      }
      for (let j = 0; j < 3; j++) {
        if (c.getState(j)?.term !== first.term) continue attempts;
      }
      total2 = c.rpcTotal();
      assert.ok(
        total2 - total1 <= (iters + 1 + 3) * 3,
        `too many RPCs (${total2 - total1}) for ${iters} entries`,
      );
      success = true;
      break;
    }
    assert.ok(success, "term changed too often");
    await c.sleep(ELECTION_TIMEOUT);
    const total3 = c.rpcTotal();
    assert.ok(
      total3 - total2 <= 3 * 20,
      `too many RPCs (${total3 - total2}) for 1 second of idleness`,
    );
  });
});
