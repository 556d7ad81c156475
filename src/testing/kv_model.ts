/**
 * A sequential model of floe's key-value store for the linearizability checker: get, put,
 * delete, append and compare-and-swap (on the value or on the revision), partitioned by key.
 *
 * Values are strings (tests encode bytes however they like). Revisions are optional everywhere:
 * linearizability on values is the point, and a history without revisions is checked exactly.
 * When outputs do carry revisions, the model also checks them, assuming what a Raft log gives:
 * every write to a key is assigned a revision larger than those of all writes before it (its log
 * index), and a key's revision is that of the write that produced its current value. Because a
 * write's revision may be unknown (not reported, or the write timed out), revisions are checked as
 * far as they are known, which never rejects a linearizable history but can miss some violations
 * that only revisions would show. Revision order across different keys is not checked.
 *
 * @example
 * ```ts
 * const history: Operation<KvInput, KvOutput>[] = [
 *   { client: 1, input: { op: "put", key: "x", value: "a" }, output: {}, call: 0, return: 2 },
 *   { client: 2, input: { op: "get", key: "x" }, output: { value: "a" }, call: 3, return: 4 },
 * ];
 * assert.equal(checkLinearizable(kvModel, history).ok, true);
 * ```
 *
 * @module
 */
import type { Model, Operation } from "./linearizability.ts";

/** What a compare-and-swap compares with: the current value (null: absent) or its revision. */
export type KvExpectation =
  | { readonly value: string | null }
  | { readonly revision: number };

/**
 * One key-value operation. Outputs, by `op`:
 * - `get` → `KvGetOutput`: the value, null when the key is absent.
 * - `put`, `append` → `KvWriteOutput`. `append` adds `value` to the end of the current value (an
 *   absent key counts as "") and returns nothing else.
 * - `delete` → `KvDeleteOutput`.
 * - `cas` → `KvCasOutput`: when the key matches `expect`, its value becomes `value` (null
 *   deletes it) and `ok` is true; otherwise nothing changes and `ok` is false. A revision never
 *   matches an absent key; `{ value: null }` matches only an absent key (create-if-absent).
 */
export type KvInput =
  | { readonly op: "get"; readonly key: string }
  | { readonly op: "put"; readonly key: string; readonly value: string }
  | { readonly op: "delete"; readonly key: string }
  | { readonly op: "append"; readonly key: string; readonly value: string }
  | {
    readonly op: "cas";
    readonly key: string;
    readonly expect: KvExpectation;
    readonly value: string | null;
  };

/** The answer to a `get`. */
export interface KvGetOutput {
  /** The value read; null when the key was absent. */
  readonly value: string | null;
  /** The revision of the write that produced `value`, if reported; ignored when absent. */
  readonly revision?: number;
}

/** The answer to a `put` or an `append`. */
export interface KvWriteOutput {
  /** The revision the write was assigned, if reported. */
  readonly revision?: number;
}

/** The answer to a `delete`. */
export interface KvDeleteOutput {
  /** The revision the delete was assigned, if reported. */
  readonly revision?: number;
  /** Whether the key was present just before, if reported. */
  readonly existed?: boolean;
}

/** The answer to a `cas`. */
export interface KvCasOutput {
  /** Whether the expectation held and the write happened. */
  readonly ok: boolean;
  /** The revision of the write, if it happened and it is reported; ignored when `ok` is false. */
  readonly revision?: number;
}

/** Any key-value output; which one an operation must have depends on its input's `op`. */
export type KvOutput = KvGetOutput | KvWriteOutput | KvDeleteOutput | KvCasOutput;

/** One possible state of a single key. */
export interface KvKeyState {
  /** The current value; null when absent. */
  readonly value: string | null;
  /** The revision of the write that produced `value`; undefined when unknown or absent. */
  readonly revision: number | undefined;
  /** The highest revision known for any write so far; every later write's is larger. */
  readonly floor: number;
}

/**
 * The model's state for one key: the set of states the key may be in. Almost always one; more
 * only when a revision compare-and-swap with an unknown outcome meets a value whose revision is
 * unknown, so both outcomes stay possible.
 */
export type KvState = readonly KvKeyState[];

const INITIAL: KvKeyState = Object.freeze({ value: null, revision: undefined, floor: 0 });

/**
 * The key-value model. Its `partition` splits a history by key and drops gets whose output is
 * unknown (they constrain nothing); it throws a `TypeError` for an output of the wrong shape for
 * its operation, so a recording bug is not reported as a violation. Its `visiblePending` hint
 * marks a timed-out put, append or compare-and-swap visible when its string occurs in some read
 * value or compare-and-swap expectation of the key, and a timed-out delete when a later answer
 * shows an absence no completed delete explains, so that the timed-out writes that never took
 * effect seldom slow the check down. Unique values (a client id and a counter) make it sharp.
 */
export const kvModel: Model<KvState, KvInput, KvOutput> = {
  init: () => [INITIAL],

  step(states, input, output) {
    const nextStates: KvKeyState[] = [];
    for (const s of states) stepKey(s, input, output, nextStates);
    if (nextStates.length === 0) return [false, states];
    return [true, nextStates.length === 1 ? nextStates : dedupe(nextStates)];
  },

  partition(history) {
    const byKey = new Map<string, Operation<KvInput, KvOutput>[]>();
    for (const op of history) {
      validate(op);
      if (op.input.op === "get" && op.output === undefined) continue;
      let ops = byKey.get(op.input.key);
      if (ops === undefined) byKey.set(op.input.key, ops = []);
      ops.push(op);
    }
    return [...byKey.values()];
  },

  visiblePending(part) {
    // Everything any output or expectation shows of the key's values; a write whose string
    // appears nowhere in it left no trace (or never happened). Separated by a character values
    // rarely hold; a match across a boundary only makes the hint keep an operation it could drop.
    const seen: string[] = [];
    const written = new Set<string>();
    for (const { input } of part) {
      if (input.op === "put" || (input.op === "cas" && input.value !== null)) {
        written.add(input.value!);
      }
    }
    const lengths = [...new Set([...written].map((v) => v.length))];
    const rebuilt = (value: string) =>
      !lengths.some((n) => n <= value.length && written.has(value.slice(0, n)));
    // A delete leaves absence, which looks like every other delete's. It is visible when some
    // answer after its call shows absence (a null read, a value appends built from nothing, a
    // delete that found nothing, a create-if-absent that succeeded) that no completed delete
    // explains: one that may come after every write certainly between it and the answer.
    const nonNullWrites = part.filter((op) =>
      op.return !== Infinity && (op.input.op === "put" || op.input.op === "append" ||
        (op.input.op === "cas" && op.input.value !== null &&
          (op.output as KvCasOutput | undefined)?.ok === true))
    ).sort((x, y) => x.return - y.return);
    const deletes = part.filter((op) =>
      op.return !== Infinity && (op.input.op === "delete" ||
        (op.input.op === "cas" && op.input.value === null &&
          (op.output as KvCasOutput | undefined)?.ok === true))
    );
    /** Latest call among writes that returned before `t`. */
    const lastWriteCall = (t: number) => {
      let latest = -Infinity;
      for (const w of nonNullWrites) {
        if (w.return >= t) break;
        latest = Math.max(latest, w.call);
      }
      return latest;
    };
    const unexplained: number[] = [];
    for (const op of part) {
      const { input, output } = op;
      let absent = false;
      if (input.op === "get" && output !== undefined) {
        const value = (output as KvGetOutput).value;
        if (value !== null) seen.push(value);
        absent = value === null || rebuilt(value);
      } else if (input.op === "cas" && "value" in input.expect) {
        if (input.expect.value !== null) seen.push(input.expect.value);
        else absent = (output as KvCasOutput | undefined)?.ok === true;
      } else if (input.op === "delete") {
        absent = (output as KvDeleteOutput | undefined)?.existed === false;
      }
      if (!absent) continue;
      const since = lastWriteCall(op.call);
      if (since === -Infinity) continue; // the key's initial absence
      if (deletes.some((d) => d !== op && d.call <= op.return && d.return >= since)) continue;
      unexplained.push(op.return);
    }
    const haystack = seen.join("\u0000");
    return (op) => {
      const input = op.input;
      if (input.op === "get") return true;
      if (input.op === "delete" || input.value === null) {
        return unexplained.some((t) => t >= op.call);
      }
      return haystack.includes(input.value);
    };
  },

  hash(states) {
    if (states.length === 1) return keyHash(states[0]);
    return states.map((s) => {
      const h = keyHash(s);
      return `${h.length}:${h}`;
    }).join("");
  },

  describeOperation(input, output) {
    const key = JSON.stringify(input.key);
    let call: string;
    switch (input.op) {
      case "get":
      case "delete":
        call = `${input.op}(${key})`;
        break;
      case "put":
      case "append":
        call = `${input.op}(${key}, ${show(input.value)})`;
        break;
      case "cas": {
        const e = input.expect;
        const expect = "revision" in e ? `rev ${e.revision}` : show(e.value);
        call = `cas(${key}, ${expect} => ${show(input.value)})`;
      }
    }
    if (output === undefined) return `${call} -> ?`;
    const parts: string[] = [];
    if ("value" in output) parts.push(show(output.value));
    if ("ok" in output) parts.push(output.ok ? "ok" : "failed");
    if ("existed" in output && output.existed !== undefined) {
      parts.push(output.existed ? "existed" : "was absent");
    }
    if (output.revision !== undefined) parts.push(`rev ${output.revision}`);
    return `${call} -> ${parts.length > 0 ? parts.join(", ") : "done"}`;
  },

  describeState(states) {
    const one = (s: KvKeyState) =>
      s.value === null ? "absent" : show(s.value) +
        (s.revision === undefined ? "" : ` (rev ${s.revision})`);
    return states.length === 1 ? one(states[0]) : `one of ${states.map(one).join(" | ")}`;
  },
};

/** Appends to `out` every state `s` can move to by `input` with `output`. */
function stepKey(
  s: KvKeyState,
  input: KvInput,
  output: KvOutput | undefined,
  out: KvKeyState[],
): void {
  switch (input.op) {
    case "get": {
      if (output === undefined) return void out.push(s);
      const o = output as KvGetOutput;
      if (o.value !== s.value) return;
      if (o.value === null || o.revision === undefined) return void out.push(s);
      const known = learnRevision(s, o.revision);
      if (known) out.push(known);
      return;
    }
    case "put":
      return write(s, input.value, output, out);
    case "append":
      return write(s, (s.value ?? "") + input.value, output, out);
    case "delete": {
      const existed = (output as KvDeleteOutput | undefined)?.existed;
      if (existed !== undefined && existed !== (s.value !== null)) return;
      return write(s, null, output, out);
    }
    case "cas": {
      const ok = (output as KvCasOutput | undefined)?.ok;
      const e = input.expect;
      if ("revision" in e && s.value !== null && s.revision === undefined) {
        // The current revision is unknown. A success reveals it; a failure tells too little to
        // track; with the outcome unknown, both branches stay open.
        if (ok !== true) out.push(s);
        const learned = ok === false ? null : learnRevision(s, e.revision);
        if (learned) write(learned, input.value, output, out);
        return;
      }
      const matches = "revision" in e
        ? s.value !== null && s.revision === e.revision
        : s.value === e.value;
      if (ok !== undefined && ok !== matches) return;
      if (matches) write(s, input.value, output, out);
      else out.push(s);
      return;
    }
  }
}

/** `s` with its unknown current revision now known to be `revision`, or null if impossible. */
function learnRevision(s: KvKeyState, revision: number): KvKeyState | null {
  if (s.revision !== undefined) return s.revision === revision ? s : null;
  // The write that produced the value came after every write whose revision is known.
  if (revision <= s.floor) return null;
  return { value: s.value, revision, floor: revision };
}

function write(
  s: KvKeyState,
  value: string | null,
  output: KvOutput | undefined,
  out: KvKeyState[],
): void {
  const revision = output?.revision;
  if (revision === undefined) {
    out.push({ value, revision: undefined, floor: s.floor });
    return;
  }
  if (revision <= s.floor) return;
  out.push({ value, revision: value === null ? undefined : revision, floor: revision });
}

function keyHash(s: KvKeyState): string {
  // Numbers first and the value last, so the encoding is unambiguous whatever the value holds.
  const value = s.value === null ? "-" : `+${s.value}`;
  return `${s.revision ?? "?"}/${s.floor}/${value}`;
}

/**
 * The set without duplicates and without states another one dominates, sorted so that equal sets
 * hash equally. (v, unknown revision, floor f) accepts everything (v, unknown, f' >= f) or
 * (v, revision r > f) accepts, and ends in the same or a dominating state, so the latter add no
 * possibilities; keeping them would multiply the configurations the checker explores.
 */
function dedupe(states: KvKeyState[]): KvKeyState[] {
  const lowestUnknown = new Map<string | null, number>();
  for (const s of states) {
    if (s.revision !== undefined) continue;
    const f = lowestUnknown.get(s.value);
    if (f === undefined || s.floor < f) lowestUnknown.set(s.value, s.floor);
  }
  const seen = new Map<string, KvKeyState>();
  for (const s of states) {
    const f = lowestUnknown.get(s.value);
    if (f !== undefined && (s.revision === undefined ? s.floor > f : s.revision > f)) continue;
    seen.set(keyHash(s), s);
  }
  if (seen.size === 1) return [...seen.values()];
  return [...seen.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, s]) => s);
}

function show(value: string | null): string {
  if (value === null) return "null";
  const text = JSON.stringify(value);
  return text.length <= 40 ? text : `${text.slice(0, 30)}...(${value.length} chars)`;
}

function validate(op: Operation<KvInput, KvOutput>): void {
  const input = op.input as KvInput | undefined;
  if (input === undefined || typeof input.key !== "string") {
    throw new TypeError(`kvModel: an operation needs an input with a string key`);
  }
  const output = op.output as Record<string, unknown> | undefined;
  if (output === undefined) return;
  const bad = (why: string) => {
    throw new TypeError(`kvModel: ${input.op} on ${JSON.stringify(input.key)}: ${why}`);
  };
  if (typeof output !== "object" || output === null) bad("output must be an object or undefined");
  const revision = output.revision;
  if (revision !== undefined && !Number.isFinite(revision)) bad("revision must be a number");
  switch (input.op) {
    case "get":
      if (typeof output.value !== "string" && output.value !== null) {
        bad("output.value must be a string or null");
      }
      break;
    case "cas":
      if (typeof output.ok !== "boolean") bad("output.ok must be a boolean");
      break;
    case "delete":
      if (output.existed !== undefined && typeof output.existed !== "boolean") {
        bad("output.existed must be a boolean");
      }
      break;
    case "put":
    case "append":
      break;
    default:
      throw new TypeError(`kvModel: unknown op ${JSON.stringify((input as { op: unknown }).op)}`);
  }
}
