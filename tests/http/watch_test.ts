/**
 * Watches as server-sent events: the stream on its own (replay, live changes, a slow reader's
 * overflow, compaction) and over HTTP on a real node (from, Last-Event-ID, default start,
 * keep-alive, the API's close).
 *
 * @module
 */
import assert from "node:assert/strict";
import { readSseStream, type SseMessage } from "../../src/client/sse_parser.ts";
import { base64ToBytes } from "../../src/http/base64.ts";
import { openWatchStream } from "../../src/http/watch_stream.ts";
import { KvStateMachine } from "../../src/kv/kv_state_machine.ts";
import { HttpCluster } from "./http_cluster.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

async function take(it: AsyncIterator<SseMessage>, n: number): Promise<SseMessage[]> {
  const out: SseMessage[] = [];
  while (out.length < n) {
    const r = await it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

Deno.test("watch stream: replays from a revision, then delivers live changes in order", async () => {
  const kv = new KvStateMachine();
  kv.applyCommand({ op: "put", key: "w/a", value: enc.encode("1") }, 1);
  kv.applyCommand({ op: "put", key: "other", value: enc.encode("x") }, 2);
  kv.applyCommand({ op: "delete", key: "w/a" }, 3);
  const abort = new AbortController();
  const stream = openWatchStream({
    kv,
    prefix: "w/",
    from: 1,
    signal: abort.signal,
    keepAliveMs: 60_000,
    maxBufferedBytes: 1 << 20,
  });
  const it = readSseStream(stream)[Symbol.asyncIterator]();
  const replay = await take(it, 2);
  assert.deepEqual(replay.map((m) => [m.id, m.event]), [["1", "put"], ["3", "delete"]]);
  assert.deepEqual(JSON.parse(replay[0].data), { key: "w/a", revision: 1, value: btoa("1") });
  assert.deepEqual(JSON.parse(replay[1].data), { key: "w/a", revision: 3 });
  kv.applyCommand({ op: "put", key: "w/b", value: enc.encode("2") }, 4);
  kv.applyCommand({ op: "append", key: "w/b", value: enc.encode("3") }, 5);
  const live = await take(it, 2);
  assert.deepEqual(live.map((m) => m.id), ["4", "5"]);
  assert.equal(dec.decode(base64ToBytes(JSON.parse(live[1].data).value)), "23");
  assert.equal(kv.watchCount, 1);
  abort.abort();
  assert.equal((await it.next()).done, true);
  assert.equal(kv.watchCount, 0);
});

Deno.test("watch stream: a reader that falls behind gets an error event, never a gap", async () => {
  const kv = new KvStateMachine();
  const stream = openWatchStream({
    kv,
    prefix: "",
    from: 1,
    keepAliveMs: 60_000,
    maxBufferedBytes: 2000,
  });
  const it = readSseStream(stream)[Symbol.asyncIterator]();
  kv.applyCommand({ op: "put", key: "k", value: enc.encode("first") }, 1);
  assert.equal((await take(it, 1))[0].id, "1");
  // Nobody reads while 100 changes of ~100 bytes each are applied.
  for (let i = 2; i <= 101; i++) {
    kv.applyCommand({ op: "put", key: "k", value: enc.encode(`value-${i}`.padEnd(60, ".")) }, i);
  }
  assert.equal(kv.watchCount, 0, "the overflowing watch unsubscribed");
  const rest: SseMessage[] = [];
  for (let r = await it.next(); !r.done; r = await it.next()) rest.push(r.value);
  const last = rest[rest.length - 1];
  assert.equal(last.event, "error");
  assert.equal(JSON.parse(last.data).code, "watch-overflow");
  const ids = rest.slice(0, -1).map((m) => Number(m.id));
  assert.ok(ids.length > 0 && ids.length < 100, `${ids.length} changes before the error`);
  assert.deepEqual(ids, ids.map((_, i) => i + 2), "the changes delivered have no gap");
});

Deno.test("watch stream: a revision older than the history is a compacted event, then the end", async () => {
  const kv = new KvStateMachine({ maxHistoryChanges: 2 });
  for (let i = 1; i <= 5; i++) {
    kv.applyCommand({ op: "put", key: `k${i}`, value: enc.encode("v") }, i);
  }
  const stream = openWatchStream({
    kv,
    prefix: "",
    from: 1,
    keepAliveMs: 60_000,
    maxBufferedBytes: 1 << 20,
  });
  const events: SseMessage[] = [];
  for await (const m of readSseStream(stream)) events.push(m);
  assert.deepEqual(events.map((e) => e.event), ["compacted"]);
  assert.deepEqual(JSON.parse(events[0].data), { oldestRevision: kv.oldestRevision });
  assert.equal(kv.watchCount, 0);
});

Deno.test("http watch: from, Last-Event-ID, default start, keep-alive, compacted, close", async () => {
  const c = await HttpCluster.start(["n1"], {
    api: { keepAliveMs: 30 },
    kv: { maxHistoryChanges: 50 },
  });
  try {
    const n = await c.leader();
    const put = async (key: string, value: string) => {
      const r = await fetch(`${n.url}/kv/${key}`, { method: "PUT", body: value });
      assert.equal(r.status, 200);
      return (await r.json()).revision as number;
    };
    const r1 = await put("w/a", "1");
    const r2 = await put("w/b", "2");

    // from=r1: the replay, then a live change; the raw format as the contract says.
    const ctl = new AbortController();
    const res = await fetch(`${n.url}/kv?prefix=w%2F&watch&from=${r1}`, { signal: ctl.signal });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
    assert.equal(res.headers.get("floe-node"), "n1");
    const reader = res.body!.getReader();
    let raw = "";
    while (!raw.includes(`id: ${r2}\n`)) raw += dec.decode((await reader.read()).value);
    assert.ok(
      raw.includes(
        `id: ${r1}\nevent: put\ndata: {"key":"w/a","revision":${r1},"value":"MQ=="}\n\n`,
      ),
      raw,
    );
    const r3 = await put("w/a", "3");
    while (!raw.includes(`id: ${r3}\n`)) raw += dec.decode((await reader.read()).value);
    while (!raw.includes(": keep-alive")) raw += dec.decode((await reader.read()).value);
    ctl.abort();
    await reader.cancel().catch(() => {});

    // Last-Event-ID resumes after the event named, whatever `from` says.
    const resumed = await fetch(`${n.url}/kv?prefix=w%2F&watch&from=1`, {
      headers: { "Last-Event-ID": String(r2) },
    });
    const it = readSseStream(resumed.body!)[Symbol.asyncIterator]();
    assert.deepEqual((await take(it, 1)).map((m) => m.id), [String(r3)]);
    await it.return!(undefined);

    // Without from: only changes after the watch began, which the header says.
    const fresh = await fetch(`${n.url}/kv?prefix=w%2F&watch`);
    const start = Number(fresh.headers.get("floe-watch-from"));
    assert.equal(start, n.kv.appliedIndex + 1);
    const freshIt = readSseStream(fresh.body!)[Symbol.asyncIterator]();
    const r4 = await put("w/c", "4");
    const [ev] = await take(freshIt, 1);
    assert.equal(ev.id, String(r4));

    // Compacted: the history keeps 50 changes.
    for (let i = 0; i < 60; i++) await put(`x${i}`, "v");
    const old = await fetch(`${n.url}/kv?watch&from=1`);
    const events: SseMessage[] = [];
    for await (const m of readSseStream(old.body!)) events.push(m);
    assert.deepEqual(events.map((e) => e.event), ["compacted"]);
    assert.equal(JSON.parse(events[0].data).oldestRevision, n.kv.oldestRevision);
    // Closing the API ends open watches (a graceful server shutdown waits for them).
    n.api.close();
    assert.equal((await freshIt.next()).done, true);
  } finally {
    await c.close();
  }
});
