/**
 * The `ws` package's side of the WebSocket transport: dialing peers (Deno and Node) and, for
 * Node, accepting them (`WsPeerServer`, a `node:http` server whose upgrades `ws` completes). The
 * only module that imports `ws`: a browser bundle leaves it out and dials with `nativeDial`
 * (socket.ts); Deno accepts with its own server (websocket_server.ts).
 *
 * Why not Deno's own client: it leaves Nagle's algorithm on, and a frame of a kilobyte or more
 * waited ~44 ms for the peer's delayed ACK (measured on this machine kind); `ws` sets TCP_NODELAY.
 * Node 20 has no WebSocket server of its own, hence `ws`'s there.
 *
 * @module
 */
import * as http from "node:http";
import * as https from "node:https";
import type { Buffer } from "node:buffer";
import type { Duplex } from "node:stream";
import WebSocket, { WebSocketServer } from "ws";
import { DEFAULT_FRAME_LIMITS } from "./frame_validation.ts";
import type { Dialer, DialOptions, PeerSocket, SocketEvents, SocketOpener } from "./socket.ts";

export type { Dialer, DialOptions, PeerSocket, SocketEvents, SocketOpener };

/** TLS settings for dialing `wss://` peers. */
export interface WsDialOptions {
  /** Certificates (PEM) to trust besides the system's: a cluster's own CA or a self-signed peer. */
  readonly ca?: string | readonly string[];
  /** Give up on a connection whose WebSocket upgrade takes longer. Default 10,000 ms. */
  readonly handshakeTimeoutMs?: number;
}

/**
 * A dialer over the `ws` client with `options`. Compression is off (frames are CBOR with opaque
 * commands, and deflate costs more CPU than it saves on loopback and LANs).
 */
export function createWsDialer(options: WsDialOptions = {}): Dialer {
  return (url: string, events: SocketEvents, dial: DialOptions): PeerSocket => {
    const ca = options.ca === undefined
      ? undefined
      : typeof options.ca === "string"
      ? options.ca
      : [...options.ca];
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      maxPayload: dial.maxMessageBytes,
      handshakeTimeout: options.handshakeTimeoutMs ?? 10_000,
      ca,
    });
    return adoptWs(ws, events);
  };
}

const SEND_OPTIONS = { binary: true } as const;

/**
 * `ws` socket `ws` as a `PeerSocket` reporting to `events`, for a dialed socket (which opens
 * later) and an accepted one (open already: its `onOpen` is reported at once) alike.
 */
function adoptWs(ws: WebSocket, events: SocketEvents): PeerSocket {
  let closed = false;
  ws.on("open", () => {
    if (!closed) events.onOpen();
  });
  if (ws.readyState === WebSocket.OPEN) {
    // Accepted: open before anyone listened. After a microtask, so the owner holds the socket.
    queueMicrotask(() => {
      if (!closed) events.onOpen();
    });
  }
  ws.on("message", (data: WebSocket.RawData, isBinary: boolean) => {
    if (closed) return;
    if (!isBinary) {
      events.onMessage(String(data));
      return;
    }
    // A Buffer is a Uint8Array; whoever keeps bytes from it copies them (the codec does), so
    // Buffer's sharing slice() never leaks further.
    events.onMessage(
      Array.isArray(data)
        ? concat(data)
        : data instanceof ArrayBuffer
        ? new Uint8Array(data)
        : data,
    );
  });
  ws.on("error", () => {
    // A close event follows (ws emits "close" after "error"); it reports the outcome.
  });
  ws.on("close", (code: number, reason: Uint8Array) => {
    if (closed) return;
    closed = true;
    events.onClose(code, new TextDecoder().decode(reason));
  });
  return {
    send(data) {
      if (ws.readyState !== WebSocket.OPEN) return;
      // No callback: a failed write surfaces as an "error" then a "close" event, handled above.
      ws.send(data, SEND_OPTIONS);
    },
    close(code, reason) {
      try {
        if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
        else ws.close(code, reason);
      } catch {
        ws.terminate();
      }
    },
    terminate() {
      ws.terminate();
    },
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
  };
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A `ws` dialer with default options (system CAs only). */
export const wsDial: Dialer = createWsDialer();

/**
 * Takes accepted sockets; a `WebSocketTransport` is one. The same shape as websocket_server.ts's
 * `SocketAcceptor`, declared here too so Node's build and types never touch that Deno-only module.
 */
export interface SocketAcceptor {
  /** Adopt one accepted socket. */
  accept(open: SocketOpener): void;
}

/** A `node:http` request listener: what `WsPeerServer` hands every request that is not a peer's. */
export type NodeRequestListener = (
  request: http.IncomingMessage,
  response: http.ServerResponse,
) => void;

/** Where and how a `WsPeerServer` listens. */
export interface WsPeerServerOptions {
  /** Interface to bind. Default "0.0.0.0". */
  readonly hostname?: string;
  /** Port; 0 picks a free one (read it back from `port`). Default 0. */
  readonly port?: number;
  /** Path peers connect to. Default "/floe". */
  readonly path?: string;
  /** Certificate chain (PEM). With `key`, the server speaks `wss://` (and `https://`). */
  readonly cert?: string;
  /** Private key (PEM) of `cert`. */
  readonly key?: string;
  /**
   * Largest incoming message, in bytes; a bigger one closes its socket. Default: the codec's
   * default frame limit, what the transport's dialers use.
   */
  readonly maxMessageBytes?: number;
  /** Every request that is not for `path` (the node's HTTP API, for one). Default: 404. */
  readonly onRequest?: NodeRequestListener;
}

const PEER_PATH = "/floe";

/**
 * The accepting side of the WebSocket transport in Node: a `node:http` (or `https`) server whose
 * WebSocket upgrades on one path `ws` completes and hands to a `SocketAcceptor` (a
 * `WebSocketTransport`). Other requests go to `onRequest`, so a node's HTTP API can share the port.
 *
 * @example
 * ```ts
 * const transport = new WebSocketTransport({ id: "n1", cluster, secret, peers, dial: wsDial });
 * const server = await WsPeerServer.listen({ hostname: "127.0.0.1", port: 7401 }, transport);
 * ```
 */
export class WsPeerServer {
  /** The bound port. */
  readonly port: number;
  /** The bound interface. */
  readonly hostname: string;
  /** `ws://` or `wss://`, host, port and path, for peers on this machine to dial. */
  readonly url: string;
  /** Where accepted sockets go; may be set after listening (upgrades get 503 until then). */
  acceptor: SocketAcceptor | undefined;
  readonly #server: http.Server;
  readonly #wss: WebSocketServer;

  private constructor(
    server: http.Server,
    wss: WebSocketServer,
    tls: boolean,
    path: string,
    acceptor: SocketAcceptor | undefined,
  ) {
    this.#server = server;
    this.#wss = wss;
    this.acceptor = acceptor;
    const address = server.address();
    if (address === null || typeof address === "string") {
      throw new Error("WsPeerServer: the server has no TCP address");
    }
    this.port = address.port;
    this.hostname = address.address;
    const host = this.hostname === "0.0.0.0" || this.hostname === "::"
      ? "127.0.0.1"
      : this.hostname.includes(":")
      ? `[${this.hostname}]`
      : this.hostname;
    this.url = `${tls ? "wss" : "ws"}://${host}:${this.port}${path}`;
  }

  /**
   * Listen; sockets go to `acceptor` (or to the one set later). Resolves once bound.
   *
   * @throws {TypeError} when only one of `cert` and `key` is given.
   * @throws the listen error (`EADDRINUSE`, ...) when the port cannot be bound.
   */
  static async listen(
    options: WsPeerServerOptions = {},
    acceptor?: SocketAcceptor,
  ): Promise<WsPeerServer> {
    if ((options.cert === undefined) !== (options.key === undefined)) {
      throw new TypeError("WsPeerServer: cert and key go together");
    }
    const tls = options.cert !== undefined;
    const path = options.path ?? PEER_PATH;
    const wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: options.maxMessageBytes ?? DEFAULT_FRAME_LIMITS.maxFrameBytes,
    });
    const onRequest: NodeRequestListener = (request, response) => {
      if (pathOf(request) === path) {
        response.writeHead(426, { "content-type": "text/plain" });
        response.end("floe peer endpoint: WebSocket upgrade required\n");
      } else if (options.onRequest !== undefined) {
        options.onRequest(request, response);
      } else {
        response.writeHead(404, { "content-type": "text/plain" });
        response.end("not found\n");
      }
    };
    const server = tls
      ? https.createServer({ cert: options.cert, key: options.key }, onRequest)
      : http.createServer(onRequest);
    // Peers keep one connection each for hours: no request timeout may cut an upgraded socket.
    server.requestTimeout = 0;
    // The server object exists only once bound; upgrades before that find no acceptor (503).
    const bound: { self?: WsPeerServer } = {};
    server.on("upgrade", (request: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if (pathOf(request) !== path) return refuseUpgrade(socket, 404, "Not Found");
      const target = bound.self?.acceptor;
      if (target === undefined) return refuseUpgrade(socket, 503, "Service Unavailable");
      wss.handleUpgrade(request, socket, head, (ws: WebSocket) => {
        // Called synchronously with the open socket: the opener attaches listeners before
        // any message can be emitted.
        target.accept((events) => adoptWs(ws, events));
      });
    });
    await new Promise<void>((resolve, reject) => {
      const failed = (e: Error) => reject(e);
      server.once("error", failed);
      server.listen(options.port ?? 0, options.hostname ?? "0.0.0.0", () => {
        server.off("error", failed);
        resolve();
      });
    });
    bound.self = new WsPeerServer(server, wss, tls, path, acceptor);
    return bound.self;
  }

  /**
   * Stop listening and end every connection still open (close the transport first, to end its
   * sockets with a proper close). Resolves once the server has closed.
   */
  async close(): Promise<void> {
    this.acceptor = undefined;
    for (const ws of this.#wss.clients) ws.terminate();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }
}

function pathOf(request: http.IncomingMessage): string {
  try {
    return new URL(request.url ?? "/", "http://localhost").pathname;
  } catch {
    return "";
  }
}

function refuseUpgrade(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
