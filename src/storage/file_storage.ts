/**
 * `FileStorage`: durable Raft state in a directory, as a segmented write-ahead log with a
 * CRC-32C on every record, fdatasync before a save resolves, group commit, torn-tail repair and
 * snapshots in their own files. Runs on `node:fs`, so the same code serves Deno and Node. The
 * on-disk format is described in `wal_format.ts`; recovery rules in `wal_replay.ts`.
 *
 * How a save becomes durable. Saves are encoded when they are called, in call order, into the
 * open batch; one batch at a time is written (one `write`) and synced (one `fdatasync`); saves
 * that arrive while a sync runs join the next batch and share its sync. A batch ends with a
 * COMMIT record, and replay applies a batch only once it reads that record, so each save —
 * snapshot, entries and hard state — survives whole or not at all.
 *
 * The commit point of a save with a snapshot: the snapshot's data goes first to
 * `snap-<index>-<id>.snap.tmp`, which is fsynced, renamed to its final name, and the directory
 * fsynced; until the log points at it, that file is an orphan that recovery deletes. Then the
 * batch holding the save's SNAPSHOT record, its entries, hard state and the batch's COMMIT is
 * written to the log. The save is committed when that write's fdatasync returns (plus, for the
 * first batch of a new segment file, the directory fsync that makes the file's name durable).
 * Only after that are the segments wholly covered by the snapshot, and older snapshot files,
 * deleted.
 *
 * Disk faults. A failed write or sync leaves the storage failed: the save that hit it and every
 * later save reject with the same `StorageFailedError` (`StorageFullError` for ENOSPC/EDQUOT),
 * because after a failed fsync the kernel may have dropped the dirty pages and a retry could
 * report success over lost data. On a failed write the partial batch is cut off again, so what
 * is on disk is exactly what earlier saves made durable (were that cut to fail too, recovery
 * repairs the torn tail). Restart to continue.
 *
 * @module
 */
import { join } from "node:path";
import { setImmediate } from "node:timers";
import type { Entry, PersistedState, Snapshot } from "../core/types.ts";
import { errorCode, type FileSystem, nodeFileSystem, readAt, writeAll } from "./file_system.ts";
import type { Storage, StorageUpdate } from "./storage.ts";
import {
  StorageClosedError,
  StorageCorruptionError,
  StorageFailedError,
  StorageFormatError,
  StorageFullError,
} from "./storage_errors.ts";
import { acquireLock, releaseLock } from "./storage_lock.ts";
import {
  ByteSink,
  COMMIT_RECORD_SIZE,
  decodeEntry,
  decodeSnapshotFile,
  encodeSnapshotFile,
  ENTRY_PREFIX,
  FORMAT_FILE,
  FORMAT_TEXT,
  FORMAT_VERSION,
  isDamage,
  isSnapshotName,
  MAX_RECORD_PAYLOAD,
  parseRecord,
  parseSegmentName,
  PayloadError,
  RECORD_HEADER_SIZE,
  RecordType,
  segmentName,
  snapshotName,
  type SnapshotRef,
  writeCommit,
  writeEntry,
  writeHardState,
  writeSegmentHeader,
  writeSnapshotRecord,
} from "./wal_format.ts";
import type { WalIndex } from "./wal_index.ts";
import { replayWal } from "./wal_replay.ts";

/** The default size at which a new segment file is started. */
export const DEFAULT_SEGMENT_SIZE = 64 * 1024 * 1024;

/** How to open a `FileStorage`. */
export interface FileStorageOptions {
  /**
   * Start a new segment file once the current one reaches this many bytes (default 64 MiB). A
   * batch is never split, so a segment may exceed it by one batch.
   */
  readonly segmentSize?: number;
  /**
   * Where recovery reports what it repaired (a torn tail cut off, a stale lock taken over,
   * leftovers of an interrupted deletion removed). Default: `console.warn`.
   */
  readonly onWarning?: (message: string) => void;
  /** The file operations to use; tests pass a `FaultyFileSystem`. Default: `node:fs`. */
  readonly fileSystem?: FileSystem;
}

/** Counters of the work a `FileStorage` has done since it was opened. */
export interface FileStorageStats {
  /** Saves that resolved. */
  readonly saves: number;
  /** Batches written and synced (each one write and one fdatasync). */
  readonly batches: number;
  /** Bytes written to the log. */
  readonly bytes: number;
}

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

/** One group commit: records of one or more saves, written and synced together. */
interface Batch {
  readonly seq: number;
  readonly segId: number;
  readonly newSegment: boolean;
  /** Offset of the batch in its segment. */
  readonly start: number;
  readonly sink: ByteSink;
  readonly waiters: Waiter[];
  readonly snapshotFiles: Map<string, Uint8Array>;
  /** The last snapshot saved in this batch; old files are collected once it is durable. */
  snapshot: SnapshotRef | undefined;
  saves: number;
  finished: boolean;
  /** Resolves when the batch is durable or has failed (never rejects). */
  readonly done: Promise<void>;
  readonly markDone: () => void;
}

interface SegmentInfo {
  readonly id: number;
  /** Highest entry index written to it (0 for none). */
  maxIndex: number;
}

const encoder = new TextEncoder();

function defaultWarn(message: string): void {
  console.warn(`floe FileStorage: ${message}`);
}

/** Resolve after pending promise callbacks have run, so woken proposers can join a batch. */
function nextMacrotask(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function isFull(e: unknown): boolean {
  const code = errorCode(e);
  return code === "ENOSPC" || code === "EDQUOT";
}

/**
 * A `Storage` in a data directory. Open with `FileStorage.open(dir)`; one process at a time.
 *
 * @example
 * ```ts
 * const storage = await FileStorage.open("./data/node-a");
 * const state = await storage.load();
 * await storage.save({ hardState: { term: 1, vote: "a", commit: 0 }, entries: [] });
 * await storage.close();
 * ```
 */
export class FileStorage implements Storage {
  readonly #fs: FileSystem;
  readonly #dir: string;
  readonly #segmentSize: number;
  readonly #warn: (message: string) => void;
  readonly #index: WalIndex;
  readonly #segments: SegmentInfo[];
  #nextSegId: number;
  /** Bytes accepted into the current segment, including the open batch. */
  #curSize: number;
  #seq: number;
  #open: Batch | undefined;
  #last: Batch | undefined;
  #flushing = false;
  #writeFd: number | undefined;
  #writeSegId: number | undefined;
  #snapshotFiles: Set<string>;
  #failure: StorageFailedError | undefined;
  #closed = false;
  #recovered: Entry[] | undefined;
  #saves = 0;
  #batches = 0;
  #bytes = 0;

  private constructor(
    fsys: FileSystem,
    dir: string,
    segmentSize: number,
    warn: (message: string) => void,
    state: {
      index: WalIndex;
      segments: SegmentInfo[];
      curSize: number;
      nextSegId: number;
      lastSeq: number;
      snapshotFiles: Set<string>;
      recovered: Entry[];
    },
  ) {
    this.#fs = fsys;
    this.#dir = dir;
    this.#segmentSize = segmentSize;
    this.#warn = warn;
    this.#index = state.index;
    this.#segments = state.segments;
    this.#curSize = state.curSize;
    this.#nextSegId = state.nextSegId;
    this.#seq = state.lastSeq;
    this.#snapshotFiles = state.snapshotFiles;
    this.#recovered = state.recovered;
  }

  /**
   * Open (creating if needed) the data directory `dir`: take its lock, check its format version,
   * replay the log, cut off a torn tail (reported through `onWarning`) and delete leftovers of
   * interrupted work.
   *
   * @throws {StorageLockedError} when another live process has `dir` open.
   * @throws {StorageFormatError} when `dir` was written by an unknown format version, or holds
   * log files without a version file.
   * @throws {StorageCorruptionError} naming the file and offset of damage that is not a torn
   * tail; nothing is repaired then.
   */
  static async open(dir: string, options: FileStorageOptions = {}): Promise<FileStorage> {
    const fsys = options.fileSystem ?? nodeFileSystem;
    const warn = options.onWarning ?? defaultWarn;
    const segmentSize = options.segmentSize ?? DEFAULT_SEGMENT_SIZE;
    if (!Number.isInteger(segmentSize) || segmentSize < 1) {
      throw new RangeError(
        `FileStorage: segmentSize must be a positive integer, not ${segmentSize}`,
      );
    }
    fsys.mkdirp(dir);
    await acquireLock(fsys, dir, warn);
    try {
      await ensureFormat(fsys, dir);
      return await FileStorage.#recover(fsys, dir, segmentSize, warn);
    } catch (e) {
      releaseLock(fsys, dir);
      throw e;
    }
  }

  static async #recover(
    fsys: FileSystem,
    dir: string,
    segmentSize: number,
    warn: (message: string) => void,
  ): Promise<FileStorage> {
    const r = replayWal(fsys, dir, { keepData: true });
    const index = r.index;
    let removed = false;
    const remove = (name: string) => {
      fsys.unlink(join(dir, name));
      removed = true;
    };
    const segments: SegmentInfo[] = r.segments.map((s) => ({
      id: s.id,
      maxIndex: s.lastIndex ?? 0,
    }));
    let curSize = segments.length > 0 ? r.segments[r.segments.length - 1].validBytes : 0;
    const t = r.tailRepair;
    if (t !== undefined) {
      warn(
        `${t.file}: torn write at the tail (${t.reason}); cut the file from ${t.size} back to ` +
          `${t.offset} bytes, the end of the last complete batch. A crash during a write leaves ` +
          `this, and the saves of a batch whose write was cut short were never acknowledged.`,
      );
      if (t.offset === 0) {
        remove(segmentName(t.segmentId));
        segments.pop();
        curSize = segments.length > 0 ? r.segments[segments.length - 1].validBytes : 0;
      } else {
        const fd = fsys.open(t.file, "readWrite");
        try {
          fsys.truncate(fd, t.offset);
          await fsys.datasync(fd);
        } finally {
          fsys.close(fd);
        }
      }
    }
    if (r.skippedSegments.length > 0) {
      warn(
        `removing ${r.skippedSegments.join(", ")}: older than a gap in the segment numbers, ` +
          `left over from an interrupted deletion after a snapshot`,
      );
      for (const name of r.skippedSegments) remove(name);
    }
    for (const name of r.tempFiles) remove(name);
    const keep = index.snapshot ? snapshotName(index.snapshot.index, index.snapshot.fileId) : "";
    for (const name of r.snapshotFiles) if (name !== keep) remove(name);
    const snapshotFiles = new Set(keep === "" ? [] : [keep]);
    // A crash between a snapshot becoming durable and the deletion of what it covers.
    while (segments.length > 1 && segments[0].maxIndex <= index.base) {
      remove(segmentName(segments[0].id));
      segments.shift();
    }
    if (removed) await fsys.syncDir(dir);

    const datas = index.takeData() ?? [];
    const recovered: Entry[] = datas.map((data, i) => ({
      index: index.base + 1 + i,
      term: index.terms[i],
      data,
    }));
    const lastId = segments.length > 0
      ? segments[segments.length - 1].id
      : (r.segments.length > 0 ? r.segments[r.segments.length - 1].id : 0);
    const storage = new FileStorage(fsys, dir, segmentSize, warn, {
      index,
      segments,
      curSize,
      nextSegId: lastId + 1,
      lastSeq: r.lastSeq,
      snapshotFiles,
      recovered,
    });
    if (segments.length > 0) {
      const id = segments[segments.length - 1].id;
      storage.#writeFd = fsys.open(join(dir, segmentName(id)), "readWrite");
      storage.#writeSegId = id;
    }
    return storage;
  }

  /** The data directory. */
  get dir(): string {
    return this.#dir;
  }

  /** Counters since opening: saves, batches (fdatasyncs) and bytes written. */
  get stats(): FileStorageStats {
    return { saves: this.#saves, batches: this.#batches, bytes: this.#bytes };
  }

  /**
   * The saved state, after every save called before it has been written. Entries are read back
   * from the log and their checksums checked; the snapshot's file is read and checked.
   *
   * @throws {StorageFailedError} once the storage has failed.
   * @throws {StorageCorruptionError} when a record or the snapshot file no longer checks out.
   */
  async load(): Promise<PersistedState> {
    // Saves called while this waits are waited for too: the index read below includes them.
    while (this.#last && !this.#last.finished) await this.#last.done;
    if (this.#failure) throw this.#failure;
    const idx = this.#index;
    const snapshot = idx.snapshot ? this.#readSnapshot(idx.snapshot) : undefined;
    let entries = this.#recovered;
    this.#recovered = undefined;
    entries ??= this.#readEntries();
    return { hardState: idx.hardState, entries, snapshot };
  }

  #readSnapshot(ref: SnapshotRef): Snapshot {
    const path = join(this.#dir, snapshotName(ref.index, ref.fileId));
    try {
      const s = decodeSnapshotFile(this.#fs.readFile(path), ref);
      return { index: s.index, term: s.term, voters: s.voters, data: s.data };
    } catch (e) {
      if (e instanceof PayloadError) throw new StorageCorruptionError(path, 0, e.message);
      throw e;
    }
  }

  #readEntries(): Entry[] {
    const idx = this.#index;
    const n = idx.terms.length;
    const out: Entry[] = new Array(n);
    let i = 0;
    while (i < n) {
      // One read per run of entries that lie in the same segment.
      const seg = idx.segs[i];
      let j = i;
      while (j + 1 < n && idx.segs[j + 1] === seg && idx.offs[j + 1] > idx.offs[j]) j++;
      const from = idx.offs[i];
      const to = idx.offs[j] + RECORD_HEADER_SIZE + ENTRY_PREFIX + idx.lens[j];
      const path = join(this.#dir, segmentName(seg));
      const fd = this.#fs.open(path, "read");
      let buf: Uint8Array;
      try {
        buf = readAt(this.#fs, fd, from, to - from);
      } finally {
        this.#fs.close(fd);
      }
      for (let k = i; k <= j; k++) {
        const at = idx.offs[k] - from;
        const r = parseRecord(buf, at);
        const index = idx.base + 1 + k;
        const where = from + at;
        if (isDamage(r)) throw new StorageCorruptionError(path, where, r.reason);
        const e = r.type === RecordType.ENTRY ? decodeEntry(r.payload) : undefined;
        if (e === undefined || e.index !== index || e.term !== idx.terms[k]) {
          throw new StorageCorruptionError(path, where, `expected the record of entry ${index}`);
        }
        out[k] = { index, term: e.term, data: e.data.slice() };
      }
      i = j + 1;
    }
    return out;
  }

  /**
   * Persist `update` (snapshot, then entries, then hard state, as `StorageUpdate` defines);
   * resolves once it is durable. Concurrent calls are applied in call order and share syncs.
   *
   * @throws {Error} (as a rejection) when the update is invalid — entries not contiguous, a gap
   * after the last saved entry, entries inside the snapshot — changing nothing.
   * @throws {StorageFailedError} (as a rejection) once a write or sync has failed;
   * `StorageFullError` when the disk is full.
   * @throws {StorageClosedError} (as a rejection) after `close()`.
   */
  save(update: StorageUpdate): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) {
      return Promise.reject(new StorageClosedError(`FileStorage(${this.#dir}) is closed`));
    }
    try {
      this.#check(update);
    } catch (e) {
      return Promise.reject(e);
    }
    if (update.entries.length === 0 && !update.hardState && !update.snapshot) {
      // Nothing to write, but it must not resolve before the saves called before it.
      return this.#afterLast();
    }
    this.#recovered = undefined;
    const b = this.#openBatch();
    try {
      this.#encode(b, update);
    } catch (e) {
      // Validation passed, so this is a bug; the batch and the index may be half updated.
      this.#fail(b, e);
      return Promise.reject(this.#failure);
    }
    b.saves++;
    const done = new Promise<void>((resolve, reject) => b.waiters.push({ resolve, reject }));
    this.#startFlushing();
    return done;
  }

  #encode(b: Batch, update: StorageUpdate): void {
    const idx = this.#index;
    const seg = this.#segments[this.#segments.length - 1];
    const snap = update.snapshot;
    if (snap) {
      const keep = idx.continues(snap.index, snap.term);
      const { bytes, ref } = encodeSnapshotFile(snap, b.seq);
      b.snapshotFiles.set(snapshotName(ref.index, ref.fileId), bytes);
      writeSnapshotRecord(b.sink, { ref, keep });
      idx.installSnapshot(ref, keep);
      b.snapshot = ref;
    }
    for (const e of update.entries) {
      const at = writeEntry(b.sink, e.index, e.term, e.data);
      idx.put(e.index, e.term, b.segId, b.start + at, e.data.length);
      if (e.index > seg.maxIndex) seg.maxIndex = e.index;
    }
    if (update.hardState) {
      writeHardState(b.sink, update.hardState);
      idx.hardState = update.hardState;
    }
    this.#curSize = b.start + b.sink.length;
  }

  // Throws, changing nothing, unless `update` is valid against the state accepted so far.
  #check(update: StorageUpdate): void {
    const fail = (what: string): never => {
      throw new Error(`FileStorage: ${what}`);
    };
    const { entries, snapshot: snap, hardState: hs } = update;
    const idx = this.#index;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      if (!Number.isSafeInteger(e.index) || e.index < 1) fail(`invalid index ${e.index}`);
      if (i > 0 && e.index !== entries[i - 1].index + 1) {
        fail(`entries not contiguous: index ${e.index} follows ${entries[i - 1].index}`);
      }
      if (!Number.isSafeInteger(e.term) || e.term < 0) fail(`entry ${e.index}: invalid term`);
      if (!(e.data instanceof Uint8Array)) fail(`entry ${e.index}: data is not a Uint8Array`);
      if (e.data.length > MAX_RECORD_PAYLOAD - ENTRY_PREFIX) {
        fail(`entry ${e.index}: ${e.data.length} bytes exceeds the record limit`);
      }
    }
    if (hs) {
      if (!Number.isSafeInteger(hs.term) || hs.term < 0) fail(`invalid hard state term ${hs.term}`);
      if (!Number.isSafeInteger(hs.commit) || hs.commit < 0) {
        fail(`invalid hard state commit ${hs.commit}`);
      }
      checkId(hs.vote, "vote", fail);
    }
    if (snap) {
      if (!Number.isSafeInteger(snap.index) || snap.index < 0) {
        fail(`invalid snapshot index ${snap.index}`);
      }
      if (!Number.isSafeInteger(snap.term) || snap.term < 0) fail(`invalid snapshot term`);
      for (const v of snap.voters) checkId(v, "voter", fail);
      if (!(snap.data instanceof Uint8Array)) fail("snapshot data is not a Uint8Array");
    }
    if (entries.length > 0) {
      const first = entries[0].index;
      let last: number;
      if (snap) {
        if (first <= snap.index) {
          fail(
            `entries start at ${first}, inside the snapshot saved with them (index ${snap.index})`,
          );
        }
        last = idx.continues(snap.index, snap.term) ? idx.lastIndex : snap.index;
      } else {
        if (first <= idx.base) {
          fail(`entries start at ${first}, inside the saved snapshot (index ${idx.base})`);
        }
        last = idx.lastIndex;
      }
      if (first > last + 1) {
        fail(`entries start at ${first}, leaving a gap after last saved index ${last}`);
      }
    }
  }

  #afterLast(): Promise<void> {
    const b = this.#last;
    if (b === undefined || b.finished) return Promise.resolve();
    return new Promise<void>((resolve, reject) => b.waiters.push({ resolve, reject }));
  }

  #openBatch(): Batch {
    if (this.#open) return this.#open;
    const seq = ++this.#seq;
    const sink = new ByteSink();
    const newSegment = this.#segments.length === 0 || this.#curSize >= this.#segmentSize;
    let segId: number;
    if (newSegment) {
      segId = this.#nextSegId++;
      const idx = this.#index;
      // The checkpoint that lets replay start here once older segments are deleted.
      writeSegmentHeader(sink, {
        version: FORMAT_VERSION,
        segmentId: segId,
        prevSeq: seq - 1,
        lastIndex: idx.lastIndex,
        snapshot: idx.snapshot,
        hardState: idx.hardState,
      });
      this.#segments.push({ id: segId, maxIndex: 0 });
      this.#curSize = 0;
    } else {
      segId = this.#segments[this.#segments.length - 1].id;
    }
    let markDone = () => {};
    const done = new Promise<void>((resolve) => (markDone = resolve));
    const b: Batch = {
      seq,
      segId,
      newSegment,
      start: this.#curSize,
      sink,
      waiters: [],
      snapshotFiles: new Map(),
      snapshot: undefined,
      saves: 0,
      finished: false,
      done,
      markDone,
    };
    this.#curSize += sink.length;
    this.#open = b;
    this.#last = b;
    return b;
  }

  #startFlushing(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    // A microtask, so that saves called in the same synchronous run share the first sync.
    queueMicrotask(() => this.#flushLoop());
  }

  async #flushLoop(): Promise<void> {
    try {
      while (this.#open && !this.#failure) {
        const b = this.#open;
        this.#open = undefined;
        writeCommit(b.sink, b.seq);
        this.#curSize += COMMIT_RECORD_SIZE;
        try {
          await this.#write(b);
        } catch (e) {
          this.#fail(b, e);
          return;
        }
        this.#batches++;
        this.#saves += b.saves;
        this.#bytes += b.sink.length;
        this.#settle(b, undefined);
        if (b.snapshot) await this.#collect(b.snapshot);
        // Let the saves just resolved issue their next ones into the open batch first.
        await nextMacrotask();
      }
    } finally {
      this.#flushing = false;
    }
  }

  #settle(b: Batch, error: unknown): void {
    b.finished = true;
    for (const w of b.waiters) error === undefined ? w.resolve() : w.reject(error);
    b.markDone();
  }

  async #write(b: Batch): Promise<void> {
    const fsys = this.#fs;
    for (const [name, bytes] of b.snapshotFiles) {
      const tmp = join(this.#dir, `${name}.tmp`);
      const fd = this.#op("create", tmp, () => fsys.open(tmp, "create"));
      try {
        this.#op("write", tmp, () => writeAll(fsys, fd, bytes, 0), () => fsys.unlink(tmp));
        await this.#sync("fdatasync", tmp, fsys.datasync(fd));
      } finally {
        fsys.close(fd);
      }
      const path = join(this.#dir, name);
      this.#op("rename", path, () => fsys.rename(tmp, path));
      this.#snapshotFiles.add(name);
    }
    if (b.snapshotFiles.size > 0) await this.#sync("fsync", this.#dir, fsys.syncDir(this.#dir));

    const path = join(this.#dir, segmentName(b.segId));
    if (this.#writeSegId !== b.segId) {
      if (this.#writeFd !== undefined) fsys.close(this.#writeFd);
      this.#writeFd = undefined;
      this.#writeFd = this.#op("create", path, () => fsys.open(path, "create"));
      this.#writeSegId = b.segId;
    }
    const fd = this.#writeFd as number;
    this.#op("write", path, () => writeAll(fsys, fd, b.sink.bytes(), b.start), () => {
      // Cut the partial batch off, so the file holds exactly the durable batches.
      fsys.truncate(fd, b.start);
      if (b.start === 0) fsys.unlink(path);
    });
    await this.#sync("fdatasync", path, fsys.datasync(fd));
    if (b.newSegment) await this.#sync("fsync", this.#dir, fsys.syncDir(this.#dir));
  }

  // Runs a write-side operation; on failure runs `undo` (best effort) and throws a
  // StorageFailedError (StorageFullError when the disk is full) naming the file.
  #op<T>(what: string, file: string, run: () => T, undo?: () => void): T {
    try {
      return run();
    } catch (e) {
      let undone = "";
      if (undo) {
        try {
          undo();
          undone = "; the partial write was cut off, so earlier saves are intact";
        } catch (u) {
          undone = `; cutting off the partial write failed too (${u}): recovery will repair ` +
            `the torn tail`;
        }
      }
      if (isFull(e)) {
        throw new StorageFullError(
          `FileStorage(${this.#dir}): no space left on the device (${what} ${file})${undone}. ` +
            `This storage refuses further saves; free space and restart.`,
          { cause: e },
        );
      }
      throw new StorageFailedError(
        `FileStorage(${this.#dir}): ${what} ${file} failed (${errorCode(e) ?? e})${undone}. ` +
          `This storage refuses further saves; restart to recover from what is on disk.`,
        { cause: e },
      );
    }
  }

  async #sync(what: string, file: string, sync: Promise<void>): Promise<void> {
    try {
      await sync;
    } catch (e) {
      const Kind = isFull(e) ? StorageFullError : StorageFailedError;
      throw new Kind(
        `FileStorage(${this.#dir}): ${what} ${file} failed (${errorCode(e) ?? e}): saves ` +
          `since the last successful sync may not be on disk, and a retried sync could report ` +
          `success over lost data. This storage refuses further saves; restart to recover ` +
          `from what is on disk.`,
        { cause: e },
      );
    }
  }

  #fail(b: Batch, e: unknown): void {
    const failure = e instanceof StorageFailedError ? e : new StorageFailedError(
      `FileStorage(${this.#dir}): ${e}`,
      { cause: e },
    );
    this.#failure = failure;
    this.#settle(b, failure);
    const open = this.#open;
    this.#open = undefined;
    if (open && open !== b) this.#settle(open, failure);
  }

  // After `ref` is durable: delete the segments it covers wholly (a prefix, never the current
  // one) and the snapshot files it supersedes. Failures only leave extra files behind.
  async #collect(ref: SnapshotRef): Promise<void> {
    const fsys = this.#fs;
    const keep = snapshotName(ref.index, ref.fileId);
    try {
      let removed = false;
      while (this.#segments.length > 1 && this.#segments[0].maxIndex <= ref.index) {
        const id = this.#segments[0].id;
        if (id === this.#writeSegId) break;
        fsys.unlink(join(this.#dir, segmentName(id)));
        this.#segments.shift();
        removed = true;
      }
      for (const name of this.#snapshotFiles) {
        if (name === keep) continue;
        fsys.unlink(join(this.#dir, name));
        this.#snapshotFiles.delete(name);
        removed = true;
      }
      if (removed) await fsys.syncDir(this.#dir);
    } catch (e) {
      this.#warn(`deleting files covered by the snapshot at ${ref.index} failed: ${e}`);
    }
  }

  /**
   * Wait for the saves already called, then release the files and the directory's lock. Later
   * saves reject with `StorageClosedError`.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    while (this.#last && !this.#last.finished) await this.#last.done;
    if (this.#writeFd !== undefined) this.#fs.close(this.#writeFd);
    this.#writeFd = undefined;
    this.#writeSegId = undefined;
    releaseLock(this.#fs, this.#dir);
  }
}

function checkId(id: unknown, what: string, fail: (what: string) => never): void {
  if (typeof id !== "string") fail(`${what} is not a string`);
  if (encoder.encode(id as string).length > 0xffff) fail(`${what} longer than 65535 bytes`);
}

/**
 * Write `FORMAT` in a new directory, or check the one there.
 *
 * @throws {StorageFormatError} for another version, a foreign file, or log files without one.
 */
async function ensureFormat(fsys: FileSystem, dir: string): Promise<void> {
  const path = join(dir, FORMAT_FILE);
  if (fsys.size(path) === undefined) {
    const floeFiles = fsys.list(dir).filter((n) =>
      parseSegmentName(n) !== undefined || isSnapshotName(n)
    );
    if (floeFiles.length > 0) {
      throw new StorageFormatError(
        `${dir} holds log files (${floeFiles[0]}, ...) but no ${FORMAT_FILE} file, so their ` +
          `format is unknown; refusing to open it`,
      );
    }
    const tmp = `${path}.tmp`;
    const fd = fsys.open(tmp, "create");
    try {
      writeAll(fsys, fd, encoder.encode(FORMAT_TEXT), 0);
      await fsys.datasync(fd);
    } finally {
      fsys.close(fd);
    }
    fsys.rename(tmp, path);
    await fsys.syncDir(dir);
    return;
  }
  const text = new TextDecoder().decode(fsys.readFile(path));
  if (text === FORMAT_TEXT) return;
  const m = /^floe-wal (\d+)\n?$/.exec(text);
  if (m) {
    throw new StorageFormatError(
      `${path}: format version ${m[1]}; this floe reads version ${FORMAT_VERSION}` +
        (Number(m[1]) > FORMAT_VERSION ? " (written by a newer floe: upgrade to open it)" : ""),
    );
  }
  throw new StorageFormatError(
    `${path} is not a floe format file (${JSON.stringify(text.slice(0, 40))})`,
  );
}

export {
  StorageClosedError,
  StorageCorruptionError,
  StorageError,
  StorageFailedError,
  StorageFormatError,
  StorageFullError,
  StorageLockedError,
} from "./storage_errors.ts";
