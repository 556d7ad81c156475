/**
 * The request target (path and query) as the client sent it. `new URL(...)` resolves "." and
 * ".." path segments, which in a key are plain text; a server hands the target over
 * unnormalized in `Request.url`, so it is read from that string.
 *
 * @module
 */

/** The path and query of `href`, without any fragment. */
export function rawTarget(href: string): string {
  const start = href.indexOf("/", href.indexOf("//") + 2);
  if (start < 0) return "/";
  const hash = href.indexOf("#", start);
  return hash < 0 ? href.slice(start) : href.slice(start, hash);
}

/** The path of `href`, unnormalized. */
export function rawPath(href: string): string {
  const target = rawTarget(href);
  const query = target.indexOf("?");
  return query < 0 ? target : target.slice(0, query);
}
