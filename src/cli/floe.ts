/**
 * The `floe` command. This first cut has one subcommand, `floe storage check DIR`, which reports
 * a FileStorage directory's state (format, segments, records, indexes, hard state, snapshot,
 * problems) and exits 1 when it has problems. `floe node`, `floe cluster`, `floe kv` and the rest
 * come with the KV service.
 *
 *   deno run -A src/cli/floe.ts storage check ./data/n1
 *
 * @module
 */
import { checkStorage, formatCheckReport } from "../storage/storage_check.ts";

const USAGE = `usage: floe <command>

commands:
  storage check DIR   report a FileStorage directory's state; exit 1 if it has problems
  help                this text`;

/** Run the command line `args`; returns the exit code (2 for a usage error). */
export async function runFloe(
  args: readonly string[],
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
): Promise<number> {
  const [cmd, sub, ...rest] = args;
  if (cmd === undefined || cmd === "help" || cmd === "--help" || cmd === "-h") {
    out(USAGE);
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === "storage" && sub === "check") {
    if (rest.includes("--help") || rest.includes("-h")) {
      out("usage: floe storage check DIR");
      return 0;
    }
    const flag = rest.find((a) => a.startsWith("-"));
    if (flag !== undefined) {
      err(`floe storage check: unknown flag ${flag}\nusage: floe storage check DIR`);
      return 2;
    }
    if (rest.length !== 1) {
      err("floe storage check: expected exactly one directory\nusage: floe storage check DIR");
      return 2;
    }
    const report = await checkStorage(rest[0]);
    out(formatCheckReport(report));
    return report.ok ? 0 : 1;
  }
  err(`floe: unknown command ${[cmd, sub].filter(Boolean).join(" ")}\n${USAGE}`);
  return 2;
}

if (import.meta.main) Deno.exit(await runFloe(Deno.args));
