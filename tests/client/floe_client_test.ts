/**
 * `FloeClient` against real clusters over loopback (the HTTP tests' `HttpCluster`): every
 * method, typed errors, exactly-once retries of a write whose response was lost, concurrent
 * writes, leader failover, and a watch that survives its node going away.
 *
 * @module
 */
import assert from "node:assert/strict";
import { FloeClient } from "../../src/client/floe_client.ts";
import {
  FloeCompactedError,
  FloeConditionFailedError,
  FloeHttpError,
  FloeNetworkError,
} from "../../src/client/floe_errors.ts";
import { KvStateMachine } from "../../src/kv/kv_state_machine.ts";
import { HttpCluster } from "../http/http_cluster.ts";

const dec = new TextDecoder();
const text = (b: Uint8Array | undefined) => (b === undefined ? undefined : dec.decode(b));

Deno.test("client: every method, typed errors, sticking to and following the leader", async () => {
  const c = await HttpCluster.start(["n1", "n2", "n3"]);
  try {
    const leader = await c.leader();
    const f = await c.follower();
    const client = new FloeClient({ endpoints: [f.url] });

    const w1 = await client.put("k", "v1");
    assert.equal(w1.prevRevision, 0);
    assert.equal(w1.version, 1);
    assert.equal(client.endpoint, f.url, "stays on the node that answered");
    const got = await client.get("k");
    assert.deepEqual({ ...got, value: text(got?.value) }, {
      value: "v1",
      revision: w1.revision,
      createRevision: w1.revision,
      version: 1,
    });
    assert.equal(await client.get("missing"), undefined);
    assert.equal(text((await client.get("k", { consistency: "stale" }))?.value), "v1");

    await assert.rejects(client.put("k", "x", { ifAbsent: true }), (e: unknown) => {
      assert.ok(e instanceof FloeConditionFailedError);
      assert.equal(e.status, 412);
      assert.equal(e.revision, w1.revision);
      return true;
    });
    const w2 = await client.put("k", new Uint8Array([1, 2]), { ifRevision: w1.revision });
    assert.equal(w2.prevRevision, w1.revision);
    await assert.rejects(client.delete("k", { ifRevision: w1.revision }), FloeConditionFailedError);
    const w3 = await client.append("k", "!");
    assert.deepEqual((await client.get("k"))?.value, new Uint8Array([1, 2, 33]));
    const d = await client.delete("k", { ifRevision: w3.revision });
    assert.equal(d.prevRevision, w3.revision);
    assert.equal(await client.get("k"), undefined);

    for (const k of ["l/a", "l/b", "l/c"]) await client.put(k, k);
    const page = await client.list("l/", { limit: 2 });
    assert.deepEqual(page.entries.map((e) => [e.key, text(e.value)]), [["l/a", "l/a"], [
      "l/b",
      "l/b",
    ]]);
    assert.equal(page.next, "l/c");
    const rest = await client.list("l/", { from: page.next, consistency: "stale" });
    assert.deepEqual(rest.entries.map((e) => e.key), ["l/c"]);

    const status = await client.status();
    assert.equal(status.id, f.id);
    assert.equal(status.leader, leader.id);
    assert.equal((await client.status(leader.url)).role, "leader");

    const snap = await client.snapshot();
    const kv = new KvStateMachine();
    kv.restore(snap.data);
    assert.equal(kv.appliedIndex, snap.index);
    assert.equal(text(kv.get("l/b")?.value), "l/b");
    assert.ok(snap.term >= 1);

    await assert.rejects(client.get("x".repeat(5000)), (e: unknown) => {
      assert.ok(e instanceof FloeHttpError);
      assert.equal(e.status, 413);
      assert.equal(e.code, "too-large");
      return true;
    });

    // fetch would resolve these as path segments: refused before anything is sent.
    await assert.rejects(client.get(".."), RangeError);
    await assert.rejects(client.put(".", "x"), RangeError);

    // With the ids' URLs known, a leader hint moves the client to the leader.
    const mapped = new FloeClient({
      endpoints: [f.url],
      endpointsById: Object.fromEntries([...c.nodes.values()].map((n) => [n.id, n.url])),
    });
    await mapped.put("m", "1");
    assert.equal(mapped.endpoint, leader.url);
    client.close();
    mapped.close();
  } finally {
    await c.close();
  }
});

Deno.test("client: a write whose response is lost is retried with its sequence number, applied once", async () => {
  const c = await HttpCluster.start(["n1"]);
  try {
    const n = await c.leader();
    let lost = 0;
    const sequences: string[] = [];
    const lossy: typeof fetch = async (input, init) => {
      const r = await fetch(input, init);
      if (init?.method === "POST") {
        sequences.push(new Headers(init.headers).get("floe-sequence")!);
        if (lost < 2) {
          lost++;
          await r.body?.cancel();
          throw new TypeError("connection reset (simulated)");
        }
      }
      return r;
    };
    const client = new FloeClient({
      endpoints: [n.url],
      fetch: lossy,
      retry: { baseMs: 1, maxMs: 5 },
    });
    const first = await client.append("log", "a");
    assert.equal(first.version, 1);
    assert.deepEqual(sequences, ["1", "1", "1"], "one sequence number for every attempt");
    await client.append("log", "b");
    assert.equal(sequences[3], "2");
    assert.equal(text((await client.get("log"))?.value), "ab");
  } finally {
    await c.close();
  }
});

Deno.test("client: concurrent writes each apply once (one session per write in flight)", async () => {
  const c = await HttpCluster.start(["n1"]);
  try {
    const n = await c.leader();
    const client = new FloeClient({ endpoints: [n.url] });
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => client.append("many", `${String(i).padStart(2, "0")},`)),
    );
    assert.equal(new Set(results.map((r) => r.revision)).size, 20);
    const parts = text((await client.get("many"))?.value)!.split(",").filter((p) => p !== "");
    assert.equal(parts.length, 20);
    assert.equal(new Set(parts).size, 20);
    // Sequential writes after the burst reuse the sessions without conflicts.
    for (let i = 0; i < 5; i++) await client.put("after", String(i));
  } finally {
    await c.close();
  }
});

Deno.test("client: tokens, and typed errors when no node answers", async () => {
  const c = await HttpCluster.start(["n1"], { api: { token: "t0ken" } });
  try {
    const n = await c.leader();
    await new FloeClient({ endpoints: [n.url], token: "t0ken" }).put("a", "1");
    await assert.rejects(new FloeClient({ endpoints: [n.url] }).get("a"), (e: unknown) => {
      assert.ok(e instanceof FloeHttpError);
      assert.equal(e.status, 401);
      assert.equal(e.code, "unauthorized");
      return true;
    });
  } finally {
    await c.close();
  }
  // A port nobody listens on (the cluster's, now closed).
  const dead = new FloeClient({
    endpoints: [c.get("n1").url],
    retry: { attempts: 3, baseMs: 1, maxMs: 2 },
  });
  await assert.rejects(dead.get("a"), FloeNetworkError);
});

Deno.test({
  name: "client: the leader stops; the client retries on the others and succeeds",
  async fn() {
    const c = await HttpCluster.start(["n1", "n2", "n3"]);
    try {
      const leader = await c.leader();
      const urls = [...c.nodes.values()].map((n) => n.url);
      const client = new FloeClient({
        endpoints: [leader.url, ...urls.filter((u) => u !== leader.url)],
      });
      await client.put("before", "1");
      assert.equal(client.endpoint, leader.url);
      await c.stop(leader.id);
      const w = await client.put("after", "2");
      assert.ok(w.revision > 0);
      assert.notEqual(client.endpoint, leader.url);
      assert.equal(text((await client.get("before"))?.value), "1");
      assert.equal(text((await client.get("after"))?.value), "2");
    } finally {
      await c.close();
    }
  },
});

Deno.test({
  name: "client: a watch delivers in order, survives its node stopping, and ends on compaction",
  async fn() {
    const c = await HttpCluster.start(["n1", "n2", "n3"], { kv: { maxHistoryChanges: 100 } });
    try {
      const leader = await c.leader();
      const f = await c.follower();
      const writer = new FloeClient({ endpoints: [leader.url] });
      const first = await writer.put("w/0", "0");
      // The watch is served by a follower, which then stops: it resumes on another node.
      const watcher = new FloeClient({
        endpoints: [f.url, ...[...c.nodes.values()].filter((n) => n !== f).map((n) => n.url)],
        retry: { baseMs: 20, maxMs: 200 },
      });
      const abort = new AbortController();
      const seen: { type: string; key: string; revision: number }[] = [];
      const done = (async () => {
        for await (
          const ch of watcher.watch("w/", { from: first.revision, signal: abort.signal })
        ) {
          seen.push({ type: ch.type, key: ch.key, revision: ch.revision });
          if (seen.length === 6) break;
        }
      })();
      const revs = [first.revision];
      revs.push((await writer.put("w/1", "1")).revision);
      revs.push((await writer.delete("w/0")).revision);
      await writer.put("other", "x");
      while (seen.length < 3) await new Promise((r) => setTimeout(r, 10));
      await c.stop(f.id);
      for (let i = 2; i <= 4; i++) revs.push((await writer.put(`w/${i}`, String(i))).revision);
      await done;
      abort.abort();
      assert.deepEqual(seen.map((s) => s.revision), revs, "no gap, no repeat");
      assert.deepEqual(seen.map((s) => s.type), ["put", "put", "delete", "put", "put", "put"]);

      // Past the retained history: the watch ends with FloeCompactedError.
      for (let i = 0; i < 110; i++) await writer.put(`fill/${i}`, "v");
      await assert.rejects(
        (async () => {
          for await (const _ of writer.watch("", { from: 1 })) { /* nothing arrives */ }
        })(),
        (e: unknown) => {
          assert.ok(e instanceof FloeCompactedError);
          assert.ok(e.oldestRevision > 1);
          return true;
        },
      );
      watcher.close();
      writer.close();
    } finally {
      await c.close();
    }
  },
});
