/**
 * The file operations `FileStorage` needs, behind an interface so tests can inject faults
 * (`FaultyFileSystem`) — a full disk, a failing fsync — without a real broken disk.
 *
 * Reads, writes and truncations are synchronous: they touch only the page cache and take
 * microseconds, and a synchronous write cannot interleave with another one. Syncs are
 * asynchronous: they wait for the device (milliseconds), and group commit relies on saves
 * arriving while one runs.
 *
 * @module
 */
import * as fs from "node:fs";

/** How `FileSystem.open` opens a file. */
export type OpenMode =
  /** Read only; the file must exist. */
  | "read"
  /** Read and write; the file must exist. */
  | "readWrite"
  /** Read and write; created empty, or emptied if it exists. */
  | "create";

/** The file operations the filesystem storage uses. Paths are absolute or relative to the cwd. */
export interface FileSystem {
  /** Create `dir` and its parents if missing. */
  mkdirp(dir: string): void;
  /** Names (not paths) of the entries in `dir`. */
  list(dir: string): string[];
  /** The size of the file at `path`, or `undefined` if there is none. */
  size(path: string): number | undefined;
  /** The whole content of `path`. */
  readFile(path: string): Uint8Array;
  /** Open `path`; returns a file descriptor. */
  open(path: string, mode: OpenMode): number;
  /** Close a descriptor. */
  close(fd: number): void;
  /** Read into `buffer` from `position`; returns the bytes read (fewer at the end of the file). */
  read(fd: number, buffer: Uint8Array, position: number): number;
  /** Write `data` at `position`; returns the bytes written, which may be fewer than asked. */
  write(fd: number, data: Uint8Array, position: number): number;
  /** Set the file's length. */
  truncate(fd: number, length: number): void;
  /** Flush the file's data (and the metadata needed to read it, such as its size) to the device. */
  datasync(fd: number): Promise<void>;
  /** Flush the file's data and all its metadata to the device. */
  fsync(fd: number): Promise<void>;
  /** Make `dir`'s entries (creations, renames, deletions) durable. */
  syncDir(dir: string): Promise<void>;
  /** Rename `from` to `to`, replacing `to` atomically. */
  rename(from: string, to: string): void;
  /** Create `to` as a second name of `from`; fails with EEXIST if `to` exists. */
  link(from: string, to: string): void;
  /** Remove the file at `path`. */
  unlink(path: string): void;
}

const OPEN_FLAGS: Record<OpenMode, string> = { read: "r", readWrite: "r+", create: "w+" };

function callback(resolve: () => void, reject: (e: unknown) => void) {
  return (err: unknown) => (err ? reject(err) : resolve());
}

/** `FileSystem` on `node:fs`, which Deno implements too: one code path for Deno and Node. */
export const nodeFileSystem: FileSystem = {
  mkdirp(dir) {
    fs.mkdirSync(dir, { recursive: true });
  },
  list(dir) {
    return fs.readdirSync(dir);
  },
  size(path) {
    try {
      return fs.statSync(path).size;
    } catch (e) {
      if (errorCode(e) === "ENOENT") return undefined;
      throw e;
    }
  },
  readFile(path) {
    const b = fs.readFileSync(path);
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  },
  open(path, mode) {
    return fs.openSync(path, OPEN_FLAGS[mode]);
  },
  close(fd) {
    fs.closeSync(fd);
  },
  read(fd, buffer, position) {
    return fs.readSync(fd, buffer, 0, buffer.length, position);
  },
  write(fd, data, position) {
    return fs.writeSync(fd, data, 0, data.length, position);
  },
  truncate(fd, length) {
    fs.ftruncateSync(fd, length);
  },
  datasync(fd) {
    return new Promise((resolve, reject) => fs.fdatasync(fd, callback(resolve, reject)));
  },
  fsync(fd) {
    return new Promise((resolve, reject) => fs.fsync(fd, callback(resolve, reject)));
  },
  async syncDir(dir) {
    const fd = fs.openSync(dir, "r");
    try {
      await new Promise<void>((resolve, reject) => fs.fsync(fd, callback(resolve, reject)));
    } finally {
      fs.closeSync(fd);
    }
  },
  rename(from, to) {
    fs.renameSync(from, to);
  },
  link(from, to) {
    fs.linkSync(from, to);
  },
  unlink(path) {
    fs.unlinkSync(path);
  },
};

/** The `code` of a Node-style system error (`"ENOENT"`, `"ENOSPC"`, ...), if it has one. */
export function errorCode(e: unknown): string | undefined {
  if (typeof e === "object" && e !== null && "code" in e) {
    const code = (e as { code: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

/** Write all of `data` at `position`, looping over short writes. */
export function writeAll(fsys: FileSystem, fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) {
    const n = fsys.write(fd, done === 0 ? data : data.subarray(done), position + done);
    if (n <= 0) throw new Error(`write returned ${n} with ${data.length - done} bytes left`);
    done += n;
  }
}

/** Read exactly `length` bytes at `position`, or fewer if the file ends first. */
export function readAt(fsys: FileSystem, fd: number, position: number, length: number): Uint8Array {
  const buf = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = fsys.read(fd, buf.subarray(done), position + done);
    if (n <= 0) break;
    done += n;
  }
  return done === length ? buf : buf.subarray(0, done);
}
