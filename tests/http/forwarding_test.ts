/**
 * The HTTP API on a real 3-node cluster over loopback: followers forward writes, linearizable
 * reads and snapshots to the leader (bodies streamed both ways), serve stale reads themselves,
 * and never forward twice.
 *
 * @module
 */
import assert from "node:assert/strict";
import { KvStateMachine } from "../../src/kv/kv_state_machine.ts";
import { HttpCluster, type HttpNode } from "./http_cluster.ts";
import { parsePrometheus } from "./prometheus_parse.ts";
import { rawRequest } from "./raw_http.ts";

const dec = new TextDecoder();

function send(n: HttpNode, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(n.url + path, init);
}

Deno.test({
  name: "http cluster: a follower forwards writes, reads and snapshots to the leader",
  async fn() {
    const c = await HttpCluster.start(["n1", "n2", "n3"]);
    try {
      const leader = await c.leader();
      const f = await c.follower();

      const put = await send(f, "/kv/fw", { method: "PUT", body: "via follower" });
      assert.equal(put.status, 200);
      assert.equal(put.headers.get("floe-node"), f.id);
      assert.equal(put.headers.get("floe-leader"), leader.id);
      const rev = (await put.json()).revision;
      assert.equal(put.headers.get("etag"), `"${rev}"`);

      // A linearizable read through the follower sees the write at once.
      const get = await send(f, "/kv/fw");
      assert.equal(get.status, 200);
      assert.equal(await get.text(), "via follower");
      assert.equal(get.headers.get("floe-revision"), String(rev));

      // Conditions and sessions travel with the forwarded request.
      const cas = await send(f, "/kv/fw", {
        method: "PUT",
        body: "x",
        headers: { "If-Match": `"${rev + 1000}"` },
      });
      assert.equal(cas.status, 412);
      assert.equal((await cas.json()).error.revision, rev);
      const session = { "Floe-Client-Id": "fwd-client", "Floe-Sequence": "7" };
      const a1 = await send(f, "/kv/log", { method: "POST", body: "e", headers: session });
      const a2 = await send(leader, "/kv/log", { method: "POST", body: "e", headers: session });
      assert.deepEqual(await a2.json(), await a1.json());
      assert.equal(await (await send(f, "/kv/log")).text(), "e");

      // A 512 KiB value streams through the follower and back.
      const big = Uint8Array.from({ length: 512 * 1024 }, (_, i) => (i * 13) & 255);
      assert.equal((await send(f, "/kv/big", { method: "PUT", body: big })).status, 200);
      const back = new Uint8Array(await (await send(f, "/kv/big")).arrayBuffer());
      assert.deepEqual(back, big);

      const tooBig = await send(f, "/kv/big", {
        method: "PUT",
        body: new Uint8Array(1024 * 1024 + 1),
      });
      assert.equal(tooBig.status, 413);
      assert.equal((await tooBig.json()).error.code, "too-large");

      const list = await send(f, "/kv?prefix=f");
      assert.deepEqual((await list.json()).entries.map((e: { key: string }) => e.key), ["fw"]);

      const snap = await send(f, "/snapshot");
      assert.equal(snap.status, 200);
      const restored = new KvStateMachine();
      restored.restore(new Uint8Array(await snap.arrayBuffer()));
      assert.equal(Number(snap.headers.get("floe-snapshot-index")), restored.appliedIndex);
      assert.equal(Number(snap.headers.get("floe-snapshot-term")), leader.node.status().term);
      assert.equal(dec.decode(restored.get("fw")!.value), "via follower");

      const del = await send(f, "/kv/fw", { method: "DELETE" });
      assert.equal((await del.json()).prevRevision, rev);
      assert.equal((await send(f, "/kv/fw")).status, 404);

      // A key with dot segments reaches the leader as the same key.
      const dots = await rawRequest(f.url, "PUT", "/kv/x/../y", "d");
      assert.equal(dots.status, 200, dots.body);
      assert.equal(dec.decode(leader.kv.get("x/../y")?.value), "d");
      assert.equal(leader.kv.get("y"), undefined);

      // A forwarded request that reaches a node that does not lead is not forwarded again.
      const loop = await send(f, "/kv/fw", {
        method: "PUT",
        body: "x",
        headers: { "Floe-Forwarded": "n9" },
      });
      assert.equal(loop.status, 503);
      assert.equal(loop.headers.get("retry-after"), "1");
      const body = await loop.json();
      assert.equal(body.error.code, "no-leader");
      assert.equal(body.error.leader, leader.id);
    } finally {
      await c.close();
    }
  },
});

Deno.test({
  name: "http cluster: stale reads are served locally, bounded by max_staleness_ms",
  async fn() {
    const c = await HttpCluster.start(["n1", "n2", "n3"]);
    try {
      const leader = await c.leader();
      const put = await send(leader, "/kv/s", { method: "PUT", body: "v" });
      const rev = (await put.json()).revision;
      await c.applied(rev);
      const followers = [...c.nodes.values()].filter((n) => n !== leader);
      for (const f of followers) {
        const r = await send(f, "/kv/s?consistency=stale&max_staleness_ms=60000");
        assert.equal(r.status, 200);
        assert.equal(await r.text(), "v");
      }
      // Leader and one follower gone: the last node still answers stale reads from what it
      // has, refuses a staleness bound it cannot meet, and has nowhere to send linearizable ones.
      const [f, other] = followers;
      await c.stop(leader.id);
      await c.stop(other.id);
      const stale = await send(f, "/kv/s?consistency=stale");
      assert.equal(stale.status, 200);
      assert.equal(stale.headers.get("floe-node"), f.id);
      assert.equal(await stale.text(), "v");
      await new Promise((r) => setTimeout(r, 50));
      const bounded = await send(f, "/kv/s?consistency=stale&max_staleness_ms=10");
      assert.equal(bounded.status, 503);
      assert.equal((await bounded.json()).error.code, "not-ready");
      assert.equal(bounded.headers.get("retry-after"), "1");
      const linearizable = await send(f, "/kv/s");
      assert.equal(linearizable.status, 503);
      assert.equal((await linearizable.json()).error.code, "no-leader");
      assert.equal(linearizable.headers.get("retry-after"), "1");
    } finally {
      await c.close();
    }
  },
});

Deno.test({
  name: "http cluster: the leader's /status and /metrics report its peers",
  async fn() {
    const c = await HttpCluster.start(["n1", "n2", "n3"]);
    try {
      const leader = await c.leader();
      for (let i = 0; i < 3; i++) await send(leader, `/kv/m${i}`, { method: "PUT", body: "v" });
      const status = await (await send(leader, "/status")).json();
      assert.equal(status.role, "leader");
      assert.deepEqual(
        status.peers.map((p: { id: string }) => p.id),
        [...c.nodes.keys()].filter((id) => id !== leader.id).sort(),
      );
      for (const p of status.peers) {
        assert.equal(typeof p.match, "number");
        assert.equal(typeof p.next, "number");
        assert.equal(typeof p.state, "string");
        assert.equal(p.lag, Math.max(0, status.lastIndex - p.match));
      }
      const f = await c.follower();
      const fs = await (await send(f, "/status")).json();
      assert.equal(fs.role, "follower");
      assert.equal(fs.leader, leader.id);
      assert.deepEqual(fs.peers, []);

      const families = parsePrometheus(await (await send(leader, "/metrics")).text());
      const lag = families.get("floe_peer_lag")!;
      assert.deepEqual(
        lag.samples.map((s) => s.labels.peer).sort(),
        status.peers.map((p: { id: string }) => p.id),
      );
      for (const name of ["floe_save_duration_seconds", "floe_apply_duration_seconds"]) {
        const h = families.get(name)!;
        assert.equal(h.type, "histogram", name);
        assert.ok(h.samples.find((s) => s.name === `${name}_count`)!.value > 0, name);
      }
      assert.ok(families.get("floe_proposals_committed_total")!.samples[0].value >= 3);
      assert.equal(families.get("floe_leader_changes_total")?.type, "counter");
      assert.equal(families.get("floe_proposals_failed_total")?.type, "counter");
      const responses = families.get("floe_http_responses_total")!;
      assert.ok(responses.samples.some((s) => s.labels.code === "200" && s.value >= 4));
    } finally {
      await c.close();
    }
  },
});
