/**
 * `FaultyFileSystem`: a `FileSystem` that fails chosen operations on demand — a write that runs
 * out of space half way, an fdatasync that reports EIO — so tests can prove what `FileStorage`
 * does on a full or failing disk without one. Pass it as `FileStorageOptions.fileSystem`.
 *
 * @module
 */
import { type FileSystem, nodeFileSystem, type OpenMode } from "./file_system.ts";

/** The operations a fault can hit. */
export type FaultOp = "open" | "write" | "truncate" | "datasync" | "fsync" | "syncDir" | "rename";

/** A fault to inject. */
export interface Fault {
  /** The operation that fails. */
  readonly op: FaultOp;
  /** The error code (default: `ENOSPC` for writes and opens, `EIO` otherwise). */
  readonly code?: string;
  /** Only operations on paths containing this text (default: any path). */
  readonly path?: string;
  /** Let this many matching operations succeed first (default 0). */
  readonly skip?: number;
  /** Fail this many times, then succeed again (default: every time). */
  readonly times?: number;
  /**
   * For a write: write this many bytes of it before failing, as a disk that fills up mid-write
   * does (default 0).
   */
  readonly partialBytes?: number;
}

interface ActiveFault {
  readonly fault: Fault;
  skip: number;
  times: number;
}

const MESSAGES: Record<string, string> = {
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EIO: "input/output error",
};

/** A Node-style system error, as `node:fs` throws. */
export function systemError(code: string, syscall: string, path: string): Error {
  const e = new Error(`${code}: ${MESSAGES[code] ?? "injected fault"}, ${syscall} '${path}'`);
  return Object.assign(e, { code, syscall, path });
}

/**
 * A `FileSystem` that passes every call to `inner` (default: `node:fs`) unless an injected
 * fault matches it.
 *
 * @example
 * ```ts
 * const fsys = new FaultyFileSystem();
 * const storage = await FileStorage.open(dir, { fileSystem: fsys });
 * fsys.inject({ op: "datasync", code: "EIO" }); // the next save rejects with StorageFailedError
 * ```
 */
export class FaultyFileSystem implements FileSystem {
  readonly #inner: FileSystem;
  readonly #paths = new Map<number, string>();
  #faults: ActiveFault[] = [];
  /** How many times each operation was called (failed calls included). */
  readonly calls: Record<FaultOp, number> = {
    open: 0,
    write: 0,
    truncate: 0,
    datasync: 0,
    fsync: 0,
    syncDir: 0,
    rename: 0,
  };

  /** Wrap `inner`. */
  constructor(inner: FileSystem = nodeFileSystem) {
    this.#inner = inner;
  }

  /** Add a fault; it stays until it has failed `times` operations or `clear()` is called. */
  inject(fault: Fault): void {
    this.#faults.push({ fault, skip: fault.skip ?? 0, times: fault.times ?? Infinity });
  }

  /** Remove every fault: the disk works again. */
  clear(): void {
    this.#faults = [];
  }

  // The fault that fails this call, if any; counts skips and uses.
  #hit(op: FaultOp, path: string): Fault | undefined {
    this.calls[op]++;
    for (const f of this.#faults) {
      if (f.fault.op !== op || f.times <= 0) continue;
      if (f.fault.path !== undefined && !path.includes(f.fault.path)) continue;
      if (f.skip > 0) {
        f.skip--;
        continue;
      }
      f.times--;
      return f.fault;
    }
    return undefined;
  }

  #error(f: Fault, syscall: string, path: string): Error {
    const fallback = syscall === "write" || syscall === "open" ? "ENOSPC" : "EIO";
    return systemError(f.code ?? fallback, syscall, path);
  }

  #path(fd: number): string {
    return this.#paths.get(fd) ?? `fd ${fd}`;
  }

  /** See `FileSystem.mkdirp`. */
  mkdirp(dir: string): void {
    this.#inner.mkdirp(dir);
  }

  /** See `FileSystem.list`. */
  list(dir: string): string[] {
    return this.#inner.list(dir);
  }

  /** See `FileSystem.size`. */
  size(path: string): number | undefined {
    return this.#inner.size(path);
  }

  /** See `FileSystem.readFile`. */
  readFile(path: string): Uint8Array {
    return this.#inner.readFile(path);
  }

  /** See `FileSystem.open`; fails for an `open` fault when `mode` creates the file. */
  open(path: string, mode: OpenMode): number {
    const f = mode === "create" ? this.#hit("open", path) : undefined;
    if (f) throw this.#error(f, "open", path);
    const fd = this.#inner.open(path, mode);
    this.#paths.set(fd, path);
    return fd;
  }

  /** See `FileSystem.close`. */
  close(fd: number): void {
    this.#paths.delete(fd);
    this.#inner.close(fd);
  }

  /** See `FileSystem.read`. */
  read(fd: number, buffer: Uint8Array, position: number): number {
    return this.#inner.read(fd, buffer, position);
  }

  /** See `FileSystem.write`; a `write` fault may first write `partialBytes`. */
  write(fd: number, data: Uint8Array, position: number): number {
    const path = this.#path(fd);
    const f = this.#hit("write", path);
    if (f) {
      const partial = Math.min(f.partialBytes ?? 0, data.length);
      if (partial > 0) this.#inner.write(fd, data.subarray(0, partial), position);
      throw this.#error(f, "write", path);
    }
    return this.#inner.write(fd, data, position);
  }

  /** See `FileSystem.truncate`. */
  truncate(fd: number, length: number): void {
    const path = this.#path(fd);
    const f = this.#hit("truncate", path);
    if (f) throw this.#error(f, "ftruncate", path);
    this.#inner.truncate(fd, length);
  }

  /** See `FileSystem.datasync`. */
  datasync(fd: number): Promise<void> {
    const path = this.#path(fd);
    const f = this.#hit("datasync", path);
    if (f) return Promise.reject(this.#error(f, "fdatasync", path));
    return this.#inner.datasync(fd);
  }

  /** See `FileSystem.fsync`. */
  fsync(fd: number): Promise<void> {
    const path = this.#path(fd);
    const f = this.#hit("fsync", path);
    if (f) return Promise.reject(this.#error(f, "fsync", path));
    return this.#inner.fsync(fd);
  }

  /** See `FileSystem.syncDir`. */
  syncDir(dir: string): Promise<void> {
    const f = this.#hit("syncDir", dir);
    if (f) return Promise.reject(this.#error(f, "fsync", dir));
    return this.#inner.syncDir(dir);
  }

  /** See `FileSystem.rename`. */
  rename(from: string, to: string): void {
    const f = this.#hit("rename", to);
    if (f) throw this.#error(f, "rename", to);
    this.#inner.rename(from, to);
  }

  /** See `FileSystem.link`. */
  link(from: string, to: string): void {
    this.#inner.link(from, to);
  }

  /** See `FileSystem.unlink`. */
  unlink(path: string): void {
    this.#inner.unlink(path);
  }
}
