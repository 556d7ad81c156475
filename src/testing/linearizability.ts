/**
 * A linearizability checker for histories of client operations, in the Wing–Gong style with
 * Lowe's memoization and P-compositionality (the approach Porcupine made popular).
 *
 * A history records, for each operation, when the client called it, when the answer came back
 * and what it was. The history is linearizable when every operation can be given one instant
 * inside its [call, return] interval such that running the operations one at a time, in the order
 * of those instants, through a sequential `Model` gives exactly the recorded outputs. An operation
 * that never returned (`return: Infinity`) may or may not have taken effect: the checker lets it
 * take effect at any point after its call, or never.
 *
 * The search is a depth-first walk over call/return events in time order: at each step it tries
 * to linearize one of the operations whose call comes before the earliest outstanding return, and
 * backtracks when none fits. A cache of (set of linearized operations, model state) pairs prunes
 * every configuration already explored, which keeps typical histories linear in their length. A
 * model that splits a history into independent parts (a key-value store: one part per key) lets
 * each part be searched on its own, which is what makes large histories cheap.
 *
 * Operations that never returned are what make a search expensive: each one stays a candidate
 * from its call to the end of its part, and proving a violation means trying each of them
 * everywhere. The checker prunes configurations that differ only by extra ones, and races the full
 * search against one that adds them gradually, which answers "yes" fast when few were needed;
 * but a part with dozens of them can still take long to refute, hence `timeoutMs`. Tests keep them few by having clients
 * retry a request, under the same session, until it is answered.
 *
 * @example
 * ```ts
 * const result = checkLinearizable(kvModel, history, { timeoutMs: 10_000 });
 * if (result.ok !== true) throw new Error(result.message);
 * ```
 *
 * @module
 */

/**
 * One client operation as recorded.
 *
 * Record `call` just before the request leaves and `return` just after the answer arrives, from
 * one clock. When the outcome is ambiguous (a timeout, a dropped connection, an error that does
 * not prove the request was never applied), record `return: Infinity` and leave `output`
 * undefined: the request may still take effect later. Leave out operations known to have failed
 * without effect.
 */
export interface Operation<Input, Output> {
  /** Who issued the operation; used only in messages. */
  readonly client: number | string;
  /** What was asked. */
  readonly input: Input;
  /** What came back; `undefined` means unknown, and the model must accept any outcome. */
  readonly output?: Output;
  /** When the call was made. Finite. */
  readonly call: number;
  /** When the answer arrived, `>= call`; `Infinity` when it never did. */
  readonly return: number;
}

/**
 * A sequential specification of the object under test. Implementations must be pure: `step`
 * never mutates `state`, and equal states (per `hash` or `equal`) behave the same afterwards.
 */
export interface Model<State, Input, Output> {
  /** The state before any operation. */
  init(): State;
  /**
   * Apply `input` to `state` atomically. `ok` says whether `output` is a possible result of doing
   * so; `output` is undefined when it is unknown, and then `ok` must be true unless the operation
   * cannot be applied in `state` at all. `next` is the state afterwards (ignored when not `ok`).
   */
  step(state: State, input: Input, output: Output | undefined): [ok: boolean, next: State];
  /**
   * Split a history into parts that are linearizable independently (for a key-value store, one
   * part per key). The history is linearizable iff every part is. Parts may drop operations that
   * cannot constrain anything. Without it the history is checked whole.
   */
  partition?(
    history: readonly Operation<Input, Output>[],
  ): readonly (readonly Operation<Input, Output>[])[];
  /**
   * A hint for parts with operations that never returned ("pending"), the costly kind. Given a
   * part, returns a test of whether a pending operation might be needed to explain it (for
   * example, whether any read saw what it wrote). Beside its search of the whole part, the
   * checker runs one that starts with only the pending operations that pass and adds others while
   * it fails; a linearization found there is one of the whole part, as pending operations may be
   * left out. So a wrong hint costs time, never a wrong verdict.
   */
  visiblePending?(
    part: readonly Operation<Input, Output>[],
  ): (op: Operation<Input, Output>) => boolean;
  /**
   * A string that is the same for two states iff they are equal; the search memoizes on it.
   * Preferred over `equal` when both are given.
   */
  hash?(state: State): string;
  /** State equality for memoizing, when there is no `hash`. Without either, `Object.is`. */
  equal?(a: State, b: State): boolean;
  /** A short description of an operation, for messages. */
  describeOperation?(input: Input, output: Output | undefined): string;
  /** A short description of a state, for messages. */
  describeState?(state: State): string;
}

/** Options for `checkLinearizable`. */
export interface CheckOptions {
  /** Give up after this many milliseconds of searching and answer "unknown". Default: no limit. */
  readonly timeoutMs?: number;
}

/** The history is linearizable. */
export interface CheckOk {
  /** Always true. */
  readonly ok: true;
}

/** The history is not linearizable; describes the first part found to fail. */
export interface CheckViolation<Input, Output> {
  /** Always false. */
  readonly ok: false;
  /** Index of the failing part among the model's partitions (0 without `partition`). */
  readonly partitionIndex: number;
  /** The operations of the failing part, as the model's `partition` returned them. */
  readonly partition: readonly Operation<Input, Output>[];
  /**
   * The longest sequence of the part's operations the search managed to linearize, in
   * linearization order; the violation lies just past it.
   */
  readonly longestPrefix: readonly Operation<Input, Output>[];
  /**
   * The operations that could have come next after `longestPrefix` (their calls precede the
   * earliest outstanding return) but none of which leads to a complete linearization.
   */
  readonly unplaced: readonly Operation<Input, Output>[];
  /** A human-readable account of the above. */
  readonly message: string;
}

/** The search ran out of time before reaching a verdict. */
export interface CheckUnknown {
  /** Always "unknown". */
  readonly ok: "unknown";
  /** Why there is no verdict. */
  readonly reason: "timeout";
  /** A human-readable account, naming the part being searched. */
  readonly message: string;
}

/** The outcome of `checkLinearizable`. */
export type CheckResult<Input, Output> =
  | CheckOk
  | CheckViolation<Input, Output>
  | CheckUnknown;

/**
 * Check whether `history` is linearizable with respect to `model`. Parts from the model's
 * `partition` are checked one after another; the first violation found is returned.
 *
 * @throws {RangeError} when an operation's times are not numbers with finite `call <= return`.
 */
export function checkLinearizable<State, Input, Output>(
  model: Model<State, Input, Output>,
  history: readonly Operation<Input, Output>[],
  options: CheckOptions = {},
): CheckResult<Input, Output> {
  for (const op of history) {
    if (!Number.isFinite(op.call) || Number.isNaN(op.return) || op.return < op.call) {
      throw new RangeError(
        `checkLinearizable: operation needs finite call <= return: ${
          describe(model, op)
        } [call ${op.call}, return ${op.return}]`,
      );
    }
  }
  const deadline = options.timeoutMs === undefined ? Infinity : now() + options.timeoutMs;
  const parts = model.partition ? model.partition(history) : [history];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (part.length === 0) continue;
    const outcome = checkPortfolio(model, part, deadline);
    if (outcome === true) continue;
    if (outcome.kind === "violation") {
      return violation(model, parts.length, i, outcome.ops, outcome.prefix);
    }
    const where = `part ${i + 1} of ${parts.length} (${part.length} operations)`;
    const unknown = timedOut(options, where);
    if (outcome.narrower === undefined) return unknown;
    const { ops, prefix } = outcome.narrower;
    return {
      ...unknown,
      message: `${unknown.message}. A search leaving out ${part.length - ops.length} of the ` +
        `operations that never returned found the following, a violation unless one of those ` +
        `explains it: ${violation(model, parts.length, i, ops, prefix).message}`,
    };
  }
  return { ok: true };
}

/** A failed search: the operations searched and the indexes of the longest linearization. */
interface Failure<Input, Output> {
  readonly ops: readonly Operation<Input, Output>[];
  readonly prefix: number[];
}

/** Search steps per time slice; the clock is read and searches alternate between slices. */
const SLICE = 2048;

/**
 * Checks one part. Operations that never returned ("pending") are what make searches slow:
 * each stays a candidate from its call to the end of the history, and a refutation must try
 * each of them everywhere. Usually few are needed (a request that timed out often never took
 * effect), and leaving pending operations out is sound for a "yes": a linearization without
 * them is one of the whole part. So two searches run side by side, a slice of steps each in
 * turn, and the first verdict wins: the search over the whole part, the only one that can prove
 * a violation, and a widening one. The widening one starts with the pending operations the
 * model's `visiblePending` hint keeps and, each time it fails, adds those called most recently
 * before where it got stuck, twice as many each round. Either may be much faster than the other;
 * together they cost at most about twice the faster.
 */
function checkPortfolio<State, Input, Output>(
  model: Model<State, Input, Output>,
  part: readonly Operation<Input, Output>[],
  deadline: number,
):
  | true
  | ({ kind: "violation" } & Failure<Input, Output>)
  | { kind: "timeout"; narrower: Failure<Input, Output> | undefined } {
  const full = search(model, part);
  const pending = part.filter((op) => op.return === Infinity);
  const included = new Set<Operation<Input, Output>>();
  if (model.visiblePending && pending.length > 0) {
    const visible = model.visiblePending(part);
    for (const op of pending) if (visible(op)) included.add(op);
  }
  let batch = 1;
  let narrower: Failure<Input, Output> | undefined;
  const subset = () => part.filter((op) => op.return !== Infinity || included.has(op));
  let widening = included.size < pending.length ? subset() : undefined;
  let partial = widening && search(model, widening);
  for (;;) {
    if (now() > deadline) return { kind: "timeout", narrower };
    const outcome = full.run(SLICE);
    if (outcome === true) return true;
    if (outcome !== undefined) return { kind: "violation", ops: part, prefix: outcome };
    if (widening === undefined || partial === undefined) continue;
    const partOutcome = partial.run(SLICE);
    if (partOutcome === true) return true;
    if (partOutcome === undefined) continue;
    narrower = { ops: widening, prefix: partOutcome };
    // Where the search got stuck: the earliest return among operations it could not place.
    const placed = new Set(partOutcome);
    let stuck = Infinity;
    for (let j = 0; j < widening.length; j++) {
      if (!placed.has(j)) stuck = Math.min(stuck, widening[j].return);
    }
    const before = pending.filter((op) => !included.has(op) && op.call <= stuck)
      .sort((a, b) => b.call - a.call);
    for (const op of before.length > 0 ? before.slice(0, batch) : pending) included.add(op);
    batch *= 2;
    // With every pending operation in, the widening search would repeat the full one.
    widening = included.size < pending.length ? subset() : undefined;
    partial = widening && search(model, widening);
  }
}

function timedOut(options: CheckOptions, where: string): CheckUnknown {
  return {
    ok: "unknown",
    reason: "timeout",
    message: `linearizability unknown: timed out after ${options.timeoutMs} ms searching ${where}`,
  };
}

function now(): number {
  return performance.now();
}

interface CacheEntry<State> {
  /** The never-returned operations linearized, as bit words. */
  readonly pending: readonly number[];
  /** The state, kept only when the model has no `hash` (the bucket key holds the hash). */
  readonly state: State | undefined;
}

/**
 * A resumable search of `ops`: each `run(budget)` takes up to `budget` more steps and returns
 * undefined when that was not enough, else true or, when there is no linearization, the
 * operation indexes of the longest one found.
 *
 * A configuration is the set of operations linearized so far plus the model's state. The set of
 * completed operations needs no bitset: every completed operation called before the earliest
 * outstanding return is linearized except the candidates still listed before that return, and
 * none called after it is, so that return's position and the candidates (a handful, the
 * concurrency) name the set exactly, as a short string.
 *
 * Operations that never returned ("pending") get two refinements. They need not be linearized at
 * all, so the search succeeds once every completed operation is. And a configuration is pruned
 * not only when the cache holds the same one but when it holds one with the same completed
 * operations and state and a subset of its pending ones: anything that completes the larger
 * configuration completes the smaller one too (the extra pending operations are simply never
 * linearized there), so if the smaller one failed, so does the larger. Trying pending operations
 * after the completed candidates makes those smaller configurations come first. Without this, a
 * refutation in a history with k pending operations explores up to 2^k variants of each
 * configuration.
 */
function search<State, Input, Output>(
  model: Model<State, Input, Output>,
  ops: readonly Operation<Input, Output>[],
): { run(budget: number): true | number[] | undefined } {
  const n = ops.length;
  const isPending = (i: number) => ops[i].return === Infinity;
  // Events: 2i is op i's call, 2i+1 its return (pending operations have none). Sorted by time; at
  // equal times calls come first, so operations that merely touch are treated as concurrent:
  // timestamps from separate clocks or a coarse clock cannot order them, and guessing an order
  // could report a false violation.
  const order: number[] = [];
  for (let i = 0; i < n; i++) {
    order.push(2 * i);
    if (!isPending(i)) order.push(2 * i + 1);
  }
  const time = (e: number) => (e & 1 ? ops[e >> 1].return : ops[e >> 1].call);
  order.sort((a, b) => time(a) - time(b) || (a & 1) - (b & 1) || a - b);
  const events = order.length;

  // Completed operations' events form a doubly linked list over sorted positions, with
  // sentinels, so linearizing an operation unlinks its two events and backtracking relinks them
  // in O(1) (dancing links). Pending operations' calls form a second list of the same kind.
  const head = events, tail = events + 1;
  const next = new Int32Array(events + 2);
  const prev = new Int32Array(events + 2);
  const opAt = new Int32Array(events);
  const isCall = new Uint8Array(events);
  const callPos = new Int32Array(n);
  const retPos = new Int32Array(n);
  const pendingOps: number[] = [];
  const pendingSlot = new Int32Array(n).fill(-1);
  const pendingCallPos: number[] = [];
  let last = head;
  for (let p = 0; p < events; p++) {
    const e = order[p], i = e >> 1;
    opAt[p] = i;
    isCall[p] = e & 1 ? 0 : 1;
    if (e & 1) retPos[i] = p;
    else callPos[i] = p;
    if (isPending(i)) {
      pendingSlot[i] = pendingOps.length;
      pendingOps.push(i);
      pendingCallPos.push(p);
      continue;
    }
    next[last] = p;
    prev[p] = last;
    last = p;
  }
  next[last] = tail;
  prev[tail] = last;
  const unlink = (p: number) => {
    next[prev[p]] = next[p];
    prev[next[p]] = prev[p];
  };
  const relink = (p: number) => {
    next[prev[p]] = p;
    prev[next[p]] = p;
  };

  const m = pendingOps.length;
  const pHead = m, pTail = m + 1;
  const pNext = new Int32Array(m + 2);
  const pPrev = new Int32Array(m + 2);
  for (let k = 0; k < m; k++) {
    pNext[k] = k + 1 === m ? pTail : k + 1;
    pPrev[k] = k === 0 ? pHead : k - 1;
  }
  pNext[pHead] = m === 0 ? pTail : 0;
  pPrev[pTail] = m === 0 ? pHead : m - 1;
  const pending: number[] = new Array((m + 31) >>> 5).fill(0);
  const flipPending = (k: number) => {
    pending[k >>> 5] ^= 1 << (k & 31);
  };

  /** Names the set of completed operations linearized (see above). */
  const doneKey = (): string => {
    let key = "";
    let p = next[head];
    for (; isCall[p] && p !== tail; p = next[p]) key += `${p},`;
    return `${p}:${key}`;
  };

  const cache = new Map<string, CacheEntry<State>[]>();
  const hashState = model.hash?.bind(model);
  const equal = model.equal?.bind(model) ?? Object.is;
  /** Adds the current configuration to the cache; false when one that dominates it is there. */
  const remember = (state: State): boolean => {
    const key = hashState ? `${doneKey()}|${hashState(state)}` : doneKey();
    let bucket = cache.get(key);
    if (bucket === undefined) cache.set(key, bucket = []);
    else {
      for (const entry of bucket) {
        if (!hashState && !equal(entry.state!, state)) continue;
        let subset = true;
        for (let w = 0; w < pending.length && subset; w++) {
          subset = (entry.pending[w] & ~pending[w]) === 0;
        }
        if (subset) return false;
      }
    }
    bucket.push({
      pending: m === 0 ? pending : pending.slice(),
      state: hashState ? undefined : state,
    });
    return true;
  };

  let remaining = n - m;
  const stackOps: number[] = [];
  const stackStates: State[] = [];
  const stackLimits: number[] = [];
  let best: number[] = [];
  let state = model.init();
  // The cursor: `p` walks the completed operations' events; on reaching a return there, `q`
  // walks the pending operations called before it (`limit`); q < 0 means p is in charge.
  let p = next[head];
  let q = -1;
  let limit = 0;

  /**
   * Whether pending `op`, about to follow a pending operation p, erases p: applying it instead
   * where p was applied reaches the same state with p left out, a configuration that dominates
   * this one (as above) and that the search explores anyway as p's sibling. Pending writes that
   * overwrite one another would otherwise be tried in all 2^k subsets.
   */
  const absorbs = (op: Operation<Input, Output>, after: State): boolean => {
    const top = stackOps.length - 1;
    if (top < 0 || pendingSlot[stackOps[top]] < 0) return false;
    const [ok, instead] = model.step(stackStates[top], op.input, op.output);
    if (!ok) return false;
    return hashState ? hashState(instead) === hashState(after) : equal(instead, after);
  };

  /** Linearizes op `i` next if its output fits and the result is new; unlinks it. */
  const tryOp = (i: number): boolean => {
    const op = ops[i];
    const [ok, after] = model.step(state, op.input, op.output);
    if (!ok) return false;
    const k = pendingSlot[i];
    if (k >= 0) {
      if (absorbs(op, after)) return false;
      flipPending(k);
      pNext[pPrev[k]] = pNext[k];
      pPrev[pNext[k]] = pPrev[k];
    } else {
      unlink(callPos[i]);
      unlink(retPos[i]);
    }
    if (!remember(after)) {
      undo(i);
      return false;
    }
    stackOps.push(i);
    stackStates.push(state);
    stackLimits.push(limit);
    state = after;
    if (k < 0) remaining--;
    return true;
  };
  const undo = (i: number) => {
    const k = pendingSlot[i];
    if (k >= 0) {
      flipPending(k);
      pNext[pPrev[k]] = k;
      pPrev[pNext[k]] = k;
    } else {
      relink(retPos[i]);
      relink(callPos[i]);
    }
  };

  let finished: true | number[] | undefined;
  const run = (budget: number): true | number[] | undefined => {
    if (finished === undefined) finished = walk(budget);
    return finished;
  };
  const walk = (budget: number): true | number[] | undefined => {
    for (let steps = 0; remaining > 0; steps++) {
      if (steps === budget) return undefined;
      if (q < 0) {
        if (isCall[p]) {
          if (tryOp(opAt[p])) p = next[head];
          else p = next[p];
          continue;
        }
        // The operation returning at p must be linearized before anything later; the completed
        // candidates are exhausted, so the pending ones called before p get their turn.
        limit = p;
        q = pNext[pHead];
      }
      if (q !== pTail && pendingCallPos[q] < limit) {
        if (tryOp(pendingOps[q])) {
          q = -1;
          p = next[head];
        } else {
          q = pNext[q];
        }
        continue;
      }
      // No candidate fits: undo the last choice and try the next candidate after it.
      if (stackOps.length > best.length) best = stackOps.slice();
      if (stackOps.length === 0) return best;
      const i = stackOps.pop()!;
      state = stackStates.pop()!;
      limit = stackLimits.pop()!;
      undo(i);
      const k = pendingSlot[i];
      if (k < 0) {
        remaining++;
        q = -1;
        p = next[callPos[i]];
      } else {
        q = pNext[k];
      }
    }
    return true;
  };
  return { run };
}

/** How many candidate operations a violation's message lists. */
const MAX_LISTED = 12;

function violation<State, Input, Output>(
  model: Model<State, Input, Output>,
  partCount: number,
  index: number,
  ops: readonly Operation<Input, Output>[],
  prefix: readonly number[],
): CheckViolation<Input, Output> {
  let state = model.init();
  for (const i of prefix) state = model.step(state, ops[i].input, ops[i].output)[1];
  // What could come next: everything not yet linearized whose call precedes the earliest
  // outstanding return (at equal times, calls first, as in the search).
  const placed = new Set(prefix);
  let deadlineOp = -1;
  for (let i = 0; i < ops.length; i++) {
    if (placed.has(i)) continue;
    if (deadlineOp === -1 || ops[i].return < ops[deadlineOp].return) deadlineOp = i;
  }
  const candidates: number[] = [];
  for (let i = 0; i < ops.length; i++) {
    if (!placed.has(i) && ops[i].call <= ops[deadlineOp].return) candidates.push(i);
  }
  candidates.sort((a, b) => ops[a].call - ops[b].call || a - b);
  const stateText = model.describeState ? model.describeState(state) : safeJson(state);
  // Operations that never returned are candidates everywhere; listing dozens would bury the rest.
  const shown = [
    ...candidates.filter((i) => ops[i].return !== Infinity),
    ...candidates.filter((i) => ops[i].return === Infinity),
  ].slice(0, MAX_LISTED);
  const lines = shown.map((i) => {
    const fits = model.step(state, ops[i].input, ops[i].output)[0];
    return `  ${line(model, ops[i])}: ${fits ? "fits, but leads to a dead end" : "does not fit"}`;
  });
  if (candidates.length > shown.length) {
    lines.push(`  ... and ${candidates.length - shown.length} more that never returned`);
  }
  const last = prefix.slice(-3).map((i) => `  ${line(model, ops[i])}`);
  const message = [
    `not linearizable: part ${index + 1} of ${partCount} (${ops.length} operations); ` +
    `the longest linearization found covers ${prefix.length} of them` +
    (last.length > 0 ? `, ending with:` : "."),
    ...last,
    `leaving the state ${stateText}, from which no candidate for what comes next leads on:`,
    ...lines,
  ].join("\n");
  return {
    ok: false,
    partitionIndex: index,
    partition: ops,
    longestPrefix: prefix.map((i) => ops[i]),
    unplaced: candidates.map((i) => ops[i]),
    message,
  };
}

function line<State, Input, Output>(
  model: Model<State, Input, Output>,
  op: Operation<Input, Output>,
): string {
  const end = op.return === Infinity ? "never returned" : `return ${op.return}`;
  return `client ${op.client}: ${describe(model, op)} [call ${op.call}, ${end}]`;
}

function describe<State, Input, Output>(
  model: Model<State, Input, Output>,
  op: Operation<Input, Output>,
): string {
  if (model.describeOperation) return model.describeOperation(op.input, op.output);
  return `${safeJson(op.input)} -> ${op.output === undefined ? "?" : safeJson(op.output)}`;
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * Records a history as a test runs: `invoke` before sending a request, then `complete` when a
 * definite answer arrives or `fail` when the request certainly had no effect. Whatever is left
 * open when `history()` is taken counts as never returned (it may or may not take effect).
 *
 * @example
 * ```ts
 * const recorder = new HistoryRecorder<KvInput, KvOutput>(() => clock.now());
 * const id = recorder.invoke("c1", { op: "get", key: "x" });
 * recorder.complete(id, { value: await client.get("x") });
 * ```
 */
export class HistoryRecorder<Input, Output> {
  readonly #now: () => number;
  readonly #ops: {
    client: number | string;
    input: Input;
    output?: Output;
    call: number;
    return: number;
    failed: boolean;
  }[] = [];

  /** `clock` gives the timestamps; one clock for all clients. Default: `performance.now`. */
  constructor(clock: () => number = now) {
    this.#now = clock;
  }

  /** Record the call of `input` by `client` now; returns the id for `complete` or `fail`. */
  invoke(client: number | string, input: Input): number {
    this.#ops.push({ client, input, call: this.#now(), return: Infinity, failed: false });
    return this.#ops.length - 1;
  }

  /** Record that operation `id` returned `output` now. */
  complete(id: number, output: Output): void {
    const op = this.#open(id);
    op.output = output;
    op.return = this.#now();
  }

  /** Drop operation `id`: it is known to have had no effect (for example, rejected unsent). */
  fail(id: number): void {
    this.#open(id).failed = true;
  }

  /** The operations recorded so far; those still open have `return: Infinity`. */
  history(): Operation<Input, Output>[] {
    return this.#ops.filter((op) => !op.failed).map(({ failed: _, ...op }) => ({ ...op }));
  }

  #open(id: number) {
    const op = this.#ops[id];
    if (op === undefined || op.failed || op.return !== Infinity) {
      throw new RangeError(`HistoryRecorder: operation ${id} is not open`);
    }
    return op;
  }
}
