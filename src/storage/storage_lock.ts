/**
 * The data directory's lock file: one process at a time may open a directory, because two
 * writers appending to the same log would interleave records and lose acknowledged saves.
 *
 * `LOCK` holds the owner's pid, its start time (Linux, from `/proc/<pid>/stat`) and its host.
 * It is created with `link()`, which fails if the name exists, so it appears fully written or
 * not at all. A lock whose process is gone (a crash, `kill -9`) is stale and taken over: on
 * Linux the process is alive when `/proc/<pid>` exists with the recorded start time (a reused
 * pid has another start time); elsewhere when `process.kill(pid, 0)` succeeds or fails with
 * anything but ESRCH (so a check the runtime does not permit counts as alive). A lock written on
 * another host is never taken over: its process cannot be checked.
 *
 * @module
 */
import * as fs from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { errorCode, type FileSystem, writeAll } from "./file_system.ts";
import { LOCK_FILE } from "./wal_format.ts";
import { StorageError, StorageLockedError } from "./storage_errors.ts";

/** What a lock file says. */
export interface LockInfo {
  /** The owner's pid. */
  readonly pid: number;
  /** The owner's start time in clock ticks since boot (Linux), or `""` where unknown. */
  readonly start: string;
  /** The owner's host name. */
  readonly host: string;
}

/** Whether a lock's owner is running: `"alive"`, `"dead"`, or `"unknown"` (another host). */
export type LockOwnerState = "alive" | "dead" | "unknown";

// Fields 3 (state) and 22 (start time) of /proc/<pid>/stat, after the command name, which may
// itself hold spaces and ")".
function procStat(pid: number | "self"): { state: string; start: string } | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { state: fields[0], start: fields[19] };
}

function procStart(pid: number | "self"): string | undefined {
  return procStat(pid)?.start;
}

// The host name, or "" where it cannot be read (Deno without --allow-sys).
function hostName(): string {
  try {
    return hostname();
  } catch {
    return "";
  }
}

/** This process's lock identity. */
export function ownLock(): LockInfo {
  return { pid: process.pid, start: procStart("self") ?? "", host: hostName() };
}

/** The lock file's text for `info`. */
function lockText(info: LockInfo): string {
  return `pid=${info.pid}\nstart=${info.start}\nhost=${info.host}\n`;
}

/** Parse a lock file's text; `undefined` when it is not one. */
export function parseLock(text: string): LockInfo | undefined {
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const pid = Number(fields.get("pid"));
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return { pid, start: fields.get("start") ?? "", host: fields.get("host") ?? "" };
}

/** Whether the process that wrote `info` is still running. */
export function lockOwnerState(info: LockInfo): LockOwnerState {
  const host = hostName();
  if (info.host !== "" && host !== "" && info.host !== host) return "unknown";
  if (procStart("self") !== undefined) {
    const stat = procStat(info.pid);
    // A killed process its parent has not reaped yet (zombie, Z) holds no files any more: its
    // lock is as stale as one whose process is gone.
    if (stat === undefined || stat.state === "Z" || stat.state === "X") return "dead";
    return info.start === "" || stat.start === info.start ? "alive" : "dead";
  }
  try {
    process.kill(info.pid, 0);
    return "alive";
  } catch (e) {
    return errorCode(e) === "ESRCH" ? "dead" : "alive";
  }
}

/** The lock in `dir`, `undefined` without one, or `null` when the file is not a lock file. */
export function readLock(fsys: FileSystem, dir: string): LockInfo | undefined | null {
  const path = join(dir, LOCK_FILE);
  let bytes: Uint8Array;
  try {
    bytes = fsys.readFile(path);
  } catch (e) {
    if (errorCode(e) === "ENOENT") return undefined;
    throw e;
  }
  return parseLock(new TextDecoder().decode(bytes)) ?? null;
}

/**
 * Take `dir`'s lock, taking over a stale one (reported through `warn`).
 *
 * @throws {StorageLockedError} when a live process (this one included) holds it, or one on
 * another host.
 * @throws {StorageError} when the lock file exists but is not readable as one.
 */
export async function acquireLock(
  fsys: FileSystem,
  dir: string,
  warn: (message: string) => void,
): Promise<void> {
  const path = join(dir, LOCK_FILE);
  const me = ownLock();
  // A unique name: ".tmp", so a crash's leftover is deleted with the other temporary files.
  const nonce = Math.floor(Math.random() * 2 ** 32).toString(16);
  const fresh = join(dir, `${LOCK_FILE}.${me.pid}.${nonce}.tmp`);
  const fd = fsys.open(fresh, "create");
  try {
    writeAll(fsys, fd, new TextEncoder().encode(lockText(me)), 0);
    // Synced, so that after a power loss the lock is complete and names its dead owner, rather
    // than empty and unreadable.
    await fsys.datasync(fd);
  } finally {
    fsys.close(fd);
  }
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        fsys.link(fresh, path);
        return;
      } catch (e) {
        // ENOENT: the holder, opening the directory, deleted our file with its own leftovers.
        if (errorCode(e) === "ENOENT") {
          const held = readLock(fsys, dir);
          const pid = held ? held.pid : 0;
          throw new StorageLockedError(path, pid, "another process took it meanwhile");
        }
        if (errorCode(e) !== "EEXIST") throw e;
      }
      const held = readLock(fsys, dir);
      if (held === undefined) continue; // released meanwhile
      if (held === null) {
        throw new StorageError(
          `${path} exists but is not a floe lock file; if no process uses ${dir}, remove it`,
        );
      }
      const state = lockOwnerState(held);
      if (state === "alive") {
        const who = held.pid === me.pid ? "this process already has it open" : "it is running";
        throw new StorageLockedError(path, held.pid, `${who}; stop it first`);
      }
      if (state === "unknown") {
        throw new StorageLockedError(
          path,
          held.pid,
          `it was taken on host ${held.host}, whose processes cannot be checked from here; ` +
            `if that process is gone, remove the lock file`,
        );
      }
      warn(`${path}: taking over the stale lock of process ${held.pid}, which is not running`);
      try {
        fsys.unlink(path);
      } catch (e) {
        if (errorCode(e) !== "ENOENT") throw e;
      }
    }
    throw new StorageError(`${path}: could not take the lock (another process keeps taking it)`);
  } finally {
    try {
      fsys.unlink(fresh);
    } catch {
      // Best effort: a leftover is deleted with the other temporary files at the next open.
    }
  }
}

/** Remove `dir`'s lock if this process holds it. */
export function releaseLock(fsys: FileSystem, dir: string): void {
  const held = readLock(fsys, dir);
  const me = ownLock();
  if (held && held.pid === me.pid && held.start === me.start) fsys.unlink(join(dir, LOCK_FILE));
}
