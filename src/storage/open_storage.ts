/**
 * `openStorage(location)`: the durable storage a node should use where it runs — a write-ahead
 * log in a directory on a server (Deno, Node), an IndexedDB database in a browser.
 *
 * The filesystem adapter is loaded with a dynamic import whose specifier is computed, not a
 * string literal: bundlers (esbuild, and the ones that follow its rules) only follow literal
 * specifiers, so a browser bundle that uses `openStorage` never pulls in `node:fs`. The type-only
 * import of its options is erased from any bundle. The price: `deno compile` and other tools
 * that trace literal imports do not see `file_storage.ts`; such a build must include it.
 *
 * @module
 */
import type { FileStorageOptions } from "./file_storage.ts";
import { IndexedDBStorage, type IndexedDBStorageOptions } from "./indexeddb_storage.ts";
import type { Storage } from "./storage.ts";

/** How to open storage; each adapter reads only its own part. */
export interface OpenStorageOptions {
  /** For IndexedDB in a browser. */
  readonly indexedDB?: IndexedDBStorageOptions;
  /** For the filesystem on a server: passed to `FileStorage.open`. */
  readonly file?: FileStorageOptions;
}

/** Which adapter `openStorage` would choose here: `"file"`, `"indexeddb"`, or none. */
export function storageKind(): "file" | "indexeddb" | undefined {
  const g = globalThis as {
    Deno?: unknown;
    process?: { versions?: { node?: unknown } };
    indexedDB?: unknown;
  };
  // A filesystem first: Deno and Node have one; a browser has neither global (a bundler's
  // `process` shim has no `versions.node`).
  if (g.Deno !== undefined || typeof g.process?.versions?.node === "string") return "file";
  if (g.indexedDB !== undefined && g.indexedDB !== null) return "indexeddb";
  return undefined;
}

/**
 * Open the durable storage for `location`: on a server, `location` is a data directory
 * (`FileStorage`); in a browser, the name of an IndexedDB database (`IndexedDBStorage`).
 *
 * @example
 * ```ts
 * const storage = await openStorage("floe-node-a"); // a directory, or a database in a tab
 * const state = await storage.load();
 * ```
 *
 * @throws {Error} when the runtime has neither a filesystem nor IndexedDB (a worker without
 * IndexedDB, an embedded engine), or when the chosen adapter refuses `location`.
 */
export async function openStorage(
  location: string,
  options: OpenStorageOptions = {},
): Promise<Storage> {
  const kind = storageKind();
  if (kind === "file") {
    const specifier = new URL("./file_storage.ts", import.meta.url).href;
    const { FileStorage } = await import(specifier) as typeof import("./file_storage.ts");
    return await FileStorage.open(location, options.file);
  }
  if (kind === "indexeddb") return await IndexedDBStorage.open(location, options.indexedDB);
  throw new Error(
    "openStorage: this runtime has neither a filesystem (Deno, Node) nor IndexedDB (a browser); " +
      "pass a Storage of your own (MemoryStorage, or an adapter you write) to RaftNode instead",
  );
}
