// The `floe` command: usage errors and `storage check`.
import assert from "node:assert/strict";
import { runFloe } from "../../src/cli/floe.ts";
import { KvStateMachine } from "../../src/kv/kv_state_machine.ts";
import { encodeSnapshotFile, writeFileAtomically } from "../../src/service/snapshot_file.ts";
import { FileStorage } from "../../src/storage/file_storage.ts";
import { freePorts } from "../../src/testing/free_port.ts";
import { FLOE, floe } from "./cli_process.ts";

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runFloe(args, (l) => out.push(l), (l) => err.push(l));
  return { code, out: out.join("\n"), err: err.join("\n") };
}

Deno.test("floe: a bad command or flag prints what is wrong and the usage, exit 2", async () => {
  const bad = await run(["nonsense"]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /unknown command nonsense/);
  assert.match(bad.err, /usage: floe/);
  const flag = await run(["storage", "check", "--bogus", "x"]);
  assert.equal(flag.code, 2);
  assert.match(flag.err, /unknown flag --bogus/);
  assert.equal((await run(["--help"])).code, 0);
});

Deno.test("floe storage check: reports a healthy directory and a corrupt one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "floe-cli-" });
  try {
    const s = await FileStorage.open(dir, { onWarning: () => {} });
    await s.save({
      hardState: { term: 2, vote: "a", commit: 1 },
      entries: [{ index: 1, term: 2, data: new Uint8Array([1, 2, 3]) }, {
        index: 2,
        term: 2,
        data: new Uint8Array([4]),
      }],
    });
    await s.close();
    const ok = await run(["storage", "check", dir]);
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /OK/);
    await Deno.writeTextFile(`${dir}/FORMAT`, "something else\n");
    const bad = await run(["storage", "check", dir]);
    assert.equal(bad.code, 1, bad.out);
    assert.match(bad.out, /problem/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("floe: every command has --help (exit 0); mistakes print what is wrong and the usage (exit 2)", async () => {
  for (
    const [args, usage] of [
      [["node", "--help"], /usage: floe node/],
      [["cluster", "--help"], /usage: floe cluster/],
      [["kv", "--help"], /usage: floe kv/],
      [["kv", "put", "--help"], /usage: floe kv/],
      [["status", "--help"], /usage: floe status/],
      [["snapshot", "--help"], /usage: floe snapshot/],
      [["snapshot", "restore", "-h"], /usage: floe snapshot/],
      [["storage", "--help"], /usage: floe storage check/],
      [["help"], /usage: floe/],
    ] as const
  ) {
    const r = await run([...args]);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.err}`);
    assert.match(r.out, usage, args.join(" "));
  }
  for (
    const [args, what, usage] of [
      [["--bogus"], /unknown flag --bogus/, /usage: floe/],
      [["node", "--bogus", "1"], /unknown flag --bogus/, /usage: floe node/],
      [["node"], /node id is required/, /usage: floe node/],
      [
        ["node", "--id", "n1", "--peers", "n1=:1,n2=:2"],
        /needs a shared secret/,
        /usage: floe node/,
      ],
      [["node", "--id", "n1", "--listen"], /--listen needs a value/, /usage: floe node/],
      [
        ["cluster", "--nodes", "0"],
        /--nodes must be an integer from 1 to 9/,
        /usage: floe cluster/,
      ],
      [["cluster", "extra"], /unexpected argument extra/, /usage: floe cluster/],
      [["kv"], /usage: floe kv/, /usage: floe kv/],
      [["kv", "frobnicate"], /unknown operation frobnicate/, /usage: floe kv/],
      [["kv", "get"], /kv get takes 1 argument/, /usage: floe kv/],
      [["kv", "put", "k"], /kv put takes 2 argument/, /usage: floe kv/],
      [["kv", "get", "k", "--from", "3"], /kv get does not take --from/, /usage: floe kv/],
      [["kv", "cas", "k", "x", "v"], /--REV must be an integer/, /usage: floe kv/],
      [["kv", "get", "k", "--endpoints", "localhost:1"], /endpoint must be http/, /usage: floe kv/],
      [["status", "--stale"], /status does not take --stale/, /usage: floe status/],
      [["snapshot", "save"], /takes one FILE/, /usage: floe snapshot/],
      [["snapshot", "restore", "f"], /needs --data, --id, --peers/, /usage: floe snapshot/],
      [
        ["snapshot", "restore", "f", "--data", "d", "--id", "x", "--peers", "a=:1"],
        /--peers must list this node \(x\)/,
        /usage: floe snapshot/,
      ],
      [["snapshot", "load"], /unknown command snapshot load/, /usage: floe snapshot/],
    ] as const
  ) {
    const r = await run([...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.out}`);
    assert.match(r.err, what, args.join(" "));
    assert.match(r.err, usage, args.join(" "));
  }
});

Deno.test("floe node: a real process prints its ready line, serves, and exits 0 on SIGINT", async () => {
  const dir = await Deno.makeTempDir({ prefix: "floe-node-" });
  const [port] = freePorts(1);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", FLOE, "node", "--id", "solo", "--listen", `127.0.0.1:${port}`],
    env: { FLOE_DATA: dir },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { done, value } = await reader.read();
      if (done) break;
      text += value;
    }
    assert.equal(text, `floe node solo ready http://127.0.0.1:${port}\n`);
    let ok = false;
    for (let i = 0; i < 200 && !ok; i++) {
      const r = await fetch(`http://127.0.0.1:${port}/healthz`);
      await r.body?.cancel();
      ok = r.status === 200;
      if (!ok) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(ok, "no leader");
    child.kill("SIGINT");
    assert.equal((await child.status).code, 0, await stderr);
    assert.match(await stderr, /floe node solo stopped \(SIGINT\)/);
    reader.releaseLock();
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    await child.stdout.cancel().catch(() => {});
    await stderr.catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("floe: usage errors exit 2 from a real process too", async () => {
  const bad = await floe(["kv", "put"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /usage: floe kv/);
  const unknown = await floe(["launch"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command launch/);
  const help = await floe(["cluster", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /usage: floe cluster/);
});

Deno.test("floe snapshot restore: a dial-only member (a browser tab) is a voter too", async () => {
  const dir = await Deno.makeTempDir({ prefix: "floe-cli-" });
  try {
    const kv = new KvStateMachine();
    const file = `${dir}/backup.floe`;
    await writeFileAtomically(file, encodeSnapshotFile(kv.snapshot(), 4, 2));
    const peers = "n1=127.0.0.1:7401,n2=127.0.0.1:7402,tab=dial-only";
    const r = await run([
      "snapshot",
      "restore",
      file,
      "--data",
      `${dir}/n1`,
      "--id",
      "n1",
      "--peers",
      peers,
    ]);
    assert.equal(r.code, 0, r.err);
    const storage = await FileStorage.open(`${dir}/n1`, { onWarning: () => {} });
    try {
      assert.deepEqual((await storage.load()).snapshot?.voters.toSorted(), ["n1", "n2", "tab"]);
    } finally {
      await storage.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("floe kv --attempts: that many tries while no leader answers, then exit 1", async () => {
  let hits = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    hits++;
    return Response.json({ error: { code: "no-leader", message: "no leader" } }, {
      status: 503,
      headers: { "Retry-After": "0" },
    });
  });
  try {
    const endpoint = `http://127.0.0.1:${server.addr.port}`;
    const r = await run(["kv", "get", "k", "--endpoints", endpoint, "--attempts", "2"]);
    assert.equal(r.code, 1, r.err);
    assert.equal(hits, 2);
    const bad = await run(["kv", "get", "k", "--endpoints", endpoint, "--attempts", "0"]);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--attempts must be an integer/);
    assert.equal(hits, 2, "a usage error sends nothing");
  } finally {
    await server.shutdown();
  }
});
