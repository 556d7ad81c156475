/**
 * The HTTP API's errors: one class the handlers throw (`HttpApiError`), the JSON body every error
 * response has, and the mapping from what the node and the KV store throw to a status and a code.
 *
 * Every error response is JSON: `{"error": {"code": "...", "message": "...", ...details}}`.
 *
 * | status | code              | when                                                        |
 * | ------ | ----------------- | ----------------------------------------------------------- |
 * | 400    | bad-request       | malformed input (path, query, headers, body)                |
 * | 401    | unauthorized      | missing or wrong bearer token                               |
 * | 404    | not-found         | no such key or route                                        |
 * | 405    | method-not-allowed| with an `Allow` header                                      |
 * | 409    | stale-sequence    | a write's session seq is below its client's last (`lastSeq`)|
 * | 412    | failed-condition  | `If-Match`/`If-None-Match` did not hold (`revision`)        |
 * | 413    | too-large         | a key, value or command over its limit                      |
 * | 500    | internal          | a bug                                                       |
 * | 503    | no-leader, busy, not-ready | retry later (`Retry-After`, seconds)               |
 * | 504    | timeout           | the node did not finish in time; the outcome is unknown     |
 *
 * @module
 */
import { NotLeaderError } from "../core/errors.ts";
import { KvCommandError } from "../kv/kv_errors.ts";
import { QueueOverflowError } from "../node/async_queue.ts";
import {
  CommandTooLargeError,
  NodeBusyError,
  ProposalTimeoutError,
  ReadTimeoutError,
  StaleReadError,
} from "../node/node_errors.ts";
import {
  NodeStoppedError,
  ProposalLostError,
  ProposalOutcomeUnknownError,
} from "../node/raft_node.ts";

/** The machine-readable codes of the API's errors. */
export type HttpErrorCode =
  | "bad-request"
  | "unauthorized"
  | "not-found"
  | "method-not-allowed"
  | "stale-sequence"
  | "failed-condition"
  | "too-large"
  | "internal"
  | "no-leader"
  | "busy"
  | "not-ready"
  | "timeout";

/** An error the API answers with: status, code, message, and extra fields for the body. */
export class HttpApiError extends Error {
  /**
   * `status`: the HTTP status; `code`: the body's `code`; `details`: more fields of the body's
   * `error` object; `headers`: response headers to add (`Retry-After`, `Allow`, ...).
   */
  constructor(
    readonly status: number,
    readonly code: HttpErrorCode,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = "HttpApiError";
  }
}

/** A 503 that tells the client when to try again. */
export function unavailable(
  code: "no-leader" | "busy" | "not-ready",
  message: string,
  retryAfterSeconds: number,
  details: Readonly<Record<string, unknown>> = {},
): HttpApiError {
  return new HttpApiError(503, code, message, details, {
    "Retry-After": String(Math.max(0, Math.ceil(retryAfterSeconds))),
  });
}

/** The JSON response for `error`. */
export function errorResponse(error: HttpApiError): Response {
  const body = JSON.stringify({
    error: { ...error.details, code: error.code, message: error.message },
  });
  const headers = new Headers(error.headers);
  headers.set("Content-Type", "application/json");
  headers.set("Cache-Control", "no-store");
  return new Response(body, { status: error.status, headers });
}

/**
 * What the API answers for an exception thrown while serving: the node's and the KV store's
 * errors get their status; anything unknown is a 500.
 */
export function toHttpApiError(error: unknown, retryAfterSeconds: number): HttpApiError {
  if (error instanceof HttpApiError) return error;
  if (error instanceof KvCommandError) {
    return error.reason === "too-large"
      ? new HttpApiError(413, "too-large", error.message, { field: error.field })
      : new HttpApiError(400, "bad-request", error.message, { field: error.field });
  }
  if (error instanceof NotLeaderError) {
    return unavailable("no-leader", error.message, retryAfterSeconds, {
      ...(error.leaderHint && { leader: error.leaderHint }),
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof ProposalTimeoutError || error instanceof ReadTimeoutError) {
    return new HttpApiError(504, "timeout", message);
  }
  // Applied or not, nobody here can tell; a retry with the same session is exactly-once.
  if (error instanceof ProposalOutcomeUnknownError) {
    return new HttpApiError(504, "timeout", message);
  }
  if (error instanceof CommandTooLargeError) return new HttpApiError(413, "too-large", message);
  if (error instanceof NodeBusyError || error instanceof QueueOverflowError) {
    return unavailable("busy", message, retryAfterSeconds);
  }
  if (error instanceof StaleReadError || error instanceof NodeStoppedError) {
    return unavailable("not-ready", message, retryAfterSeconds);
  }
  // Not applied (another leader's entry took its place): safe to retry elsewhere.
  if (error instanceof ProposalLostError) {
    return unavailable("no-leader", message, retryAfterSeconds);
  }
  return new HttpApiError(500, "internal", message);
}
