import assert from "node:assert/strict";
import { VirtualClock } from "../../src/testing/virtual_clock.ts";
import { Random } from "../../src/testing/random.ts";

Deno.test("VirtualClock: timers run in due order, ties in scheduling order", () => {
  const clock = new VirtualClock();
  const log: string[] = [];
  clock.schedule(30, () => log.push(`c@${clock.now()}`));
  clock.schedule(10, () => log.push(`a1@${clock.now()}`));
  clock.schedule(20, () => log.push(`b@${clock.now()}`));
  clock.schedule(10, () => log.push(`a2@${clock.now()}`));
  clock.schedule(-5, () => log.push(`neg@${clock.now()}`));
  clock.advance(25);
  assert.deepEqual(log, ["neg@0", "a1@10", "a2@10", "b@20"]);
  assert.equal(clock.now(), 25);
  assert.equal(clock.pendingTimers(), 1);
  clock.runUntil(30);
  assert.deepEqual(log.at(-1), "c@30");
  assert.equal(clock.pendingTimers(), 0);
});

Deno.test("VirtualClock: many random timers come out sorted by (due, seq)", () => {
  const clock = new VirtualClock();
  const random = new Random(4);
  const expected: [number, number][] = [];
  const got: [number, number][] = [];
  for (let i = 0; i < 10_000; i++) {
    const due = random.int(500);
    expected.push([due, i]);
    clock.schedule(due, () => got.push([clock.now(), i]));
  }
  expected.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  clock.advance(1000);
  assert.deepEqual(got, expected);
});

Deno.test("VirtualClock: cancel prevents the run, is idempotent, and is a no-op after the run", () => {
  const clock = new VirtualClock();
  const log: number[] = [];
  const c1 = clock.schedule(10, () => log.push(1));
  const c2 = clock.schedule(20, () => log.push(2));
  assert.equal(clock.pendingTimers(), 2);
  c1();
  c1();
  assert.equal(clock.pendingTimers(), 1);
  clock.advance(30);
  assert.deepEqual(log, [2]);
  c2();
  assert.equal(clock.pendingTimers(), 0);
});

Deno.test("VirtualClock: a timer can cancel a later timer due at the same time", () => {
  const clock = new VirtualClock();
  const log: string[] = [];
  let cancelB = () => {};
  clock.schedule(5, () => {
    log.push("a");
    cancelB();
  });
  cancelB = clock.schedule(5, () => log.push("b"));
  clock.advance(5);
  assert.deepEqual(log, ["a"]);
});

Deno.test("VirtualClock: many cancellations keep ordering and counts right", () => {
  const clock = new VirtualClock();
  const random = new Random(8);
  const ran: number[] = [];
  const keep: number[] = [];
  for (let i = 0; i < 20_000; i++) {
    const cancel = clock.schedule(1 + random.int(100), () => ran.push(i));
    if (random.chance(0.8)) cancel();
    else keep.push(i);
  }
  assert.equal(clock.pendingTimers(), keep.length);
  clock.advance(200);
  assert.deepEqual([...ran].sort((x, y) => x - y), keep);
  assert.equal(clock.pendingTimers(), 0);
});

Deno.test("VirtualClock: deferred callbacks run FIFO, before timers, even timers due now", () => {
  const clock = new VirtualClock();
  const log: string[] = [];
  clock.schedule(0, () => {
    log.push("timer0");
    clock.defer(() => log.push("deferred-by-timer0"));
  });
  clock.schedule(0, () => log.push("timer0b"));
  clock.defer(() => {
    log.push("d1");
    clock.defer(() => log.push("d3"));
  });
  clock.defer(() => log.push("d2"));
  assert.deepEqual(log, []);
  clock.advance(0);
  assert.deepEqual(log, ["d1", "d2", "d3", "timer0", "deferred-by-timer0", "timer0b"]);
});

Deno.test("VirtualClock: runUntil sets time to each timer's due time and never goes back", () => {
  const clock = new VirtualClock();
  const times: number[] = [];
  clock.schedule(7.5, () => {
    times.push(clock.now());
    clock.schedule(2, () => times.push(clock.now()));
  });
  clock.runUntil(100);
  assert.deepEqual(times, [7.5, 9.5]);
  assert.equal(clock.now(), 100);
  clock.runUntil(50);
  assert.equal(clock.now(), 100);
  assert.throws(() => clock.runUntil(Infinity), RangeError);
});

Deno.test("VirtualClock: an exception from a callback propagates; the clock stays usable", () => {
  const clock = new VirtualClock();
  const log: string[] = [];
  clock.schedule(1, () => {
    throw new Error("boom");
  });
  clock.schedule(2, () => log.push("later"));
  assert.throws(() => clock.advance(10), /boom/);
  assert.equal(clock.now(), 1);
  clock.defer(() => {
    throw new Error("deferred boom");
  });
  clock.defer(() => log.push("after deferred boom"));
  assert.throws(() => clock.advance(10), /deferred boom/);
  clock.advance(10);
  assert.deepEqual(log, ["after deferred boom", "later"]);
});

Deno.test("VirtualClock: runUntil from inside a callback is refused", () => {
  const clock = new VirtualClock();
  clock.schedule(1, () => clock.advance(5));
  assert.throws(() => clock.advance(2), /inside a callback/);
});

Deno.test("VirtualClock: sleep lets queued microtasks run first, then advances", async () => {
  const clock = new VirtualClock();
  const log: string[] = [];
  clock.schedule(10, () => log.push(`timer@${clock.now()}`));
  queueMicrotask(() => log.push("microtask"));
  await clock.sleep(10);
  assert.deepEqual(log, ["microtask", "timer@10"]);
  assert.equal(clock.now(), 10);
});

Deno.test("VirtualClock: a million timers run quickly", () => {
  const clock = new VirtualClock();
  let count = 0;
  const start = performance.now();
  // Self-rescheduling chains, like election and heartbeat timers in a simulation.
  for (let i = 0; i < 100; i++) {
    const tick = () => {
      count++;
      const cancel = clock.schedule(5, () => {});
      cancel();
      clock.schedule(1 + (count % 7), tick);
    };
    clock.schedule(i % 10, tick);
  }
  while (count < 1_000_000) clock.advance(100);
  const elapsed = performance.now() - start;
  assert.ok(elapsed < 5000, `took ${elapsed} ms`);
});
