// DeadlineQueue: same-delay timeouts under one clock timer, in virtual time.
import assert from "node:assert/strict";
import { DeadlineQueue } from "../../src/node/deadline_queue.ts";
import { VirtualClock } from "../../src/testing/virtual_clock.ts";

Deno.test("DeadlineQueue: each callback runs exactly its delay after it was added", () => {
  const clock = new VirtualClock();
  const q = new DeadlineQueue(clock, 100);
  const ran: [string, number][] = [];
  q.add(() => ran.push(["a", clock.now()]));
  clock.advance(30);
  q.add(() => ran.push(["b", clock.now()]));
  q.add(() => ran.push(["c", clock.now()]));
  clock.advance(69);
  assert.deepEqual(ran, []);
  clock.advance(1);
  assert.deepEqual(ran, [["a", 100]]);
  clock.advance(30);
  assert.deepEqual(ran, [["a", 100], ["b", 130], ["c", 130]]);
  assert.equal(q.size, 0);
  assert.equal(clock.pendingTimers(), 0, "no timer left once nothing waits");
});

Deno.test("DeadlineQueue: one timer for many entries; cancelled ones never run", () => {
  const clock = new VirtualClock();
  const q = new DeadlineQueue(clock, 50);
  const ran: number[] = [];
  const ids = Array.from({ length: 5000 }, (_, i) => q.add(() => ran.push(i)));
  assert.equal(clock.pendingTimers(), 1);
  // Cancel all but every 1000th (in order, as requests mostly finish).
  ids.forEach((id, i) => i % 1000 !== 0 && q.cancel(id));
  q.cancel(ids[1]); // twice: nothing happens
  assert.equal(q.size, 5);
  clock.advance(50);
  assert.deepEqual(ran, [0, 1000, 2000, 3000, 4000]);
  // Cancelling everything clears the timer at once.
  const more = [q.add(() => ran.push(-1)), q.add(() => ran.push(-2))];
  for (const id of more) q.cancel(id);
  assert.equal(clock.pendingTimers(), 0);
  clock.advance(100);
  assert.equal(ran.length, 5);
});

Deno.test("DeadlineQueue: a callback may add and cancel; clear() drops everything", () => {
  const clock = new VirtualClock();
  const q = new DeadlineQueue(clock, 10);
  const ran: string[] = [];
  let second = -1;
  q.add(() => {
    ran.push("first");
    q.cancel(second);
    q.add(() => ran.push("again"));
  });
  second = q.add(() => ran.push("second"));
  q.add(() => ran.push("third"));
  clock.advance(10);
  assert.deepEqual(ran, ["first", "third"]);
  clock.advance(10);
  assert.deepEqual(ran, ["first", "third", "again"]);
  q.add(() => ran.push("never"));
  q.clear();
  assert.equal(clock.pendingTimers(), 0);
  clock.advance(20);
  assert.equal(ran.length, 3);
});
