/**
 * A client of floe's replicated key-value store (`KvStateMachine`) for `SimCluster` runs, as a
 * real client would behave: it looks for the leader (following `NotLeaderError` hints, else
 * trying the next server), gives each attempt a timeout in virtual time, and retries a write
 * under the same session sequence number until it is answered, so that a write whose first
 * attempt was applied but never acknowledged is not applied twice. It can record every
 * operation in a `HistoryRecorder` for `checkLinearizable` with `kvModel`: an operation that was
 * never answered stays open (`return: Infinity`), as its outcome is unknown.
 *
 * While it waits, the client lets virtual time pass in small steps (`passTime`), so a test needs
 * no other driver, and several clients and a fault schedule waiting the same way run at once,
 * each reacting within a step of what happens.
 *
 * @example
 * ```ts
 * const recorder = new HistoryRecorder<KvInput, KvOutput>(() => cluster.clock.now());
 * const client = new KvSimClient(cluster, { id: "alice", history: recorder });
 * await client.append("log", "alice.1;");
 * const entry = await client.get("log"); // its value is "alice.1;", unless others appended too
 * assert.equal(checkLinearizable(kvModel, recorder.history()).ok, true);
 * ```
 *
 * @module
 */
import type { RaftNode, ReadConsistency } from "../node/raft_node.ts";
import {
  decodeKvWriteResult,
  encodeKvCommand,
  type KvCommand,
  type KvWriteResult,
} from "../kv/kv_command.ts";
import { decodeKvQueryResult, encodeKvQuery, type KvEntry } from "../kv/kv_query.ts";
import type { KvInput, KvOutput } from "./kv_model.ts";
import type { HistoryRecorder } from "./linearizability.ts";
import type { SimCluster } from "./sim_cluster.ts";

/** Which way a lost message was going: the client's request, or the server's reply. */
export type KvSimLeg = "request" | "reply";

/** How to build a `KvSimClient`. */
export interface KvSimClientOptions {
  /** The session's client id; also the client named in the history. Unique per client. */
  readonly id: string;
  /** Where to record each operation (its clock should be the cluster's). Default: nowhere. */
  readonly history?: HistoryRecorder<KvInput, KvOutput>;
  /** Virtual ms one attempt waits for its answer before the client tries again. Default 1000. */
  readonly attemptTimeoutMs?: number;
  /**
   * Virtual ms an operation keeps retrying before the client gives up on it; its outcome is then
   * unknown (left open in the history) and the method returns undefined. Default 60,000.
   */
  readonly giveUpAfterMs?: number;
  /** Virtual ms to pause before trying another server after a failed attempt. Default 10. */
  readonly retryPauseMs?: number;
  /** Virtual ms of each step the client lets pass while it waits. Default 5. */
  readonly pollMs?: number;
  /**
   * Tag writes with a session (`{client: id, seq}`), which is what makes retries exactly-once.
   * Default true. False only to prove that checks catch what sessions prevent: each retry is
   * then a new command.
   */
  readonly sessions?: boolean;
  /**
   * Whether this attempt's request, or its reply, is lost between the client and the server
   * (asked once per attempt and leg). A lost request never reaches the server; a lost reply
   * leaves the client waiting out its timeout while the operation may well have been applied.
   * Default: nothing is lost.
   */
  readonly lose?: (leg: KvSimLeg) => boolean;
  /**
   * How reads are served. Default `"linearizable"` (ReadIndex on the leader). `"stale"` lets
   * any server answer from its own state: wrong on purpose, to show the checker catches it.
   */
  readonly readConsistency?: ReadConsistency;
  /** The server (by number) the client asks first. Default 0. */
  readonly server?: number;
}

/** What a `KvSimClient` went through, for reports and for tests that require faults to bite. */
export interface KvSimClientStats {
  /** Operations started. */
  ops: number;
  /** Operations answered. */
  answered: number;
  /** Operations given up on, their outcome unknown. */
  gaveUp: number;
  /** Requests sent to a server (attempts that reached one). */
  attempts: number;
  /** Attempts after an operation's first one. */
  retries: number;
  /** Attempts that ran out of time (a lost reply counts here too). */
  timeouts: number;
  /** `NotLeaderError`s that named a leader the client then went to. */
  redirects: number;
  /** Attempts at a server that was down or disconnected. */
  unreachable: number;
  /** Requests the `lose` option dropped. */
  lostRequests: number;
  /** Replies the `lose` option dropped. */
  lostReplies: number;
  /** Failed attempts by error name (other than timeouts). */
  errors: Record<string, number>;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * One simulated client of the KV store on a `SimCluster` whose servers run `KvStateMachine`s.
 * Issue one operation at a time per client (as a session requires); run several clients for
 * concurrency. Values are strings (UTF-8 in the store), which the history records as they are.
 */
export class KvSimClient {
  /** The client's id. */
  readonly id: string;
  /** Counts of what happened so far. */
  readonly stats: KvSimClientStats = {
    ops: 0,
    answered: 0,
    gaveUp: 0,
    attempts: 0,
    retries: 0,
    timeouts: 0,
    redirects: 0,
    unreachable: 0,
    lostRequests: 0,
    lostReplies: 0,
    errors: {},
  };
  readonly #c: SimCluster;
  readonly #history: HistoryRecorder<KvInput, KvOutput> | undefined;
  readonly #attemptTimeoutMs: number;
  readonly #giveUpAfterMs: number;
  readonly #retryPauseMs: number;
  readonly #pollMs: number;
  readonly #sessions: boolean;
  readonly #lose: (leg: KvSimLeg) => boolean;
  readonly #consistency: ReadConsistency;
  #server: number;
  #seq = 0;
  #busy = false;

  /**
   * A client of `cluster`.
   *
   * @throws {RangeError} when a time option is not a positive number or `server` is no server.
   */
  constructor(cluster: SimCluster, options: KvSimClientOptions) {
    this.#c = cluster;
    this.id = options.id;
    this.#history = options.history;
    this.#attemptTimeoutMs = positive("attemptTimeoutMs", options.attemptTimeoutMs ?? 1000);
    this.#giveUpAfterMs = positive("giveUpAfterMs", options.giveUpAfterMs ?? 60_000);
    this.#retryPauseMs = positive("retryPauseMs", options.retryPauseMs ?? 10);
    this.#pollMs = positive("pollMs", options.pollMs ?? 5);
    this.#sessions = options.sessions ?? true;
    this.#lose = options.lose ?? (() => false);
    this.#consistency = options.readConsistency ?? "linearizable";
    const server = options.server ?? 0;
    if (!Number.isInteger(server) || server < 0 || server >= cluster.n) {
      throw new RangeError(`KvSimClient: server must be in 0..${cluster.n - 1}, got ${server}`);
    }
    this.#server = server;
  }

  /** Set `key` to `value`. Undefined when the client gave up (the put may have happened). */
  put(key: string, value: string): Promise<KvWriteResult | undefined> {
    return this.write({ op: "put", key, value: encoder.encode(value) });
  }

  /** Append `value` to `key`'s value. Undefined when the client gave up. */
  append(key: string, value: string): Promise<KvWriteResult | undefined> {
    return this.write({ op: "append", key, value: encoder.encode(value) });
  }

  /** Delete `key`. Undefined when the client gave up. */
  delete(key: string): Promise<KvWriteResult | undefined> {
    return this.write({ op: "delete", key });
  }

  /**
   * Set `key` to `value` if its revision is `revision` (0: if it is absent): a compare-and-swap,
   * answered `ok` or `failed-condition`. Undefined when the client gave up.
   */
  cas(key: string, revision: number, value: string): Promise<KvWriteResult | undefined> {
    return this.write({ op: "put", key, value: encoder.encode(value), condition: { revision } });
  }

  /**
   * Propose `command` (its session and `ts` are the client's to set) and retry until it is
   * answered or the client gives up (undefined). Values must be UTF-8 text, for the history.
   *
   * @throws {Error} when another operation of this client is in progress, or when the store
   *   answers `stale-sequence` or `invalid` (a bug: this client never sends either kind).
   */
  async write(command: KvCommand): Promise<KvWriteResult | undefined> {
    const input = historyInput(command);
    return await this.#operation(input, async () => {
      const seq = ++this.#seq;
      const bytes = encodeKvCommand({
        ...command,
        ...(this.#sessions ? { session: { client: this.id, seq } } : {}),
        ts: Math.floor(this.#c.clock.now()),
      } as KvCommand);
      // With a session, a retry's answer is the first attempt's, byte for byte.
      const answer = await this.#call((node) => node.propose(bytes), this.#sessions);
      if (answer === undefined) return undefined;
      const result = decodeKvWriteResult(answer);
      if (result.status === "stale-sequence" || result.status === "invalid") {
        throw new Error(
          `KvSimClient ${this.id}: ${command.op} ${JSON.stringify(command.key)} (seq ${seq}) ` +
            `was answered ${JSON.stringify(result)}`,
        );
      }
      return { result, output: historyOutput(input, result) };
    });
  }

  /**
   * Read `key` (linearizable unless the client was built with stale reads): its entry, null
   * when absent, undefined when the client gave up.
   *
   * @throws {Error} when another operation of this client is in progress.
   */
  async get(key: string): Promise<KvEntry | null | undefined> {
    const query = encodeKvQuery({ op: "get", key });
    const consistency = this.#consistency;
    return await this.#operation({ op: "get", key }, async () => {
      const answer = await this.#call((node) => node.read(query, { consistency }), false);
      if (answer === undefined) return undefined;
      const r = decodeKvQueryResult(answer);
      if (r.op !== "get" || r.status !== "ok") {
        throw new Error(`KvSimClient ${this.id}: get answered ${JSON.stringify(r)}`);
      }
      const entry = r.entry ?? null;
      const output: KvOutput = entry === null
        ? { value: null }
        : { value: decoder.decode(entry.value), revision: entry.revision };
      return { result: entry, output };
    });
  }

  // Records the operation around `run`; an answer completes it, giving up leaves it open.
  async #operation<T>(
    input: KvInput,
    run: () => Promise<{ result: T; output: KvOutput } | undefined>,
  ): Promise<T | undefined> {
    if (this.#busy) {
      throw new Error(`KvSimClient ${this.id}: one operation at a time (sessions require it)`);
    }
    this.#busy = true;
    this.stats.ops++;
    const id = this.#history?.invoke(this.id, input);
    try {
      const out = await run();
      if (out === undefined) {
        this.stats.gaveUp++;
        return undefined;
      }
      if (id !== undefined) this.#history!.complete(id, out.output);
      this.stats.answered++;
      return out.result;
    } finally {
      this.#busy = false;
    }
  }

  // Sends `request` to the server the client believes leads until one answers; undefined once
  // the operation's time is up. With `sameAnswer`, every answer (lost or not) must be the same.
  async #call(
    request: (node: RaftNode) => Promise<Uint8Array | undefined>,
    sameAnswer: boolean,
  ): Promise<Uint8Array | undefined> {
    const c = this.#c;
    let lost: Uint8Array | undefined;
    const giveUpAt = c.clock.now() + this.#giveUpAfterMs;
    let first = true;
    while (c.clock.now() < giveUpAt) {
      const i = this.#server;
      const node = c.connected(i) ? c.node(i) : undefined;
      if (node === undefined) {
        // Nobody listens there: the connection is refused at once.
        this.stats.unreachable++;
        await this.#nextServer();
        continue;
      }
      if (!first) this.stats.retries++;
      first = false;
      const deadline = Math.min(giveUpAt, c.clock.now() + this.#attemptTimeoutMs);
      if (this.#lose("request")) {
        this.stats.lostRequests++;
        await this.#sleepUntil(deadline);
        this.stats.timeouts++;
        await this.#nextServer();
        continue;
      }
      this.stats.attempts++;
      const out = await this.#settle(request(node), deadline);
      if (out?.ok) {
        const answer = out.value ?? new Uint8Array();
        if (sameAnswer && lost !== undefined && !equalBytes(lost, answer)) {
          throw new Error(
            `KvSimClient ${this.id}: a retry was answered differently from the attempt whose ` +
              `reply was lost (${hex(lost)} then ${hex(answer)})`,
          );
        }
        if (!this.#lose("reply")) return answer;
        lost = answer;
        // The server did the work; the client never hears of it and asks again, same server.
        this.stats.lostReplies++;
        this.stats.timeouts++;
        await this.#sleepUntil(deadline);
        continue;
      }
      if (out === undefined) {
        this.stats.timeouts++;
        await this.#nextServer();
        continue;
      }
      const error = out.error;
      const name = error instanceof Error ? error.name : typeof error;
      this.stats.errors[name] = (this.stats.errors[name] ?? 0) + 1;
      const hint = leaderHint(error);
      const to = hint === undefined ? -1 : c.ids.indexOf(hint);
      if (to >= 0 && to !== i) {
        this.stats.redirects++;
        this.#server = to;
        continue;
      }
      await this.#nextServer();
    }
    return undefined;
  }

  async #nextServer(): Promise<void> {
    this.#server = (this.#server + 1) % this.#c.n;
    await passTime(this.#c, this.#retryPauseMs, this.#pollMs);
  }

  // Lets virtual time pass until `p` settles or the clock reaches `deadline` (undefined then).
  // A promise of the nodes settles only while the clock runs, so it is never awaited alone; and
  // one left behind has a handler, so its later rejection is not an unhandled one.
  async #settle<T>(p: Promise<T>, deadline: number): Promise<Outcome<T> | undefined> {
    let out: Outcome<T> | undefined;
    p.then((value) => out = { ok: true, value }, (error) => out = { ok: false, error });
    await Promise.resolve();
    while (out === undefined && this.#c.clock.now() < deadline) {
      await this.#c.sleep(Math.min(this.#pollMs, deadline - this.#c.clock.now()));
    }
    return out;
  }

  async #sleepUntil(deadline: number): Promise<void> {
    await passTime(this.#c, deadline - this.#c.clock.now(), this.#pollMs);
  }
}

/**
 * Let `ms` of virtual time pass on `cluster` in steps of `stepMs`. Everything that waits on a
 * simulated cluster moves its clock; waiting in small steps, as `KvSimClient` does, lets the
 * other waiters (clients, a fault schedule) react in between instead of finding that one long
 * sleep carried the clock past their timeouts.
 */
export async function passTime(cluster: SimCluster, ms: number, stepMs = 5): Promise<void> {
  const until = cluster.clock.now() + ms;
  while (cluster.clock.now() < until) {
    await cluster.sleep(Math.min(stepMs, until - cluster.clock.now()));
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function positive(name: string, v: number): number {
  if (!(v > 0) || !Number.isFinite(v)) {
    throw new RangeError(`KvSimClient: ${name} must be a positive number, got ${v}`);
  }
  return v;
}

// The leader a NotLeaderError names. Matched by name and shape: src/testing may import only the
// core's types, not its error classes.
function leaderHint(error: unknown): string | undefined {
  if (!(error instanceof Error) || error.name !== "NotLeaderError") return undefined;
  const hint = (error as { leaderHint?: unknown }).leaderHint;
  return typeof hint === "string" && hint !== "" ? hint : undefined;
}

/** The `kvModel` input of a write command. */
function historyInput(command: KvCommand): KvInput {
  const key = command.key;
  switch (command.op) {
    case "append":
      return { op: "append", key, value: decoder.decode(command.value) };
    case "put":
    case "delete": {
      const value = command.op === "put" ? decoder.decode(command.value) : null;
      const c = command.condition;
      if (c === undefined) {
        return value === null ? { op: "delete", key } : { op: "put", key, value };
      }
      // A missing key has revision 0, so {revision: 0} means "absent" as {absent: true} does.
      const expect = "absent" in c || c.revision === 0 ? { value: null } : { revision: c.revision };
      return { op: "cas", key, expect, value };
    }
  }
}

/** The `kvModel` output of a write's result (an applied write or a failed condition). */
function historyOutput(input: KvInput, result: KvWriteResult): KvOutput {
  if (input.op === "cas") {
    return result.status === "ok" && result.revision > 0
      ? { ok: true, revision: result.revision }
      : { ok: result.status === "ok" };
  }
  if (result.status !== "ok") {
    throw new Error(`KvSimClient: unconditional ${input.op} answered ${result.status}`);
  }
  if (input.op === "delete") {
    // Deleting a missing key changes nothing and has no revision of its own.
    const existed = result.prevRevision > 0;
    return existed ? { existed, revision: result.revision } : { existed };
  }
  return { revision: result.revision };
}
