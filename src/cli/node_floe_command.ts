/**
 * `floe node` for Node: the same flags, environment variables, config file and ready line as the
 * Deno command (floe_node.ts), run on `startNodeFloeServer`. Built to `dist/node/floe_node.js`:
 *
 *   node dist/node/floe_node.js --id n1 --listen 127.0.0.1:7401 --data ./data/n1 \
 *     --peers n1=127.0.0.1:7401,n2=127.0.0.1:7402,n3=127.0.0.1:7403 --secret S
 *
 * @module
 */
import * as fs from "node:fs";
import process from "node:process";
import { startNodeFloeServer } from "../service/node_floe_server.ts";
import {
  NodeConfigError,
  type NodeConfigSources,
  resolveNodeConfig,
} from "../service/node_config.ts";
import { NODE_FLAGS, parseArgs, UsageError } from "./cli_args.ts";

/** Usage of the Node `floe node`. */
export const NODE_FLOE_USAGE = `usage: node floe_node.js --id ID [--listen HOST:PORT] [--data DIR]
                 [--peers ID=HOST:PORT,...] [--secret S] [--cluster NAME] [--token T]
                 [--client-listen HOST:PORT] [--peer-clients ID=URL,...] [--config FILE]
                 [--stop-with-stdin]

Runs one floe node under Node: FileStorage under --data, the replicated key-value store, peer
WebSockets at /floe and the HTTP API on one port (or the API on --client-listen). Prints
"floe node ID ready URL" once serving; SIGINT or SIGTERM stops it cleanly (exit 0). Flags,
environment variables (FLOE_ID, FLOE_LISTEN, ...) and the config file are those of
\`floe node\` under Deno (see its --help); a cluster may mix Node and Deno nodes.`;

/** Where the command writes; the process's stdout and stderr by default. */
export interface NodeFloeIo {
  /** One line to stdout. */
  readonly out: (line: string) => void;
  /** One line to stderr. */
  readonly err: (line: string) => void;
}

const PROCESS_IO: NodeFloeIo = {
  out: (line) => void process.stdout.write(`${line}\n`),
  err: (line) => void process.stderr.write(`${line}\n`),
};

/**
 * Run `floe node ARGS` under Node; resolves with the exit code once the node has stopped (0
 * after SIGINT/SIGTERM, 1 when it cannot start, 2 for a usage error).
 */
export async function runNodeFloe(
  args: readonly string[],
  io: NodeFloeIo = PROCESS_IO,
): Promise<number> {
  let config;
  let stopWithStdin = false;
  try {
    const parsed = parseArgs(args, NODE_FLAGS, NODE_FLOE_USAGE);
    if (parsed.help) {
      io.out(NODE_FLOE_USAGE);
      return 0;
    }
    if (parsed.positional.length > 0) {
      throw new UsageError(`unexpected argument ${parsed.positional[0]}`, NODE_FLOE_USAGE);
    }
    stopWithStdin = parsed.flags.has("stop-with-stdin");
    config = resolveNodeConfig({
      flags: parsed.flags,
      env: process.env,
      file: readConfigFile(parsed.flags.get("config") ?? (process.env.FLOE_CONFIG || undefined)),
    });
  } catch (e) {
    if (e instanceof UsageError || e instanceof NodeConfigError) {
      io.err(`floe node: ${e.message}\n${NODE_FLOE_USAGE}`);
      return 2;
    }
    throw e;
  }
  // Listen before starting, so a signal during start-up still stops cleanly.
  let stopNow: (why: string) => void = () => {};
  const stopped = new Promise<string>((resolve) => (stopNow = resolve));
  const onSigint = () => stopNow("SIGINT");
  const onSigterm = () => stopNow("SIGTERM");
  const onStdinEnd = () => stopNow("stdin closed");
  process.on("SIGINT", onSigint);
  process.on("SIGTERM", onSigterm);
  const dispose = () => {
    process.off("SIGINT", onSigint);
    process.off("SIGTERM", onSigterm);
    if (stopWithStdin) {
      process.stdin.off("end", onStdinEnd).off("close", onStdinEnd);
      process.stdin.pause();
    }
  };
  let server;
  try {
    server = await startNodeFloeServer({ ...config, log: io.err });
  } catch (e) {
    dispose();
    io.err(`floe node ${config.id}: cannot start: ${(e as Error).message}`);
    return 1;
  }
  io.out(`floe node ${config.id} ready ${server.url}`);
  if (stopWithStdin) {
    process.stdin.on("end", onStdinEnd).on("close", onStdinEnd);
    process.stdin.resume();
  }
  const why = await stopped;
  dispose();
  await server.stop();
  io.err(`floe node ${config.id} stopped (${why})`);
  return 0;
}

function readConfigFile(name: string | undefined): NodeConfigSources["file"] {
  if (name === undefined) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(name, "utf8");
  } catch (e) {
    throw new NodeConfigError(`cannot read the config file ${name}: ${(e as Error).message}`);
  }
  try {
    return { name, value: JSON.parse(text) };
  } catch (e) {
    throw new NodeConfigError(`${name} is not valid JSON: ${(e as Error).message}`);
  }
}
