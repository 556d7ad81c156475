/**
 * WebSocketTransport over real sockets on 127.0.0.1 (ephemeral ports), dialing with `ws` and
 * accepting with Deno.serve, as a server node does.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Message } from "../../src/core/types.ts";
import { FrameCodec } from "../../src/transport/codec.ts";
import { HandshakeKey } from "../../src/transport/handshake.ts";
import { CLOSE } from "../../src/transport/socket.ts";
import { WebSocketServer } from "../../src/transport/websocket_server.ts";
import { WebSocketTransport } from "../../src/transport/websocket_transport.ts";
import { createWsDialer, wsDial } from "../../src/transport/ws_dial.ts";
import { everyMessage, sleep, waitFor } from "./fixtures.ts";
import { CLUSTER, Loopback, numbered, SECRET } from "./loopback.ts";
import { RawClient } from "./raw_client.ts";

function ctxs(msgs: readonly Message[]): number[] {
  return msgs.map((m) => (m.type === "hb" ? m.ctx : -1));
}

Deno.test("transport: two peers exchange batches both ways, in order", async () => {
  const lb = Loopback.start([{ id: "a" }, { id: "b" }]);
  try {
    const a = lb.node("a");
    const b = lb.node("b");
    // Every message type survives the trip.
    a.transport.send("b", everyMessage("a", "b"));
    b.transport.send("a", everyMessage("b", "a"));
    await waitFor("every type arrives", () => a.inbox.length === 13 && b.inbox.length === 13);
    assert.deepEqual(b.inbox, everyMessage("a", "b"));
    assert.deepEqual(a.inbox, everyMessage("b", "a"));
    a.inbox.length = b.inbox.length = 0;
    // Many batches of varied size, interleaved with waits, keep their order.
    let n = 0;
    for (let round = 0; round < 50; round++) {
      for (let k = 0; k < 1 + (round % 7); k++) {
        const batch: Message[] = [];
        for (let j = 0; j < 1 + (round * k) % 13; j++) batch.push(numbered("a", "b", n + j));
        const back = batch.map((m) => numbered("b", "a", (m as { ctx: number }).ctx));
        n += batch.length;
        a.transport.send("b", batch);
        b.transport.send("a", back);
      }
      if (round % 10 === 0) await sleep(1);
    }
    await waitFor("all batches", () => b.inbox.length === n && a.inbox.length === n);
    const expected = Array.from({ length: n }, (_, i) => i);
    assert.deepEqual(ctxs(b.inbox), expected);
    assert.deepEqual(ctxs(a.inbox), expected);
    const m = a.transport.metrics().peers.b;
    assert.ok(m.connected);
    assert.equal(m.messagesOut, n + 13);
    // Batching: many sends in one task shared frames.
    assert.ok(m.framesOut < m.messagesOut / 2, JSON.stringify(m));
  } finally {
    await lb.close();
  }
});

Deno.test("transport: three peers, all pairs, both directions", async () => {
  const lb = Loopback.start([{ id: "a" }, { id: "b" }, { id: "c" }]);
  try {
    const ids = ["a", "b", "c"];
    for (let i = 0; i < 100; i++) {
      for (const from of ids) {
        for (const to of ids) {
          if (from !== to) lb.node(from).transport.send(to, [numbered(from, to, i)]);
        }
      }
    }
    await waitFor("200 each", () => ids.every((id) => lb.node(id).inbox.length === 200));
    for (const id of ids) {
      for (const from of ids.filter((x) => x !== id)) {
        const got = lb.node(id).inbox.filter((m) => m.from === from);
        assert.deepEqual(ctxs(got), Array.from({ length: 100 }, (_, i) => i));
      }
    }
  } finally {
    await lb.close();
  }
});

Deno.test("transport: a dial-only peer (no URL, like a browser) is reached over its own connection", async () => {
  const lb = Loopback.start([{ id: "a" }, { id: "b" }, { id: "tab", serve: false }]);
  try {
    const a = lb.node("a");
    const tab = lb.node("tab");
    assert.equal(lb.urls.get("tab"), undefined);
    // a cannot dial tab; tab dials a. Messages a queues for tab wait for that connection.
    a.transport.send("tab", [numbered("a", "tab", 1)]);
    await waitFor("tab connected", () => a.transport.isConnected("tab"));
    await waitFor("a -> tab", () => tab.inbox.length === 1);
    tab.transport.send("b", [numbered("tab", "b", 2)]);
    await waitFor("tab -> b", () => lb.node("b").inbox.length === 1);
    assert.equal(a.transport.metrics().peers.tab.via, "accepted");
    assert.equal(tab.transport.metrics().peers.a.via, "dialed");
  } finally {
    await lb.close();
  }
});

Deno.test("transport: when both sides dial, both keep the connection dialed by the smaller id", async () => {
  for (let round = 0; round < 4; round++) {
    const lb = Loopback.start([{ id: "a" }, { id: "b" }]);
    try {
      const a = lb.node("a").transport;
      const b = lb.node("b").transport;
      await waitFor("connected", () => a.isConnected("b") && b.isConnected("a"));
      // Let any second connection finish its handshake and lose.
      await waitFor(
        "one connection each",
        () => a.metrics().openConnections === 1 && b.metrics().openConnections === 1,
      );
      assert.equal(a.metrics().peers.b.via, "dialed");
      assert.equal(b.metrics().peers.a.via, "accepted");
      a.send("b", [numbered("a", "b", 7)]);
      b.send("a", [numbered("b", "a", 8)]);
      await waitFor(
        "exchange",
        () => lb.node("a").inbox.length === 1 && lb.node("b").inbox.length === 1,
      );
    } finally {
      await lb.close();
    }
  }
});

Deno.test("transport: redials after the server side restarts, and counts the reconnect", async () => {
  const lb = Loopback.start([{ id: "a", serve: false }, { id: "b" }]);
  try {
    const a = lb.node("a");
    a.transport.send("b", [numbered("a", "b", 1)]);
    await waitFor("first", () => lb.node("b").inbox.length === 1);
    await lb.stop("b");
    await waitFor("a sees b gone", () => !a.transport.isConnected("b"));
    // Sent while b is down: queued (bounded), delivered after the reconnect.
    a.transport.send("b", [numbered("a", "b", 2)]);
    await sleep(200);
    const b2 = lb.restart("b");
    await waitFor("reconnected", () => a.transport.isConnected("b"));
    await waitFor("queued message delivered", () => b2.inbox.length === 1);
    assert.deepEqual(ctxs(b2.inbox), [2]);
    b2.transport.send("a", [numbered("b", "a", 3)]);
    await waitFor("and back", () => a.inbox.length === 1);
    const m = a.transport.metrics().peers.b;
    assert.equal(m.reconnects, 1);
    assert.ok(m.dialFailures >= 1, JSON.stringify(m));
  } finally {
    await lb.close();
  }
});

Deno.test("transport: the send queue is bounded; overflow drops the oldest and counts them", async () => {
  // A port nothing listens on yet.
  const probe = WebSocketServer.listen({ hostname: "127.0.0.1" });
  const url = probe.url;
  await probe.close();
  const a = new WebSocketTransport({
    id: "a",
    cluster: CLUSTER,
    secret: SECRET,
    peers: [{ id: "b", url }],
    dial: wsDial,
    queue: { maxMessages: 100 },
    backoffMaxMs: 100,
    log: () => {},
  });
  let server: WebSocketServer | undefined;
  let b: WebSocketTransport | undefined;
  try {
    for (let i = 0; i < 1000; i++) a.send("b", [numbered("a", "b", i)]);
    let m = a.metrics().peers.b;
    assert.equal(m.drops, 900);
    assert.equal(m.queued, 100);
    // Bytes are bounded too.
    a.send("b", [{ ...everyMessage()[9], from: "a", to: "b" }]);
    // Now b comes up on that port: the newest 100 (plus the chunk) arrive, in order.
    const inbox: Message[] = [];
    b = new WebSocketTransport({
      id: "b",
      cluster: CLUSTER,
      secret: SECRET,
      peers: [{ id: "a" }],
      dial: wsDial,
    });
    b.listen((msgs) => inbox.push(...msgs));
    server = WebSocketServer.listen({ hostname: "127.0.0.1", port: Number(new URL(url).port) }, b);
    await waitFor("delivered", () => inbox.length === 100);
    assert.deepEqual(ctxs(inbox.slice(0, 99)), Array.from({ length: 99 }, (_, i) => 901 + i));
    assert.equal(inbox[99].type, "snap");
    m = a.metrics().peers.b;
    assert.equal(m.drops, 901);
    assert.equal(m.queued, 0);
  } finally {
    await a.close();
    await b?.close();
    await server?.close();
  }
});

Deno.test("transport: byte-bounded queue", () => {
  const a = new WebSocketTransport({
    id: "a",
    cluster: CLUSTER,
    secret: SECRET,
    peers: [{ id: "b" }],
    queue: { maxBytes: 10_000 },
    log: () => {},
  });
  try {
    const big: Message = {
      type: "app",
      term: 1,
      from: "a",
      to: "b",
      prevIndex: 0,
      prevTerm: 0,
      commit: 0,
      entries: [{ index: 1, term: 1, data: new Uint8Array(3000) }],
    };
    for (let i = 0; i < 10; i++) a.send("b", [big]);
    const m = a.metrics().peers.b;
    assert.equal(m.queued, 3);
    assert.equal(m.drops, 7);
    a.send("nobody", [big]);
    assert.equal(a.metrics().unknownPeerDrops, 1);
  } finally {
    a.close();
  }
});

Deno.test("transport: peers without the secret, of another cluster or unknown are refused and counted", async () => {
  const lb = Loopback.start([{ id: "a" }, { id: "b", serve: false }]);
  const intruders: WebSocketTransport[] = [];
  try {
    const url = lb.urls.get("a")!;
    const a = lb.node("a");
    const mk = (
      id: string,
      over: { secret?: string; cluster?: string; protocolVersion?: number },
    ) => {
      const t = new WebSocketTransport({
        id,
        cluster: over.cluster ?? CLUSTER,
        secret: over.secret ?? SECRET,
        peers: [{ id: "a", url }],
        dial: wsDial,
        backoffMinMs: 5_000, // one attempt within the test
        log: () => {},
      });
      t.listen(() => assert.fail("an intruder received a message"));
      intruders.push(t);
      return t;
    };
    const noSecret = mk("b", { secret: "a-wrong-secret-0123456789" });
    const otherCluster = mk("b", { cluster: "other" });
    const stranger = mk("mallory", {});
    await waitFor("three refusals", () => a.transport.metrics().authFailures >= 3);
    await waitFor(
      "intruders saw it",
      () =>
        noSecret.metrics().authFailures >= 1 && otherCluster.metrics().authFailures >= 1 &&
        stranger.metrics().authFailures >= 1,
    );
    assert.equal(a.transport.metrics().peers.b.authFailures, 2);
    const reasons = a.log.filter((e) => e.event === "refused").map((e) => e.detail).join("\n");
    assert.match(reasons, /wrong-cluster/);
    assert.match(reasons, /unknown-peer/);
    assert.match(reasons, /refused-by-peer.*bad-mac|bad-mac/);
    // Nothing reached a's handler.
    assert.equal(a.inbox.length, 0);
    for (const t of intruders) await t.close();
    intruders.length = 0;
    // The real b still gets in.
    lb.node("b").transport.send("a", [numbered("b", "a", 1)]);
    await waitFor("legit b", () => a.inbox.length === 1);
  } finally {
    for (const t of intruders) await t.close();
    await lb.close();
  }
});

Deno.test("transport: a stale protocol version is refused", async () => {
  const lb = Loopback.start([{ id: "a" }, {
    id: "b",
    serve: false,
    options: { protocolVersion: 99 },
  }]);
  try {
    await waitFor("refused", () => lb.node("a").transport.metrics().authFailures >= 1);
    assert.match(lb.node("a").log.map((e) => e.detail).join("\n"), /unsupported-version/);
    assert.ok(!lb.node("a").transport.isConnected("b"));
  } finally {
    await lb.close();
  }
});

Deno.test("transport: 300 bad frames over real sockets are each counted and closed; the node carries on", async () => {
  // Ten extra peer ids for the raw clients, so concurrent ones never replace each other.
  const raws = Array.from({ length: 10 }, (_, i) => `r${i}`);
  const lb = Loopback.start([
    { id: "a", options: { peers: [{ id: "b" }, { id: "c" }, ...raws.map((id) => ({ id }))] } },
    { id: "b", serve: false },
    { id: "c", serve: false },
  ]);
  try {
    const a = lb.node("a");
    const url = lb.urls.get("a")!;
    const key = HandshakeKey.create(SECRET);
    const codec = new FrameCodec();
    const good = codec.encode({ cluster: CLUSTER, from: "r0", to: "a" }, [numbered("r0", "a", 0)]);
    const garbage = (i: number): Uint8Array => {
      switch (i % 6) {
        case 0:
          return new Uint8Array([0xff, 0x00, i & 255]);
        case 1:
          return good.subarray(0, good.length - 1 - (i % 5)); // truncated
        case 2: {
          const b = good.slice();
          b[b.length - 2] = 0x9b; // a huge array head
          return b;
        }
        case 3: // a frame claiming another sender
          return codec.encode({ cluster: CLUSTER, from: "c", to: "a" }, [numbered("c", "a", 0)]);
        case 4:
          return new Uint8Array(1000).fill(0x81); // deep nesting
        default:
          return codec.encode({ cluster: "other", from: "r0", to: "a" }, []);
      }
    };
    let afterAuth = 0;
    let duringHandshake = 0;
    const BATCH = 10;
    for (let i = 0; i < 300; i += BATCH) {
      await Promise.all(Array.from({ length: BATCH }, async (_, k) => {
        const n = i + k;
        const client = await RawClient.connect(url);
        if (n % 3 === 0) {
          // Garbage instead of a hello: refused before any Raft frame is read.
          duringHandshake++;
          client.socket.send(garbage(n));
          const code = await client.closed;
          assert.equal(code, CLOSE.refused);
          return;
        }
        assert.ok(await client.authenticate(key, CLUSTER, raws[k], "a"));
        client.socket.send(garbage(n));
        const code = await client.closed;
        assert.ok(code === CLOSE.badFrame || code === CLOSE.tooLarge, `close code ${code}`);
        afterAuth++;
      }));
    }
    const m = a.transport.metrics();
    assert.equal(m.authFailures, duringHandshake);
    assert.equal(m.decodeErrors, afterAuth);
    assert.equal(raws.reduce((sum, id) => sum + m.peers[id].decodeErrors, 0), afterAuth);
    assert.equal(afterAuth, 200);
    assert.equal(a.inbox.length, 0);
    // The transport still works for the real peers.
    lb.node("c").transport.send("a", [numbered("c", "a", 1)]);
    lb.node("b").transport.send("a", [numbered("b", "a", 2)]);
    await waitFor("real peers get through", () => a.inbox.length === 2);
    a.transport.send("c", [numbered("a", "c", 3)]);
    await waitFor("and back", () => lb.node("c").inbox.length === 1);
    await waitFor("raw sockets gone", () => a.transport.metrics().openConnections === 2);
  } finally {
    await lb.close();
  }
});

Deno.test("transport: keepalives hold an idle connection open past the idle timeout", async () => {
  const lb = Loopback.start([
    { id: "a", options: { keepaliveMs: 50, idleTimeoutMs: 300 } },
    { id: "b", serve: false, options: { keepaliveMs: 50, idleTimeoutMs: 300 } },
  ]);
  try {
    const a = lb.node("a").transport;
    await waitFor("connected", () => a.isConnected("b"));
    // Keepalives hold an idle connection open well past the idle timeout.
    await sleep(800);
    assert.equal(a.metrics().peers.b.connects, 1);
    assert.ok(a.metrics().peers.b.framesIn >= 5, "keepalive frames arrived");
  } finally {
    await lb.close();
  }
});

Deno.test("transport: close() is idempotent and send after close does nothing", async () => {
  const lb = Loopback.start([{ id: "a" }, { id: "b" }]);
  const a = lb.node("a").transport;
  await waitFor("connected", () => a.isConnected("b"));
  await lb.close();
  await a.close();
  a.send("b", [numbered("a", "b", 1)]);
  assert.equal(a.metrics().peers.b.queued, 0);
  assert.equal(a.metrics().openConnections, 0);
});

Deno.test("transport: wss:// with the certificate and key from options; untrusted certificates fail", async () => {
  // A self-signed certificate for 127.0.0.1 made for these tests (openssl, valid for 100 years).
  const cert = await Deno.readTextFile(new URL("./tls/cert.pem", import.meta.url));
  const key = await Deno.readTextFile(new URL("./tls/key.pem", import.meta.url));
  const a = new WebSocketTransport({
    id: "a",
    cluster: CLUSTER,
    secret: SECRET,
    peers: [{ id: "b" }, { id: "c" }],
    log: () => {},
  });
  const server = WebSocketServer.listen({ hostname: "127.0.0.1", cert, key }, a);
  assert.match(server.url, /^wss:\/\//);
  const b = new WebSocketTransport({
    id: "b",
    cluster: CLUSTER,
    secret: SECRET,
    peers: [{ id: "a", url: server.url }],
    dial: createWsDialer({ ca: cert }),
  });
  const untrusting = new WebSocketTransport({
    id: "c",
    cluster: CLUSTER,
    secret: SECRET,
    peers: [{ id: "a", url: server.url }],
    dial: wsDial,
    log: () => {},
  });
  const inbox: Message[] = [];
  a.listen((m) => inbox.push(...m));
  try {
    b.send("a", [numbered("b", "a", 1)]);
    await waitFor("over TLS", () => inbox.length === 1);
    await waitFor("c cannot connect", () => untrusting.metrics().peers.a.dialFailures >= 1);
    assert.ok(!untrusting.isConnected("a"));
  } finally {
    await untrusting.close();
    await b.close();
    await a.close();
    await server.close();
  }
});

Deno.test("transport: messages that wait too long for a connection expire and are counted", async () => {
  const a = new WebSocketTransport({
    id: "a",
    cluster: CLUSTER,
    secret: SECRET,
    peers: [{ id: "b" }], // reachable only if it dials in, which it never does here
    queue: { maxAgeMs: 50 },
    keepaliveMs: 20,
    log: () => {},
  });
  try {
    for (let i = 0; i < 10; i++) a.send("b", [numbered("a", "b", i)]);
    assert.equal(a.metrics().peers.b.queued, 10);
    await waitFor("expired", () => a.metrics().peers.b.queued === 0, 5000);
    assert.equal(a.metrics().peers.b.drops, 10);
  } finally {
    await a.close();
  }
});
