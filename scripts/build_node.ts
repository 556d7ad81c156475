/**
 * Build floe for Node: `deno task build:node` (or `npm run build`) writes
 *
 * - `dist/node/floe.js`: `node.ts` bundled as one ESM module for Node 20 (esbuild, platform node);
 *   the dependencies (cbor-x, ws, idb-keyval) stay imports, resolved from the user's node_modules;
 * - `dist/node/floe_node.js`: the runnable node (`node dist/node/floe_node.js --id n1 ...`);
 * - `dist/node/types/`: the declarations (`types/node.d.ts` is the entry), emitted by TypeScript
 *   from the sources, with relative `.ts` specifiers rewritten to `.js` so Node-resolution
 *   consumers find the `.d.ts` files.
 *
 * The build fails when a bundle mentions `Deno.`: the Node build must run where there is no
 * `Deno` global (the source files that need one are Deno-only adapters, never imported here).
 * Tools come from node_modules (`npm ci`): esbuild and tsc.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const OUT = path.join(ROOT, "dist", "node");
const TYPES = path.join(OUT, "types");
const BIN = path.join(ROOT, "node_modules", ".bin");
const EXTERNAL = ["cbor-x", "ws", "idb-keyval"];

async function run(tool: string, args: string[]): Promise<void> {
  const status = await new Deno.Command(path.join(BIN, tool), {
    args,
    cwd: ROOT,
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  if (!status.success) throw new Error(`${tool} failed (exit ${status.code})`);
}

function bundle(entry: string, outfile: string, banner?: string): Promise<void> {
  return run("esbuild", [
    entry,
    "--bundle",
    "--format=esm",
    "--platform=node",
    "--target=node20",
    `--outfile=${outfile}`,
    "--log-level=warning",
    "--legal-comments=none",
    ...EXTERNAL.map((p) => `--external:${p}`),
    ...(banner === undefined ? [] : [`--banner:js=${banner}`]),
  ]);
}

/** Relative `./x.ts` specifiers in a declaration file become `./x.js`. */
export function rewriteSpecifiers(text: string): string {
  return text.replace(
    /((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']+?)\.ts(["'])/g,
    (_m, head: string, spec: string, tail: string) => `${head}${spec}.js${tail}`,
  );
}

function declarationFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...declarationFiles(p));
    else if (e.name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

async function main(): Promise<void> {
  const started = performance.now();
  fs.rmSync(OUT, { recursive: true, force: true });
  fs.mkdirSync(OUT, { recursive: true });
  await bundle("node.ts", path.join(OUT, "floe.js"));
  await bundle("src/cli/floe_node_main.ts", path.join(OUT, "floe_node.js"), "#!/usr/bin/env node");
  fs.chmodSync(path.join(OUT, "floe_node.js"), 0o755);
  for (const name of ["floe.js", "floe_node.js"]) {
    const text = fs.readFileSync(path.join(OUT, name), "utf8");
    const at = text.search(/\bDeno\./);
    if (at >= 0) {
      const line = text.slice(0, at).split("\n").length;
      throw new Error(`dist/node/${name}:${line} mentions Deno: a Deno-only module got bundled`);
    }
  }
  // Declarations only, unchecked: `deno task check` type-checks these sources already, and a
  // full tsc check would trip over Deno-only code elsewhere in shared modules' neighbours.
  // tests/node type-checks a consumer against the result.
  await run("tsc", [
    "node.ts",
    "--declaration",
    "--emitDeclarationOnly",
    "--noCheck",
    "--allowImportingTsExtensions",
    "--strict",
    "--skipLibCheck",
    "--target",
    "es2022",
    "--module",
    "esnext",
    "--moduleResolution",
    "bundler",
    "--types",
    "node",
    "--rootDir",
    ".",
    "--outDir",
    TYPES,
  ]);
  let files = 0;
  for (const file of declarationFiles(TYPES)) {
    fs.writeFileSync(file, rewriteSpecifiers(fs.readFileSync(file, "utf8")));
    files++;
  }
  if (!fs.existsSync(path.join(TYPES, "node.d.ts"))) throw new Error("tsc wrote no node.d.ts");
  const size = (name: string) => (fs.statSync(path.join(OUT, name)).size / 1024).toFixed(0);
  console.log(
    `built dist/node: floe.js ${size("floe.js")} KiB, floe_node.js ${size("floe_node.js")} KiB, ` +
      `${files} declaration files, in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`build:node failed: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
