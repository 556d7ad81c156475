/**
 * The values the Raft core exchanges with its driver and its peers: log entries, the durable
 * hard state, one-way messages and the `Ready` batch of work. Storage and transport adapters
 * import these types and nothing else of the core.
 *
 * @module
 */

/** A server's identity in the cluster. Non-empty string, unique within a cluster. */
export type NodeId = string;

/** The id used where no server is meant (no vote cast, no known leader). */
export const NONE: NodeId = "";

/** One record of the replicated log. `index` starts at 1; `term` is the leader's term. */
export interface Entry {
  /** Position in the log, starting at 1. */
  readonly index: number;
  /** Term of the leader that created the entry. */
  readonly term: number;
  /** The application's command; opaque to Raft. */
  readonly data: Uint8Array;
}

/** The state Raft must persist before it acts on it: current term, vote in that term, commit. */
export interface HardState {
  /** Latest term this server has seen. */
  readonly term: number;
  /** Candidate this server voted for in `term`, or `NONE`. */
  readonly vote: NodeId;
  /** Highest log index known to be committed. */
  readonly commit: number;
}

/** The hard state of a server that has never run. */
export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: NONE, commit: 0 });

/** Identifies a snapshot: the last log entry it covers and the membership at that point. */
export interface SnapshotMeta {
  /** Index of the last entry the snapshot covers. */
  readonly index: number;
  /** Term of that entry. */
  readonly term: number;
  /** Voting members as of `index`. */
  readonly voters: readonly NodeId[];
}

/** A state-machine snapshot: the application's state after applying entries through `index`. */
export interface Snapshot extends SnapshotMeta {
  /** The application's serialized state; opaque to Raft. */
  readonly data: Uint8Array;
}

/** What a server persisted, handed back to the core when it restarts. */
export interface PersistedState {
  /** The last saved hard state. */
  readonly hardState: HardState;
  /** The saved log after the snapshot, contiguous, in index order. */
  readonly entries: readonly Entry[];
  /** The latest saved snapshot, if any; `entries` continue from `snapshot.index + 1`. */
  readonly snapshot?: Snapshot;
}

/** The roles a server moves between. `precandidate` is the pre-vote phase (Raft thesis §9.6). */
export type Role = "follower" | "precandidate" | "candidate" | "leader";

/** Fields every message carries. */
export interface MessageBase {
  /** Sender's current term (for a pre-vote request: the term it would campaign in). */
  readonly term: number;
  /** Sender. */
  readonly from: NodeId;
  /** Receiver. */
  readonly to: NodeId;
}

/** RequestVote (`vote`) or its dry run (`prevote`): "make me leader of `term`". */
export interface VoteRequest extends MessageBase {
  /** `prevote` asks without disturbing anyone's term; `vote` is the real election. */
  readonly type: "vote" | "prevote";
  /** Index of the candidate's last log entry. */
  readonly lastIndex: number;
  /** Term of the candidate's last log entry. */
  readonly lastTerm: number;
}

/** The answer to a `VoteRequest`. */
export interface VoteResponse extends MessageBase {
  /** Answers `vote` or `prevote`. */
  readonly type: "voteResp" | "prevoteResp";
  /** True when the vote is refused. */
  readonly reject: boolean;
}

/** AppendEntries: entries after (`prevIndex`, `prevTerm`) and the leader's commit index. */
export interface AppendRequest extends MessageBase {
  /** Discriminator. */
  readonly type: "app";
  /** Index of the entry just before `entries`. */
  readonly prevIndex: number;
  /** Term of that entry. */
  readonly prevTerm: number;
  /** New entries, possibly none (a probe or a commit update). */
  readonly entries: readonly Entry[];
  /** Leader's commit index. */
  readonly commit: number;
}

/**
 * The answer to an `AppendRequest`. On success `index` is the last index now known to match the
 * leader. On rejection `index` is the rejected `prevIndex`, and the hint is the follower's last
 * index at or below it whose term is at most the leader's `prevTerm` — enough for the leader to
 * skip a whole divergent term in one round.
 */
export interface AppendResponse extends MessageBase {
  /** Discriminator. */
  readonly type: "appResp";
  /** True when the log-matching check failed. */
  readonly reject: boolean;
  /** Matched index on success; the rejected `prevIndex` on rejection. */
  readonly index: number;
  /** On rejection: a candidate index for the next probe. */
  readonly hintIndex: number;
  /** On rejection: the follower's term at `hintIndex`. */
  readonly hintTerm: number;
}

/** Leader's heartbeat: asserts leadership and passes on the commit index the receiver can use. */
export interface Heartbeat extends MessageBase {
  /** Discriminator. */
  readonly type: "hb";
  /** min(receiver's match index, leader's commit). */
  readonly commit: number;
  /** The leader's latest ReadIndex round when it sent this; echoed back to confirm reads. */
  readonly ctx: number;
}

/** The answer to a heartbeat. */
export interface HeartbeatResponse extends MessageBase {
  /** Discriminator. */
  readonly type: "hbResp";
  /** The heartbeat's `ctx`, echoed. */
  readonly ctx: number;
}

/**
 * One chunk of InstallSnapshot. A transfer is identified by the snapshot's index and term, its
 * size and checksum, so a receiver can resume one that a lost message, a timeout or a leader
 * change interrupted. A chunk without data asks the receiver how much it already holds.
 */
export interface SnapshotChunk extends MessageBase {
  /** Discriminator. */
  readonly type: "snap";
  /** Which snapshot. */
  readonly snapshot: SnapshotMeta;
  /** Total bytes of the snapshot's data. */
  readonly size: number;
  /** FNV-1a checksum of the whole data, checked before installing. */
  readonly checksum: number;
  /** Offset of `data` within the snapshot's data. */
  readonly offset: number;
  /** The chunk; empty for a progress query. */
  readonly data: Uint8Array;
}

/** Acknowledges snapshot chunks: how many bytes of the snapshot the receiver holds from 0. */
export interface SnapshotAck extends MessageBase {
  /** Discriminator. */
  readonly type: "snapResp";
  /** Index of the snapshot being transferred. */
  readonly index: number;
  /** Bytes held contiguously from the start. */
  readonly received: number;
  /**
   * The receiver's id for its partial copy. It changes when the receiver starts over (after a
   * restart, or for another snapshot), which tells the sender that a lower `received` is news
   * and not a stale acknowledgement overtaken by a newer one.
   */
  readonly transfer: number;
}

/** Every message Raft servers exchange. All are one-way; a response is just another message. */
export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | Heartbeat
  | HeartbeatResponse
  | SnapshotChunk
  | SnapshotAck;

/** Message type names. */
export type MessageType = Message["type"];

/** The message types that start an exchange (what the 6.5840 lab counts as RPCs). */
export const REQUEST_TYPES: ReadonlySet<MessageType> = new Set<MessageType>([
  "vote",
  "prevote",
  "app",
  "hb",
  "snap",
]);

/** A linearizable read became safe: once `index` is applied, the state answers read `ctx`. */
export interface ReadState {
  /** The caller's id for the read, as passed to `readIndex`. */
  readonly ctx: number;
  /** The commit index when the read arrived; the read must see the state through it. */
  readonly index: number;
}

/**
 * One batch of work the driver must do, in this order: persist `snapshot`, `entries` and
 * `hardState` in one atomic save (see `StorageUpdate`), then send `messages`, then restore the
 * state machine from `restore` if present, then apply `committed`; then call `advance(ready)`.
 */
export interface Ready {
  /** A snapshot to persist (a compaction, or one received from the leader). */
  readonly snapshot?: Snapshot;
  /** A snapshot the state machine must load before applying `committed`. */
  readonly restore?: Snapshot;
  /** The hard state to persist, when it changed since the last `Ready`. */
  readonly hardState?: HardState;
  /** Log entries to persist, contiguous; they replace saved entries at the same indexes and after. */
  readonly entries: readonly Entry[];
  /** Messages to send once the above is durable (or at once, with `sendFirst`). */
  readonly messages: readonly Message[];
  /**
   * The messages may go before the save completes: they come from a leader whose term and vote
   * are already durable, and it counts its own entries toward commit only once `advance` says
   * they are durable (Raft thesis §10.2.1).
   */
  readonly sendFirst: boolean;
  /** Reads confirmed by a quorum since the last `Ready` (ReadIndex, thesis §6.4). */
  readonly readStates: readonly ReadState[];
  /** Committed entries to apply to the state machine, in index order, none twice. */
  readonly committed: readonly Entry[];
}
