/**
 * Imports point one way (DESIGN.md, "The house"): `src/core` imports nothing outside itself;
 * `src/storage`, `src/transport` and `src/testing` may import the core's types
 * (`src/core/types.ts`) and nothing else of it; storage and transport never import the node, the
 * KV app, the CLI or the test harness; nothing under `src/` imports tests, benchmarks or examples.
 * This test reads every source file under `src/`, strips comments, and reports each offending
 * `file:line`.
 *
 * The source scanner is shared with `tests/core/purity_test.ts` through `tests/source_scan.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { findSpecifiers, listSources } from "./source_scan.ts";

const ROOT = new URL("../", import.meta.url);

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

Deno.test("imports under src/ point the way DESIGN.md says", async () => {
  const files = await listSources(ROOT, "src/");
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
