/**
 * A one-server `RaftNode` in virtual time, with a storage whose saves can be held (to keep
 * proposals from committing) and a clock whose reading a test can push forward (to give saves
 * a duration). Shared by the tests of the node's limits, events, metrics and compaction.
 *
 * @module
 */
import type { PersistedState } from "../../src/core/types.ts";
import type { Cancel, Clock } from "../../src/node/clock.ts";
import { RaftNode, type RaftNodeOptions, type StateMachine } from "../../src/node/raft_node.ts";
import { MemoryStorage } from "../../src/storage/memory_storage.ts";
import type { Storage, StorageUpdate } from "../../src/storage/storage.ts";
import { Random } from "../../src/testing/random.ts";
import { VirtualClock } from "../../src/testing/virtual_clock.ts";
import { MemoryNetwork } from "../../src/transport/memory_network.ts";

/** Let promise continuations run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

/**
 * A `MemoryStorage` whose saves, while held, stay pending until `release()`; and that can make
 * each save appear to take `saveMs` on a `SkewedClock`.
 */
export class GatedStorage implements Storage {
  #held = false;
  #waiting: (() => void)[] = [];
  saveMs = 0;

  constructor(readonly inner = new MemoryStorage(), readonly clock?: SkewedClock) {}

  /** Saves from now on wait for `release()`. */
  hold(): void {
    this.#held = true;
  }

  /** Let every held save (and later ones) complete. */
  release(): void {
    this.#held = false;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const go of waiting) go();
  }

  load(): PersistedState {
    return this.inner.load();
  }

  save(update: StorageUpdate): void | Promise<void> {
    if (this.clock && this.saveMs > 0) this.clock.skew += this.saveMs;
    if (!this.#held) return this.inner.save(update);
    return new Promise((resolve) => this.#waiting.push(() => resolve(this.inner.save(update))));
  }

  close(): void {}
}

/** A `VirtualClock` whose `now()` reads `skew` ms ahead (timers still run in virtual time). */
export class SkewedClock implements Clock {
  skew = 0;
  constructor(readonly inner: VirtualClock) {}
  now(): number {
    return this.inner.now() + this.skew;
  }
  schedule(delayMs: number, fn: () => void): Cancel {
    return this.inner.schedule(delayMs, fn);
  }
  defer(fn: () => void): void {
    this.inner.defer(fn);
  }
}

/** One server alone: it elects itself and commits on its own save. */
export class SoloNode {
  readonly clock = new VirtualClock();
  readonly skewed = new SkewedClock(this.clock);
  readonly storage: GatedStorage;
  node!: RaftNode;

  private constructor(storage?: MemoryStorage) {
    this.storage = new GatedStorage(storage, this.skewed);
  }

  /** Start the server, and run until it leads. */
  static async start(
    options: Partial<RaftNodeOptions> = {},
    storage?: MemoryStorage,
  ): Promise<SoloNode> {
    const s = new SoloNode(storage);
    const random = new Random(7);
    const net = new MemoryNetwork({ scheduler: s.clock, random: () => random.next() });
    s.node = await RaftNode.start({
      id: "solo",
      peers: ["solo"],
      storage: s.storage,
      transport: net.transport("solo"),
      clock: s.skewed,
      seed: 7,
      ...options,
    });
    for (let t = 0; t < 2000 && !s.node.state().isLeader; t += 10) await s.run(10);
    if (!s.node.state().isLeader) throw new Error("the single server did not elect itself");
    return s;
  }

  /** Advance virtual time by `ms`, letting promise continuations run as it goes. */
  async run(ms: number, step = 5): Promise<void> {
    const end = this.clock.now() + ms;
    while (this.clock.now() < end) {
      await settle();
      this.clock.advance(Math.min(step, end - this.clock.now()));
    }
    await settle();
  }

  /** Where `p` stands now: its value, its error, or "pending". */
  static async outcome<T>(
    p: Promise<T>,
  ): Promise<{ value: T } | { error: unknown } | "pending"> {
    let out: { value: T } | { error: unknown } | "pending" = "pending";
    p.then((value) => out = { value }, (error) => out = { error });
    await settle();
    return out;
  }
}

/** A register: a command sets it, a query reads it, a snapshot restores it. */
export function register(): StateMachine {
  let value: Uint8Array = new Uint8Array(0);
  return {
    apply(command) {
      value = command;
    },
    query() {
      return value;
    },
    restore(data) {
      value = data;
    },
  };
}
