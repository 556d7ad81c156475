import assert from "node:assert/strict";
import { Encoder } from "../../deps.ts";
import type { Message } from "../../src/core/types.ts";
import { CBOR_OPTIONS, EncodeError, FrameCodec } from "../../src/transport/codec.ts";
import {
  FrameError,
  type FrameErrorReason,
  resolveFrameLimits,
  scanCbor,
  TAG,
} from "../../src/transport/frame_validation.ts";
import { everyMessage } from "./fixtures.ts";

const header = { cluster: "c1", from: "a", to: "b" };
const raw = new Encoder(CBOR_OPTIONS);

/** A frame with the envelope `over` laid over a valid one. */
function frame(over: Record<string, unknown> = {}, msgs: unknown[] = []): Uint8Array {
  return raw.encode({ v: 1, cluster: "c1", from: "a", to: "b", msgs, ...over });
}

function rejects(
  codec: FrameCodec,
  bytes: Uint8Array,
  reason: FrameErrorReason,
  expect = header,
): void {
  assert.throws(
    () => codec.decode(bytes, expect),
    (e: unknown) => {
      assert.ok(e instanceof FrameError, `not a FrameError: ${e}`);
      assert.equal(e.reason, reason, e.message);
      return true;
    },
  );
}

Deno.test("codec: every message type round-trips, alone and in one batch", () => {
  const codec = new FrameCodec();
  const all = everyMessage();
  for (const m of all) assert.deepEqual(codec.decode(codec.encode(header, [m]), header), [m]);
  const batch = codec.decode(codec.encode(header, all), header);
  assert.deepEqual(batch, all);
  // Decoded bytes are plain Uint8Arrays (not Node Buffers, whose slice() does not copy).
  const app = batch.find((m) => m.type === "app" && m.entries.length > 0);
  assert.ok(app && app.type === "app");
  assert.equal(Object.getPrototypeOf(app.entries[0].data), Uint8Array.prototype);
});

Deno.test("codec: entries never keep a much larger buffer than their frame alive", () => {
  const codec = new FrameCodec();
  const m = everyMessage()[4];
  const frame = codec.encode(header, [m]);
  // The frame as a slice of a big socket read buffer: decoding copies it first.
  const big = new Uint8Array(1 << 20);
  big.set(frame, 1000);
  const [got] = codec.decode(big.subarray(1000, 1000 + frame.length), header);
  assert.ok(got.type === "app");
  assert.deepEqual(got, m);
  assert.ok(
    got.entries[0].data.buffer.byteLength <= Math.max(4096, 2 * frame.length) + frame.length,
  );
  // Mutating the socket buffer afterwards changes nothing decoded.
  big.fill(0);
  assert.deepEqual(got, m);
});

Deno.test("codec: an empty frame (keepalive) round-trips", () => {
  const codec = new FrameCodec();
  assert.deepEqual(codec.decode(codec.encode(header, []), header), []);
});

Deno.test("codec: positional messages are much smaller than maps", () => {
  const codec = new FrameCodec();
  const msgs: Message[] = [{
    type: "appResp",
    term: 9,
    from: "a",
    to: "b",
    reject: false,
    index: 1234,
    hintIndex: 0,
    hintTerm: 0,
  }];
  const positional = codec.encode(header, msgs).length;
  const asMaps = raw.encode({ v: 1, cluster: "c1", from: "a", to: "b", msgs }).length;
  assert.ok(positional * 2 < asMaps, `${positional} vs ${asMaps}`);
});

Deno.test("codec: encoding refuses messages that do not fit the header or the log", () => {
  const codec = new FrameCodec();
  const hb: Message = { type: "hb", term: 1, from: "a", to: "c", commit: 0, ctx: 0 };
  assert.throws(() => codec.encode(header, [hb]), EncodeError);
  assert.throws(() => codec.encode(header, [{ ...hb, to: "b", from: "x" }]), EncodeError);
  const gap: Message = {
    type: "app",
    term: 2,
    from: "a",
    to: "b",
    prevIndex: 5,
    prevTerm: 1,
    commit: 0,
    entries: [{ index: 7, term: 2, data: new Uint8Array(1) }],
  };
  assert.throws(() => codec.encode(header, [gap]), EncodeError);
});

Deno.test("codec: encodeBatch splits under the frame and message limits, keeping order", () => {
  const codec = new FrameCodec({ maxFrameBytes: 4096, maxMessages: 10 });
  const msgs: Message[] = [];
  for (let i = 0; i < 50; i++) {
    msgs.push({
      type: "app",
      term: 1,
      from: "a",
      to: "b",
      prevIndex: i,
      prevTerm: 1,
      commit: 0,
      entries: [{ index: i + 1, term: 1, data: new Uint8Array(i % 7 === 0 ? 1500 : 10) }],
    });
  }
  const huge: Message = {
    ...msgs[0],
    entries: [{ index: 1, term: 1, data: new Uint8Array(5000) }],
  } as Message;
  const { frames, oversized } = codec.encodeBatch(header, [
    ...msgs.slice(0, 25),
    huge,
    ...msgs.slice(25),
  ]);
  assert.deepEqual(oversized, [huge]);
  assert.ok(frames.length >= 5);
  const back = frames.flatMap((f) => {
    assert.ok(f.length <= 4096);
    return codec.decode(f, header);
  });
  assert.deepEqual(back, msgs);
});

Deno.test("scan: refuses malformed and unsupported CBOR before decoding", () => {
  const bad: [string, number[], FrameErrorReason][] = [
    ["empty", [], "empty"],
    ["truncated head", [0xa1, 0x61, 0x76, 0x19, 0x01], "malformed-cbor"],
    ["truncated map", [0xa2, 0x61, 0x76, 0x01], "malformed-cbor"],
    ["trailing bytes", [0xa0, 0x00], "malformed-cbor"],
    ["reserved info", [0xa1, 0x61, 0x76, 0x1c], "malformed-cbor"],
    ["indefinite array", [0xa1, 0x61, 0x76, 0x9f, 0xff], "unsupported-cbor"],
    ["indefinite map", [0xbf, 0xff], "unsupported-cbor"],
    ["lone break", [0xa1, 0x61, 0x76, 0xff], "unsupported-cbor"],
    ["tag", [0xa1, 0x61, 0x76, 0xc1, 0x00], "unsupported-cbor"],
    ["shared-ref tag", [0xa1, 0x61, 0x76, 0xd8, 0x1c, 0x80], "unsupported-cbor"],
    ["simple value", [0xa1, 0x61, 0x76, 0xf0], "unsupported-cbor"],
    ["one-byte simple", [0xa1, 0x61, 0x76, 0xf8, 0x20], "unsupported-cbor"],
    ["integer key", [0xa1, 0x01, 0x01], "unsupported-cbor"],
    ["top-level array", [0x80], "bad-envelope"],
    ["top-level int", [0x01], "bad-envelope"],
    ["4G array", [0xa1, 0x61, 0x76, 0x9a, 0xff, 0xff, 0xff, 0xff], "malformed-cbor"],
    [
      "2^64 bytes",
      [0xa1, 0x61, 0x76, 0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
      "malformed-cbor",
    ],
    ["map of 2^32 pairs", [0xba, 0xff, 0xff, 0xff, 0xff], "malformed-cbor"],
    ["text overrun", [0xa1, 0x61, 0x76, 0x78, 0x40, 0x41], "malformed-cbor"],
    ["depth 5", [0xa1, 0x61, 0x76, 0x81, 0x81, 0x81, 0x80], "too-deep"],
  ];
  for (const [what, bytes, reason] of bad) {
    assert.throws(
      () => scanCbor(new Uint8Array(bytes)),
      (e: unknown) => e instanceof FrameError && e.reason === reason,
      what,
    );
  }
  scanCbor(new Uint8Array([0xa1, 0x61, 0x76, 0x81, 0x81, 0x80])); // depth 4 is allowed
  const deep = new Uint8Array(100_000).fill(0x81);
  deep[0] = 0xa1;
  assert.throws(() => scanCbor(deep), FrameError);
});

Deno.test("decode: refuses a frame over the size limit without reading it", () => {
  const codec = new FrameCodec({ maxFrameBytes: 64 });
  rejects(codec, new Uint8Array(65), "too-large");
});

Deno.test("decode: refuses each kind of bad envelope", () => {
  const codec = new FrameCodec({ maxMessages: 3 });
  const hb = [TAG.hb, 1, 0, 0];
  const missing = raw.encode({ v: 1, cluster: "c1", from: "a", to: "b" });
  rejects(codec, missing, "bad-envelope");
  rejects(codec, frame({ extra: 1 }), "bad-envelope");
  rejects(codec, frame({ v: 2 }), "bad-version");
  rejects(codec, frame({ v: "1" }), "bad-version");
  rejects(codec, frame({ cluster: "c2" }), "wrong-cluster");
  rejects(codec, frame({ from: "c" }), "wrong-sender");
  rejects(codec, frame({ to: "c" }), "wrong-receiver");
  rejects(codec, frame({ to: "b" }, [hb]), "wrong-sender", { ...header, from: "z" });
  rejects(codec, frame({ msgs: {} }), "bad-envelope");
  rejects(codec, frame({ msgs: "x" }), "bad-envelope");
  rejects(codec, frame({}, [hb, hb, hb, hb]), "too-many");
  assert.equal(codec.decode(frame({}, [hb, hb, hb]), header).length, 3);
});

Deno.test("decode: refuses each kind of bad message field", () => {
  const codec = new FrameCodec({ maxEntries: 4, maxVoters: 3, maxIdLength: 8 });
  const d = new Uint8Array([1, 2]);
  const ok: unknown[][] = [
    [TAG.vote, 3, 10, 2],
    [TAG.voteResp, 3, true],
    [TAG.app, 3, 10, 2, 9, [2, d, 3, d]],
    [TAG.appResp, 3, false, 10, 0, 0],
    [TAG.hb, 3, 9, 1],
    [TAG.hbResp, 3, 1],
    [TAG.snap, 3, 50, 2, ["a", "b"], 10, 7, 8, d],
    [TAG.snapResp, 3, 50, 10, 7],
  ];
  for (const m of ok) {
    assert.equal(codec.decode(frame({}, [m]), header).length, 1, JSON.stringify(m));
  }
  const bad: [string, unknown][] = [
    ["not an array", { t: 6 }],
    ["empty array", []],
    ["unknown tag", [42, 1]],
    ["string tag", ["hb", 1, 0, 0]],
    ["short", [TAG.vote, 3, 10]],
    ["long", [TAG.hb, 3, 9, 1, 0]],
    ["negative term", [TAG.hb, -1, 0, 0]],
    ["fractional term", [TAG.hb, 1.5, 0, 0]],
    ["unsafe term", [TAG.hb, 2 ** 60, 0, 0]],
    ["NaN", [TAG.hb, NaN, 0, 0]],
    ["Infinity", [TAG.hb, 1, Infinity, 0]],
    ["string index", [TAG.vote, 3, "10", 2]],
    ["null index", [TAG.vote, 3, null, 2]],
    ["bool index", [TAG.vote, 3, true, 2]],
    ["bytes index", [TAG.vote, 3, d, 2]],
    ["numeric reject", [TAG.voteResp, 3, 1]],
    ["entries not array", [TAG.app, 3, 10, 2, 9, d]],
    ["odd entries", [TAG.app, 3, 10, 2, 9, [2]]],
    ["entry data not bytes", [TAG.app, 3, 10, 2, 9, [2, "x"]]],
    ["entry term not int", [TAG.app, 3, 10, 2, 9, [d, d]]],
    ["entry term decreasing", [TAG.app, 3, 10, 2, 9, [3, d, 2, d]]],
    ["entry term below prevTerm", [TAG.app, 3, 10, 2, 9, [1, d]]],
    ["entry term past message term", [TAG.app, 3, 10, 2, 9, [4, d]]],
    ["too many entries", [TAG.app, 3, 10, 2, 9, [2, d, 2, d, 2, d, 2, d, 2, d]]],
    ["index overflow", [TAG.app, 3, Number.MAX_SAFE_INTEGER, 2, 9, [2, d]]],
    ["voters not array", [TAG.snap, 3, 50, 2, "a", 10, 7, 8, d]],
    ["voter not string", [TAG.snap, 3, 50, 2, [1], 10, 7, 8, d]],
    ["empty voter", [TAG.snap, 3, 50, 2, [""], 10, 7, 8, d]],
    ["long voter", [TAG.snap, 3, 50, 2, ["abcdefghi"], 10, 7, 8, d]],
    ["repeated voter", [TAG.snap, 3, 50, 2, ["a", "a"], 10, 7, 8, d]],
    ["too many voters", [TAG.snap, 3, 50, 2, ["a", "b", "c", "d"], 10, 7, 8, d]],
    ["chunk past size", [TAG.snap, 3, 50, 2, ["a"], 9, 7, 8, d]],
    ["wide checksum", [TAG.snap, 3, 50, 2, ["a"], 10, 2 ** 32, 8, d]],
    ["chunk not bytes", [TAG.snap, 3, 50, 2, ["a"], 10, 7, 8, [1, 2]]],
  ];
  for (const [what, m] of bad) {
    assert.throws(
      () => codec.decode(frame({}, [m]), header),
      (e: unknown) => e instanceof FrameError && ["bad-message", "too-many"].includes(e.reason),
      what,
    );
  }
});

Deno.test("decode: 64-bit integers beyond 2^53 are refused, up to 2^53 accepted", () => {
  const codec = new FrameCodec();
  const head = frame({}, [[TAG.hbResp, 1, 0]]);
  // Replace the trailing `0` (ctx) with a uint64 head.
  const withU64 = (hi: number, lo: number) => {
    const b = new Uint8Array(head.length + 8);
    b.set(head.subarray(0, head.length - 1));
    const v = new DataView(b.buffer);
    b[head.length - 1] = 0x1b;
    v.setUint32(head.length, hi);
    v.setUint32(head.length + 4, lo);
    return b;
  };
  const [m] = codec.decode(withU64(0x1f_ffff, 0xffff_ffff), header);
  assert.equal(m.type === "hbResp" && m.ctx, Number.MAX_SAFE_INTEGER);
  rejects(codec, withU64(0x20_0000, 0), "bad-message");
  rejects(codec, withU64(0xffff_ffff, 0xffff_ffff), "bad-message");
});

Deno.test("limits: must be positive integers", () => {
  assert.throws(() => resolveFrameLimits({ maxFrameBytes: 0 }), RangeError);
  assert.throws(() => resolveFrameLimits({ maxMessages: 1.5 }), RangeError);
  assert.equal(resolveFrameLimits().maxFrameBytes, 8 * 1024 * 1024);
});
