/**
 * The replicated key-value store: a `StateMachine` for `RaftNode`. Pure and deterministic — no
 * I/O, no clock, no randomness — so every replica that applies the same commands at the same log
 * indexes holds the same state and produces byte-identical snapshots. Every replica must also be
 * built with the same options (limits, history and session bounds), which shape results.
 *
 * - Keys carry revisions that are log indexes: `revision` (last write), `createRevision`,
 *   `version` (writes since creation). A missing key has revision 0.
 * - Writes: put, delete, append, with compare-and-swap on the revision or create-only.
 * - Reads: get, range by prefix (sorted, paged), changes since a revision, and live watches that
 *   replay the retained history first; a revision older than the history is an explicit
 *   `KvCompactedError`, never a silent gap.
 * - Sessions (client id + sequence number) make retries exactly-once; they expire on the state
 *   machine's clock (the largest `ts` applied) and are part of the snapshot.
 *
 * @module
 */
import type { StateMachine } from "../node/raft_node.ts";
import {
  type CborMap,
  decodeCbor,
  encodeCbor,
  readArray,
  readBytes,
  readInteger,
  readMap,
  readText,
  required,
} from "./kv_cbor.ts";
import {
  decodeKvCommand,
  decodeKvWriteResult,
  encodeKvWriteResult,
  type KvCommand,
  type KvLimits,
  type KvWriteResult,
  resolveKvLimits,
} from "./kv_command.ts";
import { KvCommandError, KvCompactedError, KvSnapshotError } from "./kv_errors.ts";
import { ChangeHistory } from "./kv_history.ts";
import {
  decodeKvQuery,
  encodeKvQueryResult,
  type KvChange,
  type KvChangesPage,
  type KvEntry,
  type KvQuery,
  type KvQueryResult,
  type KvRangePage,
  validateKvQuery,
} from "./kv_query.ts";
import { type ClientSession, compareSessions, SessionTable } from "./kv_sessions.ts";
import { compareKeys, SortedKeys } from "./kv_sorted_keys.ts";

/** The snapshot format this version writes and reads. */
export const KV_SNAPSHOT_FORMAT = 1;

/** Options of a `KvStateMachine`. Every replica of a cluster must use the same. */
export interface KvStateMachineOptions {
  /** Key, value and client id size limits (`DEFAULT_KV_LIMITS`). */
  readonly limits?: Partial<KvLimits>;
  /** Most changes the history retains for watches. Default 10,000; 0 keeps none. */
  readonly maxHistoryChanges?: number;
  /** Most bytes (keys and values) the history retains. Default 16 MiB. */
  readonly maxHistoryBytes?: number;
  /** A session not heard from for this long (state machine clock) expires. Default 10 minutes. */
  readonly sessionTtlMs?: number;
  /** Most sessions; past it, the least recently seen is dropped. Default 100,000. */
  readonly maxSessions?: number;
  /** Most entries or changes in one page of a range or changes query. Default 1,000. */
  readonly maxResultEntries?: number;
  /** Most bytes of keys and values in one page (always at least one entry). Default 4 MiB. */
  readonly maxResultBytes?: number;
}

interface ResolvedOptions {
  readonly limits: KvLimits;
  readonly maxHistoryChanges: number;
  readonly maxHistoryBytes: number;
  readonly sessionTtlMs: number;
  readonly maxSessions: number;
  readonly maxResultEntries: number;
  readonly maxResultBytes: number;
}

function resolveOptions(o: KvStateMachineOptions): ResolvedOptions {
  const r = {
    limits: resolveKvLimits(o.limits),
    maxHistoryChanges: o.maxHistoryChanges ?? 10_000,
    maxHistoryBytes: o.maxHistoryBytes ?? 16 * 1024 * 1024,
    sessionTtlMs: o.sessionTtlMs ?? 10 * 60 * 1000,
    maxSessions: o.maxSessions ?? 100_000,
    maxResultEntries: o.maxResultEntries ?? 1000,
    maxResultBytes: o.maxResultBytes ?? 4 * 1024 * 1024,
  };
  const least: [keyof Omit<ResolvedOptions, "limits">, number][] = [
    ["maxHistoryChanges", 0],
    ["maxHistoryBytes", 0],
    ["sessionTtlMs", 0],
    ["maxSessions", 1],
    ["maxResultEntries", 1],
    ["maxResultBytes", 1],
  ];
  for (const [name, min] of least) {
    const v = r[name];
    if (!Number.isSafeInteger(v) || v < min) {
      throw new RangeError(`KvStateMachineOptions.${name} must be an integer ≥ ${min}, got ${v}`);
    }
  }
  return r;
}

/**
 * What a watch delivers: each change under its prefix, in revision order, or — only after the
 * state was replaced by a snapshot whose history no longer reaches back to the watcher's
 * position — `compacted`, which ends the watch.
 */
export type KvWatchEvent =
  | { readonly type: "change"; readonly change: KvChange }
  | { readonly type: "compacted"; readonly oldestRevision: number };

/**
 * Receives a watch's events, synchronously, while a command is applied. It must not throw; if
 * it does, its watch ends and the error is rethrown from a microtask, never into `apply`.
 */
export type KvWatchListener = (event: KvWatchEvent) => void;

/** Options of `KvStateMachine.watch`. */
export interface KvWatchOptions {
  /** Ends the watch when aborted (an HTTP request's signal, say). */
  readonly signal?: AbortSignal;
}

/** Options of `KvStateMachine.range`. */
export interface KvRangeOptions {
  /** Start at this key (inclusive): the previous page's `next`. */
  readonly from?: string;
  /** Most entries (capped by `maxResultEntries`). */
  readonly limit?: number;
}

interface StoredEntry {
  readonly value: Uint8Array;
  readonly revision: number;
  readonly createRevision: number;
  readonly version: number;
}

interface Watcher {
  readonly prefix: string;
  readonly listener: KvWatchListener;
  /** The next revision this watcher may be delivered (every earlier one it had, or skipped). */
  next: number;
}

const EMPTY = new Uint8Array(0);

/**
 * The KV store as a Raft state machine. Pass one to `RaftNode.start({ stateMachine })`; propose
 * `encodeKvCommand(...)` and read with `encodeKvQuery(...)`. The typed methods (`get`, `range`,
 * `changesSince`, `watch`) read this replica's state directly — for linearizable reads go
 * through `RaftNode.read`.
 *
 * @example
 * ```ts
 * const kv = new KvStateMachine();
 * kv.apply(encodeKvCommand({ op: "put", key: "a", value: new Uint8Array([1]) }), 1);
 * kv.get("a"); // { key: "a", value: Uint8Array [1], revision: 1, createRevision: 1, version: 1 }
 * ```
 */
export class KvStateMachine implements StateMachine {
  readonly #options: ResolvedOptions;
  #data = new Map<string, StoredEntry>();
  #keys = new SortedKeys();
  #history: ChangeHistory;
  #sessions: SessionTable;
  #appliedIndex = 0;
  #clock = 0;
  readonly #watchers = new Set<Watcher>();

  /**
   * An empty store.
   *
   * @throws {RangeError} when an option is out of range.
   */
  constructor(options: KvStateMachineOptions = {}) {
    this.#options = resolveOptions(options);
    this.#history = this.#newHistory(0);
    this.#sessions = this.#newSessions();
  }

  /** The limits commands are checked against. */
  get limits(): KvLimits {
    return this.#options.limits;
  }

  /** The last log index applied (or restored); 0 for an empty store. */
  get appliedIndex(): number {
    return this.#appliedIndex;
  }

  /** The state machine's clock: the largest command `ts` applied, in ms (0 before any). */
  get clock(): number {
    return this.#clock;
  }

  /** The oldest revision a watch or `changesSince` can start from. */
  get oldestRevision(): number {
    return this.#history.oldestRevision;
  }

  /** Number of keys. */
  get keyCount(): number {
    return this.#data.size;
  }

  /** Number of live client sessions. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Number of changes the history retains. */
  get historyLength(): number {
    return this.#history.length;
  }

  // ---- StateMachine --------------------------------------------------------------------------

  /**
   * Apply one committed command at log index `index` and return its encoded `KvWriteResult`.
   * Never throws for a bad command (that is replicated, so every replica answers it the same
   * way: an `invalid` result).
   *
   * @throws {RangeError} when `index` is not above the last applied index (a driver bug).
   */
  apply(command: Uint8Array, index: number): Uint8Array {
    if (!Number.isSafeInteger(index) || index <= this.#appliedIndex) {
      throw new RangeError(
        `KvStateMachine.apply: index ${index} is not above the last applied index ${this.#appliedIndex}`,
      );
    }
    this.#appliedIndex = index;
    let cmd: KvCommand;
    try {
      cmd = decodeKvCommand(command, this.#options.limits);
    } catch (e) {
      if (!(e instanceof KvCommandError)) throw e;
      return encodeKvWriteResult({
        status: "invalid",
        reason: e.reason,
        field: e.field,
        message: e.message,
      });
    }
    if (cmd.ts !== undefined && cmd.ts > this.#clock) this.#clock = cmd.ts;
    this.#sessions.expire(this.#clock);
    const session = cmd.session;
    if (session) {
      const known = this.#sessions.get(session.client);
      if (known && session.seq <= known.seq) {
        this.#sessions.touch(session.client, this.#clock);
        // A copy: the cached bytes are part of the state, the caller may keep what it gets.
        return session.seq === known.seq
          ? known.result.slice()
          : encodeKvWriteResult({ status: "stale-sequence", lastSeq: known.seq });
      }
    }
    const result = encodeKvWriteResult(this.#execute(cmd, index));
    if (session) this.#sessions.record(session.client, session.seq, result, this.#clock);
    return result.slice();
  }

  /**
   * Apply a typed command at `index` (tests and in-process use; a replicated store applies what
   * `RaftNode` hands it).
   */
  applyCommand(command: KvCommand, index: number): KvWriteResult {
    return decodeKvWriteResult(this.apply(encodeCbor(commandForWire(command)), index));
  }

  /**
   * Answer an encoded `KvQuery` with its encoded `KvQueryResult` (a `changes` query older than
   * the history gets a `compacted` result).
   *
   * @throws {KvCommandError} when the query does not decode or validate.
   */
  query(query: Uint8Array): Uint8Array {
    return encodeKvQueryResult(this.answer(decodeKvQuery(query, this.#options.limits)));
  }

  /**
   * Answer a typed query.
   *
   * @throws {KvCommandError} when the query does not validate.
   */
  answer(query: KvQuery): KvQueryResult {
    const q = validateKvQuery(query, this.#options.limits);
    const appliedIndex = this.#appliedIndex;
    switch (q.op) {
      case "get": {
        const entry = this.get(q.key);
        return entry ? { status: "ok", op: "get", appliedIndex, entry } : {
          status: "ok",
          op: "get",
          appliedIndex,
        };
      }
      case "range":
        return { status: "ok", op: "range", appliedIndex, ...this.range(q.prefix, q) };
      case "changes":
        try {
          return {
            status: "ok",
            op: "changes",
            appliedIndex,
            ...this.changesSince(q.prefix, q.fromRevision, q.limit),
          };
        } catch (e) {
          if (!(e instanceof KvCompactedError)) throw e;
          return {
            status: "compacted",
            op: "changes",
            appliedIndex,
            oldestRevision: e.oldestRevision,
          };
        }
    }
  }

  // ---- typed reads ---------------------------------------------------------------------------

  /** The entry of `key` (its value a copy), or undefined when there is none. */
  get(key: string): KvEntry | undefined {
    const e = this.#data.get(key);
    return e && entryOf(key, e);
  }

  /**
   * Entries whose key starts with `prefix`, in key order (`compareKeys`), from `options.from`
   * on, at most `limit` (capped by `maxResultEntries`) and `maxResultBytes` of keys and values
   * (but always one entry, if any). Values are copies.
   *
   * @throws {KvCommandError} when `prefix`, `from` or `limit` is invalid.
   */
  range(prefix: string, options: KvRangeOptions = {}): KvRangePage {
    const q = validateKvQuery(
      { op: "range", prefix, from: options.from, limit: options.limit },
      this.#options.limits,
    ) as Extract<KvQuery, { op: "range" }>;
    const limit = Math.min(q.limit ?? Infinity, this.#options.maxResultEntries);
    const start = q.from !== undefined && compareKeys(q.from, prefix) > 0 ? q.from : prefix;
    const entries: KvEntry[] = [];
    let bytes = 0;
    for (const key of this.#keys.from(start)) {
      if (!key.startsWith(prefix)) break;
      const e = this.#data.get(key)!;
      const size = key.length + e.value.length;
      if (
        entries.length >= limit ||
        (entries.length > 0 && bytes + size > this.#options.maxResultBytes)
      ) {
        return { entries, next: key };
      }
      entries.push(entryOf(key, e));
      bytes += size;
    }
    return { entries };
  }

  /**
   * Changes under `prefix` with revision ≥ `fromRevision`, in revision order, at most `limit`
   * (capped by `maxResultEntries`) and `maxResultBytes`. `next` is where the following page
   * starts. Values are copies.
   *
   * @throws {KvCompactedError} when `fromRevision` is older than the retained history.
   * @throws {KvCommandError} when an argument is invalid.
   */
  changesSince(prefix: string, fromRevision: number, limit?: number): KvChangesPage {
    const q = validateKvQuery(
      { op: "changes", prefix, fromRevision, limit },
      this.#options.limits,
    ) as Extract<KvQuery, { op: "changes" }>;
    const page = this.#history.since(
      q.prefix,
      q.fromRevision,
      Math.min(q.limit ?? Infinity, this.#options.maxResultEntries),
      this.#options.maxResultBytes,
      this.#appliedIndex,
    );
    return {
      changes: page.changes.map((c) => c.kind === "put" ? { ...c, value: c.value.slice() } : c),
      next: page.next,
    };
  }

  /**
   * Watch changes under `prefix` from `fromRevision` on: the retained ones at once (before this
   * returns), then each new one as it is applied, in revision order, without gaps or repeats.
   * Pass `appliedIndex + 1` to get only new changes. Events hold the store's own values: treat
   * them as read-only. Ends when the returned function is called or `options.signal` aborts
   * (the way to stop from inside the listener during the replay, before this has returned).
   *
   * @throws {KvCompactedError} when `fromRevision` is older than the retained history.
   * @throws {KvCommandError} when `prefix` or `fromRevision` is invalid.
   */
  watch(
    prefix: string,
    fromRevision: number,
    listener: KvWatchListener,
    options: KvWatchOptions = {},
  ): () => void {
    validateKvQuery({ op: "changes", prefix, fromRevision }, this.#options.limits);
    this.#history.assertRetained(fromRevision);
    const signal = options.signal;
    if (signal?.aborted) return () => {};
    const w: Watcher = { prefix, listener, next: fromRevision };
    const unsubscribe = () => {
      this.#watchers.delete(w);
      signal?.removeEventListener("abort", unsubscribe);
    };
    signal?.addEventListener("abort", unsubscribe, { once: true });
    this.#watchers.add(w);
    this.#replay(w);
    return unsubscribe;
  }

  /** Number of active watches. */
  get watchCount(): number {
    return this.#watchers.size;
  }

  // ---- snapshots -----------------------------------------------------------------------------

  /**
   * The whole state as CBOR: keys, sessions, retained history, clock and applied index, in a
   * canonical order, so replicas with equal state produce equal bytes. Hand it to
   * `RaftNode.compact(kv.appliedIndex or later, bytes)`.
   */
  snapshot(): Uint8Array {
    const data: unknown[] = [];
    for (const key of this.#keys) {
      const e = this.#data.get(key)!;
      data.push([key, e.value, e.revision, e.createRevision, e.version]);
    }
    const history: unknown[] = [];
    for (const c of this.#history.from(0)) {
      history.push(c.kind === "put" ? [c.revision, c.key, c.value] : [c.revision, c.key]);
    }
    const sessions = this.#sessions.sorted().map((s) => [s.client, s.seq, s.lastSeen, s.result]);
    return encodeCbor({
      clock: this.#clock,
      compactedThrough: this.#history.compactedThrough,
      data,
      format: KV_SNAPSHOT_FORMAT,
      history,
      index: this.#appliedIndex,
      sessions,
    });
  }

  /**
   * Replace the whole state with a snapshot's, as of log index `index` (default: the index the
   * snapshot records). Watches continue from the restored history where it reaches back to
   * their position, and get a `compacted` event otherwise.
   *
   * @throws {KvSnapshotError} when `data` is not a valid snapshot, or records an index above
   * `index` (it would hold writes the log will apply again); the state is then unchanged.
   */
  restore(data: Uint8Array, index?: number): void {
    let s: DecodedSnapshot;
    try {
      s = this.#decodeSnapshot(data);
    } catch (e) {
      if (e instanceof KvCommandError) throw new KvSnapshotError(e.field, e.detail);
      throw e;
    }
    if (index !== undefined && (!Number.isSafeInteger(index) || index < s.index)) {
      throw new KvSnapshotError("index", `records index ${s.index}, restored at ${index}`);
    }
    const seenThrough = this.#appliedIndex;
    this.#data = s.data;
    this.#keys = s.keys;
    this.#history = s.history;
    this.#sessions = s.sessions;
    this.#clock = s.clock;
    this.#appliedIndex = index ?? s.index;
    for (const w of [...this.#watchers]) {
      // Replays finish synchronously, so a watcher has had every change up to the old index.
      w.next = Math.max(w.next, seenThrough + 1);
      if (w.next <= this.#history.compactedThrough) {
        this.#watchers.delete(w);
        this.#deliver(w, { type: "compacted", oldestRevision: this.#history.oldestRevision });
      } else {
        this.#replay(w);
      }
    }
  }

  // ---- internals -----------------------------------------------------------------------------

  #newHistory(compactedThrough: number): ChangeHistory {
    return new ChangeHistory(
      { maxChanges: this.#options.maxHistoryChanges, maxBytes: this.#options.maxHistoryBytes },
      compactedThrough,
    );
  }

  #newSessions(): SessionTable {
    return new SessionTable(this.#options.sessionTtlMs, this.#options.maxSessions);
  }

  #execute(cmd: KvCommand, index: number): KvWriteResult {
    const key = cmd.key;
    const cur = this.#data.get(key);
    const curRevision = cur?.revision ?? 0;
    if (cmd.op !== "append" && cmd.condition) {
      const holds = "revision" in cmd.condition
        ? cmd.condition.revision === curRevision
        : cur === undefined;
      if (!holds) return { status: "failed-condition", revision: curRevision };
    }
    switch (cmd.op) {
      case "put":
        return this.#write(key, cmd.value, cur, index);
      case "append": {
        const old = cur?.value ?? EMPTY;
        const max = this.#options.limits.maxValueBytes;
        if (old.length + cmd.value.length > max) {
          return {
            status: "invalid",
            reason: "too-large",
            field: "value",
            message:
              `value: appending ${cmd.value.length} bytes to ${old.length} exceeds the limit of ${max}`,
          };
        }
        const value = new Uint8Array(old.length + cmd.value.length);
        value.set(old);
        value.set(cmd.value, old.length);
        return this.#write(key, value, cur, index);
      }
      case "delete":
        if (!cur) {
          return { status: "ok", revision: 0, prevRevision: 0, createRevision: 0, version: 0 };
        }
        this.#data.delete(key);
        this.#keys.delete(key);
        this.#record({ revision: index, key, kind: "delete" });
        return {
          status: "ok",
          revision: index,
          prevRevision: cur.revision,
          createRevision: 0,
          version: 0,
        };
    }
  }

  #write(
    key: string,
    value: Uint8Array,
    cur: StoredEntry | undefined,
    index: number,
  ): KvWriteResult {
    const entry: StoredEntry = {
      value,
      revision: index,
      createRevision: cur?.createRevision ?? index,
      version: (cur?.version ?? 0) + 1,
    };
    if (!cur) this.#keys.insert(key);
    this.#data.set(key, entry);
    this.#record({ revision: index, key, kind: "put", value });
    return {
      status: "ok",
      revision: index,
      prevRevision: cur?.revision ?? 0,
      createRevision: entry.createRevision,
      version: entry.version,
    };
  }

  #record(change: KvChange): void {
    this.#history.push(change);
    // A Set iterates entries added during the loop too; a watcher added by a listener starts
    // past this change (its replay included it), so `next` keeps it from a repeat.
    for (const w of this.#watchers) {
      if (change.revision < w.next || !change.key.startsWith(w.prefix)) continue;
      w.next = change.revision + 1;
      this.#deliver(w, { type: "change", change });
    }
  }

  #replay(w: Watcher): void {
    for (const change of this.#history.from(w.next)) {
      if (!this.#watchers.has(w)) return; // unsubscribed by its own listener
      if (!change.key.startsWith(w.prefix)) continue;
      w.next = change.revision + 1;
      this.#deliver(w, { type: "change", change });
    }
  }

  #deliver(w: Watcher, event: KvWatchEvent): void {
    try {
      w.listener(event);
    } catch (error) {
      this.#watchers.delete(w);
      queueMicrotask(() => {
        throw error;
      });
    }
  }

  #decodeSnapshot(bytes: Uint8Array): DecodedSnapshot {
    const limits = this.#options.limits;
    const m = readMap(
      decodeCbor(bytes, "snapshot"),
      "snapshot",
      ["clock", "compactedThrough", "data", "format", "history", "index", "sessions"],
      "a KV snapshot",
      true,
    );
    const format = readInteger(required(m, "format", ""), "format", 0);
    if (format !== KV_SNAPSHOT_FORMAT) {
      throw new KvCommandError(
        "format",
        `unsupported format ${format} (this version reads ${KV_SNAPSHOT_FORMAT})`,
      );
    }
    const index = readInteger(required(m, "index", ""), "index", 0);
    const clock = readInteger(required(m, "clock", ""), "clock", 0);
    const compactedThrough = readInteger(
      required(m, "compactedThrough", ""),
      "compactedThrough",
      0,
    );
    if (compactedThrough > index) {
      throw new KvCommandError(
        "compactedThrough",
        `${compactedThrough} is above the index ${index}`,
      );
    }
    const revisionAt = (v: unknown, field: string, min: number) => {
      const r = readInteger(v, field, min);
      if (r > index) throw new KvCommandError(field, `${r} is above the snapshot's index ${index}`);
      return r;
    };
    const keyRule = { maxBytes: limits.maxKeyBytes, allowEmpty: false };

    const data = new Map<string, StoredEntry>();
    const keys: string[] = [];
    readArray(required(m, "data", ""), "data").forEach((item, i) => {
      const f = `data[${i}]`;
      const t = tuple(item, f, 5, 5);
      const key = readText(t[0], `${f}.key`, keyRule);
      if (keys.length > 0 && compareKeys(keys[keys.length - 1], key) >= 0) {
        throw new KvCommandError(`${f}.key`, "keys are not in strictly ascending order");
      }
      const revision = revisionAt(t[2], `${f}.revision`, 1);
      const createRevision = readInteger(t[3], `${f}.createRevision`, 1);
      if (createRevision > revision) {
        throw new KvCommandError(`${f}.createRevision`, "is above the key's revision");
      }
      keys.push(key);
      data.set(key, {
        value: readBytes(t[1], `${f}.value`, limits.maxValueBytes),
        revision,
        createRevision,
        version: readInteger(t[4], `${f}.version`, 1),
      });
    });

    const history = this.#newHistory(compactedThrough);
    let lastRevision = compactedThrough;
    readArray(required(m, "history", ""), "history").forEach((item, i) => {
      const f = `history[${i}]`;
      const t = tuple(item, f, 2, 3);
      const revision = revisionAt(t[0], `${f}.revision`, lastRevision + 1);
      lastRevision = revision;
      const key = readText(t[1], `${f}.key`, keyRule);
      history.push(
        t.length === 3
          ? {
            revision,
            key,
            kind: "put",
            value: readBytes(t[2], `${f}.value`, limits.maxValueBytes),
          }
          : { revision, key, kind: "delete" },
      );
    });

    const sessions: ClientSession[] = [];
    readArray(required(m, "sessions", ""), "sessions").forEach((item, i) => {
      const f = `sessions[${i}]`;
      const t = tuple(item, f, 4, 4);
      const s: ClientSession = {
        client: readText(t[0], `${f}.client`, {
          maxBytes: limits.maxClientIdBytes,
          allowEmpty: false,
        }),
        seq: readInteger(t[1], `${f}.seq`, 0),
        lastSeen: readInteger(t[2], `${f}.lastSeen`, 0),
        result: readBytes(t[3], `${f}.result`, Number.MAX_SAFE_INTEGER),
      };
      if (s.lastSeen > clock) throw new KvCommandError(`${f}.lastSeen`, "is after the clock");
      if (sessions.length > 0 && compareSessions(sessions[sessions.length - 1], s) >= 0) {
        throw new KvCommandError(f, "sessions are not in strictly ascending order");
      }
      try {
        decodeKvWriteResult(s.result);
      } catch (e) {
        throw new KvCommandError(`${f}.result`, e instanceof Error ? e.message : String(e));
      }
      sessions.push(s);
    });
    const table = this.#newSessions();
    table.load(sessions);
    table.expire(clock);

    return { index, clock, data, keys: SortedKeys.fromSorted(keys), history, sessions: table };
  }
}

interface DecodedSnapshot {
  readonly index: number;
  readonly clock: number;
  readonly data: Map<string, StoredEntry>;
  readonly keys: SortedKeys;
  readonly history: ChangeHistory;
  readonly sessions: SessionTable;
}

function tuple(value: unknown, field: string, min: number, max: number): unknown[] {
  const t = readArray(value, field);
  if (t.length < min || t.length > max) {
    const want = min === max ? `${min}` : `${min} to ${max}`;
    throw new KvCommandError(field, `expected ${want} items, got ${t.length}`);
  }
  return t;
}

function entryOf(key: string, e: StoredEntry): KvEntry {
  return {
    key,
    value: e.value.slice(),
    revision: e.revision,
    createRevision: e.createRevision,
    version: e.version,
  };
}

// The wire form of a typed command, for `applyCommand`; `apply` validates it like any other.
function commandForWire(c: KvCommand): CborMap {
  const w: CborMap = { ...c };
  for (const k of Object.keys(w)) if (w[k] === undefined) delete w[k];
  return w;
}
