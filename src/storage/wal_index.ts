/**
 * `WalIndex`: the state a write-ahead log describes, without the entries' bytes — the hard
 * state, the snapshot reference, and for each entry after the snapshot its term and where its
 * record lies (segment, offset, length). Replay builds one from the files; `FileStorage` keeps
 * one up to date as saves are accepted, to check them and to find entries on disk.
 *
 * @module
 */
import type { HardState } from "../core/types.ts";
import { EMPTY_HARD_STATE } from "../core/types.ts";
import type { SnapshotRef } from "./wal_format.ts";

/** The term recorded for an entry known to exist whose record is in a deleted segment. */
export const UNKNOWN_TERM: number = -1;

/** The log state described by a write-ahead log, entry positions included. */
export class WalIndex {
  /** The current hard state. */
  hardState: HardState = EMPTY_HARD_STATE;
  /** The current snapshot, if any. */
  snapshot: SnapshotRef | undefined = undefined;
  /** The snapshot's index (0 without one): entries start at `base + 1`. */
  base = 0;
  /** Term of entry `base + 1 + i` at `i`; `UNKNOWN_TERM` where replay has not seen it. */
  readonly terms: number[] = [];
  /** Segment id holding entry `base + 1 + i`'s record. */
  readonly segs: number[] = [];
  /** Offset of that record within its segment. */
  readonly offs: number[] = [];
  /** Length of that entry's command. */
  readonly lens: number[] = [];
  // The commands themselves, kept only while replaying, for the first `load()`.
  #datas: Uint8Array[] | undefined;

  /** An empty log; `keepData` keeps each entry's command until `takeData()`. */
  constructor(keepData = false) {
    this.#datas = keepData ? [] : undefined;
  }

  /** The kept commands, aligned with `terms`; stops keeping them. */
  takeData(): Uint8Array[] | undefined {
    const d = this.#datas;
    this.#datas = undefined;
    return d;
  }

  /** Index of the last entry (the snapshot's index when there are none). */
  get lastIndex(): number {
    return this.base + this.terms.length;
  }

  /** Whether the log holds the entry (`index`, `term`): the test for keeping a log on a snapshot. */
  continues(index: number, term: number): boolean {
    if (index <= this.base || index > this.lastIndex) return false;
    return this.terms[index - this.base - 1] === term;
  }

  /** Term of the entry at `index` when it is held and known. */
  termAt(index: number): number | undefined {
    if (index <= this.base || index > this.lastIndex) return undefined;
    const t = this.terms[index - this.base - 1];
    return t === UNKNOWN_TERM ? undefined : t;
  }

  /**
   * Put the entry at `index`, dropping any entry at `index` and after.
   *
   * @throws {RangeError} when `index` is inside the snapshot or leaves a gap.
   */
  put(index: number, term: number, seg: number, off: number, len: number, data?: Uint8Array) {
    if (index <= this.base || index > this.lastIndex + 1) {
      throw new RangeError(
        `entry ${index} does not follow the log (snapshot at ${this.base}, last index ${this.lastIndex})`,
      );
    }
    const at = index - this.base - 1;
    if (at < this.terms.length) this.#truncate(at);
    this.terms.push(term);
    this.segs.push(seg);
    this.offs.push(off);
    this.lens.push(len);
    if (this.#datas) this.#datas.push(data ?? new Uint8Array(0));
  }

  #truncate(n: number): void {
    this.terms.length = n;
    this.segs.length = n;
    this.offs.length = n;
    this.lens.length = n;
    if (this.#datas) this.#datas.length = n;
  }

  /**
   * Install a snapshot: drop every entry up to its index, and the rest too unless `keep` (the log
   * continues the snapshot). `keep` is the decision recorded when the snapshot was saved.
   *
   * @throws {RangeError} when `keep` is set but the log does not reach the snapshot's index.
   */
  installSnapshot(ref: SnapshotRef, keep: boolean): void {
    if (keep) {
      const n = ref.index - this.base;
      if (n < 1 || n > this.terms.length) {
        throw new RangeError(
          `snapshot at ${ref.index} kept the log, which holds ${this.base + 1}..${this.lastIndex}`,
        );
      }
      this.terms.splice(0, n);
      this.segs.splice(0, n);
      this.offs.splice(0, n);
      this.lens.splice(0, n);
      this.#datas?.splice(0, n);
    } else {
      this.#truncate(0);
    }
    this.base = ref.index;
    this.snapshot = ref;
  }

  /**
   * Start from a segment header's checkpoint: its hard state and snapshot, and entries up to its
   * last index marked as existing but unknown (their records were in deleted segments; a later
   * snapshot must cover them).
   */
  startFrom(hardState: HardState, snapshot: SnapshotRef | undefined, lastIndex: number): void {
    this.#truncate(0);
    this.hardState = hardState;
    this.snapshot = snapshot;
    this.base = snapshot?.index ?? 0;
    for (let i = this.base + 1; i <= lastIndex; i++) {
      this.put(i, UNKNOWN_TERM, -1, -1, 0);
    }
  }

  /** The first entry still unknown after replay, if any: its record was lost. */
  firstUnknown(): number | undefined {
    const at = this.terms.indexOf(UNKNOWN_TERM);
    return at < 0 ? undefined : this.base + 1 + at;
  }
}
