/**
 * Durable Raft state in a browser: `IndexedDBStorage` keeps the log, the hard state and the
 * snapshot in one IndexedDB object store, through idb-keyval's store-function pattern.
 *
 * Layout of the object store (`raft`) in the database named by the caller:
 *
 * - entries under their index, a number key: IndexedDB orders numbers before strings, so the
 *   log is one key range (`[0, Infinity]`) that never touches the fixed keys below;
 * - `"format"`: the layout version ({@linkcode INDEXEDDB_FORMAT_VERSION}); a database with another
 *   version, or with data but no version, is refused at open with an error naming both;
 * - `"hardState"` and `"snapshot"`.
 *
 * Every save is one read-write transaction with `durability: "strict"`: Chromium's default
 * ("relaxed") reports a transaction complete before the data reaches the disk, so a vote granted
 * just before a power loss could be forgotten and granted again in the same term.
 *
 * This file is browser-only in what it touches (`indexedDB`, `navigator.storage`,
 * `navigator.locks`), but it only touches them when `open` is called, so importing it anywhere is
 * harmless.
 *
 * @module
 */
import type { Entry, HardState, PersistedState, Snapshot } from "../core/types.ts";
import { EMPTY_HARD_STATE } from "../core/types.ts";
import { promisifyRequest } from "../../deps.ts";
import type { Storage, StorageUpdate } from "./storage.ts";

/** The layout version this code writes and reads; kept under the `"format"` key. */
export const INDEXEDDB_FORMAT_VERSION = 1;

/**
 * Whether the browser agreed to keep this origin's data under storage pressure
 * (`navigator.storage.persist()`): `"granted"`, `"refused"` (the log may be evicted, and a node
 * that loses its log can break Raft's safety), `"unsupported"` (no Storage API, as in a worker
 * of some browsers), `"not-requested"` (opened with `persist: false`), or `"pending"` while the
 * browser has not answered (Firefox asks the user).
 */
export type Persistence = "pending" | "granted" | "refused" | "unsupported" | "not-requested";

/** How to open an `IndexedDBStorage`. */
export interface IndexedDBStorageOptions {
  /**
   * Ask the browser to keep this origin's data (`navigator.storage.persist()`), once per page.
   * Default true.
   */
  readonly persist?: boolean;
  /**
   * Told once the browser has answered the persistence request. Without it, a refusal is logged
   * with `console.warn`, since an evicted log silently turns this node into a new one.
   */
  readonly onPersistence?: (result: Exclude<Persistence, "pending">) => void;
  /**
   * How long to wait for the database's lock when another instance holds it, in milliseconds,
   * before refusing to open; default 2000. A page that was just reloaded may open its database
   * before the old page has let go of it.
   */
  readonly lockTimeoutMs?: number;
}

// ---- the slice of the IndexedDB API this adapter uses -------------------------------------------
// Deno's type library has no DOM, and idb-keyval's declarations name DOM types that resolve to
// nothing under `deno check`; these describe exactly what is used, without `any`.

type IdbKey = number | string;
interface IdbKeyRange {
  readonly lower: unknown;
}
interface IdbKeyRangeStatic {
  bound(lower: number, upper: number): IdbKeyRange;
}
interface IdbRequest<T> {
  readonly result: T;
  readonly error: DOMException | null;
  onsuccess: (() => void) | null;
  onerror: (() => void) | null;
}
interface IdbTransaction {
  readonly error: DOMException | null;
  objectStore(name: string): IdbObjectStore;
  abort(): void;
  oncomplete: (() => void) | null;
  onerror: (() => void) | null;
  onabort: (() => void) | null;
}
interface IdbObjectStore {
  readonly transaction: IdbTransaction;
  get(key: IdbKey): IdbRequest<unknown>;
  getAll(range: IdbKeyRange): IdbRequest<unknown[]>;
  put(value: unknown, key: IdbKey): IdbRequest<IdbKey>;
  delete(key: IdbKey | IdbKeyRange): IdbRequest<undefined>;
  count(): IdbRequest<number>;
}
type TxMode = "readonly" | "readwrite";
interface IdbDatabase {
  readonly objectStoreNames: { contains(name: string): boolean };
  transaction(
    store: string,
    mode: TxMode,
    options?: { durability: "strict" | "relaxed" | "default" },
  ): IdbTransaction;
  createObjectStore(name: string): unknown;
  close(): void;
  onversionchange: (() => void) | null;
  onclose: (() => void) | null;
}
interface IdbOpenRequest extends IdbRequest<IdbDatabase> {
  onupgradeneeded: ((event: { readonly oldVersion: number }) => void) | null;
  onblocked: (() => void) | null;
}
interface IdbFactory {
  open(name: string, version: number): IdbOpenRequest;
  deleteDatabase(name: string): IdbOpenRequest;
}
interface LockManager {
  request(
    name: string,
    options: { ifAvailable?: boolean; signal?: AbortSignal },
    callback: (lock: unknown) => Promise<void>,
  ): Promise<void>;
}
interface StorageManager {
  persist?(): Promise<boolean>;
  persisted?(): Promise<boolean>;
}
interface BrowserGlobals {
  indexedDB?: IdbFactory;
  IDBKeyRange?: IdbKeyRangeStatic;
  navigator?: { storage?: StorageManager; locks?: LockManager };
}

const browser = globalThis as unknown as BrowserGlobals;
// idb-keyval's promisifyRequest, typed against the slice above.
const promisify = promisifyRequest as unknown as <T>(
  request: IdbRequest<T> | IdbTransaction,
) => Promise<T>;

/** idb-keyval's store function: runs `callback` on the object store in a new transaction. */
type StoreFunction = <T>(
  mode: TxMode,
  callback: (store: IdbObjectStore) => T | PromiseLike<T>,
) => Promise<T>;

const STORE = "raft";
// The IndexedDB schema version (object stores), distinct from the layout version under "format".
const DB_VERSION = 1;
const FORMAT_KEY = "format";
const HARD_STATE_KEY = "hardState";
const SNAPSHOT_KEY = "snapshot";

function indexedDBFactory(): IdbFactory {
  const factory = browser.indexedDB;
  if (factory === undefined) {
    throw new Error("IndexedDBStorage: this runtime has no indexedDB (not a browser?)");
  }
  return factory;
}

function keyRange(lower: number, upper: number): IdbKeyRange {
  const ranges = browser.IDBKeyRange;
  if (ranges === undefined) throw new Error("IndexedDBStorage: this runtime has no IDBKeyRange");
  return ranges.bound(lower, upper);
}

/** Open (creating on first use) database `name` with the `raft` object store. */
function openDatabase(name: string): Promise<IdbDatabase> {
  const request = indexedDBFactory().open(name, DB_VERSION);
  request.onupgradeneeded = (event) => {
    if (event.oldVersion === 0) request.result.createObjectStore(STORE);
  };
  // Another connection at an older version would have to close first; none should exist.
  request.onblocked = () => {
    console.warn(`IndexedDBStorage: opening "${name}" waits for another tab to close it`);
  };
  return promisify(request).then((db) => {
    if (!db.objectStoreNames.contains(STORE)) {
      db.close();
      throw new Error(
        `IndexedDBStorage: database "${name}" exists but has no "${STORE}" object store; ` +
          `it was not created by floe (choose another name)`,
      );
    }
    return db;
  }, (error: unknown) => {
    if (error instanceof DOMException && error.name === "VersionError") {
      throw new Error(
        `IndexedDBStorage: database "${name}" has a newer schema than version ${DB_VERSION}; ` +
          `it was written by a later floe and cannot be opened by this one`,
      );
    }
    throw error;
  });
}

/**
 * idb-keyval's `createStore`, with two changes: read-write transactions are strict (see the
 * module note), and the database is the one already opened rather than opened lazily.
 */
function strictStore(db: IdbDatabase): StoreFunction {
  return (mode, callback) =>
    Promise.resolve().then(() =>
      callback(
        db.transaction(STORE, mode, mode === "readwrite" ? { durability: "strict" } : undefined)
          .objectStore(STORE),
      )
    );
}

// One persistence request per page: the grant is per origin, and Firefox asks the user each time.
let persistRequest: Promise<Exclude<Persistence, "pending">> | undefined;

function requestPersistence(): Promise<Exclude<Persistence, "pending">> {
  persistRequest ??= (async () => {
    const manager = browser.navigator?.storage;
    if (manager?.persist === undefined) return "unsupported";
    try {
      if (manager.persisted !== undefined && await manager.persisted()) return "granted";
      return await manager.persist() ? "granted" : "refused";
    } catch {
      // Some contexts (an opaque origin, a sandboxed frame) reject instead of answering.
      return "refused";
    }
  })();
  return persistRequest;
}

/**
 * Take the per-database Web Lock, so a second tab (or a second open in this one) cannot
 * interleave saves with ours; wait up to `waitMs` for it (a reloaded page's predecessor may
 * still be letting go). Resolves with the function that releases it, whose promise settles once
 * the lock is free again, so a close followed by an open succeeds. Without the Web Locks API
 * there is no guard, as with a filesystem that lacks locks.
 */
async function acquireLock(name: string, waitMs: number): Promise<() => Promise<void>> {
  const locks = browser.navigator?.locks;
  if (locks === undefined) return () => Promise.resolve();
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let released!: Promise<void>;
  const granted = await new Promise<boolean>((resolve, reject) => {
    const options = waitMs > 0 ? { signal: AbortSignal.timeout(waitMs) } : { ifAvailable: true };
    released = locks.request(`floe-storage:${name}`, options, (lock) => {
      resolve(lock !== null);
      return lock === null ? Promise.resolve() : held;
    });
    released.catch((error: unknown) => {
      const timedOut = error instanceof DOMException &&
        (error.name === "TimeoutError" || error.name === "AbortError");
      if (timedOut) resolve(false);
      else reject(error);
    });
  });
  if (!granted) {
    throw new Error(
      `IndexedDBStorage: database "${name}" is already open in this or another tab ` +
        `(waited ${waitMs} ms); one node owns it at a time`,
    );
  }
  return () => {
    release();
    return released.catch(() => {});
  };
}

/** Throws unless `entries` have consecutive indexes starting at 1 or more. */
function checkContiguous(entries: readonly Entry[]): void {
  if (entries.length === 0) return;
  const first = entries[0].index;
  if (!Number.isSafeInteger(first) || first < 1) {
    throw new Error(`IndexedDBStorage: entries to save start at invalid index ${first}`);
  }
  for (let i = 1; i < entries.length; i++) {
    if (entries[i].index !== first + i) {
      throw new Error(
        `IndexedDBStorage: entries to save are not contiguous: index ${entries[i].index} ` +
          `follows ${entries[i - 1].index}`,
      );
    }
  }
}

/**
 * The bytes to hand to IndexedDB. Structured clone copies a view's whole underlying buffer, so a
 * command that is a slice of a large received frame would store the frame; a shared buffer
 * cannot be stored at all.
 */
function ownBytes(data: Uint8Array): Uint8Array {
  const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength &&
    data.buffer instanceof ArrayBuffer;
  return whole ? data : data.slice();
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

function isIndex(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/**
 * A `Storage` in IndexedDB for a node that runs in a browser tab. Open with
 * {@linkcode IndexedDBStorage.open}; one instance owns its database at a time (a Web Lock keeps
 * a second tab out).
 *
 * @example
 * ```ts
 * const storage = await IndexedDBStorage.open("floe-node-a", {
 *   onPersistence: (result) => console.log("persistent storage:", result),
 * });
 * const state = await storage.load();
 * await storage.save({ hardState: { term: 1, vote: "a", commit: 0 }, entries: [] });
 * await storage.close();
 * ```
 */
export class IndexedDBStorage implements Storage {
  /** The database's name. */
  readonly name: string;
  #db: IdbDatabase;
  #store: StoreFunction;
  #release: () => Promise<void>;
  #lockReleased: Promise<void> = Promise.resolve();
  #closedReason: string | null = null;
  #persistence: Persistence = "pending";
  #persistenceSettled: Promise<Exclude<Persistence, "pending">>;
  // Index of the last saved entry (the snapshot's index when the log is empty) and of the saved
  // snapshot, as of the last completed save; they let a bad update fail before it is written.
  #lastIndex = 0;
  #snapshotIndex = 0;
  #loaded = false;

  private constructor(
    name: string,
    db: IdbDatabase,
    release: () => Promise<void>,
    options: IndexedDBStorageOptions,
  ) {
    this.name = name;
    this.#db = db;
    this.#store = strictStore(db);
    this.#release = release;
    // Another tab deleting or upgrading the database asks us to let go; we do, and stop saving,
    // rather than block it forever or write into a database that is about to vanish.
    db.onversionchange = () => void this.#shutDown("another connection deleted or upgraded it");
    db.onclose = () => void this.#shutDown("the browser closed the connection");
    if (options.persist === false) {
      this.#persistenceSettled = Promise.resolve("not-requested");
      this.#persistence = "not-requested";
    } else {
      this.#persistenceSettled = requestPersistence().then((result) => {
        this.#persistence = result;
        if (options.onPersistence) options.onPersistence(result);
        else if (result === "refused") {
          console.warn(
            `IndexedDBStorage: the browser refused persistent storage; it may evict ` +
              `database "${name}" under storage pressure, and this node would lose its log`,
          );
        }
        return result;
      });
    }
  }

  /**
   * Open database `name` (creating it on first use), check its format version, take its lock,
   * and ask for persistent storage without waiting for the answer (see `persistence`).
   *
   * @throws {Error} when there is no IndexedDB, when the database is open elsewhere, or when it
   * holds another format version or data that is not floe's.
   */
  static async open(
    name: string,
    options: IndexedDBStorageOptions = {},
  ): Promise<IndexedDBStorage> {
    indexedDBFactory();
    const release = await acquireLock(name, options.lockTimeoutMs ?? 2000);
    let db: IdbDatabase | undefined;
    try {
      db = await openDatabase(name);
      await checkFormat(strictStore(db), name);
      return new IndexedDBStorage(name, db, release, options);
    } catch (error) {
      db?.close();
      await release();
      throw error;
    }
  }

  /**
   * Delete database `name` and everything in it. Waits until no connection holds it: close the
   * storage first (an open one in another tab lets go of it, and stops saving).
   */
  static async destroy(name: string): Promise<void> {
    const request = indexedDBFactory().deleteDatabase(name);
    await promisify(request);
  }

  /**
   * The browser's answer to the persistence request: `"pending"` until it answers, then
   * `"granted"`, `"refused"` or `"unsupported"`; `"not-requested"` with `persist: false`.
   */
  get persistence(): Persistence {
    return this.#persistence;
  }

  /** Resolves with the browser's answer to the persistence request, once it has answered. */
  persistenceSettled(): Promise<Exclude<Persistence, "pending">> {
    return this.#persistenceSettled;
  }

  /**
   * Read the saved state in one transaction: hard state, snapshot, and the entries after it.
   *
   * @throws {Error} naming the database and key when a record is malformed or the log has a
   * gap: dropping it silently could lose acknowledged entries.
   */
  async load(): Promise<PersistedState> {
    this.#checkOpen("load");
    const [hardRaw, snapRaw, entriesRaw] = await this.#store("readonly", (store) =>
      Promise.all([
        promisify(store.get(HARD_STATE_KEY)),
        promisify(store.get(SNAPSHOT_KEY)),
        promisify(store.getAll(keyRange(0, Infinity))),
      ]));
    const hardState = hardRaw === undefined ? EMPTY_HARD_STATE : this.#parseHardState(hardRaw);
    const snapshot = snapRaw === undefined ? undefined : this.#parseSnapshot(snapRaw);
    const entries = entriesRaw.map((raw) => this.#parseEntry(raw));
    let expected = (snapshot?.index ?? 0) + 1;
    for (const [i, entry] of entries.entries()) {
      // Without a snapshot the log may start anywhere (a log restored by other means); after
      // that it must be contiguous.
      if ((i > 0 || snapshot !== undefined) && entry.index !== expected) {
        throw this.#corrupt(
          entry.index,
          `expected the entry at index ${expected} next (the log has a gap)`,
        );
      }
      expected = entry.index + 1;
    }
    this.#snapshotIndex = snapshot?.index ?? 0;
    this.#lastIndex = entries.length > 0 ? entries[entries.length - 1].index : this.#snapshotIndex;
    this.#loaded = true;
    return snapshot === undefined ? { hardState, entries } : { hardState, entries, snapshot };
  }

  /**
   * Persist `update` in one strict read-write transaction, in the order `StorageUpdate` defines;
   * resolves once the browser reports it durable. A failed save (quota exceeded, bad update)
   * changes nothing.
   *
   * @throws {Error} when closed, when the entries are not contiguous, start inside a snapshot,
   * or would leave a gap after the last saved entry.
   */
  async save(update: StorageUpdate): Promise<void> {
    this.#checkOpen("save");
    if (!this.#loaded) await this.load();
    const { entries, snapshot, hardState } = update;
    checkContiguous(entries);
    const first = entries.length > 0 ? entries[0].index : undefined;
    const floor = snapshot?.index ?? this.#snapshotIndex;
    if (first !== undefined && first <= floor) {
      throw new Error(
        `IndexedDBStorage: entries to save start at ${first}, inside the snapshot at ${floor}`,
      );
    }
    const lastIndex = await this.#store(
      "readwrite",
      (store) =>
        new Promise<number>((resolve, reject) => {
          const tx = store.transaction;
          let failure: unknown;
          let last = this.#lastIndex;
          tx.oncomplete = () => resolve(last);
          tx.onabort = () =>
            reject(failure ?? tx.error ?? new Error("IndexedDBStorage: save transaction aborted"));
          // A request that throws (a value that cannot be cloned) does not abort the transaction
          // by itself: the requests queued before it would commit, and the save would be partial.
          const guarded = (step: () => void) => {
            try {
              step();
            } catch (error) {
              failure = error;
              tx.abort();
            }
          };
          // The log continues the snapshot when it holds the snapshot's last entry: only then do
          // the entries after it survive. Deciding that needs a read in this same transaction.
          const write = (continues: boolean) => {
            if (snapshot !== undefined) {
              store.delete(keyRange(0, continues ? snapshot.index : Infinity));
              const { index, term, voters, data } = snapshot;
              store.put({ index, term, voters: [...voters], data: ownBytes(data) }, SNAPSHOT_KEY);
              last = continues ? Math.max(last, snapshot.index) : snapshot.index;
            }
            if (first !== undefined) {
              if (first > last + 1) {
                throw new Error(
                  `IndexedDBStorage: entries to save start at ${first}, leaving a gap after the ` +
                    `last saved index ${last}`,
                );
              }
              if (first <= last) store.delete(keyRange(first, Infinity));
              for (const e of entries) {
                store.put({ index: e.index, term: e.term, data: ownBytes(e.data) }, e.index);
              }
              last = entries[entries.length - 1].index;
            }
            if (hardState !== undefined) {
              const { term, vote, commit } = hardState;
              store.put({ term, vote, commit }, HARD_STATE_KEY);
            }
          };
          if (snapshot === undefined) guarded(() => write(false));
          else {
            const { index, term } = snapshot;
            guarded(() => {
              const request = store.get(index);
              request.onsuccess = () =>
                guarded(() => write(isRecord(request.result) && request.result.term === term));
            });
          }
        }),
    );
    this.#lastIndex = lastIndex;
    if (snapshot !== undefined) this.#snapshotIndex = snapshot.index;
  }

  /**
   * Close the database and release its lock; later saves and loads throw. Resolves once the
   * lock is free, so the database can be opened again at once. Idempotent.
   */
  close(): Promise<void> {
    return this.#shutDown("close() was called");
  }

  #shutDown(reason: string): Promise<void> {
    if (this.#closedReason === null) {
      this.#closedReason = reason;
      this.#db.close();
      this.#lockReleased = this.#release();
    }
    return this.#lockReleased;
  }

  #checkOpen(what: string): void {
    if (this.#closedReason !== null) {
      throw new Error(
        `IndexedDBStorage "${this.name}": closed (${this.#closedReason}); ${what} refused`,
      );
    }
  }

  #corrupt(key: IdbKey, what: string): Error {
    return new Error(
      `IndexedDBStorage: database "${this.name}", key ${JSON.stringify(key)}: ${what}; ` +
        `refusing to start rather than drop entries that may have been acknowledged`,
    );
  }

  #parseHardState(raw: unknown): HardState {
    if (
      !isRecord(raw) || !isIndex(raw.term) || typeof raw.vote !== "string" ||
      !isIndex(raw.commit)
    ) {
      throw this.#corrupt(HARD_STATE_KEY, "malformed hard state");
    }
    return { term: raw.term, vote: raw.vote, commit: raw.commit };
  }

  #parseSnapshot(raw: unknown): Snapshot {
    if (
      !isRecord(raw) || !isIndex(raw.index) || !isIndex(raw.term) ||
      !Array.isArray(raw.voters) || !raw.voters.every((v) => typeof v === "string") ||
      !(raw.data instanceof Uint8Array)
    ) {
      throw this.#corrupt(SNAPSHOT_KEY, "malformed snapshot");
    }
    return { index: raw.index, term: raw.term, voters: raw.voters, data: raw.data };
  }

  #parseEntry(raw: unknown): Entry {
    if (
      !isRecord(raw) || !isIndex(raw.index) || raw.index < 1 || !isIndex(raw.term) ||
      !(raw.data instanceof Uint8Array)
    ) {
      const key = isRecord(raw) && isIndex(raw.index) ? raw.index : "(unknown index)";
      throw this.#corrupt(key, "malformed log entry");
    }
    return { index: raw.index, term: raw.term, data: raw.data };
  }
}

/**
 * Check the layout version, writing it into a new, empty database: a database with another
 * version, or with records but no version, is refused before anything is read or written.
 */
function checkFormat(store: StoreFunction, name: string): Promise<void> {
  return store("readwrite", (s) =>
    new Promise<void>((resolve, reject) => {
      const tx = s.transaction;
      let failure: Error | undefined;
      tx.oncomplete = () => resolve();
      tx.onabort = () => reject(failure ?? tx.error ?? new Error("IndexedDBStorage: aborted"));
      const refuse = (message: string) => {
        failure = new Error(`IndexedDBStorage: database "${name}" ${message}`);
        tx.abort();
      };
      const format = s.get(FORMAT_KEY);
      format.onsuccess = () => {
        const version = format.result;
        if (version === INDEXEDDB_FORMAT_VERSION) return;
        if (version !== undefined) {
          return refuse(
            `has format version ${JSON.stringify(version)}; this floe reads and writes ` +
              `version ${INDEXEDDB_FORMAT_VERSION} only`,
          );
        }
        const count = s.count();
        count.onsuccess = () => {
          if (count.result > 0) {
            return refuse(`holds ${count.result} records but no format version; not floe's data`);
          }
          s.put(INDEXEDDB_FORMAT_VERSION, FORMAT_KEY);
        };
      };
    }));
}
