/**
 * The core's only source of randomness: a seeded generator for election-timeout jitter, so a run
 * replays exactly from its seed.
 *
 * @module
 */

/** A deterministic 32-bit generator (mulberry32). */
export class SeededRandom {
  #state: number;

  /** Start the sequence from `seed` (any number; only its low 32 bits matter). */
  constructor(seed: number) {
    this.#state = (seed >>> 0) ^ 0x9e3779b9;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    return Math.floor(u * n);
  }
}
