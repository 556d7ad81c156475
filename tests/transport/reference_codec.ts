/**
 * The codec as it was before frames were written and read directly: messages turned into
 * positional arrays and encoded by cbor-x, and frames decoded by cbor-x into a value that is then
 * checked field by field. Kept as the reference the direct codec is compared against (codec and
 * fuzz tests): same bytes out, same messages or the same refusal back.
 *
 * @module
 */
import { Decoder, Encoder } from "../../deps.ts";
import type { Entry, Message, NodeId } from "../../src/core/types.ts";
import { CBOR_OPTIONS, EncodeError, type FrameHeader } from "../../src/transport/codec.ts";
import {
  FRAME_VERSION,
  FrameError,
  type FrameExpectation,
  type FrameLimits,
  scanCbor,
  TAG,
} from "../../src/transport/frame_validation.ts";

type WireValue = number | boolean | string | Uint8Array | WireValue[];
type Wire = WireValue[];

/** Encode one message as its positional array. */
function toWire(m: Message): Wire {
  switch (m.type) {
    case "vote":
    case "prevote":
      return [TAG[m.type], m.term, m.lastIndex, m.lastTerm];
    case "voteResp":
    case "prevoteResp":
      return [TAG[m.type], m.term, m.reject];
    case "app": {
      const es = m.entries;
      const flat: Wire = new Array(es.length * 2);
      for (let k = 0; k < es.length; k++) {
        const e = es[k];
        if (e.index !== m.prevIndex + 1 + k) {
          throw new EncodeError(`append entries are not contiguous after ${m.prevIndex}`);
        }
        flat[2 * k] = e.term;
        flat[2 * k + 1] = e.data;
      }
      return [TAG.app, m.term, m.prevIndex, m.prevTerm, m.commit, flat];
    }
    case "appResp":
      return [TAG.appResp, m.term, m.reject, m.index, m.hintIndex, m.hintTerm];
    case "hb":
      return [TAG.hb, m.term, m.commit, m.ctx];
    case "hbResp":
      return [TAG.hbResp, m.term, m.ctx];
    case "snap":
      return [
        TAG.snap,
        m.term,
        m.snapshot.index,
        m.snapshot.term,
        [...m.snapshot.voters],
        m.size,
        m.checksum,
        m.offset,
        m.data,
      ];
    case "snapResp":
      return [TAG.snapResp, m.term, m.index, m.received, m.transfer];
    default: {
      const never: never = m;
      throw new EncodeError(`unknown message type ${(never as Message).type}`);
    }
  }
}

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
function validateEnvelope(
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

function copy(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.byteLength);
  out.set(bytes);
  return out;
}

/** The cbor-x codec: `encode` and `decode` as `FrameCodec` had them. */
export class ReferenceCodec {
  readonly #encoder = new Encoder(CBOR_OPTIONS);
  readonly #decoder = new Decoder(CBOR_OPTIONS);

  /** `limits` as resolved by `resolveFrameLimits`. */
  constructor(readonly limits: FrameLimits) {}

  /** One frame, as cbor-x writes it. */
  encode(header: FrameHeader, messages: readonly Message[]): Uint8Array {
    const msgs = new Array<Wire>(messages.length);
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i];
      if (m.from !== header.from || m.to !== header.to) {
        throw new EncodeError(`message ${m.from}->${m.to} in a frame ${header.from}->${header.to}`);
      }
      msgs[i] = toWire(m);
    }
    return this.#encoder.encode({
      v: FRAME_VERSION,
      cluster: header.cluster,
      from: header.from,
      to: header.to,
      msgs,
    });
  }

  /** Scan, decode with cbor-x, check the value. */
  decode(frame: Uint8Array, expect: FrameExpectation): Message[] {
    if (frame.length > this.limits.maxFrameBytes) {
      throw new FrameError("too-large", `${frame.length} bytes > ${this.limits.maxFrameBytes}`);
    }
    scanCbor(frame);
    const spare = frame.buffer.byteLength - frame.byteLength;
    const own = spare > Math.max(4096, frame.byteLength)
      ? copy(frame)
      : Object.getPrototypeOf(frame) === Uint8Array.prototype
      ? frame
      : new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength);
    let value: unknown;
    try {
      value = this.#decoder.decode(own);
    } catch (e) {
      throw new FrameError("malformed-cbor", e instanceof Error ? e.message : String(e));
    }
    try {
      return validateEnvelope(value, expect, this.limits);
    } catch (e) {
      if (e instanceof FrameError) throw e;
      throw new FrameError("bad-message", e instanceof Error ? e.message : String(e));
    }
  }
}
