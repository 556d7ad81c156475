/**
 * Reads a frame and checks it against the wire schema (codec.ts) in the same walk: each field is
 * read where the schema expects it and checked as it is read, and the `Message` objects are built
 * from the bytes directly, with no intermediate CBOR value tree.
 *
 * It accepts exactly the frames the general path (`scanCbor`, cbor-x, then a field-by-field check
 * of the decoded value) accepted, with the same refusal reasons; text is decoded with
 * `TextDecoder`, so malformed UTF-8 reads as U+FFFD where cbor-x may have read something else.
 * Tests compare both paths on random, mutated and unusually encoded frames.
 *
 * Two modes (see `FrameDecoder.decode`): after `scanCbor`, every head is complete, every length
 * fits, containers nest at most four deep and the walk may skip what it does not need; without
 * it, the walk checks each of those as it goes and gives up (`UNSURE`) at anything a frame from
 * this codec never holds, leaving the verdict to a scan and a second walk.
 *
 * @module
 */
import type { Entry, Message, NodeId } from "../core/types.ts";
import { cborText } from "./frame_encoder.ts";
import {
  FRAME_VERSION,
  FrameError,
  type FrameExpectation,
  type FrameLimits,
  TAG,
} from "./frame_validation.ts";

const MAX_U32 = 0xffff_ffff;
const MAX_SAFE_HI = 0x1f_ffff; // the high 32 bits of Number.MAX_SAFE_INTEGER

// Envelope keys, as the bits of a mask of keys seen.
const K_V = 1;
const K_CLUSTER = 2;
const K_FROM = 4;
const K_TO = 8;
const K_MSGS = 16;
const K_ALL = 31;

function bad(detail: string): never {
  throw new FrameError("bad-message", detail);
}

function copy(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.byteLength);
  out.set(bytes);
  return out;
}

/** What a connection's frames must say, as the bytes a peer writes it with. */
interface ExpectedBytes {
  readonly cluster: Uint8Array;
  readonly from: Uint8Array;
  readonly to: Uint8Array;
}

const textDecoder = new TextDecoder();
const float = new DataView(new ArrayBuffer(8));

/** Decodes validated frames; one per codec, not reentrant. */
export class FrameDecoder {
  readonly #expected = new WeakMap<FrameExpectation, ExpectedBytes>();
  #lastExpect: FrameExpectation | undefined;
  #lastExpected: ExpectedBytes | undefined;
  #b: Uint8Array = new Uint8Array(0);
  #p = 0;
  // Where byte strings that outlive the frame (commands, chunks) are cut from; see `#keep`.
  #own: Uint8Array | undefined;
  // The argument of the head read last (lengths and integers up to 2^53), and its additional info.
  #arg = 0;
  #info = 0;
  #lastKey = "";
  #scanned = false;

  /**
   * The messages of `frame`, which arrived on a connection that authenticated as `expect.from`.
   *
   * Unless `scanned` (the frame passed `scanCbor`), the walk checks what the scan would have as it
   * goes, and throws `UNSURE` at anything it would have to skip unchecked or that no valid frame
   * holds: a container where a number should be, `msgs` before another key, a tag, a truncated
   * item. A frame it returns messages for is one the scan accepts; for any other, the caller
   * scans and decodes again (`scanned`), which gives the refusal (or messages) of the two-pass
   * path exactly.
   *
   * @throws {FrameError} for anything the schema or `limits` refuse, and `UNSURE` (see above).
   */
  decode(
    frame: Uint8Array,
    expect: FrameExpectation,
    limits: FrameLimits,
    scanned: boolean,
  ): Message[] {
    this.#b = frame;
    this.#p = 0;
    this.#own = undefined;
    this.#scanned = scanned;
    try {
      const out = this.#envelope(expect, limits);
      if (this.#p !== frame.length) throw UNSURE; // trailing bytes
      return out;
    } finally {
      // Hold nothing of the frame between calls.
      this.#b = EMPTY;
      this.#own = undefined;
    }
  }

  #expectedBytes(expect: FrameExpectation): ExpectedBytes {
    // Frames from one peer come in runs: the last expectation is the likely one.
    if (expect === this.#lastExpect) return this.#lastExpected!;
    let e = this.#expected.get(expect);
    if (e === undefined) {
      e = {
        cluster: cborText(expect.cluster),
        from: cborText(expect.from),
        to: cborText(expect.to),
      };
      this.#expected.set(expect, e);
    }
    this.#lastExpect = expect;
    this.#lastExpected = e;
    return e;
  }

  /**
   * Read one head: returns its major type; `#arg` and `#info` hold the rest.
   *
   * @throws `UNSURE` at the end of the frame, a truncated head, a tag, an indefinite length or a
   * reserved or unassigned simple value (never, after the scan).
   */
  #head(): number {
    const b = this.#b;
    let p = this.#p;
    if (p >= b.length) throw UNSURE;
    const ib = b[p++];
    const info = ib & 0x1f;
    const major = ib >> 5;
    let arg: number;
    if (info < 24) {
      arg = info;
      if (major === 7 && info < 20) throw UNSURE;
    } else if (info > 27 || major === 7 && info === 24 || p + (1 << (info - 24)) > b.length) {
      throw UNSURE;
    } else if (info === 24) {
      arg = b[p++];
    } else if (info === 25) {
      arg = (b[p] << 8) | b[p + 1];
      p += 2;
    } else if (info === 26) {
      arg = ((b[p] << 24) >>> 0) + ((b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]);
      p += 4;
    } else {
      // 27: only a length or a uint64 below 2^53 needs the value; anything above reads as
      // Infinity, which every check refuses (the scan bounded lengths already).
      const hi = ((b[p] << 24) >>> 0) + ((b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]);
      const lo = ((b[p + 4] << 24) >>> 0) + ((b[p + 5] << 16) | (b[p + 6] << 8) | b[p + 7]);
      arg = hi > MAX_SAFE_HI ? Infinity : hi * 0x1_0000_0000 + lo;
      p += 8;
    }
    if (major === 6) throw UNSURE;
    this.#p = p;
    this.#arg = arg;
    this.#info = info;
    return major;
  }

  /**
   * Skip the item whose head was just read (of major type `major`). Only a scanned frame has its
   * containers skipped: in one that is not, their depth and contents are unchecked.
   */
  #skipRest(major: number): void {
    if (major === 2 || major === 3) {
      this.#payload();
      return;
    }
    let items = major === 4 ? this.#arg : major === 5 ? 2 * this.#arg : 0;
    if (items > 0 && !this.#scanned) throw UNSURE;
    while (items > 0) {
      const mt = this.#head();
      items--;
      if (mt === 2 || mt === 3) this.#p += this.#arg;
      else if (mt === 4) items += this.#arg;
      else if (mt === 5) items += 2 * this.#arg;
    }
  }

  /** Throw `UNSURE` unless `items` items could follow (each takes a byte): before allocating. */
  #fits(items: number): void {
    if (items > this.#b.length - this.#p) throw UNSURE;
  }

  /** Step over the payload of the string whose head was just read; returns where it starts. */
  #payload(): number {
    const start = this.#p;
    const end = start + this.#arg;
    if (end > this.#b.length) throw UNSURE;
    this.#p = end;
    return start;
  }

  /** The float of the major-7 head just read (info 25, 26 or 27), or NaN for other simple values. */
  #float(): number {
    const b = this.#b;
    const info = this.#info;
    if (info === 25) {
      // Half precision: its bits are the argument.
      const h = this.#arg;
      const exp = (h >> 10) & 0x1f;
      const frac = h & 0x3ff;
      const v = exp === 0
        ? frac / (1 << 24)
        : exp === 0x1f
        ? (frac ? NaN : Infinity)
        : (1024 + frac) * 2 ** (exp - 25);
      return h & 0x8000 ? -v : v;
    }
    if (info === 26) {
      float.setUint32(0, this.#arg);
      return float.getFloat32(0);
    }
    if (info === 27) {
      const p = this.#p - 8;
      for (let i = 0; i < 8; i++) float.setUint8(i, b[p + i]);
      return float.getFloat64(0);
    }
    return NaN;
  }

  /**
   * The next item as the general decoder's number would be: unsigned and negative integers that
   * fit 32 bits (a uint64 never equals a number there: it decodes as a bigint), and floats; NaN for
   * anything else (which then equals nothing), skipping it.
   */
  #number(): number {
    const major = this.#head();
    if (major === 0) return this.#info === 27 ? NaN : this.#arg;
    if (major === 1) return this.#info === 27 ? NaN : -1 - this.#arg;
    if (major === 7) return this.#float();
    this.#skipRest(major);
    return NaN;
  }

  /** A non-negative safe integer field (as an integer, a uint64, or an integral float). */
  #uint(what: string): number {
    const b = this.#b;
    const ib = b[this.#p];
    if (ib < 24) {
      this.#p++;
      return ib;
    }
    const major = this.#head();
    if (major === 0) {
      if (this.#arg === Infinity) bad(`${what} is not a non-negative safe integer`);
      return this.#arg;
    }
    if (major === 7) {
      const v = this.#float();
      if (Number.isSafeInteger(v) && v >= 0) return v;
    }
    bad(`${what} is not a non-negative safe integer`);
  }

  #bool(what: string): boolean {
    const ib = this.#b[this.#p++];
    if (ib === 0xf5) return true;
    if (ib === 0xf4) return false;
    bad(`${what} is not a boolean`);
  }

  /**
   * Whether the next item is the text `text`, whose usual encoding is `bytes`; skips it either
   * way. The bytes decide at once in the common case; any other item is decoded and compared, so
   * an unusual but valid encoding (a longer head than needed) is read as the general decoder would.
   */
  #equals(bytes: Uint8Array, text: string): boolean {
    const b = this.#b;
    const start = this.#p;
    const n = bytes.length;
    let same = true;
    for (let i = 0; same && i < n; i++) same = b[start + i] === bytes[i];
    if (same) {
      this.#p = start + n;
      return true;
    }
    return this.#text() === text;
  }

  /**
   * A byte string field as a view the caller may keep. When the frame is a slice of a much larger
   * buffer (a socket's read buffer), views come from a copy of the frame, so a kept command never
   * holds more than about twice its frame alive; a Node Buffer becomes a plain view, whose
   * `slice` copies as the core expects.
   */
  #bytes(what: string): Uint8Array {
    const major = this.#head();
    if (major !== 2) bad(`${what} is not a byte string`);
    const length = this.#arg;
    const start = this.#payload();
    const own = this.#keep();
    // The constructor is about twice as fast as subarray().
    return new Uint8Array(own.buffer, own.byteOffset + start, length);
  }

  #keep(): Uint8Array {
    if (this.#own !== undefined) return this.#own;
    const f = this.#b;
    const spare = f.buffer.byteLength - f.byteLength;
    this.#own = spare > Math.max(4096, f.byteLength)
      ? copy(f)
      : Object.getPrototypeOf(f) === Uint8Array.prototype
      ? f
      : new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
    return this.#own;
  }

  /** A text item as a string, or undefined (skipped) when it is not text. */
  #text(): string | undefined {
    const major = this.#head();
    if (major !== 3) {
      this.#skipRest(major);
      return undefined;
    }
    const start = this.#payload();
    return textDecoder.decode(this.#b.subarray(start, this.#p));
  }

  /** Which envelope key comes next (one of the K_ bits), or 0 for any other (then in `#lastKey`). */
  #key(): number {
    const b = this.#b;
    const p = this.#p;
    const ib = b[p];
    // Keys are text (the scan made sure); compare the few names there are by length and bytes.
    if (ib === 0x61 && b[p + 1] === 0x76) { // "v"
      this.#p = p + 2;
      return K_V;
    }
    if (ib === 0x62 && b[p + 1] === 0x74 && b[p + 2] === 0x6f) { // "to"
      this.#p = p + 3;
      return K_TO;
    }
    if (ib === 0x64) {
      const c0 = b[p + 1], c1 = b[p + 2], c2 = b[p + 3], c3 = b[p + 4];
      if (c0 === 0x66 && c1 === 0x72 && c2 === 0x6f && c3 === 0x6d) { // "from"
        this.#p = p + 5;
        return K_FROM;
      }
      if (c0 === 0x6d && c1 === 0x73 && c2 === 0x67 && c3 === 0x73) { // "msgs"
        this.#p = p + 5;
        return K_MSGS;
      }
    }
    if (ib === 0x67 && textIs(b, p + 1, CLUSTER_KEY)) {
      this.#p = p + 8;
      return K_CLUSTER;
    }
    // Not in the form an encoder usually writes: decode it (keys are text, the scan made sure).
    const key = this.#text();
    this.#lastKey = key ?? "";
    return key === "v"
      ? K_V
      : key === "cluster"
      ? K_CLUSTER
      : key === "from"
      ? K_FROM
      : key === "to"
      ? K_TO
      : key === "msgs"
      ? K_MSGS
      : 0;
  }

  #envelope(expect: FrameExpectation, limits: FrameLimits): Message[] {
    const major = this.#head();
    if (major !== 5) throw new FrameError("bad-envelope", "not a map");
    const pairs = this.#arg;
    const want = this.#expectedBytes(expect);
    let seen = 0;
    let version = NaN;
    let cluster = false;
    let from = false;
    let to = false;
    let msgsAt = -1;
    for (let i = 0; i < pairs; i++) {
      const key = this.#key();
      if (key === 0) {
        const k = this.#lastKey;
        throw new FrameError("bad-envelope", `unexpected key ${JSON.stringify(k.slice(0, 32))}`);
      }
      seen |= key;
      // A repeated key counts once and its last value holds, as for a decoded map.
      if (key === K_V) version = this.#number();
      else if (key === K_CLUSTER) cluster = this.#equals(want.cluster, expect.cluster);
      else if (key === K_FROM) from = this.#equals(want.from, expect.from);
      else if (key === K_TO) to = this.#equals(want.to, expect.to);
      else {
        msgsAt = this.#p;
        if (i < pairs - 1) this.#skipRest(this.#head());
      }
    }
    if (seen !== K_ALL) {
      let count = 0;
      for (let s = seen; s !== 0; s &= s - 1) count++;
      throw new FrameError("bad-envelope", `${count} of the 5 envelope keys`);
    }
    if (version !== FRAME_VERSION) {
      throw new FrameError("bad-version", `version ${String(version).slice(0, 16)}`);
    }
    if (!cluster) throw new FrameError("wrong-cluster", "cluster id differs");
    if (!from) {
      throw new FrameError(
        "wrong-sender",
        "sender is not the peer authenticated on this connection",
      );
    }
    if (!to) throw new FrameError("wrong-receiver", "receiver is not this node");
    // The map ends here, unless msgs is its last value (then it ends where msgs does).
    const mapEnd = this.#p;
    this.#p = msgsAt;
    if (this.#head() !== 4) throw new FrameError("bad-envelope", "msgs is not an array");
    const count = this.#arg;
    this.#fits(count);
    if (count > limits.maxMessages) {
      throw new FrameError("too-many", `${count} messages > ${limits.maxMessages}`);
    }
    const out = new Array<Message>(count);
    for (let i = 0; i < count; i++) out[i] = this.#message(expect.from, expect.to, limits, i);
    if (this.#p < mapEnd) this.#p = mapEnd;
    return out;
  }

  #message(from: NodeId, to: NodeId, limits: FrameLimits, i: number): Message {
    const major = this.#head();
    const length = this.#arg;
    if (major !== 4 || length < 2) bad(`message ${i} is not a tagged array`);
    const tag = this.#number();
    const term = this.#uint("term");
    switch (tag) {
      case TAG.vote:
      case TAG.prevote: {
        if (length !== 4) bad(`message ${i} (vote) is not an array of 4`);
        return {
          type: tag === TAG.vote ? "vote" : "prevote",
          term,
          from,
          to,
          lastIndex: this.#uint("lastIndex"),
          lastTerm: this.#uint("lastTerm"),
        };
      }
      case TAG.voteResp:
      case TAG.prevoteResp: {
        if (length !== 3) bad(`message ${i} (voteResp) is not an array of 3`);
        return {
          type: tag === TAG.voteResp ? "voteResp" : "prevoteResp",
          term,
          from,
          to,
          reject: this.#bool("reject"),
        };
      }
      case TAG.app: {
        if (length !== 6) bad(`message ${i} (app) is not an array of 6`);
        const prevIndex = this.#uint("prevIndex");
        const prevTerm = this.#uint("prevTerm");
        const commit = this.#uint("commit");
        const flat = this.#head();
        const flatLength = this.#arg;
        if (flat !== 4 || flatLength % 2 !== 0) bad("entries is not a flat term/data array");
        this.#fits(flatLength);
        const count = flatLength / 2;
        if (count > limits.maxEntries) {
          throw new FrameError("too-many", `${count} entries > ${limits.maxEntries}`);
        }
        if (prevIndex + count > Number.MAX_SAFE_INTEGER) bad("entry index overflows");
        const entries = new Array<Entry>(count);
        let last = prevTerm;
        for (let k = 0; k < count; k++) {
          const t = this.#uint("entry term");
          // A leader's entries carry terms that never decrease and never pass its own term.
          if (t < last || t > term) bad("entry terms out of order or past the message term");
          last = t;
          entries[k] = { index: prevIndex + 1 + k, term: t, data: this.#bytes("entry data") };
        }
        return { type: "app", term, from, to, prevIndex, prevTerm, entries, commit };
      }
      case TAG.appResp: {
        if (length !== 6) bad(`message ${i} (appResp) is not an array of 6`);
        return {
          type: "appResp",
          term,
          from,
          to,
          reject: this.#bool("reject"),
          index: this.#uint("index"),
          hintIndex: this.#uint("hintIndex"),
          hintTerm: this.#uint("hintTerm"),
        };
      }
      case TAG.hb: {
        if (length !== 4) bad(`message ${i} (hb) is not an array of 4`);
        return { type: "hb", term, from, to, commit: this.#uint("commit"), ctx: this.#uint("ctx") };
      }
      case TAG.hbResp: {
        if (length !== 3) bad(`message ${i} (hbResp) is not an array of 3`);
        return { type: "hbResp", term, from, to, ctx: this.#uint("ctx") };
      }
      case TAG.snap: {
        if (length !== 9) bad(`message ${i} (snap) is not an array of 9`);
        const index = this.#uint("snapshot index");
        const snapTerm = this.#uint("snapshot term");
        const vs = this.#head();
        const n = this.#arg;
        if (vs !== 4 || n > limits.maxVoters) {
          bad(`voters is not an array of at most ${limits.maxVoters}`);
        }
        this.#fits(n);
        const voters = new Array<string>(n);
        for (let k = 0; k < n; k++) {
          const v = this.#text();
          if (v === undefined || v.length === 0 || v.length > limits.maxIdLength) {
            bad(`voter is not a node id of 1..${limits.maxIdLength} characters`);
          }
          voters[k] = v;
        }
        if (new Set(voters).size !== voters.length) bad("voters repeat");
        const size = this.#uint("size");
        const checksum = this.#uint("checksum");
        if (checksum > MAX_U32) bad("checksum is wider than 32 bits");
        const offset = this.#uint("offset");
        const data = this.#bytes("chunk data");
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
        if (length !== 5) bad(`message ${i} (snapResp) is not an array of 5`);
        return {
          type: "snapResp",
          term,
          from,
          to,
          index: this.#uint("index"),
          received: this.#uint("received"),
          transfer: this.#uint("transfer"),
        };
      }
      default:
        bad(`message ${i} has unknown tag ${String(tag).slice(0, 16)}`);
    }
  }
}

const EMPTY = new Uint8Array(0);

/**
 * Thrown by a walk over a frame that was not scanned when it meets what a valid frame does not
 * have (see `FrameDecoder.decode`): scan and decode again to know what is wrong, if anything.
 */
export const UNSURE: unique symbol = Symbol("unsure");
const CLUSTER_KEY = [0x63, 0x6c, 0x75, 0x73, 0x74, 0x65, 0x72]; // "cluster"

function textIs(b: Uint8Array, at: number, ascii: readonly number[]): boolean {
  for (let i = 0; i < ascii.length; i++) if (b[at + i] !== ascii[i]) return false;
  return true;
}
