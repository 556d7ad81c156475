import assert from "node:assert/strict";
import { Random } from "../../src/testing/random.ts";

function take(random: Random, n: number): number[] {
  return Array.from({ length: n }, () => random.next());
}

Deno.test("Random: the same seed gives the same sequence", () => {
  assert.deepEqual(take(new Random(7), 100), take(new Random(7), 100));
});

Deno.test("Random: nearby seeds give unrelated sequences", () => {
  const a = take(new Random(1), 50);
  const b = take(new Random(2), 50);
  assert.ok(a.every((x, i) => x !== b[i]));
});

Deno.test("Random: seeds are taken modulo 2^32 and must be integers", () => {
  assert.deepEqual(take(new Random(-1), 10), take(new Random(0xffffffff), 10));
  assert.throws(() => new Random(1.5), RangeError);
  assert.throws(() => new Random(NaN), RangeError);
});

Deno.test("Random: next, int and range stay in bounds and look uniform", () => {
  const random = new Random(123);
  const counts = new Array(10).fill(0);
  const n = 100_000;
  for (let i = 0; i < n; i++) {
    const x = random.next();
    assert.ok(x >= 0 && x < 1);
    const k = random.int(10);
    assert.ok(Number.isInteger(k) && k >= 0 && k < 10);
    counts[k]++;
    const r = random.range(-5, 5);
    assert.ok(r >= -5 && r < 5);
  }
  for (const c of counts) assert.ok(Math.abs(c - n / 10) < n / 100, `bucket count ${c}`);
  assert.throws(() => random.int(0), RangeError);
  assert.throws(() => random.int(2.5), RangeError);
});

Deno.test("Random: chance follows its probability", () => {
  const random = new Random(5);
  let hits = 0;
  for (let i = 0; i < 100_000; i++) if (random.chance(0.1)) hits++;
  assert.ok(hits > 9_500 && hits < 10_500, `hits ${hits}`);
  assert.equal(random.chance(0), false);
  assert.equal(random.chance(1), true);
});

Deno.test("Random: pick and shuffle", () => {
  const random = new Random(9);
  const items = ["a", "b", "c"] as const;
  const seen = new Set<string>();
  for (let i = 0; i < 100; i++) seen.add(random.pick(items));
  assert.deepEqual([...seen].sort(), ["a", "b", "c"]);
  assert.throws(() => random.pick([]), RangeError);

  const arr = Array.from({ length: 20 }, (_, i) => i);
  const shuffled = random.shuffle(arr);
  assert.equal(shuffled, arr);
  assert.deepEqual([...shuffled].sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i));
  assert.notDeepEqual(shuffled, Array.from({ length: 20 }, (_, i) => i));
  assert.deepEqual(
    new Random(3).shuffle([1, 2, 3, 4, 5, 6]),
    new Random(3).shuffle([1, 2, 3, 4, 5, 6]),
  );
});

Deno.test("Random: fork is deterministic and independent of the parent's later draws", () => {
  const p1 = new Random(11);
  const p2 = new Random(11);
  const f1 = p1.fork();
  const f2 = p2.fork();
  take(p1, 5); // extra parent draws must not shift the fork's stream
  assert.deepEqual(take(f1, 20), take(f2, 20));
  const f3 = new Random(11).fork();
  const parentAfter = new Random(11);
  parentAfter.nextUint32();
  assert.notDeepEqual(take(f3, 20), take(parentAfter, 20));
});
