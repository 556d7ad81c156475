/**
 * floe's filesystem storage, for servers (Deno and Node): a segmented write-ahead log with a
 * CRC per record, group commit and torn-tail repair, plus the tools to inspect a data directory
 * and to inject disk faults in tests. Kept out of `mod.ts` so browser bundles never pull in
 * `node:fs`.
 *
 * @module
 */
export {
  DEFAULT_SEGMENT_SIZE,
  FileStorage,
  type FileStorageOptions,
  type FileStorageStats,
} from "./src/storage/file_storage.ts";
export {
  checkStorage,
  formatCheckReport,
  type StorageCheckReport,
  type StorageProblem,
} from "./src/storage/storage_check.ts";
export { type Fault, type FaultOp, FaultyFileSystem } from "./src/storage/faulty_storage.ts";
export { type FileSystem, nodeFileSystem, type OpenMode } from "./src/storage/file_system.ts";
export type { SegmentReport, TailRepair } from "./src/storage/wal_replay.ts";
export type { LockOwnerState } from "./src/storage/storage_lock.ts";
