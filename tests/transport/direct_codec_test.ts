/**
 * The codec writes and reads frames directly (frame_encoder.ts, frame_decoder.ts). These tests hold
 * it to the general cbor-x path it replaced (reference_codec.ts): the same bytes for the same
 * messages, and for any frame, however unusually encoded or corrupted, the same messages or a
 * refusal for the same reason.
 *
 * Randomized tests print their seed; set FLOE_SEED to replay one.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Decoder } from "../../deps.ts";
import type { Entry, Message, NodeId } from "../../src/core/types.ts";
import { Random } from "../../src/testing/random.ts";
import { CBOR_OPTIONS, EncodeError, FrameCodec } from "../../src/transport/codec.ts";
import { FrameError, type FrameErrorReason, TAG } from "../../src/transport/frame_validation.ts";
import { everyMessage } from "./fixtures.ts";
import { ReferenceCodec } from "./reference_codec.ts";

const SEED = Number(Deno.env.get("FLOE_SEED") ?? Date.now() % 1_000_000);
const header = { cluster: "c1", from: "a", to: "b" };

/** A number of the kind a field holds, spread over every CBOR head width and past 2^32. */
function num(r: Random): number {
  switch (r.int(6)) {
    case 0:
      return r.int(24);
    case 1:
      return r.int(256);
    case 2:
      return r.int(65536);
    case 3:
      return r.nextUint32();
    case 4:
      return 2 ** 32 + r.int(2 ** 21) * 2 ** 32 + r.nextUint32() - 2 ** 32;
    default:
      return r.pick([0, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1]);
  }
}

function bytes(r: Random): Uint8Array {
  const n = r.chance(0.01) ? 65536 + r.int(1000) : r.chance(0.2) ? r.int(600) : r.int(30);
  return Uint8Array.from({ length: n }, () => r.int(256));
}

/** An id: ASCII, accented, CJK, astral (surrogate pairs), sometimes long. */
function id(r: Random): NodeId {
  const alphabet = ["a", "b", "z", "0", "-", "é", "ß", "日", "本", "😀", "𝄞"];
  const n = r.chance(0.05) ? 60 + r.int(60) : 1 + r.int(12);
  let s = "";
  for (let i = 0; i < n; i++) s += r.pick(alphabet);
  return s;
}

function message(r: Random, from: NodeId, to: NodeId): Message {
  const term = num(r);
  switch (r.int(10)) {
    case 0:
    case 1:
      return {
        type: r.chance(0.5) ? "vote" : "prevote",
        term,
        from,
        to,
        lastIndex: num(r),
        lastTerm: num(r),
      };
    case 2:
      return {
        type: r.chance(0.5) ? "voteResp" : "prevoteResp",
        term,
        from,
        to,
        reject: r.chance(0.5),
      };
    case 3:
    case 4: {
      const prevIndex = r.chance(0.5) ? r.int(1_000_000) : num(r) % 2 ** 50;
      const prevTerm = r.int(Math.min(term, 1000) + 1);
      const n = r.chance(0.05) ? 300 : r.int(10);
      const entries: Entry[] = [];
      let t = prevTerm;
      for (let k = 0; k < n; k++) {
        if (r.chance(0.2)) t += r.int(term - t + 1);
        entries.push({ index: prevIndex + 1 + k, term: t, data: bytes(r) });
      }
      return { type: "app", term, from, to, prevIndex, prevTerm, entries, commit: num(r) };
    }
    case 5:
      return {
        type: "appResp",
        term,
        from,
        to,
        reject: r.chance(0.5),
        index: num(r),
        hintIndex: num(r),
        hintTerm: num(r),
      };
    case 6:
      return { type: "hb", term, from, to, commit: num(r), ctx: num(r) };
    case 7:
      return { type: "hbResp", term, from, to, ctx: num(r) };
    case 8: {
      const data = bytes(r);
      const voters = [...new Set(Array.from({ length: 1 + r.int(6) }, () => id(r)))];
      const offset = r.int(1000);
      return {
        type: "snap",
        term,
        from,
        to,
        snapshot: { index: num(r), term: num(r), voters },
        size: offset + data.length + r.int(1000),
        checksum: r.nextUint32(),
        offset,
        data,
      };
    }
    default:
      return {
        type: "snapResp",
        term,
        from,
        to,
        index: num(r),
        received: num(r),
        transfer: num(r),
      };
  }
}

Deno.test(`direct codec: random batches give cbor-x's bytes and read back both ways (seed ${SEED})`, () => {
  const r = new Random(SEED);
  const codec = new FrameCodec();
  const reference = new ReferenceCodec(codec.limits);
  for (let i = 0; i < 1500; i++) {
    const h = { cluster: id(r), from: id(r), to: id(r) };
    const msgs = Array.from({ length: r.int(6) }, () => message(r, h.from, h.to));
    const where = `seed ${SEED}, batch ${i}`;
    const ours = codec.encode(h, msgs);
    const theirs = reference.encode(h, msgs);
    const plain = new Uint8Array(theirs.buffer, theirs.byteOffset, theirs.byteLength);
    assert.deepEqual(ours, plain, `${where}: bytes differ`);
    assert.deepEqual(codec.decode(ours, h), msgs, where);
    assert.deepEqual(reference.decode(ours, h), msgs, where);
    assert.deepEqual(codec.decode(theirs, h), msgs, where);
  }
});

// ---- frames written the unusual ways CBOR allows ----------------------------------------------

/** Writes a decoded frame back with randomly chosen, valid but unusual encodings. */
class OddWriter {
  readonly out: number[] = [];
  constructor(readonly r: Random) {}

  head(major: number, n: number): void {
    const r = this.r;
    const widths = [
      n < 24 ? 0 : 99,
      n < 0x100 ? 1 : 99,
      n < 0x10000 ? 2 : 99,
      n < 2 ** 32 ? 4 : 99,
      8,
    ]
      .filter((w) => w !== 99);
    // Mostly the shortest form, sometimes a wider one.
    const w = r.chance(0.7) ? widths[0] : r.pick(widths);
    if (w === 0) {
      this.out.push((major << 5) | n);
      return;
    }
    this.out.push((major << 5) | { 1: 24, 2: 25, 4: 26, 8: 27 }[w]!);
    for (let i = w - 1; i >= 0; i--) this.out.push(Math.floor(n / 2 ** (8 * i)) & 0xff);
  }

  float(v: number): void {
    const r = this.r;
    const dv = new DataView(new ArrayBuffer(8));
    if (Math.fround(v) === v && r.chance(0.5)) {
      const half = toHalf(v);
      if (half !== undefined && r.chance(0.5)) {
        this.out.push(0xf9, half >> 8, half & 0xff);
        return;
      }
      dv.setFloat32(0, v);
      this.out.push(0xfa, ...new Uint8Array(dv.buffer, 0, 4));
      return;
    }
    dv.setFloat64(0, v);
    this.out.push(0xfb, ...new Uint8Array(dv.buffer));
  }

  item(v: unknown): void {
    const r = this.r;
    if (typeof v === "number") {
      if (Number.isInteger(v) && !Object.is(v, -0) && r.chance(0.7)) {
        if (v >= 0) this.head(0, v);
        else this.head(1, -1 - v);
      } else {
        this.float(v);
      }
    } else if (typeof v === "string") {
      const b = new TextEncoder().encode(v);
      this.head(3, b.length);
      this.out.push(...b);
    } else if (v instanceof Uint8Array) {
      this.head(2, v.length);
      for (const x of v) this.out.push(x);
    } else if (typeof v === "boolean") {
      this.out.push(v ? 0xf5 : 0xf4);
    } else if (v === null) {
      this.out.push(0xf6);
    } else if (v === undefined) {
      this.out.push(0xf7);
    } else if (Array.isArray(v)) {
      this.head(4, v.length);
      for (const x of v) this.item(x);
    } else {
      const entries = Object.entries(v as Record<string, unknown>);
      r.shuffle(entries);
      // Sometimes a key twice: the first value is junk, the last one holds.
      const dup = r.chance(0.2) ? r.pick(entries) : undefined;
      this.head(5, entries.length + (dup ? 1 : 0));
      if (dup) {
        this.item(dup[0]);
        this.item(r.pick([7, "x", true, new Uint8Array(2), [1]]));
      }
      for (const [k, x] of entries) {
        this.item(k);
        this.item(x);
      }
    }
  }
}

/** `v` as an IEEE half, when it is one exactly. */
function toHalf(v: number): number | undefined {
  if (!Number.isFinite(v)) return undefined;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a === 0) return sign;
  for (let exp = 1; exp < 31; exp++) {
    const frac = a / 2 ** (exp - 25) - 1024;
    if (Number.isInteger(frac) && frac >= 0 && frac < 1024) return sign | (exp << 10) | frac;
  }
  const sub = a * 2 ** 24;
  return Number.isInteger(sub) && sub < 1024 ? sign | sub : undefined;
}

/** A random value to put where a field was: every CBOR kind, valid-looking or not. */
function junk(r: Random): unknown {
  return r.pick<() => unknown>([
    () => -1 - r.int(1000),
    () => r.int(10) + 0.5,
    () => -0,
    () => NaN,
    () => Infinity,
    () => 2 ** 53,
    () => 2 ** 64,
    () => r.int(20),
    () => "x",
    () => "",
    () => new Uint8Array(r.int(4)),
    () => r.chance(0.5),
    () => null,
    () => undefined,
    () => [],
    () => [1, 2],
    () => ({ a: 1 }),
  ])();
}

/** Replace one random leaf (or container) inside `v` with junk. */
function corrupt(r: Random, v: unknown): unknown {
  if (Array.isArray(v) && v.length > 0 && r.chance(0.8)) {
    const copy = [...v];
    const i = r.int(copy.length);
    copy[i] = corrupt(r, copy[i]);
    return copy;
  }
  if (typeof v === "object" && v !== null && !(v instanceof Uint8Array) && !Array.isArray(v)) {
    const o = { ...(v as Record<string, unknown>) };
    const k = r.pick(Object.keys(o));
    if (r.chance(0.05)) delete o[k];
    else o[k] = corrupt(r, o[k]);
    return o;
  }
  return junk(r);
}

Deno.test(`direct codec: unusual and corrupted encodings get the cbor-x path's answer (seed ${SEED})`, () => {
  const r = new Random(SEED + 1);
  const codec = new FrameCodec({ maxEntries: 200, maxVoters: 8, maxIdLength: 40 });
  const reference = new ReferenceCodec(codec.limits);
  const plain = new Decoder(CBOR_OPTIONS);
  const outcomes = new Map<string, number>();
  for (let i = 0; i < 6000; i++) {
    const h = r.chance(0.5) ? header : { cluster: id(r), from: id(r), to: id(r) };
    const msgs = r.chance(0.3)
      ? everyMessage(h.from, h.to)
      : Array.from({ length: r.int(4) }, () => message(r, h.from, h.to));
    let value: unknown = plain.decode(reference.encode(h, msgs));
    if (r.chance(0.5)) value = corrupt(r, value);
    const w = new OddWriter(r);
    w.item(value);
    const frame = new Uint8Array(w.out);
    const where = `seed ${SEED}, frame ${i}`;
    const expected = outcome(() => reference.decode(frame, h));
    const got = outcome(() => codec.decode(frame, h));
    if (expected instanceof FrameError || got instanceof FrameError) {
      assert.ok(got instanceof FrameError, `${where}: accepted, the reference refused`);
      assert.ok(
        expected instanceof FrameError,
        `${where}: refused (${got.message}), not the reference`,
      );
      assert.equal(got.reason, expected.reason, `${where}: ${got.message} vs ${expected.message}`);
    } else {
      assert.deepEqual(got, expected, where);
    }
    const k = got instanceof FrameError ? got.reason : "accepted";
    outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
  }
  console.log(JSON.stringify(Object.fromEntries(outcomes)));
  for (const k of ["accepted", "bad-message", "bad-envelope", "bad-version", "wrong-sender"]) {
    assert.ok((outcomes.get(k) ?? 0) > 100, `too few ${k}`);
  }
  assert.ok((outcomes.get("too-many") ?? 0) > 5, "too few too-many");
});

function outcome(decode: () => Message[]): Message[] | FrameError {
  try {
    return decode();
  } catch (e) {
    if (e instanceof FrameError) return e;
    throw e;
  }
}

// ---- specific cases ---------------------------------------------------------------------------

/** Bytes of a frame with `msgs` written as the given raw CBOR. */
function withMsgs(raw: number[]): Uint8Array {
  const empty = new FrameCodec().encode(header, []);
  return new Uint8Array([...empty.subarray(0, empty.length - 1), ...raw]);
}

Deno.test("direct codec: numbers read in every form CBOR has, and refused when not a field's", () => {
  const codec = new FrameCodec();
  const hbResp = (ctx: number[]) => withMsgs([0x81, 0x83, TAG.hbResp, 0x01, ...ctx]);
  const ctxOf = (ctx: number[]) => {
    const [m] = codec.decode(hbResp(ctx), header);
    assert.ok(m.type === "hbResp");
    return m.ctx;
  };
  assert.equal(ctxOf([0x18, 0x05]), 5); // a one-byte head for a small number
  assert.equal(ctxOf([0x1b, 0, 0, 0, 0, 0, 0, 0, 7]), 7); // uint64
  assert.equal(ctxOf([0xf9, 0x3c, 0x00]), 1); // half 1.0
  assert.equal(ctxOf([0xfa, 0x47, 0x80, 0x00, 0x00]), 65536); // float32
  assert.equal(ctxOf([0xfb, 0x43, 0x30, 0, 0, 0, 0, 0, 1]), 2 ** 52 + 1); // float64
  const refused: [string, number[]][] = [
    ["negative", [0x20]],
    ["half 1.5", [0xf9, 0x3e, 0x00]],
    ["half NaN", [0xf9, 0x7e, 0x00]],
    ["half infinity", [0xf9, 0x7c, 0x00]],
    ["float64 2^53", [0xfb, 0x43, 0x40, 0, 0, 0, 0, 0, 0]],
    ["uint64 2^53", [0x1b, 0, 0x20, 0, 0, 0, 0, 0, 0]],
    ["true", [0xf5]],
    ["null", [0xf6]],
    ["undefined", [0xf7]],
    ["text", [0x61, 0x31]],
    ["bytes", [0x41, 0x01]],
    ["array", [0x81, 0x01]],
    ["map", [0xa1, 0x61, 0x76, 0x01]],
  ];
  for (const [what, ctx] of refused) {
    assert.throws(
      () => codec.decode(hbResp(ctx), header),
      (e: unknown) => e instanceof FrameError && e.reason === "bad-message",
      what,
    );
  }
  // A tag written as a float is still that tag, as the general decoder read it.
  const [m] = codec.decode(withMsgs([0x81, 0x83, 0xf9, 0x47, 0x00, 0x01, 0x02]), header);
  assert.equal(m.type, "hbResp");
});

Deno.test("direct codec: the envelope in another key order, with long heads or a repeated key", () => {
  const codec = new FrameCodec();
  const text = (s: string, wide = false) => {
    const b = [...new TextEncoder().encode(s)];
    return wide ? [0x78, b.length, ...b] : [0x60 | b.length, ...b];
  };
  const hb = [0x81, 0x84, TAG.hb, 0x01, 0x02, 0x03];
  const frame = (pairs: number[][], count = pairs.length / 2) =>
    new Uint8Array([0xa0 | count, ...pairs.flat()]);
  const ok = frame([
    text("msgs"),
    hb,
    text("to", true),
    text("b", true),
    text("v"),
    [0xf9, 0x3c, 0x00],
    text("from"),
    text("a"),
    text("cluster"),
    text("c1"),
  ]);
  assert.deepEqual(codec.decode(ok, header), [
    { type: "hb", term: 1, from: "a", to: "b", commit: 2, ctx: 3 },
  ]);
  const refusals: [FrameErrorReason, Uint8Array][] = [
    // "v" twice: the last one holds, as in a decoded map.
    [
      "bad-version",
      frame([
        text("v"),
        [1],
        text("cluster"),
        text("c1"),
        text("from"),
        text("a"),
        text("to"),
        text("b"),
        text("msgs"),
        [0x80],
        text("v"),
        [2],
      ]),
    ],
    [
      "bad-envelope",
      frame([
        text("v"),
        [1],
        text("cluster"),
        text("c1"),
        text("from"),
        text("a"),
        text("to"),
        text("b"),
        text("msg"),
        [0x80],
      ]),
    ],
    [
      "wrong-cluster",
      frame([
        text("v"),
        [1],
        text("cluster"),
        [0x42, 0x63, 0x31],
        text("from"),
        text("a"),
        text("to"),
        text("b"),
        text("msgs"),
        [0x80],
      ]),
    ],
    [
      "bad-envelope",
      frame([
        text("v"),
        [1],
        text("cluster"),
        text("c1"),
        text("from"),
        text("a"),
        text("to"),
        text("b"),
        text("msgs"),
        [0xa0],
      ]),
    ],
  ];
  for (const [reason, f] of refusals) {
    assert.throws(
      () => codec.decode(f, header),
      (e: unknown) => e instanceof FrameError && e.reason === reason,
      reason,
    );
  }
});

Deno.test("decode: commands are plain Uint8Array views of a frame that has its own buffer", () => {
  const codec = new FrameCodec();
  const app = everyMessage()[4];
  const frame = codec.encode(header, [app]).slice();
  const [m] = codec.decode(frame, header);
  assert.ok(m.type === "app");
  assert.equal(m.entries[0].data.buffer, frame.buffer); // no copy
  // A subclass (a Node Buffer, as ws hands out) still gives plain views.
  class Sub extends Uint8Array {}
  const sub = new Sub(frame.length);
  sub.set(frame);
  const [n] = codec.decode(sub, header);
  assert.ok(n.type === "app");
  assert.equal(Object.getPrototypeOf(n.entries[0].data), Uint8Array.prototype);
  assert.deepEqual(n, app);
});

Deno.test("encode: refuses fields no peer would accept, and a failed frame leaves no trace", () => {
  const codec = new FrameCodec();
  const hb: Message = { type: "hb", term: 1, from: "a", to: "b", commit: 0, ctx: 0 };
  for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 53, "1" as unknown as number]) {
    assert.throws(() => codec.encode(header, [{ ...hb, ctx: bad }]), EncodeError, String(bad));
  }
  const vr = { type: "voteResp", term: 1, from: "a", to: "b", reject: 1 } as unknown as Message;
  assert.throws(() => codec.encode(header, [vr]), EncodeError);
  const app = {
    ...everyMessage()[4],
    entries: [{ index: 101, term: 8, data: [1, 2] }],
  } as unknown as Message;
  assert.throws(() => codec.encode(header, [hb, app]), EncodeError);
  // The next frame is whole and decodes.
  assert.deepEqual(codec.decode(codec.encode(header, [hb]), header), [hb]);
});

Deno.test("encode: a frame is never overwritten by later ones", () => {
  const codec = new FrameCodec();
  const msgs = everyMessage();
  const first = codec.encode(header, msgs);
  const copy = first.slice();
  // Enough frames to fill several of the encoder's buffers.
  for (let i = 0; i < 200; i++) codec.encode(header, msgs);
  const big = { ...msgs[9], data: new Uint8Array(100_000), size: 200_000 } as Message;
  codec.encode(header, [big]);
  assert.deepEqual(first, copy);
  assert.deepEqual(codec.decode(first, header), msgs);
});
