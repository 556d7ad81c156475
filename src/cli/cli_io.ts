/**
 * Where a `floe` subcommand writes, and how it waits for the signal that stops it; the real
 * process's by default, replaceable in tests.
 *
 * @module
 */

/** Output and process hooks of a command. */
export interface CliIo {
  /** One line to stdout. */
  readonly out: (line: string) => void;
  /** One line to stderr. */
  readonly err: (line: string) => void;
  /** Raw bytes to stdout (values of `floe kv get`). */
  readonly write: (bytes: Uint8Array) => Promise<void>;
  /** Whether stdout is a terminal (then a value gets a trailing newline). */
  readonly isTerminal: () => boolean;
  /** Environment variables. */
  readonly env: () => Readonly<Record<string, string | undefined>>;
  /**
   * Resolves at the first SIGINT or SIGTERM after the call (the process then does not exit by
   * itself); the returned `dispose` removes the listeners.
   */
  readonly untilSignal: () => { signal: Promise<Deno.Signal>; dispose: () => void };
}

/** The process's own stdout, stderr, environment and signals. */
export function processIo(
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
): CliIo {
  return {
    out,
    err,
    write: async (bytes) => {
      let off = 0;
      while (off < bytes.length) off += await Deno.stdout.write(bytes.subarray(off));
    },
    isTerminal: () => Deno.stdout.isTerminal(),
    env: () => Deno.env.toObject(),
    untilSignal: () => {
      const listeners: [Deno.Signal, () => void][] = [];
      const signal = new Promise<Deno.Signal>((resolve) => {
        for (const s of ["SIGINT", "SIGTERM"] as const) {
          const listener = () => resolve(s);
          try {
            Deno.addSignalListener(s, listener);
            listeners.push([s, listener]);
          } catch { /* SIGTERM cannot be listened to on Windows */ }
        }
      });
      return {
        signal,
        dispose: () => {
          for (const [s, l] of listeners) Deno.removeSignalListener(s, l);
        },
      };
    },
  };
}
