/**
 * The Raft core in a simulated cluster without faults: committed entries per second (one
 * proposal at a time, and batches of 64) and the cost of an election, for 3 and 5 servers. The
 * servers are `RaftCore`s pumped in memory, so this measures the core alone: no clock, storage or
 * transport cost. Run with `deno task bench`; each figure prints beside its target.
 */
import { CoreCluster } from "./core_cluster.ts";

/** Targets, in committed entries per second of one core's CPU. */
const TARGETS = { single: 20_000, batch64: 200_000 };

const clusters: CoreCluster[] = [];
const figures = new Map<string, { entries: number; ms: number; target?: number }>();

function record(name: string, entries: number, ms: number, target?: number) {
  const f = figures.get(name) ?? { entries: 0, ms: 0, target };
  f.entries += entries;
  f.ms += ms;
  figures.set(name, f);
}

const payload = new Uint8Array(128);

for (const n of [3, 5]) {
  const single = new CoreCluster(n, 1);
  const singleLeader = single.elect();
  clusters.push(single);
  Deno.bench(`core, ${n} servers: commit 1 entry (one proposal at a time)`, () => {
    const t0 = performance.now();
    singleLeader.propose(payload);
    single.pump();
    record(`${n} servers, single proposals`, 1, performance.now() - t0, TARGETS.single);
  });

  const batch = new CoreCluster(n, 2);
  const batchLeader = batch.elect();
  clusters.push(batch);
  Deno.bench(`core, ${n} servers: commit a batch of 64 entries`, () => {
    const t0 = performance.now();
    for (let i = 0; i < 64; i++) batchLeader.propose(payload);
    batch.pump();
    record(`${n} servers, batches of 64`, 64, performance.now() - t0, TARGETS.batch64);
  });

  let seed = 100;
  Deno.bench(`core, ${n} servers: elect a leader (pre-vote and vote rounds)`, () => {
    new CoreCluster(n, seed++).elect();
  });
}

globalThis.addEventListener("unload", () => {
  if (figures.size === 0) return;
  // A figure only counts if the work was really done.
  for (const c of clusters) c.verify();
  console.log("\ncommitted entries per second (one core's CPU, 128-byte commands):");
  for (const [name, f] of figures) {
    const rate = Math.round(f.entries / (f.ms / 1000));
    const verdict = f.target === undefined
      ? ""
      : rate >= f.target
      ? "  meets target"
      : "  BELOW target";
    console.log(
      `  ${name.padEnd(28)} ${rate.toLocaleString("en-US").padStart(12)} /s   target ≥ ${
        f.target?.toLocaleString("en-US")
      }${verdict}`,
    );
  }
});
