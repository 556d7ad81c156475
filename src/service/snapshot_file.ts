/**
 * Backup files of a floe cluster's key-value state (`floe snapshot save`) and how a new node's
 * data directory is made from one (`floe snapshot restore`).
 *
 * The file is self-describing: a text line `floe-snapshot 1`, a line of JSON
 * `{"index","term","bytes","crc32c","createdAt"}`, then `bytes` bytes of the KvStateMachine
 * snapshot (CRC-32C over them). It is written to a temporary file, synced and renamed, so a
 * crash leaves either the old file or the whole new one.
 *
 * Restoring writes that snapshot into an empty FileStorage directory as the Raft snapshot at
 * `index`/`term`, with the NEW cluster's members as its voters and nothing in the log after it:
 * every member of the new cluster is restored from the same file, elects a leader in a later
 * term and continues from there.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { KvStateMachine } from "../kv/kv_state_machine.ts";
import { crc32c } from "../storage/crc32c.ts";
import { FileStorage } from "../storage/file_storage.ts";

/** The first line of a snapshot file. */
export const SNAPSHOT_FILE_MAGIC = "floe-snapshot 1";

/** What a snapshot file records besides the state. */
export interface SnapshotFileHeader {
  /** Last log index the state covers. */
  readonly index: number;
  /** Term of that entry. */
  readonly term: number;
  /** Length of the state in bytes. */
  readonly bytes: number;
  /** CRC-32C of the state. */
  readonly crc32c: number;
  /** When the backup was taken (ISO 8601). */
  readonly createdAt: string;
}

/** A snapshot file's contents. */
export interface SnapshotFile {
  /** Its header. */
  readonly header: SnapshotFileHeader;
  /** The KvStateMachine snapshot. */
  readonly data: Uint8Array;
}

/** A snapshot file that cannot be used; the message says why. */
export class SnapshotFileError extends Error {
  /** `message` names the file and the problem. */
  constructor(message: string) {
    super(message);
    this.name = "SnapshotFileError";
  }
}

/** The bytes of a snapshot file for `data` at `index`/`term`. */
export function encodeSnapshotFile(
  data: Uint8Array,
  index: number,
  term: number,
  createdAt: Date = new Date(),
): Uint8Array {
  const header: SnapshotFileHeader = {
    index,
    term,
    bytes: data.length,
    crc32c: crc32c(data),
    createdAt: createdAt.toISOString(),
  };
  const head = new TextEncoder().encode(`${SNAPSHOT_FILE_MAGIC}\n${JSON.stringify(header)}\n`);
  const out = new Uint8Array(head.length + data.length);
  out.set(head);
  out.set(data, head.length);
  return out;
}

/**
 * Parse and check a snapshot file's bytes (`name` is used in messages).
 *
 * @throws {SnapshotFileError} when it is not a snapshot file, is truncated or fails its checksum.
 */
export function decodeSnapshotFile(bytes: Uint8Array, name = "snapshot file"): SnapshotFile {
  const first = bytes.indexOf(0x0a);
  const second = first < 0 ? -1 : bytes.indexOf(0x0a, first + 1);
  const text = new TextDecoder();
  if (first < 0 || text.decode(bytes.subarray(0, first)) !== SNAPSHOT_FILE_MAGIC || second < 0) {
    throw new SnapshotFileError(`${name} is not a floe snapshot file`);
  }
  let header: SnapshotFileHeader;
  try {
    header = JSON.parse(text.decode(bytes.subarray(first + 1, second)));
  } catch {
    throw new SnapshotFileError(`${name}: its header is not JSON`);
  }
  const whole = (v: unknown, min: number) => Number.isSafeInteger(v) && (v as number) >= min;
  if (
    typeof header !== "object" || header === null || !whole(header.index, 1) ||
    !whole(header.term, 1) || !whole(header.bytes, 0) || !whole(header.crc32c, 0)
  ) {
    throw new SnapshotFileError(`${name}: its header lacks a valid index, term, bytes or crc32c`);
  }
  const data = bytes.subarray(second + 1);
  if (data.length !== header.bytes) {
    throw new SnapshotFileError(
      `${name}: expected ${header.bytes} bytes of state, found ${data.length} (truncated?)`,
    );
  }
  if (crc32c(data) !== header.crc32c) {
    throw new SnapshotFileError(`${name}: checksum mismatch; the file is damaged`);
  }
  return { header, data };
}

/** Write `bytes` to `path` atomically: a synced temporary file renamed over it. */
export async function writeFileAtomically(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${crypto.randomUUID()}.tmp`);
  try {
    const file = await Deno.open(tmp, { write: true, createNew: true });
    try {
      let off = 0;
      while (off < bytes.length) off += await file.write(bytes.subarray(off));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  // The rename is durable once the directory is synced (not possible on every platform).
  try {
    const dir = await Deno.open(dirname(path), { read: true });
    try {
      await dir.sync();
    } finally {
      dir.close();
    }
  } catch { /* best effort */ }
}

/** Where and as what a new node's data directory is made from a snapshot file. */
export interface RestoreOptions {
  /** The snapshot file's contents. */
  readonly snapshot: SnapshotFile;
  /** The new node's data directory; must not exist or be empty. */
  readonly dataDir: string;
  /** Every member of the new cluster (the snapshot's voters). */
  readonly voters: readonly string[];
}

/**
 * Make `dataDir` a FileStorage directory holding the snapshot, for a member of a new cluster
 * of `voters`.
 *
 * @throws {SnapshotFileError} when the directory is not empty or the state does not load.
 */
export async function restoreSnapshot(options: RestoreOptions): Promise<void> {
  const { snapshot, dataDir, voters } = options;
  try {
    for await (const entry of Deno.readDir(dataDir)) {
      throw new SnapshotFileError(
        `${dataDir} is not empty (it holds ${entry.name}); restore only into a new directory`,
      );
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (voters.length === 0) throw new SnapshotFileError("the new cluster needs members");
  // Load the state once, so a snapshot the node could not restore is refused now, not at start.
  try {
    new KvStateMachine().restore(snapshot.data, snapshot.header.index);
  } catch (e) {
    throw new SnapshotFileError(`the snapshot's state does not load: ${(e as Error).message}`);
  }
  const storage = await FileStorage.open(dataDir, { onWarning: () => {} });
  try {
    await storage.save({
      snapshot: {
        index: snapshot.header.index,
        term: snapshot.header.term,
        voters: [...voters],
        data: snapshot.data,
      },
      entries: [],
      hardState: { term: snapshot.header.term, vote: "", commit: snapshot.header.index },
    });
  } finally {
    await storage.close();
  }
}
