// The `floe` command: usage errors and `storage check`.
import assert from "node:assert/strict";
import { runFloe } from "../../src/cli/floe.ts";
import { FileStorage } from "../../src/storage/file_storage.ts";

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
