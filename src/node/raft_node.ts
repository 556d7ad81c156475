/**
 * RaftNode drives a `RaftCore` with a clock, a `Storage` and a `Transport`: it ticks the core,
 * steps arriving messages, and carries out each `Ready` in the safe order — persist, then send,
 * then apply. The simulator drives this same class in virtual time.
 *
 * @module
 */
import { type CoreStatus, type Proposal, RaftCore } from "../core/raft.ts";
import type { Entry, Message, NodeId, Ready, Role, Snapshot } from "../core/types.ts";
import type { Storage } from "../storage/storage.ts";
import type { Transport } from "../transport/transport.ts";
import { AsyncQueue } from "./async_queue.ts";
import { type Clock, RealClock } from "./clock.ts";
import { ConfigError, NotLeaderError } from "../core/errors.ts";

/** The application's replicated state: `apply` runs once per committed command, in log order. */
export interface StateMachine {
  /** Apply one committed command; the result goes back to whoever proposed it. */
  apply(command: Uint8Array, index: number): Uint8Array | undefined | void;
  /** Replace the whole state with a snapshot's (one received from the leader, or after a restart). */
  restore?(data: Uint8Array, index: number): void;
  /** The whole state as bytes, for `compact` (the node itself never calls it). */
  snapshot?(): Uint8Array;
  /** Answer a read-only query from the current state (used by `read`). */
  query?(query: Uint8Array): Uint8Array | undefined;
}

/** How fresh a `read` must be. */
export type ReadConsistency = "linearizable" | "stale";

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
   * command and is not passed to the state machine. Default false (6.5840 numbering).
   */
  readonly leaderNoop?: boolean;
  /** Called synchronously whenever the term, role or known leader changes. */
  readonly onStateChange?: (change: StateChange) => void;
  /** How far an `applied()` reader may fall behind before its stream fails. Default 100,000. */
  readonly appliedBufferLimit?: number;
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

interface ReadWaiter {
  readonly resolve: (index: number) => void;
  readonly reject: (error: unknown) => void;
}

interface Waiter {
  readonly term: number;
  readonly resolve: (result: Uint8Array | undefined) => void;
  readonly reject: (error: unknown) => void;
}

function ticks(name: string, ms: number, tickMs: number): number {
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new ConfigError(`${name} must be a positive number of ms`);
  }
  return Math.max(1, Math.round(ms / tickMs));
}

/** One Raft server: the core, driven. Create with `RaftNode.start`. */
export class RaftNode {
  readonly #core: RaftCore;
  readonly #storage: Storage;
  readonly #transport: Transport;
  readonly #clock: Clock;
  readonly #tickMs: number;
  readonly #stateMachine: StateMachine | undefined;
  readonly #onApply: ((item: Applied) => void) | undefined;
  readonly #onStateChange: ((change: StateChange) => void) | undefined;
  #lastState: StateChange = { term: -1, role: "follower", leader: "" };
  readonly #appliedLimit: number;
  readonly #waiters = new Map<number, Waiter>();
  readonly #reads = new Map<number, ReadWaiter>();
  #applyWaiters: { index: number; resolve: () => void }[] = [];
  #appliedIndex = 0;
  #readSeq = 0;
  #streams: AsyncQueue<Applied>[] = [];
  #backlog: AsyncQueue<Applied> | undefined;
  #running = true;
  #stopped = false;
  #error: unknown = undefined;
  #saving: Promise<void> | undefined;
  #drainQueued = false;
  #cancelTick: (() => void) | undefined;

  private constructor(options: RaftNodeOptions, core: RaftCore) {
    this.#core = core;
    this.#storage = options.storage;
    this.#transport = options.transport;
    this.#clock = options.clock ?? new RealClock();
    this.#tickMs = options.tickMs ?? 10;
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
    const node = new RaftNode(options, core);
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
   * (6.5840's `Start`). Throws `NotLeaderError` (with a leader hint) on any other server.
   */
  start(command: Uint8Array): Proposal {
    this.#assertRunning();
    const p = this.#core.propose(command);
    // Proposals made in one burst leave in one append per follower.
    this.#queueDrain();
    return p;
  }

  /** Propose a command and wait until it is applied; resolves with the state machine's result. */
  propose(command: Uint8Array): Promise<Uint8Array | undefined> {
    try {
      const { index, term } = this.start(command);
      return new Promise((resolve, reject) => this.#waiters.set(index, { term, resolve, reject }));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Answer `query` from the state machine. `linearizable` (the default) confirms this server
   * still leads with a heartbeat round (ReadIndex) and waits until the state reflects every write
   * committed before the read arrived; it throws `NotLeaderError` elsewhere. `stale` answers at
   * once from whatever this server has applied. Requires a state machine with `query`.
   */
  async read(
    query: Uint8Array,
    options: { consistency?: ReadConsistency } = {},
  ): Promise<Uint8Array | undefined> {
    this.#assertRunning();
    const sm = this.#stateMachine;
    if (!sm?.query) throw new TypeError("read needs a state machine with a query method");
    if ((options.consistency ?? "linearizable") === "linearizable") {
      const ctx = ++this.#readSeq;
      this.#core.readIndex(ctx);
      const index = await new Promise<number>((resolve, reject) =>
        this.#reads.set(ctx, { resolve, reject })
      );
      if (this.#appliedIndex < index) {
        await new Promise<void>((resolve) => this.#applyWaiters.push({ index, resolve }));
      }
      this.#assertRunning();
    }
    return sm.query(query);
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
    if (done) this.#queueDrain();
    return done;
  }

  /** Election now, as if the timeout had passed (tools and tests). */
  campaign(): void {
    this.#assertRunning();
    this.#core.campaign();
    this.#drain();
  }

  /** Stop ticking, receiving and sending; wait for an in-flight save; close storage and transport. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#halt(new NodeStoppedError());
    if (this.#saving) await this.#saving.catch(() => {});
    await this.#transport.close();
    await this.#storage.close();
  }

  // ---- driving --------------------------------------------------------------------------------

  #scheduleTick(): void {
    this.#cancelTick = this.#clock.schedule(this.#tickMs, () => {
      if (!this.#running) return;
      this.#core.tick();
      this.#drain();
      if (this.#running) this.#scheduleTick();
    });
  }

  #receive(messages: readonly Message[]): void {
    if (!this.#running) return;
    for (const m of messages) this.#guard(() => this.#core.step(m));
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
  #drain(): void {
    this.#observe();
    while (this.#running && this.#saving === undefined && this.#core.hasReady()) {
      const rd = this.#core.ready();
      if (rd.sendFirst) this.#send(rd.messages);
      let saved: void | Promise<void> = undefined;
      if (rd.hardState || rd.entries.length > 0 || rd.snapshot) {
        try {
          saved = this.#storage.save(rd);
        } catch (e) {
          this.#fatal(e);
          return;
        }
      }
      if (saved instanceof Promise) {
        this.#saving = saved.then(
          () => {
            this.#saving = undefined;
            if (!this.#running) return;
            this.#finish(rd);
            this.#drain();
          },
          (e) => {
            this.#saving = undefined;
            this.#fatal(e);
          },
        );
        return;
      }
      this.#finish(rd);
    }
  }

  #observe(): void {
    const c = this.#core;
    const last = this.#lastState;
    if (last.term === c.term && last.role === c.role && last.leader === c.leader) return;
    if (last.role === "leader" && c.role !== "leader") this.#failReads();
    this.#lastState = { term: c.term, role: c.role, leader: c.leader };
    this.#onStateChange?.(this.#lastState);
  }

  #finish(rd: Ready): void {
    if (!rd.sendFirst) this.#send(rd.messages);
    if (rd.restore) this.#restore(rd.restore);
    for (const e of rd.committed) this.#apply(e);
    this.#guard(() => this.#core.advance(rd));
    for (const r of rd.readStates) {
      const w = this.#reads.get(r.ctx);
      this.#reads.delete(r.ctx);
      w?.resolve(r.index);
    }
    if (this.#applyWaiters.length > 0) {
      const ready = this.#applyWaiters.filter((w) => w.index <= this.#appliedIndex);
      this.#applyWaiters = this.#applyWaiters.filter((w) => w.index > this.#appliedIndex);
      for (const w of ready) w.resolve();
    }
  }

  // Reads waiting for a heartbeat round die with the leadership that would have confirmed them.
  #failReads(): void {
    const hint = this.#core.leader || undefined;
    for (const w of this.#reads.values()) w.reject(new NotLeaderError(hint));
    this.#reads.clear();
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
    this.#publish({ type: "snapshot", index: snap.index, term: snap.term, data: snap.data });
    for (const [index, w] of this.#waiters) {
      if (index > snap.index) continue;
      this.#waiters.delete(index);
      w.reject(new ProposalOutcomeUnknownError(index, w.term));
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
    if (this.#stateMachine && e.data.length > 0) {
      result = this.#stateMachine.apply(e.data, e.index) ?? undefined;
    }
    this.#publish({ type: "entry", index: e.index, term: e.term, command: e.data, result });
    const w = this.#waiters.get(e.index);
    if (w) {
      this.#waiters.delete(e.index);
      if (w.term === e.term) w.resolve(result);
      else w.reject(new ProposalLostError(e.index, w.term));
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
    for (const w of this.#waiters.values()) {
      w.reject(
        reason instanceof NodeStoppedError
          ? reason
          : new NodeStoppedError(`the node stopped: ${reason}`, { cause: reason }),
      );
    }
    this.#waiters.clear();
    const stopped = reason instanceof NodeStoppedError
      ? reason
      : new NodeStoppedError(`the node stopped: ${reason}`, { cause: reason });
    for (const w of this.#reads.values()) w.reject(stopped);
    this.#reads.clear();
    for (const w of this.#applyWaiters) w.resolve();
    this.#applyWaiters = [];
    for (const q of this.#streams) q.close();
    this.#backlog?.close();
  }

  #assertRunning(): void {
    if (!this.#running) {
      throw this.#error === undefined
        ? new NodeStoppedError()
        : new NodeStoppedError(`the node stopped: ${this.#error}`, { cause: this.#error });
    }
  }
}
