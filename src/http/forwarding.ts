/**
 * Passing a request a follower cannot serve on to the leader's HTTP API, and the leader's answer
 * back, both bodies streamed (a large value or snapshot is never held whole here). The forwarded
 * request carries `Floe-Forwarded: <this node>`, so a node that receives one while it does not
 * lead answers 503 instead of forwarding again.
 *
 * @module
 */
import { FLOE_FORWARDED, FLOE_NODE } from "./floe_headers.ts";
import { HttpApiError, unavailable } from "./http_errors.ts";
import { rawTarget } from "./request_target.ts";

/** How to forward. */
export interface ForwardOptions {
  /** This node's id (the `Floe-Forwarded` value, and the response's `Floe-Node`). */
  readonly selfId: string;
  /** The leader's id. */
  readonly leaderId: string;
  /** The leader's HTTP base URL (`http://host:port`, any path prefix kept). */
  readonly leaderUrl: string;
  /** `fetch` to use. */
  readonly fetch: typeof fetch;
  /** How long to wait for the leader's response headers, ms. */
  readonly timeoutMs: number;
  /** `Retry-After` of a 503 when the leader cannot be reached, seconds. */
  readonly retryAfterSeconds: number;
  /** The body to send instead of the request's own (when that was read already). */
  readonly body?: Uint8Array;
  /** Path and query to request from the leader. Default: the request's own. */
  readonly target?: string;
}

// Connection-level headers describe one hop only (RFC 9110 §7.6.1); the length and encoding
// change when the body is re-streamed.
const HOP_HEADERS = [
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
  "accept-encoding",
  "content-encoding",
];

/**
 * The leader's response to `request`, passed on.
 *
 * @throws {HttpApiError} 503 no-leader when the leader cannot be reached, 504 timeout when it
 * does not answer in time (a write may then have happened).
 */
export async function forwardRequest(request: Request, options: ForwardOptions): Promise<Response> {
  const target = options.leaderUrl.replace(/\/+$/, "") + (options.target ?? rawTarget(request.url));
  const headers = new Headers(request.headers);
  for (const h of HOP_HEADERS) headers.delete(h);
  headers.set(FLOE_FORWARDED, options.selfId);
  headers.set("Accept-Encoding", "identity");
  // The request's own signal is left alone (Deno.serve aborts it after every response): a
  // client that goes away cancels the response body, which cancels the upstream one.
  const abort = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    abort.abort(new DOMException("the leader did not answer in time", "TimeoutError"));
  }, options.timeoutMs);
  const hasBody = request.method !== "GET" && request.method !== "HEAD";
  const init: RequestInit & { duplex?: "half" } = {
    method: request.method,
    headers,
    signal: abort.signal,
    redirect: "manual",
  };
  if (hasBody) {
    if (options.body !== undefined) init.body = options.body as Uint8Array<ArrayBuffer>;
    else if (request.body !== null) {
      init.body = request.body;
      init.duplex = "half"; // Node's fetch requires it for a stream body
    }
  }
  let upstream: Response;
  try {
    upstream = await options.fetch(target, init);
  } catch (e) {
    if (timedOut) {
      throw new HttpApiError(
        504,
        "timeout",
        `the leader ${options.leaderId} did not answer within ${options.timeoutMs} ms`,
      );
    }
    throw unavailable(
      "no-leader",
      `the leader ${options.leaderId} cannot be reached: ${e instanceof Error ? e.message : e}`,
      options.retryAfterSeconds,
      { leader: options.leaderId },
    );
  } finally {
    clearTimeout(timer);
  }
  const out = new Headers(upstream.headers);
  for (const h of HOP_HEADERS) out.delete(h);
  out.set(FLOE_NODE, options.selfId);
  return new Response(upstream.body, {
    status: upstream.status,
    statusText: upstream.statusText,
    headers: out,
  });
}
