/**
 * A small, fast, seeded pseudo-random generator for simulations: the same seed always gives the
 * same sequence, so a failing run can be replayed from its seed.
 *
 * @module
 */

/** One step of splitmix32 from `state`; spreads nearby seeds into unrelated words. */
function splitmix32(state: number): number {
  let t = state ^ (state >>> 16);
  t = Math.imul(t, 0x21f0aaad);
  t ^= t >>> 15;
  t = Math.imul(t, 0x735a2d97);
  return (t ^ (t >>> 15)) >>> 0;
}

const GOLDEN = 0x9e3779b9;
const TWO_POW_32 = 4294967296;

/**
 * A seeded generator (sfc32, its 128-bit state filled by splitmix32 from the seed).
 * Not for cryptography.
 *
 * @example
 * ```ts
 * const random = new Random(42);
 * const timeout = random.range(150, 300);
 * ```
 */
export class Random {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /**
   * Seed the generator. Only the low 32 bits of the integer `seed` are used.
   *
   * @throws {RangeError} when `seed` is not an integer.
   */
  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new RangeError(`Random: seed must be an integer: ${seed}`);
    let s = seed >>> 0;
    s = (s + GOLDEN) | 0;
    this.#a = splitmix32(s);
    s = (s + GOLDEN) | 0;
    this.#b = splitmix32(s);
    s = (s + GOLDEN) | 0;
    this.#c = splitmix32(s);
    s = (s + GOLDEN) | 0;
    this.#d = splitmix32(s);
    // sfc32's first outputs still correlate with its state words; the customary warm-up.
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** The next 32-bit unsigned integer, uniform in [0, 2^32). */
  nextUint32(): number {
    const a = this.#a, b = this.#b, c = this.#c, d = this.#d;
    let t = (a + b) | 0;
    this.#a = b ^ (b >>> 9);
    this.#b = (c + (c << 3)) | 0;
    const c2 = (c << 21) | (c >>> 11);
    const d2 = (d + 1) | 0;
    this.#d = d2;
    t = (t + d2) | 0;
    this.#c = (c2 + t) | 0;
    return t >>> 0;
  }

  /** The next float, uniform in [0, 1), with 32 bits of randomness. */
  next(): number {
    return this.nextUint32() / TWO_POW_32;
  }

  /**
   * An integer uniform in [0, n).
   *
   * @throws {RangeError} when `n` is not a positive integer.
   */
  int(n: number): number {
    if (!(n > 0) || !Number.isInteger(n)) {
      throw new RangeError(`Random.int: n must be a positive integer: ${n}`);
    }
    return Math.floor(this.next() * n);
  }

  /** A float uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + this.next() * (hi - lo);
  }

  /** True with probability `p` (always false for p ≤ 0, always true for p ≥ 1). */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /**
   * One element of `arr`, each equally likely.
   *
   * @throws {RangeError} when `arr` is empty.
   */
  pick<T>(arr: readonly T[]): T {
    if (arr.length === 0) throw new RangeError("Random.pick: empty array");
    return arr[this.int(arr.length)];
  }

  /** Shuffle `arr` in place (Fisher–Yates) and return it. */
  shuffle<T>(arr: T[]): T[] {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = arr[i];
      arr[i] = arr[j];
      arr[j] = tmp;
    }
    return arr;
  }

  /**
   * A new generator seeded from this one's next output. Giving each component its own fork keeps
   * one component's extra draws from shifting every other component's sequence.
   */
  fork(): Random {
    return new Random(this.nextUint32());
  }
}
