/**
 * The Raft state machine: pure and deterministic. Feed it with `tick`, `step` and local requests;
 * read what must happen next with `ready`, and confirm with `advance`. It never does I/O, reads a
 * clock, or draws randomness except from its seeded generator.
 *
 * @module
 */
import { type RaftConfig, resolveConfig, type ResolvedRaftConfig } from "./config.ts";
import { fnv1a32 } from "./checksum.ts";
import { NotLeaderError } from "./errors.ts";
import { LogInvariantError, RaftLog } from "./log.ts";
import { Progress, type ProgressState } from "./progress.ts";
import { SeededRandom } from "./rng.ts";
import {
  type AppendRequest,
  type AppendResponse,
  EMPTY_HARD_STATE,
  type Entry,
  type HardState,
  type Heartbeat,
  type Message,
  type NodeId,
  NONE,
  type PersistedState,
  type ReadState,
  type Ready,
  type Role,
  type Snapshot,
  type SnapshotAck,
  type SnapshotChunk,
  type VoteRequest,
  type VoteResponse,
} from "./types.ts";

/** Distributes `Omit` over a union, so each message type keeps its own fields. */
type Outgoing<M> = M extends Message ? Omit<M, "from"> : never;

/** The leader's view of one peer, as `status()` reports it. */
export interface PeerProgress {
  /** Highest index known to match the leader's log. */
  readonly match: number;
  /** Next index the leader will send. */
  readonly next: number;
  /** Probing for the match point, or streaming. */
  readonly state: ProgressState;
  /** Appends in flight. */
  readonly inflight: number;
  /** Heard from in the current check-quorum round. */
  readonly recentActive: boolean;
  /** The snapshot transfer under way, in bytes (snapshot state only). */
  readonly snapshot?: {
    readonly index: number;
    readonly sent: number;
    readonly acked: number;
    readonly total: number;
  };
}

/** A snapshot of the core's state, for status displays and checkers. */
export interface CoreStatus {
  /** This server. */
  readonly id: NodeId;
  /** Current term. */
  readonly term: number;
  /** Vote cast in the current term, or `NONE`. */
  readonly vote: NodeId;
  /** Current role. */
  readonly role: Role;
  /** Known leader of the current term, or `NONE`. */
  readonly leader: NodeId;
  /** Highest committed index. */
  readonly commit: number;
  /** Highest index handed out for applying. */
  readonly applied: number;
  /** First index held in the log. */
  readonly firstIndex: number;
  /** Last index in the log. */
  readonly lastIndex: number;
  /** Last index known durable. */
  readonly stabled: number;
  /** Index covered by the latest snapshot (0 without one). */
  readonly snapshotIndex: number;
  /** Voting members. */
  readonly voters: readonly NodeId[];
  /** Per-peer replication state; only on a leader. */
  readonly progress?: Readonly<Record<NodeId, PeerProgress>>;
}

/** The result of a successful `propose`: where the command will sit if it commits. */
export interface Proposal {
  /** Log index of the new entry. */
  readonly index: number;
  /** Term of the new entry. */
  readonly term: number;
}

// A read waiting for a quorum to answer heartbeat round `round`.
interface PendingRead {
  readonly ctx: number;
  readonly round: number;
  readonly index: number;
}

// A snapshot being received, assembled in place.
interface IncomingSnapshot {
  readonly index: number;
  readonly term: number;
  readonly size: number;
  readonly checksum: number;
  readonly buffer: Uint8Array;
  readonly transfer: number;
  received: number;
}

/** One Raft server's state machine. */
export class RaftCore {
  readonly #cfg: ResolvedRaftConfig;
  readonly #rng: SeededRandom;
  readonly #log: RaftLog;
  #voters: Set<NodeId>;
  readonly #progress = new Map<NodeId, Progress>();
  readonly #votes = new Map<NodeId, boolean>();
  #term: number;
  #vote: NodeId;
  #role: Role = "follower";
  #leader: NodeId = NONE;
  #electionElapsed = 0;
  #heartbeatElapsed = 0;
  #randomizedElectionTimeout = 0;
  #msgs: Message[] = [];
  #savedHardState: HardState;
  #readyInFlight = false;
  // The latest snapshot (what a leader sends), one to persist, one the state machine must load.
  #snapshot: Snapshot | undefined;
  // Computed when a follower first needs the snapshot, not at every compaction (megabytes).
  #snapshotChecksum: number | undefined;
  #unstableSnapshot: Snapshot | undefined;
  #pendingRestore: Snapshot | undefined;
  // Highest index handed out for applying (the driver may compact up to it while applying).
  #applying = 0;
  #incoming: IncomingSnapshot | undefined;
  // ReadIndex: reads wait for a commit in the leader's term, then for a heartbeat round a
  // quorum answers; confirmed ones leave in the next Ready.
  #readRound = 0;
  readonly #readAcks = new Map<number, Set<NodeId>>();
  #readsAwaitingCommit: number[] = [];
  #readsUnsent: number[] = [];
  #readsPending: PendingRead[] = [];
  #readStates: ReadState[] = [];

  /** A server restarting from `persisted` (or starting empty) with `config`. */
  constructor(config: RaftConfig, persisted?: PersistedState) {
    this.#cfg = resolveConfig(config);
    this.#rng = new SeededRandom(this.#cfg.seed);
    this.#voters = new Set(this.#cfg.voters);
    const hs = persisted?.hardState ?? EMPTY_HARD_STATE;
    const snap = persisted?.snapshot;
    this.#log = new RaftLog(persisted?.entries ?? [], snap?.index ?? 0, snap?.term ?? 0);
    if (snap) {
      this.#voters = new Set(snap.voters);
      this.#setSnapshot(snap);
      // The state machine starts empty unless the application says it already holds the state.
      if (this.#cfg.applied < snap.index) this.#pendingRestore = snap;
    }
    if (hs.commit > this.#log.lastIndex()) {
      throw new LogInvariantError(
        `persisted commit ${hs.commit} is beyond the persisted log's last index ${this.#log.lastIndex()}`,
      );
    }
    if (hs.commit > this.#log.committed) this.#log.committed = hs.commit;
    const applied = Math.min(this.#cfg.applied, this.#log.committed);
    if (applied > this.#log.applied) this.#log.applied = applied;
    this.#applying = this.#log.applied;
    this.#term = hs.term;
    this.#vote = hs.vote;
    this.#savedHardState = hs;
    this.#becomeFollower(hs.term, NONE);
  }

  // ---- reading --------------------------------------------------------------------------------

  /** This server's id. */
  get id(): NodeId {
    return this.#cfg.id;
  }

  /** Current term. */
  get term(): number {
    return this.#term;
  }

  /** Current role. */
  get role(): Role {
    return this.#role;
  }

  /** Known leader of the current term, or `NONE`. */
  get leader(): NodeId {
    return this.#leader;
  }

  /** Highest committed index. */
  get commitIndex(): number {
    return this.#log.committed;
  }

  /** Last index known durable (persisted by a `Ready` the driver confirmed with `advance`). */
  get stabledIndex(): number {
    return this.#log.stabled;
  }

  /** Term of the entry at `index`, or undefined if not held. */
  termAt(index: number): number | undefined {
    return this.#log.term(index);
  }

  /** The entry at `index`, if held. */
  entryAt(index: number): Entry | undefined {
    return this.#log.entry(index);
  }

  /** The core's state, copied. */
  status(): CoreStatus {
    let progress: Record<NodeId, PeerProgress> | undefined;
    if (this.#role === "leader") {
      progress = {};
      for (const [id, pr] of this.#progress) {
        if (id === this.id) continue;
        const t = pr.transfer;
        progress[id] = {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          inflight: pr.inflights.count,
          recentActive: pr.recentActive,
          snapshot: t
            ? { index: t.snapshot.index, sent: t.sent, acked: t.acked, total: t.size }
            : undefined,
        };
      }
    }
    return {
      id: this.id,
      term: this.#term,
      vote: this.#vote,
      role: this.#role,
      leader: this.#leader,
      commit: this.#log.committed,
      applied: this.#log.applied,
      firstIndex: this.#log.firstIndex(),
      lastIndex: this.#log.lastIndex(),
      stabled: this.#log.stabled,
      snapshotIndex: this.#log.snapshotIndex(),
      voters: [...this.#voters],
      progress,
    };
  }

  // ---- inputs ---------------------------------------------------------------------------------

  /** Advance logical time by one tick. */
  tick(): void {
    if (this.#role === "leader") this.#tickLeader();
    else this.#tickElection();
  }

  /**
   * Append `data` to the log as the leader; throws `NotLeaderError` elsewhere. Commands must not
   * be empty: the empty command is the leader's no-op (see `leaderNoop`).
   */
  propose(data: Uint8Array): Proposal {
    this.#assertLeader();
    if (data.length === 0) throw new RangeError("a command must not be empty");
    const entry: Entry = { index: this.#log.lastIndex() + 1, term: this.#term, data };
    this.#log.append([entry]);
    return { index: entry.index, term: entry.term };
  }

  /**
   * The application saved its state through `index` as `data`: keep that as the snapshot and
   * drop the log through `index` (6.5840's `Snapshot`). `index` must have been handed out for
   * applying; a snapshot no newer than the current one is ignored (returns false).
   */
  compact(index: number, data: Uint8Array): boolean {
    if (!Number.isInteger(index) || index < 0) {
      throw new RangeError(`compact: index must be a non-negative integer, got ${index}`);
    }
    if (index <= this.#log.snapshotIndex()) return false;
    if (index > this.#applying) {
      throw new RangeError(
        `compact: index ${index} is beyond the last index handed out for applying (${this.#applying})`,
      );
    }
    const term = this.#log.term(index)!;
    const snap: Snapshot = { index, term, voters: [...this.#voters], data };
    this.#log.compact(index);
    this.#setSnapshot(snap);
    this.#unstableSnapshot = snap;
    return true;
  }

  /**
   * Ask for a linearizable read (ReadIndex): once a quorum confirms this server still leads,
   * `ready().readStates` holds `{ ctx, index }`, and the state machine answers the read after
   * applying through `index`. Throws `NotLeaderError` on a non-leader. Reads still waiting when
   * the leader steps down are dropped: the caller retries elsewhere.
   *
   * A new leader learns its commit index only by committing an entry of its own term. Without
   * `leaderNoop`, the first read of a term that has no entry yet appends the empty no-op then,
   * so reads never wait for a write that may not come (and the log keeps 6.5840's numbering for
   * as long as nobody reads).
   */
  readIndex(ctx: number): void {
    this.#assertLeader();
    if (this.#log.term(this.#log.committed) === this.#term) {
      this.#readsUnsent.push(ctx);
      return;
    }
    if (this.#log.term(this.#log.lastIndex()) !== this.#term) {
      const noop = { index: this.#log.lastIndex() + 1, term: this.#term, data: new Uint8Array(0) };
      this.#log.append([noop]);
    }
    this.#readsAwaitingCommit.push(ctx);
  }

  /** Start an election now, as if the election timeout had passed. */
  campaign(): void {
    if (this.#role === "leader" || !this.#voters.has(this.id)) return;
    this.#campaign(this.#cfg.preVote);
  }

  /** Hand one message from a peer to the core. Messages not addressed to this server are ignored. */
  step(m: Message): void {
    if (m.to !== this.id || m.from === this.id || !this.#voters.has(m.from)) return;
    if (m.term > this.#term) {
      const isVote = m.type === "vote" || m.type === "prevote";
      if (isVote && this.#inLease()) return;
      if (m.type === "prevote" || (m.type === "prevoteResp" && !m.reject)) {
        // A pre-vote exchange speaks of a term nobody has entered yet; it changes no one's term.
      } else {
        const leader = m.type === "app" || m.type === "hb" || m.type === "snap" ? m.from : NONE;
        this.#becomeFollower(m.term, leader);
      }
    } else if (m.term < this.#term) {
      const fromLeader = m.type === "app" || m.type === "hb" || m.type === "snap";
      if (fromLeader && (this.#cfg.checkQuorum || this.#cfg.preVote)) {
        // A deposed leader cut off from the cluster would otherwise never learn the new term:
        // with pre-vote, nobody's vote request would reach it at a higher term.
        this.#send({ type: "hbResp", to: m.from, term: this.#term, ctx: 0 });
      } else if (m.type === "prevote") {
        this.#send({ type: "prevoteResp", to: m.from, term: this.#term, reject: true });
      }
      return;
    }

    if (m.type === "vote" || m.type === "prevote") {
      this.#handleVoteRequest(m);
      return;
    }
    switch (this.#role) {
      case "leader":
        this.#stepLeader(m);
        break;
      case "candidate":
      case "precandidate":
        this.#stepCandidate(m);
        break;
      case "follower":
        this.#stepFollower(m);
        break;
    }
  }

  #assertLeader(): void {
    if (this.#role !== "leader") {
      throw new NotLeaderError(this.#leader === NONE ? undefined : this.#leader);
    }
  }

  // ---- ready / advance ------------------------------------------------------------------------

  /** Whether `ready()` has anything to do. */
  hasReady(): boolean {
    if (this.#role === "leader") this.#flushReplication();
    return this.#msgs.length > 0 || this.#readStates.length > 0 || this.#log.hasUnstable() ||
      this.#log.hasNextCommitted() ||
      this.#hardStateChanged() || this.#unstableSnapshot !== undefined ||
      this.#pendingRestore !== undefined;
  }

  /**
   * The next batch of work: persist, then send, then apply, then `advance(ready)`. Call it again
   * only after that `advance`.
   */
  ready(): Ready {
    if (this.#readyInFlight) throw new Error("ready() called again before advance()");
    if (this.#role === "leader") this.#flushReplication();
    this.#readyInFlight = true;
    const hardState = this.#hardStateChanged() ? this.#hardState() : undefined;
    const messages = this.#msgs;
    this.#msgs = [];
    const readStates = this.#readStates;
    this.#readStates = [];
    const committed = this.#log.nextCommitted(this.#cfg.maxApplyBytes);
    if (committed.length > 0) this.#applying = committed[committed.length - 1].index;
    const saved = this.#savedHardState;
    const sendFirst = this.#role === "leader" && saved.term === this.#term &&
      saved.vote === this.#vote;
    return {
      sendFirst,
      snapshot: this.#unstableSnapshot,
      restore: this.#pendingRestore,
      hardState,
      entries: this.#log.unstable(),
      messages,
      readStates,
      committed,
    };
  }

  /**
   * For a driver that persists a `Ready` asynchronously: committed entries past those already
   * handed out (by `ready()` or an earlier call), which the driver applies at once, after the
   * in-flight `Ready`'s own `committed`. Only entries already durable here (as `ready()` would
   * hand them out after the save), so a server applies nothing its own storage may yet lose.
   * [] while a snapshot waits to be loaded (it goes first).
   */
  takeCommitted(): Entry[] {
    const upTo = Math.min(this.#log.committed, this.#log.stabled);
    if (this.#pendingRestore !== undefined || upTo <= this.#applying) return [];
    const count = upTo - this.#applying;
    const entries = this.#log.sliceLimited(this.#applying + 1, count, this.#cfg.maxApplyBytes);
    if (entries.length === 0) return entries;
    const last = entries[entries.length - 1].index;
    this.#applying = last;
    this.#log.appliedTo(last);
    return entries;
  }

  /** Confirm that `rd` was persisted, sent and applied. */
  advance(rd: Ready): void {
    this.#readyInFlight = false;
    if (rd.hardState) this.#savedHardState = rd.hardState;
    if (rd.snapshot && rd.snapshot === this.#unstableSnapshot) this.#unstableSnapshot = undefined;
    if (rd.restore && rd.restore === this.#pendingRestore) this.#pendingRestore = undefined;
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1];
      this.#log.stableTo(last.index, last.term);
      if (this.#role === "leader") {
        // The leader counts itself toward a commit only once its own copy is durable.
        const self = this.#progress.get(this.id);
        if (self?.maybeUpdate(this.#log.stabled)) this.#maybeCommit();
      }
    }
    if (rd.committed.length > 0) this.#log.appliedTo(rd.committed[rd.committed.length - 1].index);
  }

  // ---- roles ----------------------------------------------------------------------------------

  #reset(term: number): void {
    if (term !== this.#term) {
      this.#term = term;
      this.#vote = NONE;
    }
    this.#leader = NONE;
    this.#electionElapsed = 0;
    this.#heartbeatElapsed = 0;
    this.#randomizedElectionTimeout = this.#cfg.electionTicks +
      this.#rng.int(this.#cfg.electionTicksMax - this.#cfg.electionTicks + 1);
    this.#votes.clear();
    this.#progress.clear();
    this.#dropReads();
  }

  #dropReads(): void {
    this.#readAcks.clear();
    this.#readsAwaitingCommit = [];
    this.#readsUnsent = [];
    this.#readsPending = [];
  }

  #becomeFollower(term: number, leader: NodeId): void {
    this.#reset(term);
    this.#role = "follower";
    this.#leader = leader;
  }

  #becomePreCandidate(): void {
    // The term and vote stay: a pre-candidate must not disturb anything it may lose.
    this.#role = "precandidate";
    this.#leader = NONE;
    this.#votes.clear();
    this.#progress.clear();
  }

  #becomeCandidate(): void {
    this.#reset(this.#term + 1);
    this.#role = "candidate";
    this.#vote = this.id;
  }

  #becomeLeader(): void {
    this.#reset(this.#term);
    this.#role = "leader";
    this.#leader = this.id;
    const next = this.#log.lastIndex() + 1;
    for (const id of this.#voters) {
      const pr = new Progress(next, this.#cfg.maxInflight);
      if (id === this.id) {
        pr.match = this.#log.stabled;
        pr.becomeReplicate();
        pr.next = next;
      }
      pr.recentActive = id === this.id;
      this.#progress.set(id, pr);
    }
    if (this.#cfg.leaderNoop) {
      this.#log.append([{
        index: this.#log.lastIndex() + 1,
        term: this.#term,
        data: new Uint8Array(0),
      }]);
    }
    // Probe every follower at once: it learns of the new leader, and the leader learns where each
    // follower's log matches.
    for (const [id, pr] of this.#progress) {
      if (id !== this.id) this.#sendAppend(id, pr, true);
    }
  }

  #campaign(pre: boolean): void {
    let term: number;
    if (pre) {
      this.#becomePreCandidate();
      term = this.#term + 1;
    } else {
      this.#becomeCandidate();
      term = this.#term;
    }
    if (this.#poll(this.id, true) === "won") {
      if (pre) this.#campaign(false);
      else this.#becomeLeader();
      return;
    }
    const type = pre ? "prevote" : "vote";
    const lastIndex = this.#log.lastIndex();
    const lastTerm = this.#log.lastTerm();
    for (const id of this.#voters) {
      if (id !== this.id) this.#send({ type, to: id, term, lastIndex, lastTerm });
    }
  }

  #poll(id: NodeId, granted: boolean): "won" | "lost" | "pending" {
    if (!this.#votes.has(id)) this.#votes.set(id, granted);
    let yes = 0;
    let no = 0;
    for (const v of this.#votes.values()) v ? yes++ : no++;
    const quorum = this.#quorum();
    if (yes >= quorum) return "won";
    if (no > this.#voters.size - quorum) return "lost";
    return "pending";
  }

  #quorum(): number {
    return Math.floor(this.#voters.size / 2) + 1;
  }

  // The election timer started by hearing from a live leader has not run out: ignore a vote
  // request from a server that only failed to hear the leader (thesis §4.2.3).
  #inLease(): boolean {
    return this.#cfg.checkQuorum && this.#leader !== NONE &&
      this.#electionElapsed < this.#cfg.electionTicks;
  }

  // ---- ticks ----------------------------------------------------------------------------------

  #tickElection(): void {
    this.#electionElapsed++;
    if (this.#electionElapsed >= this.#randomizedElectionTimeout && this.#voters.has(this.id)) {
      this.#electionElapsed = 0;
      this.#campaign(this.#cfg.preVote);
    }
  }

  #tickLeader(): void {
    this.#heartbeatElapsed++;
    this.#electionElapsed++;
    // The window is the longest election timeout, not the shortest: answers delayed by a slow
    // network must not depose a leader that a quorum still follows.
    if (this.#electionElapsed >= this.#cfg.electionTicksMax) {
      this.#electionElapsed = 0;
      if (this.#cfg.checkQuorum && !this.#quorumActive()) {
        this.#becomeFollower(this.#term, NONE);
        return;
      }
    }
    if (this.#heartbeatElapsed >= this.#cfg.heartbeatTicks) {
      this.#heartbeatElapsed = 0;
      for (const [id, pr] of this.#progress) {
        if (id === this.id) continue;
        this.#checkTransfer(id, pr);
        this.#sendHeartbeat(id, pr);
      }
    }
  }

  // A transfer with no acknowledgement for an election timeout lost a chunk or an ack: resend
  // from what the follower acknowledged. Until the first byte is acknowledged, a newer snapshot
  // replaces an older one.
  #checkTransfer(to: NodeId, pr: Progress): void {
    const t = pr.transfer;
    if (pr.state !== "snapshot" || !t) return;
    if (t.acked === 0 && this.#snapshot && this.#snapshot.index > t.snapshot.index) {
      this.#startSnapshot(to, pr);
      return;
    }
    t.idleTicks += this.#cfg.heartbeatTicks;
    if (t.idleTicks >= this.#cfg.electionTicks) {
      t.idleTicks = 0;
      t.sent = t.acked;
      if (t.sent === t.size) this.#sendChunk(to, pr, 0, 0);
      else this.#sendSnapshotChunks(to, pr);
    }
  }

  #sendHeartbeat(to: NodeId, pr: Progress): void {
    const commit = Math.min(pr.match, this.#log.committed);
    if (commit > pr.commitSent) pr.commitSent = commit;
    this.#send({ type: "hb", to, term: this.#term, commit, ctx: this.#readRound });
  }

  // Start a heartbeat round for the reads that arrived since the last one.
  #flushReads(): void {
    if (
      this.#readsAwaitingCommit.length > 0 && this.#log.term(this.#log.committed) === this.#term
    ) {
      this.#readsUnsent.push(...this.#readsAwaitingCommit);
      this.#readsAwaitingCommit = [];
    }
    if (this.#readsUnsent.length === 0) return;
    const index = this.#log.committed;
    if (this.#voters.size === 1) {
      for (const ctx of this.#readsUnsent) this.#readStates.push({ ctx, index });
      this.#readsUnsent = [];
      return;
    }
    const round = ++this.#readRound;
    for (const ctx of this.#readsUnsent) this.#readsPending.push({ ctx, round, index });
    this.#readsUnsent = [];
    this.#readAcks.set(round, new Set([this.id]));
    for (const [id, pr] of this.#progress) if (id !== this.id) this.#sendHeartbeat(id, pr);
  }

  // A heartbeat answer for round `ctx` confirms leadership for every round up to it.
  #ackReads(from: NodeId, ctx: number): void {
    if (this.#readAcks.size === 0) return;
    let confirmed = 0;
    for (const [round, acks] of this.#readAcks) {
      if (round > ctx) continue;
      acks.add(from);
      if (acks.size >= this.#quorum() && round > confirmed) confirmed = round;
    }
    if (confirmed === 0) return;
    for (const round of [...this.#readAcks.keys()]) {
      if (round <= confirmed) this.#readAcks.delete(round);
    }
    const still: PendingRead[] = [];
    for (const r of this.#readsPending) {
      if (r.round <= confirmed) this.#readStates.push({ ctx: r.ctx, index: r.index });
      else still.push(r);
    }
    this.#readsPending = still;
  }

  #quorumActive(): boolean {
    let active = 0;
    for (const [id, pr] of this.#progress) {
      if (id === this.id || pr.recentActive) active++;
      if (id !== this.id) pr.recentActive = false;
    }
    return active >= this.#quorum();
  }

  // ---- message handling -----------------------------------------------------------------------

  #handleVoteRequest(m: VoteRequest): void {
    const respType = m.type === "vote" ? "voteResp" : "prevoteResp";
    const canVote = this.#vote === m.from ||
      (this.#vote === NONE && this.#leader === NONE) ||
      (m.type === "prevote" && m.term > this.#term);
    if (canVote && this.#log.isUpToDate(m.lastIndex, m.lastTerm)) {
      this.#send({ type: respType, to: m.from, term: m.term, reject: false });
      if (m.type === "vote") {
        this.#electionElapsed = 0;
        this.#vote = m.from;
      }
    } else {
      this.#send({ type: respType, to: m.from, term: this.#term, reject: true });
    }
  }

  #stepFollower(m: Message): void {
    if (m.type === "app") {
      this.#electionElapsed = 0;
      this.#leader = m.from;
      this.#handleAppend(m);
    } else if (m.type === "hb") {
      this.#electionElapsed = 0;
      this.#leader = m.from;
      this.#handleHeartbeat(m);
    } else if (m.type === "snap") {
      this.#electionElapsed = 0;
      this.#leader = m.from;
      this.#handleSnapshotChunk(m);
    }
  }

  #stepCandidate(m: Message): void {
    switch (m.type) {
      case "app":
        this.#becomeFollower(m.term, m.from);
        this.#handleAppend(m);
        return;
      case "hb":
        this.#becomeFollower(m.term, m.from);
        this.#handleHeartbeat(m);
        return;
      case "snap":
        this.#becomeFollower(m.term, m.from);
        this.#handleSnapshotChunk(m);
        return;
      case "prevoteResp":
      case "voteResp":
        this.#handleVoteResponse(m);
        return;
    }
  }

  #handleVoteResponse(m: VoteResponse): void {
    const pre = this.#role === "precandidate";
    if ((m.type === "prevoteResp") !== pre) return;
    if (pre && !m.reject && m.term !== this.#term + 1) return;
    const result = this.#poll(m.from, !m.reject);
    if (result === "won") {
      if (pre) this.#campaign(false);
      else this.#becomeLeader();
    } else if (result === "lost") {
      this.#becomeFollower(this.#term, NONE);
    }
  }

  #handleAppend(m: AppendRequest): void {
    const reply = (fields: Omit<AppendResponse, "type" | "to" | "term" | "from">) =>
      this.#send({ type: "appResp", to: m.from, term: this.#term, ...fields });
    if (m.prevIndex < this.#log.committed) {
      // Everything through our commit index already matches the leader.
      reply({ reject: false, index: this.#log.committed, hintIndex: 0, hintTerm: 0 });
      return;
    }
    const lastNew = this.#log.maybeAppend(m.prevIndex, m.prevTerm, m.commit, m.entries);
    if (lastNew >= 0) {
      reply({ reject: false, index: lastNew, hintIndex: 0, hintTerm: 0 });
      return;
    }
    const hintIndex = this.#log.findConflictByTerm(
      Math.min(m.prevIndex, this.#log.lastIndex()),
      m.prevTerm,
    );
    const hintTerm = this.#log.term(hintIndex) ?? 0;
    reply({ reject: true, index: m.prevIndex, hintIndex, hintTerm });
  }

  #handleSnapshotChunk(m: SnapshotChunk): void {
    const meta = m.snapshot;
    if (meta.index <= this.#log.committed) {
      // Nothing to install: what the snapshot covers is committed here already.
      this.#incoming = undefined;
      this.#send({
        type: "appResp",
        to: m.from,
        term: this.#term,
        reject: false,
        index: this.#log.committed,
        hintIndex: 0,
        hintTerm: 0,
      });
      return;
    }
    let inc = this.#incoming;
    if (
      !inc || inc.index !== meta.index || inc.term !== meta.term || inc.size !== m.size ||
      inc.checksum !== m.checksum
    ) {
      // Another snapshot: whatever part of an older transfer was held is useless now.
      inc = {
        index: meta.index,
        term: meta.term,
        size: m.size,
        checksum: m.checksum,
        buffer: new Uint8Array(m.size),
        transfer: 1 + this.#rng.int(0x7fffffff),
        received: 0,
      };
      this.#incoming = inc;
    }
    // Only the chunk that continues what is held is taken; duplicates and chunks past a gap are
    // answered with the held length, so the leader resumes from there.
    if (m.data.length > 0 && m.offset === inc.received && m.offset + m.data.length <= inc.size) {
      inc.buffer.set(m.data, m.offset);
      inc.received += m.data.length;
    }
    if (inc.received === inc.size) {
      this.#incoming = undefined;
      if (fnv1a32(inc.buffer) !== inc.checksum) {
        this.#send({
          type: "snapResp",
          to: m.from,
          term: this.#term,
          index: meta.index,
          received: 0,
          transfer: 0,
        });
        return;
      }
      this.#install({ ...meta, data: inc.buffer });
      // Sent with the Ready that persists the snapshot, so only once it is durable.
      this.#send({
        type: "appResp",
        to: m.from,
        term: this.#term,
        reject: false,
        index: meta.index,
        hintIndex: 0,
        hintTerm: 0,
      });
      return;
    }
    this.#send({
      type: "snapResp",
      to: m.from,
      term: this.#term,
      index: meta.index,
      received: inc.received,
      transfer: inc.transfer,
    });
  }

  #install(snap: Snapshot): void {
    if (this.#log.matchTerm(snap.index, snap.term)) {
      // The log continues the snapshot: keep what follows it.
      this.#log.commitTo(snap.index);
      this.#log.applied = snap.index;
      this.#log.compact(snap.index);
    } else {
      this.#log.restore(snap.index, snap.term);
    }
    this.#applying = snap.index;
    this.#voters = new Set(snap.voters);
    this.#setSnapshot(snap);
    this.#unstableSnapshot = snap;
    this.#pendingRestore = snap;
  }

  #setSnapshot(snap: Snapshot): void {
    this.#snapshot = snap;
    this.#snapshotChecksum = undefined;
  }

  #handleHeartbeat(m: Heartbeat): void {
    this.#log.commitTo(Math.min(m.commit, this.#log.lastIndex()));
    this.#send({ type: "hbResp", to: m.from, term: this.#term, ctx: m.ctx });
  }

  #stepLeader(m: Message): void {
    const pr = this.#progress.get(m.from);
    if (!pr) return;
    if (m.type === "appResp") {
      pr.recentActive = true;
      if (m.reject) {
        const probeFrom = m.hintTerm > 0
          ? this.#log.findConflictByTerm(m.hintIndex, m.hintTerm)
          : m.hintIndex;
        if (pr.maybeDecrTo(m.index, probeFrom)) {
          if (pr.state === "replicate") pr.becomeProbe();
          this.#sendAppend(m.from, pr, true);
        }
        return;
      }
      // In probe state, an acknowledgement of the match point itself also ends the probe.
      if (pr.maybeUpdate(m.index) || (pr.state === "probe" && m.index === pr.match)) {
        if (pr.state === "probe") pr.becomeReplicate();
        else if (pr.state === "snapshot") {
          // The follower holds the snapshot (or caught up another way): stream from its match.
          if (pr.match >= pr.transfer!.snapshot.index) pr.becomeReplicate();
        } else pr.inflights.freeLE(m.index);
        this.#maybeCommit();
      }
    } else if (m.type === "snapResp") {
      pr.recentActive = true;
      this.#handleSnapshotAck(m.from, pr, m);
    } else if (m.type === "hbResp") {
      pr.recentActive = true;
      this.#ackReads(m.from, m.ctx);
      if (pr.state === "snapshot") return;
      pr.probeSent = false;
      // A heartbeat answered while the window is full means an append was probably lost.
      if (pr.state === "replicate" && pr.inflights.full()) pr.inflights.freeFirst();
      if (pr.match < this.#log.lastIndex()) this.#sendAppend(m.from, pr, true);
    }
  }

  #handleSnapshotAck(to: NodeId, pr: Progress, m: SnapshotAck): void {
    const t = pr.transfer;
    if (pr.state !== "snapshot" || !t || m.index !== t.snapshot.index) return;
    if (m.transfer !== t.peerTransfer) {
      // The follower started a new partial copy (it restarted, or dropped a corrupt one):
      // continue from what it holds now, even if that is less than before.
      t.peerTransfer = m.transfer;
      t.acked = m.received;
      t.sent = m.received;
      t.resentFrom = -1;
      t.idleTicks = 0;
    } else if (m.received > t.acked) {
      t.acked = m.received;
      t.idleTicks = 0;
      if (t.sent < t.acked) t.sent = t.acked;
    } else if (m.received === t.acked && t.sent > t.acked && t.resentFrom !== t.acked) {
      // A repeated acknowledgement: a chunk arrived past a gap (one was lost or overtaken), so
      // resend from the gap now rather than at the timeout, once per gap.
      t.resentFrom = t.acked;
      t.sent = t.acked;
    }
    // Anything else is an acknowledgement overtaken by a newer one: nothing to do.
    this.#sendSnapshotChunks(to, pr);
  }

  // Switch a follower that needs compacted entries to a snapshot transfer. It starts with a
  // query, so a transfer another leader (or a lost message) interrupted resumes where it was.
  #startSnapshot(to: NodeId, pr: Progress): void {
    const snap = this.#snapshot;
    if (!snap) throw new LogInvariantError(`${to} needs compacted entries, but no snapshot exists`);
    this.#snapshotChecksum ??= fnv1a32(snap.data);
    pr.becomeSnapshot(snap, this.#snapshotChecksum);
    this.#sendChunk(to, pr, 0, 0);
  }

  #sendChunk(to: NodeId, pr: Progress, offset: number, length: number): void {
    const t = pr.transfer!;
    this.#send({
      type: "snap",
      to,
      term: this.#term,
      snapshot: { index: t.snapshot.index, term: t.snapshot.term, voters: t.snapshot.voters },
      size: t.size,
      checksum: t.checksum,
      offset,
      data: t.snapshot.data.subarray(offset, offset + length),
    });
  }

  // Chunks go out within a window, so a large snapshot never crowds out heartbeats or appends
  // to other followers.
  #sendSnapshotChunks(to: NodeId, pr: Progress): void {
    const t = pr.transfer!;
    const chunk = this.#cfg.snapshotChunkBytes;
    const window = chunk * this.#cfg.snapshotWindow;
    if (t.size === 0 && t.sent === 0 && t.acked === 0) {
      this.#sendChunk(to, pr, 0, 0);
      return;
    }
    while (t.sent < t.size && t.sent - t.acked < window) {
      const len = Math.min(chunk, t.size - t.sent);
      this.#sendChunk(to, pr, t.sent, len);
      t.sent += len;
    }
  }

  #maybeCommit(): boolean {
    const matches: number[] = [];
    for (const id of this.#voters) matches.push(this.#progress.get(id)?.match ?? 0);
    matches.sort((a, b) => b - a);
    const candidate = matches[this.#quorum() - 1];
    // Only an entry of the current term is committed by counting replicas (§5.4.2, Figure 8).
    if (candidate > this.#log.committed && this.#log.term(candidate) === this.#term) {
      this.#log.commitTo(candidate);
      return true;
    }
    return false;
  }

  // ---- sending --------------------------------------------------------------------------------

  /**
   * Sends one append to a follower from its `next` index, unless paused. Without `allowEmpty`, an
   * append with no entries is not sent. Returns whether an append went out.
   */
  #sendAppend(to: NodeId, pr: Progress, allowEmpty: boolean): boolean {
    if (pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.#log.term(prevIndex);
    if (prevTerm === undefined) {
      if (prevIndex < this.#log.snapshotIndex()) {
        this.#startSnapshot(to, pr);
        return true;
      }
      throw new LogInvariantError(`no term for index ${prevIndex} needed to replicate to ${to}`);
    }
    const entries = pr.next <= this.#log.lastIndex()
      ? this.#log.sliceLimited(pr.next, this.#cfg.maxEntriesPerAppend, this.#cfg.maxAppendBytes)
      : [];
    if (entries.length === 0 && !allowEmpty) return false;
    const commit = this.#log.committed;
    this.#send({ type: "app", to, term: this.#term, prevIndex, prevTerm, entries, commit });
    const lastNew = prevIndex + entries.length;
    if (Math.min(commit, lastNew) > pr.commitSent) pr.commitSent = Math.min(commit, lastNew);
    pr.sent(entries.length ? lastNew : undefined);
    return true;
  }

  // Sending is lazy: proposals and acknowledgements between two `ready()` calls share appends.
  #flushReplication(): void {
    this.#flushReads();
    const last = this.#log.lastIndex();
    const commit = this.#log.committed;
    for (const [id, pr] of this.#progress) {
      if (id === this.id) continue;
      while (pr.next <= last && this.#sendAppend(id, pr, false)) {
        if (pr.state === "probe") break;
      }
      const known = Math.min(pr.match, commit);
      if (
        known > pr.commitSent && pr.next > last && !pr.isPaused() &&
        pr.match >= this.#log.snapshotIndex()
      ) {
        // Nothing new to carry the commit index, so tell it on its own, anchored at the match
        // point, which the follower is sure to accept.
        this.#send({
          type: "app",
          to: id,
          term: this.#term,
          prevIndex: pr.match,
          prevTerm: this.#log.term(pr.match) ?? 0,
          entries: [],
          commit: known,
        });
        pr.commitSent = known;
      }
    }
  }

  #send(m: Outgoing<Message>): void {
    this.#msgs.push({ ...m, from: this.id } as Message);
  }

  #hardState(): HardState {
    return { term: this.#term, vote: this.#vote, commit: this.#log.committed };
  }

  #hardStateChanged(): boolean {
    const s = this.#savedHardState;
    return s.term !== this.#term || s.vote !== this.#vote || s.commit !== this.#log.committed;
  }
}
