/**
 * Storage held in memory, for tests and simulations, with crash semantics: `crashCopy()` yields
 * what a restarted server would find, and the crashed server's instance can no longer write.
 *
 * @module
 */
import type { Entry, HardState, PersistedState, Snapshot } from "../core/types.ts";
import { EMPTY_HARD_STATE } from "../core/types.ts";
import type { Storage, StorageUpdate } from "./storage.ts";

/** How to create a `MemoryStorage`. */
export interface MemoryStorageOptions {
  /** State to start from, as if it had been saved; copied. Its entries must be contiguous. */
  readonly initial?: PersistedState;
}

/** Estimated encoded size of a hard state besides the vote's id: term, commit, framing. */
const HARD_STATE_OVERHEAD = 24;
/** Estimated encoded size of an entry besides its command: index, term, length. */
const ENTRY_OVERHEAD = 16;

/** Throws unless `entries` have consecutive indexes starting at 1 or more. */
function checkContiguous(entries: readonly Entry[], what: string): void {
  if (entries.length === 0) return;
  const first = entries[0].index;
  if (!Number.isInteger(first) || first < 1) {
    throw new Error(`MemoryStorage: ${what} starts at invalid index ${first}`);
  }
  for (let i = 1; i < entries.length; i++) {
    if (entries[i].index !== first + i) {
      throw new Error(
        `MemoryStorage: ${what} not contiguous: index ${entries[i].index} follows ${
          entries[i - 1].index
        }`,
      );
    }
  }
}

/** Estimated encoded size of `entries[from..to)`. */
function entriesSize(entries: readonly Entry[], from: number, to: number): number {
  let size = 0;
  for (let i = from; i < to; i++) size += ENTRY_OVERHEAD + entries[i].data.length;
  return size;
}

/**
 * A synchronous `Storage` in memory. Every `save` is complete when it returns, so a crash at any
 * point between saves loses nothing that was saved.
 *
 * @example
 * ```ts
 * const storage = new MemoryStorage();
 * storage.save({ hardState: { term: 1, vote: "a", commit: 0 }, entries: [] });
 * const afterCrash = storage.crashCopy(); // hand this to the restarted server
 * ```
 */
export class MemoryStorage implements Storage {
  #hardState: HardState;
  #entries: Entry[];
  #snapshot: Snapshot | undefined;
  #closedReason: string | null = null;
  // Kept up to date on every save so raftStateSize() stays O(1) on long logs.
  #entriesSize = 0;

  /**
   * Create an empty storage, or one holding `options.initial`.
   *
   * @throws {Error} when the initial entries are not contiguous.
   */
  constructor(options: MemoryStorageOptions = {}) {
    const initial = options.initial;
    this.#hardState = initial?.hardState ?? EMPTY_HARD_STATE;
    this.#entries = initial === undefined ? [] : initial.entries.slice();
    this.#snapshot = initial?.snapshot;
    checkContiguous(this.#entries, "initial entries");
    if (
      this.#snapshot && this.#entries.length > 0 &&
      this.#entries[0].index !== this.#snapshot.index + 1
    ) {
      throw new Error(
        `MemoryStorage: initial entries start at ${
          this.#entries[0].index
        }, not right after the snapshot at ${this.#snapshot.index}`,
      );
    }
    this.#entriesSize = entriesSize(this.#entries, 0, this.#entries.length);
  }

  /** The saved state; the entries array is a copy (the entries themselves are immutable). */
  load(): PersistedState {
    return { hardState: this.#hardState, entries: this.#entries.slice(), snapshot: this.#snapshot };
  }

  /**
   * Apply `update` at once and in full, in the order `StorageUpdate` defines: the snapshot (which
   * replaces the entries it covers, and the rest of the log unless the log continues it), then
   * the entries, which replace every saved entry from `entries[0].index` on, then the hard state.
   *
   * @throws {Error} when closed, when the entries are not contiguous, or when they would leave a
   * gap after the last saved entry. Nothing is changed then.
   */
  save(update: StorageUpdate): void {
    if (this.#closedReason !== null) {
      throw new Error(`MemoryStorage: closed (${this.#closedReason}); save refused`);
    }
    const entries = update.entries;
    checkContiguous(entries, "entries to save");
    const snap = update.snapshot;
    if (entries.length > 0) {
      const first = entries[0].index;
      const last = snap && !this.#continues(snap)
        ? snap.index
        : Math.max(this.lastIndex, snap?.index ?? 0);
      const covered = snap?.index ?? this.#snapshot?.index ?? 0;
      if (first <= covered) {
        throw new Error(
          `MemoryStorage: entries start at ${first}, inside the snapshot (index ${covered})`,
        );
      }
      if (snap && first <= snap.index) {
        throw new Error(
          `MemoryStorage: entries start at ${first}, inside the snapshot saved with them (index ${snap.index})`,
        );
      }
      if (first > last + 1) {
        throw new Error(
          `MemoryStorage: entries start at ${first}, leaving a gap after last saved index ${last}`,
        );
      }
    }
    if (snap) this.#saveSnapshot(snap);
    if (entries.length > 0) {
      const first = entries[0].index;
      const log = this.#entries;
      const offset = log.length === 0 ? 0 : first - log[0].index;
      if (offset <= 0) {
        this.#entries = entries.slice();
        this.#entriesSize = entriesSize(entries, 0, entries.length);
      } else {
        this.#entriesSize -= entriesSize(log, offset, log.length);
        log.length = offset;
        for (const e of entries) log.push(e);
        this.#entriesSize += entriesSize(entries, 0, entries.length);
      }
    }
    if (update.hardState !== undefined) this.#hardState = update.hardState;
  }

  // Whether the saved log holds the snapshot's last entry, so the entries after it continue it.
  #continues(snap: Snapshot): boolean {
    const log = this.#entries;
    if (log.length === 0) return false;
    const e = log[snap.index - log[0].index];
    return e !== undefined && e.term === snap.term;
  }

  #saveSnapshot(snap: Snapshot): void {
    const log = this.#entries;
    const keep = this.#continues(snap) ? log.slice(snap.index - log[0].index + 1) : [];
    this.#entries = keep;
    this.#entriesSize = entriesSize(keep, 0, keep.length);
    this.#snapshot = snap;
  }

  /** The saved snapshot, if any. */
  get snapshot(): Snapshot | undefined {
    return this.#snapshot;
  }

  /** Refuse further saves; loading and inspection still work. */
  close(): void {
    this.#closedReason ??= "close() was called";
  }

  /**
   * What a restarted server finds after a crash: a new storage holding exactly what was saved.
   * This instance is closed, so a stale reference held by the crashed server can never write into
   * the restarted server's state.
   */
  crashCopy(): MemoryStorage {
    this.#closedReason ??= "crashCopy() was taken: this instance belongs to a crashed server";
    return new MemoryStorage({ initial: this.load() });
  }

  /** The last saved hard state. */
  get hardState(): HardState {
    return this.#hardState;
  }

  /** The saved entries. A live view: later saves change it; copy it to keep a snapshot. */
  get entries(): readonly Entry[] {
    return this.#entries;
  }

  /** Index of the last saved entry (the snapshot's index when the log is empty). */
  get lastIndex(): number {
    const log = this.#entries;
    return log.length === 0 ? (this.#snapshot?.index ?? 0) : log[log.length - 1].index;
  }

  /**
   * Estimated encoded size in bytes of the saved Raft state (the lab's "persisted state size"):
   * 24 plus the vote's length for the hard state, and 16 plus the command's length per entry.
   * A stand-in for the size of the real encoding; the vote's length counts UTF-16 code units.
   */
  raftStateSize(): number {
    return HARD_STATE_OVERHEAD + this.#hardState.vote.length + this.#entriesSize;
  }
}
