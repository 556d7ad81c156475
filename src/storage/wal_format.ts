/**
 * The on-disk format of `FileStorage`: file names, the record framing of the write-ahead-log
 * segments, the record payloads and the snapshot files. Pure encoding and decoding; no I/O.
 *
 * A data directory holds:
 *
 * - `FORMAT`: the text `floe-wal 1` (the format version), written once, atomically;
 * - `LOCK`: the pid (and start time) of the process that has the directory open;
 * - `wal-<id>.log`: log segments, `id` a 16-digit hex counter with no gaps;
 * - `snap-<index>-<file id>.snap`: snapshot files, referenced from the log.
 *
 * A segment is a sequence of records. Every record is a 12-byte header — CRC-32C (u32), payload
 * length (u32), type (u8), three zero bytes — then the payload; the CRC covers everything after
 * itself (length, type, reserved bytes, payload). Integers are little-endian; indexes and terms
 * are u64 (kept below 2^53).
 *
 * Records are written in batches, one per write + fdatasync (group commit). A batch is the
 * records of one or more saves followed by a COMMIT record carrying the batch's sequence number
 * (consecutive across segments), and recovery applies a batch only once it has read that
 * COMMIT: that is what makes a save atomic. The first batch of a segment starts with a
 * SEGMENT_HEADER record, a checkpoint of the state before it (hard state, snapshot, last index,
 * previous batch number), so replay can begin at any segment once older ones are deleted.
 *
 * @module
 */
import { crc32c } from "./crc32c.ts";
import type { HardState } from "../core/types.ts";

/** The format version written to `FORMAT` and to every segment header. */
export const FORMAT_VERSION = 1;
/** The version file's name. */
export const FORMAT_FILE = "FORMAT";
/** The version file's exact content for this version. */
export const FORMAT_TEXT = `floe-wal ${FORMAT_VERSION}\n`;
/** The lock file's name. */
export const LOCK_FILE = "LOCK";

/** Bytes in a record header. */
export const RECORD_HEADER_SIZE = 12;
/**
 * The largest payload a record may carry. Bounds what recovery will believe a length field, and
 * keeps every record addressable as one Uint8Array.
 */
export const MAX_RECORD_PAYLOAD = 1 << 30;

/** Record types. Zero is not a type, so zero-filled space never parses as a record. */
export const RecordType = {
  /** First record of a segment: a checkpoint of the state before it. */
  SEGMENT_HEADER: 1,
  /** One log entry; it replaces any entry at its index and after. */
  ENTRY: 2,
  /** The hard state (term, vote, commit). */
  HARD_STATE: 3,
  /** A snapshot was saved: the pointer to its file, and whether the log continued it. */
  SNAPSHOT: 4,
  /** Ends a batch: everything since the previous COMMIT takes effect together. */
  COMMIT: 5,
} as const;

/** One of the `RecordType` values. */
export type RecordTypeCode = typeof RecordType[keyof typeof RecordType];

/** A record type's name, for reports. */
export const RECORD_TYPE_NAMES: Readonly<Record<RecordTypeCode, string>> = {
  1: "segmentHeader",
  2: "entry",
  3: "hardState",
  4: "snapshot",
  5: "commit",
};

const TWO_32 = 2 ** 32;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** A 16-digit lowercase hex rendering, so file names sort in numeric order. */
function hex16(n: number): string {
  return n.toString(16).padStart(16, "0");
}

/** The file name of segment `id`. */
export function segmentName(id: number): string {
  return `wal-${hex16(id)}.log`;
}

/** The segment id in a segment file name, or `undefined` if `name` is not one. */
export function parseSegmentName(name: string): number | undefined {
  const m = /^wal-([0-9a-f]{16})\.log$/.exec(name);
  return m ? parseInt(m[1], 16) : undefined;
}

/** The file name of the snapshot at `index` written by the batch `fileId`. */
export function snapshotName(index: number, fileId: number): string {
  return `snap-${hex16(index)}-${hex16(fileId)}.snap`;
}

/** Whether `name` is a snapshot file's name. */
export function isSnapshotName(name: string): boolean {
  return /^snap-[0-9a-f]{16}-[0-9a-f]{16}\.snap$/.test(name);
}

/** Where a saved snapshot's file is and how to check it. */
export interface SnapshotRef {
  /** Index of the last entry the snapshot covers. */
  readonly index: number;
  /** Term of that entry. */
  readonly term: number;
  /** The sequence number of the batch that saved it; makes the file name unique. */
  readonly fileId: number;
  /** The snapshot file's size in bytes. */
  readonly size: number;
  /** CRC-32C of the snapshot file after its first 12 bytes (the same CRC its header holds). */
  readonly crc: number;
}

/** The checkpoint at the start of a segment. */
export interface SegmentHeader {
  /** Format version the segment was written in. */
  readonly version: number;
  /** The segment's id, which must match its file name. */
  readonly segmentId: number;
  /** Sequence number of the last batch before this segment (0 for none). */
  readonly prevSeq: number;
  /** The last log index before this segment. */
  readonly lastIndex: number;
  /** The snapshot in effect before this segment. */
  readonly snapshot: SnapshotRef | undefined;
  /** The hard state in effect before this segment. */
  readonly hardState: HardState;
}

/** A decoded ENTRY payload; `data` is a view into the record. */
export interface EntryRecord {
  /** Log index. */
  readonly index: number;
  /** Term. */
  readonly term: number;
  /** The command. */
  readonly data: Uint8Array;
}

/** A decoded SNAPSHOT payload. */
export interface SnapshotRecord {
  /** The snapshot saved. */
  readonly ref: SnapshotRef;
  /** Whether the saved log held the snapshot's last entry, so entries after it were kept. */
  readonly keep: boolean;
}

/** Bytes of an ENTRY payload before the command. */
export const ENTRY_PREFIX = 16;

/**
 * An append-only byte buffer that grows by doubling; a batch of records is encoded into one so
 * a whole group commit is one write.
 */
export class ByteSink {
  #buf: Uint8Array;
  #view: DataView;
  #length = 0;

  /** Start with room for `capacity` bytes. */
  constructor(capacity = 4096) {
    this.#buf = new Uint8Array(capacity);
    this.#view = new DataView(this.#buf.buffer);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#length;
  }

  /** The bytes written so far (a view, valid until the next write). */
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.#length);
  }

  #reserve(n: number): number {
    const at = this.#length;
    const need = at + n;
    if (need > this.#buf.length) {
      let cap = this.#buf.length * 2;
      while (cap < need) cap *= 2;
      const grown = new Uint8Array(cap);
      grown.set(this.#buf.subarray(0, at));
      this.#buf = grown;
      this.#view = new DataView(grown.buffer);
    }
    this.#length = need;
    return at;
  }

  /** Append a byte. */
  // Each writer reserves before touching #buf or #view: reserving may replace them.
  u8(v: number): void {
    const at = this.#reserve(1);
    this.#buf[at] = v;
  }

  /** Append a u16. */
  u16(v: number): void {
    const at = this.#reserve(2);
    this.#view.setUint16(at, v, true);
  }

  /** Append a u32. */
  u32(v: number): void {
    const at = this.#reserve(4);
    this.#view.setUint32(at, v >>> 0, true);
  }

  /** Append a non-negative integer below 2^53 as a u64. */
  u64(v: number): void {
    const at = this.#reserve(8);
    this.#view.setUint32(at, v % TWO_32, true);
    this.#view.setUint32(at + 4, Math.floor(v / TWO_32), true);
  }

  /** Append raw bytes. */
  raw(data: Uint8Array): void {
    const at = this.#reserve(data.length);
    this.#buf.set(data, at);
  }

  /** Append a string as a u16 byte length and UTF-8. */
  str16(s: string): void {
    const b = encoder.encode(s);
    if (b.length > 0xffff) throw new RangeError(`string of ${b.length} UTF-8 bytes exceeds 65535`);
    this.u16(b.length);
    this.raw(b);
  }

  /** Start a record of `type`; returns the record's offset, to pass to `endRecord`. */
  beginRecord(type: RecordTypeCode): number {
    const at = this.#reserve(RECORD_HEADER_SIZE);
    this.#buf.fill(0, at, at + RECORD_HEADER_SIZE);
    this.#buf[at + 8] = type;
    return at;
  }

  /** Finish the record begun at `at`: fill in its length and checksum. */
  endRecord(at: number): void {
    const payload = this.#length - at - RECORD_HEADER_SIZE;
    this.#view.setUint32(at + 4, payload, true);
    this.#view.setUint32(at, crc32c(this.#buf.subarray(at + 4, this.#length)), true);
  }
}

/** Append an ENTRY record; returns its offset in the sink. */
export function writeEntry(sink: ByteSink, index: number, term: number, data: Uint8Array): number {
  const at = sink.beginRecord(RecordType.ENTRY);
  sink.u64(index);
  sink.u64(term);
  sink.raw(data);
  sink.endRecord(at);
  return at;
}

function writeHardStateFields(sink: ByteSink, hs: HardState): void {
  sink.u64(hs.term);
  sink.u64(hs.commit);
  sink.str16(hs.vote);
}

function writeRefFields(sink: ByteSink, ref: SnapshotRef): void {
  sink.u64(ref.index);
  sink.u64(ref.term);
  sink.u64(ref.fileId);
  sink.u64(ref.size);
  sink.u32(ref.crc);
}

/** Append a HARD_STATE record. */
export function writeHardState(sink: ByteSink, hs: HardState): void {
  const at = sink.beginRecord(RecordType.HARD_STATE);
  writeHardStateFields(sink, hs);
  sink.endRecord(at);
}

/** Append a SNAPSHOT record. */
export function writeSnapshotRecord(sink: ByteSink, rec: SnapshotRecord): void {
  const at = sink.beginRecord(RecordType.SNAPSHOT);
  writeRefFields(sink, rec.ref);
  sink.u8(rec.keep ? 1 : 0);
  sink.endRecord(at);
}

/** Append a SEGMENT_HEADER record. */
export function writeSegmentHeader(sink: ByteSink, h: SegmentHeader): void {
  const at = sink.beginRecord(RecordType.SEGMENT_HEADER);
  sink.u32(h.version);
  sink.u64(h.segmentId);
  sink.u64(h.prevSeq);
  sink.u64(h.lastIndex);
  sink.u8(h.snapshot ? 1 : 0);
  if (h.snapshot) writeRefFields(sink, h.snapshot);
  writeHardStateFields(sink, h.hardState);
  sink.endRecord(at);
}

/** Append a COMMIT record for batch `seq`. */
export function writeCommit(sink: ByteSink, seq: number): void {
  const at = sink.beginRecord(RecordType.COMMIT);
  sink.u64(seq);
  sink.endRecord(at);
}

/** Size in bytes of a COMMIT record. */
export const COMMIT_RECORD_SIZE: number = RECORD_HEADER_SIZE + 8;

/** A record whose framing and checksum are valid. */
export interface RawRecord {
  /** Offset of the record's header in the buffer. */
  readonly offset: number;
  /** The record type. */
  readonly type: RecordTypeCode;
  /** The payload (a view). */
  readonly payload: Uint8Array;
  /** Offset just past the record. */
  readonly end: number;
}

/** Why the bytes at an offset are not a valid record. */
export interface RecordDamage {
  /** Offset of the bad record. */
  readonly offset: number;
  /** What is wrong. */
  readonly reason: string;
}

function u32At(buf: Uint8Array, at: number): number {
  return (buf[at] | (buf[at + 1] << 8) | (buf[at + 2] << 16) | (buf[at + 3] << 24)) >>> 0;
}

/** Parse the record at `offset` of `buf`, checking framing and checksum. */
export function parseRecord(buf: Uint8Array, offset: number): RawRecord | RecordDamage {
  const left = buf.length - offset;
  if (left < RECORD_HEADER_SIZE) {
    return { offset, reason: `incomplete record header (${left} of ${RECORD_HEADER_SIZE} bytes)` };
  }
  const len = u32At(buf, offset + 4);
  const type = buf[offset + 8];
  if (type < RecordType.SEGMENT_HEADER || type > RecordType.COMMIT) {
    return { offset, reason: `unknown record type ${type}` };
  }
  if (buf[offset + 9] !== 0 || buf[offset + 10] !== 0 || buf[offset + 11] !== 0) {
    return { offset, reason: "reserved header bytes are not zero" };
  }
  if (len > MAX_RECORD_PAYLOAD) return { offset, reason: `record length ${len} is too large` };
  const end = offset + RECORD_HEADER_SIZE + len;
  if (end > buf.length) {
    return { offset, reason: `incomplete record (${len} payload bytes, ${left - 12} present)` };
  }
  if (crc32c(buf.subarray(offset + 4, end)) !== u32At(buf, offset)) {
    return { offset, reason: "checksum mismatch" };
  }
  return {
    offset,
    type: type as RecordTypeCode,
    payload: buf.subarray(offset + RECORD_HEADER_SIZE, end),
    end,
  };
}

/** Whether a `parseRecord` result is damage rather than a record. */
export function isDamage(r: RawRecord | RecordDamage): r is RecordDamage {
  return "reason" in r;
}

/**
 * Every valid record found after `from`, trying each byte offset until one parses and then
 * continuing after it. Used only after a bad record, to tell a torn tail (nothing valid follows)
 * from damage in the middle (valid records follow).
 */
export function resyncRecords(buf: Uint8Array, from: number): RawRecord[] {
  const found: RawRecord[] = [];
  let p = from;
  const last = buf.length - RECORD_HEADER_SIZE;
  while (p <= last) {
    // Cheap rejections first: most offsets fail on the type or the reserved bytes.
    const type = buf[p + 8];
    if (
      type >= RecordType.SEGMENT_HEADER && type <= RecordType.COMMIT && buf[p + 9] === 0 &&
      buf[p + 10] === 0 && buf[p + 11] === 0
    ) {
      const r = parseRecord(buf, p);
      if (!isDamage(r)) {
        found.push(r);
        p = r.end;
        continue;
      }
    }
    p++;
  }
  return found;
}

/** A payload that passed its checksum but does not decode: a bug or a foreign format. */
export class PayloadError extends Error {
  /** Create the error with what is wrong. */
  constructor(message: string) {
    super(message);
    this.name = "PayloadError";
  }
}

/** Reads fields from a payload, throwing `PayloadError` when it runs short. */
class Reader {
  #buf: Uint8Array;
  #view: DataView;
  #at = 0;

  constructor(buf: Uint8Array) {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  #take(n: number): number {
    const at = this.#at;
    if (at + n > this.#buf.length) {
      throw new PayloadError(`payload too short (${this.#buf.length} bytes)`);
    }
    this.#at += n;
    return at;
  }

  u8(): number {
    return this.#buf[this.#take(1)];
  }

  u16(): number {
    return this.#view.getUint16(this.#take(2), true);
  }

  u32(): number {
    return this.#view.getUint32(this.#take(4), true);
  }

  u64(): number {
    const at = this.#take(8);
    const hi = this.#view.getUint32(at + 4, true);
    if (hi >= 1 << 21) throw new PayloadError("integer beyond 2^53");
    return hi * TWO_32 + this.#view.getUint32(at, true);
  }

  str16(): string {
    const n = this.u16();
    const at = this.#take(n);
    try {
      return decoder.decode(this.#buf.subarray(at, at + n));
    } catch {
      throw new PayloadError("invalid UTF-8 in a string");
    }
  }

  rest(): Uint8Array {
    const at = this.#at;
    this.#at = this.#buf.length;
    return this.#buf.subarray(at);
  }

  end(): void {
    if (this.#at !== this.#buf.length) {
      throw new PayloadError(`${this.#buf.length - this.#at} unexpected bytes after the payload`);
    }
  }
}

function readHardState(r: Reader): HardState {
  const term = r.u64();
  const commit = r.u64();
  const vote = r.str16();
  return { term, vote, commit };
}

function readRef(r: Reader): SnapshotRef {
  return { index: r.u64(), term: r.u64(), fileId: r.u64(), size: r.u64(), crc: r.u32() };
}

/** Decode an ENTRY payload. */
export function decodeEntry(payload: Uint8Array): EntryRecord {
  const r = new Reader(payload);
  const index = r.u64();
  const term = r.u64();
  if (index < 1) throw new PayloadError(`entry index ${index}`);
  return { index, term, data: r.rest() };
}

/** Decode a HARD_STATE payload. */
export function decodeHardState(payload: Uint8Array): HardState {
  const r = new Reader(payload);
  const hs = readHardState(r);
  r.end();
  return hs;
}

/** Decode a SNAPSHOT payload. */
export function decodeSnapshotRecord(payload: Uint8Array): SnapshotRecord {
  const r = new Reader(payload);
  const ref = readRef(r);
  const keep = r.u8();
  r.end();
  if (keep > 1) throw new PayloadError(`snapshot keep flag ${keep}`);
  return { ref, keep: keep === 1 };
}

/** Decode a SEGMENT_HEADER payload. */
export function decodeSegmentHeader(payload: Uint8Array): SegmentHeader {
  const r = new Reader(payload);
  const version = r.u32();
  if (version !== FORMAT_VERSION) {
    throw new PayloadError(`segment format version ${version}; this build reads ${FORMAT_VERSION}`);
  }
  const segmentId = r.u64();
  const prevSeq = r.u64();
  const lastIndex = r.u64();
  const has = r.u8();
  if (has > 1) throw new PayloadError(`snapshot presence flag ${has}`);
  const snapshot = has === 1 ? readRef(r) : undefined;
  const hardState = readHardState(r);
  r.end();
  return { version, segmentId, prevSeq, lastIndex, snapshot, hardState };
}

/** Decode a COMMIT payload: the batch's sequence number. */
export function decodeCommit(payload: Uint8Array): number {
  const r = new Reader(payload);
  const seq = r.u64();
  r.end();
  return seq;
}

// Snapshot files: "FLOESNAP", u32 CRC-32C of everything after it, u32 metadata length, metadata
// (u64 index, u64 term, u32 voter count, u16-prefixed UTF-8 voter ids), then the data.
const SNAPSHOT_MAGIC = encoder.encode("FLOESNAP");
const SNAPSHOT_FIXED = 16;

/** A snapshot file's content, ready to write, and the reference the log will hold to it. */
export interface EncodedSnapshot {
  /** The file's bytes. */
  readonly bytes: Uint8Array;
  /** The reference to record in the log. */
  readonly ref: SnapshotRef;
}

/** Encode a snapshot file for the batch `fileId`. */
export function encodeSnapshotFile(
  snap: { index: number; term: number; voters: readonly string[]; data: Uint8Array },
  fileId: number,
): EncodedSnapshot {
  const meta = new ByteSink(64);
  meta.u64(snap.index);
  meta.u64(snap.term);
  meta.u32(snap.voters.length);
  for (const v of snap.voters) meta.str16(v);
  const m = meta.bytes();
  const bytes = new Uint8Array(SNAPSHOT_FIXED + m.length + snap.data.length);
  const view = new DataView(bytes.buffer);
  bytes.set(SNAPSHOT_MAGIC, 0);
  view.setUint32(12, m.length, true);
  bytes.set(m, SNAPSHOT_FIXED);
  bytes.set(snap.data, SNAPSHOT_FIXED + m.length);
  const crc = crc32c(bytes.subarray(12));
  view.setUint32(8, crc, true);
  return {
    bytes,
    ref: { index: snap.index, term: snap.term, fileId, size: bytes.length, crc },
  };
}

/** A decoded snapshot file. */
export interface DecodedSnapshot {
  /** Index of the last entry covered. */
  readonly index: number;
  /** Term of that entry. */
  readonly term: number;
  /** Voters at `index`. */
  readonly voters: string[];
  /** The state machine's data (a view into the file's bytes). */
  readonly data: Uint8Array;
}

/**
 * Decode and check a snapshot file against the reference the log holds.
 *
 * @throws {PayloadError} naming what does not match.
 */
export function decodeSnapshotFile(bytes: Uint8Array, ref: SnapshotRef): DecodedSnapshot {
  if (bytes.length !== ref.size) {
    throw new PayloadError(`snapshot file has ${bytes.length} bytes, the log says ${ref.size}`);
  }
  if (bytes.length < SNAPSHOT_FIXED) throw new PayloadError("snapshot file too short");
  for (let i = 0; i < SNAPSHOT_MAGIC.length; i++) {
    if (bytes[i] !== SNAPSHOT_MAGIC[i]) throw new PayloadError("not a floe snapshot file");
  }
  const stored = u32At(bytes, 8);
  const actual = crc32c(bytes.subarray(12));
  if (stored !== actual || actual !== ref.crc) {
    throw new PayloadError("snapshot file checksum mismatch");
  }
  const metaLen = u32At(bytes, 12);
  if (SNAPSHOT_FIXED + metaLen > bytes.length) throw new PayloadError("snapshot metadata length");
  const r = new Reader(bytes.subarray(SNAPSHOT_FIXED, SNAPSHOT_FIXED + metaLen));
  const index = r.u64();
  const term = r.u64();
  const count = r.u32();
  const voters: string[] = [];
  for (let i = 0; i < count; i++) voters.push(r.str16());
  r.end();
  if (index !== ref.index || term !== ref.term) {
    throw new PayloadError(
      `snapshot file holds ${index}/${term}, the log says ${ref.index}/${ref.term}`,
    );
  }
  return { index, term, voters, data: bytes.subarray(SNAPSHOT_FIXED + metaLen) };
}

/** Whether two snapshot references name the same file with the same content. */
export function sameRef(a: SnapshotRef | undefined, b: SnapshotRef | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.index === b.index && a.term === b.term && a.fileId === b.fileId &&
    a.size === b.size && a.crc === b.crc;
}
