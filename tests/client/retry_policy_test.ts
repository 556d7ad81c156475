/**
 * Backoff: doubling from `baseMs`, capped at `maxMs`, jittered into [half, whole); settings
 * checked.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  backoffDelay,
  DEFAULT_RETRY_POLICY,
  resolveRetryPolicy,
} from "../../src/client/retry_policy.ts";

Deno.test("retry policy: exponential, capped, jittered between half and the whole step", () => {
  const p = resolveRetryPolicy({ baseMs: 10, maxMs: 100 });
  assert.equal(p.attempts, DEFAULT_RETRY_POLICY.attempts);
  const steps = [10, 20, 40, 80, 100, 100];
  for (const [i, step] of steps.entries()) {
    assert.equal(backoffDelay(p, i + 1, () => 0), step / 2);
    assert.ok(backoffDelay(p, i + 1, () => 0.999999) < step);
    assert.ok(backoffDelay(p, i + 1, () => 0.999999) > step * 0.99);
  }
  assert.equal(backoffDelay(p, 1000, () => 0), 50, "huge retry counts stay capped");
});

Deno.test("retry policy: out-of-range settings are refused", () => {
  assert.throws(() => resolveRetryPolicy({ attempts: 0 }), RangeError);
  assert.throws(() => resolveRetryPolicy({ attempts: 1.5 }), RangeError);
  assert.throws(() => resolveRetryPolicy({ baseMs: -1 }), RangeError);
  assert.throws(() => resolveRetryPolicy({ baseMs: 100, maxMs: 10 }), RangeError);
});
