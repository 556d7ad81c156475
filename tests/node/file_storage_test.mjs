// FileStorage under Node: the same write-ahead log that Deno nodes use, through node:fs.
import * as fs from "node:fs";
import * as path from "node:path";
import t from "tap";
import { LIB, requireBuild, tempDir } from "./fixtures/node_test_support.mjs";

requireBuild();
const { checkStorage, FileStorage, StorageLockedError } = await import(LIB);

const bytes = (s) => new TextEncoder().encode(s);
const text = (b) => new TextDecoder().decode(b);

t.test("what FileStorage saves under Node is what it loads after reopening", async (t) => {
  const dir = path.join(tempDir(t), "n1");
  const storage = await FileStorage.open(dir);
  t.same(await storage.load(), { hardState: { term: 0, vote: "", commit: 0 }, entries: [] });
  await storage.save({
    hardState: { term: 2, vote: "n1", commit: 2 },
    entries: [1, 2, 3].map((i) => ({ index: i, term: i === 1 ? 1 : 2, data: bytes(`e${i}`) })),
  });
  // A conflicting suffix replaces the old one from its first index on.
  await storage.save({
    hardState: { term: 3, vote: "n2", commit: 2 },
    entries: [{ index: 3, term: 3, data: bytes("e3'") }, { index: 4, term: 3, data: bytes("e4") }],
  });
  await storage.close();

  const reopened = await FileStorage.open(dir);
  t.teardown(() => reopened.close());
  const state = await reopened.load();
  t.same(state.hardState, { term: 3, vote: "n2", commit: 2 }, "hard state");
  t.same(
    state.entries.map((e) => [e.index, e.term, text(e.data)]),
    [[1, 1, "e1"], [2, 2, "e2"], [3, 3, "e3'"], [4, 3, "e4"]],
    "entries, with the conflicting suffix replaced",
  );
  t.equal(state.snapshot, undefined, "no snapshot");
});

t.test("a snapshot compacts the log and survives a reopen", async (t) => {
  const dir = path.join(tempDir(t), "n1");
  const storage = await FileStorage.open(dir);
  await storage.save({
    hardState: { term: 1, vote: "n1", commit: 5 },
    entries: [1, 2, 3, 4, 5].map((i) => ({ index: i, term: 1, data: bytes(`e${i}`) })),
  });
  await storage.save({
    entries: [],
    snapshot: { index: 4, term: 1, voters: ["n1", "n2", "n3"], data: bytes("state@4") },
  });
  await storage.close();

  const reopened = await FileStorage.open(dir);
  const state = await reopened.load();
  await reopened.close();
  t.equal(state.snapshot?.index, 4, "snapshot index");
  t.same(state.snapshot?.voters, ["n1", "n2", "n3"], "snapshot voters");
  t.equal(text(state.snapshot?.data ?? new Uint8Array()), "state@4", "snapshot data");
  t.same(state.entries.map((e) => e.index), [5], "only the entries after the snapshot");
  const report = await checkStorage(dir);
  t.ok(report.ok, `checkStorage finds no problem: ${JSON.stringify(report.problems ?? [])}`);
});

t.test("a directory open in this process cannot be opened twice", async (t) => {
  const dir = path.join(tempDir(t), "n1");
  const storage = await FileStorage.open(dir);
  t.teardown(() => storage.close());
  await t.rejects(FileStorage.open(dir), StorageLockedError);
  t.ok(fs.existsSync(path.join(dir, "LOCK")), "the lock file is there");
});
