/**
 * The HTTP API on a real single-node cluster served over loopback: every route, each error
 * code, conditional writes, exactly-once sessions, tokens, snapshots and metrics.
 *
 * @module
 */
import assert from "node:assert/strict";
import { base64ToBytes } from "../../src/http/base64.ts";
import { KvStateMachine } from "../../src/kv/kv_state_machine.ts";
import { type HttpCluster, HttpCluster as Cluster, type HttpNode } from "./http_cluster.ts";
import { parsePrometheus } from "./prometheus_parse.ts";
import { rawRequest } from "./raw_http.ts";

const dec = new TextDecoder();

interface Call {
  readonly method?: string;
  readonly body?: string | Uint8Array;
  readonly headers?: Record<string, string>;
}

async function call(n: HttpNode, path: string, c: Call = {}) {
  const r = await fetch(n.url + path, {
    method: c.method ?? "GET",
    headers: c.headers,
    body: c.body as BodyInit | undefined,
  });
  const bytes = new Uint8Array(await r.arrayBuffer());
  const type = r.headers.get("content-type") ?? "";
  // deno-lint-ignore no-explicit-any
  const json: any = type.startsWith("application/json") ? JSON.parse(dec.decode(bytes)) : undefined;
  return { status: r.status, headers: r.headers, bytes, text: dec.decode(bytes), json };
}

async function withSingleNode(
  fn: (c: HttpCluster, n: HttpNode) => Promise<void>,
  options: Parameters<typeof Cluster.start>[1] = {},
): Promise<void> {
  const c = await Cluster.start(["n1"], options);
  try {
    const n = await c.leader();
    await fn(c, n);
  } finally {
    await c.close();
  }
}

Deno.test("http: put, get, append, delete a key, with its headers", async () => {
  await withSingleNode(async (_c, n) => {
    const put = await call(n, "/kv/a%2Fb%20c", { method: "PUT", body: "v1" });
    assert.equal(put.status, 200);
    assert.equal(put.headers.get("floe-node"), "n1");
    assert.equal(put.headers.get("floe-leader"), "n1");
    const rev = put.json.revision;
    assert.ok(rev > 0);
    assert.deepEqual(put.json, { revision: rev, prevRevision: 0, createRevision: rev, version: 1 });
    assert.equal(put.headers.get("etag"), `"${rev}"`);

    const get = await call(n, "/kv/a%2Fb%20c");
    assert.equal(get.status, 200);
    assert.equal(get.text, "v1");
    assert.equal(get.headers.get("etag"), `"${rev}"`);
    assert.equal(get.headers.get("floe-revision"), String(rev));
    assert.equal(get.headers.get("floe-create-revision"), String(rev));
    assert.equal(get.headers.get("floe-version"), "1");
    assert.equal(get.headers.get("content-type"), "application/octet-stream");
    // The key is the decoded path rest: a literal slash works the same as %2F.
    assert.equal((await call(n, "/kv/a/b%20c")).text, "v1");

    const app = await call(n, "/kv/a%2Fb%20c", { method: "POST", body: "+v2" });
    assert.equal(app.status, 200);
    assert.equal(app.json.prevRevision, rev);
    assert.equal(app.json.version, 2);
    assert.equal((await call(n, "/kv/a/b c")).text, "v1+v2");

    const del = await call(n, "/kv/a/b%20c", { method: "DELETE" });
    assert.equal(del.status, 200);
    assert.equal(del.json.prevRevision, app.json.revision);
    assert.equal(del.json.version, 0);
    const gone = await call(n, "/kv/a/b%20c");
    assert.equal(gone.status, 404);
    assert.equal(gone.json.error.code, "not-found");
    const again = await call(n, "/kv/a/b%20c", { method: "DELETE" });
    assert.deepEqual(again.json, { revision: 0, prevRevision: 0, createRevision: 0, version: 0 });

    // Binary values come back byte for byte.
    const bin = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 255);
    assert.equal((await call(n, "/kv/bin", { method: "PUT", body: bin })).status, 200);
    assert.deepEqual((await call(n, "/kv/bin")).bytes, bin);
    assert.equal((await call(n, "/kv/bin?consistency=stale")).bytes.length, 300);
  });
});

Deno.test("http: If-Match compare-and-swap, If-None-Match create-only and 304", async () => {
  await withSingleNode(async (_c, n) => {
    const created = await call(n, "/kv/k", {
      method: "PUT",
      body: "1",
      headers: { "If-None-Match": "*" },
    });
    assert.equal(created.status, 200);
    const rev = created.json.revision;
    const dup = await call(n, "/kv/k", {
      method: "PUT",
      body: "x",
      headers: { "If-None-Match": "*" },
    });
    assert.equal(dup.status, 412);
    assert.equal(dup.json.error.code, "failed-condition");
    assert.equal(dup.json.error.revision, rev);

    const wrong = await call(n, "/kv/k", {
      method: "PUT",
      body: "2",
      headers: { "If-Match": `"${rev + 100}"` },
    });
    assert.equal(wrong.status, 412);
    assert.equal(wrong.json.error.revision, rev);
    const ok = await call(n, "/kv/k", {
      method: "PUT",
      body: "2",
      headers: { "If-Match": `"${rev}"` },
    });
    assert.equal(ok.status, 200);
    assert.equal(ok.json.prevRevision, rev);
    assert.equal((await call(n, "/kv/k")).text, "2");

    const staleDelete = await call(n, "/kv/k", {
      method: "DELETE",
      headers: { "If-Match": `"${rev}"` },
    });
    assert.equal(staleDelete.status, 412);
    assert.equal(staleDelete.json.error.revision, ok.json.revision);

    const notModified = await call(n, "/kv/k", {
      headers: { "If-None-Match": `"${ok.json.revision}"` },
    });
    assert.equal(notModified.status, 304);
    assert.equal(notModified.headers.get("etag"), `"${ok.json.revision}"`);
    assert.equal(
      (await call(n, "/kv/k", { headers: { "If-None-Match": `"${rev}"` } })).status,
      200,
    );

    const del = await call(n, "/kv/k", {
      method: "DELETE",
      headers: { "If-Match": `"${ok.json.revision}"` },
    });
    assert.equal(del.status, 200);
  });
});

Deno.test("http: a retried write (same client id and sequence) applies once", async () => {
  await withSingleNode(async (_c, n) => {
    const session = { "Floe-Client-Id": "client-1", "Floe-Sequence": "1" };
    const first = await call(n, "/kv/counter", { method: "POST", body: "x", headers: session });
    const retry = await call(n, "/kv/counter", { method: "POST", body: "x", headers: session });
    assert.equal(first.status, 200);
    assert.deepEqual(retry.json, first.json);
    assert.equal((await call(n, "/kv/counter")).text, "x");
    assert.equal((await call(n, "/kv/counter")).headers.get("floe-version"), "1");

    const next = { "Floe-Client-Id": "client-1", "Floe-Sequence": "2" };
    assert.equal(
      (await call(n, "/kv/counter", { method: "POST", body: "y", headers: next })).status,
      200,
    );
    assert.equal((await call(n, "/kv/counter")).text, "xy");
    const stale = await call(n, "/kv/counter", { method: "POST", body: "z", headers: session });
    assert.equal(stale.status, 409);
    assert.equal(stale.json.error.code, "stale-sequence");
    assert.equal(stale.json.error.lastSeq, 2);
    assert.equal((await call(n, "/kv/counter")).text, "xy");
  });
});

Deno.test("http: list by prefix, paged, values in base64", async () => {
  await withSingleNode(async (_c, n) => {
    for (const k of ["p/a", "p/b", "p/c", "q/a"]) {
      assert.equal((await call(n, `/kv/${k}`, { method: "PUT", body: `v-${k}` })).status, 200);
    }
    const page1 = await call(n, "/kv?prefix=p%2F&limit=2");
    assert.equal(page1.status, 200);
    assert.deepEqual(page1.json.entries.map((e: { key: string }) => e.key), ["p/a", "p/b"]);
    assert.equal(dec.decode(base64ToBytes(page1.json.entries[0].value)), "v-p/a");
    assert.equal(page1.json.entries[0].version, 1);
    assert.equal(page1.json.next, "p/c");
    assert.ok(page1.json.appliedIndex >= 4);
    const page2 = await call(n, `/kv?prefix=p%2F&limit=2&from=${page1.json.next}`);
    assert.deepEqual(page2.json.entries.map((e: { key: string }) => e.key), ["p/c"]);
    assert.equal(page2.json.next, undefined);
    const all = await call(n, "/kv?consistency=stale");
    assert.equal(all.json.entries.length, 4);
  });
});

Deno.test("http: bad requests get JSON errors: 400, 404, 405, 413", async () => {
  await withSingleNode(async (_c, n) => {
    const cases: [string, Call, number, string][] = [
      ["/kv/k", { method: "PUT", body: "v", headers: { "If-Match": "nope" } }, 400, "bad-request"],
      [
        "/kv/k",
        { method: "PUT", body: "v", headers: { "If-None-Match": '"3"' } },
        400,
        "bad-request",
      ],
      ["/kv/k", { method: "POST", body: "v", headers: { "If-Match": '"3"' } }, 400, "bad-request"],
      [
        "/kv/k",
        { method: "PUT", body: "v", headers: { "Floe-Client-Id": "c" } },
        400,
        "bad-request",
      ],
      [
        "/kv/k",
        { method: "PUT", body: "v", headers: { "Floe-Client-Id": "c", "Floe-Sequence": "-1" } },
        400,
        "bad-request",
      ],
      ["/kv/", { method: "PUT", body: "v" }, 400, "bad-request"],
      ["/kv/%E0%A4%A", {}, 400, "bad-request"],
      ["/kv/k?consistency=eventual", {}, 400, "bad-request"],
      ["/kv?limit=0", {}, 400, "bad-request"],
      ["/kv?watch&from=x", {}, 400, "bad-request"],
      ["/kv/" + "k".repeat(5000), {}, 413, "too-large"],
      ["/nowhere", {}, 404, "not-found"],
      ["/kv/missing", {}, 404, "not-found"],
      ["/status", { method: "POST", body: "" }, 405, "method-not-allowed"],
      ["/kv/k", { method: "PATCH", body: "v" }, 405, "method-not-allowed"],
      ["/kv", { method: "PUT", body: "v" }, 405, "method-not-allowed"],
    ];
    for (const [path, c, status, code] of cases) {
      const r = await call(n, path, c);
      const what = `${c.method ?? "GET"} ${path.slice(0, 40)}`;
      assert.equal(r.status, status, what);
      assert.equal(r.json?.error?.code, code, what);
      assert.equal(typeof r.json.error.message, "string", what);
      assert.equal(r.headers.get("floe-node"), "n1", what);
    }
    assert.equal(
      (await call(n, "/kv/k", { method: "PATCH" })).headers.get("allow"),
      "GET, PUT, POST, DELETE",
    );
    assert.equal((await call(n, "/status", { method: "DELETE" })).headers.get("allow"), "GET");
  }, { kv: { limits: { maxValueBytes: 1024 } } });
});

Deno.test("http: a body over maxValueBytes is 413, declared or streamed; an append past it too", async () => {
  await withSingleNode(async (_c, n) => {
    const big = new Uint8Array(1025);
    const declared = await call(n, "/kv/big", { method: "PUT", body: big });
    assert.equal(declared.status, 413);
    assert.equal(declared.json.error.code, "too-large");
    // A stream has no Content-Length: the limit applies as the bytes arrive.
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 10; i++) c.enqueue(new Uint8Array(200));
        c.close();
      },
    });
    const streamed = await fetch(`${n.url}/kv/big`, { method: "PUT", body: stream });
    assert.equal(streamed.status, 413);
    assert.equal((await streamed.json()).error.code, "too-large");
    assert.equal((await call(n, "/kv/big")).status, 404);

    assert.equal(
      (await call(n, "/kv/grow", { method: "PUT", body: new Uint8Array(1000) })).status,
      200,
    );
    const grow = await call(n, "/kv/grow", { method: "POST", body: new Uint8Array(100) });
    assert.equal(grow.status, 413);
    assert.equal(grow.json.error.field, "value");
    assert.equal((await call(n, "/kv/grow")).bytes.length, 1000);
  }, { kv: { limits: { maxValueBytes: 1024 } } });
});

Deno.test("http: a token guards every route but /healthz", async () => {
  await withSingleNode(async (_c, n) => {
    const none = await call(n, "/kv/k");
    assert.equal(none.status, 401);
    assert.equal(none.json.error.code, "unauthorized");
    assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer/);
    const wrong = await call(n, "/status", { headers: { Authorization: "Bearer nope" } });
    assert.equal(wrong.status, 401);
    assert.equal((await call(n, "/metrics")).status, 401);
    assert.equal((await call(n, "/kv/k", { method: "PUT", body: "v" })).status, 401);
    assert.equal((await call(n, "/healthz")).status, 200);
    const auth = { Authorization: "Bearer s3cret" };
    assert.equal((await call(n, "/kv/k", { method: "PUT", body: "v", headers: auth })).status, 200);
    assert.equal((await call(n, "/kv/k", { headers: auth })).text, "v");
  }, { api: { token: "s3cret" } });
});

Deno.test("http: /status, /healthz, /metrics (Prometheus text) and /snapshot", async () => {
  await withSingleNode(async (c, n) => {
    for (let i = 0; i < 5; i++) await call(n, `/kv/s${i}`, { method: "PUT", body: `v${i}` });
    const status = await call(n, "/status");
    assert.equal(status.status, 200);
    assert.equal(status.json.id, "n1");
    assert.equal(status.json.role, "leader");
    assert.equal(status.json.leader, "n1");
    for (const f of ["term", "commit", "applied", "lastIndex", "snapshotIndex"]) {
      assert.equal(typeof status.json[f], "number", f);
    }
    assert.deepEqual(status.json.peers, []);

    const health = await call(n, "/healthz");
    assert.equal(health.status, 200);
    assert.equal(health.text, "ok\n");

    const metrics = await call(n, "/metrics");
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const families = parsePrometheus(metrics.text);
    assert.equal(families.get("floe_has_leader")?.samples[0].value, 1);
    assert.equal(families.get("floe_term")?.type, "gauge");
    assert.ok(families.get("floe_commit_index")!.samples[0].value >= 5);
    assert.ok(families.get("floe_applied_index")!.samples[0].value >= 5);
    assert.equal(families.get("floe_kv_keys")?.samples[0].value, 5);

    const snap = await fetch(`${n.url}/snapshot`);
    assert.equal(snap.status, 200);
    const index = Number(snap.headers.get("floe-snapshot-index"));
    const term = Number(snap.headers.get("floe-snapshot-term"));
    assert.equal(index, n.kv.appliedIndex);
    assert.equal(term, n.node.status().term);
    const restored = new KvStateMachine();
    restored.restore(new Uint8Array(await snap.arrayBuffer()));
    assert.equal(restored.appliedIndex, index);
    assert.equal(dec.decode(restored.get("s4")!.value), "v4");

    await c.stop("n1");
  });
});

Deno.test("http: /healthz is 503 while no leader is known", async () => {
  // Two of three nodes never start: n1 can never win an election.
  const lonely = await Cluster.start(["n1", "n2", "n3"], { running: ["n1"] });
  try {
    const n = lonely.get("n1");
    const r = await call(n, "/healthz");
    assert.equal(r.status, 503);
    assert.equal(r.json.error.code, "no-leader");
    assert.equal(r.headers.get("retry-after"), "1");
    assert.equal(r.headers.get("floe-leader"), null);
    const w = await call(n, "/kv/k", { method: "PUT", body: "v" });
    assert.equal(w.status, 503);
    assert.equal(w.json.error.code, "no-leader");
    // Stale reads are served by whoever is asked.
    assert.equal((await call(n, "/kv/k?consistency=stale")).status, 404);
  } finally {
    await lonely.close();
  }
});

Deno.test("http: keys are the raw path rest; dot segments are part of the key", async () => {
  await withSingleNode(async (_c, n) => {
    const put = await rawRequest(n.url, "PUT", "/kv/a/../b", "dots");
    assert.equal(put.status, 200, put.body);
    assert.equal(n.kv.get("a/../b")?.value.length, 4);
    assert.equal(n.kv.get("b"), undefined);
    assert.equal((await call(n, "/kv/a%2F..%2Fb")).text, "dots");
    assert.equal((await rawRequest(n.url, "GET", "/kv/..")).status, 404);
    assert.equal((await rawRequest(n.url, "PUT", "/kv/..", "x")).status, 200);
    assert.equal(n.kv.get("..")?.value.length, 1);
  });
});

Deno.test("http: CORS preflights and exposed headers for allowed origins only", async () => {
  await withSingleNode(async (_c, n) => {
    const pre = await call(n, "/kv/k", {
      method: "OPTIONS",
      headers: { Origin: "https://app.example", "Access-Control-Request-Method": "PUT" },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-origin"), "https://app.example");
    assert.equal(pre.headers.get("access-control-allow-methods"), "GET, PUT, POST, DELETE");
    assert.match(pre.headers.get("access-control-allow-headers") ?? "", /Floe-Sequence/);
    const put = await call(n, "/kv/k", {
      method: "PUT",
      body: "v",
      headers: { Origin: "https://app.example" },
    });
    assert.equal(put.headers.get("access-control-allow-origin"), "https://app.example");
    assert.match(put.headers.get("access-control-expose-headers") ?? "", /ETag.*Floe-Leader/);
    const other = await call(n, "/kv/k", { headers: { Origin: "https://evil.example" } });
    assert.equal(other.status, 200);
    assert.equal(other.headers.get("access-control-allow-origin"), null);
    const otherPre = await call(n, "/kv/k", {
      method: "OPTIONS",
      headers: { Origin: "https://evil.example", "Access-Control-Request-Method": "PUT" },
    });
    assert.equal(otherPre.status, 405);
  }, { api: { corsOrigins: ["https://app.example"] } });
});
