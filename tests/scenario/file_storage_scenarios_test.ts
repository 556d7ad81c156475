// The crash/restart scenarios of the simulator against FileStorage in a temp directory: the
// same checks as with MemoryStorage (safety after every step, agreement, nothing committed
// lost), but every save goes through the write-ahead log and every restart recovers from the
// files. Virtual time waits while a save is on the disk. Exact seed replay is promised for
// MemoryStorage only: real I/O finishes in its own order.
import assert from "node:assert/strict";
import { FileStorage } from "../../src/storage/file_storage.ts";
import { intCommand, SimCluster } from "../../src/testing/sim_cluster.ts";

async function withFileCluster(
  servers: number,
  snapshotEvery: number,
  body: (c: SimCluster) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "floe-sim-" });
  const c = await SimCluster.create({
    servers,
    seed: 5,
    snapshotEvery,
    storage: (i) => FileStorage.open(`${root}/s${i}`, { onWarning: () => {} }),
  });
  try {
    await body(c);
  } finally {
    await c.cleanup();
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("FileStorage in the simulator: basic persistence (crash and restart all, leader, follower)", async () => {
  await withFileCluster(3, 0, async (c) => {
    await c.one(intCommand(11), 3, true);
    for (let i = 0; i < 3; i++) await c.crash1(i);
    for (let i = 0; i < 3; i++) {
      await c.start1(i);
      c.connect(i);
      // What it recovered came from its files.
      assert.equal(c.node(i)!.status().lastIndex, 1, `s${i} did not recover its log`);
    }
    await c.one(intCommand(12), 3, true);
    const leader = await c.checkOneLeader();
    await c.crash1(leader);
    await c.one(intCommand(13), 2, true);
    await c.start1(leader);
    c.connect(leader);
    await c.one(intCommand(14), 3, true);
    const follower = (await c.checkOneLeader() + 1) % 3;
    await c.crash1(follower);
    await c.one(intCommand(15), 2, true);
    await c.start1(follower);
    c.connect(follower);
    const last = await c.one(intCommand(16), 3, true);
    assert.equal(last, 6);
  });
});

Deno.test("FileStorage in the simulator: Figure 8 crashes with compaction", async () => {
  await withFileCluster(5, 10, async (c) => {
    await c.one(intCommand(0), 5, true);
    let up = 5;
    for (let iter = 0; iter < 60; iter++) {
      let leader = -1;
      for (let i = 0; i < 5; i++) {
        if (c.node(i) && c.start(i, intCommand(1000 + iter)) !== undefined) leader = i;
      }
      await c.sleep(c.random.chance(0.1) ? c.random.int(500) : c.random.int(13));
      if (leader !== -1) {
        await c.crash1(leader);
        up--;
      }
      if (up < 3) {
        const s = c.random.int(5);
        if (!c.node(s)) {
          await c.start1(s);
          c.connect(s);
          up++;
        }
      }
    }
    for (let i = 0; i < 5; i++) {
      if (!c.node(i)) {
        await c.start1(i);
        c.connect(i);
      }
    }
    await c.one(intCommand(9999), 5, true);
  });
});
