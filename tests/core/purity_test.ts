/**
 * The core is pure: no runtime clock, timers, randomness, I/O or runtime globals, and no import
 * from outside `src/core` (DESIGN.md, "The house"). This test reads every source file under
 * `src/core`, strips comments (so JSDoc prose may name `Date.now`), and reports each offending
 * `file:line`.
 *
 * The source scanner lives in `tests/source_scan.ts`, shared with `tests/layering_test.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { findSpecifiers, listSources, stripSource } from "../source_scan.ts";

const ROOT = new URL("../../", import.meta.url);
const CORE_DIR = "src/core/";

/** What the core must never touch, matched against code with comments and literals blanked. */
const FORBIDDEN: readonly [RegExp, string][] = [
  [/\bDeno\s*\./, "Deno API"],
  [/\bwindow\s*\./, "window"],
  [/\bdocument\s*\./, "document"],
  [/\bself\s*\./, "self (worker global)"],
  [/\bglobalThis\b/, "globalThis"],
  [/\bsetTimeout\b/, "setTimeout"],
  [/\bsetInterval\b/, "setInterval"],
  [/\bsetImmediate\b/, "setImmediate"],
  [/\brequestAnimationFrame\b/, "requestAnimationFrame"],
  [/\bqueueMicrotask\b/, "queueMicrotask"],
  [/\bDate\s*\.\s*now\b/, "Date.now"],
  [/\bnew\s+Date\s*\(/, "new Date("],
  [/\bMath\s*\.\s*random\b/, "Math.random"],
  [/\bcrypto\s*\./, "crypto"],
  [/\bperformance\s*\./, "performance"],
  [/\bindexedDB\b/, "indexedDB"],
  [/\blocalStorage\b/, "localStorage"],
  [/\bfetch\s*\(/, "fetch("],
  [/\bWebSocket\b/, "WebSocket"],
  [/\bprocess\s*\./, "process"],
  [/\brequire\s*\(/, "require("],
  [/\bBun\s*\./, "Bun API"],
];
// A name reached as a property (`this.window.size`, `opts.process.x`) is not the global.
const NOT_A_PROPERTY = /(?:\.|\?\.)\s*$/;

/** True when `spec`, imported from `file` (a root-relative path), resolves inside `src/core/`. */
function staysInCore(file: string, spec: string): boolean {
  if (!spec.startsWith("./") && !spec.startsWith("../")) return false;
  const base = new URL(`file:///root/${file}`);
  const target = new URL(spec, base);
  return target.pathname.startsWith(`/root/${CORE_DIR}`);
}

/**
 * Purity violations in one core source file, as `file:line: what` strings.
 * `file` is the path relative to the repository root, e.g. `src/core/raft.ts`.
 */
export function purityViolations(file: string, src: string): string[] {
  const out: string[] = [];
  const lines = stripSource(src).bare.split("\n");
  lines.forEach((text, k) => {
    for (const [pattern, what] of FORBIDDEN) {
      const global = new RegExp(pattern.source, "g");
      for (const m of text.matchAll(global)) {
        if (NOT_A_PROPERTY.test(text.slice(0, m.index))) continue;
        out.push(`${file}:${k + 1}: uses ${what}`);
        break;
      }
    }
  });
  for (const { specifier, line } of findSpecifiers(src)) {
    if (specifier === null) {
      out.push(`${file}:${line}: dynamic import of a computed specifier`);
    } else if (!staysInCore(file, specifier)) {
      out.push(`${file}:${line}: imports "${specifier}", outside src/core`);
    }
  }
  return out.sort((a, b) => {
    const la = Number(a.split(":")[1]);
    const lb = Number(b.split(":")[1]);
    return la - lb;
  });
}

Deno.test("src/core uses no clock, timer, randomness, I/O or runtime global, imports nothing outside src/core", async () => {
  const files = await listSources(ROOT, CORE_DIR);
  assert.ok(files.length > 0, `no source files found under ${CORE_DIR}`);
  const violations: string[] = [];
  for (const file of files) {
    violations.push(...purityViolations(file, await Deno.readTextFile(new URL(file, ROOT))));
  }
  assert.equal(
    violations.length,
    0,
    `the core must stay pure (DESIGN.md), found ${violations.length} violation(s) in ` +
      `${files.length} file(s):\n  ${violations.join("\n  ")}`,
  );
});

Deno.test("purity checker: flags runtime globals and outside imports, with their lines", () => {
  const src = [
    'import type { Entry } from "./types.ts";', // 1 ok
    'import { x } from "../node/clock.ts";', // 2 outside
    'export * from "../../deps.ts";', // 3 outside
    'import { Encoder } from "cbor-x";', // 4 bare package
    'import "npm:left-pad";', // 5
    "const t = Date.now();", // 6
    "const d = new Date();", // 7
    "const r = Math.random();", // 8
    "setTimeout(() => {}, 1);", // 9
    "const g = globalThis;", // 10
    "const s = `${performance.now()}`;", // 11 expression inside a template is code
    "Deno.exit(1);", // 12
    'const m = await import("jsr:@std/assert");', // 13
    "const k = await import(name);", // 14
    "if (process.env.X) queueMicrotask(f);", // 15: two findings
    'const f = await fetch("http://x");', // 16
    "const w = window.location;", // 17
  ].join("\n");
  assert.deepEqual(purityViolations("src/core/raft.ts", src), [
    'src/core/raft.ts:2: imports "../node/clock.ts", outside src/core',
    'src/core/raft.ts:3: imports "../../deps.ts", outside src/core',
    'src/core/raft.ts:4: imports "cbor-x", outside src/core',
    'src/core/raft.ts:5: imports "npm:left-pad", outside src/core',
    "src/core/raft.ts:6: uses Date.now",
    "src/core/raft.ts:7: uses new Date(",
    "src/core/raft.ts:8: uses Math.random",
    "src/core/raft.ts:9: uses setTimeout",
    "src/core/raft.ts:10: uses globalThis",
    "src/core/raft.ts:11: uses performance",
    "src/core/raft.ts:12: uses Deno API",
    'src/core/raft.ts:13: imports "jsr:@std/assert", outside src/core',
    "src/core/raft.ts:14: dynamic import of a computed specifier",
    "src/core/raft.ts:15: uses queueMicrotask",
    "src/core/raft.ts:15: uses process",
    "src/core/raft.ts:16: uses fetch(",
    "src/core/raft.ts:17: uses window",
  ]);
});

Deno.test("purity checker: ignores comments, strings, regexes, properties and in-core imports", () => {
  const src = [
    "/**",
    " * Never calls Date.now() or Math.random(); see setTimeout in the node layer.",
    ' * import { x } from "../node/clock.ts";',
    " */",
    'import { NONE } from "./types.ts";',
    'import { Rng } from "./util/rng.ts";',
    'export { raft } from "../core/raft.ts";',
    "// globalThis.fetch(x) would be wrong here",
    'const msg = "do not use Date.now or setTimeout in the core";',
    "const tpl = `window.document ${NONE} process.env`;",
    "const re = /Date.now|Math.random/g;",
    "const ratio = a / b / c; const ok = this.window.size + opts?.process.count;",
    "const w = { window: 3, performance: 1 };",
    "const n = Array.from(list); const from = 1;",
    "const nested = `a ${`b ${x}`} c`; const after = 1;",
  ].join("\n");
  assert.deepEqual(purityViolations("src/core/raft.ts", src), []);
});

Deno.test("purity checker: a relative import that climbs out of src/core is caught", () => {
  assert.deepEqual(
    purityViolations("src/core/sub/a.ts", 'import "../b.ts";\nimport "../../x.ts";'),
    [
      'src/core/sub/a.ts:2: imports "../../x.ts", outside src/core',
    ],
  );
});
