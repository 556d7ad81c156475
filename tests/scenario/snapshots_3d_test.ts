// The 6.5840 lab's part 3D scenarios (log compaction), in virtual time. As in the lab, each
// server's application snapshots its state every 10 applied entries.
import assert from "node:assert/strict";
import { intCommand, type SimCluster } from "../../src/testing/sim_cluster.ts";
import { withCluster } from "./seeded.ts";

const SNAPSHOT_INTERVAL = 10;
/** The lab's MAXLOGSIZE: persisted Raft state, without the snapshot, stays below it. */
const MAX_LOG_SIZE = 2000;

function randomInt(c: SimCluster): Uint8Array {
  return intCommand(c.random.int(2 ** 31));
}

interface Variant {
  readonly disconnect: boolean;
  readonly reliable: boolean;
  readonly crash: boolean;
}

// The loop the lab's five snapshot tests share: a victim falls behind (cut off or crashed)
// while enough commands go by for a snapshot, then rejoins, by InstallSnapshot if needed.
async function snapCommon(c: SimCluster, v: Variant): Promise<void> {
  const servers = 3;
  await c.one(randomInt(c), servers, true);
  let leader1 = await c.checkOneLeader();
  for (let i = 0; i < 30; i++) {
    let victim = (leader1 + 1) % servers;
    let sender = leader1;
    if (i % 3 === 1) {
      sender = (leader1 + 1) % servers;
      victim = leader1;
    }
    if (v.disconnect) {
      c.disconnect(victim);
      await c.one(randomInt(c), servers - 1, true);
    }
    if (v.crash) {
      await c.crash1(victim);
      await c.one(randomInt(c), servers - 1, true);
    }
    // Perhaps enough to get a snapshot.
    const nn = SNAPSHOT_INTERVAL / 2 + c.random.int(SNAPSHOT_INTERVAL);
    for (let k = 0; k < nn; k++) c.start(sender, randomInt(c));
    // Let the appliers catch up with the starts. Without faults every follower keeps up, so
    // no InstallSnapshot is needed in the basic test.
    await c.one(randomInt(c), v.disconnect || v.crash ? servers - 1 : servers, true);
    const size = c.logSize();
    assert.ok(size < MAX_LOG_SIZE, `log size too large: ${size} bytes`);
    if (v.disconnect) {
      // The follower may be behind and need a snapshot to catch up.
      c.connect(victim);
      await c.one(randomInt(c), servers, true);
      leader1 = await c.checkOneLeader();
    }
    if (v.crash) {
      await c.start1(victim);
      c.connect(victim);
      await c.one(randomInt(c), servers, true);
      leader1 = await c.checkOneLeader();
    }
  }
  if (v.disconnect || v.crash) {
    // Victims fell behind compacted logs: some must have caught up by InstallSnapshot.
    assert.ok(c.network.deliveredOfType("snap") > 0, "no InstallSnapshot chunk was delivered");
  }
}

const variants: [string, Variant][] = [
  ["3D: snapshots basic", { disconnect: false, reliable: true, crash: false }],
  ["3D: install snapshots (disconnect)", { disconnect: true, reliable: true, crash: false }],
  ["3D: install snapshots (disconnect+unreliable)", {
    disconnect: true,
    reliable: false,
    crash: false,
  }],
  ["3D: install snapshots (crash)", { disconnect: false, reliable: true, crash: true }],
  ["3D: install snapshots (unreliable+crash)", { disconnect: false, reliable: false, crash: true }],
];

for (const [name, v] of variants) {
  Deno.test(name, async () => {
    await withCluster(
      name,
      { servers: 3, unreliable: !v.reliable, snapshotEvery: SNAPSHOT_INTERVAL },
      (c) => snapCommon(c, v),
    );
  });
}

Deno.test("3D: crash and restart all servers", async () => {
  await withCluster(
    "3D: crash and restart all servers",
    { servers: 3, snapshotEvery: SNAPSHOT_INTERVAL },
    async (c) => {
      await c.one(randomInt(c), 3, true);
      for (let i = 0; i < 5; i++) {
        // Perhaps enough to get a snapshot.
        const nn = SNAPSHOT_INTERVAL / 2 + c.random.int(SNAPSHOT_INTERVAL);
        for (let k = 0; k < nn; k++) await c.one(randomInt(c), 3, true);
        const index1 = await c.one(randomInt(c), 3, true);
        for (let s = 0; s < 3; s++) await c.crash1(s);
        for (let s = 0; s < 3; s++) {
          await c.start1(s);
          c.connect(s);
        }
        const index2 = await c.one(randomInt(c), 3, true);
        assert.ok(index2 >= index1 + 1, `index decreased from ${index1} to ${index2}`);
      }
    },
  );
});

Deno.test("3D: snapshot initialization after crash", async () => {
  await withCluster(
    "3D: snapshot initialization after crash",
    { servers: 3, snapshotEvery: SNAPSHOT_INTERVAL },
    async (c) => {
      await c.one(randomInt(c), 3, true);
      // Enough ops to make a snapshot.
      for (let k = 0; k < SNAPSHOT_INTERVAL + 1; k++) await c.one(randomInt(c), 3, true);
      const restartAll = async () => {
        for (let s = 0; s < 3; s++) await c.crash1(s);
        for (let s = 0; s < 3; s++) {
          await c.start1(s);
          c.connect(s);
        }
      };
      await restartAll();
      // A single op, to get something written back to persistent storage.
      await c.one(randomInt(c), 3, true);
      await restartAll();
      // Another op, to trigger a bug that loses the snapshot on the second restart.
      await c.one(randomInt(c), 3, true);
      for (let s = 0; s < 3; s++) {
        const snap = c.storage(s).snapshot;
        assert.ok(snap && snap.index >= SNAPSHOT_INTERVAL, `server ${s} lost its snapshot`);
      }
    },
  );
});
