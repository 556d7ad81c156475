/**
 * A child process for multi-process tests and benchmarks: its output kept line by line (the last
 * few hundred lines, for failure messages), a wait for a line such as "ready", and a kill that
 * waits until the process is gone and its pipes are drained, so a test leaks nothing. Deno only.
 *
 * @module
 */

/** How to start a child process. */
export interface SpawnOptions {
  /** A short name for messages, such as the node id. */
  readonly name: string;
  /** The program. */
  readonly command: string;
  /** Its arguments. */
  readonly args: readonly string[];
  /** Working directory. Default: this process's. */
  readonly cwd?: string;
  /** Extra environment variables. */
  readonly env?: Record<string, string>;
  /** How many of the latest output lines to keep. Default 400. */
  readonly keepLines?: number;
  /**
   * Give the child a stdin pipe that stays open while it runs (closed when it exits), for
   * programs that stop when their stdin closes, so they never outlive this process. Default
   * false (stdin is /dev/null).
   */
  readonly holdStdin?: boolean;
  /** Called with every output line as it arrives (for progress or debugging). */
  readonly onLine?: (line: string, stream: "stdout" | "stderr") => void;
}

/** A running (or finished) child process. Create with `SpawnedProcess.spawn`. */
export class SpawnedProcess {
  /** The name given at spawn. */
  readonly name: string;
  /** The process id. */
  readonly pid: number;
  /** Resolves when the process has exited and both of its pipes are drained. */
  readonly done: Promise<Deno.CommandStatus>;
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[] = [];
  readonly #keep: number;
  readonly #watchers = new Set<(line: string | undefined) => void>();
  readonly #onLine: SpawnOptions["onLine"];
  #status: Deno.CommandStatus | undefined;

  private constructor(options: SpawnOptions) {
    this.name = options.name;
    this.#keep = options.keepLines ?? 400;
    this.#onLine = options.onLine;
    this.#child = new Deno.Command(options.command, {
      args: [...options.args],
      cwd: options.cwd,
      env: options.env,
      stdin: options.holdStdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const child = this.#child;
    this.pid = child.pid;
    const out = this.#drain(child.stdout, "stdout");
    const err = this.#drain(child.stderr, "stderr");
    this.done = (async () => {
      const status = await child.status;
      if (options.holdStdin) await child.stdin.close().catch(() => {});
      await Promise.all([out, err]);
      this.#status = status;
      for (const w of this.#watchers) w(undefined);
      return status;
    })();
  }

  /** Start `options.command`. */
  static spawn(options: SpawnOptions): SpawnedProcess {
    return new SpawnedProcess(options);
  }

  /** Whether the process has exited (and its output is drained). */
  get exited(): boolean {
    return this.#status !== undefined;
  }

  /** Its exit status, once exited. */
  get status(): Deno.CommandStatus | undefined {
    return this.#status;
  }

  /** The latest output lines, stdout and stderr interleaved as they arrived. */
  output(): string {
    return this.#lines.join("\n");
  }

  /**
   * The first output line (already seen or still to come) matching `pattern`. Rejects when the
   * process exits first or after `timeoutMs`, with the latest output in the message.
   */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string> {
    const seen = this.#lines.find((l) => pattern.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const finish = (error: Error | undefined, line?: string) => {
        clearTimeout(timer);
        this.#watchers.delete(watch);
        if (error) reject(error);
        else resolve(line!);
      };
      const watch = (line: string | undefined) => {
        if (line === undefined) {
          const st = this.#status;
          const how = st?.signal ? `signal ${st.signal}` : `code ${st?.code}`;
          finish(this.#failure(`exited (${how}) before printing ${pattern}`));
        } else if (pattern.test(line)) {
          finish(undefined, line);
        }
      };
      const timer = setTimeout(
        () => finish(this.#failure(`printed no ${pattern} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      if (this.exited) return watch(undefined);
      this.#watchers.add(watch);
    });
  }

  /** Send `signal` (if still running) and wait until it has exited. */
  async kill(signal: Deno.Signal = "SIGKILL"): Promise<Deno.CommandStatus> {
    if (!this.exited) {
      try {
        this.#child.kill(signal);
      } catch {
        // It exited in between.
      }
    }
    return await this.done;
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. Resolves with its status. */
  async stop(graceMs = 5000): Promise<Deno.CommandStatus> {
    if (this.exited) return this.#status!;
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // It exited in between.
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), graceMs)));
    const first = await Promise.race([this.done, late]);
    clearTimeout(timer);
    return first === "late" ? await this.kill("SIGKILL") : first;
  }

  /** Its resident set size in bytes (Linux /proc), or undefined once it has exited. */
  async rssBytes(): Promise<number | undefined> {
    if (this.exited) return undefined;
    try {
      const text = await Deno.readTextFile(`/proc/${this.pid}/status`);
      const kb = /VmRSS:\s+(\d+) kB/.exec(text)?.[1];
      return kb === undefined ? undefined : Number(kb) * 1024;
    } catch {
      return undefined;
    }
  }

  #failure(what: string): Error {
    const output = this.output();
    const shown = output === "" ? "it printed nothing" : `its latest output:\n${output}`;
    return new Error(`${this.name} (pid ${this.pid}) ${what}; ${shown}`);
  }

  async #drain(stream: ReadableStream<Uint8Array>, which: "stdout" | "stderr"): Promise<void> {
    let partial = "";
    const push = (line: string) => {
      this.#lines.push(which === "stderr" ? `! ${line}` : line);
      if (this.#lines.length > this.#keep) this.#lines.splice(0, this.#lines.length - this.#keep);
      this.#onLine?.(line, which);
      for (const w of this.#watchers) w(line);
    };
    try {
      for await (const text of stream.pipeThrough(new TextDecoderStream())) {
        const parts = (partial + text).split("\n");
        partial = parts.pop()!;
        for (const p of parts) push(p);
      }
    } catch {
      // The pipe broke as the process died; what was read is kept.
    }
    if (partial !== "") push(partial);
  }
}
