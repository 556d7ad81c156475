/**
 * Replay of a `FileStorage` directory: read the segments in order, check every record, apply
 * each batch once its COMMIT record is read, and decide what a damaged record means.
 *
 * - Damage in the last segment with nothing valid after it (or only records of the same, last
 *   batch) is a torn write: a crash interrupted the last write, whose saves had not been
 *   acknowledged. It is reported as a `TailRepair` (cut the segment back to the last complete
 *   batch); the caller decides whether to apply it.
 * - Any other damage — in an earlier segment, or followed by a later batch (which was only
 *   written after the damaged one had been synced) — is corruption of acknowledged data:
 *   replay stops with a `StorageCorruptionError` naming the file and offset.
 *
 * A crash can leave a torn tail only where the last write was: a write starts after the
 * previous batch's fdatasync returned, so later batches prove the damaged one was durable.
 * Known limit: a bit flip inside the last batch of the last segment cannot be told from a torn
 * write, and is repaired (with a warning naming the bytes dropped).
 *
 * @module
 */
import { join } from "node:path";
import type { FileSystem } from "./file_system.ts";
import { StorageCorruptionError } from "./storage_errors.ts";
import {
  decodeCommit,
  decodeEntry,
  decodeHardState,
  decodeSegmentHeader,
  decodeSnapshotRecord,
  isDamage,
  isSnapshotName,
  parseRecord,
  parseSegmentName,
  PayloadError,
  RECORD_TYPE_NAMES,
  type RecordDamage,
  RecordType,
  type RecordTypeCode,
  resyncRecords,
  sameRef,
  type SegmentHeader,
  segmentName,
  snapshotName,
} from "./wal_format.ts";
import { WalIndex } from "./wal_index.ts";

/** What replay found in one segment. */
export interface SegmentReport {
  /** The segment's path. */
  readonly file: string;
  /** Its id. */
  readonly id: number;
  /** Its size on disk. */
  readonly bytes: number;
  /** Bytes up to the end of its last complete batch. */
  readonly validBytes: number;
  /** Complete batches (group commits). */
  readonly batches: number;
  /** Valid records by type name, complete batches only. */
  readonly records: Readonly<Record<string, number>>;
  /** Lowest entry index among its entry records, if any. */
  readonly firstIndex: number | undefined;
  /** Highest entry index among its entry records, if any; no entry past this lives here. */
  readonly lastIndex: number | undefined;
}

/** A torn write at the end of the last segment, and how to repair it. */
export interface TailRepair {
  /** The segment's path. */
  readonly file: string;
  /** The segment's id. */
  readonly segmentId: number;
  /** Where to cut: the end of the last complete batch (0: remove the file). */
  readonly offset: number;
  /** The file's size now. */
  readonly size: number;
  /** What is wrong at the tail. */
  readonly reason: string;
}

/** The outcome of a replay. */
export interface ReplayResult {
  /** The state the log describes (entries' commands included when asked). */
  readonly index: WalIndex;
  /** Sequence number of the last complete batch (0: none). */
  readonly lastSeq: number;
  /** The segments replayed, in order. */
  readonly segments: readonly SegmentReport[];
  /** Segments older than a gap in the ids: left over from an interrupted deletion; not read. */
  readonly skippedSegments: readonly string[];
  /** The torn tail to cut, if the last write was interrupted. */
  readonly tailRepair: TailRepair | undefined;
  /** Names of the snapshot files present. */
  readonly snapshotFiles: readonly string[];
  /** Names of leftover temporary files (`*.tmp`). */
  readonly tempFiles: readonly string[];
}

/** How to replay. */
export interface ReplayOptions {
  /** Keep each entry's command in `index.datas` (for the first `load()` after opening). */
  readonly keepData?: boolean;
  /** Called with each segment's report as soon as it is read (before any later failure). */
  readonly onSegment?: (report: SegmentReport) => void;
}

interface Pending {
  readonly offset: number;
  readonly type: RecordTypeCode;
  readonly payload: Uint8Array;
}

/**
 * Replay the write-ahead log in `dir`. Reads only; a torn tail is reported, not cut.
 *
 * @throws {StorageCorruptionError} for damage that is not a torn tail, a segment that does not
 * continue the one before it, entries lost with a deleted segment, or a missing snapshot file.
 */
export function replayWal(
  fsys: FileSystem,
  dir: string,
  options: ReplayOptions = {},
): ReplayResult {
  const names = fsys.list(dir).sort();
  const ids: number[] = [];
  const snapshotFiles: string[] = [];
  const tempFiles: string[] = [];
  for (const name of names) {
    const id = parseSegmentName(name);
    if (id !== undefined) ids.push(id);
    else if (isSnapshotName(name)) snapshotFiles.push(name);
    else if (name.endsWith(".tmp")) tempFiles.push(name);
  }
  // Old segments are deleted oldest first, but a crash (or a power loss reordering the
  // deletions) can leave a gap; everything before the last gap was being deleted.
  let start = 0;
  for (let k = 1; k < ids.length; k++) if (ids[k] !== ids[k - 1] + 1) start = k;
  const skippedSegments = ids.slice(0, start).map(segmentName);
  const chain = ids.slice(start);

  const keepData = options.keepData ?? false;
  const index = new WalIndex(keepData);
  const segments: SegmentReport[] = [];
  let lastSeq = 0;
  let tailRepair: TailRepair | undefined;

  for (let k = 0; k < chain.length; k++) {
    const id = chain[k];
    const isLast = k === chain.length - 1;
    const file = join(dir, segmentName(id));
    const buf = fsys.readFile(file);
    const fatal = (offset: number, detail: string): never => {
      throw new StorageCorruptionError(file, offset, detail);
    };
    const records: Record<string, number> = {};
    let firstIndex: number | undefined;
    let lastIndex: number | undefined;
    let batches = 0;
    let pending: Pending[] = [];
    let batchStart = 0;
    let damage: RecordDamage | undefined;
    let pos = 0;

    const apply = (batch: Pending[]) => {
      for (const r of batch) {
        records[RECORD_TYPE_NAMES[r.type]] = (records[RECORD_TYPE_NAMES[r.type]] ?? 0) + 1;
        try {
          if (r.type === RecordType.ENTRY) {
            const e = decodeEntry(r.payload);
            index.put(
              e.index,
              e.term,
              id,
              r.offset,
              e.data.length,
              keepData ? e.data.slice() : undefined,
            );
            firstIndex = Math.min(firstIndex ?? e.index, e.index);
            lastIndex = Math.max(lastIndex ?? e.index, e.index);
          } else if (r.type === RecordType.HARD_STATE) {
            index.hardState = decodeHardState(r.payload);
          } else if (r.type === RecordType.SNAPSHOT) {
            const s = decodeSnapshotRecord(r.payload);
            const known = index.termAt(s.ref.index);
            if (known !== undefined && (known === s.ref.term) !== s.keep) {
              fatal(r.offset, `snapshot record's keep flag contradicts the log's term ${known}`);
            }
            index.installSnapshot(s.ref, s.keep);
          }
        } catch (e) {
          if (e instanceof PayloadError || e instanceof RangeError) {
            fatal(r.offset, `${RECORD_TYPE_NAMES[r.type]} record: ${e.message}`);
          }
          throw e;
        }
      }
    };

    while (pos < buf.length) {
      const r = parseRecord(buf, pos);
      if (isDamage(r)) {
        damage = r;
        break;
      }
      if ((pos === 0) !== (r.type === RecordType.SEGMENT_HEADER)) {
        fatal(pos, pos === 0 ? "no segment header" : "a segment header inside the segment");
      }
      if (r.type === RecordType.SEGMENT_HEADER) {
        let h: SegmentHeader;
        try {
          h = decodeSegmentHeader(r.payload);
        } catch (e) {
          if (e instanceof PayloadError) fatal(0, `segment header: ${e.message}`);
          throw e;
        }
        if (h.segmentId !== id) fatal(0, `header says segment ${h.segmentId}`);
        if (k === 0) {
          index.startFrom(h.hardState, h.snapshot, h.lastIndex);
          lastSeq = h.prevSeq;
        } else {
          const prev = segmentName(chain[k - 1]);
          const same = h.prevSeq === lastSeq && h.lastIndex === index.lastIndex &&
            h.hardState.term === index.hardState.term &&
            h.hardState.vote === index.hardState.vote &&
            h.hardState.commit === index.hardState.commit && sameRef(h.snapshot, index.snapshot);
          if (!same) {
            fatal(
              0,
              `does not continue ${prev}, which ends after batch ${lastSeq} at index ` +
                `${index.lastIndex}, while this header expects batch ${h.prevSeq} at index ` +
                `${h.lastIndex}: ${prev} is truncated or a segment is missing`,
            );
          }
        }
      }
      if (r.type === RecordType.COMMIT) {
        let seq = 0;
        try {
          seq = decodeCommit(r.payload);
        } catch (e) {
          if (e instanceof PayloadError) fatal(pos, `commit record: ${e.message}`);
          throw e;
        }
        if (seq !== lastSeq + 1) fatal(pos, `batch ${seq} follows batch ${lastSeq}`);
        records.commit = (records.commit ?? 0) + 1;
        apply(pending);
        pending = [];
        lastSeq = seq;
        batches++;
        batchStart = r.end;
      } else {
        pending.push({ offset: r.offset, type: r.type, payload: r.payload });
      }
      pos = r.end;
    }

    if (buf.length === 0) {
      // A crash between creating a segment and writing its header leaves an empty file. As the
      // last segment that is a torn tail (it held no batch, so nothing acknowledged); anywhere
      // else it is damage.
      if (!isLast) fatal(0, "an empty segment before the last one");
      tailRepair = {
        file,
        segmentId: id,
        offset: 0,
        size: 0,
        reason: "an empty segment: the crash came between creating it and writing its header",
      };
    } else if (damage !== undefined || pending.length > 0) {
      if (!isLast) {
        if (damage) fatal(damage.offset, damage.reason);
        fatal(batchStart, "the batch starting here has no commit record (the file is truncated)");
      }
      if (damage) {
        const after = resyncRecords(buf, damage.offset + 1);
        const c = after.findIndex((r) => r.type === RecordType.COMMIT);
        let later: string | undefined;
        if (c >= 0 && c < after.length - 1) {
          later = `records follow the commit record at offset ${after[c].offset}`;
        } else if (c >= 0) {
          let seq = -1;
          try {
            seq = decodeCommit(after[c].payload);
          } catch (e) {
            if (!(e instanceof PayloadError)) throw e;
          }
          if (seq !== lastSeq + 1) later = `a commit record for batch ${seq} follows`;
        }
        if (later !== undefined) {
          fatal(
            damage.offset,
            `${damage.reason}; not a torn write at the tail, because ${later}`,
          );
        }
      }
      tailRepair = {
        file,
        segmentId: id,
        offset: batchStart,
        size: buf.length,
        reason: damage
          ? `${damage.reason} at offset ${damage.offset}`
          : `no commit record after offset ${batchStart}`,
      };
    }
    const report: SegmentReport = {
      file,
      id,
      bytes: buf.length,
      validBytes: tailRepair?.segmentId === id ? tailRepair.offset : buf.length,
      batches,
      records,
      firstIndex,
      lastIndex,
    };
    segments.push(report);
    options.onSegment?.(report);
  }

  const missing = index.firstUnknown();
  if (missing !== undefined) {
    throw new StorageCorruptionError(
      segments[0].file,
      0,
      `entries from ${missing} on are missing: the segments holding them are gone and no ` +
        `snapshot covers them` +
        (tailRepair
          ? ` (the damaged last batch of ${tailRepair.file} at offset ${tailRepair.offset} must ` +
            `have held that snapshot: it is corrupt, not a torn write)`
          : ""),
    );
  }
  const snap = index.snapshot;
  if (snap !== undefined) {
    const name = snapshotName(snap.index, snap.fileId);
    const path = join(dir, name);
    const size = fsys.size(path);
    if (size === undefined) {
      throw new StorageCorruptionError(path, 0, "the log's snapshot file is missing");
    }
    if (size !== snap.size) {
      throw new StorageCorruptionError(path, 0, `${size} bytes, the log says ${snap.size}`);
    }
  }
  return { index, lastSeq, segments, skippedSegments, tailRepair, snapshotFiles, tempFiles };
}
