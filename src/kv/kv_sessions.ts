/**
 * The KV store's client sessions: per client, the last applied sequence number and its encoded
 * result, so a retried command is answered from here instead of being applied twice.
 *
 * Everything here is a function of the commands applied, never of timing or of the order a
 * replica happened to learn things in: a session's age is measured on the state machine's clock
 * (the largest `ts` applied), and which session goes first — to expiry or to make room — is
 * decided by (last seen, client id).
 *
 * @module
 */
import { compareKeys } from "./kv_sorted_keys.ts";

/** One client's session. */
export interface Session {
  /** The last sequence number applied for the client. */
  readonly seq: number;
  /** The encoded result of that command, returned again to a retry of it. */
  readonly result: Uint8Array;
  /** The state machine's clock when the client was last heard from. */
  readonly lastSeen: number;
}

/** A client's session, with its client id. */
export interface ClientSession extends Session {
  /** The client's id. */
  readonly client: string;
}

/** Order in which sessions go: least recently seen first, ties by client id. */
export function compareSessions(a: ClientSession, b: ClientSession): number {
  return a.lastSeen - b.lastSeen || compareKeys(a.client, b.client);
}

/** Sessions by client id, expiring after `ttlMs` and capped at `maxSessions`. */
export class SessionTable {
  readonly #ttlMs: number;
  readonly #maxSessions: number;
  // Kept in non-decreasing `lastSeen` order: a session is (re)inserted at the end whenever it is
  // seen, at the clock's current value, which never decreases. So the expired ones are a prefix.
  #sessions = new Map<string, Session>();

  /** An empty table; `maxSessions` must be at least 1. */
  constructor(ttlMs: number, maxSessions: number) {
    this.#ttlMs = ttlMs;
    this.#maxSessions = maxSessions;
  }

  /** Number of sessions. */
  get size(): number {
    return this.#sessions.size;
  }

  /** The session of `client`, if it has one. */
  get(client: string): Session | undefined {
    return this.#sessions.get(client);
  }

  /** Drop every session not seen for more than the TTL as of `now`. */
  expire(now: number): void {
    for (const [client, s] of this.#sessions) {
      if (now - s.lastSeen <= this.#ttlMs) break;
      this.#sessions.delete(client);
    }
  }

  /** `client` was heard from at `now` (a retry keeps its session alive). */
  touch(client: string, now: number): void {
    const s = this.#sessions.get(client);
    if (!s) return;
    this.#sessions.delete(client);
    this.#sessions.set(client, { ...s, lastSeen: now });
  }

  /**
   * Record `client`'s command `seq` and its result; when the table is full, the least recently
   * seen other session makes room.
   */
  record(client: string, seq: number, result: Uint8Array, now: number): void {
    this.#sessions.delete(client);
    this.#sessions.set(client, { seq, result, lastSeen: now });
    while (this.#sessions.size > this.#maxSessions) this.#evictOne(client);
  }

  /** Every session in `compareSessions` order (how snapshots list them). */
  sorted(): ClientSession[] {
    const out: ClientSession[] = [];
    for (const [client, s] of this.#sessions) out.push({ client, ...s });
    return out.sort(compareSessions);
  }

  /** Replace the contents with `sessions`, which must be in `compareSessions` order. */
  load(sessions: readonly ClientSession[]): void {
    this.#sessions = new Map();
    for (const { client, seq, result, lastSeen } of sessions) {
      this.#sessions.set(client, { seq, result, lastSeen });
    }
    while (this.#sessions.size > this.#maxSessions) this.#evictOne();
  }

  // Evict the first session in compareSessions order other than `keep` (the one just recorded,
  // whose result its client has yet to receive): among the least recently seen (a prefix of the
  // map), the smallest client id — never the map's insertion order among equals, which a replica
  // restored from a snapshot would not share.
  #evictOne(keep?: string): void {
    let victim: string | undefined;
    let oldest = 0;
    for (const [client, s] of this.#sessions) {
      if (client === keep) continue;
      if (victim === undefined) {
        victim = client;
        oldest = s.lastSeen;
      } else if (s.lastSeen !== oldest) {
        break;
      } else if (compareKeys(client, victim) < 0) {
        victim = client;
      }
    }
    if (victim !== undefined) this.#sessions.delete(victim);
  }
}
