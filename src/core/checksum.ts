/**
 * FNV-1a, 32 bits: a cheap fingerprint of snapshot data, so a receiver can tell two transfers of
 * the same snapshot apart from different ones and detect a mis-assembled transfer.
 *
 * @module
 */

/** FNV-1a hash of `data`, as an unsigned 32-bit integer. */
export function fnv1a32(data: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < data.length; i++) {
    h ^= data[i];
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
