/**
 * `checkStorage(dir)`: a read-only report on a `FileStorage` directory — format version, lock,
 * segments and their records, the log's range, hard state, snapshot, what opening it would
 * repair, and every problem found, each with its file and offset. The `floe storage check DIR`
 * command prints it (`formatCheckReport`).
 *
 * @module
 */
import { join } from "node:path";
import type { HardState } from "../core/types.ts";
import { errorCode, type FileSystem, nodeFileSystem } from "./file_system.ts";
import { StorageCorruptionError } from "./storage_errors.ts";
import { type LockOwnerState, lockOwnerState, readLock } from "./storage_lock.ts";
import {
  decodeSnapshotFile,
  FORMAT_FILE,
  FORMAT_TEXT,
  PayloadError,
  snapshotName,
} from "./wal_format.ts";
import { replayWal, type SegmentReport, type TailRepair } from "./wal_replay.ts";

/** One thing wrong with a directory. */
export interface StorageProblem {
  /** The file concerned (the directory itself when none). */
  readonly file: string;
  /** Byte offset of the damage, when it has one. */
  readonly offset?: number;
  /** What is wrong. */
  readonly message: string;
}

/** What `checkStorage` found. */
export interface StorageCheckReport {
  /** The directory checked. */
  readonly dir: string;
  /** True when there are no problems: opening would succeed (perhaps after a tail repair). */
  readonly ok: boolean;
  /** The format version from `FORMAT`, if readable. */
  readonly formatVersion: number | undefined;
  /** The lock file's owner and whether it runs, if there is a lock file. */
  readonly lock: { readonly pid: number; readonly owner: LockOwnerState } | undefined;
  /** Segments read, in order. */
  readonly segments: readonly SegmentReport[];
  /** Valid records in complete batches, by type, over all segments. */
  readonly records: Readonly<Record<string, number>>;
  /** Index of the first entry in the log, if any. */
  readonly firstIndex: number | undefined;
  /** Index of the last entry (the snapshot's when the log is empty; 0 for none). */
  readonly lastIndex: number;
  /** Entries in the log after the snapshot. */
  readonly entries: number;
  /** The saved hard state, when the log could be read. */
  readonly hardState: HardState | undefined;
  /** The saved snapshot, when there is one. */
  readonly snapshot:
    | {
      readonly index: number;
      readonly term: number;
      readonly voters: readonly string[];
      readonly bytes: number;
      readonly file: string;
    }
    | undefined;
  /** The torn tail that opening would cut off. */
  readonly tailRepair: TailRepair | undefined;
  /** Files opening would delete (temporary files, unreferenced snapshots, stale segments). */
  readonly leftovers: readonly string[];
  /** Everything that stops the directory from opening. */
  readonly problems: readonly StorageProblem[];
}

/**
 * Inspect the FileStorage directory `dir` without changing it. Safe to run while a node has the
 * directory open (the report may then show the tail of a write in progress).
 */
export function checkStorage(
  dir: string,
  options: { readonly fileSystem?: FileSystem } = {},
): Promise<StorageCheckReport> {
  const fsys = options.fileSystem ?? nodeFileSystem;
  const problems: StorageProblem[] = [];
  const segments: SegmentReport[] = [];
  let formatVersion: number | undefined;
  const formatPath = join(dir, FORMAT_FILE);
  try {
    const text = new TextDecoder().decode(fsys.readFile(formatPath));
    const m = /^floe-wal (\d+)\n?$/.exec(text);
    if (m) formatVersion = Number(m[1]);
    if (text !== FORMAT_TEXT) {
      problems.push({
        file: formatPath,
        message: m ? `format version ${m[1]} is not one this floe reads` : "not a format file",
      });
    }
  } catch (e) {
    problems.push({
      file: formatPath,
      message: errorCode(e) === "ENOENT" ? "missing" : `unreadable: ${e}`,
    });
  }
  let lock: StorageCheckReport["lock"];
  try {
    const held = readLock(fsys, dir);
    if (held === null) problems.push({ file: join(dir, "LOCK"), message: "not a lock file" });
    else if (held) lock = { pid: held.pid, owner: lockOwnerState(held) };
  } catch (e) {
    problems.push({ file: join(dir, "LOCK"), message: `unreadable: ${e}` });
  }

  let report: Omit<StorageCheckReport, "dir" | "ok" | "formatVersion" | "lock" | "problems"> = {
    segments,
    records: {},
    firstIndex: undefined,
    lastIndex: 0,
    entries: 0,
    hardState: undefined,
    snapshot: undefined,
    tailRepair: undefined,
    leftovers: [],
  };
  try {
    const r = replayWal(fsys, dir, { onSegment: (s) => segments.push(s) });
    const idx = r.index;
    const records: Record<string, number> = {};
    for (const s of segments) {
      for (const [k, v] of Object.entries(s.records)) records[k] = (records[k] ?? 0) + v;
    }
    let snapshot: StorageCheckReport["snapshot"];
    if (idx.snapshot) {
      const file = join(dir, snapshotName(idx.snapshot.index, idx.snapshot.fileId));
      try {
        const s = decodeSnapshotFile(fsys.readFile(file), idx.snapshot);
        snapshot = { index: s.index, term: s.term, voters: s.voters, bytes: s.data.length, file };
      } catch (e) {
        if (!(e instanceof PayloadError)) throw e;
        problems.push({ file, offset: 0, message: e.message });
      }
    }
    const keep = idx.snapshot ? snapshotName(idx.snapshot.index, idx.snapshot.fileId) : "";
    const leftovers = [
      ...r.tempFiles,
      ...r.snapshotFiles.filter((n) => n !== keep),
      ...r.skippedSegments,
    ];
    report = {
      segments,
      records,
      firstIndex: idx.terms.length > 0 ? idx.base + 1 : undefined,
      lastIndex: idx.lastIndex,
      entries: idx.terms.length,
      hardState: idx.hardState,
      snapshot,
      tailRepair: r.tailRepair,
      leftovers,
    };
  } catch (e) {
    if (e instanceof StorageCorruptionError) {
      problems.push({ file: e.file, offset: e.offset, message: e.message });
    } else {
      problems.push({ file: dir, message: `${e}` });
    }
  }
  return Promise.resolve({
    dir,
    ok: problems.length === 0,
    formatVersion,
    lock,
    problems,
    ...report,
  });
}

/** A human-readable rendering of a check report, one fact per line. */
export function formatCheckReport(r: StorageCheckReport): string {
  const lines: string[] = [];
  lines.push(`${r.dir}: ${r.ok ? "OK" : `${r.problems.length} problem(s)`}`);
  lines.push(`format version: ${r.formatVersion ?? "unknown"}`);
  if (r.lock) lines.push(`lock: pid ${r.lock.pid} (${r.lock.owner})`);
  for (const s of r.segments) {
    const counts = Object.entries(s.records).map(([k, v]) => `${k} ${v}`).join(", ");
    const range = s.firstIndex === undefined
      ? "no entries"
      : `entries ${s.firstIndex}..${s.lastIndex}`;
    lines.push(
      `segment ${s.file}: ${s.bytes} bytes (${s.validBytes} valid), ${s.batches} batches, ` +
        `${range}; records: ${counts || "none"}`,
    );
  }
  const totals = Object.entries(r.records).map(([k, v]) => `${k} ${v}`).join(", ");
  lines.push(`records: ${totals || "none"}`);
  lines.push(
    r.entries > 0
      ? `log: ${r.entries} entries, ${r.firstIndex}..${r.lastIndex}`
      : `log: empty (last index ${r.lastIndex})`,
  );
  if (r.hardState) {
    const hs = r.hardState;
    lines.push(`hard state: term ${hs.term}, vote ${JSON.stringify(hs.vote)}, commit ${hs.commit}`);
  }
  if (r.snapshot) {
    const s = r.snapshot;
    lines.push(
      `snapshot: index ${s.index}, term ${s.term}, voters ${s.voters.join(",")}, ` +
        `${s.bytes} bytes (${s.file})`,
    );
  } else {
    lines.push("snapshot: none");
  }
  if (r.tailRepair) {
    const t = r.tailRepair;
    lines.push(
      `torn tail: ${t.file} would be cut from ${t.size} to ${t.offset} bytes (${t.reason})`,
    );
  }
  if (r.leftovers.length > 0) {
    lines.push(`leftovers opening would delete: ${r.leftovers.join(", ")}`);
  }
  for (const p of r.problems) {
    lines.push(
      `PROBLEM: ${p.file}${p.offset === undefined ? "" : ` at offset ${p.offset}`}: ${p.message}`,
    );
  }
  return lines.join("\n");
}
