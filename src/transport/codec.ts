/**
 * The wire format of Raft frames: one CBOR item per WebSocket message,
 *
 * ```
 * { v: 1, cluster: "c", from: "a", to: "b", msgs: [ [tag, term, ...fields], ... ] }
 * ```
 *
 * The envelope is a map (read once per frame, and where a version change shows first); each
 * message is a positional array led by a numeric tag (see `TAG`), which is about half the size of
 * a map and faster to encode and decode (bench/transport_bench.ts measures both). Every message's
 * `from` and `to` are the envelope's, so they are not repeated per message: a peer cannot claim to
 * speak for another node inside a frame, and a receiver checks `to` once.
 *
 * Field order per tag (entries of an append are flattened as term, data pairs; their indexes follow
 * from `prevIndex`):
 *
 * | type                  | fields after tag, term                                      |
 * | --------------------- | ----------------------------------------------------------- |
 * | vote, prevote         | lastIndex, lastTerm                                         |
 * | voteResp, prevoteResp | reject                                                      |
 * | app                   | prevIndex, prevTerm, commit, [term1, data1, term2, ...]     |
 * | appResp               | reject, index, hintIndex, hintTerm                          |
 * | hb                    | commit, ctx                                                 |
 * | hbResp                | ctx                                                         |
 * | snap                  | index, term, [voters], size, checksum, offset, data         |
 * | snapResp              | index, received, transfer                                   |
 *
 * @module
 */
import { Decoder, Encoder, PLAIN_CBOR_OPTIONS } from "../../deps.ts";
import type { Message } from "../core/types.ts";
import {
  FRAME_VERSION,
  FrameError,
  type FrameExpectation,
  type FrameLimits,
  resolveFrameLimits,
  scanCbor,
  TAG,
  validateEnvelope,
} from "./frame_validation.ts";

/** Who a frame is from and to, within which cluster. */
export type FrameHeader = FrameExpectation;

/** A message cannot be put on the wire as it is (a bug in the sender, not a network fault). */
export class EncodeError extends Error {
  /** `message` says what is wrong. */
  constructor(message: string) {
    super(message);
    this.name = "EncodeError";
  }
}

/** Options shared by the encoder and decoder: plain CBOR, none of cbor-x's extensions. */
export const CBOR_OPTIONS = PLAIN_CBOR_OPTIONS;

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

function copy(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.byteLength);
  out.set(bytes);
  return out;
}

/**
 * Encodes and decodes Raft frames under one set of limits. Decoding refuses, with a `FrameError`,
 * anything that is not a valid frame for the connection it arrived on.
 *
 * @example
 * ```ts
 * const codec = new FrameCodec();
 * const header = { cluster: "c1", from: "a", to: "b" };
 * const frame = codec.encode(header, [{ type: "hb", term: 1, from: "a", to: "b", commit: 0, ctx: 0 }]);
 * const msgs = codec.decode(frame, header); // the same heartbeat
 * ```
 */
export class FrameCodec {
  /** The limits decoding enforces (and encoding splits batches to respect). */
  readonly limits: FrameLimits;
  readonly #encoder = new Encoder(CBOR_OPTIONS);
  // Byte strings come out as views into the frame being decoded (see `decode`).
  readonly #decoder = new Decoder(CBOR_OPTIONS);

  /** Limits default to `DEFAULT_FRAME_LIMITS`. */
  constructor(limits: Partial<FrameLimits> = {}) {
    this.limits = resolveFrameLimits(limits);
  }

  /**
   * Encode `messages` (all from `header.from` to `header.to`) as one frame, whatever its size.
   *
   * @throws {EncodeError} when a message's `from` or `to` differs from the header's, or an
   * append's entries are not contiguous.
   */
  encode(header: FrameHeader, messages: readonly Message[]): Uint8Array {
    const msgs = new Array<Wire>(messages.length);
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i];
      if (m.from !== header.from || m.to !== header.to) {
        throw new EncodeError(`message ${m.from}->${m.to} in a frame ${header.from}->${header.to}`);
      }
      msgs[i] = toWire(m);
    }
    return this.#envelope(header, msgs);
  }

  /**
   * Encode `messages` as one frame, or as several in order when one would pass `maxFrameBytes`
   * or `maxMessages`. A single message that alone passes `maxFrameBytes` cannot be sent: it is
   * left out and reported in `oversized`.
   *
   * @throws {EncodeError} as `encode` does.
   */
  encodeBatch(
    header: FrameHeader,
    messages: readonly Message[],
  ): { frames: Uint8Array[]; oversized: Message[] } {
    const limits = this.limits;
    if (messages.length <= limits.maxMessages) {
      // The common case, one frame, without the splitting machinery.
      const frame = this.encode(header, messages);
      if (frame.length <= limits.maxFrameBytes) return { frames: [frame], oversized: [] };
    }
    const frames: Uint8Array[] = [];
    const oversized: Message[] = [];
    const split = (from: number, to: number): void => {
      const count = to - from;
      if (count === 0) return;
      if (count <= this.limits.maxMessages) {
        const frame = this.encode(header, messages.slice(from, to));
        if (frame.length <= this.limits.maxFrameBytes) {
          frames.push(frame);
          return;
        }
        if (count === 1) {
          oversized.push(messages[from]);
          return;
        }
      }
      const mid = from + Math.floor(count / 2);
      split(from, mid);
      split(mid, to);
    };
    split(0, messages.length);
    return { frames, oversized };
  }

  /**
   * Decode and validate one frame that arrived on a connection authenticated as
   * `expect.from`, and return its messages.
   *
   * @throws {FrameError} for anything that is not a valid frame; never any other error.
   */
  decode(frame: Uint8Array, expect: FrameExpectation): Message[] {
    if (frame.length > this.limits.maxFrameBytes) {
      throw new FrameError("too-large", `${frame.length} bytes > ${this.limits.maxFrameBytes}`);
    }
    scanCbor(frame);
    // Commands and chunks come out as views into the bytes decoded, and entries stay in the log
    // long after the frame: when the frame is a slice of a much larger buffer (a socket's read
    // buffer), decode from a copy, so an entry never keeps more than about twice its frame alive.
    // A Node Buffer becomes a plain view, so what the decoder slices from it is plain too.
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
      // The scan should leave cbor-x nothing to object to; this is the last line of defence.
      throw new FrameError("malformed-cbor", e instanceof Error ? e.message : String(e));
    }
    try {
      return validateEnvelope(value, expect, this.limits);
    } catch (e) {
      if (e instanceof FrameError) throw e;
      throw new FrameError("bad-message", e instanceof Error ? e.message : String(e));
    }
  }

  #envelope(header: FrameHeader, msgs: Wire[]): Uint8Array {
    return this.#encoder.encode({
      v: FRAME_VERSION,
      cluster: header.cluster,
      from: header.from,
      to: header.to,
      msgs,
    });
  }
}
