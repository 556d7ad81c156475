/**
 * RaftNode drives a `RaftCore` with a clock, a `Storage` and a `Transport`: it ticks the core,
 * steps arriving messages, and carries out each `Ready` in the safe order — persist, then send,
 * then apply. The simulator drives this same class in virtual time.
 *
 * @module
 */
import { type CoreStatus, type Proposal, RaftCore } from "../core/raft.ts";
import type { Entry, HardState, Message, NodeId, Ready, Role, Snapshot } from "../core/types.ts";
import type { Storage, StorageUpdate } from "../storage/storage.ts";
import type { Transport } from "../transport/transport.ts";
import { AsyncQueue } from "./async_queue.ts";
import { DeadlineQueue } from "./deadline_queue.ts";
import { type Clock, RealClock } from "./clock.ts";
import { ConfigError, NotLeaderError } from "../core/errors.ts";
import { DurationHistogram, type Histogram } from "./histogram.ts";
import { LeaderContact } from "./leader_contact.ts";
import {
  CommandTooLargeError,
  NodeBusyError,
  ProposalTimeoutError,
  ReadTimeoutError,
  StaleReadError,
} from "./node_errors.ts";
import {
  EventHub,
  type NodeEvent,
  type NodeEventsOptions,
  stateChangeEvents,
} from "./node_events.ts";

/** The application's replicated state: `apply` runs once per committed command, in log order. */
export interface StateMachine {
  /** Apply one committed command; the result goes back to whoever proposed it. */
  apply(command: Uint8Array, index: number): Uint8Array | undefined | void;
  /** Replace the whole state with a snapshot's (one received from the leader, or after a restart). */
  restore?(data: Uint8Array, index: number): void;
  /**
   * The whole state as bytes, reflecting every command applied so far: for `compact`, and for
   * the node's automatic compaction (see `RaftNodeOptions.autoCompact`).
   */
  snapshot?(): Uint8Array;
  /** Answer a read-only query from the current state (used by `read`). */
  query?(query: Uint8Array): Uint8Array | undefined;
}

/**
 * How fresh a `read` must be:
 *
 * - `"linearizable"` (the default): the read sees every write acknowledged before it began. The
 *   leader confirms it still leads with a heartbeat round a quorum answers (ReadIndex), then
 *   waits until its state machine has applied through the commit index it had when the read
 *   arrived. Only the leader serves it (`NotLeaderError` with a hint elsewhere); it costs one
 *   round trip to a quorum, and fails with `ReadTimeoutError` after `proposalTimeoutMs`.
 * - `"stale"`: answered at once from whatever this server has applied, on any server, with no
 *   message sent. It may miss recent writes, and on a server cut off from the cluster it may be
 *   arbitrarily old.
 * - `"stale"` with `maxStalenessMs`: as `"stale"`, but only if this server heard from a current
 *   leader within that many milliseconds — a follower from its leader (an append, heartbeat or
 *   snapshot chunk of the current term), a leader from a quorum of its followers (the check-quorum
 *   evidence). Otherwise `StaleReadError`. A follower still catching up (replaying a backlog or
 *   installing a snapshot) may be further behind than the bound suggests: the bound measures
 *   contact, not how much of the log is applied.
 */
export type ReadConsistency = "linearizable" | "stale";

/** Options of `RaftNode.read`. */
export interface ReadOptions {
  /** Default "linearizable"; see `ReadConsistency`. */
  readonly consistency?: ReadConsistency;
  /** For "stale" reads: refuse with `StaleReadError` unless a current leader was heard within this many ms. */
  readonly maxStalenessMs?: number;
}

/** Bounds of automatic compaction (see `RaftNodeOptions.autoCompact`). */
export interface AutoCompactOptions {
  /** Compact once this many entries were applied since the last snapshot. Default 10,000. */
  readonly logEntries?: number;
  /** Compact once this many bytes of commands were applied since the last snapshot. Default 64 MiB. */
  readonly logBytes?: number;
}

/** What `RaftNode.metrics()` reports; counters count from the node's start. */
export interface NodeMetrics {
  /** Times this server saw the known leader change to another (non-empty) leader. */
  leaderChanges: number;
  /** Proposals made on this server (`start` or `propose`) applied at the place they were given. */
  proposalsCommitted: number;
  /**
   * Proposals made on this server that failed: refused (not leader, too large, busy), or placed
   * in the log but lost to another leader's entry, timed out (not counted again if it commits
   * later), covered by a snapshot with an unknown outcome, or abandoned by `stop()`.
   */
  proposalsFailed: number;
  /** Durations of storage saves (each `Storage.save`, until it returned or its promise resolved). */
  saveDuration: Histogram;
  /**
   * Durations of applying: one observation per step that hands committed entries to the state
   * machine (the whole batch, with `onApply` and the `applied()` streams), and one per snapshot
   * restored.
   */
  applyDuration: Histogram;
}

/** One committed entry as the node applied it. */
export interface AppliedEntry {
  /** Discriminator (snapshots join the stream with log compaction). */
  readonly type: "entry";
  /** Log index. */
  readonly index: number;
  /** Term of the entry. */
  readonly term: number;
  /** The command, as proposed. */
  readonly command: Uint8Array;
  /** What the state machine returned, when there is one. */
  readonly result?: Uint8Array;
}

/** A snapshot the node loaded: the state through `index` replaces everything applied before. */
export interface AppliedSnapshot {
  /** Discriminator. */
  readonly type: "snapshot";
  /** Last index the snapshot covers. */
  readonly index: number;
  /** Term of that entry. */
  readonly term: number;
  /** The application's serialized state, as passed to `compact`. */
  readonly data: Uint8Array;
}

/** Items of the `applied()` stream, in log order. */
export type Applied = AppliedEntry | AppliedSnapshot;

/** A change of term, role or known leader, as `onStateChange` reports it. */
export interface StateChange {
  /** Current term. */
  readonly term: number;
  /** Current role. */
  readonly role: Role;
  /** Known leader, or "" when none. */
  readonly leader: NodeId;
}

/** What `status()` reports. */
export interface NodeStatus extends CoreStatus {
  /** Whether the node is running (false after `stop()` or a fatal error). */
  readonly running: boolean;
  /** The fatal error that stopped the node, if any. */
  readonly error?: string;
}

/** Options of `RaftNode.start`. Times are in milliseconds. */
export interface RaftNodeOptions {
  /** This server's id. */
  readonly id: NodeId;
  /** Every voting member's id (this server's may be included or not). */
  readonly peers: readonly NodeId[];
  /** Where the durable state lives. */
  readonly storage: Storage;
  /** How messages reach the peers. */
  readonly transport: Transport;
  /** Time source. Default: the runtime's clock. */
  readonly clock?: Clock;
  /** Seed for election jitter. Default: drawn at random (pass one to replay a run). */
  readonly seed?: number;
  /** Granularity of the node's timers. Default 10. */
  readonly tickMs?: number;
  /** Interval between a leader's heartbeats. Default 100. */
  readonly heartbeatMs?: number;
  /** Shortest election timeout. Default 300. */
  readonly electionMinMs?: number;
  /** Longest election timeout. Default 600. */
  readonly electionMaxMs?: number;
  /** Pre-vote before starting an election (thesis §9.6). Default true. */
  readonly preVote?: boolean;
  /** Leader steps down without a quorum; leases refuse disruptive votes (thesis §6.2). Default true. */
  readonly checkQuorum?: boolean;
  /** Appends in flight per follower. Default 256. */
  readonly maxInflight?: number;
  /** Bytes of command data per append. Default 1 MiB. */
  readonly maxAppendBytes?: number;
  /** Bytes per InstallSnapshot chunk. Default 1 MiB. */
  readonly snapshotChunkBytes?: number;
  /** Snapshot chunks in flight per follower. Default 4. */
  readonly snapshotWindow?: number;
  /** The replicated application, applied in log order. Optional. */
  readonly stateMachine?: StateMachine;
  /** Called synchronously for each applied item, before the `applied()` stream sees it. */
  readonly onApply?: (item: Applied) => void;
  /**
   * A new leader appends an entry with an empty command, committing its term at once so reads
   * and earlier entries need not wait for a proposal. It appears on `applied()` with an empty
   * command and is not passed to the state machine. Default false (6.5840 numbering): then the
   * first linearizable read of a term with no entry appends the no-op.
   */
  readonly leaderNoop?: boolean;
  /** Called synchronously whenever the term, role or known leader changes. */
  readonly onStateChange?: (change: StateChange) => void;
  /** How far an `applied()` reader may fall behind before its stream fails. Default 100,000. */
  readonly appliedBufferLimit?: number;
  /**
   * How long `propose` waits for its command to be applied before failing with
   * `ProposalTimeoutError` (the command may still commit later), and how long a linearizable
   * `read` waits before `ReadTimeoutError`. In the node's clock (virtual time in a simulation).
   * 0 or Infinity: no timeout. Default 10,000.
   */
  readonly proposalTimeoutMs?: number;
  /** Largest command accepted; larger ones fail with `CommandTooLargeError`. Default 1 MiB. */
  readonly maxCommandBytes?: number;
  /**
   * Most `propose` calls waiting to be applied at once; one more fails with `NodeBusyError`.
   * Linearizable reads waiting are bounded by the same number, counted apart. (`start` does not
   * wait, so it is not counted.) Default 10,000.
   */
  readonly maxPendingProposals?: number;
  /**
   * When the state machine has `snapshot()`, the node compacts by itself once either bound is
   * passed: after applying a batch of entries, it calls `compact(appliedIndex,
   * stateMachine.snapshot())`. Bytes count the commands applied since the last snapshot. Default
   * `{ logEntries: 10_000, logBytes: 64 MiB }`; `false` turns it off (the application may still
   * call `compact`).
   */
  readonly autoCompact?: AutoCompactOptions | false;
}

/** The node was stopped, or a proposal it held can no longer complete. */
export class NodeStoppedError extends Error {
  /** `message` says why; `cause` is the fatal error that stopped the node, if one did. */
  constructor(message = "the node is stopped", options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NodeStoppedError";
  }
}

/**
 * A proposal's outcome cannot be known here: this server loaded a snapshot covering its index
 * (it had lost leadership meanwhile). It may or may not have been applied.
 */
export class ProposalOutcomeUnknownError extends Error {
  /** `index`/`term`: where the proposal had been placed. */
  constructor(readonly index: number, readonly term: number) {
    super(
      `the proposal at index ${index} (term ${term}) is covered by a snapshot; its outcome is unknown`,
    );
    this.name = "ProposalOutcomeUnknownError";
  }
}

/** A proposed command lost its place in the log to another leader's entry; it was not applied. */
export class ProposalLostError extends Error {
  /** `index`/`term`: where the proposal had been placed. */
  constructor(readonly index: number, readonly term: number) {
    super(`the proposal at index ${index} (term ${term}) was overwritten by another leader`);
    this.name = "ProposalLostError";
  }
}

// A linearizable read: first waiting for its read index (ctx in #reads), then for the state
// machine to apply through it (in #applyWaiters).
interface PendingRead {
  readonly ctx: number;
  index: number;
  done: boolean;
  // Its entry in the node's timeout queue, or -1.
  timer: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

// A proposal this server placed in its log; `propose` callers also wait on it.
interface PendingProposal {
  readonly term: number;
  waiter?: {
    readonly resolve: (result: Uint8Array | undefined) => void;
    readonly reject: (error: unknown) => void;
    timer: number;
  };
}

const MiB = 1 << 20;

function positiveLimit(name: string, value: number): number {
  if (value === Infinity) return Infinity;
  if (!Number.isInteger(value) || value < 1) {
    throw new ConfigError(`${name} must be a positive integer or Infinity, got ${value}`);
  }
  return value;
}

function ticks(name: string, ms: number, tickMs: number): number {
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new ConfigError(`${name} must be a positive number of ms`);
  }
  return Math.max(1, Math.round(ms / tickMs));
}

interface ResolvedLimits {
  readonly timeoutMs: number;
  readonly maxCommandBytes: number;
  readonly maxPending: number;
  readonly compactEntries: number;
  readonly compactBytes: number;
}

function resolveLimits(options: RaftNodeOptions): ResolvedLimits {
  const timeout = options.proposalTimeoutMs ?? 10_000;
  if (!(timeout >= 0)) {
    throw new ConfigError(`proposalTimeoutMs must be 0, positive or Infinity, got ${timeout}`);
  }
  const auto = options.autoCompact ?? {};
  return {
    timeoutMs: timeout === 0 ? Infinity : timeout,
    maxCommandBytes: positiveLimit("maxCommandBytes", options.maxCommandBytes ?? MiB),
    maxPending: positiveLimit("maxPendingProposals", options.maxPendingProposals ?? 10_000),
    compactEntries: auto === false
      ? Infinity
      : positiveLimit("autoCompact.logEntries", auto.logEntries ?? 10_000),
    compactBytes: auto === false
      ? Infinity
      : positiveLimit("autoCompact.logBytes", auto.logBytes ?? 64 * MiB),
  };
}

/** One Raft server: the core, driven. Create with `RaftNode.start`. */
export class RaftNode {
  readonly #core: RaftCore;
  readonly #storage: Storage;
  readonly #transport: Transport;
  readonly #clock: Clock;
  readonly #tickMs: number;
  readonly #limits: ResolvedLimits;
  readonly #stateMachine: StateMachine | undefined;
  readonly #onApply: ((item: Applied) => void) | undefined;
  readonly #onStateChange: ((change: StateChange) => void) | undefined;
  #lastState: StateChange = { term: -1, role: "follower", leader: "" };
  readonly #appliedLimit: number;
  readonly #proposals = new Map<number, PendingProposal>();
  #waitingProposals = 0;
  readonly #reads = new Map<number, PendingRead>();
  #applyWaiters: PendingRead[] = [];
  #waitingReads = 0;
  // Reads waiting for the heartbeat round in flight to be answered (see `#readBarrier`), and
  // the tick they started waiting at.
  #heldReads: PendingRead[] = [];
  #heldSince = 0;
  #ticks = 0;
  // Proposal and read timeouts (undefined without a timeout).
  readonly #timeouts: DeadlineQueue | undefined;
  #appliedIndex = 0;
  #snapshotIndex: number;
  #bytesSinceSnapshot = 0;
  #readSeq = 0;
  #streams: AsyncQueue<Applied>[] = [];
  #backlog: AsyncQueue<Applied> | undefined;
  readonly #events = new EventHub();
  readonly #contact = new LeaderContact();
  #leaderChanges = 0;
  #proposalsCommitted = 0;
  #proposalsFailed = 0;
  readonly #saveDuration = new DurationHistogram();
  readonly #applyDuration = new DurationHistogram();
  #running = true;
  #stopped = false;
  #error: unknown = undefined;
  #saving: Promise<void> | undefined;
  // Whether the storage saves asynchronously (learned from its first save).
  #asyncStorage = false;
  // The hard state last given to the storage, and one that only moved the commit index and
  // waits for the next save (see `#storageUpdate`).
  #savedHard: HardState | undefined;
  #unsavedHard: HardState | undefined;
  #idleSaveDue = false;
  // The in-flight save's Ready had its committed entries applied before the save completed.
  #appliedEarly = false;
  #drainQueued = false;
  #cancelTick: (() => void) | undefined;

  private constructor(
    options: RaftNodeOptions,
    core: RaftCore,
    limits: ResolvedLimits,
    snapshotIndex: number,
  ) {
    this.#core = core;
    this.#storage = options.storage;
    this.#transport = options.transport;
    this.#clock = options.clock ?? new RealClock();
    this.#tickMs = options.tickMs ?? 10;
    this.#limits = limits;
    this.#timeouts = limits.timeoutMs === Infinity
      ? undefined
      : new DeadlineQueue(this.#clock, limits.timeoutMs);
    this.#snapshotIndex = snapshotIndex;
    this.#stateMachine = options.stateMachine;
    this.#onApply = options.onApply;
    this.#onStateChange = options.onStateChange;
    this.#appliedLimit = options.appliedBufferLimit ?? 100_000;
    // Until the first reader attaches, applied items wait here so a reader that subscribes right
    // after start() misses nothing (a restarted node re-applies its committed log at once).
    this.#backlog = new AsyncQueue(this.#appliedLimit);
  }

  /** Load the persisted state, then start ticking, receiving and applying. */
  static async start(options: RaftNodeOptions): Promise<RaftNode> {
    const tickMs = options.tickMs ?? 10;
    if (!Number.isFinite(tickMs) || tickMs <= 0) {
      throw new ConfigError(`tickMs must be a positive number, got ${tickMs}`);
    }
    const heartbeatTicks = ticks("heartbeatMs", options.heartbeatMs ?? 100, tickMs);
    const electionTicks = ticks("electionMinMs", options.electionMinMs ?? 300, tickMs);
    const electionTicksMax = ticks("electionMaxMs", options.electionMaxMs ?? 600, tickMs);
    const limits = resolveLimits(options);
    const voters = options.peers.includes(options.id)
      ? options.peers
      : [...options.peers, options.id];
    const persisted = await options.storage.load();
    const core = new RaftCore({
      id: options.id,
      voters,
      seed: options.seed ?? Math.floor(Math.random() * 2 ** 32),
      electionTicks,
      electionTicksMax,
      heartbeatTicks,
      preVote: options.preVote,
      leaderNoop: options.leaderNoop,
      checkQuorum: options.checkQuorum,
      maxInflight: options.maxInflight,
      maxAppendBytes: options.maxAppendBytes,
      snapshotChunkBytes: options.snapshotChunkBytes,
      snapshotWindow: options.snapshotWindow,
    }, persisted);
    const node = new RaftNode(options, core, limits, persisted.snapshot?.index ?? 0);
    node.#savedHard = persisted.hardState;
    node.#transport.listen((messages) => node.#receive(messages));
    node.#scheduleTick();
    node.#drain();
    return node;
  }

  /** This server's id. */
  get id(): NodeId {
    return this.#core.id;
  }

  /**
   * Propose a command as the leader and return at once with where it will sit if it commits
   * (6.5840's `Start`). Throws `NotLeaderError` (with a leader hint) on any other server, and
   * `CommandTooLargeError` past `maxCommandBytes`; nothing is proposed then.
   */
  start(command: Uint8Array): Proposal {
    this.#assertRunning();
    if (command.length > this.#limits.maxCommandBytes) {
      this.#proposalsFailed++;
      throw new CommandTooLargeError(command.length, this.#limits.maxCommandBytes);
    }
    let p: Proposal;
    try {
      p = this.#core.propose(command);
    } catch (e) {
      this.#proposalsFailed++;
      throw e;
    }
    // An index this server placed before and never applied can only come back after its entry
    // was replaced; that proposal is lost.
    this.#settleProposal(p.index, this.#proposals.get(p.index), "lost");
    this.#proposals.set(p.index, { term: p.term });
    // Proposals made in one burst leave in one append per follower.
    this.#queueDrain();
    return p;
  }

  /**
   * Propose a command and wait until it is applied; resolves with the state machine's result.
   * Rejects with `NotLeaderError` or `CommandTooLargeError` (nothing proposed), `NodeBusyError`
   * when `maxPendingProposals` calls are already waiting (nothing proposed; retry later),
   * `ProposalLostError` (another leader's entry took its place: not applied),
   * `ProposalOutcomeUnknownError`, `NodeStoppedError`, or `ProposalTimeoutError` after
   * `proposalTimeoutMs` — a timed-out command may still commit and be applied later, so a retry
   * must be safe to apply twice (for example with the KV layer's sessions).
   */
  propose(command: Uint8Array): Promise<Uint8Array | undefined> {
    let p: Proposal;
    try {
      this.#assertRunning();
      if (this.#waitingProposals >= this.#limits.maxPending) {
        this.#proposalsFailed++;
        throw new NodeBusyError(this.#waitingProposals, this.#limits.maxPending);
      }
      p = this.start(command);
    } catch (e) {
      return Promise.reject(e);
    }
    const pending = this.#proposals.get(p.index)!;
    return new Promise((resolve, reject) => {
      const timer = this.#timeouts === undefined
        ? -1
        : this.#timeouts.add(() => this.#settleProposal(p.index, pending, "timeout"));
      pending.waiter = { resolve, reject, timer };
      this.#waitingProposals++;
    });
  }

  /**
   * Answer `query` from the state machine, as fresh as `options.consistency` asks (see
   * `ReadConsistency`: linearizable by default, or stale with an optional staleness bound).
   * Requires a state machine with `query`. Linearizable reads fail with `NotLeaderError` off the
   * leader, `NodeBusyError` when `maxPendingProposals` reads already wait, and `ReadTimeoutError`
   * after `proposalTimeoutMs`; bounded stale reads fail with `StaleReadError`.
   */
  async read(query: Uint8Array, options: ReadOptions = {}): Promise<Uint8Array | undefined> {
    this.#assertRunning();
    const sm = this.#stateMachine;
    if (!sm?.query) throw new TypeError("read needs a state machine with a query method");
    const consistency = options.consistency ?? "linearizable";
    if (consistency === "stale") {
      if (options.maxStalenessMs !== undefined) this.#checkStaleness(options.maxStalenessMs);
    } else if (consistency === "linearizable") {
      await this.#readBarrier();
      this.#assertRunning();
    } else {
      throw new TypeError(`unknown read consistency: ${String(consistency)}`);
    }
    return sm.query(query);
  }

  /**
   * The barrier of a linearizable `read`, for an application that reads its state machine
   * directly: resolves once the state machine reflects every write acknowledged before the call.
   * Fails like a linearizable `read` (`NotLeaderError` off the leader, `NodeBusyError`,
   * `ReadTimeoutError`, `NodeStoppedError`). Reads that arrive while a heartbeat round is out
   * share the next round.
   */
  async barrier(): Promise<void> {
    this.#assertRunning();
    await this.#readBarrier();
    this.#assertRunning();
  }

  /** Known leader of the current term, or "" when none (cheaper than `status()`). */
  get leader(): NodeId {
    return this.#core.leader;
  }

  /**
   * Milliseconds since this server last heard from a current leader (a leader: since a quorum
   * of its followers last answered; 0 on a single-server cluster), or undefined when it has
   * not in the current term. What `read`'s `maxStalenessMs` is compared with.
   */
  lastLeaderContactMs(): number | undefined {
    const c = this.#core;
    const voters = c.role === "leader" ? c.status().voters : [];
    return this.#contact.sinceContact(c, voters, this.#clock.now());
  }

  /** Term, role, leader, indexes and (on a leader) each peer's replication state. */
  status(): NodeStatus {
    const s = this.#core.status();
    return {
      ...s,
      running: this.#running,
      error: this.#error === undefined ? undefined : String(this.#error),
    };
  }

  /** Current term and whether this server believes it is the leader (6.5840's `GetState`). */
  state(): { term: number; isLeader: boolean } {
    return { term: this.#core.term, isLeader: this.#running && this.#core.role === "leader" };
  }

  /** Counters and duration histograms since start (a copy; see `NodeMetrics`). */
  metrics(): NodeMetrics {
    return {
      leaderChanges: this.#leaderChanges,
      proposalsCommitted: this.#proposalsCommitted,
      proposalsFailed: this.#proposalsFailed,
      saveDuration: this.#saveDuration.snapshot(),
      applyDuration: this.#applyDuration.snapshot(),
    };
  }

  /**
   * Term, role and leader changes as they happen (see `NodeEvent`). The first event is a
   * `"state"` event with the state at subscription. Nothing is dropped silently: a subscriber
   * that leaves more than `bufferLimit` events unread (default 1024) gets `QueueOverflowError`
   * from `next()`. The iterator ends when the node stops; `return()` (leaving a `for await`
   * loop) unsubscribes.
   */
  events(options?: NodeEventsOptions): AsyncIterableIterator<NodeEvent> {
    const c = this.#core;
    return this.#events.subscribe(
      { type: "state", term: c.term, role: c.role, leader: c.leader },
      options,
    );
  }

  /**
   * The save in flight, if the storage is asynchronous and one is (harnesses that run the node
   * in virtual time wait on it); undefined when the node is idle.
   */
  pendingSave(): Promise<void> | undefined {
    return this.#saving;
  }

  /** Current role. */
  get role(): Role {
    return this.#core.role;
  }

  /** Term of the entry at `index` in this server's log, if held (for checkers and tools). */
  logTerm(index: number): number | undefined {
    return this.#core.termAt(index);
  }

  /**
   * Applied entries in order (6.5840's applyCh). The first reader also receives everything
   * applied since start; later readers receive what is applied after they subscribe. A reader
   * that falls `appliedBufferLimit` items behind gets a `QueueOverflowError`.
   */
  applied(): AsyncIterableIterator<Applied> {
    let q: AsyncQueue<Applied>;
    if (this.#backlog) {
      q = this.#backlog;
      this.#backlog = undefined;
    } else {
      q = new AsyncQueue(this.#appliedLimit);
      if (!this.#running) q.close();
    }
    this.#streams.push(q);
    return q;
  }

  /**
   * The application saved its state through `index` as `data` (6.5840's `Snapshot`): the node
   * keeps it as its snapshot and drops the log through `index`. `index` must already be applied
   * (or being applied: calling this from `onApply` or a `StateMachine` is fine). Returns false,
   * changing nothing, when the node already has a snapshot at or past `index`.
   */
  compact(index: number, data: Uint8Array): boolean {
    this.#assertRunning();
    const done = this.#core.compact(index, data);
    if (done) {
      this.#compacted(index);
      this.#queueDrain();
    }
    return done;
  }

  /** Election now, as if the timeout had passed (tools and tests). */
  campaign(): void {
    this.#assertRunning();
    this.#core.campaign();
    this.#drain();
  }

  /**
   * Stop ticking, receiving and sending; reject waiting proposals and reads with
   * `NodeStoppedError`; end `applied()` and `events()` iterators; cancel every timer; wait for
   * an in-flight save; close storage and transport.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#halt(new NodeStoppedError());
    if (this.#saving) await this.#saving.catch(() => {});
    // The commit index not saved yet: a restart then re-applies everything it knew committed.
    const hardState = this.#unsavedHard;
    if (hardState !== undefined && this.#error === undefined) {
      this.#unsavedHard = undefined;
      await Promise.resolve(this.#storage.save({ entries: [], hardState })).catch(() => {});
    }
    await this.#transport.close();
    await this.#storage.close();
  }

  // ---- requests ---------------------------------------------------------------------------------

  // Settle a proposal this server placed at `index`: applied, lost, timed out, covered by a
  // snapshot, or abandoned. Does nothing when `pending` is no longer the one at `index`.
  #settleProposal(
    index: number,
    pending: PendingProposal | undefined,
    outcome: "applied" | "lost" | "timeout" | "unknown" | "stopped",
    result?: Uint8Array,
    stopped?: NodeStoppedError,
  ): void {
    if (pending === undefined || this.#proposals.get(index) !== pending) return;
    this.#proposals.delete(index);
    if (outcome === "applied") this.#proposalsCommitted++;
    else this.#proposalsFailed++;
    const w = pending.waiter;
    if (!w) return;
    pending.waiter = undefined;
    this.#waitingProposals--;
    if (w.timer >= 0) this.#timeouts?.cancel(w.timer);
    switch (outcome) {
      case "applied":
        return w.resolve(result);
      case "lost":
        return w.reject(new ProposalLostError(index, pending.term));
      case "timeout":
        return w.reject(new ProposalTimeoutError(index, pending.term, this.#limits.timeoutMs));
      case "unknown":
        return w.reject(new ProposalOutcomeUnknownError(index, pending.term));
      case "stopped":
        return w.reject(stopped ?? new NodeStoppedError());
    }
  }

  // Resolves once the state machine reflects every write committed before the read arrived.
  // While a heartbeat round is out for earlier reads, new ones are held and share the next
  // round, started as soon as that one is answered (etcd batches its ReadIndex requests alike):
  // a round confirms leadership after every read in it arrived, so each stays linearizable.
  #readBarrier(): Promise<void> {
    if (this.#waitingReads >= this.#limits.maxPending) {
      return Promise.reject(new NodeBusyError(this.#waitingReads, this.#limits.maxPending));
    }
    const c = this.#core;
    if (c.role !== "leader") return Promise.reject(new NotLeaderError(c.leader || undefined));
    const ctx = ++this.#readSeq;
    const hold = this.#reads.size > 0;
    if (!hold) {
      try {
        c.readIndex(ctx);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return new Promise((resolve, reject) => {
      const read: PendingRead = { ctx, index: -1, done: false, timer: -1, resolve, reject };
      const timeouts = this.#timeouts;
      if (timeouts !== undefined) {
        const timeoutMs = this.#limits.timeoutMs;
        read.timer = timeouts.add(() => this.#settleRead(read, new ReadTimeoutError(timeoutMs)));
      }
      this.#waitingReads++;
      if (hold) {
        if (this.#heldReads.length === 0) this.#heldSince = this.#ticks;
        this.#heldReads.push(read);
        return;
      }
      this.#reads.set(ctx, read);
      // readIndex on a single server may be ready at once.
      this.#queueDrain();
    });
  }

  // Hand the held reads to the core, for one heartbeat round together.
  #releaseHeldReads(): void {
    const held = this.#heldReads;
    if (held.length === 0) return;
    this.#heldReads = [];
    const c = this.#core;
    for (const read of held) {
      if (read.done) continue;
      try {
        c.readIndex(read.ctx);
      } catch (e) {
        this.#settleRead(read, e);
        continue;
      }
      this.#reads.set(read.ctx, read);
    }
  }

  #settleRead(read: PendingRead, error?: unknown): void {
    if (read.done) return;
    read.done = true;
    this.#waitingReads--;
    this.#reads.delete(read.ctx);
    if (read.timer >= 0) this.#timeouts?.cancel(read.timer);
    if (error === undefined) read.resolve();
    else read.reject(error);
  }

  #checkStaleness(boundMs: number): void {
    if (typeof boundMs !== "number" || !(boundMs >= 0)) {
      throw new RangeError(`maxStalenessMs must be a non-negative number, got ${boundMs}`);
    }
    const since = this.lastLeaderContactMs();
    if (since === undefined || since > boundMs) throw new StaleReadError(since, boundMs);
  }

  // ---- driving --------------------------------------------------------------------------------

  #scheduleTick(): void {
    this.#cancelTick = this.#clock.schedule(this.#tickMs, () => {
      if (!this.#running) return;
      this.#core.tick();
      this.#ticks++;
      // A round unanswered for a tick or more may have been lost: do not hold reads behind it.
      if (this.#heldReads.length > 0 && this.#ticks - this.#heldSince >= 2) {
        this.#releaseHeldReads();
      }
      // A commit index left unsaved for a whole tick is saved on its own.
      if (this.#unsavedHard !== undefined) this.#idleSaveDue = true;
      this.#drain();
      if (this.#running) this.#scheduleTick();
    });
  }

  #receive(messages: readonly Message[]): void {
    if (!this.#running) return;
    const now = this.#clock.now();
    for (const m of messages) {
      this.#guard(() => this.#core.step(m));
      this.#contact.heard(m, this.#core, now);
    }
    this.#drain();
  }

  #queueDrain(): void {
    if (this.#drainQueued) return;
    this.#drainQueued = true;
    this.#clock.defer(() => {
      this.#drainQueued = false;
      this.#drain();
    });
  }

  // Handles every Ready that is available; with an asynchronous storage, one save at a time.
  // While a save is in flight, what a quorum committed meanwhile is applied (`#whileSaving`).
  #drain(): void {
    this.#observe();
    if (this.#saving !== undefined) {
      this.#whileSaving();
      return;
    }
    while (this.#running && this.#saving === undefined && this.#core.hasReady()) {
      const rd = this.#core.ready();
      if (rd.sendFirst) this.#send(rd.messages);
      const update = this.#storageUpdate(rd);
      let saved: void | Promise<void> = undefined;
      if (update !== undefined) {
        const started = this.#clock.now();
        try {
          saved = this.#storage.save(update);
        } catch (e) {
          this.#fatal(e);
          return;
        }
        if (!(saved instanceof Promise)) this.#observeSince(this.#saveDuration, started);
        else {
          this.#asyncStorage = true;
          this.#savedHard = update.hardState ?? this.#savedHard;
          // Committed entries already durable here need not wait for this save (unless a
          // snapshot must be loaded or saved first).
          const lastCommitted = rd.committed.length === 0
            ? 0
            : rd.committed[rd.committed.length - 1].index;
          const applyNow = rd.restore === undefined && rd.snapshot === undefined &&
            lastCommitted <= this.#core.stabledIndex;
          this.#saving = saved.then(
            () => {
              this.#observeSince(this.#saveDuration, started);
              this.#saving = undefined;
              this.#appliedEarly = false;
              if (!this.#running) return;
              this.#finish(rd, applyNow);
              this.#drain();
            },
            (e) => {
              this.#saving = undefined;
              this.#fatal(e);
            },
          );
          // After `#saving` is set, and `#appliedEarly` only once done: whatever the state
          // machine's callbacks call meanwhile sees the save in flight and applies nothing newer.
          if (applyNow) {
            this.#applyCommitted(rd.committed);
            this.#appliedEarly = true;
          }
          return;
        }
        this.#savedHard = update.hardState ?? this.#savedHard;
      }
      this.#finish(rd, false);
    }
    if (this.#running && this.#saving === undefined && this.#unsavedHard && this.#idleSaveDue) {
      this.#saveHardState();
    }
  }

  // What of `rd` must reach the storage, or undefined when nothing must. A hard state that only
  // moved the commit index is not worth an fsync of its own on an asynchronous storage: the
  // commit index can be learned again from the leader (etcd does not sync it either). It goes
  // with the next save, or on its own at the next tick when nothing else is saved.
  #storageUpdate(rd: Ready): StorageUpdate | undefined {
    const hs = rd.hardState;
    const last = this.#savedHard;
    const commitOnly = hs !== undefined && last !== undefined && hs.term === last.term &&
      hs.vote === last.vote;
    if (rd.entries.length === 0 && rd.snapshot === undefined) {
      if (hs === undefined) return undefined;
      if (commitOnly && this.#asyncStorage) {
        this.#unsavedHard = hs;
        return undefined;
      }
    }
    const hardState = hs ?? this.#unsavedHard;
    this.#unsavedHard = undefined;
    this.#idleSaveDue = false;
    return { entries: rd.entries, snapshot: rd.snapshot, hardState };
  }

  // The commit index waiting for a save, persisted on its own (the node is otherwise idle).
  #saveHardState(): void {
    const hardState = this.#unsavedHard!;
    this.#unsavedHard = undefined;
    this.#idleSaveDue = false;
    let saved: void | Promise<void>;
    try {
      saved = this.#storage.save({ entries: [], hardState });
    } catch (e) {
      this.#fatal(e);
      return;
    }
    this.#savedHard = hardState;
    if (!(saved instanceof Promise)) return;
    this.#saving = saved.then(
      () => {
        this.#saving = undefined;
        if (this.#running) this.#drain();
      },
      (e) => {
        this.#saving = undefined;
        this.#fatal(e);
      },
    );
  }

  // A save is in flight: apply what was committed meanwhile (acknowledgements that arrived),
  // but only once the in-flight Ready's own committed entries were applied. Nothing is sent:
  // proposals made meanwhile leave together with the next Ready (sending them at once measured
  // no faster, with more and smaller appends for the followers to handle).
  #whileSaving(): void {
    if (!this.#running || !this.#appliedEarly) return;
    const c = this.#core;
    let entries: Entry[] = [];
    this.#guard(() => entries = c.takeCommitted());
    if (entries.length === 0) return;
    this.#applyCommitted(entries);
    this.#settleAppliedReads();
  }

  #applyCommitted(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const started = this.#clock.now();
    for (const e of entries) this.#apply(e);
    this.#observeSince(this.#applyDuration, started);
  }

  #observeSince(histogram: DurationHistogram, startedMs: number): void {
    histogram.observe((this.#clock.now() - startedMs) / 1000);
  }

  #observe(): void {
    const c = this.#core;
    const last = this.#lastState;
    if (last.term === c.term && last.role === c.role && last.leader === c.leader) return;
    if (last.role === "leader" && c.role !== "leader") this.#failReads();
    if (c.leader !== "" && c.leader !== last.leader) this.#leaderChanges++;
    const now: StateChange = { term: c.term, role: c.role, leader: c.leader };
    this.#lastState = now;
    // The very first observation is the start-up state, not a change.
    if (last.term !== -1) { for (const e of stateChangeEvents(last, now)) this.#events.emit(e); }
    this.#onStateChange?.(now);
  }

  // `applied`: the Ready's committed entries were applied already, while its save ran.
  #finish(rd: Ready, applied: boolean): void {
    if (!rd.sendFirst) this.#send(rd.messages);
    if (rd.restore) {
      const started = this.#clock.now();
      this.#restore(rd.restore);
      this.#observeSince(this.#applyDuration, started);
    }
    if (!applied) this.#applyCommitted(rd.committed);
    this.#guard(() => this.#core.advance(rd));
    for (const r of rd.readStates) {
      const read = this.#reads.get(r.ctx);
      if (!read) continue;
      this.#reads.delete(r.ctx);
      read.index = r.index;
      if (r.index <= this.#appliedIndex) this.#settleRead(read);
      else this.#applyWaiters.push(read);
    }
    if (this.#reads.size === 0) this.#releaseHeldReads();
    this.#settleAppliedReads();
    if (this.#appliedIndex > this.#snapshotIndex) this.#maybeCompact();
  }

  #settleAppliedReads(): void {
    if (this.#applyWaiters.length === 0) return;
    const waiting: PendingRead[] = [];
    for (const read of this.#applyWaiters) {
      if (read.done) continue;
      if (read.index <= this.#appliedIndex) this.#settleRead(read);
      else waiting.push(read);
    }
    this.#applyWaiters = waiting;
  }

  // After a whole batch is applied, so the snapshot reflects exactly `#appliedIndex`.
  #maybeCompact(): void {
    const snapshot = this.#stateMachine?.snapshot;
    if (!snapshot) return;
    const { compactEntries, compactBytes } = this.#limits;
    if (
      this.#appliedIndex - this.#snapshotIndex < compactEntries &&
      this.#bytesSinceSnapshot < compactBytes
    ) return;
    const index = this.#appliedIndex;
    // Entries applied while their save ran are compacted once durable here (at a later Ready).
    if (index > this.#core.stabledIndex) return;
    const data = snapshot.call(this.#stateMachine);
    let done = false;
    this.#guard(() => done = this.#core.compact(index, data));
    if (done) this.#compacted(index);
  }

  #compacted(index: number): void {
    if (index > this.#snapshotIndex) this.#snapshotIndex = index;
    this.#bytesSinceSnapshot = 0;
  }

  // Reads waiting for a heartbeat round die with the leadership that would have confirmed them.
  #failReads(): void {
    const hint = this.#core.leader || undefined;
    for (const read of [...this.#reads.values(), ...this.#heldReads]) {
      this.#settleRead(read, new NotLeaderError(hint));
    }
    this.#heldReads = [];
  }

  #send(messages: readonly Message[]): void {
    if (messages.length === 0) return;
    if (messages.length === 1) {
      this.#transport.send(messages[0].to, messages);
      return;
    }
    const byPeer = new Map<NodeId, Message[]>();
    for (const m of messages) {
      const list = byPeer.get(m.to);
      if (list) list.push(m);
      else byPeer.set(m.to, [m]);
    }
    for (const [to, list] of byPeer) this.#transport.send(to, list);
  }

  #restore(snap: Snapshot): void {
    this.#stateMachine?.restore?.(snap.data, snap.index);
    this.#appliedIndex = snap.index;
    this.#compacted(snap.index);
    this.#publish({ type: "snapshot", index: snap.index, term: snap.term, data: snap.data });
    for (const [index, pending] of [...this.#proposals]) {
      if (index <= snap.index) this.#settleProposal(index, pending, "unknown");
    }
  }

  #publish(item: Applied): void {
    this.#onApply?.(item);
    this.#backlog?.push(item);
    for (const q of this.#streams) q.push(item);
    if (this.#streams.some((q) => q.closed)) this.#streams = this.#streams.filter((q) => !q.closed);
  }

  #apply(e: Entry): void {
    let result: Uint8Array | undefined;
    this.#appliedIndex = e.index;
    this.#bytesSinceSnapshot += e.data.length;
    if (this.#stateMachine && e.data.length > 0) {
      result = this.#stateMachine.apply(e.data, e.index) ?? undefined;
    }
    this.#publish({ type: "entry", index: e.index, term: e.term, command: e.data, result });
    const pending = this.#proposals.get(e.index);
    if (pending) {
      this.#settleProposal(e.index, pending, pending.term === e.term ? "applied" : "lost", result);
    }
  }

  #guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      // An invariant broke: stop this node rather than act on a corrupt state, and let the
      // caller (a test, the runtime) see the error.
      this.#fatal(e);
      throw e;
    }
  }

  #fatal(error: unknown): void {
    if (!this.#running) return;
    this.#error = error;
    this.#halt(error);
  }

  #halt(reason: unknown): void {
    this.#running = false;
    this.#cancelTick?.();
    this.#cancelTick = undefined;
    const stopped = reason instanceof NodeStoppedError
      ? reason
      : new NodeStoppedError(`the node stopped: ${reason}`, { cause: reason });
    for (const [index, pending] of [...this.#proposals]) {
      this.#settleProposal(index, pending, "stopped", undefined, stopped);
    }
    for (const read of [...this.#reads.values(), ...this.#heldReads, ...this.#applyWaiters]) {
      this.#settleRead(read, stopped);
    }
    this.#applyWaiters = [];
    this.#heldReads = [];
    this.#timeouts?.clear();
    for (const q of this.#streams) q.close();
    this.#backlog?.close();
    this.#events.close();
  }

  #assertRunning(): void {
    if (!this.#running) {
      throw this.#error === undefined
        ? new NodeStoppedError()
        : new NodeStoppedError(`the node stopped: ${this.#error}`, { cause: this.#error });
    }
  }
}
