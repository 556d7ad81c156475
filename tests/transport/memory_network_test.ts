import assert from "node:assert/strict";
import type { Message, NodeId } from "../../src/core/types.ts";
import { MemoryNetwork, messageSize } from "../../src/transport/memory_network.ts";
import type { Transport } from "../../src/transport/transport.ts";
import { Random } from "../../src/testing/random.ts";
import { VirtualClock } from "../../src/testing/virtual_clock.ts";

function heartbeat(from: NodeId, to: NodeId, term = 1): Message {
  return { type: "hb", term, from, to, commit: 0, ctx: 0 };
}

function heartbeatResp(from: NodeId, to: NodeId, term = 1): Message {
  return { type: "hbResp", term, from, to, ctx: 0 };
}

function append(from: NodeId, to: NodeId, sizes: number[]): Message {
  return {
    type: "app",
    term: 1,
    from,
    to,
    prevIndex: 0,
    prevTerm: 0,
    commit: 0,
    entries: sizes.map((n, i) => ({ index: i + 1, term: 1, data: new Uint8Array(n) })),
  };
}

interface Setup {
  clock: VirtualClock;
  net: MemoryNetwork;
  ends: Map<NodeId, Transport>;
  /** Received messages as "from>to:term", in delivery order. */
  log: string[];
}

function setup(ids: NodeId[], seed = 1): Setup {
  const clock = new VirtualClock();
  const random = new Random(seed);
  const net = new MemoryNetwork({ scheduler: clock, random: () => random.next() });
  const log: string[] = [];
  const ends = new Map<NodeId, Transport>();
  for (const id of ids) {
    const end = net.transport(id);
    end.listen((msgs) => {
      assert.equal(msgs.length, 1);
      for (const m of msgs) log.push(`${m.from}>${m.to}:${m.term}`);
    });
    ends.set(id, end);
  }
  return { clock, net, ends, log };
}

function send(s: Setup, from: NodeId, to: NodeId, term = 1): void {
  s.ends.get(from)!.send(to, [heartbeat(from, to, term)]);
}

Deno.test("MemoryNetwork: reliable delivery within 1 ms, one message per batch", () => {
  const s = setup(["a", "b"]);
  s.ends.get("a")!.send("b", [heartbeat("a", "b", 1), heartbeat("a", "b", 2)]);
  s.clock.advance(0.999999);
  s.clock.advance(0.000001);
  assert.deepEqual([...s.log].sort(), ["a>b:1", "a>b:2"]);
  assert.equal(s.net.messagesDelivered(), 2);
  assert.equal(s.net.messagesDropped(), 0);
  assert.equal(s.clock.pendingTimers(), 0);
});

Deno.test("MemoryNetwork: messages addressed to another server are dropped", () => {
  const s = setup(["a", "b", "c"]);
  s.ends.get("a")!.send("b", [heartbeat("a", "c"), heartbeat("a", "b")]);
  s.clock.advance(5);
  assert.deepEqual(s.log, ["a>b:1"]);
  assert.equal(s.net.messagesDropped(), 1);
});

Deno.test("MemoryNetwork: the same seed gives the same deliveries and drops", () => {
  function run(seed: number): string[] {
    const s = setup(["a", "b", "c"], seed);
    s.net.setReliable(false);
    s.net.setLongReordering(true);
    for (let i = 0; i < 300; i++) {
      send(s, "a", "b", i);
      s.ends.get("b")!.send("c", [heartbeatResp("b", "c", i)]);
      send(s, "c", "a", i);
      s.clock.advance(1);
    }
    s.clock.advance(3000);
    return [...s.log, `dropped=${s.net.messagesDropped()}`];
  }
  const first = run(42);
  assert.deepEqual(run(42), first);
  assert.notDeepEqual(run(43), first);
});

Deno.test("MemoryNetwork: unreliable mode drops about 10% and delays up to 27 ms", () => {
  const s = setup(["a", "b"], 7);
  s.net.setReliable(false);
  const n = 20_000;
  const sentAt = new Map<number, number>();
  let maxDelay = 0;
  s.ends.get("b")!.listen((msgs) => {
    const delay = s.clock.now() - sentAt.get(msgs[0].term)!;
    maxDelay = Math.max(maxDelay, delay);
  });
  let responsesDelivered = 0;
  s.ends.get("a")!.listen(() => responsesDelivered++);
  for (let i = 0; i < n; i++) {
    sentAt.set(i, s.clock.now());
    send(s, "a", "b", i);
    s.ends.get("b")!.send("a", [heartbeatResp("b", "a", i)]);
    s.clock.advance(0.5);
  }
  s.clock.advance(100);
  const requestRate = 1 - s.net.rpcCount("b") / n;
  const responseRate = 1 - responsesDelivered / n;
  assert.ok(Math.abs(requestRate - 0.1) < 0.01, `request drop rate ${requestRate}`);
  assert.ok(Math.abs(responseRate - 0.1) < 0.01, `response drop rate ${responseRate}`);
  assert.ok(maxDelay > 25 && maxDelay <= 27, `max delay ${maxDelay}`);
  assert.equal(s.net.messagesDropped() + s.net.messagesDelivered(), 2 * n);
});

Deno.test("MemoryNetwork: long reordering delays about 2/3 of responses by 200-2200 ms", () => {
  const s = setup(["a", "b"], 3);
  s.net.setLongReordering(true);
  const delays: number[] = [];
  s.ends.get("a")!.listen(() => delays.push(s.clock.now()));
  const n = 3000;
  for (let i = 0; i < n; i++) s.ends.get("b")!.send("a", [heartbeatResp("b", "a")]);
  send(s, "a", "b"); // requests are not reordered
  s.clock.advance(1);
  assert.equal(s.log.length, 1);
  s.clock.advance(2300);
  assert.equal(delays.length, n);
  const long = delays.filter((d) => d >= 200);
  assert.ok(Math.abs(long.length / n - 2 / 3) < 0.03, `long fraction ${long.length / n}`);
  assert.ok(long.every((d) => d < 2200));
  assert.ok(delays.every((d) => d < 1 || d >= 200));
});

Deno.test("MemoryNetwork: disconnect cuts both directions and drops messages in flight", () => {
  const s = setup(["a", "b", "c"]);
  s.net.setReliable(false);
  for (let i = 0; i < 50; i++) {
    send(s, "a", "b");
    send(s, "b", "a");
  }
  send(s, "a", "c");
  s.net.disconnect("a");
  assert.equal(s.net.isConnected("a"), false);
  s.clock.advance(50);
  assert.deepEqual(s.log, []);
  send(s, "a", "c");
  send(s, "c", "a");
  s.net.connect("a");
  s.clock.advance(50);
  assert.deepEqual(s.log, []); // cut when sent, even though reconnected before delivery

  s.net.setReliable(true);
  send(s, "c", "a");
  s.clock.advance(1);
  assert.deepEqual(s.log, ["c>a:1"]);
  assert.equal(s.net.isConnected("a"), true);
});

Deno.test("MemoryNetwork: partitions allow traffic only within a group", () => {
  const s = setup(["a", "b", "c", "d"]);
  s.net.partition([["a", "b"], ["c"]]);
  send(s, "a", "b");
  send(s, "b", "a");
  send(s, "a", "c");
  send(s, "c", "b");
  send(s, "a", "d");
  send(s, "d", "c");
  s.clock.advance(1);
  assert.deepEqual([...s.log].sort(), ["a>b:1", "b>a:1"]);

  s.log.length = 0;
  send(s, "a", "b", 2); // in flight when the partition changes: dropped at delivery
  s.net.partition([["a"], ["b", "c", "d"]]);
  send(s, "c", "d", 2);
  s.clock.advance(1);
  assert.deepEqual(s.log, ["c>d:2"]);

  s.log.length = 0;
  s.net.heal();
  s.net.disconnect("d");
  send(s, "a", "c", 3);
  send(s, "c", "d", 3);
  s.clock.advance(1);
  assert.deepEqual(s.log, ["a>c:3"]);
  assert.throws(() => s.net.partition([["a"], ["a"]]), /two groups/);
});

Deno.test("MemoryNetwork: a replaced endpoint neither receives nor sends", () => {
  const s = setup(["a", "b"]);
  const oldB = s.ends.get("b")!;
  send(s, "a", "b", 1); // in flight to the old endpoint
  const received: string[] = [];
  const newB = s.net.transport("b");
  newB.listen((msgs) => received.push(`${msgs[0].from}:${msgs[0].term}`));
  oldB.send("a", [heartbeat("b", "a", 9)]);
  send(s, "a", "b", 2);
  s.clock.advance(5);
  assert.deepEqual(s.log, []);
  assert.deepEqual(received, ["a:2"]);

  newB.send("a", [heartbeat("b", "a", 3)]);
  s.clock.advance(5);
  assert.deepEqual(s.log, ["b>a:3"]);
});

Deno.test("MemoryNetwork: close detaches an endpoint; a later transport() revives the id", () => {
  const s = setup(["a", "b"]);
  send(s, "a", "b", 1);
  s.ends.get("b")!.close();
  s.ends.get("b")!.send("a", [heartbeat("b", "a")]);
  send(s, "a", "b", 2);
  s.clock.advance(5);
  assert.deepEqual(s.log, []);
  const received: number[] = [];
  s.net.transport("b").listen((msgs) => received.push(msgs[0].term));
  send(s, "a", "b", 3);
  s.clock.advance(5);
  assert.deepEqual(received, [3]);
});

Deno.test("MemoryNetwork: messages in flight from a replaced endpoint still arrive", () => {
  const s = setup(["a", "b"]);
  send(s, "a", "b", 1);
  s.net.transport("a");
  s.clock.advance(5);
  assert.deepEqual(s.log, ["a>b:1"]);
});

Deno.test("MemoryNetwork: counts RPCs delivered and bytes of requests sent", () => {
  const s = setup(["a", "b", "c"]);
  s.ends.get("a")!.send("b", [append("a", "b", [5000, 10]), heartbeat("a", "b")]);
  s.ends.get("b")!.send("a", [heartbeatResp("b", "a")]);
  s.net.disconnect("c");
  s.ends.get("a")!.send("c", [append("a", "c", [100])]); // counted as sent though dropped
  s.clock.advance(5);
  assert.equal(s.net.rpcCount("b"), 2);
  assert.equal(s.net.rpcCount("a"), 0); // responses are not RPCs
  assert.equal(s.net.rpcCount("c"), 0);
  assert.equal(s.net.totalRpcs(), 2);
  assert.equal(s.net.bytesSent(), 32 + (16 + 5000) + (16 + 10) + 32 + 32 + (16 + 100));
  assert.equal(s.net.messagesDelivered(), 3);
  assert.equal(s.net.messagesDropped(), 1);
});

Deno.test("messageSize: 32 per message plus 16 and the data per entry", () => {
  assert.equal(messageSize(heartbeat("a", "b")), 32);
  assert.equal(messageSize(heartbeatResp("a", "b")), 32);
  assert.equal(messageSize(append("a", "b", [])), 32);
  assert.equal(messageSize(append("a", "b", [3, 0])), 32 + 19 + 16);
});

Deno.test("MemoryNetwork: an unknown destination or missing handler drops the message", () => {
  const s = setup(["a"]);
  send(s, "a", "nobody");
  const silent = s.net.transport("b");
  send(s, "a", "b");
  s.clock.advance(5);
  assert.equal(s.net.messagesDropped(), 2);
  assert.equal(s.net.rpcCount("b"), 0);
  silent.close();
});
