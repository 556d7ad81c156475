/**
 * An in-memory network for simulations, modelled on the MIT 6.5840 lab's: servers can be
 * disconnected, partitioned and restarted, and in unreliable mode messages are dropped, delayed and
 * reordered. Time comes from a caller's scheduler and every random choice from a caller's source,
 * so a run is reproducible from its seed.
 *
 * @module
 */
import type { Message, MessageType, NodeId } from "../core/types.ts";
import { REQUEST_TYPES } from "../core/types.ts";
import type { MessageHandler, Transport } from "./transport.ts";

/** Runs a callback later; a `VirtualClock` (or any `Clock`) satisfies it. */
export interface Scheduler {
  /** Run `fn` once after `delayMs` milliseconds. */
  schedule(delayMs: number, fn: () => void): unknown;
}

/** How a `MemoryNetwork` gets its time and its randomness. */
export interface MemoryNetworkOptions {
  /** Where deliveries are scheduled. */
  readonly scheduler: Scheduler;
  /** A uniform source in [0, 1); pass a seeded one for reproducible runs. */
  readonly random: () => number;
}

/** Fixed per-message cost in `messageSize`: type, term, ids and indexes. */
const MESSAGE_OVERHEAD = 32;
/** Per-entry cost in `messageSize` besides the command bytes: index, term, length. */
const ENTRY_OVERHEAD = 16;

/**
 * Estimated wire size of `m` in bytes: 32 per message plus, for each log entry it carries, 16 plus
 * the command's length, plus a snapshot chunk's data. A stand-in for the CBOR-encoded size until the codec exists; what matters
 * for the lab's byte-count test is that command bytes are counted once per message that carries
 * them.
 */
export function messageSize(m: Message): number {
  let size = MESSAGE_OVERHEAD;
  if (m.type === "app") {
    for (const e of m.entries) size += ENTRY_OVERHEAD + e.data.length;
  } else if (m.type === "snap") {
    size += m.data.length;
  }
  return size;
}

const DROP_PROBABILITY = 0.1;
const UNRELIABLE_MAX_DELAY_MS = 27;
const LONG_REORDER_PROBABILITY = 2 / 3;
const LONG_REORDER_BASE_MS = 200;
const LONG_REORDER_SPREAD_MS = 2000;

/** One server's endpoint as the network sees it; `attached` turns false when replaced or closed. */
interface Endpoint {
  readonly id: NodeId;
  attached: boolean;
  handler: MessageHandler | null;
}

/**
 * A simulated network between servers identified by `NodeId`.
 *
 * Each message of a batch travels on its own (dropped or delayed independently) and arrives as a
 * batch of one. A message passes only if, both when sent and when delivered, neither end is
 * disconnected and (while a partition is set) both ends are in the same group. Messages in flight
 * to an endpoint that was replaced or closed are dropped; messages in flight from one are still
 * delivered, as packets on a wire outlive the process that sent them.
 *
 * In simulations the scheduler is a `VirtualClock` and `random` a seeded `Random`'s `next`; this
 * example stands in a bare queue for the clock.
 *
 * @example
 * ```ts
 * const due: (() => void)[] = [];
 * const net = new MemoryNetwork({
 *   scheduler: { schedule: (_ms: number, fn: () => void) => due.push(fn) },
 *   random: () => 0.5,
 * });
 * const a = net.transport("a");
 * net.transport("b").listen((msgs) => console.log(msgs));
 * a.send("b", [{ type: "hb", term: 1, from: "a", to: "b", commit: 0, ctx: 0 }]);
 * for (const fn of due) fn(); // logs the heartbeat
 * ```
 */
export class MemoryNetwork {
  readonly #scheduler: Scheduler;
  readonly #random: () => number;
  readonly #endpoints = new Map<NodeId, Endpoint>();
  readonly #disconnected = new Set<NodeId>();
  #groups: Map<NodeId, number> | null = null;
  #reliable = true;
  #longReordering = false;
  readonly #rpcCounts = new Map<NodeId, number>();
  #totalRpcs = 0;
  #bytesSent = 0;
  #delivered = 0;
  readonly #deliveredByType = new Map<MessageType, number>();
  #dropped = 0;

  /** Create a network; all servers start connected, the network reliable. */
  constructor(options: MemoryNetworkOptions) {
    this.#scheduler = options.scheduler;
    this.#random = options.random;
  }

  /**
   * The endpoint of server `id`. Calling it again for the same id replaces the endpoint, as for a
   * restarted server: messages in flight to the old one are dropped and its `send` does nothing.
   *
   * @throws {Error} when `id` is empty.
   */
  transport(id: NodeId): Transport {
    if (id === "") throw new Error("MemoryNetwork.transport: empty node id");
    const old = this.#endpoints.get(id);
    if (old !== undefined) old.attached = false;
    const endpoint: Endpoint = { id, attached: true, handler: null };
    this.#endpoints.set(id, endpoint);
    return {
      send: (to, messages) => {
        if (endpoint.attached) this.#send(endpoint, to, messages);
      },
      listen: (handler) => {
        endpoint.handler = handler;
      },
      close: () => {
        endpoint.attached = false;
        if (this.#endpoints.get(id) === endpoint) this.#endpoints.delete(id);
      },
    };
  }

  /** Cut every link of server `id`, both directions, including messages already in flight. */
  disconnect(id: NodeId): void {
    this.#disconnected.add(id);
  }

  /** Restore the links of server `id` that `disconnect` cut. */
  connect(id: NodeId): void {
    this.#disconnected.delete(id);
  }

  /** False while server `id` is disconnected. Partitions do not affect it. */
  isConnected(id: NodeId): boolean {
    return !this.#disconnected.has(id);
  }

  /**
   * Let messages flow only between servers of the same group; a server in no group is isolated.
   * Replaces any previous partition.
   *
   * @throws {Error} when a server appears in two groups.
   */
  partition(groups: readonly (readonly NodeId[])[]): void {
    const map = new Map<NodeId, number>();
    groups.forEach((group, g) => {
      for (const id of group) {
        if (map.has(id)) throw new Error(`MemoryNetwork.partition: ${id} is in two groups`);
        map.set(id, g);
      }
    });
    this.#groups = map;
  }

  /** Remove the partition (disconnected servers stay disconnected). */
  heal(): void {
    this.#groups = null;
  }

  /**
   * Reliable (the default): nothing is dropped and each delivery takes under 1 ms. Unreliable:
   * each message is dropped with probability 0.1 and each delivery takes 0–27 ms.
   */
  setReliable(reliable: boolean): void {
    this.#reliable = reliable;
  }

  /** When on, each response is, with probability 2/3, delayed 200 ms plus up to 2 s, skewed short as in the lab. */
  setLongReordering(on: boolean): void {
    this.#longReordering = on;
  }

  /** Request messages (the lab's RPCs) delivered to server `id`. */
  rpcCount(id: NodeId): number {
    return this.#rpcCounts.get(id) ?? 0;
  }

  /** Request messages delivered to any server. */
  totalRpcs(): number {
    return this.#totalRpcs;
  }

  /** Sum of `messageSize` over every request message sent, whether or not it was delivered. */
  bytesSent(): number {
    return this.#bytesSent;
  }

  /** Messages handed to a handler. */
  messagesDelivered(): number {
    return this.#delivered;
  }

  /** Messages of one type handed to a handler. */
  deliveredOfType(type: MessageType): number {
    return this.#deliveredByType.get(type) ?? 0;
  }

  /** Messages lost: dropped by the network, cut off, or addressed to no live endpoint. */
  messagesDropped(): number {
    return this.#dropped;
  }

  #send(from: Endpoint, to: NodeId, messages: readonly Message[]): void {
    const random = this.#random;
    for (const m of messages) {
      const request = REQUEST_TYPES.has(m.type);
      if (request) this.#bytesSent += messageSize(m);
      const target = this.#endpoints.get(to);
      if (m.to !== to || target === undefined || !this.#linked(from.id, to)) {
        this.#dropped++;
        continue;
      }
      let delay: number;
      if (this.#reliable) {
        delay = random();
      } else {
        if (random() < DROP_PROBABILITY) {
          this.#dropped++;
          continue;
        }
        delay = random() * UNRELIABLE_MAX_DELAY_MS;
      }
      if (this.#longReordering && !request && random() < LONG_REORDER_PROBABILITY) {
        // As the lab draws it (200 + rand(1 + rand(2000))): skewed toward the short end.
        const spread = Math.floor(random() * (1 + Math.floor(random() * LONG_REORDER_SPREAD_MS)));
        delay = LONG_REORDER_BASE_MS + spread;
      }
      this.#scheduler.schedule(delay, () => this.#deliver(from.id, target, m, request));
    }
  }

  #deliver(from: NodeId, target: Endpoint, m: Message, request: boolean): void {
    const handler = target.handler;
    if (!target.attached || handler === null || !this.#linked(from, target.id)) {
      this.#dropped++;
      return;
    }
    this.#delivered++;
    this.#deliveredByType.set(m.type, (this.#deliveredByType.get(m.type) ?? 0) + 1);
    if (request) {
      this.#totalRpcs++;
      this.#rpcCounts.set(target.id, (this.#rpcCounts.get(target.id) ?? 0) + 1);
    }
    handler([m]);
  }

  #linked(a: NodeId, b: NodeId): boolean {
    if (this.#disconnected.has(a) || this.#disconnected.has(b)) return false;
    const groups = this.#groups;
    if (groups === null) return true;
    const g = groups.get(a);
    return g !== undefined && g === groups.get(b);
  }
}
