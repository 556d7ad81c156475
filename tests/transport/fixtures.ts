/**
 * Shared pieces of the transport tests: one message of every type with every field set, a
 * collecting logger, and a bounded wait.
 *
 * @module
 */
import type { Message, NodeId } from "../../src/core/types.ts";
import type { Random } from "../../src/testing/random.ts";
import type { TransportLogEntry } from "../../src/transport/websocket_transport.ts";

/** One message of each type from `from` to `to`, every field away from its zero value. */
export function everyMessage(from: NodeId = "a", to: NodeId = "b"): Message[] {
  const bytes = (n: number, seed: number) =>
    Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 255);
  return [
    { type: "vote", term: 7, from, to, lastIndex: 42, lastTerm: 6 },
    { type: "prevote", term: 8, from, to, lastIndex: 43, lastTerm: 7 },
    { type: "voteResp", term: 7, from, to, reject: true },
    { type: "prevoteResp", term: 8, from, to, reject: false },
    {
      type: "app",
      term: 9,
      from,
      to,
      prevIndex: 100,
      prevTerm: 8,
      commit: 99,
      entries: [
        { index: 101, term: 8, data: bytes(5, 1) },
        { index: 102, term: 9, data: new Uint8Array() },
        { index: 103, term: 9, data: bytes(300, 2) },
      ],
    },
    { type: "app", term: 9, from, to, prevIndex: 103, prevTerm: 9, commit: 103, entries: [] },
    { type: "appResp", term: 9, from, to, reject: true, index: 100, hintIndex: 90, hintTerm: 5 },
    { type: "hb", term: 9, from, to, commit: 77, ctx: 12 },
    { type: "hbResp", term: 9, from, to, ctx: 12 },
    {
      type: "snap",
      term: 10,
      from,
      to,
      snapshot: { index: 500, term: 9, voters: ["a", "b", "c"] },
      size: 4096,
      checksum: 0xdeadbeef,
      offset: 1024,
      data: bytes(1024, 3),
    },
    {
      type: "snap",
      term: 10,
      from,
      to,
      snapshot: { index: 500, term: 9, voters: ["a"] },
      size: 0,
      checksum: 0,
      offset: 0,
      data: new Uint8Array(),
    },
    { type: "snapResp", term: 10, from, to, index: 500, received: 2048, transfer: 9 },
    // Terms and indexes beyond 32 bits travel as CBOR floats and must come back exact.
    { type: "hb", term: 2 ** 40 + 3, from, to, commit: Number.MAX_SAFE_INTEGER, ctx: 2 ** 33 },
  ];
}

/** A logger that keeps what it is given. */
export function collectingLog(): {
  entries: TransportLogEntry[];
  log: (e: TransportLogEntry) => void;
} {
  const entries: TransportLogEntry[] = [];
  return { entries, log: (e) => entries.push(e) };
}

/** Poll `condition` every 10 ms until it holds; fail after `timeoutMs` with `what`. */
export async function waitFor(
  what: string,
  condition: () => boolean,
  timeoutMs = 20_000,
): Promise<void> {
  const start = performance.now();
  while (!condition()) {
    if (performance.now() - start > timeoutMs) {
      throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolve after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Apply 1–8 random byte-level mutations to a copy of `src` (flips, truncation, huge length heads,
 * tags, deep nesting…): what the fuzz tests throw at decoders, in process and over sockets.
 */
export function mutateFrame(r: Random, src: Uint8Array): Uint8Array {
  let b = Array.from(src);
  for (let n = 1 + r.int(8); n > 0; n--) {
    const at = b.length === 0 ? 0 : r.int(b.length);
    switch (r.int(9)) {
      case 0:
        b[at] ^= 1 << r.int(8);
        break;
      case 1:
        b[at] = r.int(256);
        break;
      case 2:
        b.splice(at, 0, r.int(256));
        break;
      case 3:
        b.splice(at, 1 + r.int(4));
        break;
      case 4:
        b = b.slice(0, at); // truncate
        break;
      case 5: // a huge length head
        b.splice(
          at,
          0,
          r.pick([0x9b, 0x5b, 0x7b, 0xbb, 0x9a, 0x5a]),
          0xff,
          0xff,
          0xff,
          0xff,
          0,
          0,
          0,
          0,
        );
        break;
      case 6: // a tag, indefinite-length start, or break
        b.splice(at, 0, r.pick([0xc0, 0xd8, 0xd9, 0x9f, 0xbf, 0x5f, 0xff, 0xf7, 0xf8]));
        break;
      case 7: { // duplicate a slice
        const len = r.int(16);
        b.splice(at, 0, ...b.slice(at, at + len));
        break;
      }
      default: // deep nesting
        b.splice(at, 0, ...new Array(1 + r.int(200)).fill(0x81));
    }
  }
  return new Uint8Array(b);
}
