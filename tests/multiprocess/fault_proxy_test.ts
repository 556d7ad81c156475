/**
 * Three `floe node` processes whose every peer link goes through a `FaultProxy`, under client
 * load, through bounded episodes of network faults: delay with jitter, dropped chunks (corrupt
 * streams), repeated cuts, a half-open leader (its bytes vanish, the sockets stay open), and a
 * partition of the leader. Safety: the clients' history is linearizable and every acknowledged
 * append is in its ledger exactly once. Liveness: once the faults stop, a write succeeds and
 * every node catches up.
 *
 * Seeded (printed in the test name); FLOE_SEED=<seed> replays the same choices (timing still
 * varies).
 *
 * @module
 */
import { HistoryRecorder } from "../../src/testing/linearizability.ts";
import type { KvInput, KvOutput } from "../../src/testing/kv_model.ts";
import { ProcessCluster } from "../../src/testing/process_cluster.ts";
import { Random } from "../../src/testing/random.ts";
import { checkOutcome, runWorkload } from "./kv_workload.ts";
import { FetchDriver, readValue, SessionWriter } from "./node_http.ts";

const SEED = Number(Deno.env.get("FLOE_SEED") ?? Date.now() % 1_000_000);
const KEYS = ["x", "y", "z"];
const CLIENTS = 4;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One fault episode: start it, it lasts `ms`, then every fault is removed. */
interface Episode {
  readonly name: string;
  readonly ms: number;
  start(cluster: ProcessCluster, target: string, random: Random): () => void;
}

/** The links between `id` and every other node. */
function linksOf(cluster: ProcessCluster, id: string): string[] {
  return cluster.ids.filter((other) => other !== id);
}

const EPISODES: readonly Episode[] = [
  {
    name: "delay 20 ms + jitter 30 ms on every link",
    ms: 2500,
    start(cluster) {
      for (const a of cluster.ids) {
        for (const b of cluster.ids) {
          if (a < b) cluster.linkFaults(a, b, { delayMs: 20, jitterMs: 30 });
        }
      }
      return () => {};
    },
  },
  {
    name: "30% of chunks dropped on the leader's links",
    ms: 2500,
    start(cluster, target) {
      for (const b of linksOf(cluster, target)) cluster.linkFaults(target, b, { dropRate: 0.3 });
      return () => {};
    },
  },
  {
    name: "the leader's links cut every 150-400 ms",
    ms: 2500,
    start(cluster, target, random) {
      let timer: ReturnType<typeof setTimeout>;
      const cut = () => {
        for (const b of linksOf(cluster, target)) cluster.cutLink(target, b);
        timer = setTimeout(cut, 150 + random.int(250));
      };
      cut();
      return () => clearTimeout(timer);
    },
  },
  {
    name: "half-open: the leader's bytes vanish, its sockets stay open",
    ms: 3000,
    start(cluster, target) {
      for (const b of linksOf(cluster, target)) {
        // Whichever side dialed, only the leader's direction is black-holed.
        cluster.proxy(target, b).setFaults({ forward: false });
        cluster.proxy(b, target).setFaults({ backward: false });
      }
      return () => {};
    },
  },
  {
    name: "the leader partitioned from the others",
    ms: 3000,
    start(cluster, target) {
      cluster.partition([target]);
      return () => {};
    },
  },
];

async function currentLeader(cluster: ProcessCluster, random: Random): Promise<string> {
  for (const s of (await cluster.statuses()).values()) if (s.role === "leader") return s.id;
  return random.pick(cluster.ids);
}

Deno.test({
  name: `3 processes behind fault proxies: safe under delay, drops, cuts, half-open links and a ` +
    `partition, live after (seed ${SEED})`,
  async fn() {
    const random = new Random(SEED);
    const cluster = await ProcessCluster.start({ size: 3, proxied: true });
    try {
      await cluster.waitForLeader();
      const urls = cluster.ids.map((id) => cluster.url(id));
      const recorder = new HistoryRecorder<KvInput, KvOutput>();
      const drivers = Array.from({ length: CLIENTS }, () => new FetchDriver(urls, random.fork()));
      let stop!: () => void;
      const work = runWorkload({
        drivers,
        keys: KEYS,
        random: random.fork(),
        recorder,
        stop: new Promise<void>((r) => (stop = r)),
      });
      const log: string[] = [];
      try {
        await sleep(500);
        for (const episode of EPISODES) {
          const target = await currentLeader(cluster, random);
          log.push(`${episode.name} (target ${target})`);
          const end = episode.start(cluster, target, random);
          await sleep(episode.ms);
          end();
          cluster.heal();
          await sleep(700);
        }
      } finally {
        cluster.heal();
        stop();
      }
      const report = await work;
      const context = () =>
        `seed ${SEED}; episodes: ${log.join("; ")}; report ${
          JSON.stringify({ ...report, ledgers: undefined })
        }`;

      // Liveness: with the faults gone, a write goes through and every node catches up.
      const leader = await cluster.waitForLeader({ timeoutMs: 30_000 });
      await new SessionWriter().put(urls, "after-faults", "ok", 30_000);
      const commit = (await cluster.status(leader))!.commit;
      for (const id of cluster.ids) await cluster.waitForApplied(id, commit);

      const { operations } = await checkOutcome({
        recorder,
        keys: KEYS,
        report,
        read: (key) => readValue(cluster.url(leader), key),
        context,
      });
      console.log(
        `seed ${SEED}: ${operations} operations, ${report.completed} answered, ` +
          `${report.ambiguous} writes with unknown outcome, ${report.failedReads} failed reads`,
      );
    } finally {
      await cluster.close();
    }
  },
});
