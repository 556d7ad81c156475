/**
 * The `floe` command: run a node or a local multi-process cluster, talk to a cluster's key-value
 * API, back it up and restore it, inspect a data directory.
 *
 *   deno run -A src/cli/floe.ts cluster --nodes 3
 *   deno run -A src/cli/floe.ts kv put greeting hello
 *   deno run -A src/cli/floe.ts storage check ./data/n1
 *
 * Exit codes: 0 success, 1 the operation failed (said on stderr), 2 a usage error (what is
 * wrong, then the usage).
 *
 * @module
 */
import { checkStorage, formatCheckReport } from "../storage/storage_check.ts";
import { UsageError } from "./cli_args.ts";
import { type CliIo, processIo } from "./cli_io.ts";

const USAGE = `usage: floe <command> [args]   (floe <command> --help for more)

commands:
  node ...                 run one node (storage, Raft, peers, HTTP API)
  cluster [--nodes N]      run a local N-node cluster, one process per node
  kv put|get|del|append|cas|list|watch ...
                           read and write keys through the HTTP API
  status                   every node's role, term and indexes
  snapshot save FILE       back up the key-value state through the leader
  snapshot restore FILE --data DIR --id ID --peers ...
                           make a new node's data directory from a backup
  storage check DIR        report a FileStorage directory's state; exit 1 if it has problems
  help                     this text

exit codes: 0 ok, 1 the operation failed, 2 usage error`;

const STORAGE_USAGE = "usage: floe storage check DIR";

async function runStorage(args: readonly string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "--help" || sub === "-h" || rest.includes("--help") || rest.includes("-h")) {
    io.out(STORAGE_USAGE);
    return 0;
  }
  if (sub !== "check") {
    throw new UsageError(`unknown command storage ${sub ?? ""}`.trim(), STORAGE_USAGE);
  }
  const flag = rest.find((a) => a.startsWith("-"));
  if (flag !== undefined) throw new UsageError(`unknown flag ${flag}`, STORAGE_USAGE);
  if (rest.length !== 1) throw new UsageError("expected exactly one directory", STORAGE_USAGE);
  const report = await checkStorage(rest[0]);
  io.out(formatCheckReport(report));
  return report.ok ? 0 : 1;
}

type Command = (args: readonly string[], io: CliIo) => Promise<number>;

// Loaded on use: `floe node` never loads the client, `floe kv` never loads the server.
const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  node: async () => (await import("./floe_node.ts")).runNode,
  cluster: async () => (await import("./floe_cluster.ts")).runCluster,
  kv: async () => (await import("./floe_kv.ts")).runKv,
  status: async () => (await import("./floe_kv.ts")).runStatus,
  snapshot: async () => (await import("./floe_snapshot.ts")).runSnapshot,
  storage: () => Promise.resolve(runStorage),
};

/**
 * Run the command line `args`; returns the exit code (2 for a usage error). Lines go to `out`
 * and `err`; `io` supplies the rest of the process (raw stdout, environment, signals).
 */
export async function runFloe(
  args: readonly string[],
  out: (line: string) => void = console.log,
  err: (line: string) => void = console.error,
  io: CliIo = processIo(out, err),
): Promise<number> {
  const [cmd, ...rest] = args;
  if (cmd === undefined || cmd === "help" || cmd === "--help" || cmd === "-h") {
    if (cmd === undefined) io.err(USAGE);
    else io.out(USAGE);
    return cmd === undefined ? 2 : 0;
  }
  const command = COMMANDS[cmd];
  if (command === undefined) {
    const what = cmd.startsWith("-") ? `unknown flag ${cmd}` : `unknown command ${cmd}`;
    io.err(`floe: ${what}\n${USAGE}`);
    return 2;
  }
  try {
    return await (await command())(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`floe ${cmd}: ${e.message}\n${e.usage}`);
      return 2;
    }
    throw e;
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await runFloe(Deno.args));
  } catch (e) {
    console.error(`floe: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exit(1);
  }
}
