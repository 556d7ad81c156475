/**
 * The transport's browser-facing modules must load in a browser: their import graph holds neither
 * the `ws` package, nor the Deno-only server, nor any use of the `Deno` namespace. `ws_dial.ts`
 * (the one importer of `ws`) and `websocket_server.ts` (Deno.serve) stay out of it.
 *
 * @module
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);
const BROWSER_ENTRIES = [
  "src/transport/websocket_transport.ts",
  "src/transport/codec.ts",
  "src/transport/handshake.ts",
  "src/transport/socket.ts",
];

interface Info {
  modules: { specifier: string }[];
}

async function graph(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as Info;
  return info.modules.map((m) => m.specifier);
}

/** Source without comments, roughly: enough to find uses of `Deno.` in code. */
function code(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

Deno.test("browser safety: the transport's graph has no ws, no server module and no Deno API", async () => {
  for (const entry of BROWSER_ENTRIES) {
    const modules = await graph(entry);
    assert.ok(
      modules.some((m) => m.endsWith(entry)),
      `the graph of ${entry} lacks it`,
    );
    for (const m of modules) {
      assert.ok(
        !/\/node_modules\/ws\//.test(m) && !m.startsWith("npm:ws"),
        `${entry} pulls in ${m}`,
      );
      assert.ok(!m.endsWith("/ws_dial.ts"), `${entry} pulls in ws_dial.ts`);
      assert.ok(!m.endsWith("/websocket_server.ts"), `${entry} pulls in websocket_server.ts`);
      assert.ok(!m.endsWith("/fault_proxy.ts"), `${entry} pulls in fault_proxy.ts`);
      if (m.startsWith(new URL("src/", ROOT).href)) {
        const src = code(await Deno.readTextFile(new URL(m)));
        assert.ok(!/\bDeno\./.test(src), `${m} uses the Deno namespace`);
      }
    }
  }
});

Deno.test("browser safety: only ws_dial.ts imports ws", async () => {
  const importers: string[] = [];
  for await (const e of Deno.readDir(new URL("src/transport/", ROOT))) {
    if (!e.name.endsWith(".ts")) continue;
    const src = code(await Deno.readTextFile(new URL(`src/transport/${e.name}`, ROOT)));
    if (/from\s+["'](npm:)?ws["']/.test(src)) importers.push(e.name);
  }
  assert.deepEqual(importers, ["ws_dial.ts"]);
});
