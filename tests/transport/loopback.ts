/**
 * Transports on real loopback sockets for tests: each serving node gets a `WebSocketServer` on
 * 127.0.0.1 and an ephemeral port, each transport dials with `ws`, and everything opened is closed
 * by `close()`.
 *
 * @module
 */
import type { Message, NodeId } from "../../src/core/types.ts";
import { FaultProxy } from "../../src/testing/fault_proxy.ts";
import { WebSocketServer } from "../../src/transport/websocket_server.ts";
import {
  type PeerAddress,
  type TransportLogEntry,
  WebSocketTransport,
  type WebSocketTransportOptions,
} from "../../src/transport/websocket_transport.ts";
import { wsDial } from "../../src/transport/ws_dial.ts";

/** The secret test clusters share. */
export const SECRET = "loopback-test-secret-0123456789";
/** The cluster id test clusters use. */
export const CLUSTER = "test-cluster";

/** One node of a loopback cluster. */
export interface LoopNode {
  /** Its id. */
  readonly id: NodeId;
  /** Its server, if it accepts connections. */
  server?: WebSocketServer;
  /** Its transport. */
  transport: WebSocketTransport;
  /** Every message it received, in order. */
  readonly inbox: Message[];
  /** Its transport's log. */
  readonly log: TransportLogEntry[];
}

/** How to build one node. */
export interface NodeSpec {
  /** Node id. */
  readonly id: NodeId;
  /** Whether it runs a server (a browser-like peer does not). Default true. */
  readonly serve?: boolean;
  /** Extra transport options. */
  readonly options?: Partial<WebSocketTransportOptions>;
  /** Port to listen on. Default: ephemeral. */
  readonly port?: number;
}

/** A set of transports on loopback. */
export class Loopback {
  /** By id. */
  readonly nodes = new Map<NodeId, LoopNode>();
  /** The URL of each serving node (its proxy's, when proxied). */
  readonly urls = new Map<NodeId, string>();
  /** The port each serving node's own server listens on. */
  readonly serverPorts = new Map<NodeId, number>();
  /** The proxy in front of each serving node, when proxied. */
  readonly proxies = new Map<NodeId, FaultProxy>();
  #ids: NodeId[] = [];
  #specs = new Map<NodeId, NodeSpec>();

  /**
   * Start servers for the serving nodes, then every transport. With `proxy`, a `FaultProxy`
   * stands in front of each server and peers dial the proxy.
   */
  static start(specs: readonly NodeSpec[], options: { proxy?: boolean } = {}): Loopback {
    const lb = new Loopback();
    lb.#ids = specs.map((s) => s.id);
    const servers = new Map<NodeId, WebSocketServer>();
    for (const s of specs) {
      lb.#specs.set(s.id, s);
      if (s.serve === false) continue;
      const server = WebSocketServer.listen({ hostname: "127.0.0.1", port: s.port ?? 0 });
      servers.set(s.id, server);
      lb.serverPorts.set(s.id, server.port);
      if (options.proxy) {
        const proxy = FaultProxy.listen({ port: server.port });
        lb.proxies.set(s.id, proxy);
        lb.urls.set(s.id, `ws://127.0.0.1:${proxy.port}/floe`);
      } else {
        lb.urls.set(s.id, server.url);
      }
    }
    for (const s of specs) lb.#startNode(s, servers.get(s.id));
    return lb;
  }

  /** Node `id`. */
  node(id: NodeId): LoopNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Peers of `id`: every other node, with its URL when it serves. */
  peersOf(id: NodeId): PeerAddress[] {
    return this.#ids.filter((p) => p !== id).map((p) => ({ id: p, url: this.urls.get(p) }));
  }

  /** Close node `id`'s transport and server (a crash, as far as peers can tell). */
  async stop(id: NodeId): Promise<void> {
    const n = this.node(id);
    await n.transport.close();
    await n.server?.close();
    n.server = undefined;
  }

  /** Start node `id` again on the same port, with a fresh transport (and an empty inbox). */
  restart(id: NodeId, options: Partial<WebSocketTransportOptions> = {}): LoopNode {
    const spec = this.#specs.get(id)!;
    let server: WebSocketServer | undefined;
    const port = this.serverPorts.get(id);
    if (port !== undefined) server = WebSocketServer.listen({ hostname: "127.0.0.1", port });
    return this.#startNode({ ...spec, options: { ...spec.options, ...options } }, server);
  }

  /** Apply `f` to every proxy. */
  eachProxy(f: (proxy: FaultProxy) => void): void {
    for (const p of this.proxies.values()) f(p);
  }

  /** Close everything. */
  async close(): Promise<void> {
    for (const n of this.nodes.values()) await n.transport.close();
    for (const n of this.nodes.values()) await n.server?.close();
    for (const p of this.proxies.values()) await p.close();
  }

  #startNode(spec: NodeSpec, server: WebSocketServer | undefined): LoopNode {
    const log: TransportLogEntry[] = [];
    const inbox: Message[] = [];
    const transport = new WebSocketTransport({
      id: spec.id,
      cluster: CLUSTER,
      secret: SECRET,
      peers: this.peersOf(spec.id),
      dial: wsDial,
      log: (e) => log.push(e),
      ...spec.options,
    });
    transport.listen((msgs) => inbox.push(...msgs));
    if (server) server.acceptor = transport;
    const node: LoopNode = { id: spec.id, server, transport, inbox, log };
    this.nodes.set(spec.id, node);
    return node;
  }
}

/** A heartbeat from `from` to `to` whose `ctx` numbers it. */
export function numbered(from: NodeId, to: NodeId, n: number): Message {
  return { type: "hb", term: 1, from, to, commit: 0, ctx: n };
}
