/**
 * The core is pure: no runtime clock, timers, randomness, I/O or runtime globals, and no import
 * from outside `src/core` (DESIGN.md, "The house"). This test reads every source file under
 * `src/core`, strips comments (so JSDoc prose may name `Date.now`), and reports each offending
 * `file:line`.
 *
 * The source scanner here is duplicated in `tests/layering_test.ts` on purpose: a Deno test module
 * imported by another test module registers its tests twice.
 *
 * @module
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);
const CORE_DIR = "src/core/";
const SOURCE_EXT = /\.(ts|tsx|mts|cts|js|mjs|cjs|jsx)$/;

/** Source with comments blanked (`code`), and also string and regex literal bodies (`bare`). */
export interface StrippedSource {
  /** Comments replaced by spaces; same length and line breaks as the input. */
  readonly code: string;
  /** Like `code`, with string, template-text and regex bodies replaced by spaces too. */
  readonly bare: string;
}

const REGEX_AFTER_WORD = new Set([
  "return",
  "typeof",
  "case",
  "do",
  "else",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "instanceof",
  "yield",
  "await",
]);
const REGEX_AFTER_PUNCT = "(,=:[!&|?{};+-*%<>~^";

/**
 * Blank comments (and, in `bare`, literal text) while keeping every other character in place, so
 * an index into the result is an index into the source. A lexer, not a parser: it tracks strings,
 * template literals with nested `${}` and regex literals well enough for TypeScript source.
 */
export function stripSource(src: string): StrippedSource {
  const code: string[] = [];
  const bare: string[] = [];
  const blank = (ch: string) => (ch === "\n" ? "\n" : " ");
  const keep = (ch: string) => {
    code.push(ch);
    bare.push(ch);
  };
  const literal = (ch: string) => {
    code.push(ch);
    bare.push(blank(ch));
  };
  const comment = (ch: string) => {
    code.push(blank(ch));
    bare.push(blank(ch));
  };
  const templates: number[] = []; // open `${` depth per enclosing template literal
  let prev = ""; // last significant token, to tell a regex literal from a division
  let i = 0;
  const n = src.length;

  // Template text from i up to and including the closing backtick, or up to an opening `${`.
  const templateText = () => {
    while (i < n) {
      const ch = src[i];
      if (ch === "\\") {
        literal(ch);
        if (i + 1 < n) literal(src[i + 1]);
        i += 2;
      } else if (ch === "`") {
        keep(ch);
        i++;
        prev = "`";
        return;
      } else if (ch === "$" && src[i + 1] === "{") {
        keep("$");
        keep("{");
        i += 2;
        templates.push(0);
        prev = "{";
        return;
      } else {
        literal(ch);
        i++;
      }
    }
  };

  while (i < n) {
    const ch = src[i];
    const next = src[i + 1];
    if (ch === "/" && next === "/") {
      while (i < n && src[i] !== "\n") comment(src[i++]);
    } else if (ch === "/" && next === "*") {
      comment(src[i++]);
      comment(src[i++]);
      while (i < n && !(src[i] === "*" && src[i + 1] === "/")) comment(src[i++]);
      if (i < n) {
        comment(src[i++]);
        comment(src[i++]);
      }
    } else if (ch === "'" || ch === '"') {
      keep(ch);
      i++;
      while (i < n && src[i] !== ch && src[i] !== "\n") {
        if (src[i] === "\\" && i + 1 < n) literal(src[i++]);
        literal(src[i++]);
      }
      if (i < n && src[i] === ch) keep(src[i++]);
      prev = '"';
    } else if (ch === "`") {
      keep(ch);
      i++;
      templateText();
    } else if (
      ch === "/" && (prev === "" || REGEX_AFTER_WORD.has(prev) ||
        (prev.length === 1 && REGEX_AFTER_PUNCT.includes(prev)))
    ) {
      keep(ch);
      i++;
      let inClass = false;
      while (i < n && src[i] !== "\n") {
        const c = src[i];
        if (c === "\\" && i + 1 < n) {
          literal(src[i++]);
        } else if (c === "[") {
          inClass = true;
        } else if (c === "]") {
          inClass = false;
        } else if (c === "/" && !inClass) {
          break;
        }
        literal(src[i++]);
      }
      if (i < n && src[i] === "/") keep(src[i++]);
      prev = "/re/";
    } else if (/[\w$]/.test(ch)) {
      let word = "";
      while (i < n && /[\w$]/.test(src[i])) {
        word += src[i];
        keep(src[i++]);
      }
      prev = word;
    } else {
      keep(ch);
      i++;
      if (templates.length > 0 && ch === "{") {
        templates[templates.length - 1]++;
      } else if (templates.length > 0 && ch === "}") {
        if (templates[templates.length - 1] === 0) {
          templates.pop();
          templateText();
          continue;
        }
        templates[templates.length - 1]--;
      }
      if (!/\s/.test(ch)) prev = ch;
    }
  }
  return { code: code.join(""), bare: bare.join("") };
}

/** A module specifier found in source, with the 1-based line it is on. */
export interface Specifier {
  /** The specifier text, or `null` for a dynamic import of a computed value. */
  readonly specifier: string | null;
  /** 1-based line number. */
  readonly line: number;
}

function lineOf(text: string, index: number): number {
  let line = 1;
  for (let k = 0; k < index; k++) if (text.charCodeAt(k) === 10) line++;
  return line;
}

/** Every static, side-effect, re-export, dynamic and `require` specifier in `src`. */
export function findSpecifiers(src: string): Specifier[] {
  const { code, bare } = stripSource(src);
  const found: Specifier[] = [];
  const patterns = [
    /(?<![\w$.])from\s*(["'])([^"'\n]*)\1/g,
    /(?<![\w$.])import\s*(["'])([^"'\n]*)\1/g,
    /(?<![\w$.])import\s*\(\s*(["'`])([^"'`\n$]*)\1\s*[,)]/g,
    /(?<![\w$.])require\s*\(\s*(["'`])([^"'`\n$]*)\1\s*\)/g,
  ];
  for (const pattern of patterns) {
    for (const m of code.matchAll(pattern)) {
      // The keyword must be code, not text inside a string literal.
      if (bare[m.index] === " ") continue;
      found.push({ specifier: m[2], line: lineOf(src, m.index) });
    }
  }
  for (const m of bare.matchAll(/(?<![\w$.])import\s*\(/g)) {
    const after = code.slice(m.index + m[0].length).trimStart();
    const literal = /^(["'`])([^"'`\n$]*)\1\s*[,)]/.test(after);
    if (!literal) found.push({ specifier: null, line: lineOf(src, m.index) });
  }
  // Triple-slash directives live in comments, so look at the raw source.
  for (const m of src.matchAll(/^[ \t]*\/\/\/\s*<reference\s+(\w+)\s*=\s*["']([^"']*)["']/gm)) {
    const spec = m[1] === "path" ? m[2] : `${m[1]}:${m[2]}`;
    found.push({ specifier: spec, line: lineOf(src, m.index) });
  }
  return found.sort((a, b) => a.line - b.line);
}

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

async function listSources(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(new URL(dir, ROOT))) {
    const path = `${dir}${entry.name}`;
    if (entry.isDirectory) files.push(...await listSources(`${path}/`));
    else if (entry.isFile && SOURCE_EXT.test(entry.name) && !entry.name.endsWith(".d.ts")) {
      files.push(path);
    }
  }
  return files.sort();
}

Deno.test("src/core uses no clock, timer, randomness, I/O or runtime global, imports nothing outside src/core", async () => {
  const files = await listSources(CORE_DIR);
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
