/**
 * The KV store's keys in order, for range listing: a list of sorted chunks, so an insert or a
 * delete moves at most one chunk's worth of keys (plus, rarely, the chunk list) instead of every
 * key after it, and a range starts with two binary searches.
 *
 * @module
 */

/**
 * Compare keys by Unicode code point, which is the byte order of their UTF-8 forms: the order
 * etcd and most stores use, so a listing sorts the same through any client. (JavaScript's `<`
 * compares UTF-16 code units and puts U+10000 and above before U+E000..U+FFFF.)
 */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      // Surrogates (D800..DFFF) stand for code points above every unit from E000 up: move them
      // above, and E000..FFFF down into the gap.
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x < y ? -1 : 1;
  }
  return a.length < b.length ? -1 : 1;
}

// A chunk splits in two when it grows past this, keeping inserts and deletes cheap while the
// chunk list stays short (a million keys make ~2,000 chunks).
const MAX_CHUNK = 1024;

/** A sorted set of keys (see `compareKeys`). */
export class SortedKeys {
  // Non-empty chunks, each sorted, every key of one below every key of the next.
  #chunks: string[][] = [];
  #size = 0;

  /** Build from keys already sorted and distinct. */
  static fromSorted(keys: readonly string[]): SortedKeys {
    const s = new SortedKeys();
    const half = MAX_CHUNK / 2;
    for (let i = 0; i < keys.length; i += half) s.#chunks.push(keys.slice(i, i + half));
    s.#size = keys.length;
    return s;
  }

  /** Number of keys. */
  get size(): number {
    return this.#size;
  }

  /** Add `key`, which must not be present. */
  insert(key: string): void {
    const chunks = this.#chunks;
    if (chunks.length === 0) {
      chunks.push([key]);
      this.#size = 1;
      return;
    }
    // The first chunk whose last key is ≥ key; past the end, the last chunk takes it.
    const ci = Math.min(this.#chunkFor(key), chunks.length - 1);
    const chunk = chunks[ci];
    chunk.splice(lowerBound(chunk, key), 0, key);
    this.#size++;
    if (chunk.length > MAX_CHUNK) chunks.splice(ci + 1, 0, chunk.splice(chunk.length >>> 1));
  }

  /** Remove `key`; returns whether it was present. */
  delete(key: string): boolean {
    const ci = this.#chunkFor(key);
    if (ci === this.#chunks.length) return false;
    const chunk = this.#chunks[ci];
    const i = lowerBound(chunk, key);
    if (chunk[i] !== key) return false;
    chunk.splice(i, 1);
    this.#size--;
    if (chunk.length === 0) this.#chunks.splice(ci, 1);
    return true;
  }

  /** Keys ≥ `start`, in order. Do not insert or delete while iterating. */
  *from(start: string): IterableIterator<string> {
    const chunks = this.#chunks;
    let ci = this.#chunkFor(start);
    if (ci === chunks.length) return;
    let i = lowerBound(chunks[ci], start);
    for (; ci < chunks.length; ci++, i = 0) {
      const chunk = chunks[ci];
      for (; i < chunk.length; i++) yield chunk[i];
    }
  }

  /** Every key, in order. */
  *[Symbol.iterator](): IterableIterator<string> {
    for (const chunk of this.#chunks) yield* chunk;
  }

  // Index of the first chunk whose last key is ≥ key (chunks.length when none is).
  #chunkFor(key: string): number {
    const chunks = this.#chunks;
    let lo = 0;
    let hi = chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const last = chunks[mid][chunks[mid].length - 1];
      if (compareKeys(last, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

// Index of the first element of sorted `arr` that is ≥ key.
function lowerBound(arr: readonly string[], key: string): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(arr[mid], key) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
