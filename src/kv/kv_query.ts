/**
 * The KV store's read-only queries (what `RaftNode.read` carries to `KvStateMachine.query`) and
 * their results, as CBOR maps with alphabetical keys.
 *
 * | query     | fields                                                        |
 * | --------- | ------------------------------------------------------------- |
 * | `get`     | `key`                                                         |
 * | `range`   | `prefix` (may be ""), `from`? (first key, inclusive), `limit`? |
 * | `changes` | `prefix`, `fromRevision` (≥ 1), `limit`?                      |
 *
 * Every result carries `status` (`"ok"`, or `"compacted"` for `changes`), `op` (the query's)
 * and `appliedIndex`: the last log index the state reflects.
 *
 * @module
 */
import {
  type CborMap,
  decodeCbor,
  encodeCbor,
  readArray,
  readBytes,
  readEnum,
  readInteger,
  readMap,
  readText,
  required,
} from "./kv_cbor.ts";
import { type KvLimits, resolveKvLimits } from "./kv_command.ts";
import { KvCommandError } from "./kv_errors.ts";

/** Read one key. */
export interface KvGetQuery {
  /** Discriminator. */
  readonly op: "get";
  /** The key. */
  readonly key: string;
}

/** List keys under a prefix, sorted (see `compareKeys`), one page at a time. */
export interface KvRangeQuery {
  /** Discriminator. */
  readonly op: "range";
  /** Only keys starting with this ("" for all keys). */
  readonly prefix: string;
  /** Start at this key (inclusive): the previous page's `next`. Default: the first key. */
  readonly from?: string;
  /** Most entries in the page; the state machine caps it (`maxResultEntries`). */
  readonly limit?: number;
}

/** Changes under a prefix with revision ≥ `fromRevision`, in revision order (a watch, polled). */
export interface KvChangesQuery {
  /** Discriminator. */
  readonly op: "changes";
  /** Only changes of keys starting with this ("" for all keys). */
  readonly prefix: string;
  /** The first revision wanted (≥ 1): the previous page's `next`. */
  readonly fromRevision: number;
  /** Most changes in the page; the state machine caps it (`maxResultEntries`). */
  readonly limit?: number;
}

/** A read-only query of the KV store. */
export type KvQuery = KvGetQuery | KvRangeQuery | KvChangesQuery;

/** The operations of `KvQuery`. */
export const KV_QUERY_OPS: readonly KvQuery["op"][] = Object.freeze(["get", "range", "changes"]);

/** One key as stored. Revisions are log indexes. */
export interface KvEntry {
  /** The key. */
  readonly key: string;
  /** The value. */
  readonly value: Uint8Array;
  /** The revision of the last write to the key (its HTTP ETag). */
  readonly revision: number;
  /** The revision that created the key (after its last delete, if any). */
  readonly createRevision: number;
  /** Writes to the key since it was created, the creating one included. */
  readonly version: number;
}

/** A key was written (put or append): `value` is its whole new value. */
export interface KvPutChange {
  /** The write's revision (log index); a revision has at most one change. */
  readonly revision: number;
  /** The key. */
  readonly key: string;
  /** Discriminator. */
  readonly kind: "put";
  /** The key's value after the write. */
  readonly value: Uint8Array;
}

/** A key was deleted. */
export interface KvDeleteChange {
  /** The deletion's revision (log index). */
  readonly revision: number;
  /** The key. */
  readonly key: string;
  /** Discriminator. */
  readonly kind: "delete";
}

/** One change in the store's history: what a watch delivers. */
export type KvChange = KvPutChange | KvDeleteChange;

/** One page of a range listing. */
export interface KvRangePage {
  /** Entries in key order. */
  readonly entries: readonly KvEntry[];
  /** When there are more: the key to pass as `from` for the next page. */
  readonly next?: string;
}

/** One page of changes. */
export interface KvChangesPage {
  /** Changes in revision order. */
  readonly changes: readonly KvChange[];
  /**
   * The revision to ask from next: one past the last change returned when the page is full,
   * otherwise one past the state's applied index (every change up to it was scanned).
   */
  readonly next: number;
}

/** Result of a `get`. */
export interface KvGetResult {
  /** Discriminator. */
  readonly status: "ok";
  /** Discriminator. */
  readonly op: "get";
  /** The last log index the state reflects. */
  readonly appliedIndex: number;
  /** The key, when it exists. */
  readonly entry?: KvEntry;
}

/** Result of a `range`. */
export interface KvRangeResult extends KvRangePage {
  /** Discriminator. */
  readonly status: "ok";
  /** Discriminator. */
  readonly op: "range";
  /** The last log index the state reflects. */
  readonly appliedIndex: number;
}

/** Result of a `changes` query whose revision is retained. */
export interface KvChangesResult extends KvChangesPage {
  /** Discriminator. */
  readonly status: "ok";
  /** Discriminator. */
  readonly op: "changes";
  /** The last log index the state reflects. */
  readonly appliedIndex: number;
}

/** Result of a `changes` query older than the retained history (HTTP: 410 Gone). */
export interface KvCompactedResult {
  /** Discriminator. */
  readonly status: "compacted";
  /** Discriminator. */
  readonly op: "changes";
  /** The last log index the state reflects. */
  readonly appliedIndex: number;
  /** The oldest revision from which every change is still retained. */
  readonly oldestRevision: number;
}

/** What `KvStateMachine.query` answers. */
export type KvQueryResult = KvGetResult | KvRangeResult | KvChangesResult | KvCompactedResult;

// ---- queries ---------------------------------------------------------------------------------

/**
 * Validate `query` and encode it for `RaftNode.read`.
 *
 * @throws {KvCommandError} naming the first invalid field.
 */
export function encodeKvQuery(query: KvQuery, limits?: Partial<KvLimits>): Uint8Array {
  const q = readQuery(query, resolveKvLimits(limits));
  const w: CborMap = {};
  switch (q.op) {
    case "get":
      w.key = q.key;
      w.op = q.op;
      break;
    case "range":
      if (q.from !== undefined) w.from = q.from;
      if (q.limit !== undefined) w.limit = q.limit;
      w.op = q.op;
      w.prefix = q.prefix;
      break;
    case "changes":
      w.fromRevision = q.fromRevision;
      if (q.limit !== undefined) w.limit = q.limit;
      w.op = q.op;
      w.prefix = q.prefix;
      break;
  }
  return encodeCbor(w);
}

/**
 * Decode and validate a query (as `KvStateMachine.query` does).
 *
 * @throws {KvCommandError} naming the first invalid field.
 */
export function decodeKvQuery(bytes: Uint8Array, limits?: Partial<KvLimits>): KvQuery {
  const resolved = resolveKvLimits(limits);
  const maxBytes = 2 * resolved.maxKeyBytes + 256;
  if (bytes.length > maxBytes) {
    throw new KvCommandError(
      "query",
      `${bytes.length} bytes exceed the largest valid query (${maxBytes})`,
      "too-large",
    );
  }
  return readQuery(decodeCbor(bytes, "query"), resolved);
}

/**
 * Check `query` (typed, or anything decoded) against the rules `query` uses and return a clean
 * copy.
 *
 * @throws {KvCommandError} naming the first invalid field.
 */
export function validateKvQuery(query: unknown, limits?: Partial<KvLimits>): KvQuery {
  return readQuery(query, resolveKvLimits(limits));
}

const QUERY_FIELDS: Record<KvQuery["op"], readonly string[]> = {
  get: ["op", "key"],
  range: ["op", "prefix", "from", "limit"],
  changes: ["op", "prefix", "fromRevision", "limit"],
};

const ALL_QUERY_FIELDS = [...new Set(Object.values(QUERY_FIELDS).flat())];

function readQuery(value: unknown, limits: KvLimits): KvQuery {
  const any = readMap(value, "query", ALL_QUERY_FIELDS, "a query", true);
  const op = readEnum(required(any, "op", ""), "op", KV_QUERY_OPS);
  const m = readMap(value, "query", QUERY_FIELDS[op], `a ${op} query`, true);
  const keyRule = { maxBytes: limits.maxKeyBytes, allowEmpty: false };
  const prefixRule = { maxBytes: limits.maxKeyBytes, allowEmpty: true };
  const limit = m.limit === undefined ? {} : { limit: readInteger(m.limit, "limit", 1) };
  switch (op) {
    case "get":
      return { op, key: readText(required(m, "key", ""), "key", keyRule) };
    case "range": {
      const prefix = readText(required(m, "prefix", ""), "prefix", prefixRule);
      const from = m.from === undefined ? {} : { from: readText(m.from, "from", prefixRule) };
      return { op, prefix, ...from, ...limit };
    }
    case "changes":
      return {
        op,
        prefix: readText(required(m, "prefix", ""), "prefix", prefixRule),
        fromRevision: readInteger(required(m, "fromRevision", ""), "fromRevision", 1),
        ...limit,
      };
  }
}

// ---- results ---------------------------------------------------------------------------------

/** Encode a query's result (what `KvStateMachine.query` returns). */
export function encodeKvQueryResult(result: KvQueryResult): Uint8Array {
  const w: CborMap = { appliedIndex: result.appliedIndex };
  switch (result.op) {
    case "get":
      if (result.entry) w.entry = entryToWire(result.entry);
      break;
    case "range":
      w.entries = result.entries.map(entryToWire);
      if (result.next !== undefined) w.next = result.next;
      break;
    case "changes":
      if (result.status === "ok") {
        w.changes = result.changes.map(changeToWire);
        w.next = result.next;
      } else {
        w.oldestRevision = result.oldestRevision;
      }
      break;
  }
  w.op = result.op;
  w.status = result.status;
  return encodeCbor(w);
}

function entryToWire(e: KvEntry): CborMap {
  return {
    createRevision: e.createRevision,
    key: e.key,
    revision: e.revision,
    value: e.value,
    version: e.version,
  };
}

function changeToWire(c: KvChange): CborMap {
  return c.kind === "put"
    ? { key: c.key, kind: c.kind, revision: c.revision, value: c.value }
    : { key: c.key, kind: c.kind, revision: c.revision };
}

const ANY_KEY = { maxBytes: Number.MAX_SAFE_INTEGER, allowEmpty: false };

/**
 * Decode what `RaftNode.read` resolved with for a KV query. Values come back as fresh copies.
 *
 * @throws {KvCommandError} when `bytes` is not a query result.
 */
export function decodeKvQueryResult(bytes: Uint8Array): KvQueryResult {
  const value = decodeCbor(bytes, "result");
  const all = ["status", "op", "appliedIndex", "entry", "entries", "changes", "next"];
  const head = readMap(value, "result", [...all, "oldestRevision"], "a query result", true);
  const status = readEnum(required(head, "status", ""), "status", ["ok", "compacted"] as const);
  const op = readEnum(required(head, "op", ""), "op", KV_QUERY_OPS);
  const appliedIndex = readInteger(required(head, "appliedIndex", ""), "appliedIndex", 0);
  if (status === "compacted") {
    if (op !== "changes") throw new KvCommandError("status", `a ${op} result is never compacted`);
    const m = readMap(
      value,
      "result",
      ["status", "op", "appliedIndex", "oldestRevision"],
      "a compacted result",
      true,
    );
    return {
      status,
      op,
      appliedIndex,
      oldestRevision: readInteger(required(m, "oldestRevision", ""), "oldestRevision", 1),
    };
  }
  switch (op) {
    case "get": {
      const m = readMap(
        value,
        "result",
        ["status", "op", "appliedIndex", "entry"],
        "a get result",
        true,
      );
      return m.entry === undefined
        ? { status, op, appliedIndex }
        : { status, op, appliedIndex, entry: readEntry(m.entry, "entry") };
    }
    case "range": {
      const m = readMap(
        value,
        "result",
        ["status", "op", "appliedIndex", "entries", "next"],
        "a range result",
        true,
      );
      const entries = readArray(required(m, "entries", ""), "entries")
        .map((e, i) => readEntry(e, `entries[${i}]`));
      return m.next === undefined
        ? { status, op, appliedIndex, entries }
        : { status, op, appliedIndex, entries, next: readText(m.next, "next", ANY_KEY) };
    }
    case "changes": {
      const m = readMap(
        value,
        "result",
        ["status", "op", "appliedIndex", "changes", "next"],
        "a changes result",
        true,
      );
      return {
        status,
        op,
        appliedIndex,
        changes: readArray(required(m, "changes", ""), "changes")
          .map((c, i) => readChange(c, `changes[${i}]`)),
        next: readInteger(required(m, "next", ""), "next", 1),
      };
    }
  }
}

function readEntry(value: unknown, field: string): KvEntry {
  const m = readMap(
    value,
    field,
    ["key", "value", "revision", "createRevision", "version"],
    "an entry",
  );
  return {
    key: readText(required(m, "key", field), `${field}.key`, ANY_KEY),
    value: readBytes(required(m, "value", field), `${field}.value`, Number.MAX_SAFE_INTEGER),
    revision: readInteger(required(m, "revision", field), `${field}.revision`, 1),
    createRevision: readInteger(required(m, "createRevision", field), `${field}.createRevision`, 1),
    version: readInteger(required(m, "version", field), `${field}.version`, 1),
  };
}

function readChange(value: unknown, field: string): KvChange {
  const m = readMap(value, field, ["revision", "key", "kind", "value"], "a change");
  const revision = readInteger(required(m, "revision", field), `${field}.revision`, 1);
  const key = readText(required(m, "key", field), `${field}.key`, ANY_KEY);
  const kind = readEnum(required(m, "kind", field), `${field}.kind`, ["put", "delete"] as const);
  if (kind === "delete") {
    if (Object.hasOwn(m, "value")) {
      throw new KvCommandError(`${field}.value`, "a delete change has no value");
    }
    return { revision, key, kind };
  }
  const v = readBytes(required(m, "value", field), `${field}.value`, Number.MAX_SAFE_INTEGER);
  return { revision, key, kind, value: v };
}
