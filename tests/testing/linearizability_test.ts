import assert from "node:assert/strict";
import {
  checkLinearizable,
  type CheckResult,
  type CheckViolation,
  HistoryRecorder,
  type Model,
  type Operation,
} from "../../src/testing/linearizability.ts";
import {
  type KvExpectation,
  type KvInput,
  kvModel,
  type KvOutput,
} from "../../src/testing/kv_model.ts";
import { Random } from "../../src/testing/random.ts";

type Op = Operation<KvInput, KvOutput>;

const NEVER = Infinity;

function put(
  client: number,
  key: string,
  value: string,
  call: number,
  ret: number,
  revision?: number,
): Op {
  const output = ret === NEVER ? undefined : revision === undefined ? {} : { revision };
  return { client, input: { op: "put", key, value }, output, call, return: ret };
}

function get(
  client: number,
  key: string,
  value: string | null | undefined,
  call: number,
  ret: number,
  revision?: number,
): Op {
  const output = value === undefined
    ? undefined
    : revision === undefined
    ? { value }
    : { value, revision };
  return { client, input: { op: "get", key }, output, call, return: ret };
}

function append(client: number, key: string, value: string, call: number, ret: number): Op {
  return {
    client,
    input: { op: "append", key, value },
    output: ret === NEVER ? undefined : {},
    call,
    return: ret,
  };
}

function del(client: number, key: string, call: number, ret: number, existed?: boolean): Op {
  const output = ret === NEVER ? undefined : existed === undefined ? {} : { existed };
  return { client, input: { op: "delete", key }, output, call, return: ret };
}

function cas(
  client: number,
  key: string,
  expect: KvExpectation,
  value: string | null,
  ok: boolean | undefined,
  call: number,
  ret: number,
): Op {
  const output = ok === undefined ? undefined : { ok };
  return { client, input: { op: "cas", key, expect, value }, output, call, return: ret };
}

function check(history: readonly Op[]): CheckResult<KvInput, KvOutput> {
  return checkLinearizable(kvModel, history);
}

function assertOk(history: readonly Op[]): void {
  const result = check(history);
  assert.equal(result.ok, true, result.ok === true ? "" : result.message);
}

function assertViolation(history: readonly Op[]): CheckViolation<KvInput, KvOutput> {
  const result = check(history);
  assert.equal(result.ok, false, "expected a violation");
  return result as CheckViolation<KvInput, KvOutput>;
}

Deno.test("linearizability: empty and sequential histories are linearizable", () => {
  assertOk([]);
  assertOk([
    get(1, "x", null, 0, 1),
    put(1, "x", "a", 2, 3),
    get(1, "x", "a", 4, 5),
    append(2, "x", "b", 6, 7),
    get(2, "x", "ab", 8, 9),
    cas(1, "x", { value: "ab" }, "c", true, 10, 11),
    cas(2, "x", { value: "ab" }, "d", false, 12, 13),
    get(1, "x", "c", 14, 15),
    del(2, "x", 16, 17, true),
    del(2, "x", 18, 19, false),
    get(1, "x", null, 20, 21),
    append(1, "x", "e", 22, 23),
    get(2, "x", "e", 24, 25),
  ]);
});

Deno.test("linearizability: a get overlapping a put may see either value", () => {
  for (const seen of ["a", "b"]) {
    assertOk([
      put(1, "x", "a", 0, 1),
      put(1, "x", "b", 2, 10),
      get(2, "x", seen, 3, 5),
    ]);
  }
  // Two reads inside one write: old then new is fine, and touching intervals count as concurrent.
  assertOk([
    put(1, "x", "a", 0, 1),
    put(1, "x", "b", 2, 10),
    get(2, "x", "a", 3, 5),
    get(2, "x", "b", 5, 6),
  ]);
  assertOk([put(1, "x", "a", 0, 5), get(2, "x", "a", 5, 6), get(3, "x", null, 1, 2)]);
});

Deno.test("linearizability: a stale read after a completed write is not linearizable", () => {
  const history = [
    put(1, "x", "a", 0, 1),
    put(1, "x", "b", 2, 3),
    get(2, "x", "a", 4, 5),
  ];
  const v = assertViolation(history);
  assert.equal(v.partitionIndex, 0);
  assert.deepEqual(v.longestPrefix, history.slice(0, 2));
  assert.deepEqual(v.unplaced, [history[2]]);
  assert.match(v.message, /get\("x"\) -> "a"/);
  assert.match(v.message, /"b"/);
});

Deno.test("linearizability: reading new then old in non-overlapping reads is not linearizable", () => {
  assertViolation([
    put(1, "x", "a", 0, 1),
    put(1, "x", "b", 2, 20),
    get(2, "x", "b", 3, 5),
    get(3, "x", "a", 6, 8),
  ]);
  // Different clients, same pattern, the write never returning: once seen, it took effect.
  assertViolation([
    put(1, "x", "a", 0, 1),
    put(1, "x", "b", 2, NEVER),
    get(2, "x", "b", 3, 5),
    get(3, "x", "a", 6, 8),
  ]);
});

Deno.test("linearizability: a lost write (acknowledged, never observed) is not linearizable", () => {
  const v = assertViolation([
    put(1, "x", "a", 0, 1),
    put(2, "x", "b", 2, 4),
    get(3, "x", "a", 5, 6),
    get(1, "x", "a", 7, 8),
  ]);
  assert.equal(v.longestPrefix.length, 2);
  // A delete that is lost likewise.
  assertViolation([put(1, "x", "a", 0, 1), del(1, "x", 2, 3), get(2, "x", "a", 4, 5)]);
});

Deno.test("linearizability: appends in either order when concurrent, in real-time order otherwise", () => {
  for (const seen of ["ab", "ba"]) {
    assertOk([append(1, "x", "a", 0, 5), append(2, "x", "b", 1, 6), get(3, "x", seen, 7, 8)]);
  }
  // Sequential appends read back out of order.
  assertViolation([append(1, "x", "a", 0, 1), append(2, "x", "b", 2, 3), get(3, "x", "ba", 4, 5)]);
  // An acknowledged append missing.
  assertViolation([append(1, "x", "a", 0, 5), append(2, "x", "b", 1, 6), get(3, "x", "b", 7, 8)]);
  // A read during the appends may see a prefix of the final order.
  assertOk([
    append(1, "x", "a", 0, 5),
    append(2, "x", "b", 1, 6),
    get(3, "x", "b", 2, 3),
    get(3, "x", "ba", 7, 8),
  ]);
  assertViolation([
    append(1, "x", "a", 0, 5),
    append(2, "x", "b", 1, 6),
    get(3, "x", "b", 2, 3),
    get(3, "x", "ab", 7, 8),
  ]);
});

Deno.test("linearizability: compare-and-swap on values", () => {
  // Two racing swaps from the same value: exactly one may win.
  const race = (ok1: boolean, ok2: boolean) => [
    put(1, "x", "a", 0, 1),
    cas(2, "x", { value: "a" }, "b", ok1, 2, 5),
    cas(3, "x", { value: "a" }, "c", ok2, 3, 6),
  ];
  assertOk(race(true, false));
  assertOk(race(false, true));
  assertViolation(race(true, true));
  assertViolation(race(false, false));
  // The winner's value must be what is read afterwards.
  assertOk([...race(true, false), get(4, "x", "b", 7, 8)]);
  assertViolation([...race(true, false), get(4, "x", "c", 7, 8)]);
  // Create-if-absent and conditional delete.
  assertOk([
    cas(1, "y", { value: null }, "v", true, 0, 1),
    cas(2, "y", { value: null }, "w", false, 2, 3),
    cas(1, "y", { value: "v" }, null, true, 4, 5),
    get(2, "y", null, 6, 7),
  ]);
  assertViolation([cas(1, "y", { value: null }, "v", true, 0, 1), get(2, "y", null, 2, 3)]);
});

Deno.test("linearizability: revisions must grow with each write and match reads", () => {
  assertOk([
    put(1, "x", "a", 0, 1, 3),
    get(2, "x", "a", 2, 3, 3),
    put(1, "x", "b", 4, 5, 9),
    get(2, "x", "b", 6, 7, 9),
  ]);
  // A later write with a smaller revision.
  assertViolation([put(1, "x", "a", 0, 1, 5), put(1, "x", "b", 2, 3, 4)]);
  // A read reporting another revision than the write's.
  assertViolation([put(1, "x", "a", 0, 1, 5), get(2, "x", "a", 2, 3, 6)]);
  // Concurrent writes are ordered by revision, so only the higher one's value can last.
  const racing = [put(1, "x", "a", 0, 5, 7), put(2, "x", "b", 1, 6, 8)];
  assertOk([...racing, get(3, "x", "b", 7, 8)]);
  assertViolation([...racing, get(3, "x", "a", 7, 8)]);
  // Without revisions in the outputs, either order is possible.
  assertOk([put(1, "x", "a", 0, 5), put(2, "x", "b", 1, 6), get(3, "x", "a", 7, 8)]);
  // A write whose revision is unknown: a read reveals it, and it must exceed the earlier one.
  assertOk([put(1, "x", "a", 0, 1, 5), put(1, "x", "b", 2, 3), get(2, "x", "b", 4, 5, 6)]);
  assertViolation([put(1, "x", "a", 0, 1, 5), put(1, "x", "b", 2, 3), get(2, "x", "b", 4, 5, 5)]);
});

Deno.test("linearizability: compare-and-swap on revisions", () => {
  assertOk([
    put(1, "x", "a", 0, 1, 4),
    cas(2, "x", { revision: 4 }, "b", true, 2, 3),
    cas(3, "x", { revision: 4 }, "c", false, 4, 5),
    get(1, "x", "b", 6, 7),
  ]);
  assertViolation([put(1, "x", "a", 0, 1, 4), cas(2, "x", { revision: 3 }, "b", true, 2, 3)]);
  assertViolation([put(1, "x", "a", 0, 1, 4), cas(2, "x", { revision: 4 }, "b", false, 2, 3)]);
  // A revision never matches an absent key.
  assertViolation([cas(1, "x", { revision: 1 }, "b", true, 0, 1)]);
  // The revision unknown: success reveals it; failure is accepted.
  assertOk([put(1, "x", "a", 0, 1), cas(2, "x", { revision: 4 }, "b", true, 2, 3)]);
  assertOk([put(1, "x", "a", 0, 1), cas(2, "x", { revision: 4 }, "b", false, 2, 3)]);
  assertViolation([
    put(1, "x", "a", 0, 1),
    cas(2, "x", { revision: 4 }, "b", true, 2, 3),
    get(3, "x", "b", 4, 5, 4),
  ]);
  // Outcome and revision both unknown: later reads decide which branch happened.
  for (const seen of ["a", "b"]) {
    assertOk([
      put(1, "x", "a", 0, 1),
      cas(2, "x", { revision: 4 }, "b", undefined, 2, NEVER),
      get(3, "x", seen, 4, 5),
    ]);
  }
});

Deno.test("linearizability: operations that never returned may or may not have taken effect", () => {
  const timedOut = put(2, "x", "b", 2, NEVER);
  assertOk([put(1, "x", "a", 0, 1), timedOut, get(3, "x", "a", 10, 11)]);
  assertOk([put(1, "x", "a", 0, 1), timedOut, get(3, "x", "b", 10, 11)]);
  // Long after, still possible: it may have been applied late.
  assertOk([put(1, "x", "a", 0, 1), timedOut, get(3, "x", "a", 10, 11), get(3, "x", "b", 90, 91)]);
  // But not before it was called, and not undone once seen.
  assertViolation([put(1, "x", "a", 0, 1), get(3, "x", "b", 1, 2), put(2, "x", "b", 3, NEVER)]);
  assertViolation([
    put(1, "x", "a", 0, 1),
    timedOut,
    get(3, "x", "b", 10, 11),
    get(3, "x", "a", 12, 13),
  ]);
  // Timed-out appends, compare-and-swaps and deletes.
  for (const seen of ["a", "ab"]) {
    assertOk([append(1, "x", "a", 0, 1), append(2, "x", "b", 2, NEVER), get(3, "x", seen, 4, 5)]);
  }
  for (const seen of ["a", "b"]) {
    assertOk([
      put(1, "x", "a", 0, 1),
      cas(2, "x", { value: "a" }, "b", undefined, 2, NEVER),
      get(3, "x", seen, 4, 5),
    ]);
  }
  assertViolation([
    put(1, "x", "a", 0, 1),
    cas(2, "x", { value: "z" }, "b", undefined, 2, NEVER),
    get(3, "x", "b", 4, 5),
  ]);
  for (const seen of ["a", null]) {
    assertOk([put(1, "x", "a", 0, 1), del(2, "x", 2, NEVER), get(3, "x", seen, 4, 5)]);
  }
  // A get that never returned constrains nothing.
  assertOk([put(1, "x", "a", 0, 1), get(2, "x", undefined, 2, NEVER)]);
  // Several overlapping timeouts, some seen, in any order.
  assertOk([
    put(1, "x", "a", 0, 1),
    put(2, "x", "b", 2, NEVER),
    put(3, "x", "c", 3, NEVER),
    put(4, "x", "d", 4, NEVER),
    get(5, "x", "c", 10, 11),
    get(5, "x", "b", 12, 13),
    get(5, "x", "b", 14, 15),
  ]);
  assertViolation([
    put(1, "x", "a", 0, 1),
    put(2, "x", "b", 2, NEVER),
    put(3, "x", "c", 3, NEVER),
    get(5, "x", "c", 10, 11),
    get(5, "x", "b", 12, 13),
    get(5, "x", "c", 14, 15),
  ]);
});

Deno.test("linearizability: a timed-out write seen only through its revision is found", () => {
  // No read shows "b", so the model's hint leaves the timed-out put out at first; only it can
  // have produced revision 5, which the compare-and-swap matched.
  const history = [
    put(1, "x", "a", 0, 1, 1),
    put(2, "x", "b", 2, NEVER),
    cas(3, "x", { revision: 5 }, "c", true, 10, 11),
    get(4, "x", "c", 12, 13),
  ];
  assertOk(history);
  assertViolation(history.filter((op) => op.return !== NEVER));
});

Deno.test("linearizability: many timed-out writes that never took effect stay cheap", () => {
  const history: Op[] = [];
  let t = 0;
  for (let i = 0; i < 1_000; i++) {
    if (i % 20 === 10) history.push(append(i % 5, "x", `lost${i}`, t, NEVER));
    if (i % 20 === 15) history.push(put(i % 5, "x", `lost${i}`, t, NEVER));
    history.push(
      i % 2 === 0 ? put(i % 5, "x", `v${i}`, t, t + 2) : get(i % 5, "x", `v${i - 1}`, t + 1, t + 3),
    );
    t += 2;
  }
  const started = performance.now();
  assertOk(history);
  console.log(
    `1,000 ops and 100 lost writes on one key: ${(performance.now() - started).toFixed(1)} ms`,
  );
});

Deno.test("linearizability: keys are checked apart and a violation names its key", () => {
  const history = [
    put(1, "a", "1", 0, 1),
    put(2, "b", "1", 0, 1),
    put(3, "c", "1", 0, 1),
    put(1, "b", "2", 2, 3),
    get(2, "a", "1", 4, 5),
    get(3, "b", "1", 4, 5),
    get(1, "c", "1", 4, 5),
  ];
  const v = assertViolation(history);
  assert.ok(v.partition.every((op) => op.input.key === "b"));
  assert.equal(v.partition.length, 3);
  assert.ok(v.unplaced.every((op) => op.input.key === "b"));
  assert.match(v.message, /get\("b"\)/);
  assert.doesNotMatch(v.message, /"a"|"c"/);
  // Each key alone is fine although the interleaving across keys is arbitrary.
  assertOk(history.filter((op) => op.input.key !== "b"));
});

Deno.test("linearizability: a generic model with equality instead of a hash", () => {
  // A counter: inc returns the new value. No partition, memoized by `equal`.
  const counter: Model<{ n: number }, "inc" | "read", number> = {
    init: () => ({ n: 0 }),
    step: (s, input, output) => {
      const next = input === "inc" ? { n: s.n + 1 } : s;
      return [output === undefined || output === next.n, next];
    },
    equal: (a, b) => a.n === b.n,
  };
  const op = (input: "inc" | "read", output: number | undefined, call: number, ret: number) => ({
    client: "c",
    input,
    output,
    call,
    return: ret,
  });
  assert.equal(
    checkLinearizable(counter, [
      op("inc", 2, 0, 10),
      op("inc", 1, 1, 9),
      op("read", 2, 11, 12),
      op("inc", undefined, 13, NEVER),
      op("read", 3, 14, 15),
    ]).ok,
    true,
  );
  const result = checkLinearizable(counter, [op("inc", 1, 0, 10), op("inc", 1, 1, 9)]);
  assert.equal(result.ok, false);
  assert.match(result.ok === false ? result.message : "", /"inc" -> 1/);
});

Deno.test("linearizability: malformed histories are rejected, not reported as violations", () => {
  assert.throws(() => check([put(1, "x", "a", 5, 4)]), RangeError);
  assert.throws(() => check([put(1, "x", "a", NaN, 4)]), RangeError);
  assert.throws(() => check([put(1, "x", "a", NEVER, NEVER)]), RangeError);
  assert.throws(
    () => check([{ client: 1, input: { op: "get", key: "x" }, output: {}, call: 0, return: 1 }]),
    TypeError,
  );
  assert.throws(
    () =>
      check([{
        client: 1,
        input: { op: "cas", key: "x", expect: { value: null }, value: "a" },
        output: {},
        call: 0,
        return: 1,
      }]),
    TypeError,
  );
});

Deno.test("linearizability: a search past its time limit answers unknown", () => {
  // Thirty concurrent writes and a read of a value none wrote: refuting it means trying every
  // subset of the writes, far more than 50 ms of work.
  const history: Op[] = [];
  for (let i = 0; i < 30; i++) history.push(put(i, "x", `v${i}`, 0, 100));
  history.push(get(99, "x", "nobody", 50, 60));
  for (let i = 0; i < 30; i++) history.push(get(99, "x", `v${i}`, 101 + 2 * i, 102 + 2 * i));
  const started = performance.now();
  const result = checkLinearizable(kvModel, history, { timeoutMs: 50 });
  const took = performance.now() - started;
  assert.equal(result.ok, "unknown");
  assert.equal(result.ok === "unknown" && result.reason, "timeout");
  assert.ok(took < 2_000, `took ${took} ms`);

  // Timed-out appends can be applied in any subset and order, so refuting a read nobody wrote
  // takes a factorial search; the answer still says what a search without them found.
  const appends: Op[] = [];
  for (let i = 0; i < 25; i++) appends.push(append(i, "y", `a${i}`, 0, NEVER));
  appends.push(get(99, "y", "nobody", 50, 60));
  const hinted = checkLinearizable(kvModel, appends, { timeoutMs: 100 });
  assert.equal(hinted.ok, "unknown");
  assert.match(hinted.ok === "unknown" ? hinted.message : "", /leaving out \d+ of the operations/);
  assert.match(hinted.ok === "unknown" ? hinted.message : "", /get\("y"\) -> "nobody"/);
});

Deno.test("linearizability: HistoryRecorder records open operations as never returned", () => {
  let t = 0;
  const recorder = new HistoryRecorder<KvInput, KvOutput>(() => t++);
  const a = recorder.invoke(1, { op: "put", key: "x", value: "a" });
  const b = recorder.invoke(2, { op: "put", key: "x", value: "b" });
  const c = recorder.invoke(3, { op: "get", key: "x" });
  recorder.complete(a, {});
  recorder.fail(c);
  const d = recorder.invoke(3, { op: "get", key: "x" });
  recorder.complete(d, { value: "b" });
  assert.throws(() => recorder.complete(a, {}), RangeError);
  assert.throws(() => recorder.complete(c, { value: null }), RangeError);
  const history = recorder.history();
  assert.deepEqual(history, [
    { client: 1, input: { op: "put", key: "x", value: "a" }, output: {}, call: 0, return: 3 },
    { client: 2, input: { op: "put", key: "x", value: "b" }, call: 1, return: Infinity },
    { client: 3, input: { op: "get", key: "x" }, output: { value: "b" }, call: 4, return: 5 },
  ]);
  assert.equal(recorder.history().length, 3);
  assert.equal(check(history).ok, true);
  void b;
});

// --- Randomized: a real linearizable store, then injected faults. ---

interface SimOptions {
  readonly clients: number;
  readonly keys: number;
  readonly ops: number;
  /** Chance that an operation never returns (half of those still take effect). */
  readonly timeouts: number;
  /** Chance that an output carries a revision. */
  readonly revisions: number;
}

/** A simulated operation: the recorded op plus the instant it really took effect, if it did. */
interface SimOp {
  op: Op;
  at: number | undefined;
}

/**
 * Runs clients against an atomic in-memory store: each operation takes effect at a random instant
 * inside its interval (or, for one that never returns, maybe later, maybe never), so the history
 * is linearizable by construction. Revisions come from one global counter, like log indexes.
 */
function simulate(random: Random, o: SimOptions): SimOp[] {
  const cursor = Array.from({ length: o.clients }, () => random.range(0, 5));
  const plan: {
    client: number;
    kind: string;
    key: string;
    call: number;
    ret: number;
    at?: number;
  }[] = [];
  for (let n = 0; n < o.ops; n++) {
    let client = 0;
    for (let c = 1; c < o.clients; c++) if (cursor[c] < cursor[client]) client = c;
    const call = cursor[client] + random.range(0, 3);
    const duration = random.range(0.5, 10);
    const timedOut = random.chance(o.timeouts);
    const kind = random.pick(["get", "get", "get", "put", "put", "append", "delete", "cas", "cas"]);
    let at: number | undefined = call + random.next() * duration;
    if (timedOut) at = random.chance(0.5) ? call + random.next() * duration * 5 : undefined;
    plan.push({
      client,
      kind,
      key: `k${random.int(o.keys)}`,
      call,
      ret: timedOut ? NEVER : call + duration,
      at,
    });
    cursor[client] = call + duration;
  }
  const store = new Map<string, { value: string; revision: number }>();
  let revision = 0;
  let unique = 0;
  const out: SimOp[] = plan.map((p) => ({
    op: { client: p.client, input: { op: "get", key: p.key }, call: p.call, return: p.ret },
    at: p.at,
  }));
  const order = plan.map((_, i) => i).sort((a, b) =>
    (plan[a].at ?? Infinity) - (plan[b].at ?? Infinity)
  );
  for (const i of order) {
    const p = plan[i];
    const cur = store.get(p.key);
    const rev = () => (random.chance(o.revisions) ? { revision } : {});
    let input: KvInput;
    let output: KvOutput;
    const fresh = `c${p.client}.${unique++}`;
    switch (p.kind) {
      case "get":
        input = { op: "get", key: p.key };
        output = cur === undefined
          ? { value: null }
          : random.chance(o.revisions)
          ? { value: cur.value, revision: cur.revision }
          : { value: cur.value };
        break;
      case "put":
        input = { op: "put", key: p.key, value: fresh };
        if (p.at !== undefined) store.set(p.key, { value: fresh, revision: ++revision });
        output = rev();
        break;
      case "append":
        input = { op: "append", key: p.key, value: `+${fresh}` };
        if (p.at !== undefined) {
          store.set(p.key, { value: (cur?.value ?? "") + `+${fresh}`, revision: ++revision });
        }
        output = rev();
        break;
      case "delete":
        input = { op: "delete", key: p.key };
        if (p.at !== undefined) {
          store.delete(p.key);
          revision++;
        }
        output = random.chance(0.5) ? { existed: cur !== undefined, ...rev() } : rev();
        break;
      default: {
        let expect: KvExpectation;
        const right = random.chance(0.6);
        if (random.chance(0.5)) {
          expect = { value: right ? cur?.value ?? null : random.pick([null, "nope"]) };
        } else {
          expect = { revision: right && cur ? cur.revision : revision + 1000 };
        }
        const value = random.chance(0.2) ? null : fresh;
        input = { op: "cas", key: p.key, expect, value };
        const ok = "value" in expect
          ? (cur?.value ?? null) === expect.value
          : cur?.revision === expect.revision;
        if (p.at !== undefined) {
          revision++;
          if (ok && value === null) store.delete(p.key);
          else if (ok && value !== null) store.set(p.key, { value, revision });
        }
        output = ok && random.chance(o.revisions) ? { ok, revision } : { ok };
      }
    }
    out[i].op = {
      client: p.client,
      input,
      output: p.ret === NEVER ? undefined : output,
      call: p.call,
      return: p.ret,
    };
  }
  return out;
}

const SIM: SimOptions = { clients: 5, keys: 3, ops: 150, timeouts: 0.03, revisions: 0.5 };

Deno.test("linearizability: random histories from an atomic store are always linearizable", () => {
  for (let seed = 1; seed <= 300; seed++) {
    const history = simulate(new Random(seed), SIM).map((s) => s.op);
    const result = check(history);
    assert.equal(result.ok, true, `seed ${seed}: ${result.ok === true ? "" : result.message}`);
  }
});

/** Whether `s` is a write that certainly took effect, within its interval. */
function effectiveWrite(s: SimOp): boolean {
  const { input, output } = s.op;
  if (s.op.return === NEVER || input.op === "get") return false;
  return input.op !== "cas" || (output as { ok: boolean }).ok;
}

/**
 * Replaces one completed get's output with a value no linearization allows, chosen so by
 * construction: a value nothing ever wrote, a value written only after the get returned, or a
 * value whose only writer was followed, before the get, by another certain write.
 */
function corruptProvably(random: Random, history: SimOp[]): Op[] | undefined {
  const gets = history.filter((s) =>
    s.op.input.op === "get" && s.op.return !== NEVER && s.op.output !== undefined
  );
  if (gets.length === 0) return undefined;
  const target = random.pick(gets);
  const key = target.op.input.key;
  const sameKey = history.filter((s) => s.op.input.key === key);
  // Put, cas and append values are unique strings, so each value has one writer (appends make
  // longer strings, never another writer's value).
  const writers = sameKey.filter((s) =>
    s.op.input.op === "put" || s.op.input.op === "cas"
  ) as (SimOp & { op: { input: { value: string | null } } })[];
  const choices: string[] = ["never written"];
  for (const w of writers) {
    const value = w.op.input.value;
    if (value === null) continue;
    if (w.op.call > target.op.return) choices.push(value);
    const overwritten = sameKey.some((x) =>
      x !== w && effectiveWrite(x) && w.op.return < x.op.call && x.op.return < target.op.call
    );
    if (w.op.return !== NEVER && overwritten) choices.push(value);
  }
  const value = random.pick(choices);
  return history.map((s) => s === target ? { ...s.op, output: { value } } : s.op);
}

Deno.test("linearizability: every provably non-linearizable corruption is detected", () => {
  let detected = 0, tried = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const random = new Random(seed);
    const corrupted = corruptProvably(random, simulate(random, SIM));
    if (corrupted === undefined) continue;
    tried++;
    const result = check(corrupted);
    if (result.ok === false) detected++;
    else assert.fail(`seed ${seed}: corruption not detected`);
  }
  assert.ok(tried > 250);
  assert.equal(detected, tried);
});

Deno.test("linearizability: most arbitrary single corruptions are detected", () => {
  let detected = 0, tried = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const random = new Random(seed);
    const history = simulate(random, SIM).map((s) => s.op);
    const i = random.int(history.length);
    const op = history[i];
    if (op.output === undefined) continue;
    let output: KvOutput;
    switch (op.input.op) {
      case "get": {
        // Another value the key held at some point (or absent).
        const values = history.flatMap((o) =>
          o.input.key === op.input.key && o.input.op === "get" && o.output !== undefined
            ? [(o.output as { value: string | null }).value]
            : []
        );
        const old = (op.output as { value: string | null }).value;
        const others = [...new Set([null, ...values])].filter((v) => v !== old);
        if (others.length === 0) continue;
        output = { value: random.pick(others) };
        break;
      }
      case "cas":
        output = { ok: !(op.output as { ok: boolean }).ok };
        break;
      default:
        continue;
    }
    tried++;
    history[i] = { ...op, output };
    if (check(history).ok === false) detected++;
  }
  console.log(`arbitrary corruptions detected: ${detected}/${tried}`);
  assert.ok(detected >= tried * 0.6, `${detected}/${tried}`);
});

/** Every linearization tried, no memo, no pruning: the reference the checker must agree with. */
function bruteForce(history: readonly Op[]): boolean {
  const used = history.map(() => false);
  const go = (states: ReturnType<typeof kvModel.init>, left: number): boolean => {
    if (left === 0) return true;
    let deadline = Infinity;
    history.forEach((op, i) => {
      if (!used[i]) deadline = Math.min(deadline, op.return);
    });
    for (let i = 0; i < history.length; i++) {
      const op = history[i];
      if (used[i] || op.call > deadline) continue;
      const [ok, next] = kvModel.step(states, op.input, op.output);
      if (!ok) continue;
      used[i] = true;
      if (go(next, left - (op.return === NEVER ? 0 : 1))) return true;
      used[i] = false;
    }
    return false;
  };
  return go(kvModel.init(), history.filter((op) => op.return !== NEVER).length);
}

Deno.test("linearizability: agrees with exhaustive search on small random histories", () => {
  let violations = 0;
  for (let seed = 1; seed <= 1_500; seed++) {
    const random = new Random(seed);
    const options = { clients: 3, keys: 1, ops: 5 + random.int(4), timeouts: 0.2, revisions: 0.5 };
    const history = simulate(random, options).map((s) => s.op);
    if (random.chance(0.7)) {
      const i = random.int(history.length);
      const op = history[i];
      const values = [
        null,
        "zz",
        ...history.flatMap((o) => "value" in o.input ? [o.input.value] : []),
      ];
      let output: KvOutput | undefined = op.output;
      if (op.input.op === "get") output = { value: random.pick(values) };
      else if (op.input.op === "cas") output = { ok: random.chance(0.5) };
      else if (op.input.op === "delete") output = { existed: random.chance(0.5) };
      else output = { revision: random.int(10) };
      history[i] = { ...op, output, return: op.return === NEVER ? op.call + 5 : op.return };
    }
    const expected = bruteForce(history);
    const result = check(history);
    assert.equal(result.ok, expected, `seed ${seed}: ${JSON.stringify(history)}`);
    if (!expected) violations++;
  }
  // Both verdicts well represented.
  assert.ok(violations > 300 && violations < 1_200, `${violations}`);
});

Deno.test("linearizability: performance on thousands of operations", () => {
  const cases = [
    { name: "2,000 ops, 20 keys", ops: 2_000, keys: 20, timeouts: 0 },
    { name: "2,000 ops, 20 keys, 2% timeouts", ops: 2_000, keys: 20, timeouts: 0.02 },
    { name: "5,000 ops, 5 keys, 2% timeouts", ops: 5_000, keys: 5, timeouts: 0.02 },
    { name: "5,000 ops, 1 key", ops: 5_000, keys: 1, timeouts: 0 },
    { name: "5,000 ops, 1 key, 1% timeouts", ops: 5_000, keys: 1, timeouts: 0.01 },
  ];
  for (const c of cases) {
    const history = simulate(new Random(7), { ...SIM, clients: 5, ...c }).map((s) => s.op);
    let started = performance.now();
    const result = checkLinearizable(kvModel, history, { timeoutMs: 60_000 });
    const took = performance.now() - started;
    assert.equal(result.ok, true, result.ok === true ? "" : result.message);
    let line = `${c.name}, 5 clients: linearizable in ${took.toFixed(1)} ms`;
    if (c.timeouts < 0.01 || c.keys > 1) {
      // The same history with one read of a value nobody wrote, halfway through.
      const i = history.findIndex((op, j) =>
        j > history.length / 2 && op.input.op === "get" && op.return !== NEVER
      );
      const bad = history.with(i, { ...history[i], output: { value: "never written" } });
      started = performance.now();
      const refuted = checkLinearizable(kvModel, bad, { timeoutMs: 60_000 });
      assert.equal(refuted.ok, false);
      line += `, violation found in ${(performance.now() - started).toFixed(1)} ms`;
    }
    console.log(line);
  }
});
