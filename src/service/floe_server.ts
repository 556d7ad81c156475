/**
 * A floe node as a server process: FileStorage under the data directory, the replicated
 * key-value state machine, WebSocket peers and the HTTP API, all on one `Deno.serve` port (peer
 * upgrades at /floe are routed first; everything else is the API), or the API on a second port.
 * This is what `floe node` runs; `startFloeServer` is its library form. Deno only.
 *
 * @module
 */
import { createKvHttpApi } from "../http/kv_http_api.ts";
import { KvStateMachine } from "../kv/kv_state_machine.ts";
import { RaftNode, type RaftNodeOptions } from "../node/raft_node.ts";
import { FileStorage } from "../storage/file_storage.ts";
import { createUpgradeHandler, DEFAULT_PATH } from "../transport/websocket_server.ts";
import { type TransportLogEntry, WebSocketTransport } from "../transport/websocket_transport.ts";
import { wsDial } from "../transport/ws_dial.ts";
import {
  DEFAULT_CLUSTER,
  type FloePeer,
  formatHostPort,
  type HostPort,
  NodeConfigError,
} from "./node_config.ts";

/** How to run one node. */
export interface FloeServerOptions {
  /** This node's id; must be one of `peers` when `peers` is given. */
  readonly id: string;
  /** Where to serve peers (and the HTTP API unless `clientListen` is set). Port 0 picks one. */
  readonly listen: HostPort;
  /** Serve the HTTP API here instead of on `listen` (e.g. loopback only). */
  readonly clientListen?: HostPort;
  /** FileStorage directory (created if missing; locked while the node runs). */
  readonly dataDir: string;
  /** Every member, this node included. Default: this node alone. */
  readonly peers?: readonly FloePeer[];
  /** Shared cluster secret (at least 16 bytes); required with more than one member. */
  readonly secret?: string;
  /** Cluster id (default "floe"); peers of another cluster are refused. */
  readonly cluster?: string;
  /** Bearer token the HTTP API requires on every route but /healthz, when set. */
  readonly token?: string;
  /**
   * Raft timing and limits passed to `RaftNode.start` (heartbeatMs, electionMinMs,
   * proposalTimeoutMs, autoCompact, ...). The node's id, peers, storage, transport, state
   * machine and `leaderNoop` are the server's. Compaction is the node's automatic one.
   */
  readonly raft?: Omit<
    Partial<RaftNodeOptions>,
    "id" | "peers" | "storage" | "transport" | "stateMachine" | "leaderNoop"
  >;
  /** Where the transport's and the server's log lines go. Default: warnings to the console. */
  readonly log?: (line: string) => void;
}

/** A running node. */
export interface FloeServer {
  /** This node's id. */
  readonly id: string;
  /** Base URL of the HTTP API, e.g. `http://127.0.0.1:7401`. */
  readonly url: string;
  /** Base URL peers dial (`ws://host:port/floe`). */
  readonly peerUrl: string;
  /** The Raft node. */
  readonly node: RaftNode;
  /** The key-value state machine it applies to. */
  readonly kv: KvStateMachine;
  /** Stop serving, stop the node, close the transport and the storage. Safe to call twice. */
  stop(): Promise<void>;
}

function httpUrl(a: HostPort): string {
  const host = a.hostname === "0.0.0.0" ? "127.0.0.1" : a.hostname === "::" ? "::1" : a.hostname;
  return `http://${formatHostPort({ hostname: host, port: a.port })}`;
}

function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Open the data directory, start the Raft node and serve. Resolves once the ports are bound.
 *
 * @throws {NodeConfigError} for inconsistent options (a missing secret, this node not in
 *   `peers`); storage errors (a corrupt log, a directory locked by another process) as they come.
 */
export async function startFloeServer(options: FloeServerOptions): Promise<FloeServer> {
  const peers = options.peers ?? [{ id: options.id, address: options.listen }];
  if (!peers.some((p) => p.id === options.id)) {
    throw new NodeConfigError(`peers must include this node (${options.id})`);
  }
  if (peers.length > 1 && options.secret === undefined) {
    throw new NodeConfigError(`a cluster of ${peers.length} nodes needs a shared secret`);
  }
  const log = options.log ?? ((line: string) => console.warn(line));
  const others = peers.filter((p) => p.id !== options.id);
  const clientUrls = new Map(peers.map((p) => [p.id, p.clientUrl ?? httpUrl(p.address)]));

  const storage = await FileStorage.open(options.dataDir, {
    onWarning: (m) => log(`floe node ${options.id}: storage: ${m}`),
  });
  let transport: WebSocketTransport;
  try {
    transport = new WebSocketTransport({
      id: options.id,
      cluster: options.cluster ?? DEFAULT_CLUSTER,
      // A lone node has nobody to authenticate; a random secret keeps every upgrade refused.
      secret: options.secret ?? randomSecret(),
      peers: others.map((p) => ({
        id: p.id,
        url: `ws://${formatHostPort(p.address)}${DEFAULT_PATH}`,
      })),
      dial: wsDial,
      log: (e: TransportLogEntry) => {
        if (e.level !== "info") {
          log(
            `floe node ${options.id}: transport: ${e.event}${
              e.peer ? ` (${e.peer})` : ""
            }: ${e.detail}`,
          );
        }
      },
    });
  } catch (e) {
    await storage.close();
    throw e;
  }

  // A fresh state machine per start: the node restores the snapshot and replays the log into it.
  const kv = new KvStateMachine();
  let node: RaftNode;
  try {
    node = await RaftNode.start({
      ...options.raft,
      id: options.id,
      peers: peers.map((p) => p.id),
      storage,
      transport,
      stateMachine: kv,
      leaderNoop: true,
    });
  } catch (e) {
    await transport.close();
    await storage.close();
    throw e;
  }

  const api = createKvHttpApi({
    node,
    kv,
    leaderUrl: (id: string) => clientUrls.get(id),
    token: options.token,
  });
  const upgrade = createUpgradeHandler(() => transport);
  const serveApi = (request: Request): Promise<Response> => api(request);
  const servers: Deno.HttpServer<Deno.NetAddr>[] = [];
  const serve = (at: HostPort, handler: (r: Request) => Response | Promise<Response>) => {
    const server = Deno.serve({
      hostname: at.hostname,
      port: at.port,
      onListen: () => {},
      handler,
    });
    servers.push(server);
    return server;
  };
  let main: Deno.HttpServer<Deno.NetAddr>;
  let client: Deno.HttpServer<Deno.NetAddr> | undefined;
  try {
    if (options.clientListen) {
      main = serve(options.listen, (r) => upgrade(r) ?? notFound());
      client = serve(options.clientListen, serveApi);
    } else {
      main = serve(options.listen, (r) => upgrade(r) ?? serveApi(r));
    }
  } catch (e) {
    for (const s of servers) await s.shutdown();
    await node.stop();
    throw e;
  }
  const mainAddr = { hostname: options.listen.hostname, port: main.addr.port };
  const url = httpUrl(
    client ? { hostname: options.clientListen!.hostname, port: client.addr.port } : mainAddr,
  );
  clientUrls.set(options.id, url);

  let stopping: Promise<void> | undefined;
  return {
    id: options.id,
    url,
    peerUrl: `ws://${formatHostPort(httpUrlHost(mainAddr))}${DEFAULT_PATH}`,
    node,
    kv,
    stop: () =>
      stopping ??= (async () => {
        // Stopping the node fails the requests waiting on it, and ending the watch streams lets
        // the HTTP servers' graceful shutdown finish: then nothing is left in flight.
        await node.stop();
        api.close();
        await Promise.all(servers.map((s) => s.shutdown()));
      })(),
  };
}

function httpUrlHost(a: HostPort): HostPort {
  return { hostname: a.hostname === "0.0.0.0" ? "127.0.0.1" : a.hostname, port: a.port };
}

function notFound(): Response {
  return new Response("not found: the HTTP API is on the client port\n", { status: 404 });
}
