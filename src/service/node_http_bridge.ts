/**
 * Serve a fetch-style handler (`(Request) => Promise<Response>`, such as the node's HTTP API)
 * from `node:http`, so the same handler runs under Node as under `Deno.serve`. Node 20 has
 * `Request`, `Response` and `ReadableStream` built in; what is missing is the glue: a Node request
 * becomes a `Request` (its body read first, up to a limit), and a `Response`'s body is written
 * out chunk by chunk as it comes, so an event stream (a watch) reaches the client at once.
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from "node:http";

/** A fetch-style request handler. */
export type FetchHandler = (request: Request) => Response | Promise<Response>;

/** How `toNodeListener` reads requests. */
export interface NodeBridgeOptions {
  /**
   * Largest request body read, in bytes; a bigger one gets 413 without reaching the handler.
   * Default 64 MiB (the handler applies its own, smaller limits).
   */
  readonly maxBodyBytes?: number;
  /** Called with a handler's exception (the client gets a 500). Default: `console.error`. */
  readonly onError?: (error: unknown) => void;
}

const DEFAULT_MAX_BODY = 64 * 1024 * 1024;

/**
 * A `node:http` request listener that runs `handler`. When the client goes away, the `Request`'s
 * signal aborts and the response body is cancelled (ending a watch stream on the server side too).
 */
export function toNodeListener(
  handler: FetchHandler,
  options: NodeBridgeOptions = {},
): (request: IncomingMessage, response: ServerResponse) => void {
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const onError = options.onError ?? ((e: unknown) => console.error(e));
  return (req, res) => {
    respond(handler, req, res, maxBody).catch((e) => {
      onError(e);
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { code: "internal", message: "internal error" } }));
      } else res.destroy();
    });
  };
}

async function respond(
  handler: FetchHandler,
  req: IncomingMessage,
  res: ServerResponse,
  maxBody: number,
): Promise<void> {
  const method = req.method ?? "GET";
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > maxBody) return tooLarge(res, maxBody);
  const body = method === "GET" || method === "HEAD" ? undefined : await readBody(req, maxBody);
  if (body === null) return tooLarge(res, maxBody);
  const aborter = new AbortController();
  res.on("close", () => aborter.abort());
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
  }
  const host = req.headers.host ?? "localhost";
  const request = new Request(new URL(req.url ?? "/", `http://${host}`), {
    method,
    headers,
    body: body === undefined || body.length === 0 ? undefined : body,
    signal: aborter.signal,
  });
  const response = await handler(request);
  const out: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    out[name] = value;
  });
  const cookies = response.headers.getSetCookie?.() ?? [];
  if (cookies.length > 0) out["set-cookie"] = cookies;
  res.writeHead(response.status, response.statusText || undefined, out);
  if (response.body === null || method === "HEAD") {
    await response.body?.cancel();
    res.end();
    return;
  }
  const reader = response.body.getReader();
  const cancel = () => void reader.cancel().catch(() => {});
  res.on("close", cancel);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (res.destroyed) return;
      // Respect backpressure: a slow client must not make the server buffer a whole stream.
      if (!res.write(value)) await new Promise<void>((r) => res.once("drain", r).once("close", r));
    }
    res.end();
  } catch (e) {
    // The stream failed midway or was cancelled (client gone): nothing more can be said.
    if (!res.destroyed) res.destroy(e instanceof Error ? e : undefined);
  } finally {
    res.off("close", cancel);
  }
}

/** The body's bytes, or `null` when it passes `max`. */
async function readBody(
  req: IncomingMessage,
  max: number,
): Promise<Uint8Array<ArrayBuffer> | null> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req) {
    const bytes = chunk as Uint8Array;
    size += bytes.length;
    if (size > max) return null;
    parts.push(bytes);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function tooLarge(res: ServerResponse, max: number): void {
  res.writeHead(413, { "content-type": "application/json", connection: "close" });
  res.end(
    JSON.stringify({
      error: { code: "too-large", message: `request body over ${max} bytes` },
    }),
  );
}
