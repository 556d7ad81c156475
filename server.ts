/**
 * floe's server-side transport pieces: the `ws` dialer (TCP_NODELAY on, unlike Deno's built-in
 * WebSocket client) for Deno and Node, and the `Deno.serve` accept side. Kept out of `mod.ts`
 * so browser bundles never load `ws` or Deno APIs.
 *
 * @module
 */
export { createWsDialer, wsDial, type WsDialOptions } from "./src/transport/ws_dial.ts";
export {
  createUpgradeHandler,
  DEFAULT_PATH,
  type SocketAcceptor,
  WebSocketServer,
  type WebSocketServerOptions,
} from "./src/transport/websocket_server.ts";
