/**
 * CBOR plumbing shared by the KV's commands, queries, results and snapshots: one encoder
 * configuration with none of cbor-x's stateful extensions (so equal values always give equal
 * bytes on every replica), a pre-decode scan that refuses anything the schemas never contain
 * before cbor-x interprets it, and field readers that validate decoded values and name the field
 * they reject.
 *
 * Internal to `src/kv`.
 *
 * @module
 */
import { Decoder, Encoder, PLAIN_CBOR_OPTIONS } from "../../deps.ts";
import { KvCommandError } from "./kv_errors.ts";

const encoder = new Encoder(PLAIN_CBOR_OPTIONS);
const decoder = new Decoder(PLAIN_CBOR_OPTIONS);

/** The deepest nesting any KV schema uses is 4 (a result's list of entries); 8 leaves room. */
const MAX_DEPTH = 8;

/**
 * Encode `value` as CBOR into a fresh `Uint8Array` of its own. cbor-x hands out views into a
 * shared buffer (a Node `Buffer`, under Node); a cached result or a stored value must not keep
 * that buffer alive, nor be a `Buffer`.
 */
export function encodeCbor(value: unknown): Uint8Array {
  const view = encoder.encode(value);
  const out = new Uint8Array(view.length);
  out.set(view);
  return out;
}

/**
 * Decode one CBOR map after `scanCbor` accepted it. Anything cbor-x throws becomes a
 * `KvCommandError` on `what`.
 */
export function decodeCbor(bytes: Uint8Array, what: string): unknown {
  if (!(bytes instanceof Uint8Array)) {
    throw new KvCommandError(what, "expected a Uint8Array of CBOR");
  }
  scanCbor(bytes, what);
  try {
    // A fresh view: cbor-x caches a `dataView` property on the array it decodes, which must not
    // land on the caller's (a log entry, a test's expected value).
    return decoder.decode(bytes.subarray(0));
  } catch (e) {
    throw new KvCommandError(what, `malformed CBOR: ${e instanceof Error ? e.message : e}`);
  }
}

const MT_BYTES = 2;
const MT_TEXT = 3;
const MT_ARRAY = 4;
const MT_MAP = 5;
const MT_TAG = 6;
const MT_SIMPLE = 7;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Check that `bytes` is exactly one CBOR map built only from what the KV schemas use: unsigned
 * and negative integers, floats, byte and text strings, arrays, maps with text keys, false, true,
 * null, undefined. Refused: tags (cbor-x gives some of them meanings such as shared references,
 * record definitions and calls of global constructors), indefinite lengths, other simple values,
 * nesting deeper than 8, a declared length larger than the bytes left (so no length makes the
 * decoder allocate more than the input could fill), text that is not UTF-8, text starting with a
 * byte order mark (cbor-x drops it from long strings and keeps it in short ones), trailing bytes.
 * One pass, no recursion.
 *
 * @throws {KvCommandError} on `what` at the first violation.
 */
export function scanCbor(bytes: Uint8Array, what: string): void {
  const fail = (detail: string): never => {
    throw new KvCommandError(what, detail);
  };
  const n = bytes.length;
  if (n === 0) fail("empty (no CBOR item)");
  // remaining[d]: items still expected in the container open at depth d, a map counting two per
  // pair, so in a map an even count means a key comes next.
  const remaining: number[] = [];
  const isMap: boolean[] = [];
  let pos = 0;
  for (;;) {
    if (pos >= n) fail(`truncated CBOR at byte ${pos}`);
    const at = pos;
    const ib = bytes[pos++];
    const major = ib >> 5;
    const info = ib & 0x1f;
    let arg = 0;
    if (info < 24) {
      arg = info;
    } else if (info <= 27) {
      const size = 1 << (info - 24);
      if (pos + size > n) fail(`truncated CBOR head at byte ${at}`);
      // Multiplication, not shifts: 8-byte arguments exceed 32 bits; any length that large is
      // refused below anyway, so the rounding of the top bits does not matter.
      for (let i = 0; i < size; i++) arg = arg * 256 + bytes[pos + i];
      pos += size;
    } else if (info === 31) {
      fail(`indefinite length or break at byte ${at} (unsupported)`);
    } else {
      fail(`reserved CBOR additional info ${info} at byte ${at}`);
    }

    const depth = remaining.length;
    if (depth > 0 && isMap[depth - 1] && remaining[depth - 1] % 2 === 0 && major !== MT_TEXT) {
      fail(`map key of CBOR major type ${major} at byte ${at} (keys must be text)`);
    }
    if (depth === 0 && major !== MT_MAP) fail(`CBOR item of major type ${major}, not a map`);

    let opens = 0;
    let container = false;
    switch (major) {
      case MT_BYTES:
      case MT_TEXT:
        if (arg > n - pos) fail(`string of ${arg} bytes overruns the input at byte ${at}`);
        if (major === MT_TEXT) checkText(bytes, pos, arg, at, fail);
        pos += arg;
        break;
      case MT_ARRAY:
        if (arg > n - pos) fail(`array of ${arg} items overruns the input at byte ${at}`);
        opens = arg;
        container = true;
        break;
      case MT_MAP:
        if (arg * 2 > n - pos) fail(`map of ${arg} pairs overruns the input at byte ${at}`);
        opens = arg * 2;
        container = true;
        break;
      case MT_TAG:
        fail(`CBOR tag ${arg} at byte ${at} (unsupported)`);
        break;
      case MT_SIMPLE:
        // 20..23: false, true, null, undefined; 25..27: half, single and double floats.
        if (info < 20 || info === 24) fail(`CBOR simple value at byte ${at} (unsupported)`);
        break;
      default: // unsigned and negative integers
    }

    if (container) {
      if (depth + 1 > MAX_DEPTH) fail(`containers nested deeper than ${MAX_DEPTH}`);
      if (opens > 0) {
        remaining.push(opens);
        isMap.push(major === MT_MAP);
        continue;
      }
    }
    // One item completed; close every container it completes.
    for (;;) {
      if (remaining.length === 0) {
        if (pos !== n) fail(`${n - pos} trailing bytes after the CBOR item`);
        return;
      }
      const top = remaining.length - 1;
      if (--remaining[top] > 0) break;
      remaining.pop();
      isMap.pop();
    }
  }
}

function checkText(
  bytes: Uint8Array,
  start: number,
  length: number,
  at: number,
  fail: (detail: string) => never,
): void {
  if (
    length >= 3 && bytes[start] === 0xef && bytes[start + 1] === 0xbb && bytes[start + 2] === 0xbf
  ) {
    fail(`text at byte ${at} starts with a byte order mark (U+FEFF)`);
  }
  let ascii = true;
  for (let i = start; i < start + length; i++) {
    if (bytes[i] >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return;
  try {
    utf8.decode(bytes.subarray(start, start + length));
  } catch {
    fail(`text at byte ${at} is not valid UTF-8`);
  }
}

// ---- field readers -------------------------------------------------------------------------

/** A decoded CBOR map, as cbor-x builds it (a plain object). */
export type CborMap = Record<string, unknown>;

function describe(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "undefined";
  if (Array.isArray(v)) return "an array";
  if (v instanceof Uint8Array) return "a byte string";
  return typeof v === "object" ? "a map" : `a ${typeof v}`;
}

/**
 * `value` as a map whose keys are all in `allowed` (an unknown key is refused, so nothing beyond
 * the schema survives decoding). `what` names the map in that refusal; a `root` map's fields are
 * named without `field` in front (`"key"`, not `"command.key"`).
 */
export function readMap(
  value: unknown,
  field: string,
  allowed: readonly string[],
  what = "this map",
  root = false,
): CborMap {
  if (
    typeof value !== "object" || value === null || Array.isArray(value) ||
    value instanceof Uint8Array
  ) {
    throw new KvCommandError(field, `expected a map, got ${describe(value)}`);
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw new KvCommandError(field, "expected a plain map");
  }
  for (const k of Object.keys(value)) {
    if (!allowed.includes(k)) {
      throw new KvCommandError(root ? k : join(field, k), `not a field of ${what}`);
    }
  }
  return value as CborMap;
}

/** `value` as an array. */
export function readArray(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) {
    throw new KvCommandError(field, `expected an array, got ${describe(value)}`);
  }
  return value;
}

// A lead surrogate without a trail, or a trail without a lead: text that has no UTF-8 form.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Limits of one text field. */
export interface TextRule {
  /** Longest UTF-8 encoding accepted. */
  readonly maxBytes: number;
  /** Whether "" is accepted. */
  readonly allowEmpty: boolean;
}

/**
 * `value` as text with a UTF-8 form of at most `rule.maxBytes` bytes (over it: a "too-large"
 * error), no lone surrogates (they have no UTF-8 form, so the proposer and the replicas would
 * see different keys), and no leading byte order mark.
 */
export function readText(value: unknown, field: string, rule: TextRule): string {
  if (typeof value !== "string") {
    throw new KvCommandError(field, `expected text, got ${describe(value)}`);
  }
  if (value.length === 0 && !rule.allowEmpty) throw new KvCommandError(field, "must not be empty");
  const bytes = utf8Length(value);
  if (bytes > rule.maxBytes) {
    throw new KvCommandError(
      field,
      `${bytes} bytes of UTF-8 exceed the limit of ${rule.maxBytes}`,
      "too-large",
    );
  }
  if (LONE_SURROGATE.test(value)) {
    throw new KvCommandError(field, "contains a lone surrogate (not encodable as UTF-8)");
  }
  if (value.charCodeAt(0) === 0xfeff) {
    throw new KvCommandError(field, "must not start with a byte order mark (U+FEFF)");
  }
  return value;
}

/**
 * `value` as bytes of at most `maxBytes`, copied into a fresh `Uint8Array`: decoded byte strings
 * are views into the input (a `Buffer` under Node), which a stored value must not pin.
 */
export function readBytes(value: unknown, field: string, maxBytes: number): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new KvCommandError(field, `expected a byte string, got ${describe(value)}`);
  }
  if (value.length > maxBytes) {
    throw new KvCommandError(
      field,
      `${value.length} bytes exceed the limit of ${maxBytes}`,
      "too-large",
    );
  }
  const out = new Uint8Array(value.length);
  out.set(value);
  return out;
}

/** `value` as a safe integer ≥ `min`. */
export function readInteger(value: unknown, field: string, min: number): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw new KvCommandError(field, `expected an integer, got ${describeNumber(value)}`);
  }
  if (value < min) throw new KvCommandError(field, `must be at least ${min}, got ${value}`);
  return value;
}

function describeNumber(v: unknown): string {
  return typeof v === "number" || typeof v === "bigint" ? String(v) : describe(v);
}

/** `value`, which must be exactly `true`. */
export function readTrue(value: unknown, field: string): true {
  if (value !== true) {
    throw new KvCommandError(field, `expected true, got ${describeNumber(value)}`);
  }
  return true;
}

/** `value` as one of `options`. */
export function readEnum<T extends string>(
  value: unknown,
  field: string,
  options: readonly T[],
): T {
  if (typeof value !== "string" || !(options as readonly string[]).includes(value)) {
    throw new KvCommandError(
      field,
      `expected one of ${options.map((o) => JSON.stringify(o)).join(", ")}, got ${
        typeof value === "string" ? JSON.stringify(value) : describeNumber(value)
      }`,
    );
  }
  return value as T;
}

/** Refuse a map that lacks `key`. */
export function required(map: CborMap, key: string, field: string): unknown {
  if (!Object.hasOwn(map, key)) throw new KvCommandError(join(field, key), "missing");
  return map[key];
}

/** The path of `key` inside `field` ("" for the top level). */
export function join(field: string, key: string): string {
  return field === "" ? key : `${field}.${key}`;
}

/** Bytes in the UTF-8 form of `s` (a surrogate pair counts 4). */
export function utf8Length(s: string): number {
  let bytes = s.length; // one byte per code unit, plus what wider characters add
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    // Each half of a surrogate pair adds 1 (2 + 2 = 4); other units below 0x800 add 1, the rest 2.
    bytes += c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 1 : 2;
  }
  return bytes;
}
