/**
 * Every case the browser page runs, by name: the storage contract suite against
 * IndexedDBStorage, then the IndexedDB-specific cases. The page builds it with a real factory;
 * the Deno side builds it with a factory that is never called, only to learn the names.
 *
 * @module
 */
import { storageContractCases, type StorageContractFactory } from "../storage/storage_contract.ts";
import { indexedDbCases, type PageCase, type PhasedCase, phasedCases } from "./indexeddb_cases.ts";

/** Opens the storage a contract case works on: a new one, or the same one again. */
export type StorageFactory = StorageContractFactory;

/** All cases, with unique names. */
export interface Catalogue {
  /** Cases that run inside one page. */
  readonly page: readonly PageCase[];
  /** Cases with a reload, restart or kill between two halves. */
  readonly phased: readonly PhasedCase[];
}

/** The page's cases; `factory` backs the contract suite's. */
export function catalogue(factory: StorageFactory): Catalogue {
  const contract = storageContractCases(factory).map(({ name, run }) => ({
    name: `contract: ${name}`,
    run,
  }));
  const page: PageCase[] = [...contract, ...indexedDbCases()];
  const phased = phasedCases();
  const seen = new Set<string>();
  for (const { name } of [...page, ...phased]) {
    if (seen.has(name)) throw new Error(`browser test catalogue: duplicate case name "${name}"`);
    seen.add(name);
  }
  return { page, phased };
}
