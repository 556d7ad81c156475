/**
 * The browser page's entry point, bundled by esbuild and served to headless Chromium. It
 * exposes `globalThis.floeBrowserTests` ({@linkcode PageApi}), through which the Deno side runs
 * one case at a time and gets back a plain result object.
 *
 * @module
 */
import { IndexedDBStorage } from "../../src/storage/indexeddb_storage.ts";
import type { Storage } from "../../src/storage/storage.ts";
import { catalogue, type StorageFactory } from "./catalogue.ts";
import { countPersistCalls, uniqueName } from "./indexeddb_cases.ts";

/** What running one case (or half of one) came to. */
export type Outcome =
  | { readonly ok: true; readonly ms: number }
  | { readonly ok: false; readonly ms: number; readonly error: string };

/** The page's interface to the harness; every method settles, none throws. */
export interface PageApi {
  /** Run a single-page case. */
  run(name: string): Promise<Outcome>;
  /** Run the first half of a phased case. */
  before(name: string): Promise<Outcome>;
  /** A phased case's progress count (the kill case's resolved saves). */
  progress(name: string): number;
  /** Run the second half of a phased case, in a new page. */
  after(name: string, progress: number | undefined): Promise<Outcome>;
}

// Before any storage opens, so the count covers every request this page makes.
countPersistCalls();

// The contract suite's storages: each case opens a new database; `reopen` closes the instance
// it replaces first (a restarted node reopens what the old one held, and the Web Lock allows one
// owner). After each case, every database it made is closed and deleted.
let current: { name: string; storage: IndexedDBStorage } | undefined;
const made = new Set<string>();
const factory: StorageFactory = {
  async open(): Promise<Storage> {
    const name = uniqueName("contract");
    made.add(name);
    current = { name, storage: await IndexedDBStorage.open(name, { persist: false }) };
    return current.storage;
  },
  async reopen(): Promise<Storage> {
    if (current === undefined) throw new Error("reopen() before open()");
    await current.storage.close();
    const storage = await IndexedDBStorage.open(current.name, { persist: false });
    current = { name: current.name, storage };
    return current.storage;
  },
};

async function cleanUp(): Promise<void> {
  await current?.storage.close();
  current = undefined;
  for (const name of made) await IndexedDBStorage.destroy(name);
  made.clear();
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    return error.stack?.includes(error.message)
      ? error.stack
      : `${error.name}: ${error.message}\n${error.stack ?? ""}`;
  }
  return String(error);
}

async function outcome(body: () => Promise<void>): Promise<Outcome> {
  const start = performance.now();
  try {
    await body();
    await cleanUp();
    return { ok: true, ms: performance.now() - start };
  } catch (error) {
    await cleanUp().catch(() => {});
    return { ok: false, ms: performance.now() - start, error: describe(error) };
  }
}

const { page, phased } = catalogue(factory);
const pageCases = new Map(page.map((c) => [c.name, c]));
const phasedByName = new Map(phased.map((c) => [c.name, c]));

function lookup<T>(cases: Map<string, T>, name: string): T {
  const found = cases.get(name);
  if (found === undefined) throw new Error(`no such browser case: "${name}"`);
  return found;
}

const api: PageApi = {
  run: (name) => outcome(() => lookup(pageCases, name).run()),
  before: (name) => outcome(() => lookup(phasedByName, name).before()),
  progress: (name) => lookup(phasedByName, name).progress?.() ?? 0,
  after: (name, progress) => outcome(() => lookup(phasedByName, name).after(progress)),
};

(globalThis as { floeBrowserTests?: PageApi }).floeBrowserTests = api;
