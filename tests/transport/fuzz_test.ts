/**
 * Fuzzing the frame decoder and the handshake in-process: random bytes, mutated valid frames,
 * random CBOR values, hostile heads (huge lengths, deep nesting, tags), and valid-looking frames
 * for the wrong cluster, sender or receiver. The only acceptable outcomes are a valid message list
 * or a `FrameError` (decoder), and a refusal (handshake); memory must stay bounded.
 *
 * The seed is printed on failure; set FLOE_FUZZ_SEED to replay one.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Encoder } from "../../deps.ts";
import { Random } from "../../src/testing/random.ts";
import type { Message } from "../../src/core/types.ts";
import { CBOR_OPTIONS, FrameCodec } from "../../src/transport/codec.ts";
import { FrameError, TAG } from "../../src/transport/frame_validation.ts";
import {
  AcceptorHandshake,
  DialerHandshake,
  HandshakeKey,
  type HandshakeStep,
} from "../../src/transport/handshake.ts";
import { everyMessage, mutateFrame } from "./fixtures.ts";
import { ReferenceCodec } from "./reference_codec.ts";

const SEED = Number(Deno.env.get("FLOE_FUZZ_SEED") ?? Date.now() % 1_000_000);
const header = { cluster: "c1", from: "a", to: "b" };
const raw = new Encoder(CBOR_OPTIONS);

/** A random JSON-ish value, nested up to `depth`, with CBOR's kinds of leaves. */
function randomValue(r: Random, depth: number): unknown {
  const k = r.int(depth > 0 ? 12 : 9);
  switch (k) {
    case 0:
      return r.int(30);
    case 1:
      return r.nextUint32() * (r.chance(0.3) ? 2 ** 21 : 1);
    case 2:
      return -r.int(1000) - 1;
    case 3:
      return r.next() * 1e6;
    case 4:
      return r.pick(["a", "b", "c1", "", "x".repeat(r.int(400)), "v", "msgs"]);
    case 5:
      return new Uint8Array(r.int(64)).map(() => r.int(256));
    case 6:
      return r.chance(0.5);
    case 7:
      return null;
    case 8:
      return r.pick([NaN, Infinity, -0, 2 ** 53, 2 ** 64]);
    case 9:
    case 10:
      return Array.from({ length: r.int(8) }, () => randomValue(r, depth - 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = r.int(6); i > 0; i--) {
        o[r.pick(["v", "cluster", "from", "to", "msgs", "hs", "x"])] = randomValue(r, depth - 1);
      }
      return o;
    }
  }
}

/** A random message array that is often close to a valid one. */
function randomMessage(r: Random): unknown[] {
  const tag = r.chance(0.9) ? r.int(10) : r.int(300) - 20;
  const len = r.chance(0.8) ? [4, 4, 3, 3, 6, 6, 4, 3, 9, 4][Math.abs(tag) % 10] : r.int(12);
  const m: unknown[] = [tag];
  for (let i = 1; i < len; i++) {
    m.push(r.chance(0.7) ? r.int(100) : randomValue(r, 2));
  }
  if (tag === TAG.app && len === 6 && r.chance(0.7)) {
    m[5] = Array.from(
      { length: r.int(6) * 2 },
      (_, i) => (i % 2 ? new Uint8Array(r.int(10)) : r.int(4)),
    );
  }
  return m;
}

/** Generate the i-th fuzz frame. */
function fuzzFrame(r: Random, valid: Uint8Array[]): Uint8Array {
  switch (r.int(8)) {
    case 0:
      return new Uint8Array(r.int(300)).map(() => r.int(256));
    case 1:
    case 2:
    case 3:
      return mutateFrame(r, r.pick(valid));
    case 4:
      return raw.encode(randomValue(r, 5));
    case 5: { // an envelope with random messages, sometimes for someone else
      const env: Record<string, unknown> = {
        v: r.chance(0.9) ? 1 : r.int(5),
        cluster: r.chance(0.9) ? "c1" : "c2",
        from: r.chance(0.9) ? "a" : r.pick(["b", "c", "", 7]),
        to: r.chance(0.9) ? "b" : r.pick(["a", "c"]),
        msgs: Array.from({ length: r.int(5) }, () => randomMessage(r)),
      };
      return mutateMaybe(r, raw.encode(env));
    }
    case 6: { // deep nesting inside a valid-looking envelope
      const depth = 1 + r.int(5000);
      const head = raw.encode({ v: 1, cluster: "c1", from: "a", to: "b", msgs: [] });
      const b = new Uint8Array(head.length - 1 + depth + 1);
      b.set(head.subarray(0, head.length - 1));
      b.fill(0x81, head.length - 1, head.length - 1 + depth);
      b[b.length - 1] = 0x80;
      return b;
    }
    default: { // a huge declared length right after a valid prefix
      const v = r.pick(valid);
      const cut = r.int(v.length);
      const b = new Uint8Array(cut + 9);
      b.set(v.subarray(0, cut));
      b[cut] = r.pick([0x9b, 0x5b, 0x7b, 0xbb]);
      b.fill(0xff, cut + 1);
      return b;
    }
  }
}

function mutateMaybe(r: Random, b: Uint8Array): Uint8Array {
  return r.chance(0.3) ? mutateFrame(r, b) : b;
}

Deno.test({
  name:
    `fuzz: 120,000 random and mutated frames give messages or FrameError, as the cbor-x path did (seed ${SEED})`,
  fn() {
    const r = new Random(SEED);
    const codec = new FrameCodec({ maxFrameBytes: 1 << 20 });
    const msgs = everyMessage();
    const valid = [
      codec.encode(header, msgs),
      codec.encode(header, []),
      ...msgs.map((m) => codec.encode(header, [m])),
    ];
    // The general cbor-x path the codec replaced: every frame must get the same answer from both.
    const reference = new ReferenceCodec(codec.limits);
    const counts = new Map<string, number>();
    const before = Deno.memoryUsage();
    let accepted = 0;
    const N = 120_000;
    for (let i = 0; i < N; i++) {
      const f = fuzzFrame(r, valid);
      const where = () => `seed ${SEED}, frame ${i}: ${Array.from(f.slice(0, 64))}`;
      let expected: Message[] | FrameError;
      try {
        expected = reference.decode(f, header);
      } catch (e) {
        if (!(e instanceof FrameError)) throw e;
        expected = e;
      }
      try {
        const out = codec.decode(f, header);
        accepted++;
        for (const m of out) assert.ok(m.from === "a" && m.to === "b");
        if (expected instanceof FrameError) {
          assert.fail(`${where()}: accepted, the reference refused (${expected.message})`);
        }
        assert.deepEqual(out, expected, where());
      } catch (e) {
        if (!(e instanceof FrameError)) throw new Error(`${where()}: ${e}`);
        counts.set(e.reason, (counts.get(e.reason) ?? 0) + 1);
        if (!(expected instanceof FrameError)) {
          assert.fail(`${where()}: refused (${e.message}), the reference accepted`);
        }
        assert.equal(e.reason, expected.reason, `${where()}: ${e.message} vs ${expected.message}`);
      }
    }
    const after = Deno.memoryUsage();
    const grownMiB = (after.heapUsed - before.heapUsed) / 2 ** 20;
    console.log(
      `accepted ${accepted}; refused by reason: ${JSON.stringify(Object.fromEntries(counts))}`,
    );
    console.log(
      `heap ${before.heapUsed >> 20} -> ${after.heapUsed >> 20} MiB, rss ${after.rss >> 20} MiB`,
    );
    assert.ok(grownMiB < 200, `heap grew ${grownMiB} MiB`);
    // Every class of refusal was exercised.
    for (
      const reason of [
        "malformed-cbor",
        "unsupported-cbor",
        "too-deep",
        "bad-envelope",
        "bad-message",
      ]
    ) {
      assert.ok((counts.get(reason) ?? 0) > 100, `too few ${reason}`);
    }
  },
});

Deno.test("fuzz: a frame of 8 MiB of nested arrays or tiny items is refused or decoded within bounds", () => {
  const codec = new FrameCodec();
  const big = new Uint8Array(8 * 1024 * 1024).fill(0x81);
  big[0] = 0xa1;
  assert.throws(() => codec.decode(big, header), FrameError);
  // A legal frame packed with empty appends: decodes, messages limited by maxMessages.
  const many = raw.encode({
    v: 1,
    cluster: "c1",
    from: "a",
    to: "b",
    msgs: Array.from({ length: 70_000 }, () => [TAG.hbResp, 1, 0]),
  });
  assert.throws(
    () => codec.decode(many, header),
    (e: unknown) => e instanceof FrameError && e.reason === "too-many",
  );
});

const SECRET = "fuzzing-secret-0123456789";

function refusedOrContinue(step: HandshakeStep, what: string): void {
  assert.ok(step.kind === "refused" || step.kind === "continue", `${what}: ${step.kind}`);
}

Deno.test({
  name: `fuzz: 100,000 random and mutated handshake messages are refused (seed ${SEED})`,
  async fn() {
    const r = new Random(SEED + 1);
    const key = await HandshakeKey.create(SECRET);
    const wrongKey = await HandshakeKey.create("another-secret-0123456789");
    const acceptorOpts = {
      key,
      cluster: "c1",
      self: "b",
      isPeer: (id: string) => id === "a" || id === "c",
    };
    const validHello = new DialerHandshake({ key, cluster: "c1", self: "a" }, "b").start();
    // A genuine challenge, to mutate for the dialer side.
    const dialer0 = new DialerHandshake({ key, cluster: "c1", self: "a" }, "b");
    const acc0 = new AcceptorHandshake(acceptorOpts);
    const ch = await acc0.receive(dialer0.start());
    assert.equal(ch.kind, "continue");
    const validChallenge = (ch as { send: Uint8Array }).send;
    const counts = new Map<string, number>();
    const count = (s: HandshakeStep) => {
      const k = s.kind === "refused" ? s.refusal.reason : s.kind;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    };
    const before = Deno.memoryUsage();
    const N = 100_000;
    let completed = 0;
    for (let i = 0; i < N; i++) {
      const kind = r.int(10);
      if (kind < 4) {
        // Acceptor, first message: random bytes, random values, mutated hellos.
        const acc = new AcceptorHandshake(acceptorOpts);
        const msg = kind === 0
          ? new Uint8Array(r.int(200)).map(() => r.int(256))
          : kind === 1
          ? raw.encode(randomValue(r, 3))
          : mutateFrame(r, validHello);
        const step = await acc.receive(msg);
        refusedOrContinue(step, `acceptor hello ${i}`);
        count(step);
        if (step.kind === "continue") {
          // It was still a valid hello: a forged auth must be refused.
          const forged = r.chance(0.5)
            ? raw.encode({ hs: "auth", mac: new Uint8Array(32).map(() => r.int(256)) })
            : mutateFrame(r, raw.encode({ hs: "auth", mac: new Uint8Array(32) }));
          const s2 = await acc.receive(forged);
          assert.equal(s2.kind, "refused", `forged auth ${i}`);
          count(s2);
        }
      } else if (kind < 8) {
        // Dialer, after hello: mutated or random challenges.
        const dialer = new DialerHandshake({ key, cluster: "c1", self: "a" }, "b");
        dialer.start();
        const msg = kind === 4
          ? new Uint8Array(r.int(200)).map(() => r.int(256))
          : kind === 5
          ? raw.encode({
            hs: "challenge",
            v: r.chance(0.8) ? 1 : 2,
            cluster: r.chance(0.8) ? "c1" : "c2",
            from: r.chance(0.8) ? "b" : "c",
            to: r.chance(0.8) ? "a" : "b",
            nonce: new Uint8Array(r.chance(0.9) ? 32 : r.int(40)),
            mac: new Uint8Array(r.chance(0.9) ? 32 : r.int(40)).map(() => r.int(256)),
          })
          : mutateFrame(r, validChallenge);
        const step = await dialer.receive(msg);
        // A challenge built for another dialer's nonce never verifies.
        assert.equal(step.kind, "refused", `dialer challenge ${i}`);
        count(step);
      } else {
        // A full handshake where the dialer holds the wrong secret, or (rarely) the right one.
        const right = r.chance(0.05);
        const dialer = new DialerHandshake({
          key: right ? key : wrongKey,
          cluster: "c1",
          self: "a",
        }, "b");
        const acc = new AcceptorHandshake(acceptorOpts);
        const s1 = await acc.receive(dialer.start());
        assert.equal(s1.kind, "continue");
        const s2 = await dialer.receive((s1 as { send: Uint8Array }).send);
        count(s2);
        if (right) {
          assert.equal(s2.kind, "continue");
          const s3 = await acc.receive((s2 as { send: Uint8Array }).send);
          assert.equal(s3.kind, "done");
          completed++;
        } else {
          assert.equal(s2.kind, "refused");
          assert.equal(s2.kind === "refused" && s2.refusal.reason, "bad-mac");
        }
      }
    }
    const after = Deno.memoryUsage();
    console.log(
      `handshakes completed ${completed}; outcomes ${JSON.stringify(Object.fromEntries(counts))}`,
    );
    assert.ok((after.heapUsed - before.heapUsed) / 2 ** 20 < 200);
    for (
      const reason of ["malformed", "bad-mac", "wrong-cluster", "unsupported-version", "unexpected"]
    ) {
      assert.ok((counts.get(reason) ?? 0) > 10, `too few ${reason}`);
    }
  },
});
