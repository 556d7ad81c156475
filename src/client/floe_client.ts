/**
 * `FloeClient`: the KV API of a floe cluster over HTTP, with nothing but `fetch` (Deno, browsers,
 * Node 20+).
 *
 * - It talks to one node at a time and sticks to the one that answered; when a response names
 *   the leader (`Floe-Leader`) and the client can map that id to a URL (learned from the
 *   `Floe-Node` header of each endpoint, or given as `endpointsById`), it moves to the leader,
 *   saving a forwarding hop.
 * - A network error, 503 (no leader, busy, not ready) or 504 (timeout) is retried, on the next
 *   endpoint or the named leader, with exponential backoff and jitter (`DEFAULT_RETRY_POLICY`:
 *   10 attempts, 50 ms doubling to 2 s); `Retry-After` is honoured for `busy`.
 * - Every write carries the client's session (`Floe-Client-Id` + `Floe-Sequence`); a retry of
 *   one write reuses its sequence number, so a write applies at most once however often it is
 *   retried. Writes in flight at the same time use separate sessions (`<clientId>`,
 *   `<clientId>/1`, ...), since a session's writes must apply in order.
 * - Watches reconnect by themselves (from the revision after the last change received), so a
 *   watch survives a node going away; only a compacted position ends one
 *   (`FloeCompactedError`).
 *
 * @example
 * ```ts
 * const client = new FloeClient({ endpoints: ["http://127.0.0.1:7401", "http://127.0.0.1:7402"] });
 * const { revision } = await client.put("greeting", "hello");
 * await client.put("greeting", "hi", { ifRevision: revision }); // compare-and-swap
 * const entry = await client.get("greeting"); // { value: Uint8Array, revision, ... }
 * for await (const change of client.watch("greeting")) console.log(change);
 * ```
 *
 * @module
 */
import { base64ToBytes } from "../http/base64.ts";
import {
  FLOE_CLIENT_ID,
  FLOE_CREATE_REVISION,
  FLOE_LEADER,
  FLOE_NODE,
  FLOE_REVISION,
  FLOE_SEQUENCE,
  FLOE_SNAPSHOT_INDEX,
  FLOE_SNAPSHOT_TERM,
  FLOE_VERSION,
  FLOE_WATCH_FROM,
} from "../http/floe_headers.ts";
import {
  FloeCompactedError,
  FloeConditionFailedError,
  FloeHttpError,
  FloeNetworkError,
} from "./floe_errors.ts";
import { backoffDelay, resolveRetryPolicy, type RetryPolicy } from "./retry_policy.ts";
import { readSseStream } from "./sse_parser.ts";

/** Options of `FloeClient`. */
export interface FloeClientOptions {
  /** Base URLs of the nodes' HTTP APIs (`http://host:port`); at least one. */
  readonly endpoints: readonly string[];
  /** Bearer token, when the nodes require one. */
  readonly token?: string;
  /**
   * This client's session id. Default: a random UUID. It must not be shared with another client
   * that writes, nor reused by a new client before the old session expired (10 minutes idle):
   * sequence numbers restart at 1 and would be refused as stale.
   */
  readonly clientId?: string;
  /** Retry settings (`DEFAULT_RETRY_POLICY` for what is left out). */
  readonly retry?: Partial<RetryPolicy>;
  /** `fetch` to use. Default: the global one. */
  readonly fetch?: typeof fetch;
  /** Node id → base URL, so leader hints can be followed before each node has answered once. */
  readonly endpointsById?: Readonly<Record<string, string>>;
  /** Longest wait for one attempt's response headers, ms. Default 15,000. */
  readonly timeoutMs?: number;
}

/** A value: bytes, or text (sent as UTF-8). */
export type FloeValue = Uint8Array | string;

/** How fresh a read must be: through the leader (default), or whatever the node holds. */
export type FloeConsistency = "linearizable" | "stale";

/** The outcome of a write. Revisions are log indexes; 0 means "no such key". */
export interface FloeWriteResult {
  /** The write's revision (0 for a delete of a missing key). */
  readonly revision: number;
  /** The key's revision before the write. */
  readonly prevRevision: number;
  /** The revision that created the key as it now is (0 after a delete). */
  readonly createRevision: number;
  /** Writes since the key was created (0 after a delete). */
  readonly version: number;
}

/** A key's value and revisions. */
export interface FloeValueEntry {
  /** The value. */
  readonly value: Uint8Array;
  /** Revision of the last write (what `ifRevision` compares with). */
  readonly revision: number;
  /** Revision that created the key. */
  readonly createRevision: number;
  /** Writes since the key was created. */
  readonly version: number;
}

/** One entry of a listing. */
export interface FloeEntry extends FloeValueEntry {
  /** The key. */
  readonly key: string;
}

/** One page of a listing. */
export interface FloeListPage {
  /** Entries in key order. */
  readonly entries: readonly FloeEntry[];
  /** When there are more: pass it as `from` for the next page. */
  readonly next?: string;
  /** The log index the answering state reflects. */
  readonly appliedIndex: number;
}

/** One change a watch delivers. */
export type FloeChange =
  | {
    /** Discriminator. */
    readonly type: "put";
    /** The key. */
    readonly key: string;
    /** The change's revision. */
    readonly revision: number;
    /** The key's whole new value. */
    readonly value: Uint8Array;
  }
  | {
    /** Discriminator. */
    readonly type: "delete";
    /** The key. */
    readonly key: string;
    /** The change's revision. */
    readonly revision: number;
  };

/** A node's replication state of one peer (on a leader). */
export interface FloePeerStatus {
  /** Peer id. */
  readonly id: string;
  /** Highest index known to match the leader's log. */
  readonly match: number;
  /** Next index the leader will send. */
  readonly next: number;
  /** `probe`, `replicate` or `snapshot`. */
  readonly state: string;
  /** Entries behind the leader's last index. */
  readonly lag: number;
}

/** What `GET /status` reports. */
export interface FloeStatus {
  /** Node id. */
  readonly id: string;
  /** `leader`, `follower`, `candidate` or `precandidate`. */
  readonly role: string;
  /** Current term. */
  readonly term: number;
  /** Known leader, or null. */
  readonly leader: string | null;
  /** Commit index. */
  readonly commit: number;
  /** Applied index. */
  readonly applied: number;
  /** Last log index. */
  readonly lastIndex: number;
  /** Index of the latest snapshot. */
  readonly snapshotIndex: number;
  /** Peers (on a leader; empty elsewhere). */
  readonly peers: readonly FloePeerStatus[];
}

/** A consistent backup of the store. */
export interface FloeSnapshot {
  /** The `KvStateMachine` snapshot bytes (`KvStateMachine.restore` loads them). */
  readonly data: Uint8Array;
  /** The log index it covers. */
  readonly index: number;
  /** The term of that entry. */
  readonly term: number;
}

interface Session {
  readonly client: string;
  seq: number;
}

interface Call {
  readonly method: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: Uint8Array;
  readonly signal?: AbortSignal;
  /** Only this endpoint, one attempt (status of a given node). */
  readonly endpoint?: string;
}

const encoder = new TextEncoder();

/** A client of a floe cluster's HTTP API. */
export class FloeClient {
  readonly #endpoints: string[];
  readonly #token: string | undefined;
  readonly #clientId: string;
  readonly #retry: RetryPolicy;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  readonly #byId = new Map<string, string>();
  readonly #idle: Session[] = [];
  #sessions = 0;
  #current = 0;
  readonly #closed = new AbortController();

  /**
   * A client of the nodes at `options.endpoints`.
   *
   * @throws {RangeError} when there is no endpoint or a retry setting is out of range.
   */
  constructor(options: FloeClientOptions) {
    if (options.endpoints.length === 0) throw new RangeError("FloeClient needs an endpoint");
    this.#endpoints = options.endpoints.map(trimSlash);
    this.#token = options.token;
    this.#clientId = options.clientId ?? crypto.randomUUID();
    this.#retry = resolveRetryPolicy(options.retry);
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#timeoutMs = options.timeoutMs ?? 15_000;
    for (const [id, url] of Object.entries(options.endpointsById ?? {})) {
      this.#byId.set(id, trimSlash(url));
    }
  }

  /** This client's session id. */
  get clientId(): string {
    return this.#clientId;
  }

  /** The endpoint the next request goes to. */
  get endpoint(): string {
    return this.#endpoints[this.#current];
  }

  /**
   * Set `key` to `value`. `ifRevision`: only if the key's revision is that (0: absent);
   * `ifAbsent`: only if the key does not exist.
   *
   * @throws {FloeConditionFailedError} when the condition does not hold.
   */
  put(
    key: string,
    value: FloeValue,
    options: { ifRevision?: number; ifAbsent?: boolean } = {},
  ): Promise<FloeWriteResult> {
    const headers: Record<string, string> = {};
    if (options.ifRevision !== undefined) headers["If-Match"] = `"${options.ifRevision}"`;
    if (options.ifAbsent) headers["If-None-Match"] = "*";
    return this.#write("PUT", key, headers, toBytes(value));
  }

  /**
   * Remove `key` (revision 0 when it did not exist). `ifRevision`: only if its revision is that.
   *
   * @throws {FloeConditionFailedError} when the condition does not hold.
   */
  delete(key: string, options: { ifRevision?: number } = {}): Promise<FloeWriteResult> {
    const headers: Record<string, string> = {};
    if (options.ifRevision !== undefined) headers["If-Match"] = `"${options.ifRevision}"`;
    return this.#write("DELETE", key, headers);
  }

  /** Append `value` to `key`'s value (a missing key starts empty). */
  append(key: string, value: FloeValue): Promise<FloeWriteResult> {
    return this.#write("POST", key, {}, toBytes(value));
  }

  /** `key`'s value and revisions, or undefined when it does not exist. */
  async get(
    key: string,
    options: { consistency?: FloeConsistency; maxStalenessMs?: number } = {},
  ): Promise<FloeValueEntry | undefined> {
    const r = await this.#send({
      method: "GET",
      path: keyPath(key) + readParams(options.consistency, options.maxStalenessMs),
    });
    if (r.status === 404) {
      const e = await errorOf(r);
      if (e.code === "not-found") return undefined;
      throw e;
    }
    if (!r.ok) throw await errorOf(r);
    return {
      value: new Uint8Array(await r.arrayBuffer()),
      revision: intHeader(r, FLOE_REVISION),
      createRevision: intHeader(r, FLOE_CREATE_REVISION),
      version: intHeader(r, FLOE_VERSION),
    };
  }

  /** One page of the keys starting with `prefix`, in key order. */
  async list(
    prefix: string,
    options: { from?: string; limit?: number; consistency?: FloeConsistency } = {},
  ): Promise<FloeListPage> {
    let path = `/kv?prefix=${encodeURIComponent(prefix)}`;
    if (options.from !== undefined) path += `&from=${encodeURIComponent(options.from)}`;
    if (options.limit !== undefined) path += `&limit=${options.limit}`;
    if (options.consistency !== undefined) path += `&consistency=${options.consistency}`;
    const r = await this.#send({ method: "GET", path });
    if (!r.ok) throw await errorOf(r);
    const body = await r.json() as {
      entries: {
        key: string;
        value: string;
        revision: number;
        createRevision: number;
        version: number;
      }[];
      next?: string;
      appliedIndex: number;
    };
    return {
      entries: body.entries.map((e) => ({ ...e, value: base64ToBytes(e.value) })),
      ...(body.next !== undefined && { next: body.next }),
      appliedIndex: body.appliedIndex,
    };
  }

  /**
   * The changes under `prefix`, from revision `from` on (default: changes after now), for as
   * long as the caller iterates or until `signal` aborts. Reconnects on its own after network
   * errors and node failures, resuming after the last change received.
   *
   * @throws {FloeCompactedError} (from the iteration) when `from` is older than the retained
   * history.
   */
  watch(
    prefix: string,
    options: { from?: number; signal?: AbortSignal } = {},
  ): AsyncIterable<FloeChange> {
    return { [Symbol.asyncIterator]: () => this.#watch(prefix, options) };
  }

  /** `GET /status` of `endpoint` (one attempt), or of whichever node answers. */
  async status(endpoint?: string): Promise<FloeStatus> {
    const r = await this.#send({
      method: "GET",
      path: "/status",
      ...(endpoint !== undefined && { endpoint: trimSlash(endpoint) }),
    });
    if (!r.ok) throw await errorOf(r);
    return await r.json() as FloeStatus;
  }

  /** A consistent backup, taken through the leader after a linearizable read. */
  async snapshot(): Promise<FloeSnapshot> {
    const r = await this.#send({ method: "GET", path: "/snapshot" });
    if (!r.ok) throw await errorOf(r);
    return {
      data: new Uint8Array(await r.arrayBuffer()),
      index: intHeader(r, FLOE_SNAPSHOT_INDEX),
      term: intHeader(r, FLOE_SNAPSHOT_TERM),
    };
  }

  /** Abort requests and watches in flight; later calls fail. */
  close(): void {
    this.#closed.abort(new FloeNetworkError("the client is closed"));
  }

  // ---- internals -----------------------------------------------------------------------------

  async #write(
    method: string,
    key: string,
    headers: Record<string, string>,
    body?: Uint8Array,
  ): Promise<FloeWriteResult> {
    const session = this.#idle.pop() ??
      {
        client: this.#sessions === 0 ? this.#clientId : `${this.#clientId}/${this.#sessions}`,
        seq: 0,
      };
    if (session.seq === 0) this.#sessions++;
    // One sequence number for every attempt of this write: that is what makes retries safe.
    const seq = ++session.seq;
    try {
      const r = await this.#send({
        method,
        path: keyPath(key),
        headers: { ...headers, [FLOE_CLIENT_ID]: session.client, [FLOE_SEQUENCE]: String(seq) },
        ...(body !== undefined && { body }),
      });
      if (!r.ok) throw await errorOf(r);
      return await r.json() as FloeWriteResult;
    } finally {
      this.#idle.push(session);
    }
  }

  async *#watch(
    prefix: string,
    options: { from?: number; signal?: AbortSignal },
  ): AsyncGenerator<FloeChange> {
    const stop = new AbortController();
    const signal = AbortSignal.any([
      stop.signal,
      this.#closed.signal,
      ...(options.signal ? [options.signal] : []),
    ]);
    let next = options.from;
    let failures = 0;
    try {
      while (!signal.aborted) {
        let path = `/kv?prefix=${encodeURIComponent(prefix)}&watch`;
        if (next !== undefined) path += `&from=${next}`;
        let r: Response;
        try {
          r = await this.#send({
            method: "GET",
            path,
            signal,
            headers: { Accept: "text/event-stream" },
          });
        } catch (e) {
          if (signal.aborted) return;
          throw e;
        }
        if (!r.ok || r.body === null) throw await errorOf(r);
        if (next === undefined) {
          const from = Number(r.headers.get(FLOE_WATCH_FROM));
          if (Number.isSafeInteger(from) && from > 0) next = from;
        }
        try {
          for await (const m of readSseStream(r.body)) {
            if (m.event === "put" || m.event === "delete") {
              const d = JSON.parse(m.data) as { key: string; revision: number; value?: string };
              next = d.revision + 1;
              failures = 0;
              yield m.event === "put"
                ? {
                  type: "put",
                  key: d.key,
                  revision: d.revision,
                  value: base64ToBytes(d.value ?? ""),
                }
                : { type: "delete", key: d.key, revision: d.revision };
            } else if (m.event === "compacted") {
              throw new FloeCompactedError(
                (JSON.parse(m.data) as { oldestRevision: number }).oldestRevision,
              );
            } else if (m.event === "error") {
              break; // the node ended the stream (this client fell behind): resume
            }
          }
        } catch (e) {
          if (e instanceof FloeCompactedError) throw e;
          if (signal.aborted) return;
          // The connection broke: reconnect below.
        }
        if (signal.aborted) return;
        failures++;
        if (failures >= this.#retry.attempts) {
          throw new FloeNetworkError(`the watch of "${prefix}" failed ${failures} times in a row`);
        }
        await sleep(backoffDelay(this.#retry, failures), signal);
      }
    } finally {
      stop.abort();
    }
  }

  // Sends `call`, retrying on network errors, 503 and 504 (see the module doc).
  async #send(call: Call): Promise<Response> {
    const signal = call.signal
      ? AbortSignal.any([call.signal, this.#closed.signal])
      : this.#closed.signal;
    const attempts = call.endpoint !== undefined ? 1 : this.#retry.attempts;
    let last: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (signal.aborted) throw signal.reason;
      const index = this.#current;
      const base = call.endpoint ?? this.#endpoints[index];
      let r: Response;
      try {
        r = await this.#attempt(base + call.path, call, signal);
      } catch (e) {
        if (signal.aborted) throw signal.reason;
        last = new FloeNetworkError(`${call.method} ${base}${call.path}: ${errorText(e)}`, {
          cause: e,
        });
        this.#rotate(index);
        if (attempt < attempts) await sleep(backoffDelay(this.#retry, attempt), signal);
        continue;
      }
      this.#learn(base, r);
      if (r.status !== 503 && r.status !== 504) {
        this.#followLeader(r);
        return r;
      }
      const error = await errorOf(r);
      last = error;
      if (!this.#followLeader(r)) this.#rotate(index);
      if (attempt < attempts) {
        let delay = backoffDelay(this.#retry, attempt);
        const retryAfter = Number(r.headers.get("retry-after"));
        if (error.code === "busy" && retryAfter > 0) {
          delay = Math.max(delay, Math.min(retryAfter * 1000, this.#retry.maxMs));
        }
        await sleep(delay, signal);
      }
    }
    throw last;
  }

  async #attempt(url: string, call: Call, signal: AbortSignal): Promise<Response> {
    const timeout = new AbortController();
    const timer = setTimeout(
      () => timeout.abort(new Error(`no response within ${this.#timeoutMs} ms`)),
      this.#timeoutMs,
    );
    const headers = new Headers(call.headers);
    if (this.#token !== undefined) headers.set("Authorization", `Bearer ${this.#token}`);
    try {
      return await this.#fetch(url, {
        method: call.method,
        headers,
        ...(call.body !== undefined && { body: call.body as Uint8Array<ArrayBuffer> }),
        signal: AbortSignal.any([signal, timeout.signal]),
      });
    } finally {
      clearTimeout(timer);
    }
  }

  #learn(base: string, r: Response): void {
    const id = r.headers.get(FLOE_NODE);
    if (id && this.#endpoints.includes(base) && !this.#byId.has(id)) this.#byId.set(id, base);
  }

  // Moves to the leader a response names, when its URL is known; true when it moved.
  #followLeader(r: Response): boolean {
    const leader = r.headers.get(FLOE_LEADER);
    if (!leader || leader === r.headers.get(FLOE_NODE)) return false;
    const url = this.#byId.get(leader);
    if (url === undefined) return false;
    let i = this.#endpoints.indexOf(url);
    if (i < 0) i = this.#endpoints.push(url) - 1;
    if (i === this.#current) return false;
    this.#current = i;
    return true;
  }

  #rotate(from: number): void {
    if (this.#current === from) this.#current = (from + 1) % this.#endpoints.length;
  }
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}

function toBytes(value: FloeValue): Uint8Array {
  return typeof value === "string" ? encoder.encode(value) : value;
}

function keyPath(key: string): string {
  if (key === "") throw new RangeError("a key may not be empty");
  // fetch resolves these as path segments (even percent-encoded): they cannot reach the node.
  if (key === "." || key === "..") {
    throw new RangeError(`the key "${key}" cannot be addressed in a URL path`);
  }
  return `/kv/${encodeURIComponent(key)}`;
}

function readParams(consistency?: FloeConsistency, maxStalenessMs?: number): string {
  const p = new URLSearchParams();
  if (consistency !== undefined) p.set("consistency", consistency);
  if (maxStalenessMs !== undefined) p.set("max_staleness_ms", String(maxStalenessMs));
  const s = p.toString();
  return s === "" ? "" : `?${s}`;
}

function intHeader(r: Response, name: string): number {
  const v = Number(r.headers.get(name));
  if (!Number.isSafeInteger(v)) {
    throw new FloeHttpError(r.status, "bad-response", `no ${name} header`);
  }
  return v;
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The typed error for an error response (its body consumed). */
async function errorOf(r: Response): Promise<FloeHttpError> {
  let body: { error?: { code?: unknown; message?: unknown } & Record<string, unknown> } = {};
  try {
    body = await r.json();
  } catch { /* not JSON: described by the status alone */ }
  const e = body.error ?? {};
  const code = typeof e.code === "string" ? e.code : `http-${r.status}`;
  const message = typeof e.message === "string" ? e.message : `HTTP ${r.status}`;
  if (r.status === 412 && typeof e.revision === "number") {
    return new FloeConditionFailedError(e.revision, message);
  }
  const { code: _c, message: _m, ...details } = e;
  return new FloeHttpError(r.status, code, message, details);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
