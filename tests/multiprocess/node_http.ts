/**
 * Plain `fetch` calls to one node's HTTP API, for tests that must pick the node they talk to
 * (a stale read on a restarted follower, a write to the new leader). Writes carry an
 * exactly-once session and are retried, under the same sequence number, on another node while
 * the cluster has no leader or a node is down.
 *
 * @module
 */
import type { Random } from "../../src/testing/random.ts";
import type { DriverRead, KvDriver } from "./kv_workload.ts";

/** One HTTP exchange, fully read. */
export interface NodeAnswer {
  /** The status, or 0 when no answer came (connection refused, reset, timeout). */
  readonly status: number;
  /** The body as text ("" without an answer). */
  readonly text: string;
  /** The response headers (empty without an answer). */
  readonly headers: Headers;
  /** What went wrong when there was no answer. */
  readonly error?: string;
}

/** `fetch` with a timeout; never throws: a missing answer has status 0. */
export async function request(
  url: string,
  init: RequestInit = {},
  timeoutMs = 5000,
): Promise<NodeAnswer> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    const res = await fetch(url, { ...init, signal: abort.signal });
    const text = await res.text();
    return { status: res.status, text, headers: res.headers };
  } catch (e) {
    return { status: 0, text: "", headers: new Headers(), error: String(e) };
  } finally {
    clearTimeout(timer);
  }
}

/** The path of `key` under /kv/. */
export function kvPath(key: string): string {
  return `/kv/${key.split("/").map(encodeURIComponent).join("/")}`;
}

/**
 * Read `key` from the node at `base`. Resolves with the value, or null when the key is absent;
 * throws on any other answer.
 */
export async function readValue(
  base: string,
  key: string,
  consistency: "linearizable" | "stale" = "linearizable",
): Promise<string | null> {
  const a = await request(`${base}${kvPath(key)}?consistency=${consistency}`);
  if (a.status === 200) return a.text;
  if (a.status === 404) return null;
  throw new Error(`GET ${key} (${consistency}) at ${base}: ${a.status} ${a.text}${a.error ?? ""}`);
}

/** Statuses after which a write may be retried: no answer, no leader, busy, timeout. */
export function retryable(status: number): boolean {
  return status === 0 || status === 503 || status === 504 || status === 502;
}

/** A writer with its own exactly-once session. */
export class SessionWriter {
  /** The session's client id. */
  readonly clientId: string;
  #seq = 0;

  /** A new session, named `clientId` (default a random UUID). */
  constructor(clientId: string = crypto.randomUUID()) {
    this.clientId = clientId;
  }

  /** The session headers of the next write (every retry of it sends the same ones). */
  nextWriteHeaders(): Record<string, string> {
    return { "Floe-Client-Id": this.clientId, "Floe-Sequence": String(++this.#seq) };
  }

  /**
   * PUT `value` at `key`, trying `bases` in turn (starting with the first) until one answers
   * 200, for at most `timeoutMs`. Every attempt carries the same sequence number, so the write
   * is applied once. Resolves with the answer's JSON (`revision`, ...); throws when time runs
   * out or a node refuses the write for good.
   */
  async put(
    bases: readonly string[],
    key: string,
    value: string,
    timeoutMs = 30_000,
  ): Promise<{ revision: number }> {
    const headers = this.nextWriteHeaders();
    const deadline = performance.now() + timeoutMs;
    let last = "";
    for (let attempt = 0;; attempt++) {
      const base = bases[attempt % bases.length];
      const a = await request(`${base}${kvPath(key)}`, {
        method: "PUT",
        body: value,
        headers,
      });
      if (a.status === 200) return JSON.parse(a.text);
      last = `${base}: ${a.status} ${a.text}${a.error ?? ""}`;
      if (!retryable(a.status)) throw new Error(`PUT ${key}: ${last}`);
      if (performance.now() > deadline) {
        throw new Error(`PUT ${key}: no success within ${timeoutMs} ms; last: ${last}`);
      }
      await new Promise((r) => setTimeout(r, Math.min(200, 20 * (attempt + 1))));
    }
  }
}

/**
 * A `KvDriver` over plain fetch: each request starts at a random node of `bases` and moves on to
 * the next one while the answer is retryable, for at most `retryMs`; writes keep one session
 * sequence number across those attempts. Throws when no definite answer came.
 */
export class FetchDriver implements KvDriver {
  readonly #bases: readonly string[];
  readonly #random: Random;
  readonly #retryMs: number;
  readonly #session = new SessionWriter();

  /** Requests go to `bases` (HTTP base URLs), starting at a node `random` picks. */
  constructor(bases: readonly string[], random: Random, retryMs = 8000) {
    this.#bases = bases;
    this.#random = random;
    this.#retryMs = retryMs;
  }

  /** A linearizable read. */
  async get(key: string): Promise<DriverRead> {
    const a = await this.#send(key, { method: "GET" }, "?consistency=linearizable");
    if (a.status === 404) return { value: null };
    if (a.status !== 200) throw new Error(`GET ${key}: ${a.status} ${a.text}`);
    const revision = Number(a.headers.get("Floe-Revision"));
    return Number.isFinite(revision) && revision > 0 ? { value: a.text, revision } : {
      value: a.text,
    };
  }

  /** PUT, exactly once. */
  put(key: string, value: string): Promise<{ revision?: number }> {
    return this.#write(key, "PUT", value);
  }

  /** POST (append), exactly once. */
  append(key: string, value: string): Promise<{ revision?: number }> {
    return this.#write(key, "POST", value);
  }

  async #write(key: string, method: string, value: string): Promise<{ revision?: number }> {
    const headers = this.#session.nextWriteHeaders();
    const a = await this.#send(key, { method, body: value, headers });
    if (a.status !== 200) throw new Error(`${method} ${key}: ${a.status} ${a.text}`);
    const revision = (JSON.parse(a.text) as { revision?: number }).revision;
    return revision === undefined ? {} : { revision };
  }

  async #send(key: string, init: RequestInit, query = ""): Promise<NodeAnswer> {
    const deadline = performance.now() + this.#retryMs;
    const first = this.#random.int(this.#bases.length);
    let a: NodeAnswer;
    for (let attempt = 0;; attempt++) {
      const base = this.#bases[(first + attempt) % this.#bases.length];
      a = await request(`${base}${kvPath(key)}${query}`, init, 3000);
      if (!retryable(a.status) || performance.now() > deadline) return a;
      await new Promise((r) => setTimeout(r, Math.min(100, 10 * (attempt + 1))));
    }
  }
}
