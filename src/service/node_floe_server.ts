/**
 * A floe node as a Node process: FileStorage under the data directory, the replicated key-value
 * state machine, WebSocket peers accepted by `ws` (`WsPeerServer`) and the HTTP API served through
 * `node:http` (node_http_bridge.ts), all on one port (peer upgrades at /floe, everything else is
 * the API), or the API on a second port. The Node twin of floe_server.ts (which runs on
 * `Deno.serve`): same options, same behaviour, so Node and Deno nodes mix in one cluster.
 *
 * @module
 */
import * as http from "node:http";
import { createKvHttpApi } from "../http/kv_http_api.ts";
import { KvStateMachine } from "../kv/kv_state_machine.ts";
import { RaftNode, type RaftNodeOptions } from "../node/raft_node.ts";
import { FileStorage } from "../storage/file_storage.ts";
import { type TransportLogEntry, WebSocketTransport } from "../transport/websocket_transport.ts";
import { type NodeRequestListener, wsDial, WsPeerServer } from "../transport/ws_dial.ts";
import { toNodeListener } from "./node_http_bridge.ts";
import {
  DEFAULT_CLUSTER,
  type FloePeer,
  formatHostPort,
  type HostPort,
  NodeConfigError,
} from "./node_config.ts";

/** How to run one node under Node (the options of the Deno server, `FloeServerOptions`). */
export interface NodeFloeServerOptions {
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
   * Raft timing and limits passed to `RaftNode.start` (heartbeatMs, electionMinMs, ...). The
   * node's id, peers, storage, transport and state machine are set by the server.
   */
  readonly raft?: Omit<
    Partial<RaftNodeOptions>,
    "id" | "peers" | "storage" | "transport" | "stateMachine" | "onApply"
  >;
  /** Snapshot the state machine and drop the log after this many applied entries. Default 10,000. */
  readonly compactEvery?: number;
  /** Where the transport's and the server's log lines go. Default: warnings to the console. */
  readonly log?: (line: string) => void;
}

/** A running node (the shape of the Deno server's `FloeServer`). */
export interface NodeFloeServer {
  /** This node's id. */
  readonly id: string;
  /** Base URL of the HTTP API, e.g. `http://127.0.0.1:7401`. */
  readonly url: string;
  /** URL peers dial (`ws://host:port/floe`). */
  readonly peerUrl: string;
  /** The Raft node. */
  readonly node: RaftNode;
  /** The key-value state machine it applies to. */
  readonly kv: KvStateMachine;
  /** Stop serving, stop the node, close the transport and the storage. Safe to call twice. */
  stop(): Promise<void>;
}

const DEFAULT_COMPACT_EVERY = 10_000;
const PEER_PATH = "/floe";

function loopbackFor(a: HostPort): HostPort {
  const hostname = a.hostname === "0.0.0.0"
    ? "127.0.0.1"
    : a.hostname === "::"
    ? "::1"
    : a.hostname;
  return { hostname, port: a.port };
}

function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Open the data directory, start the Raft node and serve. Resolves once the ports are bound.
 *
 * @throws {NodeConfigError} for inconsistent options (a missing secret, this node not in
 *   `peers`); storage errors (a corrupt log, a directory locked by another process) and listen
 *   errors (`EADDRINUSE`) as they come, after closing what was opened.
 */
export async function startNodeFloeServer(
  options: NodeFloeServerOptions,
): Promise<NodeFloeServer> {
  const peers = options.peers ?? [{ id: options.id, address: options.listen }];
  if (!peers.some((p) => p.id === options.id)) {
    throw new NodeConfigError(`peers must include this node (${options.id})`);
  }
  if (peers.length > 1 && options.secret === undefined) {
    throw new NodeConfigError(`a cluster of ${peers.length} nodes needs a shared secret`);
  }
  const compactEvery = options.compactEvery ?? DEFAULT_COMPACT_EVERY;
  if (!Number.isSafeInteger(compactEvery) || compactEvery < 1) {
    throw new NodeConfigError(`compactEvery must be a positive integer, got ${compactEvery}`);
  }
  const log = options.log ?? ((line: string) => console.warn(line));
  const others = peers.filter((p) => p.id !== options.id);
  const clientUrls = new Map(
    peers.map((p) => [p.id, p.clientUrl ?? `http://${formatHostPort(loopbackFor(p.address))}`]),
  );

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
        url: `ws://${formatHostPort(p.address)}${PEER_PATH}`,
      })),
      dial: wsDial,
      log: (e: TransportLogEntry) => {
        if (e.level === "info") return;
        const peer = e.peer ? ` (${e.peer})` : "";
        log(`floe node ${options.id}: transport: ${e.event}${peer}: ${e.detail}`);
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
      onApply: (item) => {
        if (item.type === "entry" && item.index % compactEvery === 0) {
          // After this apply returns, the state machine holds exactly the state through index.
          queueMicrotask(() => {
            try {
              node.compact(item.index, kv.snapshot());
            } catch { /* stopped meanwhile */ }
          });
        }
      },
    });
  } catch (e) {
    await transport.close();
    await storage.close();
    throw e;
  }

  const handler = createKvHttpApi({
    node,
    kv,
    leaderUrl: (id: string) => clientUrls.get(id),
    token: options.token,
  });
  const api = toNodeListener(handler, {
    onError: (e) => log(`floe node ${options.id}: http: ${e}`),
  });
  let peerServer: WsPeerServer | undefined;
  let clientServer: http.Server | undefined;
  let url: string;
  try {
    peerServer = await WsPeerServer.listen({
      hostname: options.listen.hostname,
      port: options.listen.port,
      path: PEER_PATH,
      onRequest: options.clientListen ? notFound : api,
    }, transport);
    const peerAddress = loopbackFor({ hostname: options.listen.hostname, port: peerServer.port });
    url = `http://${formatHostPort(peerAddress)}`;
    if (options.clientListen) {
      clientServer = await listenHttp(options.clientListen, api);
      const port = (clientServer.address() as { port: number }).port;
      url = `http://${formatHostPort(loopbackFor({ ...options.clientListen, port }))}`;
    }
  } catch (e) {
    await peerServer?.close();
    await node.stop();
    throw e;
  }
  clientUrls.set(options.id, url);
  const peerUrl = peerServer.url;
  const servers = { peer: peerServer, client: clientServer };

  let stopping: Promise<void> | undefined;
  return {
    id: options.id,
    url,
    peerUrl,
    node,
    kv,
    stop: () =>
      stopping ??= (async () => {
        // Stopping the node fails the requests waiting on it; ending the watch streams and
        // closing the servers ends the connections left (idle keep-alives too).
        await node.stop();
        handler.close();
        await servers.peer.close();
        if (servers.client) await closeHttp(servers.client);
      })(),
  };
}

const notFound: NodeRequestListener = (_request, response) => {
  response.writeHead(404, { "content-type": "text/plain" });
  response.end("not found: the HTTP API is on the client port\n");
};

async function listenHttp(at: HostPort, listener: NodeRequestListener): Promise<http.Server> {
  const server = http.createServer(listener);
  // Watch streams last as long as their client wants.
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(at.port, at.hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}

async function closeHttp(server: http.Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}
