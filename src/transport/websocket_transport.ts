/**
 * `WebSocketTransport`: Raft messages between peers over persistent, authenticated WebSockets.
 *
 * - One connection per pair of peers carries messages both ways. Whichever side knows the other's
 *   URL dials; a peer with no URL (a browser tab, a node behind NAT) is reached over the
 *   connection it dials itself.
 * - When both sides dialed and both connections authenticated, both sides keep the same one: the
 *   one dialed by the smaller node id (string order); between two dialed by the same node, the
 *   later. Only frames from the connection in use reach the core, so a switch may lose messages
 *   but never reorders them.
 * - Lost connections are redialed with exponential backoff and jitter.
 * - Each peer has a bounded send queue; under pressure the oldest messages are dropped and
 *   counted (Raft retransmits what matters). Messages sent in one task share a frame.
 * - Every connection opens with the handshake of handshake.ts (shared cluster secret); every
 *   frame is decoded and validated (codec.ts) before the core sees it, and a bad frame closes
 *   its connection and is counted.
 * - Idle connections exchange an empty frame every `keepaliveMs`; one silent for `idleTimeoutMs`
 *   is closed (a half-open TCP connection never reports its own death).
 *
 * This module uses only what browsers, Deno and Node 20 share; sockets come from a `Dialer`
 * (`nativeDial` by default, `wsDial` from ws_dial.ts in Deno and Node) and, on the accepting side,
 * from a server that calls `accept` (websocket_server.ts for Deno).
 *
 * @module
 */
import type { Message, NodeId } from "../core/types.ts";
import { type EncodeError, FrameCodec, type FrameHeader } from "./codec.ts";
import { Connection, type ConnectionOwner } from "./connection.ts";
import { FrameError, type FrameLimits, isValidId } from "./frame_validation.ts";
import {
  AcceptorHandshake,
  DialerHandshake,
  HandshakeKey,
  type HandshakeOptions,
  type Refusal,
} from "./handshake.ts";
import { type PeerCounters, PeerLink, type PeerMetrics, type QueueLimits } from "./peer_link.ts";
import { CLOSE, type Dialer, nativeDial, type SocketOpener } from "./socket.ts";
import type { MessageHandler, Transport } from "./transport.ts";

/** A peer and, when it accepts connections, where to dial it. */
export interface PeerAddress {
  /** The peer's node id. */
  readonly id: NodeId;
  /** `ws://` or `wss://` URL of its transport endpoint; absent for a peer that only dials out. */
  readonly url?: string;
}

/** One line of the transport's log. */
export interface TransportLogEntry {
  /** `warn` for refusals, bad frames and dropped data; `info` for connection changes. */
  readonly level: "info" | "warn" | "error";
  /** What happened, as a stable word: `connected`, `disconnected`, `refused`, `bad-frame`, ... */
  readonly event: string;
  /** The peer concerned, when known. */
  readonly peer?: NodeId;
  /** Details for a human. */
  readonly detail: string;
}

/** Options of `WebSocketTransport`. Times are in milliseconds. */
export interface WebSocketTransportOptions {
  /** This node's id. */
  readonly id: NodeId;
  /** The cluster's id; peers of another cluster are refused. */
  readonly cluster: string;
  /** The shared cluster secret (at least 16 bytes; text is taken as UTF-8). */
  readonly secret: string | Uint8Array;
  /** The other members (an entry for this node is ignored). */
  readonly peers: readonly PeerAddress[];
  /** How to open client sockets. Default `nativeDial` (the runtime's WebSocket). */
  readonly dial?: Dialer;
  /** Frame limits (default `DEFAULT_FRAME_LIMITS`; 8 MiB frames). */
  readonly limits?: Partial<FrameLimits>;
  /**
   * Send queue bounds per peer. Default 16,384 messages, 32 MiB, 8 MiB socket high water, and
   * 2,000 ms waiting for a connection.
   */
  readonly queue?: Partial<QueueLimits>;
  /** An idle connection sends an empty frame this often. Default 1,000. */
  readonly keepaliveMs?: number;
  /** A connection that received nothing for this long is closed. Default 5,000. */
  readonly idleTimeoutMs?: number;
  /** A connection must authenticate within this. Default 5,000. */
  readonly handshakeTimeoutMs?: number;
  /** First redial delay (before jitter). Default 50. */
  readonly backoffMinMs?: number;
  /** Longest redial delay. Default 2,000. */
  readonly backoffMaxMs?: number;
  /**
   * The node with the larger id waits this long (with jitter) before each dial, so that when both
   * sides can dial, the smaller one's connection usually wins without a duplicate being opened
   * and thrown away (with the messages in flight on it). Default 200.
   */
  readonly dialGraceMs?: number;
  /** Most sockets accepted and not yet authenticated at once; more are refused. Default 64. */
  readonly maxPendingSockets?: number;
  /** Uniform random source in [0, 1) for jitter. Default `Math.random`. */
  readonly random?: () => number;
  /** Where log lines go. Default: warnings and errors to the console, info nowhere. */
  readonly log?: (entry: TransportLogEntry) => void;
  /** Protocol version to speak (for testing version refusal). Default the current one. */
  readonly protocolVersion?: number;
}

/** What `WebSocketTransport.metrics()` reports. */
export interface TransportMetrics {
  /** Per peer. */
  readonly peers: Readonly<Record<NodeId, PeerMetrics>>;
  /** Refused handshakes, including from sockets that named no known peer. */
  readonly authFailures: number;
  /** Refused frames, over all peers. */
  readonly decodeErrors: number;
  /** Sockets accepted from the server. */
  readonly acceptedSockets: number;
  /** Messages sent to ids that are not peers, dropped. */
  readonly unknownPeerDrops: number;
  /** Messages that arrived before a handler was registered, dropped. */
  readonly unhandled: number;
  /** Connections open or opening now, in any state. */
  readonly openConnections: number;
}

const DEFAULT_QUEUE: QueueLimits = {
  maxMessages: 16_384,
  maxBytes: 32 * 1024 * 1024,
  highWaterBytes: 8 * 1024 * 1024,
  maxAgeMs: 2000,
};
const CLOSE_WAIT_MS = 1000;

function defaultLog(self: NodeId): (entry: TransportLogEntry) => void {
  return (e) => {
    if (e.level === "info") return;
    const line = `floe transport ${self}: ${e.event}${e.peer ? ` (${e.peer})` : ""}: ${e.detail}`;
    if (e.level === "error") console.error(line);
    else console.warn(line);
  };
}

function positive(name: string, v: number): number {
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`${name} must be positive, got ${v}`);
  return v;
}

/**
 * A `Transport` over WebSockets. Create it, connect a server's accepted sockets to `accept` (if
 * this node accepts connections), register the handler with `listen`, then `send`.
 *
 * @example
 * ```ts ignore
 * import { WebSocketTransport } from "./websocket_transport.ts";
 * import { wsDial } from "./ws_dial.ts";
 * import { WebSocketServer } from "./websocket_server.ts";
 *
 * const transport = new WebSocketTransport({
 *   id: "a",
 *   cluster: "demo",
 *   secret: "a shared secret of 16+ bytes",
 *   peers: [{ id: "b", url: "ws://10.0.0.2:7000/floe" }, { id: "browser-1" }],
 *   dial: wsDial,
 * });
 * const server = WebSocketServer.listen({ port: 7000 }, transport);
 * ```
 */
export class WebSocketTransport implements Transport {
  readonly #id: NodeId;
  readonly #cluster: string;
  readonly #codec: FrameCodec;
  readonly #dial: Dialer;
  readonly #hs: HandshakeOptions;
  readonly #links = new Map<NodeId, PeerLink>();
  readonly #conns = new Set<Connection>();
  readonly #queueLimits: QueueLimits;
  readonly #keepaliveMs: number;
  readonly #idleTimeoutMs: number;
  readonly #handshakeTimeoutMs: number;
  readonly #backoffMinMs: number;
  readonly #backoffMaxMs: number;
  readonly #dialGraceMs: number;
  readonly #maxPending: number;
  readonly #random: () => number;
  readonly #log: (entry: TransportLogEntry) => void;
  readonly #version: number | undefined;
  #handler: MessageHandler | undefined;
  #closed = false;
  #delivering = false;
  #closing: Promise<void> | undefined;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #lastTick = performance.now();
  #authFailures = 0;
  #decodeErrors = 0;
  #accepted = 0;
  #unknownDrops = 0;
  #unhandled = 0;

  /**
   * Validate `options`, then start dialing every peer that has a URL.
   *
   * @throws {RangeError} for a bad id, cluster, secret, peer or time option.
   */
  constructor(options: WebSocketTransportOptions) {
    this.#codec = new FrameCodec(options.limits);
    if (!isValidId(options.id, this.#codec.limits)) throw new RangeError("bad node id");
    if (!isValidId(options.cluster, this.#codec.limits)) throw new RangeError("bad cluster id");
    this.#id = options.id;
    this.#cluster = options.cluster;
    this.#dial = options.dial ?? nativeDial;
    this.#queueLimits = { ...DEFAULT_QUEUE, ...options.queue };
    this.#keepaliveMs = positive("keepaliveMs", options.keepaliveMs ?? 1000);
    this.#idleTimeoutMs = positive("idleTimeoutMs", options.idleTimeoutMs ?? 5000);
    this.#handshakeTimeoutMs = positive("handshakeTimeoutMs", options.handshakeTimeoutMs ?? 5000);
    this.#backoffMinMs = positive("backoffMinMs", options.backoffMinMs ?? 50);
    this.#backoffMaxMs = positive("backoffMaxMs", options.backoffMaxMs ?? 2000);
    this.#dialGraceMs = Math.max(0, options.dialGraceMs ?? 200);
    this.#maxPending = positive("maxPendingSockets", options.maxPendingSockets ?? 64);
    this.#random = options.random ?? Math.random;
    this.#log = options.log ?? defaultLog(options.id);
    this.#version = options.protocolVersion;
    HandshakeKey.check(options.secret);
    const key = HandshakeKey.create(options.secret);
    key.catch(() => {}); // checked above; a failure would surface in every handshake anyway
    this.#hs = {
      key,
      cluster: options.cluster,
      self: options.id,
      version: options.protocolVersion,
    };
    for (const p of options.peers) {
      if (p.id === this.#id) continue;
      this.#addLink(p.id, p.url);
    }
    this.#ticker = setInterval(() => this.#tick(), Math.max(10, this.#keepaliveMs / 2));
    for (const link of this.#links.values()) this.#scheduleDial(link, 0);
  }

  /** This node's id. */
  get id(): NodeId {
    return this.#id;
  }

  /** Register the handler for arriving batches (one call per accepted frame with messages). */
  listen(handler: MessageHandler): void {
    this.#handler = handler;
  }

  /** Queue `messages` for peer `to`; they leave with whatever else is sent in this task. */
  send(to: NodeId, messages: readonly Message[]): void {
    if (this.#closed || messages.length === 0) return;
    const link = this.#links.get(to);
    if (link === undefined) {
      this.#unknownDrops += messages.length;
      return;
    }
    // While a handler runs, the frame it answers flushes every link when it returns.
    link.enqueue(messages, !this.#delivering);
  }

  /**
   * Add a peer, or change its URL (`undefined`: it only dials in). A changed URL applies to the
   * next dial; a live connection stays.
   */
  setPeer(id: NodeId, url?: string): void {
    if (this.#closed || id === this.#id) return;
    if (!isValidId(id, this.#codec.limits)) throw new RangeError("bad peer id");
    const link = this.#links.get(id);
    if (link) link.url = url;
    else this.#scheduleDial(this.#addLink(id, url), 0);
  }

  /** Forget a peer: close its connections and drop what is queued for it. */
  removePeer(id: NodeId): void {
    const link = this.#links.get(id);
    if (!link) return;
    this.#links.delete(id);
    link.clear();
    for (const c of [...this.#conns]) {
      if (c.peer === id) c.close(CLOSE.normal, "peer removed");
    }
  }

  /**
   * Take a socket a server accepted: it must authenticate as a known peer before anything it
   * sends is read as Raft messages.
   */
  accept(open: SocketOpener): void {
    this.#accepted++;
    const conn = new Connection(
      this.#owner,
      new AcceptorHandshake({
        ...this.#hs,
        isPeer: (id) => this.#links.has(id),
        versions: this.#version === undefined ? undefined : [this.#version],
      }),
      "",
      this.#handshakeTimeoutMs,
    );
    let pending = 0;
    for (const c of this.#conns) if (!c.outbound && c.state === "handshake") pending++;
    this.#conns.add(conn);
    conn.attach(open(conn.events));
    if (this.#closed) {
      conn.close(CLOSE.shutdown, "shutting down");
    } else if (pending >= this.#maxPending) {
      this.#authFailures++;
      this.#log({ level: "warn", event: "refused", detail: "too many unauthenticated sockets" });
      conn.close(CLOSE.refused, "busy");
    }
  }

  /** Counters per peer and overall. */
  metrics(): TransportMetrics {
    const peers: Record<NodeId, PeerMetrics> = {};
    for (const [id, link] of this.#links) peers[id] = link.metrics();
    return {
      peers,
      authFailures: this.#authFailures,
      decodeErrors: this.#decodeErrors,
      acceptedSockets: this.#accepted,
      unknownPeerDrops: this.#unknownDrops,
      unhandled: this.#unhandled,
      openConnections: this.#conns.size,
    };
  }

  /** Whether an authenticated connection to `peer` is up. */
  isConnected(peer: NodeId): boolean {
    return this.#links.get(peer)?.active !== undefined;
  }

  /** Close every connection and stop redialing; resolves once the sockets are closed. */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    if (this.#ticker !== undefined) clearInterval(this.#ticker);
    this.#ticker = undefined;
    for (const link of this.#links.values()) link.clear();
    const conns = [...this.#conns];
    for (const c of conns) c.close(CLOSE.normal, "shutting down");
    this.#closing = Promise.all(conns.map((c) => c.socketClosed(CLOSE_WAIT_MS))).then(() => {});
    return this.#closing;
  }

  // ---- connections ------------------------------------------------------------------------

  #addLink(id: NodeId, url: string | undefined): PeerLink {
    const header: FrameHeader = { cluster: this.#cluster, from: this.#id, to: id };
    const link = new PeerLink(
      id,
      url,
      this.#codec,
      header,
      this.#queueLimits,
      (e: EncodeError) =>
        this.#log({ level: "error", event: "encode", peer: id, detail: e.message }),
    );
    this.#links.set(id, link);
    return link;
  }

  #dialIfNeeded(link: PeerLink): void {
    if (
      this.#closed || link.url === undefined || link.active !== undefined ||
      link.dialing !== undefined || link.reconnectTimer !== undefined
    ) return;
    const conn = new Connection(
      this.#owner,
      new DialerHandshake(this.#hs, link.id),
      link.id,
      this.#handshakeTimeoutMs,
    );
    link.dialing = conn;
    this.#conns.add(conn);
    try {
      conn.attach(
        this.#dial(link.url, conn.events, { maxMessageBytes: this.#codec.limits.maxFrameBytes }),
      );
    } catch (e) {
      this.#log({ level: "warn", event: "dial", peer: link.id, detail: String(e) });
      conn.close(CLOSE.shutdown, "dial failed");
    }
  }

  /** Dial `link` after `backoffMs` plus, on the larger id's side, the dial grace (both jittered). */
  #scheduleDial(link: PeerLink, backoffMs: number): void {
    if (this.#closed || link.url === undefined || link.reconnectTimer !== undefined) return;
    if (!this.#links.has(link.id)) return;
    const grace = this.#id > link.id ? this.#dialGraceMs : 0;
    const delay = (backoffMs + grace) * (0.5 + 0.5 * this.#random());
    if (delay <= 0) {
      this.#dialIfNeeded(link);
      return;
    }
    link.reconnectTimer = setTimeout(() => {
      link.reconnectTimer = undefined;
      this.#dialIfNeeded(link);
    }, delay);
  }

  /** Of two authenticated connections to one peer, the one both sides keep. */
  #preferred(a: Connection, b: Connection): Connection {
    const peer = a.peer;
    const dialerA = a.outbound ? this.#id : peer;
    const dialerB = b.outbound ? this.#id : peer;
    if (dialerA === dialerB) return a.serial > b.serial ? a : b;
    const low = this.#id < peer ? this.#id : peer;
    return dialerA === low ? a : b;
  }

  readonly #owner: ConnectionOwner = {
    authenticated: (conn) => {
      const link = this.#links.get(conn.peer);
      if (this.#closed || link === undefined) {
        conn.close(CLOSE.normal, "not a peer any more");
        return;
      }
      if (link.dialing === conn) link.dialing = undefined;
      const current = link.active;
      if (current !== undefined && this.#preferred(conn, current) === current) {
        conn.close(CLOSE.duplicate, "duplicate connection");
        return;
      }
      link.active = conn;
      link.attempts = 0;
      link.expire(performance.now());
      if (link.reconnectTimer !== undefined) clearTimeout(link.reconnectTimer);
      link.reconnectTimer = undefined;
      const c = link.counters;
      c.connects++;
      if (current === undefined && link.everConnected) c.reconnects++;
      link.everConnected = true;
      if (current !== undefined) current.close(CLOSE.duplicate, "duplicate connection");
      this.#log({
        level: "info",
        event: "connected",
        peer: link.id,
        detail: conn.outbound ? "dialed" : "accepted",
      });
      link.scheduleFlush();
    },
    refused: (conn, refusal: Refusal) => {
      const peer = conn.peer;
      const link = peer === "" ? undefined : this.#links.get(peer);
      // A dial that never reached a socket failed to connect; it did not fail to authenticate.
      if (conn.opened && refusal.reason !== "closed") {
        this.#authFailures++;
        if (link) link.counters.authFailures++;
      }
      this.#log({
        level: conn.opened ? "warn" : "info",
        event: "refused",
        peer: peer === "" ? undefined : peer,
        detail: `${
          conn.outbound ? "dial" : "accepted socket"
        }: ${refusal.reason}: ${refusal.detail}`,
      });
    },
    message: (conn, data) => {
      const link = this.#links.get(conn.peer);
      if (link === undefined || link.active !== conn) return; // a connection being replaced
      const c: PeerCounters = link.counters;
      c.bytesIn += data.length;
      let messages: Message[];
      try {
        if (typeof data === "string") throw new FrameError("bad-envelope", "text message");
        messages = this.#codec.decode(data, link.expect);
      } catch (e) {
        const reason = e instanceof FrameError ? e.reason : "malformed-cbor";
        c.decodeErrors++;
        this.#decodeErrors++;
        this.#log({
          level: "warn",
          event: "bad-frame",
          peer: link.id,
          detail: e instanceof Error ? e.message : String(e),
        });
        conn.close(
          reason === "too-large" ? CLOSE.tooLarge : CLOSE.badFrame,
          `bad frame: ${reason}`,
        );
        return;
      }
      c.framesIn++;
      if (messages.length === 0) return;
      c.messagesIn += messages.length;
      const handler = this.#handler;
      if (handler === undefined) {
        this.#unhandled += messages.length;
        return;
      }
      this.#delivering = true;
      try {
        handler(messages);
      } catch (e) {
        // The receiver's failure is its own (RaftNode stops itself on a broken invariant); the
        // connection and the other peers carry on.
        this.#log({ level: "error", event: "handler", peer: link.id, detail: String(e) });
      } finally {
        this.#delivering = false;
      }
      // What the handler sent (responses, mostly) leaves now, still inside the socket's message
      // event: writing from there is measurably cheaper than from a later microtask (ws on Deno),
      // and the batch is complete anyway.
      for (const l of this.#links.values()) if (l.queued > 0) l.flush();
    },
    closed: (conn, code, reason) => {
      this.#conns.delete(conn);
      const link = this.#links.get(conn.peer);
      if (link === undefined) return;
      if (link.dialing === conn) {
        link.dialing = undefined;
        link.counters.dialFailures++;
        link.attempts++;
      }
      if (link.active === conn) {
        link.active = undefined;
        this.#log({
          level: "info",
          event: "disconnected",
          peer: link.id,
          detail: `code ${code}${reason ? `: ${reason}` : ""}`,
        });
      }
      if (link.active === undefined && link.dialing === undefined) {
        const exp = Math.min(link.attempts, 30);
        this.#scheduleDial(link, Math.min(this.#backoffMaxMs, this.#backoffMinMs * 2 ** exp));
      }
    },
  };

  #tick(): void {
    const now = performance.now();
    // A tick that comes far too late means this process was stalled (a long synchronous task, a
    // starved machine): what peers sent meanwhile is still unread, so silence proves nothing.
    const stalled = now - this.#lastTick > Math.max(2 * this.#keepaliveMs, 100);
    this.#lastTick = now;
    for (const link of this.#links.values()) {
      if (link.queued > 0) link.expire(now);
      const conn = link.active;
      if (conn === undefined) continue;
      if (conn.heardFrom) {
        conn.heardFrom = false;
        conn.lastIn = now;
      }
      if (conn.spokeTo) {
        conn.spokeTo = false;
        conn.lastOut = now;
      }
      if (stalled) conn.lastIn = now;
      if (now - conn.lastIn > this.#idleTimeoutMs) {
        this.#log({
          level: "warn",
          event: "idle",
          peer: link.id,
          detail: `nothing received for ${Math.round(now - conn.lastIn)} ms`,
        });
        conn.close(CLOSE.idle, "idle");
      } else if (now - conn.lastOut >= this.#keepaliveMs) {
        link.keepalive(conn);
      }
    }
  }
}
