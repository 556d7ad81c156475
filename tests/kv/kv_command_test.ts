// KV commands, queries and results: round trips, strict validation, and a fuzz of the decoders.
import assert from "node:assert/strict";
import { Encoder, PLAIN_CBOR_OPTIONS } from "../../deps.ts";
import {
  decodeKvCommand,
  decodeKvWriteResult,
  encodeKvCommand,
  encodeKvWriteResult,
  type KvCommand,
  KvCommandError,
  type KvWriteResult,
  validateKvCommand,
} from "../../src/kv/kv_command.ts";
import {
  decodeKvQuery,
  decodeKvQueryResult,
  encodeKvQuery,
  encodeKvQueryResult,
  type KvQuery,
  type KvQueryResult,
} from "../../src/kv/kv_query.ts";
import { Random } from "../../src/testing/random.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
// Raw CBOR of arbitrary values, to build commands the typed encoder would refuse.
const raw = new Encoder(PLAIN_CBOR_OPTIONS);
const cbor = (v: unknown) => new Uint8Array(raw.encode(v));

function rejects(fn: () => unknown, field: string, reason = "malformed"): KvCommandError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof KvCommandError, `expected KvCommandError, got ${caught}`);
  assert.equal(caught.field, field, caught.message);
  assert.equal(caught.reason, reason, caught.message);
  return caught;
}

Deno.test("command: every command and option round-trips", () => {
  const commands: KvCommand[] = [
    { op: "put", key: "a", value: bytes("1") },
    { op: "put", key: "a/b", value: new Uint8Array(0), condition: { revision: 0 } },
    { op: "put", key: "ключ🔑", value: bytes("x"), condition: { absent: true }, ts: 1 },
    {
      op: "put",
      key: "k",
      value: bytes("v"),
      condition: { revision: 17 },
      session: { client: "c1", seq: 3 },
      ts: 1_700_000_000_123,
    },
    { op: "delete", key: "a" },
    { op: "delete", key: "a", condition: { revision: 5 }, session: { client: "c", seq: 0 } },
    { op: "delete", key: "a", condition: { absent: true }, ts: 9 },
    { op: "append", key: "log", value: bytes("line\n") },
    { op: "append", key: "log", value: bytes("x"), session: { client: "c", seq: 2 ** 40 }, ts: 2 },
  ];
  for (const c of commands) {
    const encoded = encodeKvCommand(c);
    assert.deepEqual(decodeKvCommand(encoded), c);
    // Equal commands give equal bytes whatever their fields' order in the object.
    const shuffled = Object.fromEntries(Object.entries(c).reverse()) as KvCommand;
    assert.deepEqual(encodeKvCommand(shuffled), encoded);
  }
});

Deno.test("command: decoded values are plain, unshared Uint8Arrays", () => {
  const encoded = encodeKvCommand({ op: "put", key: "k", value: bytes("abc") });
  const c = decodeKvCommand(encoded);
  assert.ok(c.op === "put");
  assert.equal(Object.getPrototypeOf(c.value), Uint8Array.prototype);
  assert.notEqual(c.value.buffer, encoded.buffer);
});

Deno.test("command: validation names the bad field", () => {
  const v = bytes("v");
  rejects(() => decodeKvCommand(cbor({ key: "k", value: v })), "op");
  rejects(() => decodeKvCommand(cbor({ op: "get", key: "k" })), "op");
  rejects(() => decodeKvCommand(cbor({ op: "put", value: v })), "key");
  rejects(() => decodeKvCommand(cbor({ op: "put", key: "", value: v })), "key");
  rejects(() => decodeKvCommand(cbor({ op: "put", key: 7, value: v })), "key");
  rejects(() => decodeKvCommand(cbor({ op: "put", key: "k" })), "value");
  rejects(() => decodeKvCommand(cbor({ op: "put", key: "k", value: "text" })), "value");
  rejects(() => decodeKvCommand(cbor({ op: "put", key: "k", value: v, extra: 1 })), "extra");
  rejects(() => decodeKvCommand(cbor({ op: "delete", key: "k", value: v })), "value");
  rejects(
    () => decodeKvCommand(cbor({ op: "append", key: "k", value: v, condition: { absent: true } })),
    "condition",
  );
  rejects(
    () => decodeKvCommand(cbor({ op: "put", key: "k", value: v, condition: {} })),
    "condition",
  );
  rejects(
    () =>
      decodeKvCommand(
        cbor({ op: "put", key: "k", value: v, condition: { revision: 1, absent: true } }),
      ),
    "condition",
  );
  rejects(
    () => decodeKvCommand(cbor({ op: "put", key: "k", value: v, condition: { revision: -1 } })),
    "condition.revision",
  );
  rejects(
    () => decodeKvCommand(cbor({ op: "put", key: "k", value: v, condition: { revision: 1.5 } })),
    "condition.revision",
  );
  rejects(
    () => decodeKvCommand(cbor({ op: "put", key: "k", value: v, condition: { absent: false } })),
    "condition.absent",
  );
  rejects(
    () => decodeKvCommand(cbor({ op: "put", key: "k", value: v, session: { seq: 1 } })),
    "session.client",
  );
  rejects(
    () => decodeKvCommand(cbor({ op: "put", key: "k", value: v, session: { client: "c" } })),
    "session.seq",
  );
  rejects(
    () =>
      decodeKvCommand(cbor({ op: "put", key: "k", value: v, session: { client: "c", seq: -2 } })),
    "session.seq",
  );
  rejects(
    () => decodeKvCommand(cbor({ op: "put", key: "k", value: v, session: "c" })),
    "session",
  );
  rejects(() => decodeKvCommand(cbor({ op: "put", key: "k", value: v, ts: "now" })), "ts");
  rejects(() => decodeKvCommand(cbor({ op: "put", key: "k", value: v, ts: 2 ** 60 })), "ts");
  rejects(() => decodeKvCommand(cbor({ op: "put", key: "k", value: v, ts: NaN })), "ts");
  // A bignum is a tag, refused before decoding.
  rejects(() => decodeKvCommand(cbor({ op: "put", key: "k", value: v, ts: 2n ** 70n })), "command");
  // Not a map, not CBOR, or CBOR the schema never holds.
  rejects(() => decodeKvCommand(cbor(["put", "k"])), "command");
  rejects(() => decodeKvCommand(new Uint8Array(0)), "command");
  rejects(() => decodeKvCommand(new Uint8Array([0xa1, 0x62, 0x6f])), "command"); // truncated
  rejects(() => decodeKvCommand(new Uint8Array([0xbf, 0xff])), "command"); // indefinite map
  rejects(() => decodeKvCommand(new Uint8Array([0xa1, 0x01, 0x02])), "command"); // integer key
  rejects(() => decodeKvCommand(new Uint8Array([0xd9, 0xd9, 0xf7, 0xa0])), "command"); // a tag
  // {op: 1(0)}: a tag inside the map.
  rejects(() => decodeKvCommand(new Uint8Array([0xa1, 0x62, 0x6f, 0x70, 0xc1, 0x00])), "command");
  // A byte string claiming 2^32 bytes.
  rejects(() => decodeKvCommand(new Uint8Array([0xa1, 0x61, 0x6b, 0x5a, 1, 0, 0, 0])), "command");
  rejects(
    () => decodeKvCommand(new Uint8Array([...cbor({ op: "delete", key: "k" }), 0])),
    "command",
  );
});

Deno.test("command: text must be well-formed UTF-8 without a leading byte order mark", () => {
  const v = bytes("v");
  // {op: "put", key: <invalid UTF-8>, value: h'76'}
  const badUtf8 = new Uint8Array([
    0xa3,
    ...[0x62, 0x6f, 0x70, 0x63, 0x70, 0x75, 0x74],
    ...[0x63, 0x6b, 0x65, 0x79, 0x62, 0xc3, 0x28],
    ...[0x65, 0x76, 0x61, 0x6c, 0x75, 0x65, 0x41, 0x76],
  ]);
  rejects(() => decodeKvCommand(badUtf8), "command");
  rejects(() => decodeKvCommand(cbor({ op: "put", key: "\ufeffk", value: v })), "command");
  rejects(() => encodeKvCommand({ op: "put", key: "\ufeffk", value: v }), "key");
  rejects(() => encodeKvCommand({ op: "put", key: "a\ud800", value: v }), "key");
  rejects(() => encodeKvCommand({ op: "put", key: "\udc00b", value: v }), "key");
  assert.ok(encodeKvCommand({ op: "put", key: "a\ud83d\ude00", value: v }));
});

Deno.test("command: keys, values and client ids are bounded, and say too-large", () => {
  const limits = { maxKeyBytes: 8, maxValueBytes: 16, maxClientIdBytes: 4 };
  const ok: KvCommand = {
    op: "put",
    key: "é".repeat(4), // 8 bytes of UTF-8
    value: new Uint8Array(16),
    session: { client: "abcd", seq: 1 },
  };
  assert.deepEqual(decodeKvCommand(encodeKvCommand(ok, limits), limits), ok);
  rejects(() => encodeKvCommand({ ...ok, key: "é".repeat(4) + "x" }, limits), "key", "too-large");
  rejects(
    () => encodeKvCommand({ ...ok, value: new Uint8Array(17) }, limits),
    "value",
    "too-large",
  );
  rejects(
    () => encodeKvCommand({ ...ok, session: { client: "abcde", seq: 1 } }, limits),
    "session.client",
    "too-large",
  );
  const big = encodeKvCommand({ ...ok, value: new Uint8Array(5000) });
  rejects(() => decodeKvCommand(big, limits), "command", "too-large");
  // The defaults: 4 KiB keys, 1 MiB values.
  assert.ok(encodeKvCommand({ op: "put", key: "k".repeat(4096), value: new Uint8Array(1 << 20) }));
  rejects(
    () => encodeKvCommand({ op: "put", key: "k".repeat(4097), value: bytes("") }),
    "key",
    "too-large",
  );
  rejects(
    () => encodeKvCommand({ op: "append", key: "k", value: new Uint8Array((1 << 20) + 1) }),
    "value",
    "too-large",
  );
  assert.throws(() => encodeKvCommand(ok, { maxKeyBytes: 0 }), RangeError);
});

Deno.test("command: validateKvCommand checks untyped input", () => {
  assert.deepEqual(validateKvCommand({ op: "delete", key: "k" }), { op: "delete", key: "k" });
  rejects(() => validateKvCommand(null), "command");
  rejects(() => validateKvCommand({ op: "delete", key: "k", ["__proto__"]: {} }), "__proto__");
});

Deno.test("result: every write result round-trips", () => {
  const results: KvWriteResult[] = [
    { status: "ok", revision: 7, prevRevision: 3, createRevision: 2, version: 4 },
    { status: "ok", revision: 0, prevRevision: 0, createRevision: 0, version: 0 },
    { status: "failed-condition", revision: 9 },
    { status: "stale-sequence", lastSeq: 12 },
    { status: "invalid", reason: "too-large", field: "value", message: "value: too big" },
  ];
  for (const r of results) assert.deepEqual(decodeKvWriteResult(encodeKvWriteResult(r)), r);
  rejects(() => decodeKvWriteResult(cbor({ status: "ok", revision: 1 })), "prevRevision");
  rejects(() => decodeKvWriteResult(cbor({ status: "maybe" })), "status");
});

Deno.test("query: every query and result round-trips", () => {
  const queries: KvQuery[] = [
    { op: "get", key: "a" },
    { op: "range", prefix: "" },
    { op: "range", prefix: "a/", from: "a/c", limit: 10 },
    { op: "changes", prefix: "", fromRevision: 1 },
    { op: "changes", prefix: "p", fromRevision: 99, limit: 5 },
  ];
  for (const q of queries) assert.deepEqual(decodeKvQuery(encodeKvQuery(q)), q);
  rejects(() => encodeKvQuery({ op: "get", key: "" }), "key");
  rejects(() => encodeKvQuery({ op: "range", prefix: "", limit: 0 }), "limit");
  rejects(() => encodeKvQuery({ op: "changes", prefix: "", fromRevision: 0 }), "fromRevision");
  rejects(() => decodeKvQuery(cbor({ op: "changes", prefix: "" })), "fromRevision");
  rejects(() => decodeKvQuery(cbor({ op: "put", key: "k" })), "op");
  rejects(() => decodeKvQuery(cbor({ op: "get", key: "k", prefix: "" })), "prefix");

  const entry = { key: "a", value: bytes("1"), revision: 5, createRevision: 2, version: 3 };
  const results: KvQueryResult[] = [
    { status: "ok", op: "get", appliedIndex: 5 },
    { status: "ok", op: "get", appliedIndex: 5, entry },
    { status: "ok", op: "range", appliedIndex: 5, entries: [entry] },
    { status: "ok", op: "range", appliedIndex: 5, entries: [entry], next: "b" },
    {
      status: "ok",
      op: "changes",
      appliedIndex: 9,
      changes: [
        { revision: 5, key: "a", kind: "put", value: bytes("1") },
        { revision: 8, key: "a", kind: "delete" },
      ],
      next: 10,
    },
    { status: "compacted", op: "changes", appliedIndex: 9, oldestRevision: 4 },
  ];
  for (const r of results) assert.deepEqual(decodeKvQueryResult(encodeKvQueryResult(r)), r);
  rejects(
    () => decodeKvQueryResult(cbor({ status: "compacted", op: "get", appliedIndex: 1 })),
    "status",
  );
});

// Random bytes, and valid commands with bytes flipped, cut or spliced: the decoder either
// returns a command that re-encodes to a valid one, or throws KvCommandError — nothing else.
Deno.test("command: fuzzed input only ever fails with KvCommandError", () => {
  const random = new Random(20240611);
  const seeds = [
    encodeKvCommand({
      op: "put",
      key: "key/1",
      value: bytes("value"),
      condition: { revision: 42 },
      session: { client: "client-1", seq: 7 },
      ts: 1_700_000_000_000,
    }),
    encodeKvCommand({ op: "delete", key: "k", condition: { absent: true } }),
    encodeKvCommand({ op: "append", key: "é", value: new Uint8Array(40) }),
    encodeKvQuery({ op: "range", prefix: "a", from: "b", limit: 3 }),
  ];
  const mutate = (src: Uint8Array): Uint8Array => {
    const b = [...src];
    const edits = 1 + random.int(4);
    for (let e = 0; e < edits; e++) {
      const at = random.int(b.length + 1);
      switch (random.int(4)) {
        case 0:
          b[Math.min(at, b.length - 1)] = random.int(256);
          break;
        case 1:
          b.splice(at, 1 + random.int(3));
          break;
        case 2:
          b.splice(at, 0, random.int(256));
          break;
        default:
          b[Math.min(at, b.length - 1)] ^= 1 << random.int(8);
      }
    }
    return new Uint8Array(b);
  };
  let decoded = 0;
  for (let i = 0; i < 6000; i++) {
    let input: Uint8Array;
    if (i % 3 === 0) {
      input = new Uint8Array(random.int(40));
      for (let j = 0; j < input.length; j++) input[j] = random.int(256);
      if (input.length > 0 && random.chance(0.5)) input[0] = 0xa0 | random.int(6); // a small map
    } else {
      input = mutate(random.pick(seeds));
    }
    for (const decode of [decodeKvCommand, decodeKvQuery]) {
      try {
        const value = decode(input);
        decoded++;
        if ("value" in value || value.op === "delete") {
          assert.deepEqual(decodeKvCommand(encodeKvCommand(value as KvCommand)), value);
        } else {
          assert.deepEqual(decodeKvQuery(encodeKvQuery(value as KvQuery)), value);
        }
      } catch (e) {
        if (!(e instanceof KvCommandError)) {
          throw new Error(`input ${Array.from(input)} threw ${e}`, { cause: e });
        }
      }
    }
  }
  assert.ok(decoded > 0, "some mutations should still decode");
});
