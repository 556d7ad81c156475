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
export {
  type FloeServer,
  type FloeServerOptions,
  startFloeServer,
} from "./src/service/floe_server.ts";
export {
  type FloeNodeConfig,
  type FloePeer,
  type HostPort,
  loadNodeConfig,
  NodeConfigError,
  type NodeConfigSources,
  resolveNodeConfig,
} from "./src/service/node_config.ts";
