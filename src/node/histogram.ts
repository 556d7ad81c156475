/**
 * A fixed-bucket histogram of durations in seconds, shaped like a Prometheus histogram (upper
 * bounds, a sum and a count) but with non-cumulative counts, so a reader can sum or export it.
 *
 * @module
 */

/** Observations counted per bucket; times in seconds. */
export interface Histogram {
  /** Bucket upper bounds in seconds, ascending. */
  readonly bounds: readonly number[];
  /**
   * Observations per bucket, not cumulative: `counts[i]` holds those ≤ `bounds[i]` and above
   * `bounds[i - 1]`; length `bounds.length + 1`, the last bucket being +Inf.
   */
  readonly counts: readonly number[];
  /** Sum of every observation, in seconds. */
  readonly sum: number;
  /** Number of observations. */
  readonly count: number;
}

/** Bucket bounds (seconds) for storage and apply durations: 100 µs to 10 s, 1-2.5-5 steps. */
export const DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
]);

/** A histogram being filled. */
export class DurationHistogram {
  readonly #bounds: readonly number[];
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  /** Buckets with these upper bounds (seconds, ascending). */
  constructor(bounds: readonly number[] = DURATION_BUCKETS) {
    for (let i = 1; i < bounds.length; i++) {
      if (!(bounds[i] > bounds[i - 1])) throw new RangeError("histogram bounds must ascend");
    }
    this.#bounds = bounds;
    this.#counts = new Array(bounds.length + 1).fill(0);
  }

  /** Count one duration of `seconds` (negative values, from a clock going wrong, count as 0). */
  observe(seconds: number): void {
    const s = seconds > 0 ? seconds : 0;
    const b = this.#bounds;
    let i = 0;
    while (i < b.length && s > b[i]) i++;
    this.#counts[i]++;
    this.#sum += s;
    this.#count++;
  }

  /** A copy of the current state. */
  snapshot(): Histogram {
    return {
      bounds: this.#bounds,
      counts: Object.freeze([...this.#counts]),
      sum: this.#sum,
      count: this.#count,
    };
  }
}
