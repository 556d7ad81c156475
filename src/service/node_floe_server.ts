/**
 * A floe node as a Node process: FileStorage under the data directory, the replicated key-value
 * state machine, WebSocket peers accepted by `ws` (`WsPeerServer`) and the HTTP API served through
 * `node:http` (node_http_bridge.ts), all on one port (peer upgrades at /floe, everything else is
 * the API), or the API on a second port. The Node twin of floe_server.ts (which runs on
 * `Deno.serve`): same options, same behaviour, so Node and Deno nodes mix in one cluster.
 *
 * @module
 */
import * as http from "node:http";
import { type NodeRequestListener, wsDial, WsPeerServer } from "../transport/ws_dial.ts";
import { toNodeListener } from "./node_http_bridge.ts";
import {
  type FloeServer,
  type FloeServerOptions,
  httpUrl,
  openKvNode,
  PEER_PATH,
} from "./kv_node.ts";
import type { HostPort } from "./node_config.ts";

/** How to run one node under Node: the options of the Deno server. */
export type NodeFloeServerOptions = FloeServerOptions;

/** A running node under Node: the shape of the Deno server's. */
export type NodeFloeServer = FloeServer;

/**
 * Open the data directory, start the Raft node and serve. Resolves once the ports are bound.
 *
 * @throws {NodeConfigError} for inconsistent options (a missing secret, this node not in
 *   `peers`); storage errors (a corrupt log, a directory locked by another process) and listen
 *   errors (`EADDRINUSE`) as they come, after closing what was opened.
 */
export async function startNodeFloeServer(
  options: NodeFloeServerOptions,
): Promise<NodeFloeServer> {
  const { node, kv, transport, api, setOwnUrl, log } = await openKvNode(options, wsDial);
  const listener = toNodeListener(api, {
    onError: (e) => log(`floe node ${options.id}: http: ${e}`),
  });
  let peerServer: WsPeerServer | undefined;
  let clientServer: http.Server | undefined;
  let url: string;
  try {
    peerServer = await WsPeerServer.listen({
      hostname: options.listen.hostname,
      port: options.listen.port,
      path: PEER_PATH,
      onRequest: options.clientListen ? notFound : listener,
    }, transport);
    url = httpUrl({ hostname: options.listen.hostname, port: peerServer.port });
    if (options.clientListen) {
      clientServer = await listenHttp(options.clientListen, listener);
      const port = (clientServer.address() as { port: number }).port;
      url = httpUrl({ ...options.clientListen, port });
    }
  } catch (e) {
    await peerServer?.close();
    await node.stop();
    throw e;
  }
  setOwnUrl(url);
  const servers = { peer: peerServer, client: clientServer };

  let stopping: Promise<void> | undefined;
  return {
    id: options.id,
    url,
    peerUrl: peerServer.url,
    node,
    kv,
    stop: () =>
      stopping ??= (async () => {
        // Stopping the node fails the requests waiting on it; ending the watch streams and
        // closing the servers ends the connections left (idle keep-alives too).
        await node.stop();
        api.close();
        await servers.peer.close();
        if (servers.client) await closeHttp(servers.client);
      })(),
  };
}

const notFound: NodeRequestListener = (_request, response) => {
  response.writeHead(404, { "content-type": "text/plain" });
  response.end("not found: the HTTP API is on the client port\n");
};

async function listenHttp(at: HostPort, listener: NodeRequestListener): Promise<http.Server> {
  const server = http.createServer(listener);
  // Watch streams last as long as their client wants.
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(at.port, at.hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}

async function closeHttp(server: http.Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}
