/**
 * IndexedDB-specific cases, run inside the browser page next to the storage contract suite:
 * strict one-transaction saves, the format version, foreign and corrupt databases, the Web Lock,
 * persistence, `openStorage`'s choice, and state that outlives a page reload, a browser restart
 * and a killed browser. Listing them (for test names) touches no browser API.
 *
 * @module
 */
import type { Entry, HardState, Snapshot } from "../../src/core/types.ts";
import {
  INDEXEDDB_FORMAT_VERSION,
  IndexedDBStorage,
  type Persistence,
} from "../../src/storage/indexeddb_storage.ts";
import { openStorage } from "../../src/storage/open_storage.ts";
import { assert, assertEqual, assertRejects } from "./page_assert.ts";
import { spyTransactions, writeRawDatabase } from "./raw_idb.ts";

/** A case that runs start to finish inside one page. */
export interface PageCase {
  /** The test's name. */
  readonly name: string;
  /** Run it; throws on failure. */
  run(): Promise<void>;
}

/** What the harness does to the browser between a phased case's two halves. */
export type Between = "reload" | "restart" | "kill";

/** A case in two halves, with the page reloaded, or the browser restarted or killed, between. */
export interface PhasedCase {
  /** The test's name. */
  readonly name: string;
  /** What happens between `before` and `after`. */
  readonly between: Between;
  /** The first half. For `kill`, it starts work that `progress` reports on, and returns. */
  before(): Promise<void>;
  /** For `kill`: how many saves have resolved so far; the harness kills after enough. */
  progress?(): number;
  /** The second half, in a new page; `progress` is the last count read before the kill. */
  after(progress: number | undefined): Promise<void>;
}

let dbCounter = 0;

/** A database name no other case uses in this browser profile. */
export function uniqueName(prefix: string): string {
  dbCounter++;
  return `floe-${prefix}-${dbCounter}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Bytes that depend on `seed`, so a mix-up between entries shows. */
function bytes(seed: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (seed * 31 + i * 7) & 0xff;
  return out;
}

function entries(first: number, last: number, term: number, size = 16): Entry[] {
  const out: Entry[] = [];
  for (let i = first; i <= last; i++) out.push({ index: i, term, data: bytes(i + term, size) });
  return out;
}

/** Open database `name`, run `body`, then close it and delete the database, even on failure. */
async function withStorage(
  name: string,
  body: (storage: IndexedDBStorage) => Promise<void>,
): Promise<void> {
  const storage = await IndexedDBStorage.open(name, { persist: false });
  try {
    await body(storage);
  } finally {
    await storage.close();
    await IndexedDBStorage.destroy(name);
  }
}

/** Count calls to `navigator.storage.persist`; installed by the page before any case runs. */
export const persistCalls = { count: 0 };

/** Wrap `navigator.storage.persist` so the page can tell how often it was asked. */
export function countPersistCalls(): void {
  const storage = (globalThis as {
    navigator?: { storage?: { persist?: () => Promise<boolean> } };
  }).navigator?.storage;
  const original = storage?.persist;
  if (storage === undefined || original === undefined) return;
  storage.persist = () => {
    persistCalls.count++;
    return original.call(storage);
  };
}

const reloadHardState: HardState = { term: 7, vote: "peer-b", commit: 41 };
const reloadSnapshot: Snapshot = {
  index: 30,
  term: 5,
  voters: ["a", "b", "c"],
  data: bytes(3, 512),
};

/** Save a log with a snapshot, a suffix overwrite and a hard state, the page-reload fixture. */
async function saveFixture(storage: IndexedDBStorage): Promise<void> {
  await storage.save({ entries: entries(1, 40, 5) });
  await storage.save({ snapshot: reloadSnapshot, entries: [] });
  await storage.save({ entries: entries(38, 45, 7), hardState: reloadHardState });
}

async function checkFixture(storage: IndexedDBStorage): Promise<void> {
  const state = await storage.load();
  assertEqual(state.hardState, reloadHardState, "hard state after restart");
  assertEqual(state.snapshot, reloadSnapshot, "snapshot after restart");
  assertEqual(
    state.entries,
    [...entries(31, 37, 5), ...entries(38, 45, 7)],
    "entries after restart",
  );
}

/** A two-phase case that saves the fixture, lets the harness do `between`, and checks it. */
function survives(between: Between, name: string): PhasedCase {
  const db = `floe-${between}-fixture`;
  return {
    name,
    between,
    async before() {
      // Left open on purpose: the page goes away under it, as when a tab is closed or reloaded.
      const storage = await IndexedDBStorage.open(db, { persist: false });
      await saveFixture(storage);
    },
    async after() {
      await withStorage(db, checkFixture);
    },
  };
}

// The killed-browser case: a writer saves one entry and a matching commit per save, as fast as
// it can, until the browser is killed. Every save that had resolved must be found afterwards,
// and the hard state must match the log (both come from the same transaction).
const KILL_DB = "floe-kill-writer";
let killResolved = 0;

async function killWriter(): Promise<void> {
  const storage = await IndexedDBStorage.open(KILL_DB, { persist: false });
  for (let i = 1;; i++) {
    await storage.save({
      entries: [{ index: i, term: 1, data: bytes(i, 64 + (i % 7) * 100) }],
      hardState: { term: 1, vote: "a", commit: i },
    });
    killResolved = i;
  }
}

/** The cases that need the browser to do something between their halves. */
export function phasedCases(): PhasedCase[] {
  return [
    survives("reload", "IndexedDB: the saved state survives a page reload"),
    survives("restart", "IndexedDB: the saved state survives a browser restart"),
    {
      name: "IndexedDB: every resolved save survives the browser being killed (SIGKILL)",
      between: "kill",
      before() {
        killResolved = 0;
        // Runs until the kill; its rejection (the page going away) has nobody to report to.
        killWriter().catch(() => {});
        return Promise.resolve();
      },
      progress: () => killResolved,
      async after(progress) {
        assert(progress !== undefined && progress > 0, "the harness read no progress");
        await withStorage(KILL_DB, async (storage) => {
          const state = await storage.load();
          const last = state.entries.length;
          assert(
            last >= progress,
            `${progress} saves had resolved before the kill, but only ${last} entries survived`,
          );
          assertEqual(state.entries[last - 1].index, last, "last surviving index");
          assertEqual(state.hardState.commit, last, "commit vs last entry (same transaction)");
          for (const [i, e] of state.entries.entries()) {
            assertEqual(e.data, bytes(i + 1, 64 + ((i + 1) % 7) * 100), `entry ${i + 1} data`);
          }
        });
      },
    },
  ];
}

/** The single-page IndexedDB cases. */
export function indexedDbCases(): PageCase[] {
  return [
    {
      name: "IndexedDB: each save is one strict read-write transaction",
      run: () =>
        withStorage(uniqueName("strict"), async (storage) => {
          await storage.load();
          const spy = spyTransactions();
          try {
            await storage.save({ entries: entries(1, 5, 1) });
            await storage.save({ hardState: { term: 1, vote: "a", commit: 2 }, entries: [] });
            await storage.save({
              snapshot: { index: 3, term: 1, voters: ["a"], data: bytes(1, 8) },
              entries: entries(4, 6, 2),
              hardState: { term: 2, vote: "", commit: 4 },
            });
          } finally {
            spy.stop();
          }
          assertEqual(
            spy.seen,
            [1, 2, 3].map(() => ({ mode: "readwrite", durability: "strict" })),
            "transactions opened by three saves",
          );
        }),
    },
    {
      name: "IndexedDB: a new database records the format version",
      run: () =>
        withStorage(uniqueName("format"), async (storage) => {
          assertEqual(INDEXEDDB_FORMAT_VERSION, 1, "format version");
          assertEqual(await storage.load(), {
            hardState: { term: 0, vote: "", commit: 0 },
            entries: [],
          }, "state of a new database");
        }),
    },
    {
      name: "IndexedDB: another format version is refused by name",
      async run() {
        const name = uniqueName("format2");
        await writeRawDatabase(name, "raft", [["format", 2], [1, { index: 1 }]]);
        try {
          await assertRejects(
            IndexedDBStorage.open(name, { persist: false }),
            new RegExp(`"${name}" has format version 2; this floe reads and writes version 1`),
            "open of a version-2 database",
          );
        } finally {
          await IndexedDBStorage.destroy(name);
        }
      },
    },
    {
      name: "IndexedDB: records without a format version, or no raft store, are refused",
      async run() {
        const noVersion = uniqueName("noversion");
        const foreign = uniqueName("foreign");
        await writeRawDatabase(noVersion, "raft", [["something", 1]]);
        await writeRawDatabase(foreign, "keyval", [["k", "v"]]);
        try {
          await assertRejects(
            IndexedDBStorage.open(noVersion, { persist: false }),
            /holds 1 records but no format version/,
            "open of a database without a version",
          );
          await assertRejects(
            IndexedDBStorage.open(foreign, { persist: false }),
            /has no "raft" object store; it was not created by floe/,
            "open of someone else's database",
          );
        } finally {
          await IndexedDBStorage.destroy(noVersion);
          await IndexedDBStorage.destroy(foreign);
        }
      },
    },
    {
      name: "IndexedDB: a newer schema version is refused",
      async run() {
        const name = uniqueName("schema");
        await writeRawDatabase(name, "raft", [["format", 1]], 5);
        try {
          await assertRejects(
            IndexedDBStorage.open(name, { persist: false }),
            /has a newer schema than version 1/,
            "open of a schema-5 database",
          );
        } finally {
          await IndexedDBStorage.destroy(name);
        }
      },
    },
    {
      name: "IndexedDB: a malformed record stops load, naming its key",
      async run() {
        const name = uniqueName("corrupt");
        await writeRawDatabase(name, "raft", [
          ["format", 1],
          [1, { index: 1, term: 1, data: bytes(1, 4) }],
          [2, { index: 2, term: "x", data: bytes(2, 4) }],
        ]);
        try {
          await withStorage(name, async (storage) => {
            await assertRejects(
              storage.load(),
              /database "[^"]+", key 2: malformed log entry; refusing to start/,
              "load of a corrupt entry",
            );
          });
        } finally {
          await IndexedDBStorage.destroy(name);
        }
      },
    },
    {
      name: "IndexedDB: a second open waits for the lock, then is refused by name",
      async run() {
        const name = uniqueName("lock");
        const first = await IndexedDBStorage.open(name, { persist: false });
        try {
          const start = performance.now();
          await assertRejects(
            IndexedDBStorage.open(name, { persist: false, lockTimeoutMs: 300 }),
            new RegExp(`"${name}" is already open in this or another tab \\(waited 300 ms\\)`),
            "second open",
          );
          const waited = performance.now() - start;
          assert(waited >= 250, `refused after ${waited.toFixed(0)} ms, before the 300 ms wait`);
          await assertRejects(
            IndexedDBStorage.open(name, { persist: false, lockTimeoutMs: 0 }),
            /is already open in this or another tab \(waited 0 ms\)/,
            "second open without waiting",
          );
          // An open that is waiting gets the database as soon as the holder closes it.
          const waiting = IndexedDBStorage.open(name, { persist: false, lockTimeoutMs: 10_000 });
          await first.save({ entries: entries(1, 1, 1) });
          await first.close();
          const second = await waiting;
          assertEqual(
            (await second.load()).entries,
            entries(1, 1, 1),
            "entries seen by the next owner",
          );
          await second.close();
        } finally {
          await first.close();
          await IndexedDBStorage.destroy(name);
        }
      },
    },
    {
      name: "IndexedDB: a save that fails inside its transaction changes nothing",
      run: () =>
        withStorage(uniqueName("abort"), async (storage) => {
          const hardState = { term: 1, vote: "a", commit: 1 };
          await storage.save({ entries: entries(1, 5, 1), hardState });
          const before = await storage.load();
          // The snapshot at 10 does not continue the log (no entry 10), so the log restarts
          // after it, and entries from 12 leave a gap: found only after the snapshot's writes
          // were queued in the transaction, which must then abort as a whole.
          await assertRejects(
            storage.save({
              snapshot: { index: 10, term: 2, voters: ["a"], data: bytes(9, 32) },
              entries: entries(12, 13, 2),
              hardState: { term: 2, vote: "a", commit: 10 },
            }),
            /entries to save start at 12, leaving a gap after the last saved index 10/,
            "save with a gap after its snapshot",
          );
          assertEqual(await storage.load(), before, "state after the failed save");
          await assertRejects(
            storage.save({ entries: [...entries(6, 6, 1), ...entries(8, 8, 1)] }),
            /not contiguous: index 8 follows 6/,
            "save of non-contiguous entries",
          );
          await storage.save({ entries: entries(6, 6, 1) });
          assertEqual((await storage.load()).entries.length, 6, "log after a good save");
        }),
    },
    {
      name: "IndexedDB: an entry that is a view into a larger buffer stores only its bytes",
      run: () =>
        withStorage(uniqueName("view"), async (storage) => {
          const frame = bytes(5, 1 << 20);
          const data = frame.subarray(1000, 1010);
          await storage.save({ entries: [{ index: 1, term: 1, data }] });
          const [loaded] = (await storage.load()).entries;
          assertEqual(loaded.data, data, "entry data");
          assertEqual(loaded.data.buffer.byteLength, 10, "stored buffer size");
        }),
    },
    {
      name: "IndexedDB: persistence is asked once per page and reported",
      async run() {
        const reported: Persistence[] = [];
        const names = [uniqueName("persist"), uniqueName("persist")];
        const opened = await Promise.all(
          names.map((name) =>
            IndexedDBStorage.open(name, { onPersistence: (r) => void reported.push(r) })
          ),
        );
        try {
          const results = await Promise.all(opened.map((s) => s.persistenceSettled()));
          assertEqual(persistCalls.count, 1, "navigator.storage.persist() calls");
          for (const [i, result] of results.entries()) {
            assert(
              result === "granted" || result === "refused",
              `persistence answer ${i}: ${result}`,
            );
            assertEqual(opened[i].persistence, result, `persistence property ${i}`);
          }
          assertEqual(reported, results, "onPersistence reports");
        } finally {
          for (const s of opened) await s.close();
          for (const name of names) await IndexedDBStorage.destroy(name);
        }
      },
    },
    {
      name: "IndexedDB: deleting the database elsewhere stops saves with a clear error",
      async run() {
        const name = uniqueName("deleted");
        const storage = await IndexedDBStorage.open(name, { persist: false });
        try {
          await storage.save({ entries: entries(1, 2, 1) });
          await IndexedDBStorage.destroy(name);
          await assertRejects(
            storage.save({ entries: entries(3, 3, 1) }),
            /closed \(another connection deleted or upgraded it\); save refused/,
            "save after the database was deleted",
          );
        } finally {
          await storage.close();
        }
      },
    },
    {
      name: "openStorage: picks IndexedDB in a browser",
      async run() {
        const name = uniqueName("open");
        const storage = await openStorage(name, { indexedDB: { persist: false } });
        try {
          assert(
            storage instanceof IndexedDBStorage,
            "openStorage did not return IndexedDBStorage",
          );
          await storage.save({ entries: entries(1, 3, 1) });
          assertEqual((await storage.load()).entries.length, 3, "entries saved through it");
        } finally {
          await storage.close();
          await IndexedDBStorage.destroy(name);
        }
      },
    },
  ];
}
