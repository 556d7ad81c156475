/**
 * The writer the crash tests kill: opens a FileStorage, prints `ready`, then saves as fast as it
 * can — a seeded mix of appends, hard-state changes, suffix overwrites and snapshots, several
 * saves in flight at once — printing the number of each save once it has resolved, until it is
 * killed with SIGKILL.
 *
 * Run: `deno run -A tests/storage/crash_child.ts DIR SEED SEGMENT_SIZE IN_FLIGHT`
 *
 * `Workload` is exported so the parent can regenerate the same saves from the same seed and the
 * state the child started from, and so know what every acknowledged save must have left.
 *
 * @module
 */
import type { Entry, HardState, PersistedState, Snapshot } from "../../src/core/types.ts";
import { FileStorage } from "../../src/storage/file_storage.ts";
import { MemoryStorage } from "../../src/storage/memory_storage.ts";
import type { StorageUpdate } from "../../src/storage/storage.ts";
import { Random } from "../../src/testing/random.ts";

/** A command's bytes, determined by index, term and size. */
export function commandBytes(index: number, term: number, size: number): Uint8Array {
  const d = new Uint8Array(size);
  const x = (index * 131 + term * 31) & 0xff;
  for (let i = 0; i < size; i++) d[i] = (x + i * 7) & 0xff;
  return d;
}

/**
 * A seeded stream of valid saves against a model (`MemoryStorage`) of what has been saved:
 * the same start state and seed always give the same saves.
 */
export class Workload {
  /** The state after every save generated so far. */
  readonly model: MemoryStorage;
  readonly #rng: Random;
  readonly #snapshots: boolean;

  /** Start from `start` (what the storage loaded) with `seed`; `snapshots: false` saves none. */
  constructor(start: PersistedState, seed: number, options: { snapshots?: boolean } = {}) {
    this.model = new MemoryStorage({ initial: start });
    this.#rng = new Random(seed);
    this.#snapshots = options.snapshots ?? true;
  }

  #entries(first: number, count: number, term: number): Entry[] {
    const rng = this.#rng;
    const out: Entry[] = [];
    for (let i = 0; i < count; i++) {
      const size = rng.chance(0.03) ? 20_000 + rng.int(20_000) : rng.int(300);
      out.push({ index: first + i, term, data: commandBytes(first + i, term, size) });
    }
    return out;
  }

  /** The next save; the model already includes it. */
  next(): StorageUpdate {
    const rng = this.#rng;
    const m = this.model;
    const hs = m.hardState;
    const term = Math.max(hs.term, 1);
    const last = m.lastIndex;
    const base = m.snapshot?.index ?? 0;
    const r = this.#snapshots ? rng.next() : rng.next() * 0.85;
    let update: StorageUpdate;
    if (r < 0.65) {
      const entries = this.#entries(last + 1, 1 + rng.int(4), term);
      const hardState: HardState | undefined = rng.chance(0.3)
        ? { term, vote: hs.vote, commit: Math.min(last, hs.commit + rng.int(5)) }
        : undefined;
      update = { entries, hardState };
    } else if (r < 0.75) {
      const bump = rng.chance(0.3);
      update = {
        entries: [],
        hardState: {
          term: bump ? term + 1 : term,
          vote: rng.pick(["a", "b", "c", ""]),
          commit: hs.commit,
        },
      };
    } else if (r < 0.85) {
      const newTerm = term + 1;
      const first = Math.max(base + 1, last - rng.int(6));
      update = {
        entries: this.#entries(first, 1 + rng.int(3), newTerm),
        hardState: { term: newTerm, vote: "a", commit: Math.min(hs.commit, first - 1) },
      };
    } else if (r < 0.95 && last > base) {
      // A snapshot the log continues: the entries after it stay.
      const index = base + 1 + rng.int(last - base);
      const at = m.entries[index - m.entries[0].index];
      const snapshot: Snapshot = {
        index,
        term: at.term,
        voters: ["a", "b", "c"],
        data: commandBytes(index, -at.term, rng.int(2000)),
      };
      update = {
        snapshot,
        entries: rng.chance(0.5) ? this.#entries(last + 1, 1, term) : [],
      };
    } else {
      // One installed from a leader of a newer term: the whole log goes.
      const index = last + rng.int(3);
      const t = term + 1;
      update = {
        snapshot: { index, term: t, voters: ["a", "b"], data: commandBytes(index, -t, 500) },
        entries: rng.chance(0.5) ? this.#entries(index + 1, 2, t) : [],
        hardState: { term: t, vote: "", commit: index },
      };
    }
    m.save(update);
    return update;
  }
}

async function main(): Promise<void> {
  const [dir, seedText, segmentText, inFlightText] = Deno.args;
  const seed = Number(seedText);
  const inFlight = Number(inFlightText ?? 16);
  const encoder = new TextEncoder();
  const out = (text: string) => Deno.stdout.writeSync(encoder.encode(text));
  const storage = await FileStorage.open(dir, {
    segmentSize: Number(segmentText ?? 32768),
    onWarning: (m) => console.error(m),
  });
  const workload = new Workload(await storage.load(), seed);
  out("ready\n");
  let issued = 0;
  let pending = 0;
  const pump = () => {
    while (pending < inFlight) {
      const n = ++issued;
      pending++;
      storage.save(workload.next()).then(
        () => {
          pending--;
          out(`${n}\n`);
          pump();
        },
        (e) => {
          console.error(`save ${n} failed: ${e}`);
          Deno.exit(3);
        },
      );
    }
  };
  pump();
  // Killed long before this; a guard against a parent that forgot to.
  setTimeout(() => Deno.exit(0), 60_000);
}

if (import.meta.main) await main();
