// `floe cluster` as a user runs it: N real node processes, `floe kv` against them, SIGTERM stops
// everything (exit 0, nothing left listening), and `floe snapshot save/restore` seeds a new
// cluster that reads the keys back.
import assert from "node:assert/strict";
import { join } from "node:path";
import { ClusterProcess, consecutiveFreePorts, FLOE, floe, portsFree } from "./cli_process.ts";

const SECRET = "cluster-test-secret-0123456789";

function endpoints(base: number, n: number): string {
  return Array.from({ length: n }, (_, i) => `http://127.0.0.1:${base + i}`).join(",");
}

async function waitReady(cluster: ClusterProcess, n: number): Promise<void> {
  await cluster.waitFor(new RegExp(`^floe cluster: ${n} node\\(s\\) ready`));
}

Deno.test({
  name: "floe cluster: 3 node processes start, serve floe kv, and stop cleanly on SIGTERM",
  sanitizeResources: true,
  fn: async () => {
    const data = await Deno.makeTempDir({ prefix: "floe-cluster-" });
    const base = consecutiveFreePorts(3);
    const cluster = new ClusterProcess(
      ["--nodes", "3", "--port", String(base), "--data", data],
      { FLOE_SECRET: SECRET },
    );
    try {
      await waitReady(cluster, 3);
      for (const id of ["n1", "n2", "n3"]) {
        assert.match(cluster.output, new RegExp(`^\\[${id}\\] floe node ${id} ready http://`, "m"));
      }
      const env = { FLOE_ENDPOINTS: endpoints(base, 3) };
      const put = await floe(["kv", "put", "greeting", "hello world"], env);
      assert.equal(put.code, 0, `${put.stderr}\n${cluster.output}`);
      assert.ok(JSON.parse(put.stdout).revision > 0);
      // Read through another node than the first endpoint: a follower forwards.
      const get = await floe([
        "kv",
        "get",
        "greeting",
        "--endpoints",
        `http://127.0.0.1:${base + 2}`,
      ]);
      assert.equal(get.code, 0, get.stderr);
      assert.equal(get.stdout, "hello world");
      const missing = await floe(["kv", "get", "nope"], env);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /not found/);
      const cas = await floe(["kv", "cas", "greeting", "1", "x"], env);
      assert.equal(cas.code, 1);
      assert.match(cas.stderr, /failed condition/);
      const status = await floe(["status", "--json"], env);
      assert.equal(status.code, 0, status.stderr);
      const rows = JSON.parse(status.stdout) as { status?: { role: string } }[];
      assert.equal(rows.filter((r) => r.status?.role === "leader").length, 1);

      const stopped = await cluster.stop("SIGTERM");
      assert.equal(stopped.code, 0, cluster.output);
      assert.match(cluster.output, /floe cluster: stopped cleanly/);
      for (const id of ["n1", "n2", "n3"]) {
        assert.match(cluster.output, new RegExp(`\\[${id}\\] floe node ${id} stopped`));
      }
      assert.ok(portsFree(base, 3), "a node process is still listening after the cluster exited");
      assert.doesNotMatch(cluster.output, /exited unexpectedly|had to be killed/);
    } finally {
      await cluster.kill();
      await Deno.remove(data, { recursive: true });
    }
  },
});

Deno.test("floe cluster: a node that dies is reported and the others keep serving", async () => {
  const data = await Deno.makeTempDir({ prefix: "floe-cluster-" });
  const base = consecutiveFreePorts(3);
  const cluster = new ClusterProcess(
    ["--nodes", "3", "--port", String(base), "--data", data],
    { FLOE_SECRET: SECRET },
  );
  try {
    await waitReady(cluster, 3);
    const line = await cluster.waitFor(/^floe cluster: n2 started \(pid \d+/);
    Deno.kill(Number(/pid (\d+)/.exec(line)![1]), "SIGKILL");
    await cluster.waitFor(
      /^floe cluster: n2 exited unexpectedly \(signal SIGKILL\); 2 node\(s\) keep running/,
    );
    const env = { FLOE_ENDPOINTS: `http://127.0.0.1:${base},http://127.0.0.1:${base + 2}` };
    const put = await floe(["kv", "put", "still", "here"], env);
    assert.equal(put.code, 0, put.stderr);
    assert.equal((await floe(["kv", "get", "still"], env)).stdout, "here");
    assert.equal((await cluster.stop("SIGTERM")).code, 0, cluster.output);
    assert.ok(portsFree(base, 3));
  } finally {
    await cluster.kill();
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("floe kv: stdin values, append, list, del and watch on a one-node cluster", async () => {
  const data = await Deno.makeTempDir({ prefix: "floe-cluster-" });
  const base = consecutiveFreePorts(1);
  const env = { FLOE_ENDPOINTS: endpoints(base, 1) };
  const cluster = new ClusterProcess(["--nodes", "1", "--port", String(base), "--data", data]);
  let watcher: Deno.ChildProcess | undefined;
  try {
    await waitReady(cluster, 1);
    const binary = new Uint8Array([0, 1, 2, 255]);
    assert.equal((await floe(["kv", "put", "app/bin", "-"], env, binary)).code, 0);
    assert.equal((await floe(["kv", "put", "app/text", "ab"], env)).code, 0);
    assert.equal((await floe(["kv", "append", "app/text", "cd"], env)).code, 0);
    assert.equal((await floe(["kv", "put", "zzz", "other"], env)).code, 0);
    const list = await floe(["kv", "list", "app/"], env);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(
      JSON.parse(list.stdout).entries.map((e: Record<string, unknown>) => [
        e.key,
        e.value ?? e.valueBase64,
      ]),
      [["app/bin", "AAEC/w=="], ["app/text", "abcd"]],
    );
    const del = await floe(["kv", "del", "app/bin"], env);
    assert.equal(del.code, 0, del.stderr);
    watcher = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", FLOE, "kv", "watch", "app/", "--from", "1"],
      env,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const lines: string[] = [];
    const reader = watcher.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    while (lines.length < 4) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += value;
      const parts = buf.split("\n");
      buf = parts.pop()!;
      lines.push(...parts);
    }
    reader.releaseLock();
    const events = lines.map((l) => JSON.parse(l));
    assert.deepEqual(events.map((e) => [e.type, e.key]), [
      ["put", "app/bin"],
      ["put", "app/text"],
      ["put", "app/text"],
      ["delete", "app/bin"],
    ]);
    assert.equal(events[2].value, "abcd");
    watcher.kill("SIGINT");
    assert.equal((await watcher.status).code, 0);
    assert.equal((await cluster.stop("SIGTERM")).code, 0, cluster.output);
  } finally {
    if (watcher) {
      try {
        watcher.kill("SIGKILL");
      } catch { /* exited */ }
      await watcher.status;
      await watcher.stdout.cancel().catch(() => {});
      await watcher.stderr.cancel().catch(() => {});
    }
    await cluster.kill();
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("floe cluster: a restarted cluster resumes from its data", async () => {
  const data = await Deno.makeTempDir({ prefix: "floe-cluster-" });
  const base = consecutiveFreePorts(1);
  const env = { FLOE_ENDPOINTS: endpoints(base, 1) };
  let cluster = new ClusterProcess(["--nodes", "1", "--port", String(base), "--data", data]);
  try {
    await waitReady(cluster, 1);
    assert.equal((await floe(["kv", "put", "k", "v1"], env)).code, 0);
    assert.equal((await cluster.stop("SIGINT")).code, 0, cluster.output);
    cluster = new ClusterProcess(["--nodes", "1", "--port", String(base), "--data", data]);
    await waitReady(cluster, 1);
    const get = await floe(["kv", "get", "k"], env);
    assert.equal(get.stdout, "v1", get.stderr);
    assert.equal((await cluster.stop("SIGTERM")).code, 0, cluster.output);
  } finally {
    await cluster.kill();
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("floe snapshot: save from a running cluster, restore into 3 fresh dirs, read back", async () => {
  const root = await Deno.makeTempDir({ prefix: "floe-snapshot-" });
  const sourceBase = consecutiveFreePorts(3);
  const source = new ClusterProcess(
    ["--nodes", "3", "--port", String(sourceBase), "--data", join(root, "a")],
    { FLOE_SECRET: SECRET },
  );
  let restored: ClusterProcess | undefined;
  try {
    await waitReady(source, 3);
    const srcEnv = { FLOE_ENDPOINTS: endpoints(sourceBase, 3) };
    const keys: Record<string, string> = { "app/a": "alpha", "app/b": "beta", "other": "ω" };
    for (const [k, v] of Object.entries(keys)) {
      const r = await floe(["kv", "put", k, v], srcEnv);
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal((await floe(["kv", "del", "app/b"], srcEnv)).code, 0);
    delete keys["app/b"];
    const file = join(root, "backup.snap");
    const saved = await floe(["snapshot", "save", file], srcEnv);
    assert.equal(saved.code, 0, saved.stderr);
    const meta = JSON.parse(saved.stdout);
    assert.ok(meta.index > 0 && meta.term > 0, saved.stdout);
    assert.equal((await source.stop()).code, 0, source.output);

    const base = consecutiveFreePorts(3);
    const peers = [0, 1, 2].map((i) => `n${i + 1}=127.0.0.1:${base + i}`).join(",");
    for (const id of ["n1", "n2", "n3"]) {
      const r = await floe([
        "snapshot",
        "restore",
        file,
        "--data",
        join(root, "b", id),
        "--id",
        id,
        "--peers",
        peers,
      ]);
      assert.equal(r.code, 0, r.stderr);
    }
    // A second restore into a directory that now holds data is refused.
    const again = await floe(
      [
        "snapshot",
        "restore",
        file,
        "--data",
        join(root, "b", "n1"),
        "--id",
        "n1",
        "--peers",
        peers,
      ],
    );
    assert.equal(again.code, 1);
    assert.match(again.stderr, /not empty/);

    restored = new ClusterProcess(
      ["--nodes", "3", "--port", String(base), "--data", join(root, "b")],
      { FLOE_SECRET: SECRET },
    );
    await waitReady(restored, 3);
    const env = { FLOE_ENDPOINTS: endpoints(base, 3) };
    for (const [k, v] of Object.entries(keys)) {
      const r = await floe(["kv", "get", k], env);
      assert.equal(r.code, 0, `${k}: ${r.stderr}`);
      assert.equal(r.stdout, v);
    }
    assert.equal((await floe(["kv", "get", "app/b"], env)).code, 1);
    // The new cluster takes writes after the snapshot's index.
    const put = await floe(["kv", "put", "after", "restore"], env);
    assert.equal(put.code, 0, put.stderr);
    assert.ok(JSON.parse(put.stdout).revision > meta.index);
    assert.equal((await restored.stop()).code, 0, restored.output);
  } finally {
    await source.kill();
    await restored?.kill();
    await Deno.remove(root, { recursive: true });
  }
});
