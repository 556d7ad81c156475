/**
 * What a floe node process is, whatever serves it: FileStorage under the data directory, the
 * WebSocket transport to its peers, a `RaftNode` applying to a fresh `KvStateMachine`, and the
 * HTTP API over both. Runtime-neutral: the Deno server (floe_server.ts, `Deno.serve`) and the
 * Node server (node_floe_server.ts, `node:http` + `ws`) only add the listening sockets, so the two
 * behave the same and Node and Deno nodes mix in one cluster.
 *
 * @module
 */
import { createKvHttpApi, type KvHttpApi } from "../http/kv_http_api.ts";
import { KvStateMachine } from "../kv/kv_state_machine.ts";
import { RaftNode, type RaftNodeOptions } from "../node/raft_node.ts";
import { FileStorage } from "../storage/file_storage.ts";
import type { Dialer } from "../transport/socket.ts";
import { type TransportLogEntry, WebSocketTransport } from "../transport/websocket_transport.ts";
import {
  DEFAULT_CLUSTER,
  type FloePeer,
  formatHostPort,
  type HostPort,
  NodeConfigError,
} from "./node_config.ts";

/** Path of the peer WebSocket endpoint on a node's port. */
export const PEER_PATH = "/floe";

/** How to run one node (the same options under Deno and Node). */
export interface FloeServerOptions {
  /** This node's id; must be one of `peers` when `peers` is given. */
  readonly id: string;
  /** Where to serve peers (and the HTTP API unless `clientListen` is set). Port 0 picks one. */
  readonly listen: HostPort;
  /** Serve the HTTP API here instead of on `listen` (e.g. loopback only). */
  readonly clientListen?: HostPort;
  /** FileStorage directory (created if missing; locked while the node runs). */
  readonly dataDir: string;
  /** Every member with an address, this node included. Default: this node alone. */
  readonly peers?: readonly FloePeer[];
  /**
   * Members without an address (browser tabs): voting members that dial this node, reached over
   * the connection they open. Requests are not forwarded to one that leads (503 no-leader).
   */
  readonly dialOnlyPeers?: readonly string[];
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
  /** URL peers dial (`ws://host:port/floe`). */
  readonly peerUrl: string;
  /** The Raft node. */
  readonly node: RaftNode;
  /** The key-value state machine it applies to. */
  readonly kv: KvStateMachine;
  /** Stop serving, stop the node, close the transport and the storage. Safe to call twice. */
  stop(): Promise<void>;
}

/** The parts of a node before it listens; `setOwnUrl` once the API's port is known. */
export interface KvNodeParts {
  /** The Raft node (running). */
  readonly node: RaftNode;
  /** Its state machine. */
  readonly kv: KvStateMachine;
  /** The transport, to hand accepted peer sockets to. */
  readonly transport: WebSocketTransport;
  /** The HTTP API handler. */
  readonly api: KvHttpApi;
  /** Where this node's own API is reachable (followers forward to the leader's). */
  setOwnUrl(url: string): void;
  /** Where log lines go. */
  readonly log: (line: string) => void;
}

/** The address a client on this machine reaches a listener bound to `a` at. */
export function reachableAt(a: HostPort): HostPort {
  const hostname = a.hostname === "0.0.0.0"
    ? "127.0.0.1"
    : a.hostname === "::"
    ? "::1"
    : a.hostname;
  return { hostname, port: a.port };
}

/** `http://host:port` for a listener bound to `a`. */
export function httpUrl(a: HostPort): string {
  return `http://${formatHostPort(reachableAt(a))}`;
}

function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Check the options, open the storage, start the transport and the Raft node and build the HTTP
 * API. On failure everything opened so far is closed again.
 *
 * @throws {NodeConfigError} for inconsistent options (a missing secret, this node not in
 *   `peers`); storage errors (a corrupt log, a directory locked by another process) as they come.
 */
export async function openKvNode(options: FloeServerOptions, dial: Dialer): Promise<KvNodeParts> {
  const peers = options.peers ?? [{ id: options.id, address: options.listen }];
  if (!peers.some((p) => p.id === options.id)) {
    throw new NodeConfigError(`peers must include this node (${options.id})`);
  }
  const dialOnly = options.dialOnlyPeers ?? [];
  for (const id of dialOnly) {
    if (id === options.id) throw new NodeConfigError(`this node (${id}) cannot be dial-only`);
    if (peers.some((p) => p.id === id) || dialOnly.indexOf(id) !== dialOnly.lastIndexOf(id)) {
      throw new NodeConfigError(`member ${id} is listed twice`);
    }
  }
  const members = peers.length + dialOnly.length;
  if (members > 1 && options.secret === undefined) {
    throw new NodeConfigError(`a cluster of ${members} nodes needs a shared secret`);
  }
  const log = options.log ?? ((line: string) => console.warn(line));
  const prefix = `floe node ${options.id}`;
  const clientUrls = new Map(peers.map((p) => [p.id, p.clientUrl ?? httpUrl(p.address)]));

  const storage = await FileStorage.open(options.dataDir, {
    onWarning: (m) => log(`${prefix}: storage: ${m}`),
  });
  let transport: WebSocketTransport;
  try {
    transport = new WebSocketTransport({
      id: options.id,
      cluster: options.cluster ?? DEFAULT_CLUSTER,
      // A lone node has nobody to authenticate; a random secret keeps every upgrade refused.
      secret: options.secret ?? randomSecret(),
      peers: [
        ...peers.filter((p) => p.id !== options.id).map((p) => ({
          id: p.id,
          url: `ws://${formatHostPort(p.address)}${PEER_PATH}`,
        })),
        ...dialOnly.map((id) => ({ id })),
      ],
      dial,
      log: (e: TransportLogEntry) => {
        if (e.level === "info") return;
        const peer = e.peer ? ` (${e.peer})` : "";
        log(`${prefix}: transport: ${e.event}${peer}: ${e.detail}`);
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
      // etcd's default snapshot count. A KV snapshot carries the watch history (megabytes): made
      // every 10,000 entries (RaftNode's default) it stalled each node for tens of ms about once
      // a second under load, which was most of the put latency's 99th percentile.
      autoCompact: { logEntries: 100_000 },
      ...options.raft,
      id: options.id,
      peers: [...peers.map((p) => p.id), ...dialOnly],
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
    transportMetrics: () => transport.metrics(),
  });
  return {
    node,
    kv,
    transport,
    api,
    log,
    setOwnUrl: (url) => clientUrls.set(options.id, url),
  };
}
