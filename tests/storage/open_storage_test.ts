/**
 * `openStorage` on a server runtime: under Deno it picks the filesystem (FileStorage), loaded
 * through its computed dynamic import. The browser side (IndexedDB) is tested in Chromium, in
 * `tests/browser/`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { FileStorage } from "../../src/storage/file_storage.ts";
import { openStorage, storageKind } from "../../src/storage/open_storage.ts";

Deno.test("openStorage: Deno has a filesystem, so the choice is FileStorage", async () => {
  assert.equal(storageKind(), "file");
  const dir = await Deno.makeTempDir({ prefix: "floe-open-storage-" });
  try {
    const storage = await openStorage(dir, { file: { onWarning: () => {} } });
    assert.ok(storage instanceof FileStorage, "openStorage did not return a FileStorage");
    await storage.save({
      hardState: { term: 2, vote: "b", commit: 1 },
      entries: [{ index: 1, term: 2, data: new Uint8Array([1, 2, 3]) }],
    });
    await storage.close();
    const again = await openStorage(dir);
    const state = await again.load();
    assert.deepEqual(state.hardState, { term: 2, vote: "b", commit: 1 });
    assert.deepEqual(state.entries.map((e) => [e.index, e.term, [...e.data]]), [[1, 2, [1, 2, 3]]]);
    await again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
