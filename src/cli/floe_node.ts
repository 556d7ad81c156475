/**
 * `floe node`: run one node (storage, Raft, peers and the HTTP API) until SIGINT or SIGTERM.
 *
 * @module
 */
import { startFloeServer } from "../service/floe_server.ts";
import { loadNodeConfig, NodeConfigError } from "../service/node_config.ts";
import { NODE_FLAGS, parseArgs, UsageError } from "./cli_args.ts";
import type { CliIo } from "./cli_io.ts";

/** Usage of `floe node`. */
export const NODE_USAGE = `usage: floe node --id ID [--listen HOST:PORT] [--data DIR]
                 [--peers ID=HOST:PORT,...] [--secret S] [--cluster NAME] [--token T]
                 [--client-listen HOST:PORT] [--peer-clients ID=URL,...] [--config FILE]

Runs one floe node: FileStorage under --data, the replicated key-value store, peer WebSockets
at /floe and the HTTP API on one port (or the API on --client-listen). Prints
"floe node ID ready URL" once serving; SIGINT or SIGTERM stops it cleanly (exit 0).

  --id ID                 this node's id (required)
  --listen HOST:PORT      where to serve (default: this node's entry in --peers, else
                          127.0.0.1:7401; a bare :PORT binds 127.0.0.1)
  --data DIR              data directory (default ./data/ID)
  --peers ID=HOST:PORT,…  every member, this node included (default: this node alone);
                          ID=dial-only for a member that only dials out (a browser tab)
  --secret S              shared cluster secret, 16+ bytes; required with more than one member
  --cluster NAME          cluster id; peers of another cluster are refused (default floe)
  --token T               require "Authorization: Bearer T" on the HTTP API (not /healthz)
  --client-listen H:P     serve the HTTP API here instead of on --listen
  --peer-clients ID=URL,… members' HTTP API URLs when they use --client-listen
  --config FILE           JSON file with the same settings (id, listen, data, peers, secret,
                          token, cluster, clientListen, peerClients)
  --stop-with-stdin       also stop when stdin closes (floe cluster uses it, so a node never
                          outlives its parent)

Each setting may also come from the environment: FLOE_ID, FLOE_LISTEN, FLOE_DATA, FLOE_PEERS,
FLOE_SECRET, FLOE_TOKEN, FLOE_CLUSTER, FLOE_CLIENT_LISTEN, FLOE_PEER_CLIENTS, FLOE_CONFIG.
Precedence: flags, then environment, then the config file, then defaults.`;

/** Run `floe node ARGS`; resolves with the exit code once the node has stopped. */
export async function runNode(args: readonly string[], io: CliIo): Promise<number> {
  const parsed = parseArgs(args, NODE_FLAGS, NODE_USAGE);
  if (parsed.help) {
    io.out(NODE_USAGE);
    return 0;
  }
  if (parsed.positional.length > 0) {
    throw new UsageError(`unexpected argument ${parsed.positional[0]}`, NODE_USAGE);
  }
  let config;
  try {
    config = await loadNodeConfig(parsed.flags, io.env());
  } catch (e) {
    if (e instanceof NodeConfigError) throw new UsageError(e.message, NODE_USAGE);
    throw e;
  }
  // Listen before starting, so a signal during start-up still stops cleanly.
  const { signal, dispose } = io.untilSignal();
  let server;
  try {
    server = await startFloeServer({ ...config, log: io.err });
  } catch (e) {
    dispose();
    io.err(`floe node ${config.id}: cannot start: ${(e as Error).message}`);
    return 1;
  }
  if (config.token === undefined && !isLoopback(config.clientListen ?? config.listen)) {
    io.err(
      `floe node ${config.id}: warning: the HTTP API is reachable on ` +
        `${(config.clientListen ?? config.listen).hostname} without a token (--token)`,
    );
  }
  io.out(`floe node ${config.id} ready ${server.url}`);
  const stdinClosed = parsed.flags.has("stop-with-stdin") ? waitForStdinEnd() : undefined;
  const why = await Promise.race([signal, ...(stdinClosed ? [stdinClosed.ended] : [])]);
  stdinClosed?.cancel();
  // Listening on until stopped: a second signal (Ctrl-C reaches both `floe cluster` and its
  // nodes, which then pass on SIGTERM) must not kill the node halfway through its stop.
  await server.stop();
  dispose();
  io.err(`floe node ${config.id} stopped (${why})`);
  return 0;
}

function isLoopback(a: { hostname: string }): boolean {
  return a.hostname === "localhost" || a.hostname === "::1" || a.hostname.startsWith("127.");
}

function waitForStdinEnd(): { ended: Promise<string>; cancel: () => void } {
  const reader = Deno.stdin.readable.getReader();
  const ended = (async () => {
    try {
      while (!(await reader.read()).done) { /* discard */ }
    } catch { /* closed */ }
    return "stdin closed";
  })();
  return { ended, cancel: () => void reader.cancel().catch(() => {}) };
}
