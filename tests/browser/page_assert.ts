/**
 * Assertions for code that runs inside the browser page. `node:assert` cannot be bundled for a
 * browser, so the page carries these few, with messages that survive the trip back to Deno as
 * plain strings.
 *
 * @module
 */

/** Render a value for a failure message: byte arrays as their length and first bytes. */
export function show(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v instanceof Uint8Array) {
      const head = Array.from(v.subarray(0, 8)).join(",");
      return `Uint8Array(${v.length})[${head}${v.length > 8 ? ",…" : ""}]`;
    }
    return v === undefined ? "<undefined>" : v;
  });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Structural equality over plain objects, arrays, byte arrays and primitives. */
export function deepEqual(actual: unknown, expected: unknown): boolean {
  if (Object.is(actual, expected)) return true;
  if (actual instanceof Uint8Array || expected instanceof Uint8Array) {
    return actual instanceof Uint8Array && expected instanceof Uint8Array &&
      sameBytes(actual, expected);
  }
  if (Array.isArray(actual) || Array.isArray(expected)) {
    return Array.isArray(actual) && Array.isArray(expected) &&
      actual.length === expected.length && actual.every((v, i) => deepEqual(v, expected[i]));
  }
  if (typeof actual !== "object" || typeof expected !== "object") return false;
  if (actual === null || expected === null) return false;
  const a = actual as Record<string, unknown>;
  const b = expected as Record<string, unknown>;
  // A key holding undefined counts as absent, as it does after a structured-clone round trip.
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) if (!deepEqual(a[key], b[key])) return false;
  return true;
}

/** Throws unless `actual` and `expected` are structurally equal. */
export function assertEqual(actual: unknown, expected: unknown, what = "value"): void {
  if (!deepEqual(actual, expected)) {
    throw new Error(`${what}: expected ${show(expected)}, got ${show(actual)}`);
  }
}

/** Throws with `message` unless `condition` holds. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

/** Resolves with the error `promise` rejects with; throws if it resolves or the error differs. */
export async function assertRejects(
  promise: Promise<unknown>,
  pattern: RegExp,
  what: string,
): Promise<Error> {
  let outcome: unknown;
  try {
    outcome = await promise;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (!pattern.test(message)) {
      throw new Error(`${what}: rejected with "${message}", which does not match ${pattern}`);
    }
    return error instanceof Error ? error : new Error(message);
  }
  throw new Error(
    `${what}: expected a rejection matching ${pattern}, resolved with ${show(outcome)}`,
  );
}
