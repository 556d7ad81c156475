/**
 * Bringing a follower 100,000 entries behind up to date: by replaying the log, and by a
 * snapshot after the leader compacted. Prints wall time (one core's CPU: the network and
 * storage are instant) and the bytes delivered to the follower for each. Run with
 * `deno run bench/catchup_bench.ts`.
 */
import { CoreCluster } from "./core_cluster.ts";

const BEHIND = 100_000;
const COMMAND = new Uint8Array(128);
/** A state machine of 1,000 keys with 128-byte values, as the snapshot's data. */
const SNAPSHOT = new Uint8Array(1000 * (8 + 128));

function catchUp(withSnapshot: boolean): { ms: number; bytes: number; messages: string } {
  const c = new CoreCluster(3, 7, { maxAppendBytes: 1 << 20, snapshotChunkBytes: 1 << 20 });
  const leader = c.elect();
  c.cut.add("s2");
  for (let i = 0; i < BEHIND; i += 1000) {
    for (let k = 0; k < 1000; k++) leader.propose(COMMAND);
    c.pump();
  }
  if (withSnapshot) leader.compact(leader.status().commit, SNAPSHOT);
  c.pump();
  c.cut.delete("s2");
  const before = c.bytesIn.get("s2") ?? 0;
  const t0 = performance.now();
  // Heartbeats find the follower behind and drive the catch-up.
  let ticks = 0;
  while (c.cores[2].status().commit < BEHIND) {
    c.tick();
    if (++ticks > 10_000) throw new Error("follower did not catch up");
  }
  const ms = performance.now() - t0;
  c.verify();
  return { ms, bytes: (c.bytesIn.get("s2") ?? 0) - before, messages: `${ticks} ticks` };
}

if (import.meta.main) {
  catchUp(false); // warm up the JIT
  const replay = catchUp(false);
  const snap = catchUp(true);
  const mb = (b: number) => (b / 1e6).toFixed(2);
  console.log(`follower ${BEHIND.toLocaleString("en-US")} entries (128 B each) behind:`);
  console.log(`  log replay: ${replay.ms.toFixed(1)} ms, ${mb(replay.bytes)} MB delivered`);
  console.log(
    `  snapshot  : ${snap.ms.toFixed(1)} ms, ${mb(snap.bytes)} MB delivered (snapshot ${
      mb(SNAPSHOT.length)
    } MB)`,
  );
  console.log(
    `  ratio     : snapshot takes ${(snap.ms / replay.ms).toFixed(2)}× the time and ${
      (snap.bytes / replay.bytes).toFixed(3)
    }× the bytes of log replay`,
  );
}
