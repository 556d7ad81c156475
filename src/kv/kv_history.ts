/**
 * The KV store's retained change history: the most recent changes, bounded by count and bytes,
 * and the revision below which changes may be missing. What watches replay from.
 *
 * @module
 */
import { utf8Length } from "./kv_cbor.ts";
import { KvCompactedError } from "./kv_errors.ts";
import type { KvChange, KvChangesPage } from "./kv_query.ts";

/** Bounds of the history. A change over `maxBytes` by itself is dropped at once. */
export interface ChangeHistoryLimits {
  /** Most changes kept. */
  readonly maxChanges: number;
  /** Most bytes kept, counting each change's key, value and a fixed overhead. */
  readonly maxBytes: number;
}

/** Bookkeeping bytes charged per change on top of its key and value. */
const CHANGE_OVERHEAD_BYTES = 32;

/** The bytes a change is charged in the history's byte bound. */
export function changeBytes(c: KvChange): number {
  return CHANGE_OVERHEAD_BYTES + utf8Length(c.key) + (c.kind === "put" ? c.value.length : 0);
}

/** Changes in revision order, oldest trimmed first. */
export class ChangeHistory {
  readonly #limits: ChangeHistoryLimits;
  // Retained changes are #items[#head..]; trimming advances #head and compacts now and then, so
  // dropping the oldest change is O(1).
  #items: KvChange[] = [];
  #head = 0;
  #bytes = 0;
  #compactedThrough: number;

  /** An empty history; changes through `compactedThrough` count as already trimmed. */
  constructor(limits: ChangeHistoryLimits, compactedThrough = 0) {
    this.#limits = limits;
    this.#compactedThrough = compactedThrough;
  }

  /** The highest revision whose change may have been trimmed (0 when none was). */
  get compactedThrough(): number {
    return this.#compactedThrough;
  }

  /** The oldest revision from which every change is retained. */
  get oldestRevision(): number {
    return this.#compactedThrough + 1;
  }

  /** Number of changes retained. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Bytes retained, as the byte bound counts them. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Record `change` (its revision above every retained one), then trim to the bounds. */
  push(change: KvChange): void {
    this.#items.push(change);
    this.#bytes += changeBytes(change);
    const { maxChanges, maxBytes } = this.#limits;
    while (this.length > 0 && (this.length > maxChanges || this.#bytes > maxBytes)) {
      const dropped = this.#items[this.#head++];
      this.#bytes -= changeBytes(dropped);
      this.#compactedThrough = dropped.revision;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }

  /**
   * Retained changes with revision ≥ `fromRevision` under `prefix`, at most `limit` of them and,
   * beyond the first, at most `maxBytes` of keys and values.
   *
   * @throws {KvCompactedError} when changes at or after `fromRevision` may have been trimmed.
   */
  since(
    prefix: string,
    fromRevision: number,
    limit: number,
    maxBytes: number,
    appliedIndex: number,
  ): KvChangesPage {
    this.assertRetained(fromRevision);
    const changes: KvChange[] = [];
    let bytes = 0;
    for (const c of this.from(fromRevision)) {
      if (!c.key.startsWith(prefix)) continue;
      const size = changeBytes(c) - CHANGE_OVERHEAD_BYTES;
      if (changes.length >= limit || (changes.length > 0 && bytes + size > maxBytes)) {
        return { changes, next: changes[changes.length - 1].revision + 1 };
      }
      changes.push(c);
      bytes += size;
    }
    return { changes, next: Math.max(fromRevision, appliedIndex + 1) };
  }

  /**
   * Fail unless every change with revision ≥ `fromRevision` is retained.
   *
   * @throws {KvCompactedError} naming the oldest available revision.
   */
  assertRetained(fromRevision: number): void {
    if (fromRevision <= this.#compactedThrough) {
      throw new KvCompactedError(fromRevision, this.oldestRevision);
    }
  }

  /** Retained changes with revision ≥ `fromRevision`, in order. Do not push while iterating. */
  *from(fromRevision: number): IterableIterator<KvChange> {
    const items = this.#items;
    let lo = this.#head;
    let hi = items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (items[mid].revision < fromRevision) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < items.length; i++) yield items[i];
  }
}
