// The Node build itself: it loads under Node with no Deno global, carries no Deno-only code,
// exposes what a Node user needs, and ships type declarations a TypeScript consumer compiles
// against.
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { promisify } from "node:util";
import t from "tap";
import {
  DIST,
  LIB,
  NODE_MAIN,
  requireBuild,
  ROOT,
  tempDir,
} from "./fixtures/node_test_support.mjs";

requireBuild();

t.test("the bundle loads under Node, where there is no Deno global", async (t) => {
  t.equal(typeof globalThis.Deno, "undefined", "this process has no Deno global");
  const floe = await import(LIB);
  for (
    const name of [
      "RaftNode",
      "MemoryStorage",
      "FileStorage",
      "KvStateMachine",
      "WebSocketTransport",
      "wsDial",
      "createWsDialer",
      "WsPeerServer",
      "startNodeFloeServer",
      "toNodeListener",
      "runNodeFloe",
      "encodeKvCommand",
    ]
  ) {
    t.equal(typeof floe[name], "function", `exports ${name}`);
  }
});

t.test("no bundle mentions Deno, and the dependencies stay imports", (t) => {
  for (const file of ["floe.js", "floe_node.js"]) {
    const text = fs.readFileSync(path.join(DIST, file), "utf8");
    const hits = text.split("\n").flatMap((line, i) => /\bDeno\./.test(line) ? [i + 1] : []);
    t.same(hits, [], `${file}: no line uses Deno.*`);
    for (const dep of ["ws", "cbor-x/index-no-eval"]) {
      t.match(text, new RegExp(`from "${dep.replace("/", "\\/")}"`), `${file} imports ${dep}`);
    }
    t.notMatch(text, /class WebSocketServer extends EventEmitter/, `${file} does not inline ws`);
  }
  t.end();
});

t.test("package.json points Node users at the build", async (t) => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8"));
  const main = pkg.exports["."];
  t.equal(path.resolve(ROOT, main.default), LIB, "exports . is dist/node/floe.js");
  t.ok(fs.existsSync(path.resolve(ROOT, main.types)), `types ${main.types} exist`);
  t.equal(path.resolve(ROOT, pkg.bin["floe-node"]), NODE_MAIN, "bin floe-node");
  t.match(fs.readFileSync(NODE_MAIN, "utf8"), /^#!\/usr\/bin\/env node\n/, "bin has a shebang");
  const self = await import(pkg.name);
  t.equal(self.RaftNode, (await import(LIB)).RaftNode, `"${pkg.name}" resolves to the build`);
});

t.test("the bin answers --help and refuses a bad flag with exit 2", async (t) => {
  const run = promisify(execFile);
  const help = await run(process.execPath, [NODE_MAIN, "--help"]);
  t.match(help.stdout, /--id ID/, "usage on stdout");
  const bad = await run(process.execPath, [NODE_MAIN, "--id", "n1", "--nope", "x"]).then(
    () => ({ code: 0 }),
    (e) => e,
  );
  t.equal(bad.code, 2, "exit 2");
  t.match(bad.stderr, /unknown flag --nope/, "names the flag");
});

t.test("a TypeScript consumer type-checks against the declarations", async (t) => {
  const dir = tempDir(t);
  const types = path.join(DIST, "types", "node.d.ts").replaceAll("\\", "/");
  fs.writeFileSync(
    path.join(dir, "consumer.ts"),
    `import {
  FileStorage, KvStateMachine, RaftNode, WebSocketTransport, WsPeerServer, startNodeFloeServer,
  wsDial, type NodeFloeServer, type Storage,
} from ${JSON.stringify(types.replace(/\.d\.ts$/, ".js"))};
export async function start(): Promise<NodeFloeServer> {
  const storage: Storage = await FileStorage.open("./data/x");
  await storage.close();
  const transport = new WebSocketTransport({
    id: "a", cluster: "c", secret: "0123456789abcdef", peers: [], dial: wsDial,
  });
  const server: WsPeerServer = await WsPeerServer.listen({ port: 0 }, transport);
  await server.close();
  const kv = new KvStateMachine();
  const n: typeof RaftNode = RaftNode;
  void kv; void n;
  return await startNodeFloeServer({
    id: "a", listen: { hostname: "127.0.0.1", port: 0 }, dataDir: "./data/a",
  });
}
// @ts-expect-error: the id is required
startNodeFloeServer({ listen: { hostname: "127.0.0.1", port: 0 }, dataDir: "x" });
`,
  );
  const tsc = path.join(ROOT, "node_modules", ".bin", "tsc");
  const result = await promisify(execFile)(tsc, [
    "--noEmit",
    "--strict",
    "--target",
    "es2022",
    "--module",
    "nodenext",
    "--moduleResolution",
    "nodenext",
    "--types",
    "node",
    "--typeRoots",
    path.join(ROOT, "node_modules", "@types"),
    path.join(dir, "consumer.ts"),
  ], { cwd: ROOT }).then(() => ({ code: 0, stdout: "" }), (e) => e);
  t.equal(result.code, 0, `tsc found no errors\n${result.stdout ?? ""}${result.stderr ?? ""}`);
});
