// Key order and the sorted key index, against a plain sorted array.
import assert from "node:assert/strict";
import { compareKeys, SortedKeys } from "../../src/kv/kv_sorted_keys.ts";
import { Random } from "../../src/testing/random.ts";

const utf8 = new TextEncoder();

function compareUtf8(a: string, b: string): number {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i] - y[i];
  }
  return x.length - y.length;
}

const ALPHABET = ["a", "b", "/", "é", "\u0800", "\uE000", "\uFFFD", "\u{10000}", "\u{1F600}", "z"];

function randomKey(random: Random): string {
  let s = "";
  const n = 1 + random.int(4);
  for (let i = 0; i < n; i++) s += random.pick(ALPHABET);
  return s;
}

Deno.test("compareKeys: the byte order of UTF-8", () => {
  const random = new Random(5);
  for (let i = 0; i < 5000; i++) {
    const a = randomKey(random);
    const b = random.chance(0.1) ? a : randomKey(random);
    assert.equal(Math.sign(compareKeys(a, b)), Math.sign(compareUtf8(a, b)), `${a} vs ${b}`);
  }
});

Deno.test("SortedKeys: inserts, deletes and ranges match a sorted array", () => {
  const random = new Random(9);
  const keys = new SortedKeys();
  const model = new Set<string>();
  // Enough keys to split chunks many times, then delete most of them again.
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 6000; i++) {
      const k = `${random.int(20000)}`.padStart(5, "0") + randomKey(random);
      if (model.has(k)) {
        assert.equal(keys.delete(k), true);
        model.delete(k);
      } else if (round === 0 || random.chance(0.2)) {
        keys.insert(k);
        model.add(k);
      }
    }
    const sorted = [...model].sort(compareKeys);
    assert.equal(keys.size, sorted.length);
    assert.deepEqual([...keys], sorted);
    for (let i = 0; i < 50; i++) {
      const start = `${random.int(20000)}`.padStart(5, "0");
      const want = sorted.filter((k) => compareKeys(k, start) >= 0);
      assert.deepEqual([...keys.from(start)], want);
    }
    assert.equal(keys.delete("absent"), false);
  }
  const rebuilt = SortedKeys.fromSorted([...keys]);
  assert.deepEqual([...rebuilt], [...keys]);
  rebuilt.insert("00000");
  assert.equal([...rebuilt][0], "00000");
  assert.deepEqual([...new SortedKeys().from("a")], []);
});
