/**
 * Concurrent clients doing random gets, puts and appends on a few keys, and appends to a ledger
 * key of their own, while faults come and go, every call recorded in a `HistoryRecorder` for the
 * linearizability checker. How requests reach the cluster (plain fetch to a chosen node, or
 * `FloeClient`) is a `KvDriver`.
 *
 * Recording: a write that fails or throws is left open (it may still take effect: a retry
 * under the same session, a proposal the old leader had replicated); a read that fails is
 * dropped (it had no effect). Values are unique per client and call, which keeps the checker's
 * search sharp.
 *
 * @module
 */
import assert from "node:assert/strict";
import { checkLinearizable, type HistoryRecorder } from "../../src/testing/linearizability.ts";
import { type KvInput, kvModel, type KvOutput } from "../../src/testing/kv_model.ts";
import type { Random } from "../../src/testing/random.ts";

/** What a value read returns. */
export interface DriverRead {
  /** The value, null when absent. */
  readonly value: string | null;
  /** The key's revision, when reported. */
  readonly revision?: number;
}

/** One client's way to the cluster. Methods throw when the outcome is not known. */
export interface KvDriver {
  /** A linearizable read. */
  get(key: string): Promise<DriverRead>;
  /** Set the value; resolves with the write's revision when reported. */
  put(key: string, value: string): Promise<{ revision?: number }>;
  /** Append to the value; resolves with the write's revision when reported. */
  append(key: string, value: string): Promise<{ revision?: number }>;
}

/** How the clients behave. */
export interface WorkloadOptions {
  /** One driver per client. */
  readonly drivers: readonly KvDriver[];
  /** The keys they use. */
  readonly keys: readonly string[];
  /** Seeded randomness (each client forks its own). */
  readonly random: Random;
  /** Where calls are recorded. */
  readonly recorder: HistoryRecorder<KvInput, KvOutput>;
  /** Clients stop starting operations once this resolves. */
  readonly stop: Promise<void>;
  /** Pause between a client's operations, ms. Default 5. */
  readonly thinkMs?: number;
}

/** The pieces one client appended to its own ledger key, which no other client writes. */
export interface Ledger {
  /** Acknowledged appends, in order. */
  readonly acknowledged: string[];
  /** Appends whose outcome is unknown. */
  readonly ambiguous: string[];
}

/** The key only client `c` appends to: its final value must hold every acknowledged piece once. */
export function ledgerKey(c: number): string {
  return `ledger/c${c}`;
}

/**
 * Problems with a ledger's final value: an acknowledged piece missing, any piece twice, a piece
 * nobody wrote, or acknowledged pieces out of order. Empty when it is right.
 */
export function checkLedger(ledger: Ledger, finalValue: string | null): string[] {
  const pieces = (finalValue ?? "").match(/\[[^\]]*\]/g) ?? [];
  const problems: string[] = [];
  const count = new Map<string, number>();
  for (const p of pieces) count.set(p, (count.get(p) ?? 0) + 1);
  const known = new Set([...ledger.acknowledged, ...ledger.ambiguous]);
  for (const [p, n] of count) {
    if (n > 1) problems.push(`${p} appears ${n} times`);
    if (!known.has(p)) problems.push(`${p} was never written`);
  }
  for (const p of ledger.acknowledged) {
    if (!count.has(p)) problems.push(`acknowledged ${p} is missing`);
  }
  const order = pieces.filter((p) => ledger.acknowledged.includes(p));
  if (order.join("") !== ledger.acknowledged.filter((p) => count.has(p)).join("")) {
    problems.push("acknowledged pieces are out of order");
  }
  return problems;
}

/** What the clients did. */
export interface WorkloadReport {
  /** Operations answered. */
  readonly completed: number;
  /** Writes left open (unknown outcome). */
  readonly ambiguous: number;
  /** Reads that failed. */
  readonly failedReads: number;
  /** The first few errors, for a message. */
  readonly errors: readonly string[];
  /** Per client, the pieces it appended to its ledger key (see `ledgerKey`). */
  readonly ledgers: readonly Ledger[];
}

/** Run the clients until `stop` resolves and each has finished its operation in flight. */
export async function runWorkload(options: WorkloadOptions): Promise<WorkloadReport> {
  let stopped = false;
  options.stop.then(() => (stopped = true));
  let completed = 0;
  let ambiguous = 0;
  let failedReads = 0;
  const errors: string[] = [];
  const ledgers = options.drivers.map(() => ({
    acknowledged: [] as string[],
    ambiguous: [] as string[],
  }));
  const note = (e: unknown) => {
    if (errors.length < 8) errors.push(String(e instanceof Error ? e.message : e).slice(0, 300));
  };
  const client = async (c: number, driver: KvDriver, random: Random) => {
    const recorder = options.recorder;
    const ledger = ledgerKey(c);
    for (let n = 0; !stopped; n++) {
      if (n > 0 && options.thinkMs !== 0) {
        await new Promise((r) => setTimeout(r, options.thinkMs ?? 5));
      }
      const roll = random.next();
      if (roll < 0.4) {
        const key = random.pick(options.keys);
        const id = recorder.invoke(c, { op: "get", key });
        try {
          const r = await driver.get(key);
          recorder.complete(id, r.revision === undefined ? { value: r.value } : r);
          completed++;
        } catch (e) {
          recorder.fail(id);
          failedReads++;
          note(e);
        }
        continue;
      }
      const op = roll < 0.7 ? "put" : "append";
      const key = roll < 0.85 ? random.pick(options.keys) : ledger;
      // Appended pieces are delimited so any mix of them stays readable.
      const value = op === "put" ? `c${c}.${n}` : `[c${c}.${n}]`;
      const id = recorder.invoke(c, { op, key, value });
      try {
        const r = await (op === "put" ? driver.put(key, value) : driver.append(key, value));
        recorder.complete(id, r.revision === undefined ? {} : { revision: r.revision });
        completed++;
        if (key === ledger) ledgers[c].acknowledged.push(value);
      } catch (e) {
        ambiguous++;
        if (key === ledger) ledgers[c].ambiguous.push(value);
        note(e);
      }
    }
  };
  await Promise.all(options.drivers.map((d, c) => client(c, d, options.random.fork())));
  return { completed, ambiguous, failedReads, errors, ledgers };
}

/** What `checkOutcome` needs once the faults are over and every node has caught up. */
export interface OutcomeCheck {
  /** The workload's history. */
  readonly recorder: HistoryRecorder<KvInput, KvOutput>;
  /** The workload's keys (the ledger keys are added). */
  readonly keys: readonly string[];
  /** What the workload reported. */
  readonly report: WorkloadReport;
  /** A linearizable read of `key` (its value, or null when absent). */
  readonly read: (key: string) => Promise<string | null>;
  /** What to add to a failure's message (seed, logs). */
  readonly context: () => string;
}

/**
 * Read every key once more (recorded as the history's final reads), check each client's ledger
 * against it, that enough operations were answered, and that the history is linearizable.
 * Returns the history's length and how long the check took.
 */
export async function checkOutcome(
  o: OutcomeCheck,
): Promise<{ operations: number; checkMs: number }> {
  const finals = new Map<string, string | null>();
  for (const key of [...o.keys, ...o.report.ledgers.map((_, c) => ledgerKey(c))]) {
    const id = o.recorder.invoke("final", { op: "get", key });
    const value = await o.read(key);
    o.recorder.complete(id, { value });
    finals.set(key, value);
  }
  o.report.ledgers.forEach((ledger, c) => {
    const problems = checkLedger(ledger, finals.get(ledgerKey(c))!);
    assert.deepEqual(problems, [], `ledger of client ${c}: ${o.context()}`);
  });
  assert.ok(
    o.report.completed >= 50,
    `only ${o.report.completed} operations answered: ${o.context()}`,
  );
  const history = o.recorder.history();
  const started = performance.now();
  const result = checkLinearizable(kvModel, history, { timeoutMs: 60_000 });
  assert.equal(result.ok, true, `${result.ok === true ? "" : result.message}\n${o.context()}`);
  return { operations: history.length, checkMs: performance.now() - started };
}
