/**
 * Cross-origin access (CORS) for the HTTP API, so a web page on another origin can use
 * `FloeClient`: preflights are answered, and responses to allowed origins say so and expose
 * floe's headers to the page's script.
 *
 * @module
 */
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
} from "./floe_headers.ts";

/** Origins allowed to call the API from a browser: a list, or "*" for any. */
export type CorsOrigins = readonly string[] | "*";

const ALLOW_HEADERS = [
  "Authorization",
  "Content-Type",
  "If-Match",
  "If-None-Match",
  "Last-Event-ID",
  FLOE_CLIENT_ID,
  FLOE_SEQUENCE,
].join(", ");

const EXPOSE_HEADERS = [
  "ETag",
  "Retry-After",
  FLOE_NODE,
  FLOE_LEADER,
  FLOE_REVISION,
  FLOE_CREATE_REVISION,
  FLOE_VERSION,
  FLOE_SNAPSHOT_INDEX,
  FLOE_SNAPSHOT_TERM,
  FLOE_WATCH_FROM,
].join(", ");

/** The origin of `request` when `origins` allows it, else undefined. */
export function allowedOrigin(request: Request, origins: CorsOrigins): string | undefined {
  const origin = request.headers.get("origin");
  if (origin === null) return undefined;
  return origins === "*" || origins.includes(origin) ? origin : undefined;
}

/** The answer to a preflight (`OPTIONS` with `Access-Control-Request-Method`) from `origin`. */
export function preflightResponse(origin: string, methods: readonly string[]): Response {
  return new Response(null, {
    status: 204,
    headers: {
      "Access-Control-Allow-Origin": origin,
      "Access-Control-Allow-Methods": methods.join(", "),
      "Access-Control-Allow-Headers": ALLOW_HEADERS,
      "Access-Control-Max-Age": "600",
      "Vary": "Origin",
    },
  });
}

/** Mark `response` readable by a page from `origin`. */
export function addCorsHeaders(response: Response, origin: string): void {
  response.headers.set("Access-Control-Allow-Origin", origin);
  response.headers.set("Access-Control-Expose-Headers", EXPOSE_HEADERS);
  response.headers.append("Vary", "Origin");
}
