/**
 * A floe node as a Deno server: the node of kv_node.ts with its peers and its HTTP API on one
 * `Deno.serve` port (peer upgrades at /floe are routed first; everything else is the API), or the
 * API on a second port. This is what `floe node` runs; `startFloeServer` is its library form.
 * Deno only (node_floe_server.ts is the Node twin).
 *
 * @module
 */
import { createUpgradeHandler } from "../transport/websocket_server.ts";
import { wsDial } from "../transport/ws_dial.ts";
import type { HostPort } from "./node_config.ts";
import {
  type FloeServer,
  type FloeServerOptions,
  httpUrl,
  openKvNode,
  PEER_PATH,
  reachableAt,
} from "./kv_node.ts";
import { formatHostPort } from "./node_config.ts";

export type { FloeServer, FloeServerOptions };

/**
 * Open the data directory, start the Raft node and serve. Resolves once the ports are bound.
 *
 * @throws {NodeConfigError} for inconsistent options (a missing secret, this node not in
 *   `peers`); storage errors (a corrupt log, a directory locked by another process) as they come.
 */
export async function startFloeServer(options: FloeServerOptions): Promise<FloeServer> {
  const { node, kv, transport, api, setOwnUrl } = await openKvNode(options, wsDial);
  const upgrade = createUpgradeHandler(() => transport, PEER_PATH);
  const servers: Deno.HttpServer<Deno.NetAddr>[] = [];
  const serve = (at: HostPort, handler: (r: Request) => Response | Promise<Response>) => {
    const server = Deno.serve({
      hostname: at.hostname,
      port: at.port,
      onListen: () => {},
      handler,
    });
    servers.push(server);
    return server;
  };
  let main: Deno.HttpServer<Deno.NetAddr>;
  let client: Deno.HttpServer<Deno.NetAddr> | undefined;
  try {
    if (options.clientListen) {
      main = serve(options.listen, (r) => upgrade(r) ?? notFound());
      client = serve(options.clientListen, api);
    } else {
      main = serve(options.listen, (r) => upgrade(r) ?? api(r));
    }
  } catch (e) {
    for (const s of servers) await s.shutdown();
    await node.stop();
    throw e;
  }
  const mainAddr = { hostname: options.listen.hostname, port: main.addr.port };
  const url = httpUrl(
    client ? { hostname: options.clientListen!.hostname, port: client.addr.port } : mainAddr,
  );
  setOwnUrl(url);

  let stopping: Promise<void> | undefined;
  return {
    id: options.id,
    url,
    peerUrl: `ws://${formatHostPort(reachableAt(mainAddr))}${PEER_PATH}`,
    node,
    kv,
    stop: () =>
      stopping ??= (async () => {
        // Stopping the node fails the requests waiting on it, and ending the watch streams lets
        // the HTTP servers' graceful shutdown finish: then nothing is left in flight.
        await node.stop();
        api.close();
        await Promise.all(servers.map((s) => s.shutdown()));
      })(),
  };
}

function notFound(): Response {
  return new Response("not found: the HTTP API is on the client port\n", { status: 404 });
}
