import assert from "node:assert/strict";
import { Decoder, Encoder } from "../../deps.ts";
import { CBOR_OPTIONS } from "../../src/transport/codec.ts";
import {
  AcceptorHandshake,
  type AcceptorOptions,
  DialerHandshake,
  HandshakeKey,
  type HandshakeOptions,
  type HandshakeStep,
} from "../../src/transport/handshake.ts";

const SECRET = "handshake-test-secret-0123";

interface Run {
  dialer: HandshakeStep[];
  acceptor: HandshakeStep[];
}

/** Run one handshake to its end, passing each side's output to the other. */
async function run(dialer: DialerHandshake, acceptor: AcceptorHandshake): Promise<Run> {
  const out: Run = { dialer: [], acceptor: [] };
  let toAcceptor: Uint8Array | undefined = dialer.start();
  for (let i = 0; i < 4 && toAcceptor; i++) {
    const a = await acceptor.receive(toAcceptor);
    out.acceptor.push(a);
    toAcceptor = undefined;
    if (!a.send) break;
    const d = await dialer.receive(a.send);
    out.dialer.push(d);
    if (d.kind === "continue") toAcceptor = d.send;
  }
  return out;
}

async function setup(
  dialerOver: Partial<HandshakeOptions> = {},
  acceptorOver: Partial<AcceptorOptions> = {},
  target = "b",
) {
  const key = await HandshakeKey.create(SECRET);
  const dialer = new DialerHandshake({ key, cluster: "c1", self: "a", ...dialerOver }, target);
  const acceptor = new AcceptorHandshake({
    key,
    cluster: "c1",
    self: "b",
    isPeer: (id) => id === "a",
    ...acceptorOver,
  });
  return run(dialer, acceptor);
}

function last(steps: HandshakeStep[]): HandshakeStep {
  return steps[steps.length - 1];
}

Deno.test("handshake: both sides holding the secret authenticate each other", async () => {
  const r = await setup();
  assert.deepEqual(r.acceptor.map((s) => s.kind), ["continue", "done"]);
  assert.deepEqual(r.dialer.map((s) => s.kind), ["continue", "done"]);
  const a = last(r.acceptor);
  assert.equal(a.kind === "done" && a.peer, "a");
  const d = last(r.dialer);
  assert.equal(d.kind === "done" && d.peer, "b");
});

Deno.test("handshake: a dialer without the secret is refused (it detects the mismatch first)", async () => {
  const r = await setup({ key: await HandshakeKey.create("not-the-secret-at-all") });
  const d = last(r.dialer);
  assert.equal(d.kind === "refused" && d.refusal.reason, "bad-mac");
  assert.ok(d.kind === "refused" && d.send, "the dialer tells the acceptor why");
  assert.ok(!r.acceptor.some((s) => s.kind === "done"));
});

Deno.test("handshake: an acceptor checks the dialer's MAC on its own nonce", async () => {
  const key = await HandshakeKey.create(SECRET);
  const acceptor = new AcceptorHandshake({ key, cluster: "c1", self: "b", isPeer: () => true });
  const hello = new DialerHandshake({ key, cluster: "c1", self: "a" }, "b").start();
  const challenge = await acceptor.receive(hello);
  assert.equal(challenge.kind, "continue");
  // Replaying the challenge's own MAC as the auth MAC (a reflection) fails: roles are in the MAC.
  const ch = new Decoder(CBOR_OPTIONS).decode((challenge as { send: Uint8Array }).send) as {
    mac: Uint8Array;
  };
  const step = await acceptor.receive(
    new Encoder(CBOR_OPTIONS).encode({ hs: "auth", mac: ch.mac }),
  );
  assert.equal(step.kind === "refused" && step.refusal.reason, "bad-mac");
});

Deno.test("handshake: wrong cluster, version, receiver and unknown peers are refused with reasons", async () => {
  const cases: [Partial<HandshakeOptions>, Partial<AcceptorOptions>, string, string][] = [
    [{ cluster: "c2" }, {}, "b", "wrong-cluster"],
    [{ version: 2 }, {}, "b", "unsupported-version"],
    [{}, { versions: [2] }, "b", "unsupported-version"],
    [{}, {}, "z", "wrong-receiver"],
    [{ self: "q" }, {}, "b", "unknown-peer"],
    [{ self: "b" }, { isPeer: () => true }, "b", "unknown-peer"],
  ];
  for (const [d, a, target, reason] of cases) {
    const r = await setup(d, a, target);
    const acc = last(r.acceptor);
    assert.equal(acc.kind === "refused" && acc.refusal.reason, reason, JSON.stringify([d, reason]));
    // The dialer learns the reason from the refusal message.
    const dl = last(r.dialer);
    assert.equal(dl.kind === "refused" && dl.refusal.reason, "refused-by-peer");
    assert.match(dl.kind === "refused" ? dl.refusal.detail : "", new RegExp(reason));
  }
});

Deno.test("handshake: messages out of order are refused", async () => {
  const key = await HandshakeKey.create(SECRET);
  const acceptor = new AcceptorHandshake({ key, cluster: "c1", self: "b", isPeer: () => true });
  const step = await acceptor.receive(
    new Encoder(CBOR_OPTIONS).encode({ hs: "auth", mac: new Uint8Array(32) }),
  );
  assert.equal(step.kind === "refused" && step.refusal.reason, "unexpected");
  const dialer = new DialerHandshake({ key, cluster: "c1", self: "a" }, "b");
  dialer.start();
  const s2 = await dialer.receive(new Encoder(CBOR_OPTIONS).encode({ hs: "welcome" }));
  assert.equal(s2.kind === "refused" && s2.refusal.reason, "unexpected");
});

Deno.test("handshake: short secrets are refused", async () => {
  await assert.rejects(() => HandshakeKey.create("short"), RangeError);
  assert.throws(() => HandshakeKey.check(new Uint8Array(15)), RangeError);
});
