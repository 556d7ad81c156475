/**
 * Headless Chromium for the browser-peer test: serves the bundled `peer_page.ts` from a loopback
 * HTTP server and opens it in tabs of one persistent profile, each tab a floe node configured by
 * its URL. Reading a tab's state (`PeerTab.report`) and waiting on it are bounded; `close` stops
 * the browser and the server whatever state they are in.
 *
 * @module
 */
import { type BrowserContext, chromium, type Page } from "playwright-core";
import {
  assertChromium,
  CHROMIUM_ARGS,
  CHROMIUM_PATH,
  type PageBundle,
  servePage,
  withTimeout,
} from "./browser_harness.ts";
import type { PeerPageApi, PeerPageConfig, PeerReport } from "./peer_page.ts";
import { killProfileProcesses, sleep } from "./processes.ts";

const LAUNCH_TIMEOUT_MS = 60_000;
const PAGE_TIMEOUT_MS = 30_000;
// Every tab is a Raft node ticking on timers: none may be throttled as a background tab.
const PEER_ARGS = [
  ...CHROMIUM_ARGS,
  "--disable-background-timer-throttling",
  "--disable-renderer-backgrounding",
  "--disable-backgrounding-occluded-windows",
];

/** One tab running a floe node. */
export class PeerTab {
  readonly #page: Page;
  readonly #log: string[];
  /** The node's configuration. */
  readonly config: PeerPageConfig;

  constructor(page: Page, config: PeerPageConfig, log: string[]) {
    this.#page = page;
    this.config = config;
    this.#log = log;
  }

  /** The node's state now. */
  report(): Promise<PeerReport> {
    return withTimeout(
      this.#page.evaluate(() => {
        const api = (globalThis as { floePeer?: PeerPageApi }).floePeer;
        if (api === undefined) throw new Error("the peer page did not load");
        return api.report();
      }),
      PAGE_TIMEOUT_MS,
      `report of tab ${this.config.id}`,
    );
  }

  /**
   * Poll `report` until `ready` returns true, or fail after `ms` with `what`, the last report
   * and the page's console output. A node that failed fails the wait at once.
   */
  async waitFor(
    what: string,
    ready: (report: PeerReport) => boolean,
    ms = 30_000,
  ): Promise<PeerReport> {
    const deadline = Date.now() + ms;
    for (;;) {
      const report = await this.report();
      if (ready(report)) return report;
      if (report.phase === "failed" || Date.now() > deadline) {
        const why = report.phase === "failed" ? "its node failed" : `not within ${ms} ms`;
        throw new Error(
          `tab ${this.config.id} (${this.config.database}): ${what}: ${why}\n` +
            `last report: ${JSON.stringify(report)}\npage output:\n  ${this.#log.join("\n  ")}`,
        );
      }
      await sleep(100);
    }
  }

  /** Reload the tab: the old page's node is dropped, the new page starts one from its config. */
  async reload(): Promise<void> {
    await this.#page.reload({ timeout: PAGE_TIMEOUT_MS });
    await this.#page.waitForFunction(
      () => (globalThis as { floePeer?: unknown }).floePeer !== undefined,
      undefined,
      { timeout: PAGE_TIMEOUT_MS },
    );
  }

  /** Close the tab at once, as a user would: the node gets no chance to stop. */
  async close(): Promise<void> {
    await withTimeout(this.#page.close(), PAGE_TIMEOUT_MS, "tab close").catch(() => {});
  }
}

/** The browser and the server of the peer page. */
export class PeerBrowser {
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly #profile: string;
  #context: BrowserContext | undefined;

  private constructor(server: Deno.HttpServer<Deno.NetAddr>, profile: string) {
    this.#server = server;
    this.#profile = profile;
  }

  /**
   * Serve `bundle` and start Chromium on profile directory `profile` (the caller owns and
   * deletes it).
   *
   * @throws {Error} when Chromium is missing, or does not start in time.
   */
  static async start(bundle: PageBundle, profile: string): Promise<PeerBrowser> {
    await assertChromium();
    const server = servePage(bundle, "floe browser peer");
    const browser = new PeerBrowser(server, profile);
    try {
      browser.#context = await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM_PATH,
        args: PEER_ARGS,
        headless: true,
        timeout: LAUNCH_TIMEOUT_MS,
      });
      return browser;
    } catch (error) {
      await browser.close();
      throw error;
    }
  }

  /** Open a new tab running a node configured by `config`; resolves once the page loaded. */
  async open(config: PeerPageConfig): Promise<PeerTab> {
    const context = this.#context;
    if (context === undefined) throw new Error("the browser is not running");
    const page = await context.newPage();
    page.setDefaultTimeout(PAGE_TIMEOUT_MS);
    const log: string[] = [];
    const note = (line: string) => {
      log.push(line);
      if (log.length > 100) log.shift();
    };
    page.on("console", (message) => note(`console.${message.type()}: ${message.text()}`));
    page.on("pageerror", (error) => note(`page error: ${error.message}`));
    const url = `http://127.0.0.1:${this.#server.addr.port}/?config=` +
      encodeURIComponent(JSON.stringify(config));
    await page.goto(url, { timeout: PAGE_TIMEOUT_MS });
    await page.waitForFunction(
      () => (globalThis as { floePeer?: unknown }).floePeer !== undefined,
      undefined,
      { timeout: PAGE_TIMEOUT_MS },
    );
    return new PeerTab(page, config, log);
  }

  /** Stop the browser (killing it if it does not close in time) and the server. */
  async close(): Promise<void> {
    const context = this.#context;
    this.#context = undefined;
    if (context !== undefined) {
      await withTimeout(context.close(), 15_000, "browser close").catch(() => {});
    }
    await killProfileProcesses(this.#profile).catch(() => {});
    await withTimeout(this.#server.shutdown(), 5_000, "server shutdown").catch(() => {});
  }
}
