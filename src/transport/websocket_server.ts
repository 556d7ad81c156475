/**
 * The accepting side of the WebSocket transport in Deno: `Deno.serve` upgrades requests on one
 * path and hands the sockets to a `WebSocketTransport`. The upgrade handler is a plain
 * `(Request) => Response | undefined`, so the node's HTTP API can serve its own routes on the same
 * port and fall through to it. Deno-only: browsers and Node never import this module.
 *
 * Accepted sockets are Deno's own: its server side is as fast as `ws` (only its client side needs
 * replacing, see ws_dial.ts).
 *
 * @module
 */
import { adoptWebSocket, type PeerSocket, type SocketEvents, type SocketOpener } from "./socket.ts";

export type { PeerSocket, SocketEvents, SocketOpener };

/** Takes accepted sockets; a `WebSocketTransport` is one. */
export interface SocketAcceptor {
  /** Adopt one accepted socket. */
  accept(open: SocketOpener): void;
}

/** Where and how to listen. */
export interface WebSocketServerOptions {
  /** Interface to bind. Default "0.0.0.0". */
  readonly hostname?: string;
  /** Port; 0 picks a free one (read it back from `port`). Default 0. */
  readonly port?: number;
  /** Path peers connect to. Default "/floe". */
  readonly path?: string;
  /** Certificate chain (PEM). With `key`, the server speaks `wss://`. */
  readonly cert?: string;
  /** Private key (PEM) of `cert`. */
  readonly key?: string;
}

/** Default path of the transport's endpoint. */
export const DEFAULT_PATH = "/floe";

/**
 * A handler that upgrades WebSocket requests for `path` and gives the sockets to the acceptor
 * `acceptor()` returns at that moment; `undefined` for any other request, so a caller can chain it
 * before its own routes. While no acceptor is set, upgrades get 503.
 */
export function createUpgradeHandler(
  acceptor: () => SocketAcceptor | undefined,
  path: string = DEFAULT_PATH,
): (request: Request) => Response | undefined {
  return (request) => {
    if (new URL(request.url).pathname !== path) return undefined;
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("floe peer endpoint: WebSocket upgrade required\n", { status: 426 });
    }
    const target = acceptor();
    if (target === undefined) return new Response("not ready\n", { status: 503 });
    const { socket, response } = Deno.upgradeWebSocket(request);
    target.accept((events) => adoptWebSocket(socket, events));
    return response;
  };
}

/** A `Deno.serve` server for peer connections. */
export class WebSocketServer {
  /** The bound port. */
  readonly port: number;
  /** The bound interface. */
  readonly hostname: string;
  /** `ws://` or `wss://`, host, port and path, for peers on this machine to dial. */
  readonly url: string;
  /** Where accepted sockets go; may be set after listening (upgrades get 503 until then). */
  acceptor: SocketAcceptor | undefined;
  /** The upgrade handler this server runs; usable in another server's routing too. */
  readonly handle: (request: Request) => Response | undefined;
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  private constructor(options: WebSocketServerOptions, acceptor: SocketAcceptor | undefined) {
    this.acceptor = acceptor;
    this.handle = createUpgradeHandler(() => this.acceptor, options.path ?? DEFAULT_PATH);
    const handler = (request: Request): Response =>
      this.handle(request) ?? new Response("not found\n", { status: 404 });
    const base = {
      hostname: options.hostname ?? "0.0.0.0",
      port: options.port ?? 0,
      onListen: () => {},
      handler,
    };
    const tls = options.cert !== undefined && options.key !== undefined;
    if ((options.cert === undefined) !== (options.key === undefined)) {
      throw new TypeError("WebSocketServer: cert and key go together");
    }
    this.#server = tls
      ? Deno.serve({ ...base, cert: options.cert!, key: options.key! })
      : Deno.serve(base);
    this.port = this.#server.addr.port;
    this.hostname = this.#server.addr.hostname;
    const host = this.hostname === "0.0.0.0" ? "127.0.0.1" : this.hostname;
    this.url = `${tls ? "wss" : "ws"}://${host}:${this.port}${options.path ?? DEFAULT_PATH}`;
  }

  /** Listen now; sockets go to `acceptor` (or to the one set later). */
  static listen(options: WebSocketServerOptions = {}, acceptor?: SocketAcceptor): WebSocketServer {
    return new WebSocketServer(options, acceptor);
  }

  /** Stop listening and wait for the server to finish. Close the transport too, to end sockets. */
  async close(): Promise<void> {
    this.acceptor = undefined;
    await this.#server.shutdown();
  }
}
