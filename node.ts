/**
 * floe for Node (20 and later): everything a Node program needs in one entry point, built to
 * `dist/node/floe.js` (ESM, with types) by `deno task build:node`. It is `mod.ts` (the Raft node,
 * the core, the KV state machine, the WebSocket transport, ...) plus the filesystem storage
 * (`FileStorage`), the `ws` dialer and `WsPeerServer` (the accepting side on `node:http`), and
 * `startNodeFloeServer`, a whole KV node with its HTTP API. Nothing in it needs Deno.
 *
 * ```ts
 * import { startNodeFloeServer } from "floe";
 * const server = await startNodeFloeServer({
 *   id: "n1",
 *   listen: { hostname: "127.0.0.1", port: 7401 },
 *   dataDir: "./data/n1",
 * });
 * console.log(server.url); // the HTTP API: PUT/GET /kv/{key}, /status, ...
 * ```
 *
 * @module
 */
export * from "./mod.ts";
export * from "./fs.ts";
export {
  createWsDialer,
  type NodeRequestListener,
  type SocketAcceptor,
  wsDial,
  type WsDialOptions,
  WsPeerServer,
  type WsPeerServerOptions,
} from "./src/transport/ws_dial.ts";
export {
  type FetchHandler,
  type NodeBridgeOptions,
  toNodeListener,
} from "./src/service/node_http_bridge.ts";
export {
  type NodeFloeServer,
  type NodeFloeServerOptions,
  startNodeFloeServer,
} from "./src/service/node_floe_server.ts";
export {
  type FloeNodeConfig,
  type FloePeer,
  type HostPort,
  NodeConfigError,
  type NodeConfigSources,
  parseHostPort,
  parsePeers,
  resolveNodeConfig,
} from "./src/service/node_config.ts";
export { NODE_FLOE_USAGE, type NodeFloeIo, runNodeFloe } from "./src/cli/node_floe_command.ts";
