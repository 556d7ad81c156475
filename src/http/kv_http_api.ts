/**
 * The HTTP API of a floe node running the KV store: a `(Request) => Promise<Response>` handler
 * over web-standard `Request`/`Response`/`fetch` only, so it serves from `Deno.serve`, a Node
 * adapter or a service worker alike.
 *
 * Routes (see /work/notes/http_contract.md for the full contract):
 *
 * - `GET /kv/{key}` → the raw value, with `ETag: "<revision>"`, `Floe-Revision`,
 *   `Floe-Create-Revision`, `Floe-Version`; 404 when absent; `If-None-Match` → 304.
 * - `PUT /kv/{key}` (body = value), `POST /kv/{key}` (append), `DELETE /kv/{key}` → 200 JSON
 *   `{revision, prevRevision, createRevision, version}`; `If-Match: "<rev>"` compare-and-swap,
 *   `If-None-Match: *` create-only (PUT); 412 with the current `revision` when it fails.
 * - `GET /kv?prefix=P[&from=K][&limit=N]` → `{entries: [{key, value (base64), revision,
 *   createRevision, version}], next?, appliedIndex}`.
 * - `GET /kv?prefix=P&watch[&from=REV]` → server-sent events (see watch_stream.ts); the
 *   `Last-Event-ID` header resumes after the last event received.
 * - `GET /status`, `GET /metrics` (Prometheus text), `GET /healthz` (no token needed),
 *   `GET /snapshot` (the store's snapshot at a linearizable point, `Floe-Snapshot-Index`,
 *   `Floe-Snapshot-Term`).
 *
 * Reads take `?consistency=linearizable` (default) or `stale` (served by this node as it is;
 * `&max_staleness_ms=N` refuses with 503 unless this node heard from a current leader within N
 * ms). Watches are served by the node asked, from the changes it applies.
 *
 * Headers (case-insensitive): `Floe-Node` on every response, `Floe-Leader` when a leader is
 * known; `Floe-Client-Id` + `Floe-Sequence` on a write make it exactly-once (a retry with the
 * same pair returns the first result); `Authorization: Bearer <token>` on every route but
 * `/healthz` when a token is set; `Floe-Forwarded` marks a request a follower passed on.
 *
 * A follower forwards writes, linearizable reads and `/snapshot` to the leader
 * (`options.leaderUrl`); a forwarded request that reaches a node that does not lead, or any
 * request while no leader is known, gets 503 no-leader with `Retry-After`. Errors are JSON
 * (see http_errors.ts).
 *
 * @module
 */
import { NotLeaderError } from "../core/errors.ts";
import type { NodeId } from "../core/types.ts";
import {
  decodeKvWriteResult,
  encodeKvCommand,
  type KvCommand,
  type KvCondition,
  type KvSession,
} from "../kv/kv_command.ts";
import {
  decodeKvQueryResult,
  encodeKvQuery,
  type KvEntry,
  type KvQuery,
  type KvQueryResult,
  validateKvQuery,
} from "../kv/kv_query.ts";
import type { KvStateMachine } from "../kv/kv_state_machine.ts";
import type { TransportMetrics } from "../transport/websocket_transport.ts";
import type { NodeStatus, RaftNode, ReadOptions } from "../node/raft_node.ts";
import { bytesToBase64 } from "./base64.ts";
import {
  FLOE_CLIENT_ID,
  FLOE_CREATE_REVISION,
  FLOE_FORWARDED,
  FLOE_LEADER,
  FLOE_NODE,
  FLOE_REVISION,
  FLOE_SEQUENCE,
  FLOE_SNAPSHOT_INDEX,
  FLOE_SNAPSHOT_TERM,
  FLOE_VERSION,
  FLOE_WATCH_FROM,
} from "./floe_headers.ts";
import { addCorsHeaders, allowedOrigin, type CorsOrigins, preflightResponse } from "./cors.ts";
import { forwardRequest } from "./forwarding.ts";
import { readBodyLimited } from "./http_body.ts";
import { rawPath, rawTarget } from "./request_target.ts";
import { errorResponse, HttpApiError, toHttpApiError, unavailable } from "./http_errors.ts";
import { PROMETHEUS_CONTENT_TYPE, PrometheusText } from "./prometheus.ts";
import { openWatchStream } from "./watch_stream.ts";
import { DeadlineQueue } from "../node/deadline_queue.ts";
import { RealClock } from "../node/clock.ts";

/** Options of `createKvHttpApi`. */
export interface KvHttpApiOptions {
  /** The node (with `kv` as its state machine). */
  readonly node: RaftNode;
  /** The node's state machine. */
  readonly kv: KvStateMachine;
  /**
   * The HTTP base URL (`http://host:port`) of peer `id`'s API, for forwarding to the leader;
   * undefined when unknown. Without it, a follower answers 503 no-leader where it would forward.
   */
  readonly leaderUrl?: (id: NodeId) => string | undefined;
  /** Bearer token every route but `/healthz` requires. Default: none. */
  readonly token?: string;
  /** `fetch` used to forward. Default: the global one. */
  readonly fetch?: typeof fetch;
  /**
   * Longest wait for a proposal to apply, a linearizable read, or the leader's answer to a
   * forwarded request, in ms; past it the answer is 504 timeout. Default 15,000: above the
   * node's own `proposalTimeoutMs` (10 s by default), so a forwarded request gets the leader's
   * answer, whatever it is.
   */
  readonly timeoutMs?: number;
  /** `Retry-After` of 503 answers, in seconds. Default 1. */
  readonly retryAfterSeconds?: number;
  /** Interval of a watch stream's keep-alive comments, ms. Default 15,000. */
  readonly keepAliveMs?: number;
  /**
   * Bytes of live changes that may wait for one slow watcher before its stream ends with an
   * `error` event (it resumes with `Last-Event-ID`). Default 8 MiB.
   */
  readonly watchBufferBytes?: number;
  /** Aborting it ends every open watch stream (before shutting the server down). */
  readonly signal?: AbortSignal;
  /** Wall clock for commands' `ts` (session expiry). Default `Date.now`. */
  readonly now?: () => number;
  /**
   * Web page origins allowed to call the API (CORS), or "*" for any. Default: none (browsers
   * then allow same-origin pages only).
   */
  readonly corsOrigins?: CorsOrigins;
  /**
   * The peer transport's counters (`WebSocketTransport.metrics`), shown on /metrics: per peer
   * connected, reconnects, frames and bytes in/out, drops, refused frames and handshakes.
   */
  readonly transportMetrics?: () => TransportMetrics;
}

/** The handler `createKvHttpApi` returns. */
export interface KvHttpApi {
  /** Answer one request. Never throws: errors are JSON responses. */
  (request: Request): Promise<Response>;
  /**
   * End every open watch stream (a server's graceful shutdown waits for open responses, and a
   * watch never ends on its own). Requests still work afterwards; new watches end at once.
   */
  close(): void;
}

const ROUTES: Readonly<Record<string, readonly string[]>> = {
  "/kv": ["GET"],
  "/kv/": ["GET", "PUT", "POST", "DELETE"],
  "/status": ["GET"],
  "/metrics": ["GET"],
  "/healthz": ["GET"],
  "/snapshot": ["GET"],
};

/** The key a snapshot's linearizable barrier reads (any key does; its value is not used). */
const BARRIER_KEY = "floe/snapshot-barrier";

/**
 * The API as a request handler. Serve it after the peer WebSocket upgrade, e.g.
 * `Deno.serve((r) => upgrade(r) ?? api(r))`.
 */
export function createKvHttpApi(options: KvHttpApiOptions): KvHttpApi {
  const { node, kv } = options;
  const timeoutMs = options.timeoutMs ?? 15_000;
  const retryAfter = options.retryAfterSeconds ?? 1;
  const keepAliveMs = options.keepAliveMs ?? 15_000;
  const watchBufferBytes = options.watchBufferBytes ?? 8 * 1024 * 1024;
  const now = options.now ?? Date.now;
  const doFetch = options.fetch ?? ((input, init) => fetch(input, init));
  const closing = new AbortController();
  options.signal?.addEventListener("abort", () => closing.abort(), { once: true });
  const responses = new Map<number, number>();

  const route = (request: Request): Response | Promise<Response> => {
    const href = request.url;
    const path = rawPath(href);
    // Most requests (a key's GET or PUT) have no query: no URL object for them.
    const url = href.includes("?") ? new URL(href) : undefined;
    const routeKey = path.startsWith("/kv/") ? "/kv/" : path;
    const allowed = ROUTES[routeKey];
    if (allowed === undefined) {
      throw new HttpApiError(404, "not-found", `no route ${path}`);
    }
    const origin = options.corsOrigins && allowedOrigin(request, options.corsOrigins);
    if (
      origin && request.method === "OPTIONS" &&
      request.headers.has("access-control-request-method")
    ) {
      return preflightResponse(origin, allowed);
    }
    if (!allowed.includes(request.method)) {
      throw new HttpApiError(
        405,
        "method-not-allowed",
        `${request.method} is not allowed on ${routeKey === "/kv/" ? "/kv/{key}" : path}`,
        { allow: allowed },
        { Allow: allowed.join(", ") },
      );
    }
    if (path === "/healthz") return healthz();
    authorize(request);
    switch (routeKey) {
      case "/kv/":
        return keyRoute(request, url, decodeKey(path.slice(4)));
      case "/kv": {
        const u = url ?? new URL(href);
        return u.searchParams.has("watch") ? watch(request, u) : list(request, u);
      }
      case "/status":
        return json(200, statusBody(node.status()));
      case "/metrics":
        return metrics();
      default:
        return leaderOnly(request, snapshot);
    }
  };

  // ---- auth, routing to the leader ----------------------------------------------------------

  const authorize = (request: Request) => {
    if (options.token === undefined) return;
    const given = request.headers.get("authorization") ?? "";
    if (!sameText(given, `Bearer ${options.token}`)) {
      throw new HttpApiError(
        401,
        "unauthorized",
        given === "" ? "a bearer token is required" : "the bearer token is wrong",
        {},
        { "WWW-Authenticate": 'Bearer realm="floe"' },
      );
    }
  };

  const forward = (request: Request, body?: Uint8Array): Promise<Response> => {
    if (request.headers.has(FLOE_FORWARDED)) {
      const from = request.headers.get(FLOE_FORWARDED);
      throw unavailable(
        "no-leader",
        `${node.id} received a request forwarded by ${from} but does not lead`,
        retryAfter,
        leaderDetail(),
      );
    }
    const leader = node.status().leader;
    if (!leader || leader === node.id) {
      throw unavailable("no-leader", "no leader is known; try again shortly", retryAfter);
    }
    const base = options.leaderUrl?.(leader);
    if (base === undefined) {
      throw unavailable(
        "no-leader",
        `the leader is ${leader}, whose address this node does not know`,
        retryAfter,
        { leader },
      );
    }
    return forwardRequest(request, {
      target: forwardTarget(request.url),
      selfId: node.id,
      leaderId: leader,
      leaderUrl: base,
      fetch: doFetch,
      timeoutMs,
      retryAfterSeconds: retryAfter,
      body,
    });
  };

  // Served here when this node leads; forwarded otherwise. A leadership lost between the check
  // and the node's answer (NotLeaderError: nothing was appended or read) is forwarded too.
  const leaderOnly = async (
    request: Request,
    serve: () => Promise<Response>,
    body?: Uint8Array,
  ): Promise<Response> => {
    if (node.role !== "leader") return forward(request, body);
    try {
      return await serve();
    } catch (e) {
      if (e instanceof NotLeaderError && !request.headers.has(FLOE_FORWARDED)) {
        return forward(request, body);
      }
      throw e;
    }
  };

  const leaderDetail = () => {
    const leader = node.status().leader;
    return leader ? { leader } : {};
  };

  // One timer for every request waiting (see DeadlineQueue), not one each; it is cleared as
  // soon as no request waits, so nothing outlives the last request.
  const deadlines = new DeadlineQueue(new RealClock(), timeoutMs);
  const withTimeout = <T>(p: Promise<T>, what: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = deadlines.add(() =>
        reject(new HttpApiError(504, "timeout", `${what} did not finish within ${timeoutMs} ms`))
      );
      p.then((value) => {
        deadlines.cancel(id);
        resolve(value);
      }, (error) => {
        deadlines.cancel(id);
        reject(error);
      });
    });

  // ---- reads ---------------------------------------------------------------------------------

  const read = async (request: Request, url: URL | undefined, query: KvQuery) => {
    const consistency = url?.searchParams.get("consistency") ?? "linearizable";
    const run = async (opts: ReadOptions): Promise<KvQueryResult> => {
      if (opts.consistency === "linearizable") {
        // The node's barrier, then the state machine read in place: no query encoding.
        validateKvQuery(query, kv.limits);
        await withTimeout(node.barrier(), "the read");
        return kv.answer(query);
      }
      const out = await withTimeout(node.read(encodeKvQuery(query, kv.limits), opts), "the read");
      if (out === undefined) throw new Error("the state machine answered nothing");
      return decodeKvQueryResult(out);
    };
    if (consistency === "stale") {
      const max = url?.searchParams.get("max_staleness_ms") ?? null;
      const opts: ReadOptions = max === null
        ? { consistency: "stale" }
        : { consistency: "stale", maxStalenessMs: parseUint(max, "max_staleness_ms") };
      return { local: true, result: await run(opts) } as const;
    }
    if (consistency !== "linearizable") {
      throw new HttpApiError(
        400,
        "bad-request",
        `consistency must be linearizable or stale, got "${consistency}"`,
      );
    }
    if (node.role !== "leader") return { local: false, response: await forward(request) } as const;
    try {
      return { local: true, result: await run({ consistency: "linearizable" }) } as const;
    } catch (e) {
      if (e instanceof NotLeaderError && !request.headers.has(FLOE_FORWARDED)) {
        return { local: false, response: await forward(request) } as const;
      }
      throw e;
    }
  };

  const getKey = async (
    request: Request,
    url: URL | undefined,
    key: string,
  ): Promise<Response> => {
    const r = await read(request, url, { op: "get", key });
    if (!r.local) return r.response;
    const entry = r.result.op === "get" ? r.result.entry : undefined;
    if (entry === undefined) {
      throw new HttpApiError(404, "not-found", `no key ${JSON.stringify(key)}`, {
        key,
        appliedIndex: r.result.appliedIndex,
      });
    }
    const headers = entryHeaders(entry);
    if (etagMatches(request.headers.get("if-none-match"), entry.revision)) {
      return new Response(null, { status: 304, headers });
    }
    headers.set("Content-Type", "application/octet-stream");
    return new Response(entry.value as Uint8Array<ArrayBuffer>, { status: 200, headers });
  };

  const list = async (request: Request, url: URL): Promise<Response> => {
    const prefix = url.searchParams.get("prefix") ?? "";
    const from = url.searchParams.get("from") ?? undefined;
    const limitText = url.searchParams.get("limit");
    const limit = limitText === null ? undefined : parseUint(limitText, "limit");
    const query = validateKvQuery({ op: "range", prefix, from, limit }, kv.limits);
    const r = await read(request, url, query);
    if (!r.local) return r.response;
    if (r.result.op !== "range") throw new Error(`a range query answered ${r.result.op}`);
    return json(200, {
      entries: r.result.entries.map((e) => ({
        key: e.key,
        value: bytesToBase64(e.value),
        revision: e.revision,
        createRevision: e.createRevision,
        version: e.version,
      })),
      ...(r.result.next !== undefined && { next: r.result.next }),
      appliedIndex: r.result.appliedIndex,
    });
  };

  const watch = (request: Request, url: URL): Response => {
    const prefix = url.searchParams.get("prefix") ?? "";
    const lastEventId = request.headers.get("last-event-id");
    const fromText = url.searchParams.get("from");
    let from = kv.appliedIndex + 1;
    if (lastEventId !== null && lastEventId.trim() !== "") {
      from = parseUint(lastEventId.trim(), "Last-Event-ID") + 1;
    } else if (fromText !== null) {
      from = parseUint(fromText, "from");
    }
    validateKvQuery({ op: "changes", prefix, fromRevision: from }, kv.limits);
    const stream = openWatchStream({
      kv,
      prefix,
      from,
      // A client that goes away cancels the stream; the request's signal is not needed.
      signal: closing.signal,
      keepAliveMs,
      maxBufferedBytes: watchBufferBytes,
    });
    return new Response(stream, {
      status: 200,
      headers: {
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",
        [FLOE_WATCH_FROM]: String(from),
      },
    });
  };

  // ---- writes --------------------------------------------------------------------------------

  const keyRoute = (request: Request, url: URL | undefined, key: string): Promise<Response> => {
    if (request.method === "GET") return getKey(request, url, key);
    if (node.role !== "leader") {
      // The body streams to the leader, which enforces the limit; a declared excess is refused here.
      const declared = Number(request.headers.get("content-length") ?? 0);
      if (declared > kv.limits.maxValueBytes) {
        throw new HttpApiError(
          413,
          "too-large",
          `the body exceeds the limit of ${kv.limits.maxValueBytes} bytes`,
          { limit: kv.limits.maxValueBytes },
        );
      }
      return forward(request);
    }
    return write(request, key);
  };

  const write = async (request: Request, key: string): Promise<Response> => {
    const session = readSession(request.headers);
    const meta = { ...(session && { session }), ts: now() };
    const ifMatch = request.headers.get("if-match");
    const ifNoneMatch = request.headers.get("if-none-match");
    let command: KvCommand;
    let body: Uint8Array | undefined;
    switch (request.method) {
      case "PUT": {
        const condition = readCondition(ifMatch, ifNoneMatch, true);
        body = await readBodyLimited(request, kv.limits.maxValueBytes);
        command = { op: "put", key, value: body, ...(condition && { condition }), ...meta };
        break;
      }
      case "POST":
        if (ifMatch !== null || ifNoneMatch !== null) {
          throw new HttpApiError(400, "bad-request", "an append takes no If-Match/If-None-Match");
        }
        body = await readBodyLimited(request, kv.limits.maxValueBytes);
        command = { op: "append", key, value: body, ...meta };
        break;
      default: {
        const condition = readCondition(ifMatch, ifNoneMatch, false);
        command = { op: "delete", key, ...(condition && { condition }), ...meta };
      }
    }
    // Encoding validates (with the rules every replica's apply uses).
    const encoded = encodeKvCommand(command, kv.limits);
    return leaderOnly(request, async () => {
      const out = await withTimeout(node.propose(encoded), "the write");
      if (out === undefined) throw new Error("the state machine answered nothing");
      return writeResponse(decodeKvWriteResult(out), command.op);
    }, body);
  };

  // ---- node routes ---------------------------------------------------------------------------

  const healthz = (): Response => {
    const s = node.status();
    if (!s.running) throw unavailable("not-ready", "the node is stopped", retryAfter);
    if (!s.leader) throw unavailable("no-leader", "no leader is known", retryAfter);
    return new Response("ok\n", { status: 200, headers: { "Content-Type": "text/plain" } });
  };

  const snapshot = async (): Promise<Response> => {
    // A linearizable read first: the state below then holds every write acknowledged before.
    await withTimeout(
      node.read(encodeKvQuery({ op: "get", key: BARRIER_KEY }, kv.limits)),
      "the snapshot's read barrier",
    );
    const data = kv.snapshot();
    const index = kv.appliedIndex;
    const term = node.logTerm(index) ?? 0;
    return new Response(data as Uint8Array<ArrayBuffer>, {
      status: 200,
      headers: {
        "Content-Type": "application/octet-stream",
        [FLOE_SNAPSHOT_INDEX]: String(index),
        [FLOE_SNAPSHOT_TERM]: String(term),
      },
    });
  };

  const metrics = (): Response => {
    const s = node.status();
    const text = new PrometheusText()
      .gauge("floe_has_leader", "1 when this node knows a leader", s.leader ? 1 : 0)
      .gauge("floe_is_leader", "1 when this node is the leader", s.role === "leader" ? 1 : 0)
      .gauge("floe_term", "current Raft term", s.term)
      .gauge("floe_commit_index", "highest committed log index", s.commit)
      .gauge("floe_applied_index", "highest applied log index", s.applied)
      .gauge("floe_last_index", "last log index", s.lastIndex)
      .gauge("floe_snapshot_index", "log index covered by the latest snapshot", s.snapshotIndex);
    const m = node.metrics();
    text
      .counter("floe_leader_changes_total", "times the known leader changed", m.leaderChanges)
      .counter(
        "floe_proposals_committed_total",
        "proposals applied",
        m.proposalsCommitted,
      )
      .counter("floe_proposals_failed_total", "proposals that failed", m.proposalsFailed)
      .histogram(
        "floe_save_duration_seconds",
        "time to persist one batch to storage",
        m.saveDuration,
      )
      .histogram(
        "floe_apply_duration_seconds",
        "time to apply one batch of committed entries",
        m.applyDuration,
      );
    text.gauge(
      "floe_peer_lag",
      "entries a peer's log is behind the leader's (leader only)",
      peerRows(s).map((p) => [{ peer: p.id }, p.lag] as [Record<string, string>, number]),
    )
      .gauge("floe_kv_keys", "keys in the store", kv.keyCount)
      .gauge("floe_kv_sessions", "live client sessions", kv.sessionCount)
      .gauge("floe_kv_watchers", "open watches", kv.watchCount)
      .counter(
        "floe_http_responses_total",
        "HTTP responses by status code",
        [...responses].sort((a, b) => a[0] - b[0]).map(([code, n]) => [{ code: String(code) }, n]),
      );
    if (options.transportMetrics) addTransportMetrics(text, options.transportMetrics());
    return new Response(text.toString(), {
      status: 200,
      headers: { "Content-Type": PROMETHEUS_CONTENT_TYPE },
    });
  };

  // ---- the handler ---------------------------------------------------------------------------

  const handler = async (request: Request): Promise<Response> => {
    let response: Response;
    try {
      response = await route(request);
    } catch (e) {
      response = errorResponse(toHttpApiError(e, retryAfter));
    }
    const leader = node.leader;
    const origin = options.corsOrigins && allowedOrigin(request, options.corsOrigins);
    if (origin) addCorsHeaders(response, origin);
    const headers = response.headers;
    headers.set(FLOE_NODE, node.id);
    if (leader && !headers.has(FLOE_LEADER)) headers.set(FLOE_LEADER, leader);
    responses.set(response.status, (responses.get(response.status) ?? 0) + 1);
    return response;
  };
  return Object.assign(handler, { close: () => closing.abort() });
}

// ---- request parsing -------------------------------------------------------------------------

// fetch resolves "." and ".." segments of the URL it is given: a key's slashes are encoded so
// the leader gets the same key. The keys "." and ".." themselves cannot be sent at all.
function forwardTarget(href: string): string {
  const target = rawTarget(href);
  const path = rawPath(href);
  if (!path.startsWith("/kv/")) return target;
  const key = decodeKey(path.slice(4));
  if (key === "." || key === "..") {
    throw new HttpApiError(
      400,
      "bad-request",
      `the key "${key}" cannot be forwarded; ask the leader`,
    );
  }
  return `/kv/${encodeURIComponent(key)}${target.slice(path.length)}`;
}

function decodeKey(raw: string): string {
  let key: string;
  try {
    key = decodeURIComponent(raw);
  } catch {
    throw new HttpApiError(400, "bad-request", "the key is not valid percent-encoded UTF-8");
  }
  if (key === "") throw new HttpApiError(400, "bad-request", "the key is empty");
  return key;
}

function parseUint(text: string, name: string): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new HttpApiError(400, "bad-request", `${name} must be a non-negative integer`);
  }
  return Number(text);
}

function readSession(headers: Headers): KvSession | undefined {
  const client = headers.get(FLOE_CLIENT_ID);
  const seq = headers.get(FLOE_SEQUENCE);
  if (client === null && seq === null) return undefined;
  if (client === null || seq === null) {
    throw new HttpApiError(
      400,
      "bad-request",
      `${FLOE_CLIENT_ID} and ${FLOE_SEQUENCE} go together`,
    );
  }
  return { client, seq: parseUint(seq.trim(), FLOE_SEQUENCE) };
}

function readCondition(
  ifMatch: string | null,
  ifNoneMatch: string | null,
  allowAbsent: boolean,
): KvCondition | undefined {
  if (ifMatch !== null && ifNoneMatch !== null) {
    throw new HttpApiError(400, "bad-request", "use If-Match or If-None-Match, not both");
  }
  if (ifNoneMatch !== null) {
    if (!allowAbsent || ifNoneMatch.trim() !== "*") {
      throw new HttpApiError(
        400,
        "bad-request",
        "If-None-Match on a write must be * (create only), on PUT",
      );
    }
    return { absent: true };
  }
  if (ifMatch === null) return undefined;
  const revision = parseEtag(ifMatch);
  if (revision === undefined) {
    throw new HttpApiError(
      400,
      "bad-request",
      `If-Match must be one revision as an entity tag, like "42"; got ${ifMatch}`,
    );
  }
  return { revision };
}

function parseEtag(text: string): number | undefined {
  const m = /^\s*(?:W\/)?"?(\d+)"?\s*$/.exec(text);
  if (!m || !Number.isSafeInteger(Number(m[1]))) return undefined;
  return Number(m[1]);
}

function etagMatches(header: string | null, revision: number): boolean {
  if (header === null) return false;
  return header.split(",").some((t) => t.trim() === "*" || parseEtag(t) === revision);
}

// Compares without stopping at the first difference, so timing does not reveal the token.
function sameText(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < y.length; i++) diff |= (x[i] ?? 0) ^ y[i];
  return diff === 0;
}

// ---- responses -------------------------------------------------------------------------------

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  // A plain record: cheaper for the server to take than a Headers object built up by set().
  const h: Record<string, string> = {
    ...headers,
    "Content-Type": "application/json",
    "Cache-Control": "no-store",
  };
  return new Response(JSON.stringify(body), { status, headers: h });
}

function entryHeaders(entry: KvEntry): Headers {
  return new Headers({
    "ETag": `"${entry.revision}"`,
    "Cache-Control": "no-store",
    [FLOE_REVISION]: String(entry.revision),
    [FLOE_CREATE_REVISION]: String(entry.createRevision),
    [FLOE_VERSION]: String(entry.version),
  });
}

function writeResponse(
  r: ReturnType<typeof decodeKvWriteResult>,
  op: KvCommand["op"],
): Response {
  switch (r.status) {
    case "ok": {
      const headers: Record<string, string> = { [FLOE_REVISION]: String(r.revision) };
      if (op !== "delete") headers.ETag = `"${r.revision}"`;
      return json(200, {
        revision: r.revision,
        prevRevision: r.prevRevision,
        createRevision: r.createRevision,
        version: r.version,
      }, headers);
    }
    case "failed-condition":
      throw new HttpApiError(
        412,
        "failed-condition",
        `the condition did not hold; the key's revision is ${r.revision}`,
        { revision: r.revision },
        { ETag: `"${r.revision}"` },
      );
    case "stale-sequence":
      throw new HttpApiError(
        409,
        "stale-sequence",
        `the sequence number is below the last one applied for this client (${r.lastSeq})`,
        { lastSeq: r.lastSeq },
      );
    case "invalid":
      throw r.reason === "too-large"
        ? new HttpApiError(413, "too-large", r.message, { field: r.field })
        : new HttpApiError(400, "bad-request", r.message, { field: r.field });
  }
}

interface PeerRow {
  readonly id: NodeId;
  readonly match: number;
  readonly next: number;
  readonly state: string;
  readonly lag: number;
}

function peerRows(s: NodeStatus): PeerRow[] {
  if (!s.progress) return [];
  return Object.entries(s.progress)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([id, p]) => ({
      id,
      match: p.match,
      next: p.next,
      state: p.state,
      lag: Math.max(0, s.lastIndex - p.match),
    }));
}

function statusBody(s: NodeStatus): Record<string, unknown> {
  return {
    id: s.id,
    role: s.role,
    term: s.term,
    leader: s.leader || null,
    commit: s.commit,
    applied: s.applied,
    lastIndex: s.lastIndex,
    snapshotIndex: s.snapshotIndex,
    running: s.running,
    peers: peerRows(s),
  };
}

function addTransportMetrics(text: PrometheusText, t: TransportMetrics): void {
  const peers = Object.entries(t.peers);
  const per = (pick: (p: TransportMetrics["peers"][string]) => number) =>
    peers.map(([id, p]) => [{ peer: id }, pick(p)] as [Record<string, string>, number]);
  text
    .gauge(
      "floe_peer_connected",
      "1 while the connection to the peer is open",
      per((p) => +p.connected),
    )
    .counter(
      "floe_peer_reconnects_total",
      "connections to the peer after the first",
      per((p) => p.reconnects),
    )
    .counter("floe_peer_frames_sent_total", "frames sent to the peer", per((p) => p.framesOut))
    .counter("floe_peer_bytes_sent_total", "bytes sent to the peer", per((p) => p.bytesOut))
    .counter(
      "floe_peer_frames_received_total",
      "frames received from the peer",
      per((p) => p.framesIn),
    )
    .counter(
      "floe_peer_bytes_received_total",
      "bytes received from the peer",
      per((p) => p.bytesIn),
    )
    .counter(
      "floe_peer_drops_total",
      "messages to the peer dropped (queue full or too old)",
      per((p) => p.drops),
    )
    .counter(
      "floe_peer_decode_errors_total",
      "frames from the peer refused as malformed",
      per((p) => p.decodeErrors),
    )
    .counter(
      "floe_transport_decode_errors_total",
      "frames refused as malformed, all sockets",
      t.decodeErrors,
    )
    .counter(
      "floe_transport_auth_failures_total",
      "refused handshakes, all sockets",
      t.authFailures,
    )
    .gauge(
      "floe_transport_open_connections",
      "peer connections open or opening",
      t.openConnections,
    );
}
