/**
 * The browser peer's page, bundled by esbuild and served to headless Chromium by
 * `peer_browser.ts`: a real floe member in a tab. On load it reads its configuration from the
 * `config` query parameter (JSON {@linkcode PeerPageConfig}), opens its log in IndexedDB, dials
 * the Deno nodes with the browser's own WebSocket (`nativeDial`; nobody can dial a tab, the nodes
 * reach it over the connections it opens) and starts a `RaftNode` applying to a
 * `KvStateMachine`, with `leaderNoop` like the servers. The Deno side reads what it did through
 * `globalThis.floePeer` ({@linkcode PeerPageApi}).
 *
 * @module
 */
import { KvStateMachine } from "../../src/kv/kv_state_machine.ts";
import { RaftNode } from "../../src/node/raft_node.ts";
import { IndexedDBStorage } from "../../src/storage/indexeddb_storage.ts";
import { nativeDial } from "../../src/transport/socket.ts";
import {
  type TransportLogEntry,
  WebSocketTransport,
} from "../../src/transport/websocket_transport.ts";

/** How the page's node is set up. */
export interface PeerPageConfig {
  /** This node's id. */
  readonly id: string;
  /** Every voting member, this node included. */
  readonly members: readonly string[];
  /** The members that accept connections, and their `ws://` peer URLs. */
  readonly dial: Readonly<Record<string, string>>;
  /** Cluster id. */
  readonly cluster: string;
  /** Cluster secret. */
  readonly secret: string;
  /** IndexedDB database holding this node's log. */
  readonly database: string;
}

/** What the log in IndexedDB held when the page opened it, before the node started. */
export interface RestoredState {
  /** Saved term. */
  readonly term: number;
  /** Saved commit index. */
  readonly commit: number;
  /** Index of the last saved entry (the snapshot's when the log is empty). */
  readonly lastIndex: number;
}

/** The page's node as the Deno side sees it. */
export interface PeerReport {
  /** `starting` until the node runs; `failed` if it could not start, or stopped on an error. */
  readonly phase: "starting" | "running" | "failed" | "stopped";
  /** Why it failed. */
  readonly error?: string;
  /** What IndexedDB held at start, once read. */
  readonly restored?: RestoredState;
  /** Role, term, leader ("" when unknown), commit and applied index of the node. */
  readonly role?: string;
  /** Current term. */
  readonly term?: number;
  /** Known leader, "" when none. */
  readonly leader?: string;
  /** Commit index. */
  readonly commit?: number;
  /** The KV state machine's applied index. */
  readonly applied?: number;
  /** Every key and its value (as text) in the KV state machine. */
  readonly values: Readonly<Record<string, string>>;
  /** The peers an authenticated connection is up to. */
  readonly connected: readonly string[];
  /** The transport's warnings and errors (refused handshakes, ...), latest last. */
  readonly transportLog: readonly string[];
}

/** What the page exposes as `globalThis.floePeer`. */
export interface PeerPageApi {
  /** The node's state now. */
  report(): PeerReport;
  /** Stop the node cleanly (storage closed, connections closed). */
  stop(): Promise<void>;
}

function readConfig(): PeerPageConfig {
  const search = (globalThis as { location?: { search: string } }).location?.search ?? "";
  const text = new URLSearchParams(search).get("config");
  if (text === null) throw new Error("the page URL has no config parameter");
  return JSON.parse(text) as PeerPageConfig;
}

let phase: PeerReport["phase"] = "starting";
let error: string | undefined;
let restored: RestoredState | undefined;
let node: RaftNode | undefined;
let transport: WebSocketTransport | undefined;
const kv = new KvStateMachine();
const transportLog: string[] = [];
const text = new TextDecoder();

function noteTransport(e: TransportLogEntry): void {
  if (e.level === "info") return;
  transportLog.push(`${e.event}${e.peer ? ` (${e.peer})` : ""}: ${e.detail}`);
  if (transportLog.length > 50) transportLog.shift();
}

async function start(config: PeerPageConfig): Promise<void> {
  const storage = await IndexedDBStorage.open(config.database, {
    // A reloaded page may open the database before the old page has let go of its lock.
    lockTimeoutMs: 10_000,
    onPersistence: () => {},
  });
  try {
    const saved = await storage.load();
    const last = saved.entries.at(-1)?.index ?? saved.snapshot?.index ?? 0;
    restored = { term: saved.hardState.term, commit: saved.hardState.commit, lastIndex: last };
    transport = new WebSocketTransport({
      id: config.id,
      cluster: config.cluster,
      secret: config.secret,
      dial: nativeDial,
      peers: Object.entries(config.dial).map(([id, url]) => ({ id, url })),
      log: noteTransport,
    });
  } catch (e) {
    await storage.close();
    throw e;
  }
  node = await RaftNode.start({
    id: config.id,
    peers: config.members,
    storage,
    transport,
    stateMachine: kv,
    leaderNoop: true,
    // Slower to call an election than the servers (300-600 ms), so a server leads while one
    // is up: the HTTP API cannot forward a request to a tab. The tab still votes and acks.
    electionMinMs: 2000,
    electionMaxMs: 3000,
  });
  phase = "running";
}

const api: PeerPageApi = {
  report(): PeerReport {
    const status = node?.status();
    const values: Record<string, string> = {};
    for (const entry of kv.range("").entries) values[entry.key] = text.decode(entry.value);
    const running = phase === "running" && status?.running === false ? "failed" : phase;
    return {
      phase: running,
      error: error ?? status?.error,
      restored,
      role: status?.role,
      term: status?.term,
      leader: status?.leader,
      commit: status?.commit,
      applied: kv.appliedIndex,
      values,
      connected: transport === undefined
        ? []
        : Object.keys(transport.metrics().peers).filter((p) => transport!.isConnected(p)),
      transportLog: [...transportLog],
    };
  },
  async stop(): Promise<void> {
    await node?.stop();
    phase = "stopped";
  },
};

(globalThis as { floePeer?: PeerPageApi }).floePeer = api;

start(readConfig()).catch((e) => {
  phase = "failed";
  error = e instanceof Error ? (e.stack ?? e.message) : String(e);
});
