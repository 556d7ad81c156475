/**
 * Real KV clusters for the HTTP tests: `RaftNode`s (MemoryStorage, real clock) on loopback
 * WebSockets, each with its `KvStateMachine` and the HTTP API on its own `Deno.serve` port.
 * Everything started is stopped by `close()`.
 *
 * @module
 */
import type { NodeId } from "../../src/core/types.ts";
import {
  createKvHttpApi,
  type KvHttpApi,
  type KvHttpApiOptions,
} from "../../src/http/kv_http_api.ts";
import { KvStateMachine, type KvStateMachineOptions } from "../../src/kv/kv_state_machine.ts";
import { RaftNode, type RaftNodeOptions } from "../../src/node/raft_node.ts";
import type { Storage } from "../../src/storage/storage.ts";
import { MemoryStorage } from "../../src/storage/memory_storage.ts";
import { waitFor } from "../transport/fixtures.ts";
import { Loopback } from "../transport/loopback.ts";

/** One node with its API. */
export interface HttpNode {
  /** Id. */
  readonly id: NodeId;
  /** The Raft node. */
  readonly node: RaftNode;
  /** Its state machine. */
  readonly kv: KvStateMachine;
  /** Its API handler. */
  readonly api: KvHttpApi;
  /** Base URL of its API. */
  readonly url: string;
  /** Its HTTP server. */
  readonly server: Deno.HttpServer<Deno.NetAddr>;
  /** Whether it was stopped. */
  stopped: boolean;
}

/** How to build a cluster. */
export interface HttpClusterOptions {
  /** Options of every node's API (node, kv and leaderUrl are filled in). */
  readonly api?: Partial<KvHttpApiOptions>;
  /** Options of every state machine. */
  readonly kv?: KvStateMachineOptions;
  /** The nodes to start (default all); the others are members that never run. */
  readonly running?: readonly NodeId[];
  /** Storage of node `id`. Default: a new MemoryStorage. */
  readonly storage?: (id: NodeId) => Storage;
  /** More node options. */
  readonly node?: Partial<RaftNodeOptions>;
}

/** N nodes serving the HTTP API. */
export class HttpCluster {
  /** By id. */
  readonly nodes = new Map<NodeId, HttpNode>();
  readonly #lb: Loopback;

  private constructor(lb: Loopback) {
    this.#lb = lb;
  }

  /** Start `ids` and their APIs (does not wait for a leader). */
  static async start(ids: NodeId[], options: HttpClusterOptions = {}): Promise<HttpCluster> {
    const running = options.running ?? ids;
    const lb = Loopback.start(running.map((id) => ({ id })));
    const c = new HttpCluster(lb);
    const urls = new Map<NodeId, string>();
    for (const id of running) {
      const kv = new KvStateMachine(options.kv);
      const node = await RaftNode.start({
        ...options.node,
        id,
        peers: ids,
        storage: options.storage?.(id) ?? new MemoryStorage(),
        transport: lb.node(id).transport,
        stateMachine: kv,
        leaderNoop: true,
      });
      const api = createKvHttpApi({
        ...options.api,
        node,
        kv,
        leaderUrl: (peer) => urls.get(peer),
      });
      const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, api);
      const url = `http://127.0.0.1:${server.addr.port}`;
      urls.set(id, url);
      c.nodes.set(id, { id, node, kv, api, url, server, stopped: false });
    }
    return c;
  }

  /** Node `id`. */
  get(id: NodeId): HttpNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** The running leader every running node agrees on (waits for one). */
  async leader(timeoutMs = 30_000): Promise<HttpNode> {
    let found: HttpNode | undefined;
    await waitFor("a leader known to every running node", () => {
      const running = [...this.nodes.values()].filter((n) => !n.stopped);
      const leaders = running.filter((n) => n.node.state().isLeader);
      if (leaders.length !== 1) return false;
      const id = leaders[0].node.id;
      if (!running.every((n) => n.node.status().leader === id)) return false;
      found = leaders[0];
      return true;
    }, timeoutMs);
    return found!;
  }

  /** A running node that is not the leader. */
  async follower(): Promise<HttpNode> {
    const leader = await this.leader();
    return [...this.nodes.values()].find((n) => !n.stopped && n !== leader)!;
  }

  /** Wait until every running node applied through `index`. */
  async applied(index: number, timeoutMs = 30_000): Promise<void> {
    await waitFor(
      `every node applied ${index}`,
      () => [...this.nodes.values()].every((n) => n.stopped || n.kv.appliedIndex >= index),
      timeoutMs,
    );
  }

  /** Stop node `id`: its watches, server, node and transport. */
  async stop(id: NodeId): Promise<void> {
    const n = this.get(id);
    if (n.stopped) return;
    n.stopped = true;
    n.api.close();
    await n.node.stop();
    await n.server.shutdown();
    await this.#lb.stop(id);
  }

  /** Stop everything. */
  async close(): Promise<void> {
    for (const id of this.nodes.keys()) await this.stop(id);
    await this.#lb.close();
  }
}
