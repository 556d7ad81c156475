/**
 * The contract every storage adapter keeps: durable Raft state (hard state and log), loaded once
 * at start and saved from each `Ready` before any message that depends on it is sent.
 *
 * @module
 */
import type { Entry, HardState, PersistedState, Snapshot } from "../core/types.ts";

/** A value or a promise of it: synchronous adapters (memory) return plain values. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * What one save persists: the part of a `Ready` that must be durable, applied in this order:
 *
 * 1. `snapshot`, when present, replaces the saved snapshot and every saved entry up to its
 *    index. Saved entries after its index survive only if the saved log holds an entry with the
 *    snapshot's index and term (the log continues the snapshot); otherwise they are all dropped.
 * 2. `entries` replace any saved entries from `entries[0].index` on, and extend the log.
 * 3. `hardState` replaces the saved hard state.
 *
 * All of it survives a crash, or none of it does.
 */
export interface StorageUpdate {
  /** New hard state, when it changed. */
  readonly hardState?: HardState;
  /** Entries to append; they replace any saved entries from `entries[0].index` on. */
  readonly entries: readonly Entry[];
  /** A newer snapshot to keep, when there is one. */
  readonly snapshot?: Snapshot;
}

/**
 * Durable Raft state. `save` must be atomic (all of an update or none of it survives a crash)
 * and durable when it resolves; saves are issued one at a time, in order.
 */
export interface Storage {
  /** The state saved so far (empty hard state and log for a new server). */
  load(): MaybePromise<PersistedState>;
  /** Persist one update; resolve (or return) only once it survives a crash. */
  save(update: StorageUpdate): MaybePromise<void>;
  /** Release files, handles and locks. */
  close(): MaybePromise<void>;
}
