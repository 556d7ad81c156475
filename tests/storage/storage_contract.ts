/**
 * The `Storage` contract as one suite of cases that every adapter must pass: MemoryStorage,
 * FileStorage (in a temp directory) and IndexedDBStorage (in a browser bundle). So this module
 * imports nothing but types: no `node:*`, no `Deno`, no test framework; it carries its own tiny
 * assertions, and each runner registers the cases with its own test framework.
 *
 * Each case opens a fresh, empty storage with `factory.open()`, saves, checks `load()`, and
 * calls `factory.reopen()` — close (or crash) and open the same place again — to check that
 * what was saved is what a restarted server finds.
 *
 * @module
 */
import type { Entry, HardState, PersistedState, Snapshot } from "../../src/core/types.ts";
import type { Storage, StorageUpdate } from "../../src/storage/storage.ts";

/** How the suite gets storages. */
export interface StorageContractFactory {
  /** A fresh, empty storage in a new place (directory, database); it becomes the current one. */
  open(): Promise<Storage>;
  /** Close (or crash) the current storage and open its place again; that becomes current. */
  reopen(): Promise<Storage>;
}

/** One case of the contract. */
export interface StorageContractCase {
  /** What the case checks. */
  readonly name: string;
  /** Run it; rejects with an `Error` saying what differed. */
  run(): Promise<void>;
}

class ContractError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ContractError";
  }
}

function check(ok: boolean, message: string): asserts ok {
  if (!ok) throw new ContractError(message);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A command whose bytes are determined by index, term and size, so contents can be checked. */
function command(index: number, term: number, size: number): Uint8Array {
  const data = new Uint8Array(size);
  let x = (index * 2654435761 + term * 40503) >>> 0;
  // A pseudo-random block repeated: cheap for multi-MiB entries, still unique per entry.
  const block = Math.min(size, 4093);
  for (let i = 0; i < block; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = x >>> 24;
  }
  for (let filled = block; filled < size; filled *= 2) data.copyWithin(filled, 0, filled);
  return data;
}

function entries(first: number, last: number, term: number, size = 8): Entry[] {
  const out: Entry[] = [];
  for (let i = first; i <= last; i++) out.push({ index: i, term, data: command(i, term, size) });
  return out;
}

function snapshot(index: number, term: number, size = 64): Snapshot {
  return { index, term, voters: ["a", "b", "c"], data: command(index, -term - 1, size) };
}

/** `[index, term]` pairs of `es`, for messages. */
function summary(es: readonly Entry[]): string {
  return es.map((e) => `${e.index}/${e.term}`).join(" ");
}

/**
 * Check a loaded state: the log is exactly `log` (each entry's bytes as `entries()` made them,
 * `size` bytes unless the entry's size is listed in `sizes`), the hard state and the snapshot.
 */
function expectState(
  state: PersistedState,
  expected: {
    log: readonly [number, number][];
    hardState?: HardState;
    snapshot?: Snapshot;
    sizes?: ReadonlyMap<number, number>;
    size?: number;
  },
  where: string,
): void {
  const got = summary(state.entries);
  const want = expected.log.map(([i, t]) => `${i}/${t}`).join(" ");
  check(got === want, `${where}: log is [${got}], expected [${want}]`);
  for (const e of state.entries) {
    const size = expected.sizes?.get(e.index) ?? expected.size ?? 8;
    check(
      e.data instanceof Uint8Array && equalBytes(e.data, command(e.index, e.term, size)),
      `${where}: entry ${e.index}/${e.term} has the wrong ${e.data.length} bytes (expected ${size})`,
    );
  }
  const hs = expected.hardState ?? { term: 0, vote: "", commit: 0 };
  check(
    state.hardState.term === hs.term && state.hardState.vote === hs.vote &&
      state.hardState.commit === hs.commit,
    `${where}: hard state is ${JSON.stringify(state.hardState)}, expected ${JSON.stringify(hs)}`,
  );
  const snap = expected.snapshot;
  if (snap === undefined) {
    check(
      state.snapshot === undefined,
      `${where}: unexpected snapshot at ${state.snapshot?.index}`,
    );
  } else {
    const s = state.snapshot;
    check(s !== undefined, `${where}: snapshot at ${snap.index} missing`);
    check(
      s.index === snap.index && s.term === snap.term,
      `${where}: snapshot is ${s.index}/${s.term}, expected ${snap.index}/${snap.term}`,
    );
    check(
      s.voters.join(",") === snap.voters.join(","),
      `${where}: snapshot voters ${s.voters.join(",")}`,
    );
    check(equalBytes(s.data, snap.data), `${where}: snapshot data differs`);
  }
}

/** `expectState` on the current storage, then again after reopening; returns the reopened one. */
async function expectDurable(
  factory: StorageContractFactory,
  storage: Storage,
  expected: Parameters<typeof expectState>[1],
  where: string,
): Promise<Storage> {
  expectState(await storage.load(), expected, `${where} (before reopening)`);
  const reopened = await factory.reopen();
  expectState(await reopened.load(), expected, `${where} (after reopening)`);
  return reopened;
}

/** Save, whether the adapter returns a value or a promise. */
async function save(storage: Storage, update: StorageUpdate): Promise<void> {
  await storage.save(update);
}

/** Expect a save to be refused, synchronously or as a rejection, with a message matching `re`. */
async function refused(storage: Storage, update: StorageUpdate, re: RegExp): Promise<void> {
  let error: unknown;
  try {
    await storage.save(update);
  } catch (e) {
    error = e;
  }
  check(error instanceof Error, `save should have been refused (${re})`);
  check(re.test(error.message), `refusal "${error.message}" does not match ${re}`);
}

function range(first: number, last: number, term: number): [number, number][] {
  const out: [number, number][] = [];
  for (let i = first; i <= last; i++) out.push([i, term]);
  return out;
}

/** The contract's cases, bound to `factory`. Run them one at a time, in any order. */
export function storageContractCases(factory: StorageContractFactory): StorageContractCase[] {
  const cases: StorageContractCase[] = [];
  const test = (name: string, run: () => Promise<void>) => cases.push({ name, run });

  test("a new storage is empty, and still empty after reopening", async () => {
    const s = await factory.open();
    await expectDurable(factory, s, { log: [] }, "empty");
  });

  test("append: entries and the hard state saved together", async () => {
    let s = await factory.open();
    const hs = { term: 1, vote: "a", commit: 0 };
    await save(s, { hardState: hs, entries: entries(1, 3, 1) });
    s = await expectDurable(factory, s, { log: range(1, 3, 1), hardState: hs }, "after 1..3");
    await save(s, { entries: entries(4, 5, 1) });
    s = await expectDurable(factory, s, { log: range(1, 5, 1), hardState: hs }, "after 4..5");
    const hs2 = { term: 1, vote: "a", commit: 5 };
    await save(s, { hardState: hs2, entries: entries(6, 6, 1) });
    await expectDurable(factory, s, { log: range(1, 6, 1), hardState: hs2 }, "after 6");
  });

  test("hard state: the last one saved wins; votes of any text survive", async () => {
    let s = await factory.open();
    await save(s, { hardState: { term: 3, vote: "node-b", commit: 0 }, entries: [] });
    await save(s, { hardState: { term: 4, vote: "", commit: 0 }, entries: [] });
    const hs = { term: 5, vote: "nœud-ü-🦀", commit: 0 };
    await save(s, { hardState: hs, entries: [] });
    s = await expectDurable(factory, s, { log: [], hardState: hs }, "unicode vote");
    const big = { term: 2 ** 40, vote: "x".repeat(300), commit: 0 };
    await save(s, { hardState: big, entries: [] });
    await expectDurable(factory, s, { log: [], hardState: big }, "large term, long vote");
  });

  test("overwrite a suffix: entries replace everything from their first index on", async () => {
    let s = await factory.open();
    await save(s, { entries: entries(1, 5, 1) });
    await save(s, { entries: entries(3, 3, 2) });
    s = await expectDurable(factory, s, { log: [[1, 1], [2, 1], [3, 2]] }, "3 overwritten");
    await save(s, { entries: entries(4, 6, 2) });
    s = await expectDurable(factory, s, { log: [[1, 1], [2, 1], ...range(3, 6, 2)] }, "extended");
    await save(s, { hardState: { term: 3, vote: "c", commit: 1 }, entries: entries(1, 2, 3) });
    s = await expectDurable(
      factory,
      s,
      { log: range(1, 2, 3), hardState: { term: 3, vote: "c", commit: 1 } },
      "all overwritten",
    );
    await save(s, { entries: entries(2, 4, 4) });
    await expectDurable(
      factory,
      s,
      { log: [[1, 3], ...range(2, 4, 4)], hardState: { term: 3, vote: "c", commit: 1 } },
      "overwritten again from 2",
    );
  });

  test("snapshot the log continues: entries after it are kept", async () => {
    let s = await factory.open();
    await save(s, { entries: entries(1, 10, 1) });
    const snap = snapshot(5, 1);
    await save(s, { snapshot: snap, entries: [] });
    s = await expectDurable(factory, s, { log: range(6, 10, 1), snapshot: snap }, "kept 6..10");
    await save(s, { entries: entries(11, 12, 1) });
    s = await expectDurable(factory, s, { log: range(6, 12, 1), snapshot: snap }, "extended");
    const snap2 = snapshot(12, 1);
    await save(s, { snapshot: snap2, entries: [] });
    await expectDurable(factory, s, { log: [], snapshot: snap2 }, "snapshot at the last entry");
  });

  test("snapshot the log does not continue: the whole log is dropped", async () => {
    let s = await factory.open();
    await save(s, { entries: entries(1, 10, 1) });
    const other = snapshot(7, 2); // the log holds 7 with term 1, not 2
    await save(s, { snapshot: other, entries: [] });
    s = await expectDurable(factory, s, { log: [], snapshot: other }, "term differs");
    await save(s, { entries: entries(8, 9, 2) });
    s = await expectDurable(factory, s, { log: range(8, 9, 2), snapshot: other }, "appended");
    const beyond = snapshot(20, 3); // past the end of the log
    await save(s, { snapshot: beyond, entries: [] });
    await expectDurable(factory, s, { log: [], snapshot: beyond }, "snapshot past the log");
  });

  test("entries and hard state saved together with a snapshot", async () => {
    let s = await factory.open();
    await save(s, { entries: entries(1, 10, 1) });
    const hs = { term: 2, vote: "b", commit: 5 };
    const snap = snapshot(5, 1);
    await save(s, { snapshot: snap, entries: entries(8, 9, 2), hardState: hs });
    s = await expectDurable(
      factory,
      s,
      { log: [...range(6, 7, 1), ...range(8, 9, 2)], snapshot: snap, hardState: hs },
      "snapshot kept 6..7, entries replaced 8..",
    );
    const hs2 = { term: 4, vote: "", commit: 30 };
    const snap2 = snapshot(30, 4);
    await save(s, { snapshot: snap2, entries: entries(31, 33, 4), hardState: hs2 });
    await expectDurable(
      factory,
      s,
      { log: range(31, 33, 4), snapshot: snap2, hardState: hs2 },
      "installed snapshot with the entries after it",
    );
  });

  test("a newer snapshot replaces the older one", async () => {
    let s = await factory.open();
    await save(s, { entries: entries(1, 20, 1) });
    await save(s, { snapshot: snapshot(5, 1, 1000), entries: [] });
    await save(s, { snapshot: snapshot(15, 1, 3000), entries: [] });
    s = await expectDurable(
      factory,
      s,
      { log: range(16, 20, 1), snapshot: snapshot(15, 1, 3000) },
      "second snapshot",
    );
    await save(s, { snapshot: snapshot(18, 1, 0), entries: [] });
    await expectDurable(
      factory,
      s,
      { log: range(19, 20, 1), snapshot: snapshot(18, 1, 0) },
      "empty snapshot data",
    );
  });

  test("large entries (5 MiB) survive intact", async () => {
    let s = await factory.open();
    const big = 5 * 1024 * 1024;
    const sizes = new Map([[2, big], [4, 1024 * 1024]]);
    await save(s, {
      entries: [
        ...entries(1, 1, 1),
        { index: 2, term: 1, data: command(2, 1, big) },
        ...entries(3, 3, 1),
      ],
    });
    await save(s, { entries: [{ index: 4, term: 1, data: command(4, 1, 1024 * 1024) }] });
    s = await expectDurable(factory, s, { log: range(1, 4, 1), sizes }, "large entries");
    await save(s, { entries: entries(5, 5, 1, 0) });
    await expectDurable(
      factory,
      s,
      { log: range(1, 5, 1), sizes: new Map([...sizes, [5, 0]]) },
      "then an empty entry",
    );
  });

  test("many small saves, one entry each", async () => {
    let s = await factory.open();
    const n = 200;
    for (let i = 1; i <= n; i++) {
      await save(s, {
        entries: entries(i, i, 1),
        hardState: i % 10 === 0 ? { term: 1, vote: "a", commit: i - 5 } : undefined,
      });
    }
    s = await expectDurable(
      factory,
      s,
      { log: range(1, n, 1), hardState: { term: 1, vote: "a", commit: n - 5 } },
      `${n} saves`,
    );
    await save(s, { entries: entries(n + 1, n + 1, 2) });
    await expectDurable(
      factory,
      s,
      { log: [...range(1, n, 1), [n + 1, 2]], hardState: { term: 1, vote: "a", commit: n - 5 } },
      "one more after reopening",
    );
  });

  test("invalid saves are refused and change nothing", async () => {
    let s = await factory.open();
    await save(s, { hardState: { term: 1, vote: "a", commit: 0 }, entries: entries(1, 2, 1) });
    await refused(
      s,
      { hardState: { term: 9, vote: "x", commit: 0 }, entries: entries(4, 4, 1) },
      /gap/,
    );
    await refused(s, { entries: [...entries(3, 3, 1), ...entries(5, 5, 1)] }, /not contiguous/);
    await refused(s, { entries: entries(0, 1, 1) }, /invalid index/);
    await refused(
      s,
      { snapshot: snapshot(5, 1), entries: entries(4, 6, 1) },
      /inside the snapshot/,
    );
    s = await expectDurable(
      factory,
      s,
      { log: range(1, 2, 1), hardState: { term: 1, vote: "a", commit: 0 } },
      "after refused saves",
    );
    await save(s, { entries: entries(3, 3, 1) });
    await expectDurable(
      factory,
      s,
      { log: range(1, 3, 1), hardState: { term: 1, vote: "a", commit: 0 } },
      "a valid save after refused ones",
    );
  });

  return cases;
}
