/**
 * CRC-32C against published vectors (the CRC catalogue's check value, RFC 3720 appendix B.4),
 * against the bit-at-a-time definition, and incrementally.
 *
 * @module
 */
import assert from "node:assert/strict";
import { crc32c } from "../../src/storage/crc32c.ts";

const ascii = (s: string) => new TextEncoder().encode(s);

Deno.test("crc32c: the standard check value and the RFC 3720 (iSCSI) vectors", () => {
  assert.equal(crc32c(ascii("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
  // An iSCSI SCSI Read (10) command PDU, RFC 3720 appendix B.4.
  const pdu = new Uint8Array(48);
  pdu.set([0x01, 0xc0], 0);
  pdu[16] = 0x14;
  pdu[22] = 0x04;
  pdu[27] = 0x14;
  pdu[31] = 0x18;
  pdu[32] = 0x28;
  pdu[40] = 0x02;
  // The RFC lists the CRC in wire byte order (56 3a 96 d9 read as a big-endian word).
  assert.equal(crc32c(pdu), 0xd9963a56);
  assert.equal(crc32c(ascii("The quick brown fox jumps over the lazy dog")), 0x22620404);
});

Deno.test("crc32c: incremental over pieces equals one pass, at every split and length", () => {
  const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 7919 + 13) & 0xff);
  for (let n = 0; n <= data.length; n += 17) {
    const whole = crc32c(data.subarray(0, n));
    // The one-byte-at-a-time definition, to check the eight-at-a-time loop.
    let c = 0xffffffff;
    for (let i = 0; i < n; i++) {
      c ^= data[i];
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    }
    assert.equal(whole, ~c >>> 0, `length ${n}`);
    for (let split = 0; split <= n; split += 5) {
      assert.equal(crc32c(data.subarray(split, n), crc32c(data.subarray(0, split))), whole);
    }
  }
});

Deno.test("crc32c: detects every single-bit flip in a record-sized buffer", () => {
  const data = Uint8Array.from({ length: 64 }, (_, i) => i * 3);
  const good = crc32c(data);
  for (let bit = 0; bit < data.length * 8; bit++) {
    data[bit >> 3] ^= 1 << (bit & 7);
    assert.notEqual(crc32c(data), good);
    data[bit >> 3] ^= 1 << (bit & 7);
  }
});
