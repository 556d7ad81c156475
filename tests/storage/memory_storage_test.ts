import assert from "node:assert/strict";
import type { Entry } from "../../src/core/types.ts";
import { EMPTY_HARD_STATE } from "../../src/core/types.ts";
import { MemoryStorage } from "../../src/storage/memory_storage.ts";

function entries(first: number, last: number, term: number, size = 1): Entry[] {
  const out: Entry[] = [];
  for (let i = first; i <= last; i++) out.push({ index: i, term, data: new Uint8Array(size) });
  return out;
}

function summary(es: readonly Entry[]): string[] {
  return es.map((e) => `${e.index}/${e.term}`);
}

Deno.test("MemoryStorage: a new storage is empty", () => {
  const storage = new MemoryStorage();
  const state = storage.load();
  assert.deepEqual(state.hardState, EMPTY_HARD_STATE);
  assert.deepEqual(state.entries, []);
  assert.equal(storage.lastIndex, 0);
});

Deno.test("MemoryStorage: save appends and sets the hard state", () => {
  const storage = new MemoryStorage();
  storage.save({ hardState: { term: 1, vote: "a", commit: 0 }, entries: entries(1, 3, 1) });
  storage.save({ entries: entries(4, 4, 1) });
  const state = storage.load();
  assert.deepEqual(state.hardState, { term: 1, vote: "a", commit: 0 });
  assert.deepEqual(summary(state.entries), ["1/1", "2/1", "3/1", "4/1"]);
  assert.equal(storage.lastIndex, 4);
  storage.save({ hardState: { term: 2, vote: "", commit: 3 }, entries: [] });
  assert.deepEqual(storage.hardState, { term: 2, vote: "", commit: 3 });
  assert.equal(storage.lastIndex, 4);
});

Deno.test("MemoryStorage: entries overwrite the saved suffix from their first index", () => {
  const storage = new MemoryStorage();
  storage.save({ entries: entries(1, 5, 1) });
  storage.save({ entries: entries(3, 3, 2) });
  assert.deepEqual(summary(storage.entries), ["1/1", "2/1", "3/2"]);
  storage.save({ entries: entries(1, 2, 3) });
  assert.deepEqual(summary(storage.entries), ["1/3", "2/3"]);
  storage.save({ entries: entries(3, 3, 3) });
  assert.deepEqual(summary(storage.entries), ["1/3", "2/3", "3/3"]);
});

Deno.test("MemoryStorage: a gap or non-contiguous entries are refused and change nothing", () => {
  const storage = new MemoryStorage();
  assert.throws(() => storage.save({ entries: entries(2, 3, 1) }), /gap/);
  storage.save({ entries: entries(1, 2, 1) });
  assert.throws(
    () => storage.save({ hardState: { term: 5, vote: "x", commit: 0 }, entries: entries(4, 4, 1) }),
    /gap/,
  );
  assert.throws(
    () => storage.save({ entries: [...entries(3, 3, 1), ...entries(5, 5, 1)] }),
    /not contiguous/,
  );
  assert.throws(() => storage.save({ entries: entries(0, 1, 1) }), /invalid index/);
  assert.deepEqual(summary(storage.entries), ["1/1", "2/1"]);
  assert.deepEqual(storage.hardState, EMPTY_HARD_STATE);
});

Deno.test("MemoryStorage: load returns copies that later saves do not change", () => {
  const storage = new MemoryStorage();
  storage.save({ entries: entries(1, 3, 1) });
  const before = storage.load();
  storage.save({ entries: entries(2, 2, 2) });
  assert.deepEqual(summary(before.entries), ["1/1", "2/1", "3/1"]);
});

Deno.test("MemoryStorage: initial state is copied and checked", () => {
  const initialEntries = entries(1, 2, 1);
  const storage = new MemoryStorage({
    initial: { hardState: { term: 1, vote: "b", commit: 1 }, entries: initialEntries },
  });
  storage.save({ entries: entries(3, 3, 1) });
  assert.equal(initialEntries.length, 2);
  assert.equal(storage.lastIndex, 3);
  assert.equal(storage.hardState.vote, "b");
  assert.throws(
    () =>
      new MemoryStorage({
        initial: {
          hardState: EMPTY_HARD_STATE,
          entries: [...entries(1, 1, 1), ...entries(3, 3, 1)],
        },
      }),
    /not contiguous/,
  );
});

Deno.test("MemoryStorage: crashCopy holds what was saved; the old instance can no longer save", () => {
  const storage = new MemoryStorage();
  storage.save({ hardState: { term: 3, vote: "c", commit: 2 }, entries: entries(1, 3, 3) });
  const restarted = storage.crashCopy();
  assert.deepEqual(restarted.load(), storage.load());
  assert.throws(() => storage.save({ entries: entries(4, 4, 3) }), /^Error: MemoryStorage: closed/);
  assert.throws(
    () => storage.save({ hardState: { term: 4, vote: "", commit: 2 }, entries: [] }),
    /MemoryStorage: closed/,
  );
  restarted.save({ entries: entries(4, 4, 3) });
  assert.equal(restarted.lastIndex, 4);
  assert.equal(storage.lastIndex, 3);
  assert.equal(storage.load().entries.length, 3); // the crashed instance can still be inspected
  const again = restarted.crashCopy();
  assert.equal(again.lastIndex, 4);
});

Deno.test("MemoryStorage: close refuses further saves", () => {
  const storage = new MemoryStorage();
  storage.close();
  assert.throws(() => storage.save({ entries: [] }), /MemoryStorage: closed/);
});

Deno.test("MemoryStorage: raftStateSize counts hard state and retained entries", () => {
  const storage = new MemoryStorage();
  assert.equal(storage.raftStateSize(), 24);
  storage.save({
    hardState: { term: 1, vote: "node-1", commit: 0 },
    entries: entries(1, 4, 1, 100),
  });
  assert.equal(storage.raftStateSize(), 24 + 6 + 4 * 116);
  storage.save({ entries: entries(3, 3, 2, 10) });
  assert.equal(storage.raftStateSize(), 24 + 6 + 2 * 116 + 26);
  storage.save({ entries: entries(1, 1, 3, 0) });
  assert.equal(storage.raftStateSize(), 24 + 6 + 16);
  assert.equal(storage.crashCopy().raftStateSize(), 24 + 6 + 16);
});
