/**
 * The replicated key-value store under fire: one run per seed of a `SimCluster` of
 * `KvStateMachine`s (5 servers by default) with concurrent `KvSimClient`s doing puts, appends,
 * compare-and-swaps, deletes and linearizable gets, while a fault schedule crashes and restarts
 * servers (leaders most of all), partitions and disconnects them, and makes the network lose,
 * delay and reorder messages, and every server compacts its log into snapshots as it goes. Then
 * the faults heal and the run checks what clients rely on:
 *
 * - the history of every operation, as the clients saw it, is linearizable (`kvModel`);
 * - no acknowledged write is lost: every acknowledged append is in the final value, and no key's
 *   final revision is below that of an acknowledged write to it;
 * - exactly-once: each append's unique token appears exactly once when acknowledged, at most
 *   once otherwise, and one client's tokens in the order it appended them;
 * - every replica converges to the same state, byte for byte.
 *
 * Everything random derives from the seed, so a failing run replays exactly.
 *
 * @module
 */
import { decodeCbor, encodeCbor } from "../kv/kv_cbor.ts";
import { decodeKvCommand } from "../kv/kv_command.ts";
import { KvStateMachine } from "../kv/kv_state_machine.ts";
import { KvSimClient, passTime } from "./kv_sim_client.ts";
import { type KvInput, kvModel, type KvOutput } from "./kv_model.ts";
import { checkLinearizable, HistoryRecorder } from "./linearizability.ts";
import { Random } from "./random.ts";
import { SimCluster } from "./sim_cluster.ts";

/** Options of one `simulateKv` run. */
export interface KvSimulationOptions {
  /** Servers in the cluster, at least 3. Default 5. */
  readonly servers?: number;
  /** Concurrent clients. Default: drawn from the seed, 5 to 8. */
  readonly clients?: number;
  /** Virtual ms of faults before everything heals. Default 12,000. */
  readonly faultMs?: number;
  /**
   * Clients tag writes with sessions. Default true; false makes retried writes apply twice,
   * which the run must then catch.
   */
  readonly sessions?: boolean;
  /** Wall-clock ms the linearizability check may take before the run fails. Default 60,000. */
  readonly checkTimeoutMs?: number;
  /** Called with each trace line (virtual time, then the event) as it happens. */
  readonly onEvent?: (line: string) => void;
}

/** The node settings a run drew from its seed. */
export interface KvSimulationSettings {
  /** Leader heartbeat interval: 50 or 100 ms. */
  readonly heartbeatMs: number;
  /** Shortest election timeout: 3 to 6 heartbeats. */
  readonly electionMinMs: number;
  /** Longest election timeout: twice the shortest. */
  readonly electionMaxMs: number;
  /** Pre-vote on or off. */
  readonly preVote: boolean;
  /** Check-quorum on or off. */
  readonly checkQuorum: boolean;
  /** New leaders commit an empty entry at once, or wait for a proposal. */
  readonly leaderNoop: boolean;
  /** Every server snapshots its store and compacts its log every this many entries. */
  readonly snapshotEvery: number;
  /** Bytes per InstallSnapshot chunk (small ones split a snapshot into many). */
  readonly snapshotChunkBytes: number;
  /** Appends in flight per follower (1 makes replication stop-and-wait). */
  readonly maxInflight: number;
  /** Bytes of commands per append (64 splits nearly every batch). */
  readonly maxAppendBytes: number;
  /** The fault schedule acts every 100 ms plus up to this many (uniformly drawn). */
  readonly faultGapMs: number;
}

/** What one successful run did. Two runs of the same seed give equal reports. */
export interface KvSimulationReport {
  /** The seed. */
  readonly seed: number;
  /** Servers in the cluster. */
  readonly servers: number;
  /** Concurrent clients. */
  readonly clients: number;
  /** Node settings drawn from the seed. */
  readonly settings: KvSimulationSettings;
  /** Virtual time of the whole run, in ms. */
  readonly virtualMs: number;
  /** Operations in the checked history (the final reads included). */
  readonly operations: number;
  /** Operations answered. */
  readonly answered: number;
  /** Operations given up on, their outcome unknown (open in the history). */
  readonly unknown: number;
  /** Appends acknowledged. */
  readonly appends: number;
  /** Attempts after an operation's first. */
  readonly retries: number;
  /** Replies lost on their way to a client (so the client retried a write that had been done). */
  readonly lostReplies: number;
  /** Retried commands a replica's sessions answered without applying them again (the most any replica saw). */
  readonly duplicatesAbsorbed: number;
  /** Fault events: crashes, restarts, partitions, heals, disconnections, network changes. */
  readonly faults: number;
  /** Servers crashed (each restarted later from its persisted state). */
  readonly crashes: number;
  /** Terms in which a leader was elected. */
  readonly leaders: number;
  /** Snapshots replicas loaded (installed from a leader or restored at restart). */
  readonly snapshotsLoaded: number;
  /** Highest log index applied. */
  readonly lastIndex: number;
  /** Wall-clock ms the linearizability check took. */
  readonly checkMs: number;
}

/** A run failed: its message names the seed and how to replay it; `trace` holds the last events. */
export class KvSimulationFailure extends Error {
  /** `seed`: the failing seed; `cause`: what went wrong; `trace`: the events before it. */
  constructor(
    readonly seed: number,
    cause: unknown,
    readonly trace: readonly string[],
    readonly virtualMs: number,
  ) {
    super(
      `seed ${seed}: ${cause instanceof Error ? `${cause.name}: ${cause.message}` : cause} ` +
        `(at virtual ${Math.round(virtualMs)} ms)\n  replay: ${kvReplayCommand(seed)}`,
      { cause },
    );
    this.name = "KvSimulationFailure";
  }
}

/** The command that replays `seed` of the KV simulation exactly. */
export function kvReplayCommand(seed: number): string {
  return `FLOE_SEED=${seed} deno task sim --kv`;
}

/** One append a client issued: its key, its unique token, whether it was acknowledged. */
export interface AppendRecord {
  /** The key appended to. */
  readonly key: string;
  /** The client that appended. */
  readonly client: string;
  /** The appended text, unique in the run and ending with `;`. */
  readonly token: string;
  /** Whether the client got an answer (false: given up on, outcome unknown). */
  readonly acknowledged: boolean;
}

/**
 * Exactly-once and durability of appends to one key whose `value` is final: every acknowledged
 * token appears exactly once, every unacknowledged one at most once, each client's tokens in the
 * order it issued them, and nothing else. `appends` are in the order issued (per client). Returns
 * the problems found, empty when there are none.
 */
export function checkAppendsExactlyOnce(
  value: string,
  appends: readonly AppendRecord[],
): string[] {
  const problems: string[] = [];
  const counts = new Map<string, number>();
  const position = new Map<string, number>();
  const pieces = value.split(";").slice(0, -1).map((t) => `${t};`);
  if (!value.endsWith(";") && value !== "") problems.push(`value ends in a partial token`);
  pieces.forEach((t, i) => {
    counts.set(t, (counts.get(t) ?? 0) + 1);
    if (!position.has(t)) position.set(t, i);
  });
  const issued = new Set<string>();
  const lastByClient = new Map<string, { token: string; at: number }>();
  for (const a of appends) {
    issued.add(a.token);
    const n = counts.get(a.token) ?? 0;
    if (a.acknowledged && n === 0) problems.push(`acknowledged append ${a.token} is lost`);
    if (n > 1) {
      problems.push(
        `append ${a.token} (${a.acknowledged ? "acknowledged" : "outcome unknown"}) appears ` +
          `${n} times`,
      );
    }
    const at = position.get(a.token);
    if (at === undefined) continue;
    const last = lastByClient.get(a.client);
    if (last && last.at > at) {
      problems.push(`${a.client}'s append ${a.token} comes before its earlier ${last.token}`);
    }
    lastByClient.set(a.client, { token: a.token, at });
  }
  for (const t of counts.keys()) {
    if (!issued.has(t)) problems.push(`${JSON.stringify(t)} was never appended`);
  }
  return problems;
}

const LOG_KEYS = ["log/0", "log/1", "log/2"];
const REGISTER_KEYS = ["reg/0", "reg/1", "reg/2", "reg/3"];
const DEFAULT_FAULT_MS = 30_000;
/** Clients and the fault schedule wait in steps this long, so each reacts within a few ms. */
const POLL_MS = 2;
const TRACE_TAIL = 60;
/** After the heal, clients keep going this long, so operations also run on a calm cluster. */
const CALM_MS = 1_500;
/** Virtual time every replica has to catch up with the others after the last operation. */
const CONVERGE_MS = 10_000;

/**
 * Run the KV simulation for `seed`.
 *
 * @throws {KvSimulationFailure} on any failed check, naming the seed and the replay command.
 */
export async function simulateKv(
  seed: number,
  options: KvSimulationOptions = {},
): Promise<KvSimulationReport> {
  if (!Number.isInteger(seed)) throw new RangeError(`simulateKv: seed must be an integer: ${seed}`);
  const setup = new Random(seed).fork();
  const heartbeatMs = setup.pick([50, 100]);
  const electionMinMs = heartbeatMs * (3 + setup.int(4));
  const settings: KvSimulationSettings = {
    heartbeatMs,
    electionMinMs,
    electionMaxMs: 2 * electionMinMs,
    preVote: setup.chance(0.5),
    checkQuorum: setup.chance(0.5),
    leaderNoop: setup.chance(0.5),
    snapshotEvery: setup.pick([5, 10, 25]),
    snapshotChunkBytes: setup.pick([256, 4096, 1 << 20]),
    maxInflight: setup.pick([1, 4, 256]),
    maxAppendBytes: setup.pick([64, 1 << 20]),
    faultGapMs: setup.pick([500, 1100]),
  };
  const servers = options.servers ?? 5;
  const clientCount = options.clients ?? 5 + setup.int(4);
  if (!Number.isInteger(servers) || servers < 3) {
    throw new RangeError(`simulateKv: servers must be an integer ≥ 3: ${servers}`);
  }
  if (!Number.isInteger(clientCount) || clientCount < 1) {
    throw new RangeError(`simulateKv: clients must be a positive integer: ${clientCount}`);
  }
  const run = new KvRun(seed, setup.fork(), settings, options);
  let cluster: SimCluster | undefined;
  try {
    const { snapshotEvery, faultGapMs: _, ...node } = settings;
    cluster = await SimCluster.create({
      servers,
      seed,
      snapshotEvery,
      node: { ...node, tickMs: 10 },
      stateMachine: (i) => run.stateMachine(i),
    });
    return await run.execute(cluster, clientCount);
  } catch (e) {
    const at = cluster?.clock.now() ?? 0;
    await run.stop();
    throw new KvSimulationFailure(seed, e, run.trace.slice(), at);
  } finally {
    await cluster?.cleanup().catch(() => {});
  }
}

/** One run's state: the replicas, the history, the clients' appends and the counts. */
class KvRun {
  readonly trace: string[] = [];
  readonly replicas: KvStateMachine[] = [];
  readonly #duplicates: number[] = [];
  #c: SimCluster | undefined;
  #stopped = false;
  #work: Promise<void> | undefined;
  #snapshotsLoaded = 0;
  #faults = 0;
  #crashes = 0;
  readonly #leaderTerms = new Set<number>();

  constructor(
    readonly seed: number,
    readonly random: Random,
    readonly settings: KvSimulationSettings,
    readonly options: KvSimulationOptions,
  ) {}

  /** Stop the clients (after a failure) and wait for them to finish. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#work?.catch(() => {});
  }

  log(line: string): void {
    const now = this.#c ? Math.round(this.#c.clock.now()) : 0;
    const entry = `[${String(now).padStart(6)} ms] ${line}`;
    this.options.onEvent?.(entry);
    this.trace.push(entry);
    if (this.trace.length > 2 * TRACE_TAIL) this.trace.splice(0, this.trace.length - TRACE_TAIL);
  }

  /** Server `i`'s store, fresh at each start; counts the retries its sessions absorb. */
  stateMachine(i: number) {
    const kv = this.replicas[i] = new KvStateMachine();
    this.#duplicates[i] ??= 0;
    const seen = new Set<string>();
    return {
      apply: (command: Uint8Array, index: number) => {
        const s = decodeKvCommand(command).session;
        if (s) {
          const id = `${s.client}/${s.seq}`;
          if (seen.has(id)) this.#duplicates[i]++;
          seen.add(id);
        }
        return kv.apply(command, index);
      },
      query: (q: Uint8Array) => kv.query(q),
      snapshot: () => kv.snapshot(),
      restore: (data: Uint8Array, index: number) => {
        this.#snapshotsLoaded++;
        kv.restore(data, index);
      },
    };
  }

  async execute(c: SimCluster, clientCount: number): Promise<KvSimulationReport> {
    this.#c = c;
    const s = this.settings;
    this.log(
      `seed ${this.seed}: ${c.n} servers, ${clientCount} clients, heartbeat ${s.heartbeatMs} ms, ` +
        `election ${s.electionMinMs}-${s.electionMaxMs} ms, preVote ${s.preVote}, checkQuorum ` +
        `${s.checkQuorum}, leaderNoop ${s.leaderNoop}, snapshotEvery ${s.snapshotEvery}, ` +
        `chunks ${s.snapshotChunkBytes} B, maxInflight ${s.maxInflight}, maxAppendBytes ` +
        `${s.maxAppendBytes}`,
    );
    const recorder = new HistoryRecorder<KvInput, KvOutput>(() => c.clock.now());
    const appends: AppendRecord[] = [];
    const network = { unreliable: false };
    const clients: KvSimClient[] = [];
    for (let k = 0; k < clientCount; k++) {
      const random = this.random.fork();
      clients.push(
        new KvSimClient(c, {
          id: `c${k}`,
          history: recorder,
          server: k % c.n,
          // Half the clients are patient; the others give up during long outages, leaving
          // operations whose outcome is unknown.
          giveUpAfterMs: k % 2 === 0 ? 60_000 : 3_000 + random.int(3_000),
          attemptTimeoutMs: 150 + random.int(1250),
          pollMs: POLL_MS,
          sessions: this.options.sessions ?? true,
          lose: () => random.chance(network.unreliable ? 0.08 : 0.01),
        }),
      );
    }
    const work = clients.map((client) => this.#clientLoop(client, this.random.fork(), appends));
    this.#work = Promise.all(work).then(() => {
      if (!this.#stopped) throw new Error("clients stopped before the faults ended");
    });
    this.#work.catch(() => {}); // awaited below; a failure meanwhile must not go unhandled
    const nemesis = this.#faultSchedule(
      c,
      this.random.fork(),
      options(this.options).faultMs,
      network,
    );
    // A client failing ends the run at once, as does the schedule failing.
    await Promise.race([nemesis, this.#work]);
    await this.#heal(c, network);
    await passTime(c, CALM_MS);
    this.#stopped = true;
    await this.#work;
    this.log(`clients done; final reads`);

    // Final reads, recorded: the history must explain them too. A write first: without
    // leaderNoop, a leader answers reads only once an entry of its own term has committed, and
    // the clients may have stopped before writing to the last leader elected.
    const reader = new KvSimClient(c, { id: "final", history: recorder });
    if (await reader.put("final", "done") === undefined) {
      throw new Error(`liveness: the final write never finished; servers: ${describeNodes(c)}`);
    }
    const finals = new Map<string, string | null>();
    const finalRevisions = new Map<string, number>();
    for (const key of [...LOG_KEYS, ...REGISTER_KEYS]) {
      const entry = await reader.get(key);
      if (entry === undefined) {
        throw new Error(
          `liveness: the final read of ${key} never finished; servers: ${describeNodes(c)}`,
        );
      }
      finals.set(key, entry === null ? null : new TextDecoder().decode(entry.value));
      if (entry !== null) finalRevisions.set(key, entry.revision);
    }
    await this.#converge(c, finals);
    this.#checkNodes(c);

    // Lost and duplicated writes first: their messages say plainly what went wrong.
    const history = recorder.history();
    const problems: string[] = [];
    for (const key of LOG_KEYS) {
      const mine = appends.filter((a) => a.key === key);
      for (const p of checkAppendsExactlyOnce(finals.get(key) ?? "", mine)) {
        problems.push(`${key}: ${p}`);
      }
    }
    for (const key of REGISTER_KEYS) {
      const acked = ackedRevision(history, key);
      const final = finalRevisions.get(key);
      if (final === undefined) {
        const deleted = history.some((op) => op.input.key === key && op.input.op === "delete");
        if (acked > 0 && !deleted) problems.push(`${key}: absent, but written and never deleted`);
      } else if (final < acked) {
        problems.push(`${key}: final revision ${final} is below acknowledged write's ${acked}`);
      }
    }
    if (problems.length > 0) {
      throw new Error(`lost or duplicated writes:\n  ${problems.join("\n  ")}`);
    }

    const started = performance.now();
    const verdict = checkLinearizable(kvModel, history, {
      timeoutMs: options(this.options).checkTimeoutMs,
    });
    const checkMs = Math.round(performance.now() - started);
    if (verdict.ok !== true) {
      throw new Error(`the history of ${history.length} operations: ${verdict.message}`);
    }
    const sum = (f: (k: KvSimClient) => number) => clients.reduce((n, k) => n + f(k), 0);
    const report: KvSimulationReport = {
      seed: this.seed,
      servers: c.n,
      clients: clientCount,
      settings: this.settings,
      virtualMs: c.clock.now(),
      operations: history.length,
      answered: history.filter((op) => op.return !== Infinity).length,
      unknown: history.filter((op) => op.return === Infinity).length,
      appends: appends.filter((a) => a.acknowledged).length,
      retries: sum((k) => k.stats.retries),
      lostReplies: sum((k) => k.stats.lostReplies),
      duplicatesAbsorbed: Math.max(0, ...this.#duplicates),
      faults: this.#faults,
      crashes: this.#crashes,
      leaders: this.#leaderTerms.size,
      snapshotsLoaded: this.#snapshotsLoaded,
      lastIndex: c.checker.maxCommitted,
      checkMs,
    };
    this.log(`ok: ${JSON.stringify({ ...report, settings: undefined })}`);
    return report;
  }

  async #clientLoop(
    client: KvSimClient,
    random: Random,
    appends: AppendRecord[],
  ): Promise<void> {
    const c = this.#c!;
    let n = 0;
    while (!this.#stopped) {
      const x = random.next();
      const unique = `${client.id}.${++n}`;
      if (x < 0.35) {
        const key = random.pick(LOG_KEYS);
        const token = `${unique};`;
        const r = await client.append(key, token);
        appends.push({ key, client: client.id, token, acknowledged: r !== undefined });
      } else if (x < 0.55) {
        await client.put(random.pick(REGISTER_KEYS), unique);
      } else if (x < 0.63) {
        const key = random.pick(REGISTER_KEYS);
        const cur = await client.get(key);
        if (cur !== undefined) await client.cas(key, cur?.revision ?? 0, unique);
      } else if (x < 0.66) {
        await client.delete(random.pick(REGISTER_KEYS));
      } else {
        await client.get(random.pick(random.chance(0.3) ? LOG_KEYS : REGISTER_KEYS));
      }
      // At least 1 ms: a call at the instant of the previous return would count as concurrent
      // with it, and the checker could reorder them.
      await passTime(c, 1 + random.int(40), POLL_MS);
    }
  }

  #leader(c: SimCluster): number {
    let best = -1;
    let term = -1;
    for (let i = 0; i < c.n; i++) {
      const s = c.getState(i);
      if (s?.isLeader && c.connected(i) && s.term > term) {
        best = i;
        term = s.term;
      }
    }
    if (best >= 0 && !this.#leaderTerms.has(term)) {
      this.#leaderTerms.add(term);
      this.log(`  ${c.ids[best]} leads term ${term}`);
    }
    return best;
  }

  // Random faults until `faultMs` of virtual time have passed. At most two servers (a minority of
  // five) are crashed or disconnected at once; partitions come on top and may leave no majority.
  async #faultSchedule(
    c: SimCluster,
    random: Random,
    faultMs: number,
    network: { unreliable: boolean },
  ): Promise<void> {
    const until = c.clock.now() + faultMs;
    const restartAt = new Map<number, number>();
    let partitioned = false;
    let reordering = false;
    const down = () => {
      let n = 0;
      for (let i = 0; i < c.n; i++) if (c.node(i) === undefined || !c.connected(i)) n++;
      return n;
    };
    const maxDown = (c.n - 1) >> 1;
    while (c.clock.now() < until) {
      await passTime(c, 100 + random.int(this.settings.faultGapMs), POLL_MS);
      for (const [i, at] of restartAt) {
        if (c.clock.now() < at) continue;
        restartAt.delete(i);
        await c.start1(i);
        c.connect(i);
        this.#faults++;
        this.log(`restart ${c.ids[i]}`);
      }
      const leader = this.#leader(c);
      const x = random.next();
      if (x < 0.3) {
        if (down() >= maxDown) continue;
        // Mostly the leader, whose crash strands proposals and reads in flight.
        const up = [...c.ids.keys()].filter((i) => c.node(i) !== undefined && c.connected(i));
        const i = leader >= 0 && random.chance(0.75) ? leader : random.pick(up);
        await c.crash1(i);
        restartAt.set(i, c.clock.now() + 300 + random.int(2500));
        this.#faults++;
        this.#crashes++;
        this.log(`crash ${c.ids[i]}${i === leader ? " (leader)" : ""}`);
      } else if (x < 0.5) {
        const ids = random.shuffle([...c.ids]);
        if (leader >= 0 && random.chance(0.6)) {
          // The leader on the minority side: it keeps taking requests it cannot commit.
          ids.splice(ids.indexOf(c.ids[leader]), 1);
          ids.unshift(c.ids[leader]);
        }
        const cut = 1 + random.int(2);
        const groups = random.chance(0.2) && c.n >= 5
          ? [ids.slice(0, 1), ids.slice(1, 3), ids.slice(3)]
          : [ids.slice(0, cut), ids.slice(cut)];
        c.network.partition(groups);
        partitioned = true;
        this.#faults++;
        this.log(`partition ${groups.map((g) => `[${g.join(" ")}]`).join(" ")}`);
      } else if (x < 0.65) {
        if (!partitioned) continue;
        c.network.heal();
        partitioned = false;
        this.#faults++;
        this.log(`heal partition`);
      } else if (x < 0.75) {
        const cut = [...c.ids.keys()].filter((i) => c.node(i) !== undefined && !c.connected(i));
        if (cut.length > 0) {
          const i = random.pick(cut);
          c.connect(i);
          this.#faults++;
          this.log(`connect ${c.ids[i]}`);
        } else if (down() < maxDown) {
          const i = leader >= 0 && random.chance(0.5) ? leader : random.int(c.n);
          if (c.node(i) === undefined) continue;
          c.disconnect(i);
          this.#faults++;
          this.log(`disconnect ${c.ids[i]}`);
        }
      } else if (x < 0.9) {
        network.unreliable = !network.unreliable;
        c.setUnreliable(network.unreliable);
        this.#faults++;
        this.log(`network ${network.unreliable ? "unreliable" : "reliable"}`);
      } else {
        const on: boolean = !reordering && random.chance(0.5);
        if (on === reordering) continue;
        reordering = on;
        c.setLongReordering(reordering);
        this.#faults++;
        this.log(`long reordering ${reordering ? "on" : "off"}`);
      }
    }
  }

  async #heal(c: SimCluster, network: { unreliable: boolean }): Promise<void> {
    c.network.heal();
    network.unreliable = false;
    c.setUnreliable(false);
    c.setLongReordering(false);
    for (let i = 0; i < c.n; i++) {
      if (c.node(i) === undefined) await c.start1(i);
      c.connect(i);
    }
    this.log(`heal: every server up and connected, network reliable`);
  }

  // Waits until every replica holds the same state, equal to what the final reads saw.
  async #converge(c: SimCluster, finals: Map<string, string | null>): Promise<void> {
    const deadline = c.clock.now() + CONVERGE_MS;
    const same = () => {
      const first = comparableState(this.replicas[0]);
      return this.replicas.every((kv) => equalBytes(comparableState(kv), first));
    };
    while (!same()) {
      if (c.clock.now() > deadline) {
        const applied = this.replicas.map((kv, i) => `${c.ids[i]}@${kv.appliedIndex}`);
        throw new Error(`replicas did not converge within ${CONVERGE_MS} ms: ${applied}`);
      }
      await c.sleep(50);
    }
    for (const [key, value] of finals) {
      const e = this.replicas[0].get(key);
      const held = e === undefined ? null : new TextDecoder().decode(e.value);
      if (held !== value) {
        throw new Error(
          `replicas hold ${key} = ${JSON.stringify(held)}, the final read saw ${
            JSON.stringify(value)
          }`,
        );
      }
    }
    this.log(`all ${c.n} replicas hold the same state`);
  }

  #checkNodes(c: SimCluster): void {
    for (let i = 0; i < c.n; i++) {
      const s = c.node(i)?.status();
      if (s && !s.running) throw new Error(`${c.ids[i]} stopped on an internal error: ${s.error}`);
    }
  }
}

// Each server's role, term, indexes and health, for a failure's message.
function describeNodes(c: SimCluster): string {
  return c.ids.map((id, i) => {
    const s = c.node(i)?.status();
    if (s === undefined) return `${id} down`;
    const prog = s.progress ? ` progress ${JSON.stringify(s.progress)}` : "";
    return `${id} ${s.role} term ${s.term} leader ${s.leader || "-"} commit ${s.commit} applied ` +
      `${s.applied} log ${s.firstIndex}..${s.lastIndex} stable ${s.stabled} snapshot ` +
      `${s.snapshotIndex}${s.running ? "" : ` STOPPED: ${s.error}`}${prog}`;
  }).join("; ");
}

function options(o: KvSimulationOptions) {
  return {
    faultMs: o.faultMs ?? DEFAULT_FAULT_MS,
    checkTimeoutMs: o.checkTimeoutMs ?? 60_000,
  };
}

// The highest revision an acknowledged write to `key` was given (a delete of a present key has
// one too: whatever the key holds at the end must come from a later write).
function ackedRevision(
  history: readonly { input: KvInput; output?: KvOutput }[],
  key: string,
): number {
  let max = 0;
  for (const op of history) {
    if (op.input.key !== key || op.input.op === "get" || op.output === undefined) continue;
    const r = op.output.revision;
    if (r !== undefined && r > max) max = r;
  }
  return max;
}

// A replica's whole state (data, sessions, history) as bytes, without the applied index: a
// replica that loaded a snapshot taken at an empty leader entry counts that entry as applied,
// one that applied the log does not (empty entries never reach the state machine).
function comparableState(kv: KvStateMachine): Uint8Array {
  const state = decodeCbor(kv.snapshot(), "snapshot") as Record<string, unknown>;
  return encodeCbor({ ...state, index: 0 });
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
