/**
 * FileStorage: the storage contract in a temp directory, then what only a filesystem has —
 * segments, torn tails, corruption reports, locks, format versions, group commit, disk faults.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Entry, PersistedState, Snapshot } from "../../src/core/types.ts";
import { FaultyFileSystem } from "../../src/storage/faulty_storage.ts";
import { FileStorage, type FileStorageOptions } from "../../src/storage/file_storage.ts";
import { nodeFileSystem } from "../../src/storage/file_system.ts";
import { checkStorage, formatCheckReport } from "../../src/storage/storage_check.ts";
import { lockOwnerState, ownLock, readLock } from "../../src/storage/storage_lock.ts";
import {
  StorageClosedError,
  StorageCorruptionError,
  StorageError,
  StorageFailedError,
  StorageFormatError,
  StorageFullError,
  StorageLockedError,
} from "../../src/storage/storage_errors.ts";
import { storageContractCases } from "./storage_contract.ts";

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "floe-fs-test-" });
}

{
  let dir = "";
  let current: FileStorage | undefined;
  const cases = storageContractCases({
    async open() {
      dir = await tempDir();
      current = await FileStorage.open(dir, { segmentSize: 64 * 1024 });
      return current;
    },
    async reopen() {
      await current?.close();
      current = await FileStorage.open(dir, { segmentSize: 64 * 1024 });
      return current;
    },
  });
  for (const c of cases) {
    Deno.test(`FileStorage contract: ${c.name}`, async () => {
      try {
        await c.run();
      } finally {
        await current?.close();
        current = undefined;
        if (dir !== "") await Deno.remove(dir, { recursive: true });
        dir = "";
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------
// What only a filesystem has.

/** A storage opened with its warnings collected. */
interface Opened {
  readonly storage: FileStorage;
  readonly warnings: string[];
}

async function open(dir: string, options: FileStorageOptions = {}): Promise<Opened> {
  const warnings: string[] = [];
  const storage = await FileStorage.open(dir, {
    onWarning: (m) => warnings.push(m),
    ...options,
  });
  return { storage, warnings };
}

/** The error `p` rejects with, checked to be a `kind`. */
async function failure<T extends Error = Error>(
  p: Promise<unknown>,
  kind?: abstract new (...args: never[]) => T,
): Promise<T> {
  try {
    await p;
  } catch (e) {
    if (kind) assert.ok(e instanceof kind, `expected a ${kind.name}, got ${e}`);
    return e as T;
  }
  throw new assert.AssertionError({ message: "expected a rejection" });
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await tempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function data(index: number, term: number, size: number): Uint8Array {
  const d = new Uint8Array(size);
  for (let i = 0; i < size; i++) d[i] = (index * 31 + term * 7 + i) & 0xff;
  return d;
}

function entry(index: number, term = 1, size = 16): Entry {
  return { index, term, data: data(index, term, size) };
}

function logOf(state: PersistedState): string {
  return state.entries.map((e) => `${e.index}/${e.term}`).join(" ");
}

function range(first: number, last: number, term = 1): string {
  const out: string[] = [];
  for (let i = first; i <= last; i++) out.push(`${i}/${term}`);
  return out.join(" ");
}

function segmentFiles(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith("wal-")).sort();
}

function snapshotFiles(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith("snap-")).sort();
}

function snap(index: number, term = 1, size = 100): Snapshot {
  return { index, term, voters: ["a", "b"], data: data(index, -term, size) };
}

/** Save entries `first..last`, one save each, awaiting each. */
async function saveEach(storage: FileStorage, first: number, last: number, size = 16) {
  for (let i = first; i <= last; i++) await storage.save({ entries: [entry(i, 1, size)] });
}

Deno.test("FileStorage: segments rotate at segmentSize and replay across all of them", async () => {
  await withDir(async (dir) => {
    const { storage } = await open(dir, { segmentSize: 4096 });
    await saveEach(storage, 1, 100, 200);
    await storage.save({ entries: [], hardState: { term: 1, vote: "a", commit: 100 } });
    await storage.close();
    assert.ok(segmentFiles(dir).length >= 4, `segments: ${segmentFiles(dir)}`);
    const again = await open(dir, { segmentSize: 4096 });
    const state = await again.storage.load();
    assert.equal(logOf(state), range(1, 100));
    assert.deepEqual(state.entries[99].data, data(100, 1, 200));
    assert.deepEqual(state.hardState, { term: 1, vote: "a", commit: 100 });
    assert.deepEqual(again.warnings, []);
    await again.storage.close();
  });
});

Deno.test("FileStorage: a snapshot deletes the segments it covers and older snapshot files", async () => {
  await withDir(async (dir) => {
    const { storage } = await open(dir, { segmentSize: 2048 });
    await saveEach(storage, 1, 60, 100);
    const before = segmentFiles(dir);
    assert.ok(before.length >= 5);
    await storage.save({ snapshot: snap(30), entries: [] });
    const middle = segmentFiles(dir);
    assert.ok(middle.length < before.length, `${before} -> ${middle}`);
    assert.ok(middle.length >= 2, "segments holding 31..60 stay");
    await storage.save({ snapshot: snap(60), entries: [] });
    assert.deepEqual(segmentFiles(dir), [before[before.length - 1]], "only the current one stays");
    assert.equal(snapshotFiles(dir).length, 1);
    await storage.save({ entries: [entry(61)] });
    await storage.close();
    const again = await open(dir, { segmentSize: 2048 });
    const state = await again.storage.load();
    assert.equal(logOf(state), "61/1");
    assert.equal(state.snapshot?.index, 60);
    assert.deepEqual(state.snapshot?.data, snap(60).data);
    assert.deepEqual(again.warnings, []);
    await again.storage.close();
  });
});

Deno.test("FileStorage: segments left by an interrupted deletion are removed or replayed", async () => {
  await withDir(async (dir) => {
    const { storage } = await open(dir, { segmentSize: 2048 });
    await saveEach(storage, 1, 60, 100);
    const all = segmentFiles(dir);
    const saved = new Map(all.map((n) => [n, Deno.readFileSync(`${dir}/${n}`)]));
    await storage.save({ snapshot: snap(40), entries: [] });
    await storage.close();
    const kept = segmentFiles(dir);
    const deleted = all.filter((n) => !kept.includes(n));
    assert.ok(deleted.length >= 2);
    // As if the crash came after deleting all but the first one: a gap in the numbers.
    Deno.writeFileSync(`${dir}/${deleted[0]}`, saved.get(deleted[0])!);
    let again = await open(dir, { segmentSize: 2048 });
    assert.equal(logOf(await again.storage.load()), range(41, 60));
    assert.match(again.warnings.join("\n"), new RegExp(`removing ${deleted[0]}`));
    await again.storage.close();
    assert.deepEqual(segmentFiles(dir), kept);
    // As if the crash came before deleting the last one: no gap, replay starts there.
    const last = deleted[deleted.length - 1];
    Deno.writeFileSync(`${dir}/${last}`, saved.get(last)!);
    again = await open(dir, { segmentSize: 2048 });
    assert.equal(logOf(await again.storage.load()), range(41, 60));
    await again.storage.close();
    assert.deepEqual(segmentFiles(dir), kept, "deleted again at open");
  });
});

/** Five saves of one entry each; returns the segment's path and its size after each save. */
async function fiveSaves(dir: string): Promise<{ path: string; sizes: number[] }> {
  const { storage } = await open(dir);
  const sizes: number[] = [];
  for (let i = 1; i <= 5; i++) {
    await storage.save({ entries: [entry(i)], hardState: { term: 1, vote: "a", commit: i - 1 } });
    sizes.push(Deno.statSync(`${dir}/${segmentFiles(dir)[0]}`).size);
  }
  await storage.close();
  return { path: `${dir}/${segmentFiles(dir)[0]}`, sizes };
}

Deno.test("FileStorage: a write torn at any byte of the last batch is cut off at reopening", async () => {
  await withDir(async (dir) => {
    const { path, sizes } = await fiveSaves(dir);
    const pristine = Deno.readFileSync(path);
    for (let cut = sizes[3]; cut < sizes[4]; cut++) {
      Deno.writeFileSync(path, pristine.subarray(0, cut));
      const { storage, warnings } = await open(dir);
      const state = await storage.load();
      assert.equal(logOf(state), range(1, 4), `cut at ${cut}`);
      assert.deepEqual(state.hardState, { term: 1, vote: "a", commit: 3 });
      if (cut === sizes[3]) assert.deepEqual(warnings, []);
      else assert.match(warnings.join(), /torn write at the tail/);
      await storage.close();
      assert.equal(Deno.statSync(path).size, sizes[3]);
    }
  });
});

Deno.test("FileStorage: zeros or garbage after the last batch are cut off", async () => {
  await withDir(async (dir) => {
    const { path, sizes } = await fiveSaves(dir);
    const pristine = Deno.readFileSync(path);
    const garbage = Uint8Array.from({ length: 300 }, (_, i) => (i * 73 + 11) & 0xff);
    for (const tail of [new Uint8Array(4096), garbage]) {
      Deno.writeFileSync(path, new Uint8Array([...pristine, ...tail]));
      const { storage, warnings } = await open(dir);
      assert.equal(logOf(await storage.load()), range(1, 5));
      assert.match(warnings.join(), new RegExp(`cut the file from ${sizes[4] + tail.length}`));
      await storage.close();
    }
  });
});

Deno.test("FileStorage: damage before the last batch stops start-up, naming file and offset", async () => {
  await withDir(async (dir) => {
    const { path, sizes } = await fiveSaves(dir);
    const pristine = Deno.readFileSync(path);
    // A byte inside the third batch: two complete batches follow it.
    const at = sizes[1] + 20;
    const bad = pristine.slice();
    bad[at] ^= 0x40;
    Deno.writeFileSync(path, bad);
    const e = await failure(open(dir), StorageCorruptionError);
    assert.equal(e.file, path);
    assert.ok(e.offset >= sizes[1] && e.offset <= at, `offset ${e.offset}`);
    assert.match(e.message, new RegExp(`${path} at offset ${e.offset}`));
    assert.deepEqual(Deno.readFileSync(path), bad, "nothing repaired");
    // The lock was released: with the damage undone the directory opens.
    Deno.writeFileSync(path, pristine);
    const { storage } = await open(dir);
    assert.equal(logOf(await storage.load()), range(1, 5));
    await storage.close();
  });
});

Deno.test("FileStorage: a truncated segment that is not the last stops start-up", async () => {
  await withDir(async (dir) => {
    const { storage } = await open(dir, { segmentSize: 1024 });
    await saveEach(storage, 1, 40, 100);
    await storage.close();
    const [first, second] = segmentFiles(dir);
    const pristine = Deno.readFileSync(`${dir}/${first}`);
    Deno.writeFileSync(`${dir}/${first}`, pristine.subarray(0, pristine.length - 7));
    let e = await failure(open(dir), StorageCorruptionError);
    assert.equal(e.file, `${dir}/${first}`);
    // Cut at a batch boundary the segment itself looks fine; the next one's header does not
    // follow from it.
    const batchSize = 12 + 16 + 100 + 20;
    Deno.writeFileSync(`${dir}/${first}`, pristine.subarray(0, pristine.length - batchSize));
    e = await failure(open(dir), StorageCorruptionError);
    assert.equal(e.file, `${dir}/${second}`);
    assert.match(e.message, new RegExp(`does not continue ${first}`));
  });
});

Deno.test("FileStorage: a missing or damaged snapshot file stops start-up", async () => {
  await withDir(async (dir) => {
    const { storage } = await open(dir);
    await saveEach(storage, 1, 5);
    await storage.save({ snapshot: snap(3, 1, 5000), entries: [] });
    await storage.close();
    const [name] = snapshotFiles(dir);
    const bytes = Deno.readFileSync(`${dir}/${name}`);
    bytes[4000] ^= 1;
    Deno.writeFileSync(`${dir}/${name}`, bytes);
    const opened = await open(dir);
    const e = await failure(opened.storage.load(), StorageCorruptionError);
    assert.equal(e.file, `${dir}/${name}`);
    await opened.storage.close();
    Deno.removeSync(`${dir}/${name}`);
    const e2 = await failure(open(dir), StorageCorruptionError);
    assert.match(e2.message, /snapshot file is missing/);
  });
});

Deno.test("FileStorage: the lock stops a second open, naming the pid; close releases it", async () => {
  await withDir(async (dir) => {
    const { storage } = await open(dir);
    const e = await failure(open(dir), StorageLockedError);
    assert.equal(e.pid, Deno.pid);
    assert.match(e.message, new RegExp(`locked by process ${Deno.pid}`));
    await storage.close();
    const again = await open(dir);
    await again.storage.close();
  });
});

Deno.test("FileStorage: a stale lock of a dead process is taken over; another host's is not", async () => {
  await withDir(async (dir) => {
    const child = new Deno.Command(Deno.execPath(), { args: ["eval", "0"] }).spawn();
    await child.status;
    // Empty when the host name cannot be read (Deno without --allow-sys): hosts then match.
    const host = ownLock().host;
    Deno.writeTextFileSync(`${dir}/LOCK`, `pid=${child.pid}\nstart=1\nhost=${host}\n`);
    const { storage, warnings } = await open(dir);
    assert.match(warnings.join(), new RegExp(`stale lock of process ${child.pid}`));
    await storage.close();
    assert.equal(readLock(nodeFileSystem, dir), undefined, "released at close");
    Deno.writeTextFileSync(`${dir}/LOCK`, `pid=${child.pid}\nstart=1\nhost=elsewhere\n`);
    if (host !== "") {
      const e = await failure(open(dir), StorageLockedError);
      assert.match(e.message, /host elsewhere/);
    }
    Deno.writeTextFileSync(`${dir}/LOCK`, "garbage");
    await failure(open(dir), StorageError);
  });
});

Deno.test("FileStorage: the lock of a killed process its parent has not reaped is stale", async () => {
  if (Deno.build.os !== "linux") return; // zombies are read from /proc
  // `sleep 0.1` runs under a parent that execs into `sleep 10` and never waits for it: once it
  // exits it stays a zombie, as a SIGKILLed node does until its supervisor reaps it.
  const parent = new Deno.Command("sh", {
    args: ["-c", "sleep 0.1 & echo $!; exec sleep 10"],
    stdout: "piped",
  }).spawn();
  const reader = parent.stdout.getReader();
  try {
    const { value } = await reader.read();
    const pid = Number(new TextDecoder().decode(value).trim());
    const stat = () => Deno.readTextFileSync(`/proc/${pid}/stat`);
    const fields = () => stat().slice(stat().lastIndexOf(")") + 2).split(" ");
    const start = fields()[19];
    for (let i = 0; i < 100 && fields()[0] !== "Z"; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(fields()[0], "Z", "the child became a zombie");
    assert.equal(lockOwnerState({ pid, start, host: ownLock().host }), "dead");
  } finally {
    reader.releaseLock();
    parent.kill("SIGKILL");
    await parent.status;
    await parent.stdout.cancel();
  }
});

Deno.test("FileStorage: an unknown format version, or log files without one, are refused", async () => {
  await withDir(async (dir) => {
    const { storage } = await open(dir);
    await saveEach(storage, 1, 2);
    await storage.close();
    assert.equal(Deno.readTextFileSync(`${dir}/FORMAT`), "floe-wal 1\n");
    Deno.writeTextFileSync(`${dir}/FORMAT`, "floe-wal 7\n");
    let e = await failure(open(dir), StorageFormatError);
    assert.match(e.message, /format version 7; this floe reads version 1.*newer/);
    Deno.removeSync(`${dir}/FORMAT`);
    e = await failure(open(dir), StorageFormatError);
    assert.match(e.message, /log files .* but no FORMAT file/);
    Deno.writeTextFileSync(`${dir}/FORMAT`, "hello");
    await assert.rejects(open(dir), StorageFormatError);
  });
});

Deno.test("FileStorage: concurrent saves apply in call order and share syncs (group commit)", async () => {
  await withDir(async (dir) => {
    const { storage } = await open(dir);
    const order: number[] = [];
    const saves: Promise<void>[] = [];
    for (let i = 1; i <= 256; i++) {
      saves.push(storage.save({ entries: [entry(i)] }).then(() => void order.push(i)));
    }
    // Later calls overwrite what earlier ones saved: call order decides.
    saves.push(
      storage.save({ entries: [entry(200, 2), entry(201, 2)] }).then(() => {
        order.push(0);
      }),
    );
    await Promise.all(saves);
    assert.deepEqual(order, [...Array.from({ length: 256 }, (_, i) => i + 1), 0]);
    assert.ok(storage.stats.batches <= 3, `batches: ${storage.stats.batches}`);
    assert.equal(storage.stats.saves, 257);
    const expected = `${range(1, 199)} 200/2 201/2`;
    assert.equal(logOf(await storage.load()), expected);
    await storage.close();
    const again = await open(dir);
    assert.equal(logOf(await again.storage.load()), expected);
    await again.storage.close();
  });
});

Deno.test("FileStorage: proposers that save again as soon as a save resolves share syncs", async () => {
  await withDir(async (dir) => {
    const { storage } = await open(dir);
    let next = 1;
    const proposer = async () => {
      for (let k = 0; k < 20; k++) await storage.save({ entries: [entry(next++)] });
    };
    await Promise.all(Array.from({ length: 32 }, proposer));
    assert.equal(storage.stats.saves, 640);
    assert.ok(storage.stats.batches <= 640 / 8, `batches: ${storage.stats.batches}`);
    assert.equal(logOf(await storage.load()), range(1, 640));
    await storage.close();
  });
});

Deno.test("FileStorage: load waits for earlier saves; a save captures its data when called", async () => {
  await withDir(async (dir) => {
    const { storage } = await open(dir);
    const e = entry(1);
    const saved = storage.save({ entries: [e] });
    const original = e.data.slice();
    e.data.fill(0xee); // the caller reuses its buffer before the save resolves
    const state = await storage.load();
    await saved;
    assert.equal(logOf(state), "1/1");
    assert.deepEqual(state.entries[0].data, original);
    const empty = storage.save({ entries: [] });
    assert.ok(empty instanceof Promise);
    await empty;
    await storage.close();
  });
});

Deno.test("FileStorage: close waits for saves in flight; later saves are refused", async () => {
  await withDir(async (dir) => {
    const { storage } = await open(dir);
    const saved = storage.save({ entries: [entry(1)] });
    await storage.close();
    await saved;
    await assert.rejects(
      Promise.resolve(storage.save({ entries: [entry(2)] })),
      StorageClosedError,
    );
    const again = await open(dir);
    assert.equal(logOf(await again.storage.load()), "1/1");
    await again.storage.close();
  });
});

Deno.test("FileStorage: a failed fdatasync fails the storage for good, with that error", async () => {
  await withDir(async (dir) => {
    const fsys = new FaultyFileSystem();
    const { storage } = await open(dir, { fileSystem: fsys });
    await saveEach(storage, 1, 3);
    fsys.inject({ op: "datasync", code: "EIO", times: 1 });
    const first = await failure(
      storage.save({ entries: [entry(4)] }),
      StorageFailedError,
    );
    assert.ok(!(first instanceof StorageFullError));
    assert.match(first.message, /fdatasync .* failed \(EIO\).*retried sync/);
    // The fault is gone, but a retried fsync proves nothing: the storage stays failed.
    const later = await failure(storage.save({ entries: [entry(4)] }));
    assert.equal(later, first);
    await assert.rejects(storage.load(), (e) => e === first);
    await storage.close();
    const again = await open(dir);
    const log = logOf(await again.storage.load());
    // The failed batch was written, so it may or may not be there; nothing before it is lost.
    assert.ok(log === range(1, 3) || log === range(1, 4), log);
    await again.storage.close();
  });
});

Deno.test("FileStorage: ENOSPC mid-write is a StorageFullError and damages nothing", async () => {
  await withDir(async (dir) => {
    const fsys = new FaultyFileSystem();
    const { storage } = await open(dir, { fileSystem: fsys });
    await saveEach(storage, 1, 3);
    const path = `${dir}/${segmentFiles(dir)[0]}`;
    const size = Deno.statSync(path).size;
    fsys.inject({ op: "write", code: "ENOSPC", partialBytes: 30 });
    const concurrent = [
      storage.save({ entries: [entry(4, 1, 1000)] }),
      storage.save({ entries: [entry(5, 1, 1000)] }),
    ];
    const e = await failure(concurrent[0], StorageFullError);
    await assert.rejects(concurrent[1], (x) => x === e);
    assert.match(e.message, /no space left.*cut off, so earlier saves are intact/);
    assert.equal(Deno.statSync(path).size, size, "the partial batch was cut off");
    await assert.rejects(storage.save({ entries: [entry(4)] }), (x) => x === e);
    await storage.close();
    const again = await open(dir);
    assert.equal(logOf(await again.storage.load()), range(1, 3));
    assert.deepEqual(again.warnings, []);
    await again.storage.close();
  });
});

Deno.test("FileStorage: ENOSPC with a failing cut-off leaves a torn tail that recovery repairs", async () => {
  await withDir(async (dir) => {
    const fsys = new FaultyFileSystem();
    const { storage } = await open(dir, { fileSystem: fsys });
    await saveEach(storage, 1, 3);
    fsys.inject({ op: "write", code: "ENOSPC", partialBytes: 50 });
    fsys.inject({ op: "truncate", code: "EIO" });
    const e = await failure(storage.save({ entries: [entry(4)] }), StorageFullError);
    assert.match(String(e), /cutting off the partial write failed too/);
    await storage.close();
    const again = await open(dir);
    assert.equal(logOf(await again.storage.load()), range(1, 3));
    assert.match(again.warnings.join(), /torn write at the tail/);
    await again.storage.close();
  });
});

Deno.test("FileStorage: ENOSPC writing a snapshot file or a new segment changes nothing", async () => {
  await withDir(async (dir) => {
    const fsys = new FaultyFileSystem();
    const { storage } = await open(dir, { fileSystem: fsys, segmentSize: 1024 });
    await saveEach(storage, 1, 5);
    fsys.inject({ op: "write", path: ".snap", partialBytes: 10 });
    await assert.rejects(storage.save({ snapshot: snap(3), entries: [] }), StorageFullError);
    await storage.close();
    let again = await open(dir, { fileSystem: fsys, segmentSize: 1024 });
    fsys.clear();
    let state = await again.storage.load();
    assert.equal(logOf(state), range(1, 5));
    assert.equal(state.snapshot, undefined);
    assert.deepEqual(snapshotFiles(dir), []);
    // Fill the first segment, then fail creating the next one.
    await saveEach(again.storage, 6, 20, 100);
    const segments = segmentFiles(dir).length;
    fsys.inject({ op: "open", path: "wal-" });
    let acked = 20;
    let error: unknown;
    for (let i = 21; i <= 60 && error === undefined; i++) {
      try {
        await again.storage.save({ entries: [entry(i, 1, 100)] });
        acked = i;
      } catch (e) {
        error = e;
      }
    }
    assert.ok(error instanceof StorageFullError, `${error}`);
    await again.storage.close();
    fsys.clear();
    assert.equal(segmentFiles(dir).length, segments);
    again = await open(dir, { segmentSize: 1024 });
    state = await again.storage.load();
    assert.equal(logOf(state), range(1, acked));
    await again.storage.close();
  });
});

Deno.test("checkStorage: reports a healthy directory, a torn tail, and damage", async () => {
  await withDir(async (dir) => {
    const { storage } = await open(dir, { segmentSize: 1024 });
    await saveEach(storage, 1, 20, 100);
    await storage.save({
      snapshot: snap(10),
      entries: [],
      hardState: { term: 2, vote: "b", commit: 10 },
    });
    await storage.save({ entries: [entry(21, 2, 100)] });
    let report = await checkStorage(dir);
    assert.equal(report.ok, true);
    assert.equal(report.lock?.pid, Deno.pid);
    assert.equal(report.lock?.owner, "alive");
    await storage.close();
    report = await checkStorage(dir);
    assert.equal(report.ok, true, formatCheckReport(report));
    assert.equal(report.formatVersion, 1);
    assert.equal(report.lock, undefined);
    assert.equal(report.firstIndex, 11);
    assert.equal(report.lastIndex, 21);
    assert.equal(report.entries, 11);
    assert.deepEqual(report.hardState, { term: 2, vote: "b", commit: 10 });
    assert.equal(report.snapshot?.index, 10);
    assert.deepEqual(report.snapshot?.voters, ["a", "b"]);
    assert.ok(report.records.entry >= 10);
    assert.equal(report.records.snapshot, 1);
    assert.ok(report.segments.length >= 1);
    assert.match(formatCheckReport(report), /log: 11 entries, 11\.\.21/);

    const files = segmentFiles(dir);
    const last = `${dir}/${files[files.length - 1]}`;
    const pristine = Deno.readFileSync(last);
    Deno.writeFileSync(last, pristine.subarray(0, pristine.length - 3));
    report = await checkStorage(dir);
    assert.equal(report.ok, true, formatCheckReport(report));
    assert.equal(report.tailRepair?.file, last);
    assert.match(formatCheckReport(report), /torn tail/);
    assert.deepEqual(Deno.readFileSync(last), pristine.subarray(0, pristine.length - 3));

    const first = `${dir}/${files[0]}`;
    const bytes = Deno.readFileSync(first);
    bytes[40] ^= 4;
    Deno.writeFileSync(first, bytes);
    report = await checkStorage(dir);
    assert.equal(report.ok, false);
    assert.equal(report.problems[0].file, first);
    assert.equal(typeof report.problems[0].offset, "number");
    assert.match(formatCheckReport(report), /PROBLEM: .* at offset/);
  });
});

Deno.test("FileStorage: an empty last segment (crash right after creating it) is removed at reopening", async () => {
  const dir = await Deno.makeTempDir({ prefix: "floe-empty-seg-" });
  try {
    const s = await FileStorage.open(dir, { onWarning: () => {} });
    await s.save({ hardState: { term: 1, vote: "a", commit: 0 }, entries: [] });
    await s.save({ entries: [{ index: 1, term: 1, data: new Uint8Array([7]) }] });
    await s.close();
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".log"));
    const last = names.sort().at(-1)!;
    const id = parseInt(last.slice(4, -4), 16);
    const next = `wal-${(id + 1).toString(16).padStart(16, "0")}.log`;
    await Deno.writeFile(`${dir}/${next}`, new Uint8Array(0));
    const warnings: string[] = [];
    const s2 = await FileStorage.open(dir, { onWarning: (w) => warnings.push(w) });
    assert.equal((await s2.load()).entries.length, 1);
    // Saves after the repair land in a readable log.
    await s2.save({ entries: [{ index: 2, term: 1, data: new Uint8Array([8]) }] });
    await s2.close();
    const s3 = await FileStorage.open(dir, { onWarning: () => {} });
    assert.deepEqual((await s3.load()).entries.map((e) => e.index), [1, 2]);
    await s3.close();
    assert.ok(warnings.some((w) => w.includes("empty segment")), warnings.join("\n"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
