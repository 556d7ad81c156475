/**
 * Linearizability of five `floe node` processes under a nemesis. Concurrent `FloeClient`s
 * (sessions, retries; three follow the leader, two are pinned to one node whose forwarding they
 * go through) get, put and append over HTTP while the nemesis, for a
 * bounded time, SIGKILLs nodes and restarts them from their directories (at most two down at
 * once), partitions a minority, cuts a node's links, makes its links half-open and slows links
 * down (every peer link goes through a `FaultProxy`). Afterwards: the history recorded by
 * `HistoryRecorder` passes `checkLinearizable` with `kvModel`, every acknowledged append is in
 * its client's ledger exactly once, and the healed cluster takes a write and catches up.
 *
 * Seeded (printed in the test name); FLOE_SEED=<seed> replays the nemesis's and clients' choices
 * (timing still varies). FLOE_NEMESIS_MS sets how long the nemesis runs (default 20,000).
 *
 * @module
 */
import { FloeClient } from "../../src/client/floe_client.ts";
import { HistoryRecorder } from "../../src/testing/linearizability.ts";
import type { KvInput, KvOutput } from "../../src/testing/kv_model.ts";
import { ProcessCluster } from "../../src/testing/process_cluster.ts";
import { Random } from "../../src/testing/random.ts";
import { checkOutcome, type DriverRead, type KvDriver, runWorkload } from "./kv_workload.ts";
import { readValue, SessionWriter } from "./node_http.ts";

const SEED = Number(Deno.env.get("FLOE_SEED") ?? Date.now() % 1_000_000);
const NEMESIS_MS = Number(Deno.env.get("FLOE_NEMESIS_MS") ?? "20000");
const KEYS = ["x", "y", "z"];
const CLIENTS = 5;
const PINNED = 2;
const MAX_DOWN = 2;
/** The nemesis's moves, drawn uniformly: kills and restarts are its main act. */
const ACTIONS = [
  "kill",
  "kill",
  "kill",
  "partition",
  "partition",
  "cut",
  "half-open",
  "half-open",
  "slow",
  "slow",
] as const;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const text = new TextDecoder();

/** `FloeClient` as a workload driver. */
class ClientDriver implements KvDriver {
  constructor(readonly client: FloeClient) {}

  async get(key: string): Promise<DriverRead> {
    const entry = await this.client.get(key);
    return entry === undefined
      ? { value: null }
      : { value: text.decode(entry.value), revision: entry.revision };
  }

  async put(key: string, value: string): Promise<{ revision?: number }> {
    return { revision: (await this.client.put(key, value)).revision };
  }

  async append(key: string, value: string): Promise<{ revision?: number }> {
    return { revision: (await this.client.append(key, value)).revision };
  }
}

/** Runs fault actions until `until`, then undoes every fault and restarts every node. */
async function nemesis(
  cluster: ProcessCluster,
  random: Random,
  until: number,
  log: string[],
): Promise<void> {
  const restarts = new Set<Promise<unknown>>();
  const t0 = performance.now();
  const note = (what: string) =>
    log.push(`${((performance.now() - t0) / 1000).toFixed(1)}s ${what}`);
  let failedRestart: unknown;
  const restartLater = (id: string, ms: number) => {
    // Never rejects: a failed restart is kept and thrown once the nemesis stops.
    const p = sleep(ms).then(async () => {
      note(`restart ${id}`);
      await cluster.startNode(id);
    }).catch((e) => void (failedRestart ??= e)).finally(() => restarts.delete(p));
    restarts.add(p);
  };
  try {
    while (performance.now() < until) {
      const action = random.pick(ACTIONS);
      const ids = cluster.ids;
      const target = random.pick(ids);
      const lasting = 1000 + random.int(2000);
      switch (action) {
        case "kill": { // SIGKILL, restart later
          // A node waiting for its restart is not running.
          const down = ids.length - cluster.running().length;
          if (!cluster.isRunning(target) || down >= MAX_DOWN) break;
          note(`kill -9 ${target}`);
          await cluster.kill(target);
          restartLater(target, lasting);
          break;
        }
        case "partition": { // a minority away
          const side = random.shuffle([...ids]).slice(0, 1 + random.int(2));
          note(`partition ${side.join(",")} for ${lasting} ms`);
          cluster.partition(side);
          await sleep(lasting);
          cluster.heal();
          break;
        }
        case "cut": // cut every link of a node (they reconnect at once)
          note(`cut ${target}'s links`);
          for (const b of ids) if (b !== target) cluster.cutLink(target, b);
          break;
        case "half-open": //: the node's bytes vanish, its sockets stay open
          note(`half-open ${target} for ${lasting} ms`);
          for (const b of ids) {
            if (b === target) continue;
            cluster.proxy(target, b).setFaults({ forward: false });
            cluster.proxy(b, target).setFaults({ backward: false });
          }
          await sleep(lasting);
          cluster.heal();
          break;
        case "slow": // slow, lossy links around a node
          note(`delay and drops around ${target} for ${lasting} ms`);
          for (const b of ids) {
            if (b !== target) {
              cluster.linkFaults(target, b, { delayMs: 30, jitterMs: 40, dropRate: 0.05 });
            }
          }
          await sleep(lasting);
          cluster.heal();
      }
      await sleep(300 + random.int(900));
    }
  } finally {
    cluster.heal();
    while (restarts.size > 0) await Promise.allSettled([...restarts]);
    for (const id of cluster.ids) {
      if (!cluster.isRunning(id)) {
        note(`restart ${id} (end)`);
        await cluster.startNode(id);
      }
    }
    note("healed");
  }
  if (failedRestart !== undefined) throw failedRestart;
}

Deno.test({
  name: `5 processes, ${CLIENTS} FloeClients and a nemesis (kill -9, restarts, partitions, cuts, ` +
    `half-open and slow links): the history is linearizable (seed ${SEED})`,
  async fn() {
    const random = new Random(SEED);
    const cluster = await ProcessCluster.start({ size: 5, proxied: true });
    const urls = cluster.ids.map((id) => cluster.url(id));
    // Most clients know every node and follow the leader; the last two know one node each, so
    // their linearizable reads and writes are forwarded by a follower more often than not.
    const clients = Array.from(
      { length: CLIENTS },
      (_, c) =>
        c < CLIENTS - PINNED
          ? new FloeClient({
            endpoints: random.shuffle([...urls]),
            endpointsById: Object.fromEntries(cluster.ids.map((id) => [id, cluster.url(id)])),
            retry: { attempts: 12, baseMs: 50, maxMs: 1000 },
            timeoutMs: 5000,
          })
          : new FloeClient({
            endpoints: [random.pick(urls)],
            retry: { attempts: 12, baseMs: 50, maxMs: 1000 },
            timeoutMs: 5000,
          }),
    );
    try {
      await cluster.waitForLeader();
      const recorder = new HistoryRecorder<KvInput, KvOutput>();
      let stop!: () => void;
      const work = runWorkload({
        drivers: clients.map((c) => new ClientDriver(c)),
        keys: KEYS,
        random: random.fork(),
        recorder,
        stop: new Promise<void>((r) => (stop = r)),
      });
      const log: string[] = [];
      const t0 = performance.now();
      try {
        await nemesis(cluster, random.fork(), performance.now() + NEMESIS_MS, log);
      } finally {
        stop();
      }
      const report = await work;
      log.push(`${((performance.now() - t0) / 1000).toFixed(1)}s clients done`);
      const context = () =>
        `seed ${SEED}; nemesis: ${log.join("; ")}; report ${
          JSON.stringify({ ...report, ledgers: undefined })
        }`;

      // Healed: a write goes through and every node catches up.
      const at = () => `${((performance.now() - t0) / 1000).toFixed(1)}s`;
      const leader = await cluster.waitForLeader({ timeoutMs: 30_000 });
      log.push(`${at()} leader ${leader}`);
      await new SessionWriter().put(urls, "after-nemesis", "ok", 30_000);
      log.push(`${at()} a write went through`);
      const commit = (await cluster.status(leader))!.commit;
      for (const id of cluster.ids) await cluster.waitForApplied(id, commit);
      log.push(`${at()} all caught up`);

      const { operations, checkMs } = await checkOutcome({
        recorder,
        keys: KEYS,
        report,
        read: (key) => readValue(cluster.url(leader), key),
        context,
      });
      console.log(
        `seed ${SEED}: ${operations} operations (${report.completed} answered, ` +
          `${report.ambiguous} writes with unknown outcome, ${report.failedReads} failed reads), ` +
          `checked in ${checkMs.toFixed(0)} ms\nnemesis: ${log.join("; ")}`,
      );
    } finally {
      for (const c of clients) c.close();
      await cluster.close();
    }
  },
});
