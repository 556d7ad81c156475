/**
 * Reading a request body with a size limit: a body past the limit is refused as soon as its
 * `Content-Length` says so or, without one, as soon as the bytes read pass it — never buffered
 * whole first.
 *
 * @module
 */
import { HttpApiError } from "./http_errors.ts";

/**
 * The whole body of `request`, at most `maxBytes` of it.
 *
 * @throws {HttpApiError} 413 too-large past `maxBytes`; 400 when `Content-Length` is malformed or
 * the body ends early.
 */
export async function readBodyLimited(request: Request, maxBytes: number): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null) {
    if (!/^\d+$/.test(declared.trim())) {
      throw new HttpApiError(400, "bad-request", `Content-Length "${declared}" is not a number`);
    }
    if (Number(declared) > maxBytes) throw tooLarge(maxBytes);
  }
  if (request.body === null) return new Uint8Array(0);
  if (declared !== null) {
    // The length is known and within the limit: the server's whole-body read is the fast path
    // (the server enforces the declared length).
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await request.arrayBuffer());
    } catch (e) {
      throw new HttpApiError(400, "bad-request", `reading the body failed: ${e}`);
    }
    if (bytes.length > maxBytes) throw tooLarge(maxBytes);
    return bytes;
  }
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge(maxBytes);
      }
      chunks.push(value);
    }
  } catch (e) {
    if (e instanceof HttpApiError) throw e;
    throw new HttpApiError(400, "bad-request", `reading the body failed: ${e}`);
  } finally {
    reader.releaseLock();
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function tooLarge(maxBytes: number): HttpApiError {
  return new HttpApiError(413, "too-large", `the body exceeds the limit of ${maxBytes} bytes`, {
    limit: maxBytes,
  });
}
