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
import { PLAIN_CBOR_OPTIONS } from "../../deps.ts";
import type { Message } from "../core/types.ts";
import { FrameDecoder } from "./frame_decoder.ts";
import { EncodeError, FrameEncoder } from "./frame_encoder.ts";
import {
  FrameError,
  type FrameExpectation,
  type FrameLimits,
  resolveFrameLimits,
  scanCbor,
} from "./frame_validation.ts";

export { EncodeError };

/** Who a frame is from and to, within which cluster. */
export type FrameHeader = FrameExpectation;

/**
 * Options of a general CBOR encoder or decoder that agree with the wire: plain CBOR, none of
 * cbor-x's extensions. The codec itself writes and reads frames directly (frame_encoder.ts,
 * frame_decoder.ts); the handshake and tools use these.
 */
export const CBOR_OPTIONS = PLAIN_CBOR_OPTIONS;

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
  readonly #encoder = new FrameEncoder();
  readonly #decoder = new FrameDecoder();

  /** Limits default to `DEFAULT_FRAME_LIMITS`. */
  constructor(limits: Partial<FrameLimits> = {}) {
    this.limits = resolveFrameLimits(limits);
  }

  /**
   * Encode `messages` (all from `header.from` to `header.to`) as one frame, whatever its size.
   * The frame is a view into a buffer the codec shares between frames but never writes twice.
   *
   * @throws {EncodeError} when a message's `from` or `to` differs from the header's, an append's
   * entries are not contiguous, or a field does not have its type (a number that is not a
   * non-negative safe integer, data that is not a Uint8Array), which no peer would accept.
   */
  encode(header: FrameHeader, messages: readonly Message[]): Uint8Array {
    return this.#encoder.encode(header, messages);
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
    try {
      // One pass that checks the CBOR as it reads the schema: what it accepts, the scan would.
      return this.#decoder.decode(frame, expect, this.limits, false);
    } catch {
      // Something is off, or merely unusual: find out exactly as the two passes always did.
    }
    scanCbor(frame);
    try {
      return this.#decoder.decode(frame, expect, this.limits, true);
    } catch (e) {
      if (e instanceof FrameError) throw e;
      // The scan leaves the decoder nothing to trip over; this is the last line of defence.
      throw new FrameError("malformed-cbor", e instanceof Error ? e.message : String(e));
    }
  }
}
