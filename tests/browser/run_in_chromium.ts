/**
 * The Chromium driver: bundles the test page, starts a loopback server and headless Chromium,
 * runs every case of the page in order and prints one result line per case (see
 * `protocol.ts`). `indexeddb_test.ts` runs it as a child process, so only this process needs
 * the `--allow-all` that playwright-core requires under Deno (it probes /proc/sys when it
 * loads); run it by hand to see the results directly:
 *
 * ```sh
 * deno run -A tests/browser/run_in_chromium.ts [--profile DIR]
 * ```
 *
 * `--profile DIR` is the Chromium profile directory (default: a new temporary one, deleted at the
 * end). Exits 0 when every case passed, 1 otherwise; on SIGTERM it stops the browser and exits
 * 143. With `--cleanup --profile DIR` it only kills what is left of a browser on that profile
 * and deletes the directory (for a driver that was killed outright).
 *
 * @module
 */
import { BrowserSession, bundlePage, type PageBundle } from "./browser_harness.ts";
import { catalogue } from "./catalogue.ts";
import { killProfileProcesses } from "./processes.ts";
import { BUNDLE_CASE, type CaseResult, RESULT_MARK } from "./protocol.ts";

function report(result: CaseResult): void {
  console.log(RESULT_MARK + JSON.stringify(result));
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

async function timed(name: string, body: () => Promise<void>): Promise<boolean> {
  const start = performance.now();
  try {
    await body();
    report({ name, ok: true, ms: performance.now() - start });
    return true;
  } catch (error) {
    report({ name, ok: false, ms: performance.now() - start, error: describe(error) });
    return false;
  }
}

/** Inputs that must never reach a browser bundle: the filesystem adapter, Node, server packages. */
const SERVER_MODULES = [
  /src\/storage\/(file_storage|file_system|wal_\w+)\.ts$/,
  /(^|\/)node:/,
  /node_modules\/(ws|cbor-extract|playwright-core|esbuild)\//,
];

/** Fails when the bundle took in a server module or left an import for the browser. */
function checkBundle(bundle: PageBundle): void {
  const server = bundle.inputs.filter((path) => SERVER_MODULES.some((re) => re.test(path)));
  if (server.length > 0) throw new Error(`server modules in the page bundle: ${server.join(", ")}`);
  if (bundle.externalImports.length > 0) {
    throw new Error(`imports left unbundled: ${bundle.externalImports.join(", ")}`);
  }
  if (!bundle.inputs.some((path) => path.endsWith("src/storage/indexeddb_storage.ts"))) {
    throw new Error("the page bundle does not contain indexeddb_storage.ts");
  }
}

let session: BrowserSession | undefined;

/** Stop the browser of `profile` however far it got, and delete the profile unless kept. */
async function shutDown(profile: string, keepProfile: boolean): Promise<void> {
  await session?.close().catch(() => {});
  session = undefined;
  // A browser still starting, or one a killed driver left behind.
  await killProfileProcesses(profile).catch(() => {});
  if (!keepProfile) await Deno.remove(profile, { recursive: true }).catch(() => {});
}

async function runAll(profile: string): Promise<number> {
  const unused = (): never => {
    throw new Error("unreachable: the page runs the contract cases");
  };
  const { page, phased } = catalogue({ open: unused, reopen: unused });
  let failed = 0;
  let bundle: PageBundle | undefined;
  let setupError: unknown;
  try {
    bundle = await bundlePage();
  } catch (error) {
    setupError = error;
  }
  const bundleChecked = await timed(BUNDLE_CASE, () => {
    if (bundle === undefined) throw setupError;
    checkBundle(bundle);
    return Promise.resolve();
  });
  if (!bundleChecked) failed++;
  if (bundle !== undefined) {
    try {
      session = await BrowserSession.start(bundle, profile);
    } catch (error) {
      setupError = error;
    }
  }
  const browser = (): BrowserSession => {
    if (session === undefined) {
      throw new Error(`the browser did not start: ${describe(setupError)}`);
    }
    return session;
  };
  for (const { name } of page) {
    if (!await timed(name, () => browser().run(name))) failed++;
  }
  for (const { name, between } of phased) {
    if (!await timed(name, () => browser().runPhased(name, between))) failed++;
  }
  return failed === 0 ? 0 : 1;
}

async function main(args: string[]): Promise<number> {
  const at = args.indexOf("--profile");
  const given = at >= 0 ? args[at + 1] : undefined;
  if (args.includes("--cleanup")) {
    if (given === undefined) throw new Error("--cleanup needs --profile DIR");
    await shutDown(given, false);
    return 0;
  }
  const profile = given ?? await Deno.makeTempDir({ prefix: "floe-chromium-" });
  // The test module stops a run it no longer needs (filtered tests) with SIGTERM.
  Deno.addSignalListener("SIGTERM", () => {
    shutDown(profile, given !== undefined).finally(() => Deno.exit(143));
  });
  try {
    return await runAll(profile);
  } finally {
    await shutDown(profile, given !== undefined);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
