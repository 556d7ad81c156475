/**
 * The events a `RaftNode` reports about itself (term, role and leader changes) and the hub that
 * fans them out to subscribers, each through its own bounded queue: a subscriber that falls
 * behind gets an explicit `QueueOverflowError`, never a silent gap.
 *
 * @module
 */
import type { NodeId, Role } from "../core/types.ts";
import { AsyncQueue } from "./async_queue.ts";

/** What every event carries: the node's state right after the change it reports. */
export interface NodeEventState {
  /** Current term. */
  readonly term: number;
  /** Current role. */
  readonly role: Role;
  /** Known leader of the current term, or "" when none. */
  readonly leader: NodeId;
}

/** The first event of every subscription: the state at the moment of subscribing. */
export interface NodeStateEvent extends NodeEventState {
  /** Discriminator. */
  readonly type: "state";
}

/** The term changed. */
export interface NodeTermEvent extends NodeEventState {
  /** Discriminator. */
  readonly type: "term";
  /** The term before. */
  readonly previousTerm: number;
}

/** The role changed (follower, pre-candidate, candidate, leader). */
export interface NodeRoleEvent extends NodeEventState {
  /** Discriminator. */
  readonly type: "role";
  /** The role before. */
  readonly previousRole: Role;
}

/** The known leader changed (to another server, or to "" when none is known). */
export interface NodeLeaderEvent extends NodeEventState {
  /** Discriminator. */
  readonly type: "leader";
  /** The leader known before, or "". */
  readonly previousLeader: NodeId;
}

/**
 * What `RaftNode.events()` yields, discriminated by `type`. The node reports its state as it
 * sees it after each step, so one step that changes several things yields one event per thing,
 * in the order term, role, leader, each carrying the state after the whole step (a server that
 * goes from follower to leader within one step reports no intermediate candidate role). More
 * types may be added in later versions (membership changes, for instance): a consumer should
 * ignore a `type` it does not know.
 */
export type NodeEvent = NodeStateEvent | NodeTermEvent | NodeRoleEvent | NodeLeaderEvent;

/** Options of `RaftNode.events`. */
export interface NodeEventsOptions {
  /**
   * Events a subscriber may leave unread before its iterator fails with `QueueOverflowError`
   * (the events are not kept; subscribe again to get the current state). Default 1024.
   */
  readonly bufferLimit?: number;
}

/** Default `bufferLimit` of `events()`. */
export const DEFAULT_EVENT_BUFFER = 1024;

/** The events one step produced, in the documented order. */
export function stateChangeEvents(before: NodeEventState, after: NodeEventState): NodeEvent[] {
  const now = { term: after.term, role: after.role, leader: after.leader };
  const out: NodeEvent[] = [];
  if (before.term !== after.term) out.push({ type: "term", ...now, previousTerm: before.term });
  if (before.role !== after.role) out.push({ type: "role", ...now, previousRole: before.role });
  if (before.leader !== after.leader) {
    out.push({ type: "leader", ...now, previousLeader: before.leader });
  }
  return out;
}

/** Subscribers of one node's events. */
export class EventHub {
  #subscribers: AsyncQueue<NodeEvent>[] = [];
  #closed = false;

  /** A new subscription whose first item is `first`; already ended when the hub is closed. */
  subscribe(first: NodeEvent, options: NodeEventsOptions = {}): AsyncIterableIterator<NodeEvent> {
    const limit = options.bufferLimit ?? DEFAULT_EVENT_BUFFER;
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`bufferLimit must be a positive integer, got ${limit}`);
    }
    const q = new AsyncQueue<NodeEvent>(limit);
    q.push(first);
    if (this.#closed) q.close();
    else this.#subscribers.push(q);
    return q;
  }

  /** Hand `event` to every subscriber (one that overflows fails and is dropped). */
  emit(event: NodeEvent): void {
    let pruned = false;
    for (const q of this.#subscribers) {
      q.push(event);
      if (q.closed) pruned = true;
    }
    if (pruned) this.#subscribers = this.#subscribers.filter((q) => !q.closed);
  }

  /** Subscribers still attached (a `return()` detaches at the next emit or at once here). */
  get size(): number {
    this.#subscribers = this.#subscribers.filter((q) => !q.closed);
    return this.#subscribers.length;
  }

  /** End every subscription (after the events already queued) and refuse new ones. */
  close(): void {
    this.#closed = true;
    for (const q of this.#subscribers) q.close();
    this.#subscribers = [];
  }
}
