/**
 * The in-memory Raft log with its bookkeeping indexes: what is durable (`stabled`), committed
 * and applied. Indexes are absolute; `offset` is the index covered by the latest snapshot (0
 * without one), so term lookups, matching and conflict hints keep working after compaction.
 *
 * @module
 */
import type { Entry } from "./types.ts";

/** Thrown when an operation would break a log invariant — a bug or corrupt persisted state. */
export class LogInvariantError extends Error {
  /** `message` says which invariant. */
  constructor(message: string) {
    super(message);
    this.name = "LogInvariantError";
  }
}

/** The log of one server. */
export class RaftLog {
  #entries: Entry[];
  #offset: number;
  #offsetTerm: number;
  /** Highest index known committed. */
  committed: number;
  /** Highest index handed out for applying. */
  applied: number;
  /** Highest index known durable in storage. */
  stabled: number;

  /** A log holding `entries` (persisted, contiguous) after a snapshot at (`offset`, `offsetTerm`). */
  constructor(entries: readonly Entry[], offset = 0, offsetTerm = 0) {
    this.#offset = offset;
    this.#offsetTerm = offsetTerm;
    this.#entries = [];
    for (const e of entries) {
      const want = offset + this.#entries.length + 1;
      if (e.index !== want) {
        throw new LogInvariantError(
          `persisted log is not contiguous: expected index ${want}, found ${e.index}`,
        );
      }
      const prevTerm = this.term(want - 1) ?? 0;
      if (e.term < prevTerm) {
        throw new LogInvariantError(`persisted log has a term going backwards at index ${e.index}`);
      }
      this.#entries.push(e);
    }
    this.committed = offset;
    this.applied = offset;
    this.stabled = this.lastIndex();
  }

  /** Index of the last entry covered by the snapshot (0 without one). */
  snapshotIndex(): number {
    return this.#offset;
  }

  /** Term of that entry. */
  snapshotTerm(): number {
    return this.#offsetTerm;
  }

  /**
   * Drop the entries through `index`, which a snapshot now covers. Only committed, durable
   * entries may go.
   */
  compact(index: number): void {
    if (index <= this.#offset) return;
    const term = this.term(index);
    if (term === undefined) {
      throw new LogInvariantError(`compact to ${index}, beyond the last index ${this.lastIndex()}`);
    }
    if (index > this.committed) {
      throw new LogInvariantError(`compact to ${index}, beyond the commit index ${this.committed}`);
    }
    this.#entries = this.#entries.slice(index - this.#offset);
    this.#offset = index;
    this.#offsetTerm = term;
    if (this.stabled < index) this.stabled = index;
    if (this.applied < index) this.applied = index;
  }

  /**
   * Replace the whole log with a snapshot's position: the snapshot came from the leader and the
   * log does not continue it. Everything through `index` is committed and (once the state machine
   * loads the snapshot) applied.
   */
  restore(index: number, term: number): void {
    this.#entries = [];
    this.#offset = index;
    this.#offsetTerm = term;
    this.committed = index;
    this.applied = index;
    this.stabled = index;
  }

  /** The first index still held in the log (the snapshot covers everything before it). */
  firstIndex(): number {
    return this.#offset + 1;
  }

  /** The index of the last entry (the snapshot's index when the log is empty). */
  lastIndex(): number {
    return this.#offset + this.#entries.length;
  }

  /** The term of the last entry. */
  lastTerm(): number {
    return this.#entries.length ? this.#entries[this.#entries.length - 1].term : this.#offsetTerm;
  }

  /** The term at `index`, or undefined when it is compacted away or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.#offset) return this.#offsetTerm;
    if (index < this.#offset || index > this.lastIndex()) return undefined;
    return this.#entries[index - this.#offset - 1].term;
  }

  /** Whether the log holds an entry with this index and term (the log-matching check). */
  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** The entry at `index`, if held. */
  entry(index: number): Entry | undefined {
    if (index <= this.#offset || index > this.lastIndex()) return undefined;
    return this.#entries[index - this.#offset - 1];
  }

  /** Entries with indexes in [lo, hi), lo ≥ firstIndex(). */
  slice(lo: number, hi: number): Entry[] {
    if (lo <= this.#offset) {
      throw new LogInvariantError(`slice from ${lo}, but the log starts at ${this.firstIndex()}`);
    }
    const end = Math.min(hi, this.lastIndex() + 1);
    if (lo >= end) return [];
    return this.#entries.slice(lo - this.#offset - 1, end - this.#offset - 1);
  }

  /**
   * Entries from `lo` on, as many as fit in `maxBytes` of command data (always at least one),
   * and at most `maxCount`.
   */
  sliceLimited(lo: number, maxCount: number, maxBytes: number): Entry[] {
    const out: Entry[] = [];
    const last = this.lastIndex();
    let bytes = 0;
    for (let i = lo; i <= last && out.length < maxCount; i++) {
      const e = this.#entries[i - this.#offset - 1];
      bytes += e.data.length;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /** Whether a log ending at (`lastIndex`, `lastTerm`) is at least as up to date as this one (§5.4.1). */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Append entries that continue or overwrite the log; never overwrites a committed entry. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0].index;
    if (first <= this.committed) {
      throw new LogInvariantError(
        `append at ${first} would overwrite committed index ${this.committed}`,
      );
    }
    if (first > this.lastIndex() + 1) {
      throw new LogInvariantError(`append at ${first} leaves a gap after ${this.lastIndex()}`);
    }
    if (first <= this.lastIndex()) {
      this.#entries.length = first - this.#offset - 1;
      if (this.stabled >= first) this.stabled = first - 1;
    }
    for (const e of entries) this.#entries.push(e);
  }

  /**
   * The follower's side of AppendEntries: when the log matches at (`prevIndex`, `prevTerm`),
   * append what is new (truncating only at a real conflict, so a stale or duplicated message
   * never removes entries) and advance the commit; returns the last index now known to match the
   * leader, or -1 when the log does not match.
   */
  maybeAppend(
    prevIndex: number,
    prevTerm: number,
    leaderCommit: number,
    entries: readonly Entry[],
  ): number {
    if (!this.matchTerm(prevIndex, prevTerm)) return -1;
    const lastNew = prevIndex + entries.length;
    const conflict = this.#findConflict(entries);
    if (conflict > 0) this.append(entries.slice(conflict - entries[0].index));
    this.commitTo(Math.min(leaderCommit, lastNew));
    return lastNew;
  }

  /** The first index whose entry differs from (or is missing in) the log, or 0 if all match. */
  #findConflict(entries: readonly Entry[]): number {
    for (const e of entries) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index ≤ `index` whose term is ≤ `term` (at least the snapshot index). Used on
   * both sides of a rejection to skip every entry of a term the other side does not have.
   */
  findConflictByTerm(index: number, term: number): number {
    let i = Math.min(index, this.lastIndex());
    while (i > this.#offset) {
      if (this.#entries[i - this.#offset - 1].term <= term) return i;
      i--;
    }
    return this.#offset;
  }

  /** Raise the commit index (never lowers it). */
  commitTo(index: number): void {
    if (index <= this.committed) return;
    if (index > this.lastIndex()) {
      throw new LogInvariantError(`commit ${index} is beyond the last index ${this.lastIndex()}`);
    }
    this.committed = index;
  }

  /** Whether committed entries wait to be applied. */
  hasNextCommitted(): boolean {
    return this.committed > this.applied;
  }

  /** The committed entries not yet applied, in order, up to `maxBytes` of data (at least one). */
  nextCommitted(maxBytes: number): Entry[] {
    if (!this.hasNextCommitted()) return [];
    const count = this.committed - this.applied;
    return this.sliceLimited(this.applied + 1, count, maxBytes);
  }

  /** Record that entries through `index` were applied. */
  appliedTo(index: number): void {
    if (index > this.committed) {
      throw new LogInvariantError(`applied ${index} beyond commit ${this.committed}`);
    }
    if (index > this.applied) this.applied = index;
  }

  /** Record that entries through (`index`, `term`) are durable — unless they were replaced meanwhile. */
  stableTo(index: number, term: number): void {
    if (this.matchTerm(index, term) && index > this.stabled) this.stabled = index;
  }

  /** Entries not yet durable. */
  unstable(): Entry[] {
    return this.slice(this.stabled + 1, this.lastIndex() + 1);
  }

  /** Whether some entries are not yet durable. */
  hasUnstable(): boolean {
    return this.stabled < this.lastIndex();
  }
}
