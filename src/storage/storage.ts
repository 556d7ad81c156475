/**
 * The contract every storage adapter keeps: durable Raft state (hard state and log), loaded once
 * at start and saved from each `Ready` before any message that depends on it is sent.
 *
 * @module
 */
import type { Entry, HardState, PersistedState } from "../core/types.ts";

/** A value or a promise of it: synchronous adapters (memory) return plain values. */
export type MaybePromise<T> = T | Promise<T>;

/** What one save persists: the part of a `Ready` that must be durable. */
export interface StorageUpdate {
  /** New hard state, when it changed. */
  readonly hardState?: HardState;
  /** Entries to append; they replace any saved entries from `entries[0].index` on. */
  readonly entries: readonly Entry[];
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
