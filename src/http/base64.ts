/**
 * Standard base64 (RFC 4648 §4, with padding) over `btoa`/`atob`, which every runtime floe
 * targets has: how the HTTP API carries binary values inside JSON.
 *
 * @module
 */

// String.fromCharCode takes its arguments on the stack; chunks keep large values within it.
const CHUNK = 0x8000;

/** `bytes` as base64 text. */
export function bytesToBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += CHUNK) {
    binary += String.fromCharCode(...bytes.subarray(i, i + CHUNK));
  }
  return btoa(binary);
}

/**
 * The bytes base64 `text` stands for.
 *
 * @throws {SyntaxError} when `text` is not base64.
 */
export function base64ToBytes(text: string): Uint8Array {
  let binary: string;
  try {
    binary = atob(text);
  } catch {
    throw new SyntaxError("not base64");
  }
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}
