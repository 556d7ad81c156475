/**
 * The storage contract (`storage_contract.ts`) run against `MemoryStorage`; reopening is
 * `crashCopy()`, what a restarted server finds.
 *
 * @module
 */
import { MemoryStorage } from "../../src/storage/memory_storage.ts";
import { storageContractCases } from "./storage_contract.ts";

let current = new MemoryStorage();

const cases = storageContractCases({
  open() {
    current = new MemoryStorage();
    return Promise.resolve(current);
  },
  reopen() {
    current = current.crashCopy();
    return Promise.resolve(current);
  },
});

for (const c of cases) {
  Deno.test(`MemoryStorage contract: ${c.name}`, () => c.run());
}
