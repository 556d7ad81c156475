// startFloeServer: one node and three nodes in one process, over the HTTP API on loopback.
import assert from "node:assert/strict";
import { type FloeServer, startFloeServer } from "../../src/service/floe_server.ts";
import { NodeConfigError } from "../../src/service/node_config.ts";
import { freePorts } from "../../src/testing/free_port.ts";

const SECRET = "service-test-secret-0123456789";
const FAST = { heartbeatMs: 50, electionMinMs: 200, electionMaxMs: 400 };

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function healthy(url: string): Promise<true | undefined> {
  const r = await fetch(`${url}/healthz`);
  await r.body?.cancel();
  return r.status === 200 ? true : undefined;
}

async function put(url: string, key: string, value: string): Promise<{ revision: number }> {
  const r = await fetch(`${url}/kv/${key}`, { method: "PUT", body: value });
  const body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  return body;
}

async function get(url: string, key: string, stale = false): Promise<string | undefined> {
  const r = await fetch(`${url}/kv/${key}${stale ? "?consistency=stale" : ""}`);
  if (r.status === 404) {
    await r.body?.cancel();
    return undefined;
  }
  assert.equal(r.status, 200);
  return await r.text();
}

Deno.test("startFloeServer: a single node serves the API, stops, and resumes from its data", async () => {
  const dir = await Deno.makeTempDir({ prefix: "floe-server-" });
  let server: FloeServer | undefined;
  try {
    server = await startFloeServer({
      id: "solo",
      listen: { hostname: "127.0.0.1", port: 0 },
      dataDir: dir,
      raft: FAST,
    });
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(server.id, "solo");
    const url = server.url;
    await until("a leader", () => healthy(url));
    const { revision } = await put(url, "a/b", "one");
    assert.ok(revision > 0);
    assert.equal(await get(url, "a/b"), "one");
    assert.equal(server.kv.appliedIndex >= revision, true);
    // The peer endpoint is on the same port and wants a WebSocket.
    const peer = await fetch(`${url}/floe`);
    await peer.body?.cancel();
    assert.equal(peer.status, 426);
    await server.stop();
    await server.stop(); // twice is fine
    server = await startFloeServer({
      id: "solo",
      listen: { hostname: "127.0.0.1", port: 0 },
      dataDir: dir,
      raft: FAST,
    });
    const again = server.url;
    await until("a leader after restart", () => healthy(again));
    assert.equal(await get(again, "a/b"), "one");
  } finally {
    await server?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("startFloeServer: the API can move to its own port; the main port then serves peers only", async () => {
  const dir = await Deno.makeTempDir({ prefix: "floe-server-" });
  const server = await startFloeServer({
    id: "solo",
    listen: { hostname: "127.0.0.1", port: 0 },
    clientListen: { hostname: "127.0.0.1", port: 0 },
    dataDir: dir,
    token: "t0ken",
    raft: FAST,
  });
  try {
    await until("a leader", () => healthy(server.url));
    const denied = await fetch(`${server.url}/kv/x`);
    await denied.body?.cancel();
    assert.equal(denied.status, 401);
    const ok = await fetch(`${server.url}/kv/x`, {
      method: "PUT",
      body: "v",
      headers: { authorization: "Bearer t0ken" },
    });
    assert.equal(ok.status, 200, await ok.text());
    const peerPort = new URL(server.peerUrl).port;
    assert.notEqual(peerPort, new URL(server.url).port);
    const r = await fetch(`http://127.0.0.1:${peerPort}/kv/x`);
    await r.body?.cancel();
    assert.equal(r.status, 404);
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("startFloeServer: refuses a multi-node cluster without a secret, or without itself", async () => {
  const peers = [
    { id: "a", address: { hostname: "127.0.0.1", port: 1 } },
    { id: "b", address: { hostname: "127.0.0.1", port: 2 } },
  ];
  const base = { listen: { hostname: "127.0.0.1", port: 0 }, dataDir: "/nonexistent/never" };
  await assert.rejects(startFloeServer({ ...base, id: "a", peers }), NodeConfigError);
  await assert.rejects(
    startFloeServer({ ...base, id: "c", peers, secret: SECRET }),
    NodeConfigError,
  );
});

Deno.test("startFloeServer: three nodes elect a leader, forward writes and replicate", async () => {
  const dirs = await Promise.all([0, 1, 2].map(() => Deno.makeTempDir({ prefix: "floe-trio-" })));
  const ports = freePorts(3);
  const ids = ["a", "b", "c"];
  const peers = ids.map((id, i) => ({ id, address: { hostname: "127.0.0.1", port: ports[i] } }));
  const servers: FloeServer[] = [];
  try {
    for (const [i, id] of ids.entries()) {
      servers.push(
        await startFloeServer({
          id,
          listen: peers[i].address,
          dataDir: dirs[i],
          peers,
          secret: SECRET,
          cluster: "trio",
          raft: FAST,
        }),
      );
    }
    await until("a leader known everywhere", async () => {
      for (const s of servers) if (!(await healthy(s.url))) return undefined;
      return true;
    });
    const follower = servers.find((s) => s.node.status().role !== "leader")!;
    const { revision } = await put(follower.url, "greeting", "hello");
    assert.ok(revision > 0);
    for (const s of servers) assert.equal(await get(s.url, "greeting"), "hello");
    // Every replica applies it, so stale reads see it too in the end.
    for (const s of servers) {
      await until(
        `${s.id} applies`,
        async () => (await get(s.url, "greeting", true)) === "hello" ? true : undefined,
      );
    }
  } finally {
    for (const s of servers) await s.stop();
    for (const d of dirs) await Deno.remove(d, { recursive: true });
  }
});
