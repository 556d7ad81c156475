/**
 * Running `floe` as a real process in tests: one-shot commands, and a `floe cluster` kept running
 * in the background with its output collected.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** The `floe` entry point. */
export const FLOE = fileURLToPath(new URL("../../src/cli/floe.ts", import.meta.url));

/** What a finished command did. */
export interface Finished {
  /** Exit code. */
  readonly code: number;
  /** Its stdout. */
  readonly stdout: string;
  /** Its stderr. */
  readonly stderr: string;
}

/** Run `floe ARGS` to completion (the environment gets `env` added). */
export async function floe(
  args: readonly string[],
  env: Record<string, string> = {},
  stdin?: Uint8Array,
): Promise<Finished> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", FLOE, ...args],
    env,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const w = child.stdin.getWriter();
    await w.write(stdin);
    await w.close();
  }
  const out = await child.output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/**
 * `count` consecutive loopback ports that were free a moment ago, from a random base (so
 * concurrent test runs rarely collide).
 */
export function consecutiveFreePorts(count: number): number {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    const held: Deno.TcpListener[] = [];
    try {
      for (let i = 0; i < count; i++) {
        held.push(Deno.listen({ hostname: "127.0.0.1", port: base + i }));
      }
      return base;
    } catch {
      // taken; try another base
    } finally {
      for (const l of held) l.close();
    }
  }
  throw new Error("no free port range found");
}

/** Whether every port from `base` on can be bound (so nothing is left listening there). */
export function portsFree(base: number, count: number): boolean {
  const held: Deno.TcpListener[] = [];
  try {
    for (let i = 0; i < count; i++) {
      held.push(Deno.listen({ hostname: "127.0.0.1", port: base + i }));
    }
    return true;
  } catch {
    return false;
  } finally {
    for (const l of held) l.close();
  }
}

/** A `floe cluster` running in the background. */
export class ClusterProcess {
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[] = [];
  readonly #pump: Promise<void>;
  readonly status: Promise<Deno.CommandStatus>;

  /** Start `floe cluster ARGS`. */
  constructor(args: readonly string[], env: Record<string, string> = {}) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", FLOE, "cluster", ...args],
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.status = this.#child.status;
    this.#pump = Promise.all([this.#read(this.#child.stdout), this.#read(this.#child.stderr)])
      .then(() => {});
  }

  async #read(stream: ReadableStream<Uint8Array>): Promise<void> {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      this.#lines.push(...parts);
    }
    if (rest) this.#lines.push(rest);
  }

  /** Everything printed so far (stdout and stderr interleaved by arrival). */
  get output(): string {
    return this.#lines.join("\n");
  }

  /** Wait until a line matches `pattern`, or fail after `ms` (or when the process exits). */
  async waitFor(pattern: RegExp, ms = 90_000): Promise<string> {
    const deadline = Date.now() + ms;
    let exited = false;
    this.status.then(() => exited = true);
    for (;;) {
      const line = this.#lines.find((l) => pattern.test(l));
      if (line !== undefined) return line;
      if (exited || Date.now() > deadline) {
        throw new Error(`no line matching ${pattern}; output:\n${this.output}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Send `signal`; resolves with the exit status once the output is drained. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    try {
      this.#child.kill(signal);
    } catch { /* already exited */ }
    const status = await this.status;
    await this.#pump;
    return status;
  }

  /** Kill it for good (cleanup in `finally`); its nodes stop when their stdin closes. */
  async kill(): Promise<void> {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* already exited */ }
    await this.status;
    await this.#pump.catch(() => {});
  }
}
