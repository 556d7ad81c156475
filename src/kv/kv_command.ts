/**
 * The KV store's write commands and their results, and how both travel as CBOR (the bytes a
 * `RaftNode` replicates and hands back).
 *
 * A command is a CBOR map, keys in alphabetical order, absent fields left out:
 *
 * | field       | put         | delete      | append      | type                                      |
 * | ----------- | ----------- | ----------- | ----------- | ----------------------------------------- |
 * | `op`        | `"put"`     | `"delete"`  | `"append"`  | text                                      |
 * | `key`       | required    | required    | required    | text, 1..maxKeyBytes of UTF-8             |
 * | `value`     | required    | —           | required    | bytes, ≤ maxValueBytes                    |
 * | `condition` | optional    | optional    | —           | `{revision: uint}` or `{absent: true}`    |
 * | `session`   | optional    | optional    | optional    | `{client: text, seq: uint}`               |
 * | `ts`        | optional    | optional    | optional    | uint, the proposer's wall clock in ms     |
 *
 * A write result is a CBOR map led by `status` (see `KvWriteResult`).
 *
 * @module
 */
import {
  type CborMap,
  decodeCbor,
  encodeCbor,
  readBytes,
  readEnum,
  readInteger,
  readMap,
  readText,
  readTrue,
  required,
} from "./kv_cbor.ts";
import { KvCommandError, type KvCommandErrorReason } from "./kv_errors.ts";

export { KvCommandError } from "./kv_errors.ts";
export type { KvCommandErrorReason } from "./kv_errors.ts";

/** Size limits of keys, values and client ids. Every replica must use the same. */
export interface KvLimits {
  /** Longest key, in bytes of UTF-8. Default 4096. */
  readonly maxKeyBytes: number;
  /** Largest value, in bytes (an append may not grow a value past it either). Default 1 MiB. */
  readonly maxValueBytes: number;
  /** Longest session client id, in bytes of UTF-8. Default 256. */
  readonly maxClientIdBytes: number;
}

/** The limits used where none are given. */
export const DEFAULT_KV_LIMITS: KvLimits = Object.freeze({
  maxKeyBytes: 4096,
  maxValueBytes: 1024 * 1024,
  maxClientIdBytes: 256,
});

/**
 * `limits` completed with the defaults.
 *
 * @throws {RangeError} when a limit is not a positive safe integer.
 */
export function resolveKvLimits(limits: Partial<KvLimits> = {}): KvLimits {
  // Decoders resolve their limits on every call; a resolved set passes straight through.
  if (RESOLVED.has(limits)) return limits as KvLimits;
  const out = { ...DEFAULT_KV_LIMITS, ...limits };
  for (const [name, v] of Object.entries(out)) {
    if (!Number.isSafeInteger(v) || v < 1) {
      throw new RangeError(`KvLimits.${name} must be a positive integer, got ${v}`);
    }
  }
  const resolved = Object.freeze(out);
  RESOLVED.add(resolved);
  return resolved;
}

const RESOLVED = new WeakSet<object>([DEFAULT_KV_LIMITS]);

/**
 * A write's precondition. `{revision: n}`: the key's revision must be `n` (HTTP `If-Match`; a
 * missing key has revision 0, so `{revision: 0}` also means "absent"). `{absent: true}`: the key
 * must not exist (HTTP `If-None-Match: *`).
 */
export type KvCondition = { readonly revision: number } | { readonly absent: true };

/**
 * Who proposed a command, for exactly-once retries: commands of one client carry increasing
 * `seq` numbers; a command whose `seq` is not above the client's last applied one is not applied
 * again (see `KvWriteResult`).
 */
export interface KvSession {
  /** The client's id: any text, unique per client (a random UUID is a good choice). */
  readonly client: string;
  /** The command's sequence number within the client's session. */
  readonly seq: number;
}

/** What every command may carry besides its operation. */
export interface KvCommandMeta {
  /** The proposer's session, to make retries exactly-once. */
  readonly session?: KvSession;
  /**
   * The proposer's wall-clock time in ms. The state machine's clock is the largest `ts` it has
   * seen, which expires sessions identically on every replica. Proposers should always set it.
   */
  readonly ts?: number;
}

/** Set `key` to `value`, if `condition` holds. */
export interface KvPutCommand extends KvCommandMeta {
  /** Discriminator. */
  readonly op: "put";
  /** The key. */
  readonly key: string;
  /** The new value. */
  readonly value: Uint8Array;
  /** Precondition; none means unconditional. */
  readonly condition?: KvCondition;
}

/** Remove `key`, if `condition` holds. Removing a missing key succeeds and changes nothing. */
export interface KvDeleteCommand extends KvCommandMeta {
  /** Discriminator. */
  readonly op: "delete";
  /** The key. */
  readonly key: string;
  /** Precondition; none means unconditional. */
  readonly condition?: KvCondition;
}

/** Append `value` to `key`'s value (a missing key starts empty): the 6.5840 lab's Append. */
export interface KvAppendCommand extends KvCommandMeta {
  /** Discriminator. */
  readonly op: "append";
  /** The key. */
  readonly key: string;
  /** The bytes to append. */
  readonly value: Uint8Array;
}

/** A write command of the KV store. */
export type KvCommand = KvPutCommand | KvDeleteCommand | KvAppendCommand;

/** The operations of `KvCommand`. */
export const KV_COMMAND_OPS: readonly KvCommand["op"][] = Object.freeze([
  "put",
  "delete",
  "append",
]);

/**
 * Validate `command` against `limits` and encode it for `RaftNode.propose`.
 *
 * @throws {KvCommandError} naming the first invalid field.
 */
export function encodeKvCommand(command: KvCommand, limits?: Partial<KvLimits>): Uint8Array {
  // Validating the typed value with the decoder's own rules means a command that encodes is one
  // every replica accepts.
  return encodeCbor(commandToWire(readCommand(command, resolveKvLimits(limits))));
}

/**
 * Decode and validate a command (as `KvStateMachine.apply` does).
 *
 * @throws {KvCommandError} naming the first invalid field.
 */
export function decodeKvCommand(bytes: Uint8Array, limits?: Partial<KvLimits>): KvCommand {
  const resolved = resolveKvLimits(limits);
  // The largest valid command is a maximal key and value plus a few hundred bytes of fields.
  const maxBytes = resolved.maxKeyBytes + resolved.maxValueBytes + resolved.maxClientIdBytes + 256;
  if (bytes.length > maxBytes) {
    throw new KvCommandError(
      "command",
      `${bytes.length} bytes exceed the largest valid command (${maxBytes})`,
      "too-large",
    );
  }
  return readCommand(decodeCbor(bytes, "command"), resolved);
}

/**
 * Check `command` (typed, or anything decoded from JSON or CBOR) against the rules `apply` uses
 * and return a clean copy: what the HTTP layer calls on user input before proposing.
 *
 * @throws {KvCommandError} naming the first invalid field.
 */
export function validateKvCommand(command: unknown, limits?: Partial<KvLimits>): KvCommand {
  return readCommand(command, resolveKvLimits(limits));
}

const COMMAND_FIELDS: Record<KvCommand["op"], readonly string[]> = {
  put: ["op", "key", "value", "condition", "session", "ts"],
  delete: ["op", "key", "condition", "session", "ts"],
  append: ["op", "key", "value", "session", "ts"],
};

function readCommand(value: unknown, limits: KvLimits): KvCommand {
  const any = readMap(value, "command", COMMAND_FIELDS.put, "a command", true);
  const op = readEnum(required(any, "op", ""), "op", KV_COMMAND_OPS);
  const map = readMap(value, "command", COMMAND_FIELDS[op], `a ${op} command`, true);
  const key = readText(required(map, "key", ""), "key", {
    maxBytes: limits.maxKeyBytes,
    allowEmpty: false,
  });
  const meta = readMeta(map, limits);
  switch (op) {
    case "put": {
      const v = readBytes(required(map, "value", ""), "value", limits.maxValueBytes);
      const condition = readCondition(map);
      return { op, key, value: v, ...(condition && { condition }), ...meta };
    }
    case "delete": {
      const condition = readCondition(map);
      return { op, key, ...(condition && { condition }), ...meta };
    }
    case "append": {
      const v = readBytes(required(map, "value", ""), "value", limits.maxValueBytes);
      return { op, key, value: v, ...meta };
    }
  }
}

function readCondition(map: CborMap): KvCondition | undefined {
  if (map.condition === undefined) return undefined;
  const c = readMap(map.condition, "condition", ["revision", "absent"]);
  const hasRevision = Object.hasOwn(c, "revision");
  if (hasRevision === Object.hasOwn(c, "absent")) {
    throw new KvCommandError("condition", "needs exactly one of revision or absent");
  }
  if (hasRevision) return { revision: readInteger(c.revision, "condition.revision", 0) };
  return { absent: readTrue(c.absent, "condition.absent") };
}

function readMeta(map: CborMap, limits: KvLimits): KvCommandMeta {
  const out: { session?: KvSession; ts?: number } = {};
  if (map.session !== undefined) {
    const s = readMap(map.session, "session", ["client", "seq"]);
    out.session = {
      client: readText(required(s, "client", "session"), "session.client", {
        maxBytes: limits.maxClientIdBytes,
        allowEmpty: false,
      }),
      seq: readInteger(required(s, "seq", "session"), "session.seq", 0),
    };
  }
  if (map.ts !== undefined) out.ts = readInteger(map.ts, "ts", 0);
  return out;
}

// Alphabetical keys, absent fields left out: equal commands give equal bytes.
function commandToWire(c: KvCommand): CborMap {
  const w: CborMap = {};
  if ("condition" in c && c.condition) {
    w.condition = "revision" in c.condition ? { revision: c.condition.revision } : { absent: true };
  }
  w.key = c.key;
  w.op = c.op;
  if (c.session) w.session = { client: c.session.client, seq: c.session.seq };
  if (c.ts !== undefined) w.ts = c.ts;
  if ("value" in c) w.value = c.value;
  return w;
}

// ---- results ---------------------------------------------------------------------------------

/**
 * The write was applied. Revisions are log indexes; 0 stands for "no such key".
 */
export interface KvWriteApplied {
  /** Discriminator. */
  readonly status: "ok";
  /**
   * The revision of this write: its log index, now the key's revision (or, for a delete, the
   * revision of the deletion). 0 when nothing changed (a delete of a missing key).
   */
  readonly revision: number;
  /** The key's revision before the write (0: it did not exist). */
  readonly prevRevision: number;
  /** The revision that created the key as it is now (0 after a delete). */
  readonly createRevision: number;
  /** Writes to the key since it was created, this one included (0 after a delete). */
  readonly version: number;
}

/** The condition did not hold; nothing changed. HTTP: 412 Precondition Failed. */
export interface KvConditionFailed {
  /** Discriminator. */
  readonly status: "failed-condition";
  /** The key's current revision (0: it does not exist), for the client's next attempt. */
  readonly revision: number;
}

/**
 * The command's session `seq` is below the last one applied for its client: a retry of a
 * command whose result is gone (only the last one's is kept). Nothing changed.
 */
export interface KvStaleSequence {
  /** Discriminator. */
  readonly status: "stale-sequence";
  /** The last `seq` applied for the client. */
  readonly lastSeq: number;
}

/**
 * The replicated command was invalid (it should have been refused before proposing), or an
 * append would grow a value past `maxValueBytes` (`reason: "too-large"`). Nothing changed.
 */
export interface KvCommandRejected {
  /** Discriminator. */
  readonly status: "invalid";
  /** `"too-large"` for a size limit (HTTP 413), `"malformed"` otherwise (HTTP 400). */
  readonly reason: KvCommandErrorReason;
  /** The offending field, as in `KvCommandError.field`. */
  readonly field: string;
  /** What is wrong, for people. */
  readonly message: string;
}

/**
 * What applying a write command returns. A retry (same session client and `seq` as the client's
 * last applied command) returns that command's result, byte for byte, and changes nothing.
 */
export type KvWriteResult =
  | KvWriteApplied
  | KvConditionFailed
  | KvStaleSequence
  | KvCommandRejected;

/** The statuses of `KvWriteResult`. */
export const KV_WRITE_STATUSES: readonly KvWriteResult["status"][] = Object.freeze([
  "ok",
  "failed-condition",
  "stale-sequence",
  "invalid",
]);

/** Encode a write result (what `KvStateMachine.apply` returns). */
export function encodeKvWriteResult(result: KvWriteResult): Uint8Array {
  switch (result.status) {
    case "ok":
      return encodeCbor({
        createRevision: result.createRevision,
        prevRevision: result.prevRevision,
        revision: result.revision,
        status: result.status,
        version: result.version,
      });
    case "failed-condition":
      return encodeCbor({ revision: result.revision, status: result.status });
    case "stale-sequence":
      return encodeCbor({ lastSeq: result.lastSeq, status: result.status });
    case "invalid":
      return encodeCbor({
        field: result.field,
        message: result.message,
        reason: result.reason,
        status: result.status,
      });
  }
}

const RESULT_FIELDS: Record<KvWriteResult["status"], readonly string[]> = {
  "ok": ["status", "revision", "prevRevision", "createRevision", "version"],
  "failed-condition": ["status", "revision"],
  "stale-sequence": ["status", "lastSeq"],
  "invalid": ["status", "reason", "field", "message"],
};

const ALL_RESULT_FIELDS = [...new Set(Object.values(RESULT_FIELDS).flat())];

const ANY_TEXT = { maxBytes: Number.MAX_SAFE_INTEGER, allowEmpty: true };

/**
 * Decode what `propose` resolved with for a write command.
 *
 * @throws {KvCommandError} when `bytes` is not a write result.
 */
export function decodeKvWriteResult(bytes: Uint8Array): KvWriteResult {
  const value = decodeCbor(bytes, "result");
  const any = readMap(value, "result", ALL_RESULT_FIELDS, "a write result", true);
  const status = readEnum(required(any, "status", ""), "status", KV_WRITE_STATUSES);
  const m = readMap(value, "result", RESULT_FIELDS[status], `a ${status} result`, true);
  const uint = (k: string) => readInteger(required(m, k, ""), k, 0);
  switch (status) {
    case "ok":
      return {
        status,
        revision: uint("revision"),
        prevRevision: uint("prevRevision"),
        createRevision: uint("createRevision"),
        version: uint("version"),
      };
    case "failed-condition":
      return { status, revision: uint("revision") };
    case "stale-sequence":
      return { status, lastSeq: uint("lastSeq") };
    case "invalid":
      return {
        status,
        reason: readEnum(required(m, "reason", ""), "reason", ["malformed", "too-large"] as const),
        field: readText(required(m, "field", ""), "field", ANY_TEXT),
        message: readText(required(m, "message", ""), "message", ANY_TEXT),
      };
  }
}
