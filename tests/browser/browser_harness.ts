/**
 * Runs the browser page's cases in real headless Chromium: bundles `page.ts` with esbuild,
 * serves it from a loopback HTTP server (IndexedDB needs a real origin; a data: URL has none),
 * and drives Debian's `chromium` through playwright-core with a fresh profile directory. Every
 * wait is bounded, and `close` stops the browser and the server whatever state they are in.
 *
 * Set `FLOE_CHROMIUM` to use another Chromium binary than `/usr/bin/chromium`.
 *
 * @module
 */
import * as esbuild from "esbuild";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import type { Between } from "./indexeddb_cases.ts";
import type { PageApi } from "./page.ts";
import { killProfileProcesses, sleep } from "./processes.ts";

/** The Chromium binary: Debian's package unless `FLOE_CHROMIUM` names another. */
export const CHROMIUM_PATH = Deno.env.get("FLOE_CHROMIUM") ?? "/usr/bin/chromium";

/** The flags every test browser starts with. */
export const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const PAGE_ENTRY = new URL("./page.ts", import.meta.url);
const LAUNCH_TIMEOUT_MS = 60_000;
const PAGE_TIMEOUT_MS = 30_000;
const CASE_TIMEOUT_MS = 60_000;

/** The bundled page script and what went into it. */
export interface PageBundle {
  /** The script, an ES module. */
  readonly code: string;
  /** Every input file esbuild read, as paths relative to the working directory. */
  readonly inputs: readonly string[];
  /** Every import esbuild left unbundled (there should be none but computed ones). */
  readonly externalImports: readonly string[];
}

/**
 * Bundle the page for a browser, as floe's browser build will: ESM, no Node built-ins. `entry` is
 * the page's module; default the IndexedDB suite's `page.ts`.
 */
export async function bundlePage(entry: URL = PAGE_ENTRY): Promise<PageBundle> {
  try {
    const result = await esbuild.build({
      entryPoints: [entry.pathname],
      bundle: true,
      write: false,
      format: "esm",
      platform: "browser",
      target: "es2022",
      metafile: true,
      logLevel: "silent",
    });
    const externalImports = Object.values(result.metafile.inputs).flatMap((input) =>
      input.imports.filter((i) => i.external).map((i) => i.path)
    );
    return {
      code: result.outputFiles[0].text,
      inputs: Object.keys(result.metafile.inputs),
      externalImports,
    };
  } finally {
    // esbuild keeps a service process for later builds; one build is all a test run needs.
    await esbuild.stop();
  }
}

/** Reject with `what` timed out unless `promise` settles within `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** One browser with one page on the test server, and the server; see the module note. */
export class BrowserSession {
  #server: Deno.HttpServer<Deno.NetAddr>;
  #url: string;
  #profile: string;
  #context: BrowserContext | undefined;
  #page: Page | undefined;
  #log: string[] = [];

  private constructor(server: Deno.HttpServer<Deno.NetAddr>, profile: string) {
    this.#server = server;
    this.#url = `http://127.0.0.1:${server.addr.port}/`;
    this.#profile = profile;
  }

  /**
   * Start the server and the browser on profile directory `profile` (which the caller owns
   * and deletes), and load the page built from `bundle`.
   *
   * @throws {Error} when Chromium is missing (with how to install it), or a step times out.
   */
  static async start(bundle: PageBundle, profile: string): Promise<BrowserSession> {
    await assertChromium();
    const server = servePage(bundle, "floe browser tests");
    const session = new BrowserSession(server, profile);
    try {
      await session.#launch();
      return session;
    } catch (error) {
      await session.close();
      throw error;
    }
  }

  async #launch(): Promise<void> {
    this.#context = await chromium.launchPersistentContext(this.#profile, {
      executablePath: CHROMIUM_PATH,
      args: [...CHROMIUM_ARGS],
      headless: true,
      timeout: LAUNCH_TIMEOUT_MS,
    });
    const page = this.#context.pages()[0] ?? await this.#context.newPage();
    page.setDefaultTimeout(PAGE_TIMEOUT_MS);
    page.on("console", (message) => this.#note(`console.${message.type()}: ${message.text()}`));
    page.on("pageerror", (error) => this.#note(`page error: ${error.message}`));
    this.#page = page;
    await page.goto(this.#url, { timeout: PAGE_TIMEOUT_MS });
    await this.#pageReady();
  }

  #note(line: string): void {
    this.#log.push(line);
    if (this.#log.length > 200) this.#log.shift();
  }

  async #pageReady(): Promise<void> {
    await this.#livePage().waitForFunction(
      () => (globalThis as { floeBrowserTests?: unknown }).floeBrowserTests !== undefined,
      undefined,
      { timeout: PAGE_TIMEOUT_MS },
    );
  }

  #livePage(): Page {
    if (this.#page === undefined) throw new Error("the browser is not running");
    return this.#page;
  }

  async #call(
    what: string,
    method: "run" | "before" | "after",
    name: string,
    progress?: number,
  ): Promise<void> {
    const logStart = this.#log.length;
    const outcome = await withTimeout(
      this.#livePage().evaluate(([method, name, progress]) => {
        const api = (globalThis as { floeBrowserTests?: PageApi }).floeBrowserTests;
        if (api === undefined) throw new Error("the page did not load its tests");
        return method === "after" ? api.after(name, progress) : api[method](name);
      }, [method, name, progress] as const),
      CASE_TIMEOUT_MS,
      `${what} "${name}"`,
    );
    if (!outcome.ok) {
      const log = this.#log.slice(logStart);
      throw new Error(
        `${what} failed in Chromium after ${outcome.ms.toFixed(0)} ms:\n${outcome.error}` +
          (log.length > 0 ? `\npage output:\n  ${log.join("\n  ")}` : ""),
      );
    }
  }

  /** Run single-page case `name`; throws with the page's error and output if it failed. */
  run(name: string): Promise<void> {
    return this.#call("case", "run", name);
  }

  /**
   * Run phased case `name`: its first half, then `between` (reload the page, restart the
   * browser, or kill it with SIGKILL once enough saves resolved), then its second half.
   */
  async runPhased(name: string, between: Between): Promise<void> {
    await this.#call("first half of", "before", name);
    let progress: number | undefined;
    if (between === "reload") {
      await this.#livePage().reload({ timeout: PAGE_TIMEOUT_MS });
      await this.#pageReady();
    } else if (between === "restart") {
      await this.#stopBrowser();
      await this.#launch();
    } else {
      progress = await this.#killAfterSaves(name);
      await this.#launch();
    }
    await this.#call("second half of", "after", name, progress);
  }

  // Let a random number of saves resolve, read the count, and kill the whole browser at once.
  async #killAfterSaves(name: string): Promise<number> {
    const target = 20 + Math.floor(Math.random() * 180);
    const page = this.#livePage();
    const deadline = Date.now() + CASE_TIMEOUT_MS;
    let progress = 0;
    while (progress < target) {
      if (Date.now() > deadline) {
        throw new Error(`"${name}": only ${progress} of ${target} saves resolved in time`);
      }
      await sleep(5);
      progress = await withTimeout(
        page.evaluate((n) => {
          const api = (globalThis as { floeBrowserTests?: PageApi }).floeBrowserTests;
          return api === undefined ? 0 : api.progress(n);
        }, name),
        PAGE_TIMEOUT_MS,
        "progress",
      );
    }
    await this.#killBrowser();
    return progress;
  }

  async #killBrowser(): Promise<void> {
    // All processes at once, as a power cut or the OOM killer would: none is left to flush.
    const context = this.#context;
    this.#context = undefined;
    this.#page = undefined;
    await killProfileProcesses(this.#profile, true);
    // Playwright notices the dead browser; closing lets it drop its state. Errors are expected.
    await withTimeout(context?.close() ?? Promise.resolve(), 10_000, "close of killed browser")
      .catch(() => {});
  }

  async #stopBrowser(): Promise<void> {
    const context = this.#context;
    this.#context = undefined;
    this.#page = undefined;
    if (context === undefined) return;
    try {
      await withTimeout(context.close(), 15_000, "browser close");
    } catch {
      // A browser that does not close in time is killed.
      await killProfileProcesses(this.#profile);
    }
  }

  /** Stop the browser and the server. Safe to call more than once. */
  async close(): Promise<void> {
    await this.#stopBrowser().catch(() => {});
    await withTimeout(this.#server.shutdown(), 5_000, "server shutdown").catch(() => {});
  }
}

/**
 * Throws with how to install Chromium when there is none at `CHROMIUM_PATH`.
 *
 * @throws {Error} naming the path and the fix.
 */
export async function assertChromium(): Promise<void> {
  try {
    await Deno.stat(CHROMIUM_PATH);
  } catch {
    throw new Error(
      `no Chromium at ${CHROMIUM_PATH}: install Debian's (apt-get install -y chromium; ` +
        `.ci/run does) or set FLOE_CHROMIUM to a Chromium binary`,
    );
  }
}

/**
 * Serve a page running `bundle` from loopback (IndexedDB needs a real origin): `/` is the HTML,
 * `/page.js` the script. Port 0 picks a free port; read it from the server's `addr`.
 */
export function servePage(bundle: PageBundle, title: string): Deno.HttpServer<Deno.NetAddr> {
  const html = `<!doctype html><meta charset="utf-8"><title>${title}</title>` +
    '<script type="module" src="/page.js"></script>';
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const path = new URL(request.url).pathname;
      if (path === "/") return new Response(html, { headers: { "content-type": "text/html" } });
      if (path === "/page.js") {
        return new Response(bundle.code, { headers: { "content-type": "text/javascript" } });
      }
      return new Response("not found", { status: 404 });
    },
  );
}
