/**
 * What a leader knows of each follower's log: how far it matches, what to send next, and how
 * many appends are in flight. A follower whose position is unknown is probed one message at a
 * time; once it answers, the leader streams to it optimistically (pipelining) within a bounded window of appends.
 *
 * @module
 */
import type { Snapshot } from "./types.ts";

/**
 * `probe`: one append at a time until the match point is found; `replicate`: pipelined;
 * `snapshot`: the follower needs entries the leader compacted away, so it gets a snapshot.
 */
export type ProgressState = "probe" | "replicate" | "snapshot";

/** A snapshot transfer to one follower, in bytes. */
export interface SnapshotTransfer {
  /** The snapshot being sent (kept even if the leader compacts again meanwhile). */
  readonly snapshot: Snapshot;
  /** Its size. */
  readonly size: number;
  /** Its checksum. */
  readonly checksum: number;
  /** Bytes sent (the next chunk starts here). */
  sent: number;
  /** Bytes the follower acknowledged holding. */
  acked: number;
  /** Ticks since the last acknowledgement that moved `acked`. */
  idleTicks: number;
  /** The receiver's id for its partial copy, from its last acknowledgement (0: none yet). */
  peerTransfer: number;
  /** The offset last resent from after a repeated acknowledgement (-1: none). */
  resentFrom: number;
}

/** The last indexes of appends in flight to one follower, oldest first, bounded by `capacity`. */
export class Inflights {
  #buffer: number[];
  #start = 0;
  #count = 0;

  /** A window of at most `capacity` appends. */
  constructor(readonly capacity: number) {
    this.#buffer = new Array(capacity).fill(0);
  }

  /** Number of appends in flight. */
  get count(): number {
    return this.#count;
  }

  /** Whether no more appends may be sent. */
  full(): boolean {
    return this.#count >= this.capacity;
  }

  /** Record an append whose last entry has index `last`. */
  add(last: number): void {
    if (this.full()) throw new Error("Inflights.add on a full window");
    this.#buffer[(this.#start + this.#count) % this.capacity] = last;
    this.#count++;
  }

  /** Forget every append whose last index is ≤ `index` (acknowledged). */
  freeLE(index: number): void {
    while (this.#count > 0 && this.#buffer[this.#start] <= index) {
      this.#start = (this.#start + 1) % this.capacity;
      this.#count--;
    }
  }

  /** Forget the oldest append (presumed lost), making room for one more. */
  freeFirst(): void {
    if (this.#count === 0) return;
    this.#start = (this.#start + 1) % this.capacity;
    this.#count--;
  }

  /** Forget everything. */
  reset(): void {
    this.#start = 0;
    this.#count = 0;
  }
}

/** The leader's view of one follower (or of itself). */
export class Progress {
  /** Highest index known to match the leader's log. */
  match = 0;
  /** Next index to send. */
  next: number;
  /** How the leader is sending to this follower. */
  state: ProgressState = "probe";
  /** In probe state: an append is out and unanswered. */
  probeSent = false;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** Highest commit index this follower has been told. */
  commitSent = 0;
  /** Appends in flight (replicate state). */
  readonly inflights: Inflights;
  /** The snapshot transfer (snapshot state). */
  transfer: SnapshotTransfer | undefined;

  /** A follower to send from `next`, with a window of `maxInflight` appends. */
  constructor(next: number, maxInflight: number) {
    this.next = next;
    this.inflights = new Inflights(maxInflight);
  }

  /** Probe from just after the match point (or after the snapshot just sent). */
  becomeProbe(): void {
    const after = this.state === "snapshot" && this.transfer
      ? Math.max(this.match, this.transfer.snapshot.index)
      : this.match;
    this.state = "probe";
    this.transfer = undefined;
    this.next = after + 1;
    this.probeSent = false;
    this.inflights.reset();
  }

  /** Stream from just after the match point. */
  becomeReplicate(): void {
    this.state = "replicate";
    this.transfer = undefined;
    this.next = this.match + 1;
    this.probeSent = false;
    this.inflights.reset();
  }

  /** Send `snapshot` instead of entries. */
  becomeSnapshot(snapshot: Snapshot, checksum: number): void {
    this.state = "snapshot";
    this.probeSent = false;
    this.inflights.reset();
    this.transfer = {
      snapshot,
      size: snapshot.data.length,
      checksum,
      sent: 0,
      acked: 0,
      idleTicks: 0,
      peerTransfer: 0,
      resentFrom: -1,
    };
  }

  /** Whether the leader must wait before sending another append. */
  isPaused(): boolean {
    if (this.state === "snapshot") return true;
    return this.state === "probe" ? this.probeSent : this.inflights.full();
  }

  /** The follower acknowledged `index`; returns whether that is news. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (index > this.match) {
      this.match = index;
      this.probeSent = false;
      updated = true;
    }
    if (this.next < index + 1) this.next = index + 1;
    return updated;
  }

  /**
   * The follower rejected an append at `rejected`; `probeFrom` is the leader's best guess of the
   * match point from the follower's hint. Returns false when the rejection is stale (answers a
   * message sent before the leader last changed course).
   */
  maybeDecrTo(rejected: number, probeFrom: number): boolean {
    if (this.state === "snapshot") return false;
    if (this.state === "replicate") {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, probeFrom + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Record an append carrying entries through `last` (or none, when `last` is undefined). */
  sent(last: number | undefined): void {
    if (this.state === "replicate") {
      if (last !== undefined) {
        this.next = last + 1;
        this.inflights.add(last);
      }
    } else {
      this.probeSent = true;
    }
  }
}
