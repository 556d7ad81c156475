/**
 * The checks a frame passes before any byte of it reaches the Raft core. Two stages:
 *
 * 1. `scanCbor` walks the raw CBOR heads without building values, so a frame that would make the
 *    decoder recurse deeply, preallocate a huge array, or interpret a tag (cbor-x gives some tags
 *    meanings such as shared references and record definitions) is refused before cbor-x runs.
 * 2. `validateEnvelope` checks the decoded value field by field against the wire schema
 *    (see codec.ts) and builds fresh `Message` objects, so nothing the peer sent beyond the schema
 *    (extra keys, prototypes, odd number kinds) survives.
 *
 * Every refusal is a `FrameError` carrying a machine-readable `reason`.
 *
 * @module
 */
import type { Entry, Message, NodeId } from "../core/types.ts";

/** Why a frame was refused. */
export type FrameErrorReason =
  | "too-large"
  | "empty"
  | "malformed-cbor"
  | "unsupported-cbor"
  | "too-deep"
  | "bad-envelope"
  | "bad-version"
  | "wrong-cluster"
  | "wrong-sender"
  | "wrong-receiver"
  | "too-many"
  | "bad-message";

/** A frame that is not a valid floe frame for this connection. The only error decoding throws. */
export class FrameError extends Error {
  /** `reason` classifies the refusal (for metrics and logs); `message` adds the detail. */
  constructor(readonly reason: FrameErrorReason, detail: string) {
    super(`${reason}: ${detail}`);
    this.name = "FrameError";
  }
}

/** Bounds a decoded frame must stay within. Every field has a default (`DEFAULT_FRAME_LIMITS`). */
export interface FrameLimits {
  /** Largest frame in bytes, checked before decoding. */
  readonly maxFrameBytes: number;
  /** Most Raft messages in one frame. */
  readonly maxMessages: number;
  /** Most log entries in one AppendEntries. */
  readonly maxEntries: number;
  /** Most voters in a snapshot's membership. */
  readonly maxVoters: number;
  /** Longest node id or cluster id, in UTF-16 code units. */
  readonly maxIdLength: number;
}

/**
 * 8 MiB frames: eight times the core's default 1 MiB snapshot chunk and append size, so a batch
 * holding several of them still fits. Entries: the core's default cap is 4096 per append, but a
 * peer may be configured higher; the byte limit bounds the rest.
 */
export const DEFAULT_FRAME_LIMITS: FrameLimits = Object.freeze({
  maxFrameBytes: 8 * 1024 * 1024,
  maxMessages: 65_536,
  maxEntries: 1 << 20,
  maxVoters: 4096,
  maxIdLength: 256,
});

/** Deepest container nesting the schema has: envelope map, messages, one message, its entries. */
export const MAX_DEPTH = 4;

/** Fill in the defaults of partial `limits` and check they are sensible. */
export function resolveFrameLimits(limits: Partial<FrameLimits> = {}): FrameLimits {
  const out = { ...DEFAULT_FRAME_LIMITS, ...limits };
  for (const [k, v] of Object.entries(out)) {
    if (!Number.isSafeInteger(v) || v <= 0) {
      throw new RangeError(`frame limit ${k} must be a positive integer, got ${v}`);
    }
  }
  return Object.freeze(out);
}

// CBOR major types (RFC 8949 §3.1).
const MT_UINT = 0;
const MT_NINT = 1;
const MT_BYTES = 2;
const MT_TEXT = 3;
const MT_ARRAY = 4;
const MT_MAP = 5;
const MT_TAG = 6;

/**
 * Check that `bytes` is exactly one well-formed CBOR item that cbor-x can decode without surprises:
 * definite lengths only, no tags, no simple values beyond false/true/null/undefined, containers
 * nested at most `maxDepth` deep, map keys are text, the top item is a map, and no declared length
 * exceeds the bytes that remain (so no length can make the decoder allocate more than the frame
 * could fill). Runs in one pass without recursion and allocates only the nesting stack.
 *
 * @throws {FrameError} on the first violation.
 */
export function scanCbor(bytes: Uint8Array, maxDepth = MAX_DEPTH): void {
  const n = bytes.length;
  if (n === 0) throw new FrameError("empty", "no bytes");
  // remaining[d]: items still expected in the container open at depth d, a map counting two per
  // pair, so in a map an even count means a key comes next.
  const remaining: number[] = [];
  const isMap: boolean[] = [];
  let pos = 0;
  for (;;) {
    if (pos >= n) throw new FrameError("malformed-cbor", `truncated at byte ${pos}`);
    const depth = remaining.length;
    const ib = bytes[pos++];
    const major = ib >> 5;
    const info = ib & 0x1f;
    let arg: number;
    if (info < 24) {
      arg = info;
    } else if (info === 24) {
      if (pos + 1 > n) throw new FrameError("malformed-cbor", "truncated head");
      arg = bytes[pos];
      pos += 1;
    } else if (info === 25) {
      if (pos + 2 > n) throw new FrameError("malformed-cbor", "truncated head");
      arg = (bytes[pos] << 8) | bytes[pos + 1];
      pos += 2;
    } else if (info === 26) {
      if (pos + 4 > n) throw new FrameError("malformed-cbor", "truncated head");
      arg = ((bytes[pos] << 24) >>> 0) + ((bytes[pos + 1] << 16) | (bytes[pos + 2] << 8) |
        bytes[pos + 3]);
      pos += 4;
    } else if (info === 27) {
      if (pos + 8 > n) throw new FrameError("malformed-cbor", "truncated head");
      const hi = ((bytes[pos] << 24) >>> 0) +
        ((bytes[pos + 1] << 16) | (bytes[pos + 2] << 8) | bytes[pos + 3]);
      const lo = ((bytes[pos + 4] << 24) >>> 0) +
        ((bytes[pos + 5] << 16) | (bytes[pos + 6] << 8) | bytes[pos + 7]);
      // Only lengths need the exact value, and any length this large is refused below anyway.
      arg = hi * 0x1_0000_0000 + lo;
      pos += 8;
    } else if (info === 31) {
      throw new FrameError("unsupported-cbor", `indefinite length or break at byte ${pos - 1}`);
    } else {
      throw new FrameError("malformed-cbor", `reserved additional info ${info} at byte ${pos - 1}`);
    }

    if (depth > 0 && isMap[depth - 1] && remaining[depth - 1] % 2 === 0 && major !== MT_TEXT) {
      throw new FrameError("unsupported-cbor", `map key of major type ${major} at byte ${pos - 1}`);
    }
    if (depth === 0 && major !== MT_MAP) {
      throw new FrameError("bad-envelope", `top-level item of major type ${major}, not a map`);
    }

    let opens = 0; // items of the container this head opens
    let container = false;
    switch (major) {
      case MT_UINT:
      case MT_NINT:
        break;
      case MT_BYTES:
      case MT_TEXT:
        if (arg > n - pos) {
          throw new FrameError("malformed-cbor", `string of ${arg} bytes overruns the frame`);
        }
        pos += arg;
        break;
      case MT_ARRAY:
        if (arg > n - pos) {
          throw new FrameError("malformed-cbor", `array of ${arg} items overruns the frame`);
        }
        opens = arg;
        container = true;
        break;
      case MT_MAP:
        if (arg * 2 > n - pos) {
          throw new FrameError("malformed-cbor", `map of ${arg} pairs overruns the frame`);
        }
        opens = arg * 2;
        container = true;
        break;
      case MT_TAG:
        throw new FrameError("unsupported-cbor", `tag ${arg} at byte ${pos - 1}`);
      default: // 7: simple values and floats
        if (info < 20 || info === 24) {
          throw new FrameError("unsupported-cbor", `simple value at byte ${pos - 1}`);
        }
    }

    if (container) {
      if (depth + 1 > maxDepth) {
        throw new FrameError("too-deep", `containers nested deeper than ${maxDepth}`);
      }
      if (opens > 0) {
        remaining.push(opens);
        isMap.push(major === MT_MAP);
        continue;
      }
    }
    // One item completed; close every container it completes.
    if (remaining.length === 0) {
      if (pos !== n) throw new FrameError("malformed-cbor", `${n - pos} trailing bytes`);
      return;
    }
    for (;;) {
      const top = remaining.length - 1;
      if (--remaining[top] > 0) break;
      remaining.pop();
      isMap.pop();
      if (remaining.length === 0) {
        if (pos !== n) throw new FrameError("malformed-cbor", `${n - pos} trailing bytes`);
        return;
      }
    }
  }
}

/** What a frame on one authenticated connection must say about itself. */
export interface FrameExpectation {
  /** This cluster's id. */
  readonly cluster: string;
  /** The peer authenticated on the connection. */
  readonly from: NodeId;
  /** This node. */
  readonly to: NodeId;
}

/** The wire protocol version of Raft frames. */
export const FRAME_VERSION = 1;

/** Wire tags of the positional message encoding, by message type. */
export const TAG = {
  vote: 0,
  prevote: 1,
  voteResp: 2,
  prevoteResp: 3,
  app: 4,
  appResp: 5,
  hb: 6,
  hbResp: 7,
  snap: 8,
  snapResp: 9,
} as const;

const ENVELOPE_KEYS = ["v", "cluster", "from", "to", "msgs"] as const;
const MAX_U32 = 0xffff_ffff;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function bad(detail: string): never {
  throw new FrameError("bad-message", detail);
}

const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);

function uint(v: unknown, what: string): number {
  // Another encoder may write any integer past 32 bits as a 64-bit one, which cbor-x decodes as
  // a bigint.
  if (typeof v === "bigint" && v >= 0n && v <= MAX_SAFE_BIG) return Number(v);
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    bad(`${what} is not a non-negative safe integer`);
  }
  return v;
}

function bool(v: unknown, what: string): boolean {
  if (typeof v !== "boolean") bad(`${what} is not a boolean`);
  return v;
}

// Always a plain Uint8Array: the decoder may hand out a Node Buffer (whose `slice` does not copy,
// unlike the Uint8Array the core expects). A view, not a copy: the codec decodes from a buffer of
// the frame's own, and one allocation per byte string would cost more than the whole decode.
function bytes(v: unknown, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) bad(`${what} is not a byte string`);
  if (Object.getPrototypeOf(v) === Uint8Array.prototype) return v;
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

function id(v: unknown, what: string, maxLength: number): string {
  if (typeof v !== "string" || v.length === 0 || v.length > maxLength) {
    bad(`${what} is not a node id of 1..${maxLength} characters`);
  }
  return v;
}

function tuple(v: unknown, length: number, what: string): unknown[] {
  if (!Array.isArray(v) || v.length !== length) bad(`${what} is not an array of ${length}`);
  return v;
}

/**
 * Check a decoded envelope against the schema and the connection's expectation, and return the
 * messages it carries as fresh objects (never the decoded values themselves).
 *
 * @throws {FrameError} when anything is off.
 */
export function validateEnvelope(
  value: unknown,
  expect: FrameExpectation,
  limits: FrameLimits,
): Message[] {
  if (!isRecord(value)) throw new FrameError("bad-envelope", "not a map");
  let count = 0;
  for (const k in value) {
    if (!Object.hasOwn(value, k)) continue;
    if (!ENVELOPE_KEYS.includes(k as typeof ENVELOPE_KEYS[number])) {
      throw new FrameError("bad-envelope", `unexpected key ${JSON.stringify(k.slice(0, 32))}`);
    }
    count++;
  }
  if (count !== ENVELOPE_KEYS.length) {
    throw new FrameError("bad-envelope", `${count} of the ${ENVELOPE_KEYS.length} envelope keys`);
  }
  if (value.v !== FRAME_VERSION) {
    throw new FrameError("bad-version", `version ${String(value.v).slice(0, 16)}`);
  }
  if (value.cluster !== expect.cluster) throw new FrameError("wrong-cluster", "cluster id differs");
  if (value.from !== expect.from) {
    throw new FrameError("wrong-sender", "sender is not the peer authenticated on this connection");
  }
  if (value.to !== expect.to) throw new FrameError("wrong-receiver", "receiver is not this node");
  const msgs = value.msgs;
  if (!Array.isArray(msgs)) throw new FrameError("bad-envelope", "msgs is not an array");
  if (msgs.length > limits.maxMessages) {
    throw new FrameError("too-many", `${msgs.length} messages > ${limits.maxMessages}`);
  }
  const out = new Array<Message>(msgs.length);
  for (let i = 0; i < msgs.length; i++) {
    out[i] = validateMessage(msgs[i], expect.from, expect.to, limits, i);
  }
  return out;
}

function validateMessage(
  raw: unknown,
  from: NodeId,
  to: NodeId,
  limits: FrameLimits,
  i: number,
): Message {
  if (!Array.isArray(raw) || raw.length < 2) bad(`message ${i} is not a tagged array`);
  const tag = raw[0];
  const term = uint(raw[1], `message ${i} term`);
  switch (tag) {
    case TAG.vote:
    case TAG.prevote: {
      const m = tuple(raw, 4, `message ${i} (vote)`);
      return {
        type: tag === TAG.vote ? "vote" : "prevote",
        term,
        from,
        to,
        lastIndex: uint(m[2], "lastIndex"),
        lastTerm: uint(m[3], "lastTerm"),
      };
    }
    case TAG.voteResp:
    case TAG.prevoteResp: {
      const m = tuple(raw, 3, `message ${i} (voteResp)`);
      return {
        type: tag === TAG.voteResp ? "voteResp" : "prevoteResp",
        term,
        from,
        to,
        reject: bool(m[2], "reject"),
      };
    }
    case TAG.app: {
      const m = tuple(raw, 6, `message ${i} (app)`);
      const prevIndex = uint(m[2], "prevIndex");
      const prevTerm = uint(m[3], "prevTerm");
      const commit = uint(m[4], "commit");
      const flat = m[5];
      if (!Array.isArray(flat) || flat.length % 2 !== 0) {
        bad("entries is not a flat term/data array");
      }
      const count = flat.length / 2;
      if (count > limits.maxEntries) {
        throw new FrameError("too-many", `${count} entries > ${limits.maxEntries}`);
      }
      if (prevIndex + count > Number.MAX_SAFE_INTEGER) bad("entry index overflows");
      const entries = new Array<Entry>(count);
      let last = prevTerm;
      for (let k = 0; k < count; k++) {
        const t = uint(flat[2 * k], "entry term");
        // A leader's entries carry terms that never decrease and never pass its own term.
        if (t < last || t > term) bad("entry terms out of order or past the message term");
        last = t;
        entries[k] = {
          index: prevIndex + 1 + k,
          term: t,
          data: bytes(flat[2 * k + 1], "entry data"),
        };
      }
      return { type: "app", term, from, to, prevIndex, prevTerm, entries, commit };
    }
    case TAG.appResp: {
      const m = tuple(raw, 6, `message ${i} (appResp)`);
      return {
        type: "appResp",
        term,
        from,
        to,
        reject: bool(m[2], "reject"),
        index: uint(m[3], "index"),
        hintIndex: uint(m[4], "hintIndex"),
        hintTerm: uint(m[5], "hintTerm"),
      };
    }
    case TAG.hb: {
      const m = tuple(raw, 4, `message ${i} (hb)`);
      return { type: "hb", term, from, to, commit: uint(m[2], "commit"), ctx: uint(m[3], "ctx") };
    }
    case TAG.hbResp: {
      const m = tuple(raw, 3, `message ${i} (hbResp)`);
      return { type: "hbResp", term, from, to, ctx: uint(m[2], "ctx") };
    }
    case TAG.snap: {
      const m = tuple(raw, 9, `message ${i} (snap)`);
      const index = uint(m[2], "snapshot index");
      const snapTerm = uint(m[3], "snapshot term");
      const rawVoters = m[4];
      if (!Array.isArray(rawVoters) || rawVoters.length > limits.maxVoters) {
        bad(`voters is not an array of at most ${limits.maxVoters}`);
      }
      const voters = rawVoters.map((v) => id(v, "voter", limits.maxIdLength));
      if (new Set(voters).size !== voters.length) bad("voters repeat");
      const size = uint(m[5], "size");
      const checksum = uint(m[6], "checksum");
      if (checksum > MAX_U32) bad("checksum is wider than 32 bits");
      const offset = uint(m[7], "offset");
      const data = bytes(m[8], "chunk data");
      if (offset + data.length > size) bad("chunk runs past the snapshot's size");
      return {
        type: "snap",
        term,
        from,
        to,
        snapshot: { index, term: snapTerm, voters },
        size,
        checksum,
        offset,
        data,
      };
    }
    case TAG.snapResp: {
      const m = tuple(raw, 5, `message ${i} (snapResp)`);
      return {
        type: "snapResp",
        term,
        from,
        to,
        index: uint(m[2], "index"),
        received: uint(m[3], "received"),
        transfer: uint(m[4], "transfer"),
      };
    }
    default:
      bad(`message ${i} has unknown tag ${String(tag).slice(0, 16)}`);
  }
}

/** Whether `s` is acceptable as a node or cluster id under `limits`. */
export function isValidId(s: unknown, limits: FrameLimits = DEFAULT_FRAME_LIMITS): s is string {
  return typeof s === "string" && s.length > 0 && s.length <= limits.maxIdLength;
}
