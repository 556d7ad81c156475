/**
 * The checks a frame passes before any byte of it reaches the Raft core:
 *
 * 1. `scanCbor` walks the raw CBOR heads without building values, so a frame that would make a
 *    decoder recurse deeply, preallocate a huge array, or interpret a tag (cbor-x gives some tags
 *    meanings such as shared references and record definitions) is refused before it is read.
 * 2. `FrameDecoder` (frame_decoder.ts) reads the frame field by field against the wire schema
 *    (see codec.ts) and builds fresh `Message` objects, so nothing the peer sent beyond the schema
 *    (extra keys, prototypes, odd number kinds) survives.
 *
 * For speed the decoder makes the scan's checks itself as it reads (one pass), and the codec runs
 * the two stages in order only for a frame that pass finds anything unusual in: a frame gets the
 * same messages or the same refusal either way.
 *
 * Every refusal is a `FrameError` carrying a machine-readable `reason`.
 *
 * @module
 */
import type { NodeId } from "../core/types.ts";

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

let scanRemaining = new Float64Array(MAX_DEPTH);
let scanIsMap = new Uint8Array(MAX_DEPTH);

// CBOR major types (RFC 8949 §3.1).
const MT_UINT = 0;
const MT_NINT = 1;
const MT_BYTES = 2;
const MT_TEXT = 3;
const MT_ARRAY = 4;
const MT_MAP = 5;
const MT_TAG = 6;

/**
 * Check that `bytes` is exactly one well-formed CBOR item that a decoder can read without surprises:
 * definite lengths only, no tags, no simple values beyond false/true/null/undefined, containers
 * nested at most `maxDepth` deep, map keys are text, the top item is a map, and no declared length
 * exceeds the bytes that remain (so no length can make the decoder allocate more than the frame
 * could fill). Runs in one pass without recursion or allocation.
 *
 * @throws {FrameError} on the first violation.
 */
export function scanCbor(bytes: Uint8Array, maxDepth = MAX_DEPTH): void {
  const n = bytes.length;
  if (n === 0) throw new FrameError("empty", "no bytes");
  // remaining[d]: items still expected in the container open at depth d, a map counting two per
  // pair, so in a map an even count means a key comes next. Both stacks are reused across calls
  // (the scan is synchronous).
  if (maxDepth > scanRemaining.length) {
    scanRemaining = new Float64Array(maxDepth);
    scanIsMap = new Uint8Array(maxDepth);
  }
  const remaining = scanRemaining;
  const isMap = scanIsMap;
  let depth = 0;
  let pos = 0;
  for (;;) {
    if (pos >= n) throw new FrameError("malformed-cbor", `truncated at byte ${pos}`);
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

    if (
      depth > 0 && isMap[depth - 1] === 1 && remaining[depth - 1] % 2 === 0 && major !== MT_TEXT
    ) {
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
        remaining[depth] = opens;
        isMap[depth] = major === MT_MAP ? 1 : 0;
        depth++;
        continue;
      }
    }
    // One item completed; close every container it completes.
    if (depth === 0) {
      if (pos !== n) throw new FrameError("malformed-cbor", `${n - pos} trailing bytes`);
      return;
    }
    for (;;) {
      if (--remaining[depth - 1] > 0) break;
      depth--;
      if (depth === 0) {
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

/** Whether `s` is acceptable as a node or cluster id under `limits`. */
export function isValidId(s: unknown, limits: FrameLimits = DEFAULT_FRAME_LIMITS): s is string {
  return typeof s === "string" && s.length > 0 && s.length <= limits.maxIdLength;
}
