/**
 * The one file that imports third-party packages every runtime floe targets (Deno, browsers,
 * Node) can load. Everything else imports them from here, so swapping or pinning a package is a
 * change in one place.
 *
 * cbor-x comes in through its `cbor-x/index-no-eval` entry point, not the package root:
 *
 * - it is pure JavaScript and never builds decoders with `new Function`, so it also runs where
 *   `eval` is forbidden (a browser page with a strict Content-Security-Policy);
 * - it carries the same type declarations as the root (`index.d.ts`);
 * - it needs no permission: the root entry reads `process.env` (an `--allow-env` prompt under
 *   Deno) and may load the native `cbor-extract` add-on, which has crashed Deno.
 *
 * idb-keyval is only used by the browser's storage adapter, but it loads anywhere: it touches
 * `indexedDB` only when a store is used, so a server that never opens one pays nothing.
 *
 * @module
 */

export { Decoder, Encoder } from "cbor-x/index-no-eval";
export type { Options as CborOptions } from "cbor-x/index-no-eval";

/**
 * Plain CBOR, for the wire codec, the handshake and the KV encoding alike: records, structured
 * clone, bundled strings and packing each keep state across calls or add tags, which would make
 * the bytes depend on what was encoded before (and other peers could not decode them).
 */
export const PLAIN_CBOR_OPTIONS = {
  useRecords: false,
  structuredClone: false,
  bundleStrings: false,
  pack: false,
  mapsAsObjects: true,
  tagUint8Array: false,
  variableMapSize: true,
} as const;
export { promisifyRequest } from "idb-keyval";
