/**
 * Randomized fault simulation: one run per seed of a `SimCluster` under a random schedule of
 * proposals, disconnections, crashes, partitions and network misbehaviour, with Raft's safety
 * properties checked incrementally at every step (by the cluster's `SafetyChecker`) and liveness
 * and durability checked once the faults stop. Everything random derives from the seed, so a
 * failing run replays exactly with `FLOE_SEED=<seed> deno task sim`.
 *
 * @module
 */
import { Random } from "./random.ts";
import { SimCluster } from "./sim_cluster.ts";

/** Options of one `simulate` run. */
export interface SimulationOptions {
  /** Keep the full event trace in the report. Default false (a failure still carries its tail). */
  readonly trace?: boolean;
  /** Called with each trace line as it happens (for live output). */
  readonly onEvent?: (line: string) => void;
  /** Fault-and-recovery rounds. Default 5. */
  readonly rounds?: number;
  /** Virtual duration of each round's fault phase in ms. Default: drawn in [8000, 15000). */
  readonly faultMs?: number;
}

/** The node settings a run drew from its seed. */
export interface SimulationSettings {
  /** Milliseconds per node tick (always 10). */
  readonly tickMs: number;
  /** Leader heartbeat interval, 50–150 ms. */
  readonly heartbeatMs: number;
  /** Shortest election timeout, 3–6 heartbeats. */
  readonly electionMinMs: number;
  /** Longest election timeout, twice the shortest. */
  readonly electionMaxMs: number;
  /** Pre-vote on or off. */
  readonly preVote: boolean;
  /** Check-quorum (leader step-down and vote leases) on or off. */
  readonly checkQuorum: boolean;
  /** Appends in flight per follower: 1, 2, 8 or 256 (the default). */
  readonly maxInflight: number;
  /** Bytes of commands per append: 32 or 128 (a few entries each), or 1 MiB (the default). */
  readonly maxAppendBytes: number;
  /** Each server's application compacts every this many applied entries (0: never). */
  readonly snapshotEvery: number;
  /** Bytes per InstallSnapshot chunk: tiny (many chunks per transfer) to the 1 MiB default. */
  readonly snapshotChunkBytes: number;
  /** Snapshot chunks in flight per follower. */
  readonly snapshotWindow: number;
}

/** What one successful run did. Two runs of the same seed give equal reports. */
export interface SimulationReport {
  /** The seed the run derived from. */
  readonly seed: number;
  /** Cluster size (3 or 5). */
  readonly servers: number;
  /** Node settings drawn from the seed. */
  readonly settings: SimulationSettings;
  /** Fault-and-recovery rounds run. */
  readonly rounds: number;
  /** Virtual time the run took, fault phases and recoveries, in ms. */
  readonly virtualMs: number;
  /** Proposals a leader accepted (placed in its log). */
  readonly proposals: number;
  /** Proposals offered to a server that was down or not the leader. */
  readonly refused: number;
  /** Highest index any server applied (every server applied up to it at the end). */
  readonly committed: number;
  /** Distinct terms in which a leader was elected. */
  readonly leaders: number;
  /** Servers crashed (and later restarted). */
  readonly crashes: number;
  /** Scheduled events (proposals, faults, repairs) in the fault phases. */
  readonly events: number;
  /** Longest wait, over the recoveries, from healing to a leader (virtual ms). */
  readonly slowestElectionMs: number;
  /** Every event with its virtual time, when `trace` was asked for. */
  readonly trace?: readonly string[];
}

/** A run failed: its message starts with `seed <n>:` and ends with the replay command. */
export class SimulationFailure extends Error {
  /**
   * `seed`: the failing seed; `cause` (kept as the error's `cause`): what went wrong; `trace`:
   * the last events before the failure (all of them when the run was traced); `virtualMs`: when.
   */
  constructor(
    readonly seed: number,
    cause: unknown,
    readonly trace: readonly string[],
    readonly virtualMs: number,
  ) {
    super(
      `seed ${seed}: ${describeError(cause)} (at virtual ${Math.round(virtualMs)} ms)\n` +
        `  replay: ${replayCommand(seed)}`,
      { cause },
    );
    this.name = "SimulationFailure";
  }
}

/** The command that replays `seed` exactly. */
export function replayCommand(seed: number): string {
  return `FLOE_SEED=${seed} deno task sim`;
}

function describeError(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return String(e);
}

/** Fault-and-recovery rounds per run, by default. */
const DEFAULT_ROUNDS = 5;
/** Each round's fault phase lasts [FAULT_MS_MIN, FAULT_MS_MAX) of virtual time, by default. */
const FAULT_MS_MIN = 8_000;
const FAULT_MS_MAX = 15_000;
/** Lines of trace a failure keeps when the run was not traced. */
const FAILURE_TRACE_TAIL = 40;
/**
 * Time allowed to elect a leader after healing: 5 s plus 25 longest election timeouts. Most
 * recoveries elect within one or two timeouts, but the tail is long and legitimate: a server whose
 * log is behind cannot win, yet (without pre-vote) each of its campaigns moves everyone to a new
 * term and restarts their timers, so each round fails with probability up to ~1/2 (a 5-server
 * cluster with 2 such servers, or a split vote). About one recovery in 5,000 went 8 rounds (6 s)
 * without a leader; 25 rounds keep false alarms below ~1e-7 per recovery while a real livelock
 * still fails.
 */
const RECOVERY_LEADER_MS = 5_000;
const RECOVERY_ELECTION_ROUNDS = 25;
/** Virtual time allowed for every server to catch up after the final agreement. */
const RECOVERY_CATCH_UP_MS = 5_000;

type EventKind =
  | "propose"
  | "burst"
  | "churn"
  | "disconnect"
  | "connect"
  | "crash"
  | "restart"
  | "partition"
  | "heal"
  | "unreliable"
  | "reliable"
  | "reorderOn"
  | "reorderOff"
  | "idle";

/**
 * Run one randomized simulation from `seed`: a cluster of 3 or 5 servers with node timing,
 * pre-vote and check-quorum drawn from the seed goes through `rounds` rounds, each a bounded
 * fault phase of random events followed by recovery (network healed and reliable, every server
 * up and connected) in which a leader must emerge, a new command must commit on every server,
 * and every server must apply the same log up to the highest index any server ever applied (so
 * no committed entry was lost).
 *
 * Election Safety, Log Matching, Leader Completeness and State Machine Safety are checked as
 * they can be violated (on every leader change, persist and apply), and after every step the run
 * also fails if a node stopped on an internal error.
 *
 * @example
 * ```ts
 * const report = await simulate(7);
 * console.log(report.committed, "entries committed");
 * ```
 *
 * @throws {SimulationFailure} on any violation or failed check, naming the seed and the replay
 *   command.
 */
export async function simulate(
  seed: number,
  options: SimulationOptions = {},
): Promise<SimulationReport> {
  if (!Number.isInteger(seed)) throw new RangeError(`simulate: seed must be an integer: ${seed}`);
  const setup = new Random(seed).fork();
  const servers = setup.chance(0.5) ? 3 : 5;
  const heartbeatMs = 10 * (5 + setup.int(11));
  const electionMinMs = 10 * Math.round(heartbeatMs * setup.range(3, 6) / 10);
  const settings: SimulationSettings = {
    tickMs: 10,
    heartbeatMs,
    electionMinMs,
    electionMaxMs: 2 * electionMinMs,
    preVote: setup.chance(0.5),
    checkQuorum: setup.chance(0.5),
    maxInflight: setup.pick([1, 2, 8, 256]),
    maxAppendBytes: setup.pick([32, 128, 1 << 20]),
    // Drawn last, so the settings above stay what they were for every seed.
    snapshotEvery: setup.pick([0, 5, 10, 30]),
    snapshotChunkBytes: setup.pick([8, 64, 4096, 1 << 20]),
    snapshotWindow: setup.pick([1, 2, 4]),
  };
  const rounds = options.rounds ?? DEFAULT_ROUNDS;
  if (!Number.isInteger(rounds) || rounds < 1) {
    throw new RangeError(`simulate: rounds must be a positive integer: ${rounds}`);
  }
  if (options.faultMs !== undefined && !(options.faultMs > 0 && Number.isFinite(options.faultMs))) {
    throw new RangeError(`simulate: faultMs must be a positive number: ${options.faultMs}`);
  }
  const faultMs: number[] = [];
  for (let r = 0; r < rounds; r++) {
    faultMs.push(options.faultMs ?? FAULT_MS_MIN + setup.int(FAULT_MS_MAX - FAULT_MS_MIN));
  }
  let cluster: SimCluster;
  try {
    const { snapshotEvery, ...node } = settings;
    cluster = await SimCluster.create({ servers, seed, node, snapshotEvery });
  } catch (e) {
    throw new SimulationFailure(seed, e, [], 0);
  }
  const sim = new Simulation(cluster, setup.fork(), settings, options);
  try {
    sim.log(
      `seed ${seed}: ${servers} servers, heartbeat ${settings.heartbeatMs} ms, election ` +
        `${settings.electionMinMs}-${settings.electionMaxMs} ms, preVote ${settings.preVote}, ` +
        `checkQuorum ${settings.checkQuorum}, maxInflight ${settings.maxInflight}, ` +
        `maxAppendBytes ${settings.maxAppendBytes}, snapshotEvery ${settings.snapshotEvery}, ` +
        `chunks ${settings.snapshotChunkBytes} B x${settings.snapshotWindow}, ${rounds} rounds`,
    );
    for (let r = 1; r <= rounds; r++) {
      sim.log(`round ${r}: faults for ${faultMs[r - 1]} ms`);
      await sim.faults(cluster.clock.now() + faultMs[r - 1]);
      await sim.recover(r);
    }
    const report: SimulationReport = {
      seed,
      servers,
      settings,
      rounds,
      virtualMs: cluster.clock.now(),
      proposals: sim.proposals,
      refused: sim.refused,
      committed: cluster.checker.maxCommitted,
      leaders: sim.leaderTerms.size,
      crashes: sim.crashes,
      events: sim.events,
      slowestElectionMs: sim.slowestElectionMs,
    };
    return options.trace ? { ...report, trace: sim.trace.slice() } : report;
  } catch (e) {
    throw new SimulationFailure(
      seed,
      sim.violation ?? e,
      options.trace ? sim.trace.slice() : sim.trace.slice(-FAILURE_TRACE_TAIL),
      cluster.clock.now(),
    );
  } finally {
    await cluster.cleanup().catch(() => {});
  }
}

/** One run: the cluster, the schedule's random source, the checks, and the counts. */
class Simulation {
  readonly trace: string[] = [];
  readonly leaderTerms = new Set<number>();
  /** The first safety violation, even one a node caught (a failed save stops only that node). */
  violation: unknown = undefined;
  proposals = 0;
  refused = 0;
  crashes = 0;
  events = 0;
  slowestElectionMs = 0;
  #nextCommand = 0;
  readonly #encoder = new TextEncoder();
  readonly #runner: SimRunner;

  constructor(
    readonly c: SimCluster,
    readonly random: Random,
    readonly settings: SimulationSettings,
    readonly options: SimulationOptions,
  ) {
    this.#runner = new SimRunner(c, random);
    // Wrap every check of the cluster's checker, whatever its methods are, to record the first
    // violation; and count elections on the way.
    const checker = c.checker as unknown as Record<string, unknown>;
    const proto = Object.getPrototypeOf(c.checker) as object;
    for (const name of Object.getOwnPropertyNames(proto)) {
      const method = Object.getOwnPropertyDescriptor(proto, name)?.value;
      if (name === "constructor" || typeof method !== "function") continue;
      checker[name] = (...args: unknown[]): unknown => {
        if (name === "leaderElected") this.#elected(String(args[0]), Number(args[1]));
        try {
          return method.apply(c.checker, args);
        } catch (e) {
          this.violation ??= e;
          throw e;
        }
      };
    }
  }

  #elected(server: string, term: number): void {
    if (this.leaderTerms.has(term)) return;
    this.leaderTerms.add(term);
    this.log(`  ${server} elected leader of term ${term}`);
  }

  /** Add a line to the trace, stamped with the virtual time. */
  log(line: string): void {
    const entry = `[${String(Math.round(this.c.clock.now())).padStart(6)} ms] ${line}`;
    this.options.onEvent?.(entry);
    const trace = this.trace;
    trace.push(entry);
    if (!this.options.trace && trace.length > 2 * FAILURE_TRACE_TAIL) {
      trace.splice(0, trace.length - FAILURE_TRACE_TAIL);
    }
  }

  /** Fail on a recorded violation or a node stopped by an internal error. */
  check(): void {
    if (this.violation !== undefined) throw this.violation;
    const c = this.c;
    for (let i = 0; i < c.n; i++) {
      const node = c.node(i);
      if (node === undefined) continue;
      const s = node.status();
      if (!s.running) throw new Error(`${c.ids[i]} stopped on an internal error: ${s.error}`);
    }
  }

  async #sleep(ms: number): Promise<void> {
    await this.c.sleep(ms);
    this.check();
  }

  #propose(i: number): void {
    const cmd = `${this.c.seed}:${++this.#nextCommand}`;
    const p = this.c.start(i, this.#encoder.encode(cmd));
    if (p) {
      this.proposals++;
      this.log(`  ${this.c.ids[i]} accepted ${cmd} at index ${p.index} term ${p.term}`);
    } else this.refused++;
  }

  async #crash(i: number): Promise<void> {
    await this.c.crash1(i);
    this.crashes++;
  }

  /** Random events until virtual time `until`, checking after each. */
  async faults(until: number): Promise<void> {
    const c = this.c;
    const runner = this.#runner;
    const random = this.random;
    while (c.clock.now() < until) {
      await this.#sleep(runner.nextDelay());
      const kind = runner.pickEvent();
      const n = ++this.events;
      switch (kind) {
        case "propose": {
          const i = runner.proposalTarget();
          this.log(`#${n} propose to ${c.ids[i]}`);
          this.#propose(i);
          break;
        }
        case "burst": {
          const i = runner.proposalTarget();
          const k = 2 + random.int(15);
          this.log(`#${n} burst of ${k} proposals to ${c.ids[i]}`);
          for (let j = 0; j < k; j++) this.#propose(i);
          break;
        }
        case "churn": {
          // A leader takes proposals and fails while they are only partly replicated: the
          // situation of the paper's Figure 8, which needs the commit rule of §5.4.2.
          const i = random.pick(runner.where((j) => c.connected(j) && runner.isLeader(j)));
          const k = 1 + random.int(4);
          this.log(`#${n} churn: ${k} proposals to leader ${c.ids[i]}, then it fails`);
          for (let j = 0; j < k; j++) this.#propose(i);
          await this.#sleep(random.next() * (runner.unreliable ? 15 : 1));
          if (random.chance(0.6)) {
            await this.#crash(i);
            this.log(`  crash ${c.ids[i]}${runner.downSummary()}`);
          } else {
            c.disconnect(i);
            this.log(`  disconnect ${c.ids[i]}${runner.downSummary()}`);
          }
          break;
        }
        case "disconnect": {
          const i = runner.faultTarget((j) => c.node(j) !== undefined && c.connected(j));
          c.disconnect(i);
          this.log(`#${n} disconnect ${c.ids[i]}${runner.downSummary()}`);
          break;
        }
        case "connect": {
          const i = random.pick(runner.where((j) => c.node(j) !== undefined && !c.connected(j)));
          c.connect(i);
          this.log(`#${n} connect ${c.ids[i]}${runner.downSummary()}`);
          break;
        }
        case "crash": {
          const i = runner.faultTarget((j) => c.node(j) !== undefined);
          await this.#crash(i);
          this.log(`#${n} crash ${c.ids[i]}${runner.downSummary()}`);
          break;
        }
        case "restart": {
          const i = random.pick(runner.where((j) => c.node(j) === undefined));
          await c.start1(i);
          c.connect(i);
          this.log(`#${n} restart ${c.ids[i]}${runner.downSummary()}`);
          break;
        }
        case "partition": {
          const groups = runner.randomGroups();
          c.network.partition(groups);
          runner.partitioned = true;
          this.log(`#${n} partition ${groups.map((g) => `[${g.join(" ")}]`).join(" ")}`);
          break;
        }
        case "heal":
          c.network.heal();
          runner.partitioned = false;
          this.log(`#${n} heal partition`);
          break;
        case "unreliable":
        case "reliable":
          runner.unreliable = kind === "unreliable";
          c.setUnreliable(runner.unreliable);
          this.log(`#${n} network ${kind}`);
          break;
        case "reorderOn":
        case "reorderOff":
          runner.reordering = kind === "reorderOn";
          c.setLongReordering(runner.reordering);
          this.log(`#${n} long reordering ${runner.reordering ? "on" : "off"}`);
          break;
        case "idle":
          break;
      }
      this.check();
    }
  }

  /**
   * End the faults and require liveness and durability: a leader soon, a new command committed
   * on every server, and every server applying, identically, every index any server applied.
   */
  async recover(round: number): Promise<void> {
    const c = this.c;
    const runner = this.#runner;
    this.log(`recovery ${round}: heal, reliable, every server up and connected`);
    c.network.heal();
    c.setUnreliable(false);
    c.setLongReordering(false);
    runner.partitioned = runner.unreliable = runner.reordering = false;
    for (let i = 0; i < c.n; i++) {
      if (c.node(i) === undefined) await c.start1(i);
      if (!c.connected(i)) c.connect(i);
    }
    this.check();

    const leaderMs = RECOVERY_LEADER_MS + RECOVERY_ELECTION_ROUNDS * this.settings.electionMaxMs;
    const healed = c.clock.now();
    let leader = -1;
    while (leader === -1) {
      await this.#sleep(20);
      leader = runner.currentLeader();
      if (leader === -1 && c.clock.now() - healed > leaderMs) {
        throw new Error(`liveness: no leader within ${leaderMs} ms of recovery ${round}`);
      }
    }
    const waited = Math.round(c.clock.now() - healed);
    if (waited > this.slowestElectionMs) this.slowestElectionMs = waited;
    this.log(
      `recovery ${round}: ${c.ids[leader]} leads term ${
        c.getState(leader)!.term
      } after ${waited} ms`,
    );

    const index = await c.one(this.#encoder.encode(`${c.seed}:round-${round}`), c.n, true);
    this.check();
    this.log(`recovery ${round}: a new command committed on all servers at index ${index}`);

    const checker = c.checker;
    const catchUpDeadline = c.clock.now() + RECOVERY_CATCH_UP_MS;
    for (;;) {
      const target = checker.maxCommitted;
      const count = c.nCommitted(target).count;
      if (count === c.n) break;
      if (c.clock.now() > catchUpDeadline) {
        throw new Error(
          `liveness: only ${count} of ${c.n} servers applied index ${target} within ` +
            `${RECOVERY_CATCH_UP_MS} ms of the agreement in recovery ${round}`,
        );
      }
      await this.#sleep(20);
    }
    const committed = checker.maxCommitted;
    for (let i = 1; i <= committed; i++) {
      const first = checker.appliedAt(i);
      const now = c.nCommitted(i);
      if (first === undefined || now.count !== c.n || now.command !== first.key) {
        throw new Error(
          `committed entry lost: index ${i} was applied as ${JSON.stringify(first?.key)}, ` +
            `but after recovery ${round} ${now.count} of ${c.n} servers hold ` +
            JSON.stringify(now.command),
        );
      }
    }
    this.log(`recovery ${round}: all ${c.n} servers applied indexes 1..${committed} identically`);
  }
}

/** The schedule's state and choices; all randomness from `random`. */
class SimRunner {
  partitioned = false;
  unreliable = false;
  reordering = false;

  constructor(readonly c: SimCluster, readonly random: Random) {}

  /** Whether server `i` is up and believes it leads. */
  isLeader(i: number): boolean {
    return this.c.getState(i)?.isLeader === true;
  }

  /** Servers matching `pred`, by number. */
  where(pred: (i: number) => boolean): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.c.n; i++) if (pred(i)) out.push(i);
    return out;
  }

  /** Servers crashed or disconnected. */
  down(): number {
    return this.where((i) => this.c.node(i) === undefined || !this.c.connected(i)).length;
  }

  downSummary(): string {
    const c = this.c;
    const parts = this.where((i) => c.node(i) === undefined || !c.connected(i)).map((i) =>
      c.node(i) === undefined ? `${c.ids[i]}(crashed)` : c.ids[i]
    );
    return ` (down: ${parts.length === 0 ? "none" : parts.join(" ")})`;
  }

  /** Milliseconds to the next event: log-uniform over 2..300, so mostly short gaps. */
  nextDelay(): number {
    return Math.round(Math.exp(this.random.range(Math.log(2), Math.log(300))));
  }

  /** A server to fail among those matching `pred`: often a leader (to force elections). */
  faultTarget(pred: (i: number) => boolean): number {
    const candidates = this.where(pred);
    const leaders = candidates.filter((i) => this.isLeader(i));
    if (leaders.length > 0 && this.random.chance(0.5)) return this.random.pick(leaders);
    return this.random.pick(candidates);
  }

  /** A server to propose to: usually one that claims to lead, else any. */
  proposalTarget(): number {
    const leaders = this.where((i) => this.isLeader(i));
    if (leaders.length > 0 && this.random.chance(0.7)) return this.random.pick(leaders);
    return this.random.int(this.c.n);
  }

  /**
   * The next event, weighted by what the cluster's state allows. Failures beyond a minority are
   * rare but possible, and repairs grow likelier the more is broken.
   */
  pickEvent(): EventKind {
    const c = this.c;
    const n = c.n;
    const minority = (n - 1) >> 1;
    const down = this.down();
    const running = this.where((i) => c.node(i) !== undefined);
    const runningConnected = running.filter((i) => c.connected(i)).length;
    const runningDisconnected = running.length - runningConnected;
    const crashed = n - running.length;
    const leaders = running.filter((i) => c.connected(i) && this.isLeader(i)).length;
    // Failing one more server: common within a minority, rare beyond it, never all of them.
    const failWeight = down < minority ? 1 : down < n - 1 ? 0.08 : 0;
    const repairBoost = down > minority ? 4 : 1;
    const weights: [EventKind, number][] = [
      ["propose", 30],
      ["burst", 6],
      ["idle", 4],
      ["disconnect", runningConnected > 0 ? 7 * failWeight : 0],
      ["crash", running.length > 0 ? 6 * failWeight : 0],
      ["churn", leaders > 0 ? 4 * failWeight : 0],
      ["connect", runningDisconnected > 0 ? 7 * repairBoost : 0],
      ["restart", crashed > 0 ? 7 * repairBoost : 0],
      ["partition", this.partitioned ? 1 : 3],
      ["heal", this.partitioned ? 5 : 0],
      ["unreliable", this.unreliable ? 0 : 2],
      ["reliable", this.unreliable ? 3 : 0],
      ["reorderOn", this.reordering ? 0 : 0.5],
      ["reorderOff", this.reordering ? 3 : 0],
    ];
    let total = 0;
    for (const [, w] of weights) total += w;
    let x = this.random.next() * total;
    for (const [kind, w] of weights) {
      x -= w;
      if (x < 0 && w > 0) return kind;
    }
    return "idle";
  }

  /** A random partition of every server into 2 (or, with 5 servers, sometimes 3) groups. */
  randomGroups(): string[][] {
    const c = this.c;
    const k = c.n >= 5 && this.random.chance(0.3) ? 3 : 2;
    const ids = this.random.shuffle([...c.ids]);
    // Often put a leader first, so it lands in the first (possibly minority) group.
    const leader = ids.findIndex((id) => this.isLeader(c.ids.indexOf(id)));
    if (leader > 0 && this.random.chance(0.5)) [ids[0], ids[leader]] = [ids[leader], ids[0]];
    // Cut points keep every group non-empty.
    const cuts = new Set<number>();
    while (cuts.size < k - 1) cuts.add(1 + this.random.int(ids.length - 1));
    const sorted = [0, ...[...cuts].sort((a, b) => a - b), ids.length];
    const groups: string[][] = [];
    for (let g = 0; g + 1 < sorted.length; g++) groups.push(ids.slice(sorted[g], sorted[g + 1]));
    return groups;
  }

  /** The server leading the highest term any server is in, or -1 when there is none yet. */
  currentLeader(): number {
    const c = this.c;
    let maxTerm = -1;
    let leader = -1;
    for (let i = 0; i < c.n; i++) {
      const s = c.getState(i);
      if (s === undefined) continue;
      if (s.term > maxTerm) {
        maxTerm = s.term;
        leader = s.isLeader ? i : -1;
      } else if (s.term === maxTerm && s.isLeader) leader = i;
    }
    return leader;
  }
}
