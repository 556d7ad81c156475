/**
 * How `FloeClient` spaces its retries: exponential backoff with jitter, a bounded number of
 * attempts.
 *
 * @module
 */

/** Retry settings of `FloeClient`. */
export interface RetryPolicy {
  /** Attempts per request, the first included (≥ 1). Default 10. */
  readonly attempts: number;
  /** Delay before the first retry, ms; doubles per retry. Default 50. */
  readonly baseMs: number;
  /** Longest delay between two attempts, ms. Default 2,000. */
  readonly maxMs: number;
}

/** The defaults: 10 attempts, 50 ms doubling to at most 2 s (about 10 s in all). */
export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({
  attempts: 10,
  baseMs: 50,
  maxMs: 2000,
});

/**
 * `policy` completed with the defaults.
 *
 * @throws {RangeError} when a setting is out of range.
 */
export function resolveRetryPolicy(policy: Partial<RetryPolicy> = {}): RetryPolicy {
  const p = { ...DEFAULT_RETRY_POLICY, ...policy };
  if (!Number.isSafeInteger(p.attempts) || p.attempts < 1) {
    throw new RangeError(`retry.attempts must be an integer ≥ 1, got ${p.attempts}`);
  }
  if (!(p.baseMs >= 0) || !(p.maxMs >= p.baseMs)) {
    throw new RangeError(`retry needs 0 ≤ baseMs ≤ maxMs, got ${p.baseMs} and ${p.maxMs}`);
  }
  return p;
}

/**
 * The wait before retry number `retry` (1 for the first retry): `baseMs · 2^(retry-1)` capped
 * at `maxMs`, times a random factor in [0.5, 1) so clients that failed together do not retry
 * together.
 */
export function backoffDelay(policy: RetryPolicy, retry: number, random = Math.random): number {
  const exp = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(30, Math.max(0, retry - 1)));
  return exp * (0.5 + random() / 2);
}
