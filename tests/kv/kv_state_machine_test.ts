// The KV state machine: commands and conditions, revisions, range, sessions, watch, snapshots.
import assert from "node:assert/strict";
import { Encoder, PLAIN_CBOR_OPTIONS } from "../../deps.ts";
import {
  decodeKvWriteResult,
  encodeKvCommand,
  type KvCommand,
  KvCommandError,
} from "../../src/kv/kv_command.ts";
import { KvCompactedError, KvSnapshotError } from "../../src/kv/kv_errors.ts";
import {
  decodeKvQueryResult,
  encodeKvQuery,
  type KvChange,
  type KvEntry,
} from "../../src/kv/kv_query.ts";
import { KvStateMachine, type KvWatchEvent } from "../../src/kv/kv_state_machine.ts";
import { Random } from "../../src/testing/random.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
// A CBOR map with whatever fields a test needs (the typed encoders refuse bad ones).
const rawEncoder = new Encoder(PLAIN_CBOR_OPTIONS);
const rawCbor = (v: Record<string, unknown>) => new Uint8Array(rawEncoder.encode(v));
const text = (b: Uint8Array | undefined) =>
  b === undefined ? undefined : new TextDecoder().decode(b);

function ok(revision: number, prevRevision: number, createRevision: number, version: number) {
  return { status: "ok", revision, prevRevision, createRevision, version } as const;
}

function value(kv: KvStateMachine, key: string): string | undefined {
  return text(kv.get(key)?.value);
}

Deno.test("put: revisions are log indexes; version counts writes", () => {
  const kv = new KvStateMachine();
  assert.deepEqual(kv.applyCommand({ op: "put", key: "a", value: bytes("1") }, 3), ok(3, 0, 3, 1));
  assert.deepEqual(kv.applyCommand({ op: "put", key: "a", value: bytes("2") }, 7), ok(7, 3, 3, 2));
  assert.deepEqual(kv.get("a"), {
    key: "a",
    value: bytes("2"),
    revision: 7,
    createRevision: 3,
    version: 2,
  });
  assert.equal(kv.get("b"), undefined);
  assert.equal(kv.appliedIndex, 7);
  assert.equal(kv.keyCount, 1);
});

Deno.test("put: compare-and-swap on the revision, and create-only", () => {
  const kv = new KvStateMachine();
  // A missing key has revision 0.
  assert.deepEqual(
    kv.applyCommand({ op: "put", key: "k", value: bytes("a"), condition: { revision: 1 } }, 1),
    { status: "failed-condition", revision: 0 },
  );
  assert.equal(kv.get("k"), undefined);
  assert.deepEqual(
    kv.applyCommand({ op: "put", key: "k", value: bytes("a"), condition: { revision: 0 } }, 2),
    ok(2, 0, 2, 1),
  );
  assert.deepEqual(
    kv.applyCommand({ op: "put", key: "k", value: bytes("b"), condition: { revision: 1 } }, 3),
    { status: "failed-condition", revision: 2 },
  );
  assert.equal(value(kv, "k"), "a");
  assert.deepEqual(
    kv.applyCommand({ op: "put", key: "k", value: bytes("b"), condition: { revision: 2 } }, 4),
    ok(4, 2, 2, 2),
  );
  // If-None-Match: *
  assert.deepEqual(
    kv.applyCommand({ op: "put", key: "k", value: bytes("c"), condition: { absent: true } }, 5),
    { status: "failed-condition", revision: 4 },
  );
  assert.deepEqual(
    kv.applyCommand({ op: "put", key: "n", value: bytes("c"), condition: { absent: true } }, 6),
    ok(6, 0, 6, 1),
  );
  assert.equal(value(kv, "k"), "b");
  assert.equal(kv.get("k")!.revision, 4);
  // A failed condition records no change.
  assert.deepEqual(kv.changesSince("", 1).changes.map((c) => c.revision), [2, 4, 6]);
});

Deno.test("delete: unconditional, conditional, of a missing key; re-creation starts over", () => {
  const kv = new KvStateMachine();
  kv.applyCommand({ op: "put", key: "k", value: bytes("a") }, 1);
  kv.applyCommand({ op: "put", key: "k", value: bytes("b") }, 2);
  assert.deepEqual(kv.applyCommand({ op: "delete", key: "k", condition: { revision: 1 } }, 3), {
    status: "failed-condition",
    revision: 2,
  });
  assert.deepEqual(kv.applyCommand({ op: "delete", key: "k", condition: { absent: true } }, 4), {
    status: "failed-condition",
    revision: 2,
  });
  assert.deepEqual(
    kv.applyCommand({ op: "delete", key: "k", condition: { revision: 2 } }, 5),
    ok(5, 2, 0, 0),
  );
  assert.equal(kv.get("k"), undefined);
  // Deleting what is not there succeeds and changes nothing (revision 0).
  assert.deepEqual(kv.applyCommand({ op: "delete", key: "k" }, 6), ok(0, 0, 0, 0));
  assert.deepEqual(
    kv.applyCommand({ op: "delete", key: "k", condition: { absent: true } }, 7),
    ok(0, 0, 0, 0),
  );
  assert.deepEqual(kv.applyCommand({ op: "put", key: "k", value: bytes("c") }, 8), ok(8, 0, 8, 1));
  assert.deepEqual(kv.applyCommand({ op: "delete", key: "k" }, 9), ok(9, 8, 0, 0));
  assert.deepEqual(kv.changesSince("", 1).changes, [
    { revision: 1, key: "k", kind: "put", value: bytes("a") },
    { revision: 2, key: "k", kind: "put", value: bytes("b") },
    { revision: 5, key: "k", kind: "delete" },
    { revision: 8, key: "k", kind: "put", value: bytes("c") },
    { revision: 9, key: "k", kind: "delete" },
  ]);
});

Deno.test("append: creates, appends, and refuses to grow past the value limit", () => {
  const kv = new KvStateMachine({ limits: { maxValueBytes: 8 } });
  assert.deepEqual(
    kv.applyCommand({ op: "append", key: "l", value: bytes("ab") }, 1),
    ok(1, 0, 1, 1),
  );
  assert.deepEqual(
    kv.applyCommand({ op: "append", key: "l", value: bytes("cd") }, 2),
    ok(2, 1, 1, 2),
  );
  assert.equal(value(kv, "l"), "abcd");
  const r = kv.applyCommand({ op: "append", key: "l", value: bytes("efghi") }, 3);
  assert.equal(r.status, "invalid");
  assert.ok(r.status === "invalid" && r.reason === "too-large" && r.field === "value");
  assert.equal(value(kv, "l"), "abcd");
  assert.deepEqual(
    kv.applyCommand({ op: "append", key: "l", value: bytes("efgh") }, 4),
    ok(4, 2, 1, 3),
  );
  assert.equal(value(kv, "l"), "abcdefgh");
  // The change carries the whole new value.
  assert.deepEqual(kv.changesSince("", 4).changes, [
    { revision: 4, key: "l", kind: "put", value: bytes("abcdefgh") },
  ]);
});

Deno.test("apply: a malformed command is answered, not thrown, and changes nothing", () => {
  const kv = new KvStateMachine();
  kv.applyCommand({ op: "put", key: "a", value: bytes("1") }, 1);
  const before = kv.snapshot();
  const r = decodeKvWriteResult(kv.apply(bytes("not cbor"), 2));
  assert.equal(r.status, "invalid");
  assert.ok(r.status === "invalid" && r.reason === "malformed" && r.field === "command");
  const bad = kv.applyCommand({ op: "put", key: "", value: bytes("x") } as KvCommand, 3);
  assert.ok(bad.status === "invalid" && bad.field === "key");
  assert.equal(kv.appliedIndex, 3);
  assert.equal(value(kv, "a"), "1");
  // Only the applied index moved.
  const restored = new KvStateMachine();
  restored.restore(before, 3);
  assert.deepEqual(restored.snapshot(), kv.snapshot());
});

Deno.test("apply: indexes must increase", () => {
  const kv = new KvStateMachine();
  kv.applyCommand({ op: "put", key: "a", value: bytes("1") }, 5);
  assert.throws(() => kv.apply(encodeKvCommand({ op: "delete", key: "a" }), 5), RangeError);
  assert.throws(() => kv.apply(encodeKvCommand({ op: "delete", key: "a" }), 4), RangeError);
  assert.equal(value(kv, "a"), "1");
});

Deno.test("range: sorted by code point, by prefix, paged with a continuation", () => {
  const kv = new KvStateMachine();
  const keys = ["b/2", "a", "b/1", "b/10", "b\u{1F600}", "b\uFFFD", "c", "b/", "b0"];
  keys.forEach((k, i) => kv.applyCommand({ op: "put", key: k, value: bytes(k) }, i + 1));
  const all = kv.range("").entries.map((e) => e.key);
  // UTF-8 byte order: U+FFFD sorts before U+1F600 (JavaScript's `<` would say the opposite).
  assert.deepEqual(all, ["a", "b/", "b/1", "b/10", "b/2", "b0", "b\uFFFD", "b\u{1F600}", "c"]);
  assert.deepEqual(kv.range("b/").entries.map((e) => e.key), ["b/", "b/1", "b/10", "b/2"]);
  assert.deepEqual(kv.range("b/1").entries.map((e) => e.key), ["b/1", "b/10"]);
  assert.deepEqual(kv.range("x").entries, []);
  // Pages.
  const p1 = kv.range("b", { limit: 2 });
  assert.deepEqual(p1.entries.map((e) => e.key), ["b/", "b/1"]);
  assert.equal(p1.next, "b/10");
  const p2 = kv.range("b", { from: p1.next, limit: 2 });
  assert.deepEqual(p2.entries.map((e) => e.key), ["b/10", "b/2"]);
  const p3 = kv.range("b", { from: p2.next, limit: 10 });
  assert.deepEqual(p3.entries.map((e) => e.key), ["b0", "b\uFFFD", "b\u{1F600}"]);
  assert.equal(p3.next, undefined);
  // `from` before the prefix starts at the prefix; past it, nothing.
  assert.deepEqual(kv.range("b/", { from: "a" }).entries.map((e) => e.key).length, 4);
  assert.deepEqual(kv.range("b/", { from: "b0" }).entries, []);
  assert.throws(() => kv.range("", { limit: 0 }), KvCommandError);
  // Returned values are copies.
  kv.range("a").entries[0].value[0] = 0;
  assert.equal(value(kv, "a"), "a");
});

Deno.test("range: pages are capped by maxResultEntries and maxResultBytes", () => {
  const kv = new KvStateMachine({ maxResultEntries: 3, maxResultBytes: 100 });
  for (let i = 0; i < 10; i++) {
    kv.applyCommand({ op: "put", key: `k${i}`, value: new Uint8Array(i === 5 ? 500 : 10) }, i + 1);
  }
  const pages: string[][] = [];
  let from: string | undefined;
  do {
    const page = kv.range("", { from, limit: 1000 });
    pages.push(page.entries.map((e) => e.key));
    from = page.next;
  } while (from !== undefined);
  // A page over the byte cap still holds one entry, so listing always progresses.
  assert.deepEqual(pages, [["k0", "k1", "k2"], ["k3", "k4"], ["k5"], ["k6", "k7", "k8"], ["k9"]]);
});

Deno.test("sessions: a retry is answered from the cache and changes nothing", () => {
  const kv = new KvStateMachine();
  const s = { client: "c1", seq: 1 };
  const first = kv.apply(
    encodeKvCommand({ op: "append", key: "l", value: bytes("x"), session: s }),
    1,
  );
  assert.deepEqual(decodeKvWriteResult(first), ok(1, 0, 1, 1));
  const before = kv.snapshot();
  // The same command again, at a later index (a retry that was committed twice).
  const again = kv.apply(
    encodeKvCommand({ op: "append", key: "l", value: bytes("x"), session: s }),
    2,
  );
  assert.deepEqual(again, first);
  // Even with a different body, the same seq is the same command.
  const other = kv.apply(
    encodeKvCommand({ op: "put", key: "z", value: bytes("y"), session: s }),
    3,
  );
  assert.deepEqual(other, first);
  assert.equal(value(kv, "l"), "x");
  assert.equal(kv.get("z"), undefined);
  assert.equal(kv.historyLength, 1);
  // Nothing but the applied index moved.
  const restored = new KvStateMachine();
  restored.restore(before, 3);
  assert.deepEqual(restored.snapshot(), kv.snapshot());

  // The next seq applies; an older one is stale.
  assert.deepEqual(
    kv.applyCommand({
      op: "append",
      key: "l",
      value: bytes("y"),
      session: { client: "c1", seq: 2 },
    }, 4),
    ok(4, 1, 1, 2),
  );
  assert.deepEqual(
    kv.applyCommand({ op: "append", key: "l", value: bytes("x"), session: s }, 5),
    { status: "stale-sequence", lastSeq: 2 },
  );
  assert.equal(value(kv, "l"), "xy");
  // Sequence numbers may skip; other clients are independent; no session means no dedup.
  assert.equal(
    kv.applyCommand({
      op: "append",
      key: "l",
      value: bytes("z"),
      session: { client: "c1", seq: 9 },
    }, 6)
      .status,
    "ok",
  );
  assert.equal(
    kv.applyCommand({
      op: "append",
      key: "l",
      value: bytes("z"),
      session: { client: "c2", seq: 1 },
    }, 7)
      .status,
    "ok",
  );
  kv.applyCommand({ op: "append", key: "l", value: bytes("!") }, 8);
  kv.applyCommand({ op: "append", key: "l", value: bytes("!") }, 9);
  assert.equal(value(kv, "l"), "xyzz!!");
  assert.equal(kv.sessionCount, 2);
});

Deno.test("sessions: a failed condition is cached like any result", () => {
  const kv = new KvStateMachine();
  const cas: KvCommand = {
    op: "put",
    key: "k",
    value: bytes("v"),
    condition: { revision: 0 },
    session: { client: "c", seq: 1 },
  };
  kv.applyCommand({ op: "put", key: "k", value: bytes("other") }, 1);
  const r = kv.applyCommand(cas, 2);
  assert.deepEqual(r, { status: "failed-condition", revision: 1 });
  kv.applyCommand({ op: "delete", key: "k" }, 3);
  // The retry does not get a second chance at the CAS (which would now succeed).
  assert.deepEqual(kv.applyCommand(cas, 4), r);
  assert.equal(kv.get("k"), undefined);
});

Deno.test("sessions: expire after the TTL of the state machine's clock (the largest ts)", () => {
  const kv = new KvStateMachine({ sessionTtlMs: 1000 });
  const cmd = (seq: number, ts: number, client = "c"): KvCommand => ({
    op: "append",
    key: "l",
    value: bytes("x"),
    session: { client, seq },
    ts,
  });
  kv.applyCommand(cmd(1, 10_000), 1);
  kv.applyCommand(cmd(1, 10_500, "keepalive"), 2);
  // A proposer with a slow clock does not move the clock back.
  kv.applyCommand({ op: "put", key: "t", value: bytes(""), ts: 5 }, 3);
  assert.equal(kv.clock, 10_500);
  // Exactly at the TTL the session is still alive: the retry is deduplicated.
  assert.equal(kv.applyCommand(cmd(1, 11_000), 4).status, "ok");
  assert.equal(value(kv, "l"), "xx"); // the keepalive client's append, not the retry
  // The retry refreshed c's session (999 ms old at 11_999); the other one, last seen at 10_500,
  // is gone.
  kv.applyCommand({ op: "put", key: "t", value: bytes(""), ts: 11_999 }, 5);
  assert.equal(kv.sessionCount, 1);
  assert.deepEqual(kv.applyCommand(cmd(1, 0, "keepalive"), 100), ok(100, 2, 1, 3));
  kv.applyCommand({ op: "put", key: "t", value: bytes(""), ts: 12_001 }, 101);
  assert.equal(kv.sessionCount, 1, "c is over 1000 ms old; keepalive's new session is not");
  // Once expired, the same seq is new again (documented: retries must come within the TTL).
  assert.deepEqual(kv.applyCommand(cmd(1, 12_002), 102), ok(102, 100, 1, 4));
  assert.equal(value(kv, "l"), "xxxx");
});

Deno.test("sessions: past maxSessions the least recently seen goes, ties by client id", () => {
  const kv = new KvStateMachine({ maxSessions: 3 });
  const cmd = (client: string, ts: number): KvCommand => ({
    op: "put",
    key: client,
    value: bytes(""),
    session: { client, seq: 1 },
    ts,
  });
  kv.applyCommand(cmd("d", 1), 1);
  kv.applyCommand(cmd("c", 2), 2);
  kv.applyCommand(cmd("b", 2), 3);
  kv.applyCommand(cmd("a", 3), 4); // evicts d (seen at 1)
  assert.equal(kv.sessionCount, 3);
  kv.applyCommand(cmd("e", 3), 5); // c and b were seen at 2: b goes, being first by id
  const retried = (client: string, index: number) =>
    kv.applyCommand(cmd(client, 3), index).status === "ok" && kv.get(client)!.revision !== index;
  assert.equal(retried("c", 6), true, "c kept its session");
  assert.equal(retried("b", 7), false, "b's session was evicted, so its retry applied again");
});

Deno.test("watch: replays the retained history, then delivers live changes in order", () => {
  const kv = new KvStateMachine();
  kv.applyCommand({ op: "put", key: "doc/1", value: bytes("a") }, 1);
  kv.applyCommand({ op: "put", key: "other", value: bytes("b") }, 2);
  kv.applyCommand({ op: "put", key: "doc/2", value: bytes("c") }, 3);
  const seen: KvWatchEvent[] = [];
  const stop = kv.watch("doc/", 2, (e) => seen.push(e));
  assert.deepEqual(seen, [{
    type: "change",
    change: { revision: 3, key: "doc/2", kind: "put", value: bytes("c") },
  }]);
  kv.applyCommand({ op: "delete", key: "doc/1" }, 4);
  kv.applyCommand({ op: "put", key: "other", value: bytes("d") }, 5);
  kv.applyCommand({ op: "append", key: "doc/2", value: bytes("e") }, 6);
  kv.applyCommand({ op: "put", key: "doc/3", value: bytes("f"), condition: { revision: 9 } }, 7);
  assert.deepEqual(seen.map((e) => e.type === "change" && e.change.revision), [3, 4, 6]);
  assert.deepEqual(seen[1], {
    type: "change",
    change: { revision: 4, key: "doc/1", kind: "delete" },
  });
  assert.deepEqual(seen[2], {
    type: "change",
    change: { revision: 6, key: "doc/2", kind: "put", value: bytes("ce") },
  });
  stop();
  stop();
  kv.applyCommand({ op: "put", key: "doc/4", value: bytes("g") }, 8);
  assert.equal(seen.length, 3);
  assert.equal(kv.watchCount, 0);

  // From the future: only live changes, from that revision on.
  const live: number[] = [];
  kv.watch("", kv.appliedIndex + 1, (e) => e.type === "change" && live.push(e.change.revision));
  kv.applyCommand({ op: "put", key: "x", value: bytes("1") }, 9);
  assert.deepEqual(live, [9]);
  const later: number[] = [];
  kv.watch("", 11, (e) => e.type === "change" && later.push(e.change.revision));
  kv.applyCommand({ op: "put", key: "x", value: bytes("2") }, 10);
  kv.applyCommand({ op: "put", key: "x", value: bytes("3") }, 11);
  assert.deepEqual(later, [11]);
});

Deno.test("watch: a revision older than the history is an explicit error naming the oldest", () => {
  const kv = new KvStateMachine({ maxHistoryChanges: 3 });
  for (let i = 1; i <= 6; i++) {
    kv.applyCommand({ op: "put", key: "k", value: bytes(`${i}`) }, i * 2);
  }
  // Changes 8, 10, 12 are retained; 2, 4, 6 were trimmed.
  assert.equal(kv.oldestRevision, 7);
  for (const from of [1, 6]) {
    assert.throws(() => kv.watch("", from, () => {}), (e: unknown) => {
      assert.ok(e instanceof KvCompactedError);
      assert.equal(e.oldestRevision, 7);
      assert.equal(e.requestedRevision, from);
      return true;
    });
    assert.throws(() => kv.changesSince("", from), KvCompactedError);
  }
  // 7 is fine: no change there, and every change after it is retained.
  const seen: number[] = [];
  kv.watch("", 7, (e) => e.type === "change" && seen.push(e.change.revision));
  assert.deepEqual(seen, [8, 10, 12]);
  // Over the query interface: a result, not an exception.
  const r = decodeKvQueryResult(
    kv.query(encodeKvQuery({ op: "changes", prefix: "", fromRevision: 3 })),
  );
  assert.deepEqual(r, { status: "compacted", op: "changes", appliedIndex: 12, oldestRevision: 7 });
  assert.throws(() => kv.watch("", 0, () => {}), KvCommandError);
});

Deno.test("history: bounded by bytes too; a change larger than the bound is not retained", () => {
  const kv = new KvStateMachine({ maxHistoryBytes: 1000 });
  kv.applyCommand({ op: "put", key: "a", value: new Uint8Array(400) }, 1);
  kv.applyCommand({ op: "put", key: "b", value: new Uint8Array(400) }, 2);
  assert.equal(kv.historyLength, 2);
  kv.applyCommand({ op: "put", key: "c", value: new Uint8Array(400) }, 3);
  assert.equal(kv.historyLength, 2);
  assert.equal(kv.oldestRevision, 2);
  kv.applyCommand({ op: "put", key: "d", value: new Uint8Array(5000) }, 4);
  assert.equal(kv.historyLength, 0);
  assert.equal(kv.oldestRevision, 5);
  // Live watchers still got it.
  const kv2 = new KvStateMachine({ maxHistoryChanges: 0 });
  const seen: number[] = [];
  kv2.watch("", 1, (e) => e.type === "change" && seen.push(e.change.revision));
  kv2.applyCommand({ op: "put", key: "a", value: bytes("x") }, 1);
  assert.deepEqual(seen, [1]);
});

Deno.test("changesSince: pages with next, capped by limit and bytes", () => {
  const kv = new KvStateMachine({ maxResultEntries: 2 });
  for (let i = 1; i <= 5; i++) {
    kv.applyCommand({ op: "put", key: `k${i % 2}`, value: bytes(`${i}`) }, i);
  }
  const p1 = kv.changesSince("", 1, 10);
  assert.deepEqual(p1.changes.map((c) => c.revision), [1, 2]);
  assert.equal(p1.next, 3);
  const p2 = kv.changesSince("k1", p1.next);
  assert.deepEqual(p2.changes.map((c) => c.revision), [3, 5]);
  assert.equal(p2.next, 6);
  const p3 = kv.changesSince("", 6);
  assert.deepEqual(p3, { changes: [], next: 6 });
  // Values are copies.
  const page = kv.changesSince("", 5);
  const c = page.changes[0];
  assert.ok(c.kind === "put");
  c.value[0] = 0;
  assert.deepEqual(kv.changesSince("", 5).changes[0], {
    revision: 5,
    key: "k1",
    kind: "put",
    value: bytes("5"),
  });
});

Deno.test("watch: unsubscribing from inside a listener, and a throwing listener", async () => {
  const kv = new KvStateMachine();
  for (let i = 1; i <= 3; i++) kv.applyCommand({ op: "put", key: "k", value: bytes(`${i}`) }, i);
  // During the replay the unsubscribe function is not returned yet: a signal stops it.
  const seen: number[] = [];
  const abort = new AbortController();
  kv.watch("", 1, (e) => {
    if (e.type === "change") seen.push(e.change.revision);
    if (seen.length === 2) abort.abort();
  }, { signal: abort.signal });
  assert.deepEqual(seen, [1, 2]);
  assert.equal(kv.watchCount, 0);
  // A live watch stopped from its listener; an already aborted signal never starts one.
  const live: number[] = [];
  const stop = kv.watch("", 4, (e) => {
    if (e.type === "change") live.push(e.change.revision);
    stop();
  });
  assert.equal(
    kv.watch("", 1, () => assert.fail("aborted"), { signal: abort.signal })(),
    undefined,
  );

  // A listener's exception never reaches apply; its watch ends; the error surfaces later.
  const reported: unknown[] = [];
  const onError = (e: ErrorEvent) => {
    e.preventDefault();
    reported.push(e.error);
  };
  globalThis.addEventListener("error", onError);
  try {
    let calls = 0;
    kv.watch("", 4, () => {
      calls++;
      throw new Error("listener bug");
    });
    kv.applyCommand({ op: "put", key: "k", value: bytes("4") }, 4);
    kv.applyCommand({ op: "put", key: "k", value: bytes("5") }, 5);
    assert.equal(calls, 1);
    assert.deepEqual(live, [4]);
    assert.equal(value(kv, "k"), "5");
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(reported.length, 1);
    assert.equal((reported[0] as Error).message, "listener bug");
  } finally {
    globalThis.removeEventListener("error", onError);
  }
});

// A random command sequence over a few keys and clients, with conditions, sessions and retries.
function randomCommands(seed: number, n: number): { command: Uint8Array; index: number }[] {
  const random = new Random(seed);
  const keys = ["a", "a/1", "a/2", "b", "é", "\u{1F600}"];
  const out: { command: Uint8Array; index: number }[] = [];
  let index = 0;
  let ts = 1_000;
  const seqs = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    index += 1 + random.int(3);
    ts += random.int(200);
    const key = random.pick(keys);
    const client = random.chance(0.7) ? `c${random.int(4)}` : undefined;
    let session;
    if (client) {
      // Mostly the next seq, sometimes a retry of the last one or an old one.
      const last = seqs.get(client) ?? 0;
      const seq = random.chance(0.8) ? last + 1 : Math.max(0, last - random.int(2));
      seqs.set(client, Math.max(last, seq));
      session = { client, seq };
    }
    const meta = { ...(session && { session }), ts: ts - random.int(300) };
    const v = new Uint8Array(random.int(20)).map(() => random.int(256));
    const condition = random.chance(0.3)
      ? (random.chance(0.5) ? { absent: true as const } : { revision: random.int(index) })
      : undefined;
    let c: KvCommand;
    switch (random.int(3)) {
      case 0:
        c = { op: "put", key, value: v, ...(condition && { condition }), ...meta };
        break;
      case 1:
        c = { op: "delete", key, ...(condition && { condition }), ...meta };
        break;
      default:
        c = { op: "append", key, value: v, ...meta };
    }
    out.push({ command: encodeKvCommand(c), index });
  }
  return out;
}

function observable(kv: KvStateMachine) {
  const entries: KvEntry[] = kv.range("", { limit: 1000 }).entries as KvEntry[];
  let changes: KvChange[] = [];
  try {
    changes = kv.changesSince("", kv.oldestRevision, 1000).changes as KvChange[];
  } catch { /* nothing retained */ }
  return { entries, changes, applied: kv.appliedIndex, clock: kv.clock, sessions: kv.sessionCount };
}

Deno.test("snapshot: replicas applying the same commands produce byte-identical snapshots", () => {
  const options = { maxHistoryChanges: 50, sessionTtlMs: 5_000, maxSessions: 3 };
  const commands = randomCommands(7, 600);
  const a = new KvStateMachine(options);
  const b = new KvStateMachine(options);
  const resultsA: Uint8Array[] = [];
  const resultsB: Uint8Array[] = [];
  for (const { command, index } of commands) resultsA.push(a.apply(command, index));
  // b takes a snapshot of a midway, restores it into a fresh instance, and carries on there.
  let c = b;
  for (const [i, { command, index }] of commands.entries()) {
    resultsB.push(c.apply(command, index));
    if (i === 299) {
      const fresh = new KvStateMachine(options);
      fresh.restore(c.snapshot(), index);
      assert.deepEqual(fresh.snapshot(), c.snapshot());
      c = fresh;
    }
  }
  assert.deepEqual(resultsB, resultsA);
  assert.deepEqual(c.snapshot(), a.snapshot());
  assert.deepEqual(observable(c), observable(a));
  assert.ok(a.keyCount > 0 && a.historyLength === 50 && a.sessionCount > 0);
});

Deno.test("snapshot: round trip keeps data, history, sessions and the clock", () => {
  const kv = new KvStateMachine({ sessionTtlMs: 1000 });
  kv.applyCommand({
    op: "put",
    key: "a",
    value: bytes("1"),
    session: { client: "c", seq: 1 },
    ts: 500,
  }, 1);
  kv.applyCommand({ op: "put", key: "b", value: bytes("2") }, 2);
  kv.applyCommand({ op: "delete", key: "b", ts: 700 }, 3);
  const snap = kv.snapshot();
  const copy = new KvStateMachine({ sessionTtlMs: 1000 });
  copy.restore(snap, 5);
  assert.equal(copy.appliedIndex, 5);
  assert.equal(copy.clock, 700);
  assert.deepEqual(copy.get("a"), kv.get("a"));
  assert.deepEqual(copy.changesSince("", 1), { changes: kv.changesSince("", 1).changes, next: 6 });
  // The session survived: a retry is answered from the cache.
  assert.deepEqual(
    copy.applyCommand(
      { op: "put", key: "a", value: bytes("X"), session: { client: "c", seq: 1 } },
      6,
    ),
    ok(1, 0, 1, 1),
  );
  assert.equal(value(copy, "a"), "1");
  // And it still expires on the restored clock.
  copy.applyCommand({ op: "put", key: "t", value: bytes(""), ts: 1701 }, 7);
  assert.equal(copy.sessionCount, 0);
  // Without an index, the recorded one.
  const again = new KvStateMachine({ sessionTtlMs: 1000 });
  again.restore(snap);
  assert.equal(again.appliedIndex, 3);
});

Deno.test("restore: a bad snapshot is refused with KvSnapshotError and changes nothing", () => {
  const kv = new KvStateMachine();
  kv.applyCommand({ op: "put", key: "a", value: bytes("1") }, 1);
  const before = kv.snapshot();
  const good = new KvStateMachine();
  good.applyCommand({ op: "put", key: "z", value: bytes("9") }, 4);
  const snap = good.snapshot();
  const refuse = (data: Uint8Array, index: number | undefined, field: string) => {
    assert.throws(() => kv.restore(data, index), (e: unknown) => {
      assert.ok(e instanceof KvSnapshotError, String(e));
      assert.equal(e.field, field, e.message);
      return true;
    });
    assert.deepEqual(kv.snapshot(), before);
  };
  refuse(bytes('[[1,"s1"]]'), 1, "snapshot"); // e.g. the simulator's own JSON state
  refuse(snap, 3, "index"); // holds writes a log replay from 4 would apply again
  const bad = (patch: Record<string, unknown>) =>
    rawCbor({
      clock: 0,
      compactedThrough: 0,
      data: [],
      format: 1,
      history: [],
      index: 10,
      sessions: [],
      ...patch,
    });
  refuse(bad({ format: 2 }), 10, "format");
  refuse(
    bad({ data: [["b", bytes("1"), 1, 1, 1], ["a", bytes("1"), 2, 2, 1]] }),
    10,
    "data[1].key",
  );
  refuse(bad({ data: [["a", bytes("1"), 11, 1, 1]] }), 10, "data[0].revision");
  refuse(bad({ data: [["a", bytes("1"), 3, 4, 1]] }), 10, "data[0].createRevision");
  refuse(bad({ history: [[3, "a"], [3, "b"]] }), 10, "history[1].revision");
  refuse(bad({ compactedThrough: 5, history: [[5, "a"]] }), 10, "history[0].revision");
  refuse(bad({ sessions: [["c", 1, 5, bytes("x")]] }), 10, "sessions[0].lastSeen");
  refuse(bad({ clock: 9, sessions: [["c", 1, 5, bytes("x")]] }), 10, "sessions[0].result");
  refuse(bad({ extra: 1 }), 10, "extra");
  // The valid ones load.
  kv.restore(bad({}), 10);
  assert.equal(kv.keyCount, 0);
  kv.restore(snap, 4);
  assert.equal(value(kv, "z"), "9");
});

Deno.test("restore: watches continue from the restored history, or learn it is compacted", () => {
  const leader = new KvStateMachine({ maxHistoryChanges: 3 });
  const follower = new KvStateMachine({ maxHistoryChanges: 3 });
  const put = (kv: KvStateMachine, i: number) =>
    kv.applyCommand({ op: "put", key: `k${i}`, value: bytes(`${i}`) }, i);
  for (let i = 1; i <= 2; i++) {
    put(leader, i);
    put(follower, i);
  }
  const near: KvWatchEvent[] = [];
  const far: KvWatchEvent[] = [];
  follower.watch("", 1, (e) => near.push(e));
  follower.watch("k9", 1, (e) => far.push(e)); // sees nothing, but is positioned at 3
  // The follower falls behind; the leader moves on and snapshots.
  for (let i = 3; i <= 5; i++) put(leader, i);
  follower.restore(leader.snapshot(), 5);
  assert.deepEqual(near.map((e) => e.type === "change" && e.change.revision), [1, 2, 3, 4, 5]);
  assert.equal(far.length, 0);
  assert.equal(follower.watchCount, 2);
  // Further behind than the history reaches: the watch is told and ends.
  for (let i = 6; i <= 12; i++) put(leader, i);
  follower.restore(leader.snapshot(), 12);
  assert.deepEqual(near.at(-1), { type: "compacted", oldestRevision: 10 });
  assert.deepEqual(far, [{ type: "compacted", oldestRevision: 10 }]);
  assert.equal(follower.watchCount, 0);
});

Deno.test("query: get, range and changes over the encoded interface", () => {
  const kv = new KvStateMachine();
  kv.applyCommand({ op: "put", key: "a/1", value: bytes("x") }, 2);
  kv.applyCommand({ op: "put", key: "a/2", value: bytes("y") }, 4);
  const q = (query: Parameters<typeof encodeKvQuery>[0]) =>
    decodeKvQueryResult(kv.query(encodeKvQuery(query)));
  assert.deepEqual(q({ op: "get", key: "a/1" }), {
    status: "ok",
    op: "get",
    appliedIndex: 4,
    entry: { key: "a/1", value: bytes("x"), revision: 2, createRevision: 2, version: 1 },
  });
  assert.deepEqual(q({ op: "get", key: "zz" }), { status: "ok", op: "get", appliedIndex: 4 });
  const r = q({ op: "range", prefix: "a/", limit: 1 });
  assert.ok(r.op === "range");
  assert.deepEqual(r.entries.map((e) => e.key), ["a/1"]);
  assert.equal(r.next, "a/2");
  assert.deepEqual(q({ op: "changes", prefix: "a/2", fromRevision: 1 }), {
    status: "ok",
    op: "changes",
    appliedIndex: 4,
    changes: [{ revision: 4, key: "a/2", kind: "put", value: bytes("y") }],
    next: 5,
  });
  assert.throws(() => kv.query(bytes("nope")), KvCommandError);
});

Deno.test("options: out-of-range values are refused", () => {
  assert.throws(() => new KvStateMachine({ maxSessions: 0 }), RangeError);
  assert.throws(() => new KvStateMachine({ sessionTtlMs: -1 }), RangeError);
  assert.throws(() => new KvStateMachine({ maxResultEntries: 1.5 }), RangeError);
  assert.throws(() => new KvStateMachine({ limits: { maxValueBytes: 0 } }), RangeError);
});
