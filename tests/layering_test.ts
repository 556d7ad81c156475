/**
 * Imports point one way (DESIGN.md, "The house"): `src/core` imports nothing outside itself;
 * `src/storage`, `src/transport` and `src/testing` may import the core's types
 * (`src/core/types.ts`) and nothing else of it; storage and transport never import the node, the
 * KV app, the CLI or the test harness; nothing under `src/` imports tests, benchmarks or examples.
 * This test reads every source file under `src/`, strips comments, and reports each offending
 * `file:line`.
 *
 * The source scanner here duplicates the one in `tests/core/purity_test.ts` on purpose: a Deno test
 * module imported by another test module registers its tests twice.
 *
 * @module
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);
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

/** The directories under `src/` that a layer must not import, with the rule's reason. */
const FORBIDDEN_LAYERS: Readonly<Record<string, readonly string[]>> = {
  storage: ["node", "kv", "cli", "testing"],
  transport: ["node", "kv", "cli", "testing"],
  node: ["kv", "cli"],
  kv: ["cli"],
};
/** Layers that may import exactly one file of the core: its types. */
const TYPES_ONLY = new Set(["storage", "transport", "testing"]);
const CORE_TYPES = "src/core/types.ts";

/** Root-relative path that a relative `spec` in `file` resolves to, or `null` if not relative. */
function resolve(file: string, spec: string): string | null {
  if (!spec.startsWith("./") && !spec.startsWith("../")) return null;
  const target = new URL(spec, new URL(`file:///root/${file}`)).pathname;
  return target.startsWith("/root/") ? target.slice("/root/".length) : target;
}

/** `core` for `src/core/raft.ts`; `null` for a path outside `src/<layer>/`. */
function layerOf(path: string): string | null {
  const m = /^src\/([^/]+)\//.exec(path);
  return m ? m[1] : null;
}

/**
 * Layering violations in one source file under `src/`, as `file:line: what` strings.
 * `file` is the path relative to the repository root, e.g. `src/storage/file_storage.ts`.
 */
export function layeringViolations(file: string, src: string): string[] {
  const from = layerOf(file);
  const out: string[] = [];
  for (const { specifier, line } of findSpecifiers(src)) {
    const where = `${file}:${line}`;
    if (specifier === null) {
      if (from === "core") out.push(`${where}: dynamic import of a computed specifier`);
      continue;
    }
    const target = resolve(file, specifier);
    const to = target === null ? null : layerOf(target);
    if (from === "core") {
      if (to !== "core") out.push(`${where}: src/core imports "${specifier}", outside src/core`);
      continue;
    }
    if (target === null) continue; // a package: the runtime-specific adapter rule, not layering
    if (/^(tests|bench|examples)\//.test(target)) {
      out.push(`${where}: imports "${specifier}"; src/ never imports ${target.split("/")[0]}/`);
    } else if (to === "core" && TYPES_ONLY.has(from ?? "") && target !== CORE_TYPES) {
      out.push(
        `${where}: src/${from} imports "${specifier}"; it may import only ${CORE_TYPES} of the core`,
      );
    } else if (to !== null && FORBIDDEN_LAYERS[from ?? ""]?.includes(to)) {
      out.push(`${where}: src/${from} must not import src/${to} ("${specifier}")`);
    }
  }
  return out;
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

Deno.test("imports under src/ point the way DESIGN.md says", async () => {
  const files = await listSources("src/");
  assert.ok(files.some((f) => f.startsWith("src/core/")), "no source files found under src/core/");
  const violations: string[] = [];
  for (const file of files) {
    violations.push(...layeringViolations(file, await Deno.readTextFile(new URL(file, ROOT))));
  }
  assert.equal(
    violations.length,
    0,
    `layering (DESIGN.md, "The house"): ${violations.length} violation(s) in ` +
      `${files.length} file(s):\n  ${violations.join("\n  ")}`,
  );
});

Deno.test("layering checker: flags each rule with its line", () => {
  const storage = [
    'import type { Entry, HardState } from "../core/types.ts";', // 1 ok
    'import { Raft } from "../core/raft.ts";', // 2 core beyond types
    'import { RaftNode } from "../node/raft_node.ts";', // 3 node
    'import { VirtualClock } from "../testing/virtual_clock.ts";', // 4 testing
    'import { Encoder } from "../../deps.ts";', // 5 ok
    'import { MemoryNetwork } from "../transport/memory_network.ts";', // 6 ok
    'import { helper } from "../../tests/helpers.ts";', // 7 tests
    'const kv = await import("../kv/kv.ts");', // 8 kv
    'export * from "../cli/main.ts";', // 9 cli
    'import { WebSocket } from "ws";', // 10 ok: a package
  ].join("\n");
  assert.deepEqual(layeringViolations("src/storage/file_storage.ts", storage), [
    'src/storage/file_storage.ts:2: src/storage imports "../core/raft.ts"; it may import only src/core/types.ts of the core',
    'src/storage/file_storage.ts:3: src/storage must not import src/node ("../node/raft_node.ts")',
    'src/storage/file_storage.ts:4: src/storage must not import src/testing ("../testing/virtual_clock.ts")',
    'src/storage/file_storage.ts:7: imports "../../tests/helpers.ts"; src/ never imports tests/',
    'src/storage/file_storage.ts:8: src/storage must not import src/kv ("../kv/kv.ts")',
    'src/storage/file_storage.ts:9: src/storage must not import src/cli ("../cli/main.ts")',
  ]);
  assert.deepEqual(
    layeringViolations("src/testing/sim.ts", 'import { Raft } from "../core/raft.ts";'),
    ['src/testing/sim.ts:1: src/testing imports "../core/raft.ts"; it may import only src/core/types.ts of the core'],
  );
  assert.deepEqual(
    layeringViolations(
      "src/core/raft.ts",
      'import { x } from "./log.ts";\nimport { y } from "../storage/storage.ts";\nimport "cbor-x";',
    ),
    [
      'src/core/raft.ts:2: src/core imports "../storage/storage.ts", outside src/core',
      'src/core/raft.ts:3: src/core imports "cbor-x", outside src/core',
    ],
  );
  assert.deepEqual(
    layeringViolations("src/node/raft_node.ts", 'import { serve } from "../kv/http.ts";'),
    ['src/node/raft_node.ts:1: src/node must not import src/kv ("../kv/http.ts")'],
  );
});

Deno.test("layering checker: allows what DESIGN.md allows and ignores comments and strings", () => {
  const node = [
    '/** Unlike storage, the node may import "../core/raft.ts". */',
    'import { Raft } from "../core/raft.ts";',
    'import type { Storage } from "../storage/storage.ts";',
    'import type { Transport } from "../transport/transport.ts";',
    '// import { cli } from "../cli/main.ts";',
    "const s = 'import \"../kv/kv.ts\"';",
  ].join("\n");
  assert.deepEqual(layeringViolations("src/node/raft_node.ts", node), []);
  assert.deepEqual(
    layeringViolations("src/cli/main.ts", 'import { RaftNode } from "../node/raft_node.ts";'),
    [],
  );
  assert.deepEqual(
    layeringViolations("src/transport/ws.ts", 'import type { Message } from "../core/types.ts";'),
    [],
  );
});
