/**
 * IndexedDBStorage in real headless Chromium: the storage contract suite and the
 * IndexedDB-specific cases, one Deno test per case, so a failure shows by name.
 *
 * The browser is driven from a child Deno process (`run_in_chromium.ts`): when it loads,
 * playwright-core reads the home directory (`--allow-sys`) and probes
 * `/proc/sys/fs/binfmt_misc/WSLInterop`, which Deno allows only under `--allow-all`. The test run
 * grants neither; only that child gets them. The child starts with the first test that
 * needs it, streams one result per case, and is bounded by `FLOE_BROWSER_TIMEOUT_MS` (default
 * 300 000); whatever happens, the Chromium processes of its profile are killed and the profile
 * deleted after the last test (`DriverRun.stop`).
 *
 * @module
 */
import { caseNames, type CaseResult, parseResult } from "./protocol.ts";

const DRIVER = new URL("./run_in_chromium.ts", import.meta.url).pathname;
const TIMEOUT_MS = Number(Deno.env.get("FLOE_BROWSER_TIMEOUT_MS") ?? 300_000);

interface Pending {
  readonly promise: Promise<CaseResult>;
  resolve(result: CaseResult): void;
  reject(error: Error): void;
}

function pending(): Pending {
  let resolve!: (result: CaseResult) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<CaseResult>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A case whose test was filtered out is never awaited; its rejection is not an error.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** One run of the driver: its child process, its profile, and a result slot per case. */
class DriverRun {
  readonly results = new Map(caseNames().map((name) => [name, pending()]));
  readonly profile: string;
  readonly #child: Deno.ChildProcess;
  readonly #stderr: string[] = [];
  readonly #timer: ReturnType<typeof setTimeout>;
  readonly done: Promise<void>;
  #exitCode: number | undefined;

  constructor(profile: string) {
    this.profile = profile;
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", DRIVER, "--profile", profile],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#timer = setTimeout(() => {
      this.#stderr.push(`killed: no end after ${TIMEOUT_MS} ms (FLOE_BROWSER_TIMEOUT_MS)`);
      this.kill();
    }, TIMEOUT_MS);
    this.done = this.#follow();
  }

  async #lines(stream: ReadableStream<Uint8Array>, each: (line: string) => void): Promise<void> {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop() ?? "";
      lines.forEach(each);
    }
    if (rest !== "") each(rest);
  }

  async #follow(): Promise<void> {
    const stdout = this.#lines(this.#child.stdout, (line) => {
      const result = parseResult(line);
      if (result === undefined) this.#stderr.push(line);
      else this.results.get(result.name)?.resolve(result);
    });
    const stderr = this.#lines(this.#child.stderr, (line) => {
      this.#stderr.push(line);
      if (this.#stderr.length > 100) this.#stderr.shift();
    });
    const status = await this.#child.status;
    this.#exitCode = status.code;
    await Promise.all([stdout, stderr]);
    clearTimeout(this.#timer);
    const why = new Error(
      `the Chromium driver ended (exit ${status.code}${
        status.signal ? `, ${status.signal}` : ""
      }) before reporting this case; its last output:\n  ${this.#stderr.join("\n  ")}`,
    );
    for (const slot of this.results.values()) slot.reject(why);
  }

  #signal(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch {
      // Already exited.
    }
  }

  /** Kill the driver at once; `stop` then cleans up after it. */
  kill(): void {
    this.#signal("SIGKILL");
  }

  /**
   * Stop the driver if it still runs (tests were filtered out, or it hangs): SIGTERM, on which
   * it stops its browser, then SIGKILL after 15 s. Delete the profile. A driver that did not
   * exit on its own terms may have left Chromium running; finding it needs /proc, which Deno
   * opens only under `--allow-all`, so a short-lived driver in `--cleanup` mode does that.
   */
  async stop(): Promise<void> {
    this.#signal("SIGTERM");
    const killer = setTimeout(() => this.kill(), 15_000);
    await this.done;
    clearTimeout(killer);
    // 0: all passed, 1: some failed, 143: stopped by SIGTERM; each after stopping its browser.
    if ([0, 1, 143].includes(this.#exitCode ?? -1)) {
      await Deno.remove(this.profile, { recursive: true }).catch(() => {});
      return;
    }
    const cleanup = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", DRIVER, "--cleanup", "--profile", this.profile],
      stdin: "null",
      stdout: "null",
      stderr: "inherit",
      signal: AbortSignal.timeout(30_000),
    });
    await cleanup.output().catch(() => {});
  }
}

let run: DriverRun | undefined;

async function result(name: string): Promise<CaseResult> {
  run ??= new DriverRun(await Deno.makeTempDir({ prefix: "floe-chromium-" }));
  const slot = run.results.get(name);
  if (slot === undefined) throw new Error(`no browser case named "${name}"`);
  return slot.promise;
}

Deno.test.afterAll(async () => {
  if (run === undefined) return;
  await run.stop();
});

for (const name of caseNames()) {
  Deno.test({
    name: `chromium: ${name}`,
    // The driver outlives each test by design: one browser serves them all.
    sanitizeOps: false,
    sanitizeResources: false,
    async fn() {
      const outcome = await result(name);
      // The driver sends the stack, which starts with "Error: "; this Error adds its own.
      if (!outcome.ok) throw new Error((outcome.error ?? "failed").replace(/^Error: /, ""));
    },
  });
}
