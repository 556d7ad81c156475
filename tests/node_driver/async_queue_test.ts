/**
 * Unit tests of `AsyncQueue` (src/node/async_queue.ts): the bounded single-reader queue behind
 * `RaftNode.applied()` — order, closing, early return and the overflow error.
 *
 * @module
 */
import assert from "node:assert/strict";
import { AsyncQueue, QueueOverflowError } from "../../src/node/async_queue.ts";

Deno.test("AsyncQueue: items come out in the order they went in", async () => {
  const q = new AsyncQueue<number>(100);
  for (let i = 0; i < 5; i++) q.push(i);
  const got: number[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await q.next();
    assert.equal(r.done, false);
    got.push(r.value as number);
  }
  assert.deepEqual(got, [0, 1, 2, 3, 4]);
});

Deno.test("AsyncQueue: a waiting reader receives the next push", async () => {
  const q = new AsyncQueue<string>(10);
  const pending = q.next();
  q.push("a");
  q.push("b");
  assert.deepEqual(await pending, { value: "a", done: false });
  assert.deepEqual(await q.next(), { value: "b", done: false });
});

Deno.test("AsyncQueue: order holds across many items (internal compaction)", async () => {
  const q = new AsyncQueue<number>(10_000);
  const n = 5000;
  let next = 0;
  for (let i = 0; i < n; i++) {
    q.push(i);
    if (i % 3 === 0) {
      const r = await q.next();
      assert.equal(r.value, next++);
    }
  }
  while (next < n) {
    const r = await q.next();
    assert.equal(r.value, next++);
  }
});

Deno.test("AsyncQueue: close ends the stream after the queued items", async () => {
  const q = new AsyncQueue<number>(10);
  q.push(1);
  q.push(2);
  q.close();
  assert.equal(q.closed, true);
  q.push(3); // ignored once closed
  const got: number[] = [];
  for await (const x of q) got.push(x);
  assert.deepEqual(got, [1, 2]);
  assert.deepEqual(await q.next(), { value: undefined, done: true });
});

Deno.test("AsyncQueue: close wakes a waiting reader with done", async () => {
  const q = new AsyncQueue<number>(10);
  const pending = q.next();
  q.close();
  assert.deepEqual(await pending, { value: undefined, done: true });
});

Deno.test("AsyncQueue: falling more than limit behind fails the reader with QueueOverflowError", async () => {
  const q = new AsyncQueue<number>(3);
  q.push(1);
  q.push(2);
  q.push(3);
  assert.equal(q.closed, false, "exactly at the limit is fine");
  q.push(4);
  assert.equal(q.closed, true);
  await assert.rejects(q.next(), (e: unknown) => {
    assert.ok(e instanceof QueueOverflowError);
    assert.equal(e.limit, 3);
    assert.equal(e.name, "QueueOverflowError");
    return true;
  });
  // It stays failed: nothing is silently skipped.
  await assert.rejects(q.next(), QueueOverflowError);
  q.push(5);
  await assert.rejects(q.next(), QueueOverflowError);
});

Deno.test("AsyncQueue: a reader that keeps up never overflows", async () => {
  const q = new AsyncQueue<number>(2);
  for (let i = 0; i < 100; i++) {
    q.push(i);
    q.push(i);
    await q.next();
    await q.next();
  }
  assert.equal(q.closed, false);
});

Deno.test("AsyncQueue: fail rejects a waiting reader", async () => {
  const q = new AsyncQueue<number>(10);
  const pending = q.next();
  const err = new Error("boom");
  q.fail(err);
  await assert.rejects(pending, (e: unknown) => e === err);
});

Deno.test("AsyncQueue: return() (a reader breaking out of for-await) closes the queue", async () => {
  const q = new AsyncQueue<number>(10);
  for (let i = 0; i < 5; i++) q.push(i);
  for await (const x of q) {
    if (x === 1) break;
  }
  assert.equal(q.closed, true);
  assert.deepEqual(await q.next(), { value: undefined, done: true }, "the rest is dropped");
  q.push(9);
  assert.deepEqual(await q.next(), { value: undefined, done: true });
});
