/**
 * Raw IndexedDB access for the page's tests: craft databases the adapter must refuse (another
 * format, foreign data, a corrupt record) and watch the transactions it opens. Typed against the
 * few members used, since Deno's type library has no DOM.
 *
 * @module
 */

interface RawRequest<T> {
  readonly result: T;
  readonly error: DOMException | null;
  onsuccess: (() => void) | null;
  onerror: (() => void) | null;
}
interface RawTransaction {
  readonly durability?: string;
  readonly mode: string;
  objectStore(name: string): { put(value: unknown, key: number | string): unknown };
  oncomplete: (() => void) | null;
  onerror: (() => void) | null;
  onabort: (() => void) | null;
  readonly error: DOMException | null;
}
interface RawDatabase {
  createObjectStore(name: string): unknown;
  transaction(store: string, mode: string, options?: unknown): RawTransaction;
  close(): void;
}
interface RawOpenRequest extends RawRequest<RawDatabase> {
  onupgradeneeded: (() => void) | null;
}
interface RawFactory {
  open(name: string, version: number): RawOpenRequest;
}
interface RawGlobals {
  indexedDB: RawFactory;
  IDBDatabase: { prototype: { transaction: RawDatabase["transaction"] } };
}

const raw = globalThis as unknown as RawGlobals;

function settle<T>(request: RawRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/**
 * Create database `name` at schema `version` with object store `store` holding `records`
 * (`[key, value]` pairs), in one transaction, and close it.
 */
export async function writeRawDatabase(
  name: string,
  store: string,
  records: ReadonlyArray<readonly [number | string, unknown]>,
  version = 1,
): Promise<void> {
  const request = raw.indexedDB.open(name, version);
  request.onupgradeneeded = () => request.result.createObjectStore(store);
  const db = await settle(request);
  try {
    const tx = db.transaction(store, "readwrite");
    const done = new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onabort = () => reject(tx.error);
    });
    for (const [key, value] of records) tx.objectStore(store).put(value, key);
    await done;
  } finally {
    db.close();
  }
}

/** One transaction the page opened while a spy was installed. */
export interface SeenTransaction {
  /** "readonly" or "readwrite". */
  readonly mode: string;
  /** What the browser reports it applied ("strict", "relaxed", "default"), if it says. */
  readonly durability: string | undefined;
}

/**
 * Record every transaction opened through `IDBDatabase.prototype.transaction` until `stop` is
 * called. The browser's own `durability` attribute is read, so the record shows what it applied.
 */
export function spyTransactions(): { readonly seen: SeenTransaction[]; stop(): void } {
  const proto = raw.IDBDatabase.prototype;
  const original = proto.transaction;
  const seen: SeenTransaction[] = [];
  proto.transaction = function (this: RawDatabase, store, mode, options) {
    const tx = original.call(this, store, mode, options);
    seen.push({ mode: tx.mode, durability: tx.durability });
    return tx;
  };
  return { seen, stop: () => void (proto.transaction = original) };
}
