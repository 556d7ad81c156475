/**
 * Writes Raft frames (the wire format of codec.ts) straight from `Message` objects, without
 * building the positional arrays and envelope object a general CBOR encoder would walk.
 *
 * The bytes are the ones cbor-x writes for the same frame under `PLAIN_CBOR_OPTIONS` (shortest
 * integer heads, integers of 2^32 and up as float64, the envelope keys in the order v, cluster,
 * from, to, msgs), so peers running the cbor-x codec read them unchanged; tests compare the two
 * byte for byte.
 *
 * Frames are views into 64 KiB chunks that are filled front to back and never written twice, so a
 * frame stays valid for as long as anyone holds it, and most frames cost no allocation of their own.
 *
 * @module
 */
import type { Message } from "../core/types.ts";
import { FRAME_VERSION, type FrameExpectation, TAG } from "./frame_validation.ts";

/** A message cannot be put on the wire as it is (a bug in the sender, not a network fault). */
export class EncodeError extends Error {
  /** `message` says what is wrong. */
  constructor(message: string) {
    super(message);
    this.name = "EncodeError";
  }
}

const CHUNK_BYTES = 64 * 1024;
// Room for any one head (1 + 8 bytes), with margin, when bounding a frame's size.
const HEAD = 9;
// The fixed fields of one message: its array head, tag, term and up to six numbers or booleans.
const FIXED = 8 * HEAD;

const float = new DataView(new ArrayBuffer(8));

/** UTF-8 of `s` as cbor-x writes it (a lone surrogate as its own three bytes). */
function utf8(s: string): Uint8Array {
  const out = new Uint8Array(s.length * 3);
  let p = 0;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      out[p++] = c;
    } else if (c < 0x800) {
      out[p++] = (c >> 6) | 0xc0;
      out[p++] = (c & 0x3f) | 0x80;
    } else if ((c & 0xfc00) === 0xd800 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      c = 0x10000 + ((c & 0x03ff) << 10) + (s.charCodeAt(++i) & 0x03ff);
      out[p++] = (c >> 18) | 0xf0;
      out[p++] = ((c >> 12) & 0x3f) | 0x80;
      out[p++] = ((c >> 6) & 0x3f) | 0x80;
      out[p++] = (c & 0x3f) | 0x80;
    } else {
      out[p++] = (c >> 12) | 0xe0;
      out[p++] = ((c >> 6) & 0x3f) | 0x80;
      out[p++] = (c & 0x3f) | 0x80;
    }
  }
  return out.slice(0, p);
}

/** The CBOR text string `s`, head included, as cbor-x writes it. */
export function cborText(s: string): Uint8Array {
  const body = utf8(s);
  const n = body.length;
  const head = n < 24
    ? [0x60 | n]
    : n < 0x100
    ? [0x78, n]
    : n < 0x10000
    ? [0x79, n >> 8, n & 0xff]
    : [0x7a, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
  const out = new Uint8Array(head.length + n);
  out.set(head);
  out.set(body, head.length);
  return out;
}

/** Appends CBOR to the current chunk; `take` cuts off what was written since the last take. */
class ChunkWriter {
  buf = new Uint8Array(0);
  pos = 0;
  start = 0;

  /** Make sure `bytes` more fit without a new chunk in the middle of a frame. */
  reserve(bytes: number): void {
    if (this.buf.length - this.pos >= bytes) return;
    // The frame in progress (started at `start`) moves to the new chunk.
    const carried = this.pos - this.start;
    const next = new Uint8Array(Math.max(CHUNK_BYTES, carried + bytes));
    next.set(this.buf.subarray(this.start, this.pos));
    this.buf = next;
    this.start = 0;
    this.pos = carried;
  }

  take(): Uint8Array {
    const out = this.buf.subarray(this.start, this.pos);
    this.start = this.pos;
    return out;
  }

  /** A head of `major` type with argument `n` (a non-negative integer below 2^32). */
  head(major: number, n: number): void {
    const b = this.buf;
    let p = this.pos;
    const mt = major << 5;
    if (n < 24) {
      b[p++] = mt | n;
    } else if (n < 0x100) {
      b[p++] = mt | 24;
      b[p++] = n;
    } else if (n < 0x10000) {
      b[p++] = mt | 25;
      b[p++] = n >> 8;
      b[p++] = n & 0xff;
    } else {
      b[p++] = mt | 26;
      b[p++] = n >>> 24;
      b[p++] = (n >> 16) & 0xff;
      b[p++] = (n >> 8) & 0xff;
      b[p++] = n & 0xff;
    }
    this.pos = p;
  }

  /** A non-negative safe integer, as cbor-x writes it. */
  uint(v: number, what: string): void {
    if (v >>> 0 === v) {
      if (v < 24) this.buf[this.pos++] = v;
      else this.head(0, v);
      return;
    }
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new EncodeError(`${what} is not a non-negative safe integer: ${String(v)}`);
    }
    // cbor-x writes integers of 2^32 and up as doubles; peers expect exactly that.
    float.setFloat64(0, v);
    const b = this.buf;
    let p = this.pos;
    b[p++] = 0xfb;
    for (let i = 0; i < 8; i++) b[p++] = float.getUint8(i);
    this.pos = p;
  }

  bool(v: boolean, what: string): void {
    if (v !== true && v !== false) throw new EncodeError(`${what} is not a boolean`);
    this.buf[this.pos++] = v ? 0xf5 : 0xf4;
  }

  bytes(v: Uint8Array, what: string): void {
    if (!(v instanceof Uint8Array)) throw new EncodeError(`${what} is not a Uint8Array`);
    this.head(2, v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }

  raw(v: Uint8Array): void {
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }
}

/** An upper bound of the bytes `m` takes on the wire. */
function bound(m: Message): number {
  if (m.type === "app") {
    let n = FIXED + HEAD;
    const es = m.entries;
    for (let k = 0; k < es.length; k++) n += 2 * HEAD + es[k].data.length;
    return n;
  }
  if (m.type === "snap") {
    let n = FIXED + 3 * HEAD + m.data.length;
    for (const v of m.snapshot.voters) n += HEAD + 3 * v.length;
    return n;
  }
  return FIXED;
}

/**
 * Encodes frames for any number of headers, each header's envelope written once and reused.
 * Not for concurrent use (it is synchronous; one per codec).
 */
export class FrameEncoder {
  readonly #w = new ChunkWriter();
  readonly #prefixes = new WeakMap<FrameExpectation, Uint8Array>();
  #lastHeader: FrameExpectation | undefined;
  #lastPrefix: Uint8Array = new Uint8Array(0);

  /**
   * One frame carrying `messages` under `header`.
   *
   * @throws {EncodeError} when a message's `from` or `to` differs from the header's, an append's
   * entries are not contiguous, or a field is not of its type (a number that is not a
   * non-negative safe integer, a boolean that is not one, data that is not a Uint8Array).
   */
  encode(header: FrameExpectation, messages: readonly Message[]): Uint8Array {
    const prefix = this.#prefix(header);
    let size = prefix.length + HEAD;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i];
      if (m.from !== header.from || m.to !== header.to) {
        throw new EncodeError(`message ${m.from}->${m.to} in a frame ${header.from}->${header.to}`);
      }
      size += bound(m);
    }
    const w = this.#w;
    w.reserve(size);
    w.raw(prefix);
    w.head(4, messages.length);
    try {
      for (let i = 0; i < messages.length; i++) this.#message(messages[i]);
    } catch (e) {
      w.pos = w.start; // drop the partial frame
      throw e;
    }
    return w.take();
  }

  /** The envelope up to and including the `msgs` key. */
  #prefix(header: FrameExpectation): Uint8Array {
    // Frames for one peer come in runs: the last header is the likely one, and cheaper than a lookup.
    if (header === this.#lastHeader) return this.#lastPrefix;
    let p = this.#prefixes.get(header);
    if (p === undefined) p = this.#buildPrefix(header);
    this.#lastHeader = header;
    this.#lastPrefix = p;
    return p;
  }

  /** The prefix for a header not seen before. */
  #buildPrefix(header: FrameExpectation): Uint8Array {
    const parts = [
      cborText("v"),
      new Uint8Array([FRAME_VERSION]),
      cborText("cluster"),
      cborText(header.cluster),
      cborText("from"),
      cborText(header.from),
      cborText("to"),
      cborText(header.to),
      cborText("msgs"),
    ];
    const p = new Uint8Array(1 + parts.reduce((n, x) => n + x.length, 0));
    p[0] = 0xa5; // a map of five pairs
    let at = 1;
    for (const x of parts) {
      p.set(x, at);
      at += x.length;
    }
    this.#prefixes.set(header, p);
    return p;
  }

  #message(m: Message): void {
    const w = this.#w;
    switch (m.type) {
      case "vote":
      case "prevote":
        w.buf[w.pos++] = 0x84;
        w.buf[w.pos++] = TAG[m.type];
        w.uint(m.term, "term");
        w.uint(m.lastIndex, "lastIndex");
        w.uint(m.lastTerm, "lastTerm");
        return;
      case "voteResp":
      case "prevoteResp":
        w.buf[w.pos++] = 0x83;
        w.buf[w.pos++] = TAG[m.type];
        w.uint(m.term, "term");
        w.bool(m.reject, "reject");
        return;
      case "app": {
        w.buf[w.pos++] = 0x86;
        w.buf[w.pos++] = TAG.app;
        w.uint(m.term, "term");
        w.uint(m.prevIndex, "prevIndex");
        w.uint(m.prevTerm, "prevTerm");
        w.uint(m.commit, "commit");
        const es = m.entries;
        w.head(4, es.length * 2);
        for (let k = 0; k < es.length; k++) {
          const e = es[k];
          if (e.index !== m.prevIndex + 1 + k) {
            throw new EncodeError(`append entries are not contiguous after ${m.prevIndex}`);
          }
          w.uint(e.term, "entry term");
          w.bytes(e.data, "entry data");
        }
        return;
      }
      case "appResp":
        w.buf[w.pos++] = 0x86;
        w.buf[w.pos++] = TAG.appResp;
        w.uint(m.term, "term");
        w.bool(m.reject, "reject");
        w.uint(m.index, "index");
        w.uint(m.hintIndex, "hintIndex");
        w.uint(m.hintTerm, "hintTerm");
        return;
      case "hb":
        w.buf[w.pos++] = 0x84;
        w.buf[w.pos++] = TAG.hb;
        w.uint(m.term, "term");
        w.uint(m.commit, "commit");
        w.uint(m.ctx, "ctx");
        return;
      case "hbResp":
        w.buf[w.pos++] = 0x83;
        w.buf[w.pos++] = TAG.hbResp;
        w.uint(m.term, "term");
        w.uint(m.ctx, "ctx");
        return;
      case "snap": {
        w.buf[w.pos++] = 0x89;
        w.buf[w.pos++] = TAG.snap;
        w.uint(m.term, "term");
        w.uint(m.snapshot.index, "snapshot index");
        w.uint(m.snapshot.term, "snapshot term");
        const voters = m.snapshot.voters;
        w.head(4, voters.length);
        for (const v of voters) {
          if (typeof v !== "string") throw new EncodeError("a voter is not a string");
          const body = utf8(v);
          w.head(3, body.length);
          w.raw(body);
        }
        w.uint(m.size, "size");
        w.uint(m.checksum, "checksum");
        w.uint(m.offset, "offset");
        w.bytes(m.data, "chunk data");
        return;
      }
      case "snapResp":
        w.buf[w.pos++] = 0x85;
        w.buf[w.pos++] = TAG.snapResp;
        w.uint(m.term, "term");
        w.uint(m.index, "index");
        w.uint(m.received, "received");
        w.uint(m.transfer, "transfer");
        return;
      default: {
        const never: never = m;
        throw new EncodeError(`unknown message type ${(never as Message).type}`);
      }
    }
  }
}
