/**
 * The fault proxy itself, and the transport's recovery from each fault it injects: delay, cut,
 * refused connections, corrupted streams (dropped chunks) and half-open connections.
 *
 * @module
 */
import assert from "node:assert/strict";
import { sleep, waitFor } from "./fixtures.ts";
import { Loopback, numbered } from "./loopback.ts";

/** a serves behind a proxy; b dials it (b has no server), with fast failure detection. */
function pair(): Loopback {
  const fast = { keepaliveMs: 50, idleTimeoutMs: 400, handshakeTimeoutMs: 400, backoffMaxMs: 200 };
  return Loopback.start([{ id: "a", options: fast }, { id: "b", serve: false, options: fast }], {
    proxy: true,
  });
}

async function roundTrip(lb: Loopback, n: number): Promise<number> {
  const a = lb.node("a");
  const b = lb.node("b");
  const start = performance.now();
  const before = a.inbox.length;
  b.transport.send("a", [numbered("b", "a", n)]);
  await waitFor("b -> a", () => a.inbox.length > before);
  const back = b.inbox.length;
  a.transport.send("b", [numbered("a", "b", n)]);
  await waitFor("a -> b", () => b.inbox.length > back);
  return performance.now() - start;
}

Deno.test("proxy: forwards both ways and delays each direction, keeping order", async () => {
  const lb = pair();
  try {
    await roundTrip(lb, 0);
    const proxy = lb.proxies.get("a")!;
    proxy.setFaults({ delayMs: 40, jitterMs: 20 });
    const rtt = await roundTrip(lb, 1);
    assert.ok(rtt >= 80, `round trip ${rtt} ms under a 40 ms one-way delay`);
    // Many messages under jitter still arrive in order.
    for (let i = 0; i < 200; i++) {
      lb.node("b").transport.send("a", [numbered("b", "a", 1000 + i)]);
      if (i % 20 === 0) await sleep(3);
    }
    await waitFor("200 in order", () => lb.node("a").inbox.length === 202);
    const got = lb.node("a").inbox.map((m) => (m.type === "hb" ? m.ctx : -1));
    assert.deepEqual(got, [0, 1, ...Array.from({ length: 200 }, (_, i) => 1000 + i)]);
    assert.ok(proxy.stats().bytesForwarded > 0);
  } finally {
    await lb.close();
  }
});

Deno.test("proxy: a delay applies to each chunk once; a burst does not queue up behind itself", async () => {
  const lb = pair();
  try {
    await roundTrip(lb, 0);
    const proxy = lb.proxies.get("a")!;
    proxy.setFaults({ delayMs: 100, jitterMs: 0 });
    const start = performance.now();
    // 20 messages 10 ms apart: separate chunks, each due 100 ms after it left.
    for (let i = 0; i < 20; i++) {
      lb.node("b").transport.send("a", [numbered("b", "a", 100 + i)]);
      await sleep(10);
    }
    await waitFor("20 delivered", () => lb.node("a").inbox.length === 21);
    const took = performance.now() - start;
    // Delays that added up would take 20 × 100 ms; each due 100 ms after it left, the last one
    // arrives about 300 ms after the first was sent.
    assert.ok(took < 1200, `20 messages took ${took.toFixed(0)} ms under a 100 ms delay`);
  } finally {
    await lb.close();
  }
});

Deno.test("proxy: after a cut, the dialer reconnects and traffic resumes", async () => {
  const lb = pair();
  try {
    await roundTrip(lb, 0);
    lb.proxies.get("a")!.cut();
    await waitFor("b sees the cut", () => !lb.node("b").transport.isConnected("a"));
    await waitFor("reconnected", () => lb.node("b").transport.metrics().peers.a.reconnects === 1);
    await roundTrip(lb, 1);
  } finally {
    await lb.close();
  }
});

Deno.test("proxy: while connections are refused, dials fail and are counted; then recover", async () => {
  const lb = pair();
  try {
    await roundTrip(lb, 0);
    const proxy = lb.proxies.get("a")!;
    proxy.setFaults({ refuse: true });
    proxy.cut();
    await waitFor("failed dials", () => lb.node("b").transport.metrics().peers.a.dialFailures >= 3);
    proxy.clearFaults();
    await roundTrip(lb, 1);
  } finally {
    await lb.close();
  }
});

Deno.test("proxy: dropped chunks lose messages (or break the stream); traffic resumes after", async () => {
  const lb = pair();
  try {
    await roundTrip(lb, 0);
    const proxy = lb.proxies.get("a")!;
    proxy.setFaults({ dropRate: 0.5 });
    const a = lb.node("a");
    const b = lb.node("b");
    for (let i = 0; i < 200; i++) {
      b.transport.send("a", [numbered("b", "a", i)]);
      a.transport.send("b", [numbered("a", "b", i)]);
      await sleep(2);
    }
    await sleep(100);
    assert.ok(proxy.stats().chunksDropped > 0);
    // Whatever arrived arrived in order, without duplicates.
    for (const inbox of [a.inbox, b.inbox]) {
      const got = inbox.map((m) => (m.type === "hb" ? m.ctx : -1)).slice(1);
      assert.ok(got.length < 200, "some were lost");
      assert.deepEqual(got, [...got].sort((x, y) => x - y));
      assert.equal(new Set(got).size, got.length);
    }
    proxy.clearFaults();
    await waitFor(
      "connected again",
      () => b.transport.isConnected("a") && a.transport.isConnected("b"),
    );
    await roundTrip(lb, 1);
  } finally {
    await lb.close();
  }
});

Deno.test("proxy: a half-open connection is detected by the idle timeout and replaced", async () => {
  const lb = pair();
  try {
    await roundTrip(lb, 0);
    const proxy = lb.proxies.get("a")!;
    // b's bytes stop reaching a, but nothing is closed: only silence tells.
    proxy.setFaults({ forward: false });
    await waitFor(
      "a notices the silence",
      () => lb.node("a").log.some((e) => e.event === "idle"),
      10_000,
    );
    await waitFor(
      "b notices too (a's keepalives stopped with the connection)",
      () => lb.node("b").log.some((e) => e.event === "idle" || e.event === "disconnected"),
      10_000,
    );
    proxy.clearFaults();
    await waitFor(
      "reconnected",
      () => lb.node("b").transport.metrics().peers.a.reconnects >= 1,
      10_000,
    );
    await roundTrip(lb, 1);
  } finally {
    await lb.close();
  }
});
