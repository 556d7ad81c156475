/**
 * A cluster of real `RaftNode`s on a `MemoryNetwork` in virtual time, with the 6.5840 lab's
 * controls (disconnect, crash, restart, unreliable network) and checks (one leader, agreement,
 * applied order), and every safety property checked as it runs. Everything random comes from one
 * seed, so a run replays exactly.
 *
 * @module
 */
import type { Entry, NodeId, PersistedState } from "../core/types.ts";
import { RaftNode, type RaftNodeOptions, type StateMachine } from "../node/raft_node.ts";
import { MemoryStorage } from "../storage/memory_storage.ts";
import type { Storage, StorageUpdate } from "../storage/storage.ts";
import { MemoryNetwork } from "../transport/memory_network.ts";
import { Random } from "./random.ts";
import { commandKey, SafetyChecker } from "./safety_checker.ts";
import { VirtualClock } from "./virtual_clock.ts";

/** Node settings a simulation may override (timing, pre-vote, windows). */
export type SimNodeOptions = Omit<
  RaftNodeOptions,
  "id" | "peers" | "storage" | "transport" | "clock" | "seed" | "onApply" | "onStateChange"
>;

/** How to build a `SimCluster`. */
export interface SimClusterOptions {
  /** Number of servers. */
  readonly servers: number;
  /** The seed every random choice derives from. */
  readonly seed: number;
  /** Start with an unreliable network. Default false. */
  readonly unreliable?: boolean;
  /** Settings passed to every node. */
  readonly node?: SimNodeOptions;
  /**
   * Each server's application snapshots its state after every `snapshotEvery` applied entries
   * (the 6.5840 lab's 3D applier does so every 10). Default: never.
   */
  readonly snapshotEvery?: number;
  /**
   * Durable storage for server `i`, opened at each (re)start over what it saved before (for
   * example `FileStorage.open(dir)`). Virtual time waits while a save is in flight. Default:
   * `MemoryStorage`, with exact crash semantics and exact seed replay.
   */
  readonly storage?: (i: number) => Storage | Promise<Storage>;
  /** A fresh state machine for server `i` each time it starts. Default: none. */
  readonly stateMachine?: (i: number) => StateMachine;
}

/** A failed check of the cluster's behaviour (not of a safety property). */
export class ClusterCheckError extends Error {
  /** `message` says which check. */
  constructor(message: string) {
    super(message);
    this.name = "ClusterCheckError";
  }
}

/** Encode a number as a command, the way the lab's tests use integers. */
export function intCommand(n: number): Uint8Array {
  return new TextEncoder().encode(String(n));
}

// Checks Log Matching on everything a server persists, then stores it. `mirror` holds what was
// saved (it is `inner` itself when that is a MemoryStorage), for term lookups and sizes.
class CheckedStorage implements Storage {
  constructor(
    readonly inner: Storage,
    public mirror: MemoryStorage,
    readonly server: NodeId,
    readonly checker: SafetyChecker,
    readonly onViolation: (e: unknown) => void,
  ) {}

  load(): PersistedState | Promise<PersistedState> {
    const state = this.inner.load();
    if (this.inner === this.mirror) return state as PersistedState;
    return Promise.resolve(state).then((s) => {
      this.mirror = new MemoryStorage({ initial: s });
      return s;
    });
  }

  save(update: StorageUpdate): void | Promise<void> {
    if (update.entries.length > 0) {
      const first = update.entries[0].index;
      try {
        this.checker.persisted(this.server, update.entries, this.#termAt(first - 1, update));
      } catch (e) {
        this.onViolation(e);
        throw e;
      }
    }
    const saved = this.inner.save(update);
    if (this.inner === this.mirror) return saved;
    return Promise.resolve(saved).then(() => this.mirror.save(update));
  }

  close(): void | Promise<void> {
    return this.inner.close();
  }

  #termAt(index: number, update: StorageUpdate): number {
    if (index === 0) return 0;
    if (update.snapshot?.index === index) return update.snapshot.term;
    const entries = this.mirror.entries;
    if (entries.length > 0) {
      const e: Entry | undefined = entries[index - entries[0].index];
      if (e) return e.term;
    }
    const snap = this.mirror.snapshot;
    if (snap?.index === index) return snap.term;
    throw new Error(
      `CheckedStorage: ${this.server} saves entries after index ${index}, which it does not hold`,
    );
  }
}

/** One simulated cluster. Servers are numbered 0..n-1; their ids are "s0", "s1", .... */
export class SimCluster {
  /** Virtual time. */
  readonly clock: VirtualClock = new VirtualClock();
  /** The network between the servers. */
  readonly network: MemoryNetwork;
  /** The cluster's random source (tests draw from it too, to stay replayable). */
  readonly random: Random;
  /** Safety checks over everything the servers do. */
  readonly checker: SafetyChecker = new SafetyChecker();
  /** Server ids by number. */
  readonly ids: readonly NodeId[];
  /** The seed this cluster was built from. */
  readonly seed: number;
  readonly #nodes: (RaftNode | undefined)[];
  readonly #storages: MemoryStorage[];
  readonly #connected: boolean[];
  readonly #applied: Map<number, string>[];
  readonly #nodeOptions: SimNodeOptions;
  readonly #snapshotEvery: number;
  readonly #openStorage: ((i: number) => Storage | Promise<Storage>) | undefined;
  #violation: unknown = undefined;
  readonly #stateMachine: ((i: number) => StateMachine) | undefined;

  private constructor(options: SimClusterOptions) {
    this.seed = options.seed;
    this.random = new Random(options.seed);
    this.network = new MemoryNetwork({
      scheduler: this.clock,
      random: ((r) => () => r.next())(this.random.fork()),
    });
    this.network.setReliable(!options.unreliable);
    this.ids = Array.from({ length: options.servers }, (_, i) => `s${i}`);
    this.#nodes = this.ids.map(() => undefined);
    this.#storages = this.ids.map(() => new MemoryStorage());
    this.#connected = this.ids.map(() => false);
    this.#applied = this.ids.map(() => new Map());
    this.#nodeOptions = options.node ?? {};
    this.#snapshotEvery = options.snapshotEvery ?? 0;
    this.#openStorage = options.storage;
    this.#stateMachine = options.stateMachine;
  }

  /** Build and start a cluster with every server up and connected. */
  static async create(options: SimClusterOptions): Promise<SimCluster> {
    const c = new SimCluster(options);
    for (let i = 0; i < options.servers; i++) {
      await c.start1(i);
      c.connect(i);
    }
    return c;
  }

  /** Number of servers. */
  get n(): number {
    return this.ids.length;
  }

  /** The running node of server `i`, if it is up. */
  node(i: number): RaftNode | undefined {
    return this.#nodes[i];
  }

  /** The storage server `i` restarts from. */
  storage(i: number): MemoryStorage {
    return this.#storages[i];
  }

  /** Let `ms` of virtual time pass. */
  async sleep(ms: number): Promise<void> {
    if (this.#openStorage) await this.clock.sleepSettled(ms, () => this.#pendingSave());
    else await this.clock.sleep(ms);
    // A violation found inside a save stops that node (storage errors are fatal to it) instead
    // of propagating; surface it here.
    if (this.#violation !== undefined) throw this.#violation;
  }

  #pendingSave(): Promise<unknown> | undefined {
    const pending: Promise<unknown>[] = [];
    for (const node of this.#nodes) {
      const p = node?.pendingSave();
      if (p) pending.push(p);
    }
    return pending.length > 0 ? Promise.all(pending) : undefined;
  }

  /** (Re)start server `i` from what it persisted; it stays disconnected until `connect(i)`. */
  async start1(i: number): Promise<void> {
    if (this.#nodes[i]) await this.crash1(i);
    const id = this.ids[i];
    const storage = this.#storages[i];
    const inner = this.#openStorage ? await this.#openStorage(i) : storage;
    const checked = new CheckedStorage(
      inner,
      storage,
      id,
      this.checker,
      (e) => this.#violation ??= e,
    );
    this.#applied[i] = new Map();
    this.checker.restarted(id, 0);
    // Set once start() returns; a compaction asked for while it runs waits until then.
    const self: { node?: RaftNode } = {};
    const sm = this.#stateMachine?.(i);
    const node: RaftNode = await RaftNode.start({
      ...this.#nodeOptions,
      id,
      peers: this.ids,
      storage: checked,
      transport: this.network.transport(id),
      clock: this.clock,
      seed: this.random.nextUint32(),
      stateMachine: sm,
      onApply: (item) => {
        if (item.type === "snapshot") {
          // A real state machine's snapshot is opaque here; the JSON one the cluster makes
          // itself is checked entry by entry.
          const state = sm?.snapshot ? new Map<number, string>() : decodeState(item.data);
          this.checker.snapshotLoaded(id, item.index, state);
          this.#applied[i] = state;
          return;
        }
        this.checker.applied(id, item.index, item.term, item.command);
        this.#applied[i].set(item.index, commandKey(item.command));
        if (this.#snapshotEvery > 0 && item.index % this.#snapshotEvery === 0) {
          const index = item.index;
          const data = sm?.snapshot ? sm.snapshot() : encodeState(this.#applied[i], index);
          this.clock.defer(() => {
            const n = self.node;
            if (n && n === this.#nodes[i] && n.status().running) n.compact(index, data);
          });
        }
      },
      onStateChange: (s) => {
        if (s.role === "candidate") this.checker.campaignStarted(id, s.term);
        if (s.role !== "leader") return;
        const status = node.status();
        this.checker.leaderElected(id, s.term, (x) => node.logTerm(x), status.lastIndex);
      },
    });
    self.node = node;
    this.#storages[i] = checked.mirror;
    this.#nodes[i] = node;
  }

  /** Crash server `i`: it loses everything but what it persisted, and is disconnected. */
  async crash1(i: number): Promise<void> {
    this.disconnect(i);
    const node = this.#nodes[i];
    this.#nodes[i] = undefined;
    // The copy is what survives; the crashed instance can no longer write into it.
    // With MemoryStorage, the copy is what survives; with real storage, the files are.
    if (!this.#openStorage) this.#storages[i] = this.#storages[i].crashCopy();
    if (node) await node.stop();
  }

  /** Cut all of server `i`'s links. */
  disconnect(i: number): void {
    this.#connected[i] = false;
    this.network.disconnect(this.ids[i]);
  }

  /** Restore all of server `i`'s links. */
  connect(i: number): void {
    this.#connected[i] = true;
    this.network.connect(this.ids[i]);
  }

  /** Whether server `i` is connected. */
  connected(i: number): boolean {
    return this.#connected[i];
  }

  /** Drop and delay messages as the lab's unreliable network does (or stop doing so). */
  setUnreliable(on: boolean): void {
    this.network.setReliable(!on);
  }

  /** Delay most responses by up to ~2.2 s (the lab's long reordering). */
  setLongReordering(on: boolean): void {
    this.network.setLongReordering(on);
  }

  /** The largest persisted Raft state (hard state and log, without the snapshot) of any server. */
  logSize(): number {
    let max = 0;
    for (const s of this.#storages) max = Math.max(max, s.raftStateSize());
    return max;
  }

  /** Requests delivered to all servers so far (the lab's RPC count). */
  rpcTotal(): number {
    return this.network.totalRpcs();
  }

  /** Bytes of requests sent so far (the lab's byte count). */
  bytesTotal(): number {
    return this.network.bytesSent();
  }

  /** Ask server `i` to start `cmd`; undefined when it is down or not the leader. */
  start(i: number, cmd: Uint8Array): { index: number; term: number } | undefined {
    const node = this.#nodes[i];
    if (!node) return undefined;
    try {
      return node.start(cmd);
    } catch {
      return undefined;
    }
  }

  /** (term, isLeader) of server `i`, or undefined when it is down. */
  getState(i: number): { term: number; isLeader: boolean } | undefined {
    return this.#nodes[i]?.state();
  }

  /** The one leader among connected servers, waiting up to ~5 s for it (the lab's check). */
  async checkOneLeader(): Promise<number> {
    for (let iter = 0; iter < 10; iter++) {
      await this.sleep(450 + this.random.int(100));
      const leaders = new Map<number, number[]>();
      for (let i = 0; i < this.n; i++) {
        const s = this.#connected[i] ? this.getState(i) : undefined;
        if (s?.isLeader) leaders.set(s.term, [...(leaders.get(s.term) ?? []), i]);
      }
      let lastTerm = -1;
      for (const [term, ls] of leaders) {
        if (ls.length > 1) {
          throw new ClusterCheckError(`term ${term} has ${ls.length} (>1) leaders: ${ls}`);
        }
        if (term > lastTerm) lastTerm = term;
      }
      if (leaders.size > 0) return leaders.get(lastTerm)![0];
    }
    throw new ClusterCheckError("expected one leader, got none");
  }

  /** Fails if any connected server claims to be leader. */
  checkNoLeader(): void {
    for (let i = 0; i < this.n; i++) {
      if (this.#connected[i] && this.getState(i)?.isLeader) {
        throw new ClusterCheckError(
          `expected no leader among connected servers, but ${i} claims to be leader`,
        );
      }
    }
  }

  /** The term every connected server agrees on; fails if they disagree. */
  checkTerms(): number {
    let term = -1;
    for (let i = 0; i < this.n; i++) {
      const s = this.#connected[i] ? this.getState(i) : undefined;
      if (!s) continue;
      if (term === -1) term = s.term;
      else if (term !== s.term) throw new ClusterCheckError("servers disagree on term");
    }
    return term;
  }

  /** How many servers applied `index`, and the command there; fails if two applied different ones. */
  nCommitted(index: number): { count: number; command: string | undefined } {
    let count = 0;
    let command: string | undefined;
    for (let i = 0; i < this.n; i++) {
      const c = this.#applied[i].get(index);
      if (c === undefined) continue;
      if (count > 0 && c !== command) {
        throw new ClusterCheckError(`committed values do not match: index ${index}`);
      }
      count++;
      command = c;
    }
    return { count, command };
  }

  /**
   * Wait for at least `n` servers to apply `index` (the lab's `wait`); returns the command, or
   * undefined if some server moved past `startTerm` first (pass -1 to ignore terms).
   */
  async wait(index: number, n: number, startTerm: number): Promise<string | undefined> {
    let to = 10;
    for (let iters = 0; iters < 30; iters++) {
      if (this.nCommitted(index).count >= n) break;
      await this.sleep(to);
      if (to < 1000) to *= 2;
      if (startTerm > -1) {
        for (let i = 0; i < this.n; i++) {
          const s = this.getState(i);
          if (s && s.term > startTerm) return undefined;
        }
      }
    }
    const { count, command } = this.nCommitted(index);
    if (count < n) {
      throw new ClusterCheckError(`only ${count} decided for index ${index}; wanted ${n}`);
    }
    return command;
  }

  /**
   * Agree on `cmd` (the lab's `one`): for up to 10 s find a leader that accepts it, then within
   * 2 s at least `expected` servers must apply it. Without `retry`, one failed attempt fails.
   * Returns the index.
   */
  async one(cmd: Uint8Array, expected: number, retry: boolean): Promise<number> {
    const t0 = this.clock.now();
    const want = commandKey(cmd);
    let starts = 0;
    while (this.clock.now() - t0 < 10_000) {
      let index = -1;
      for (let si = 0; si < this.n; si++) {
        starts = (starts + 1) % this.n;
        if (!this.#connected[starts]) continue;
        const p = this.start(starts, cmd);
        if (p) {
          index = p.index;
          break;
        }
      }
      if (index !== -1) {
        const t1 = this.clock.now();
        while (this.clock.now() - t1 < 2_000) {
          const { count, command } = this.nCommitted(index);
          if (count > 0 && count >= expected && command === want) return index;
          await this.sleep(20);
        }
        if (!retry) {
          throw new ClusterCheckError(`one(${describe(cmd)}) failed to reach agreement`);
        }
      } else {
        await this.sleep(50);
      }
    }
    throw new ClusterCheckError(`one(${describe(cmd)}) failed to reach agreement in 10 s`);
  }

  /** Stop every server. */
  async cleanup(): Promise<void> {
    for (let i = 0; i < this.n; i++) {
      const node = this.#nodes[i];
      this.#nodes[i] = undefined;
      if (node) await node.stop();
    }
  }
}

// The simulated application's state: every applied command by index, through `upTo`.
function encodeState(state: Map<number, string>, upTo: number): Uint8Array {
  const pairs: [number, string][] = [];
  for (const [index, key] of state) if (index <= upTo) pairs.push([index, key]);
  return new TextEncoder().encode(JSON.stringify(pairs));
}

function decodeState(data: Uint8Array): Map<number, string> {
  return new Map(JSON.parse(new TextDecoder().decode(data)) as [number, string][]);
}

function describe(cmd: Uint8Array): string {
  return cmd.length <= 16 ? JSON.stringify(new TextDecoder().decode(cmd)) : `<${cmd.length} bytes>`;
}
