/**
 * A floe node's configuration, gathered from command-line flags, environment variables
 * (`FLOE_ID`, `FLOE_LISTEN`, ...) and an optional JSON file (`--config FILE` or `FLOE_CONFIG`),
 * in that order of precedence over the defaults, then checked as a whole: a mistake is a
 * `NodeConfigError` that names the setting and where it came from.
 *
 * | setting        | flag              | environment          | JSON key       |
 * | -------------- | ----------------- | -------------------- | -------------- |
 * | id             | `--id`            | `FLOE_ID`            | `id`           |
 * | listen         | `--listen`        | `FLOE_LISTEN`        | `listen`       |
 * | data dir       | `--data`          | `FLOE_DATA`          | `data`         |
 * | peers          | `--peers`         | `FLOE_PEERS`         | `peers`        |
 * | secret         | `--secret`        | `FLOE_SECRET`        | `secret`       |
 * | token          | `--token`         | `FLOE_TOKEN`         | `token`        |
 * | cluster id     | `--cluster`       | `FLOE_CLUSTER`       | `cluster`      |
 * | client listen  | `--client-listen` | `FLOE_CLIENT_LISTEN` | `clientListen` |
 * | peer API URLs  | `--peer-clients`  | `FLOE_PEER_CLIENTS`  | `peerClients`  |
 *
 * `peers` is `id=host:port,...` (each member's shared peer/API address; this node's own entry is
 * its default `listen`); in JSON it may also be an object `{ "n1": "host:port" }` or an array of
 * `{ "id", "address" }`. A member that cannot accept connections (a browser tab) is listed as
 * `id=dial-only`: a voting member like the others, reached over the connection it dials to this
 * node; it serves no HTTP API, so requests cannot be forwarded to it while it leads.
 * `peerClients` (`id=http://host:port,...`) is needed only when members moved their client API
 * to another port with `clientListen`: it is where requests are forwarded to a leader.
 *
 * @module
 */

/** A bad or missing setting; the message says which and where it came from. */
export class NodeConfigError extends Error {
  /** `message` says what is wrong. */
  constructor(message: string) {
    super(message);
    this.name = "NodeConfigError";
  }
}

/** An interface and port to bind or dial. */
export interface HostPort {
  /** Host name or IP address (IPv6 without brackets). */
  readonly hostname: string;
  /** TCP port; 0 binds any free port. */
  readonly port: number;
}

/** One member of the cluster. */
export interface FloePeer {
  /** Node id. */
  readonly id: string;
  /** Where it serves the peer WebSocket (path /floe) and, unless moved, its HTTP API. */
  readonly address: HostPort;
  /** Base URL of its HTTP API, when it is not `http://address`. */
  readonly clientUrl?: string;
}

/** A complete, checked node configuration. */
export interface FloeNodeConfig {
  /** This node's id. */
  readonly id: string;
  /** Where the node serves peers (and its HTTP API unless `clientListen` is set). */
  readonly listen: HostPort;
  /** Where the HTTP API is served instead, when set. */
  readonly clientListen?: HostPort;
  /** FileStorage directory. */
  readonly dataDir: string;
  /** Every member with an address, this node included. */
  readonly peers: readonly FloePeer[];
  /**
   * Members without an address (`id=dial-only`): they dial this node. Present only when there
   * are some.
   */
  readonly dialOnlyPeers?: readonly string[];
  /** Shared cluster secret (at least 16 bytes); required when there is more than one member. */
  readonly secret?: string;
  /** Bearer token the HTTP API requires, when set. */
  readonly token?: string;
  /** Cluster id; peers of another cluster are refused. */
  readonly cluster: string;
}

/** The settings, by their JSON key. */
const KEYS = [
  "id",
  "listen",
  "data",
  "peers",
  "secret",
  "token",
  "cluster",
  "clientListen",
  "peerClients",
] as const;
type Key = typeof KEYS[number];

/** The flag of each setting (without dashes). */
export const NODE_CONFIG_FLAGS: Readonly<Record<Key, string>> = {
  id: "id",
  listen: "listen",
  data: "data",
  peers: "peers",
  secret: "secret",
  token: "token",
  cluster: "cluster",
  clientListen: "client-listen",
  peerClients: "peer-clients",
};

/** The environment variable of each setting. */
export const NODE_CONFIG_ENV: Readonly<Record<Key, string>> = {
  id: "FLOE_ID",
  listen: "FLOE_LISTEN",
  data: "FLOE_DATA",
  peers: "FLOE_PEERS",
  secret: "FLOE_SECRET",
  token: "FLOE_TOKEN",
  cluster: "FLOE_CLUSTER",
  clientListen: "FLOE_CLIENT_LISTEN",
  peerClients: "FLOE_PEER_CLIENTS",
};

/** Default cluster id. */
export const DEFAULT_CLUSTER = "floe";
/** Default listen address of a node configured without peers. */
export const DEFAULT_LISTEN: HostPort = { hostname: "127.0.0.1", port: 7401 };
const ID_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Where the settings come from; each source is optional. */
export interface NodeConfigSources {
  /** Flag values by flag name (`client-listen`, ...), highest precedence. */
  readonly flags?: ReadonlyMap<string, string>;
  /** Environment variables (`FLOE_ID`, ...). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The parsed JSON config file and its name (for messages). */
  readonly file?: { readonly name: string; readonly value: unknown };
}

interface Setting {
  readonly value: string;
  readonly from: string;
}

/** Parse `host:port`, `:port`, `port` or `[v6]:port`; the host defaults to 127.0.0.1. */
export function parseHostPort(text: string, what = "address"): HostPort {
  const t = text.trim();
  const bad = () => new NodeConfigError(`${what} must be host:port (or :port), got "${text}"`);
  let hostname: string | undefined;
  let portText: string;
  const v6 = /^\[([0-9A-Fa-f:.]+)\]:(\d+)$/.exec(t);
  if (v6) [, hostname, portText] = v6;
  else if (/^\d+$/.test(t)) portText = t;
  else {
    const colon = t.lastIndexOf(":");
    if (colon < 0) throw bad();
    hostname = t.slice(0, colon) || undefined;
    portText = t.slice(colon + 1);
    if (hostname !== undefined && !/^[A-Za-z0-9.-]+$/.test(hostname)) throw bad();
  }
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port <= 65535)) throw bad();
  return { hostname: hostname ?? "127.0.0.1", port };
}

/** `host:port` of `a` (brackets around IPv6). */
export function formatHostPort(a: HostPort): string {
  return `${a.hostname.includes(":") ? `[${a.hostname}]` : a.hostname}:${a.port}`;
}

/** What a member's address is in `peers` when it has none: it only dials (a browser tab). */
export const DIAL_ONLY = "dial-only";

/** The members of a `peers` setting: those with an address, and the dial-only ones. */
export interface FloeMembers {
  /** Members with an address, in the order listed. */
  readonly peers: FloePeer[];
  /** Ids of the members listed as `id=dial-only`, in the order listed. */
  readonly dialOnly: string[];
}

/** Parse `id=host:port,id=dial-only,...`: every member, with or without an address. */
export function parseMembers(text: string, what = "peers"): FloeMembers {
  const peers: FloePeer[] = [];
  const dialOnly: string[] = [];
  for (const part of text.split(",").map((p) => p.trim()).filter((p) => p !== "")) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new NodeConfigError(`${what}: expected id=host:port, got "${part}"`);
    const id = part.slice(0, eq);
    checkId(id, what);
    if (peers.some((p) => p.id === id) || dialOnly.includes(id)) {
      throw new NodeConfigError(`${what}: ${id} is listed twice`);
    }
    const address = part.slice(eq + 1).trim();
    if (address === DIAL_ONLY) dialOnly.push(id);
    else peers.push({ id, address: parseHostPort(address, `${what}: ${id}'s address`) });
  }
  if (peers.length === 0 && dialOnly.length === 0) throw new NodeConfigError(`${what} is empty`);
  return { peers, dialOnly };
}

/**
 * Parse `id=host:port,id=host:port` (also used by `floe snapshot restore`), where every member
 * has an address.
 *
 * @throws {NodeConfigError} also for an `id=dial-only` entry.
 */
export function parsePeers(text: string, what = "peers"): FloePeer[] {
  const { peers, dialOnly } = parseMembers(text, what);
  if (dialOnly.length > 0) {
    throw new NodeConfigError(`${what}: ${dialOnly[0]} needs an address here, not ${DIAL_ONLY}`);
  }
  return peers;
}

function checkId(id: string, what: string): void {
  if (!ID_PATTERN.test(id)) {
    throw new NodeConfigError(
      `${what}: node id "${id}" must be 1-64 letters, digits or _ . : -`,
    );
  }
}

// The JSON file's `peers` may be an object or an array too; every setting becomes text here.
function fileSettings(name: string, value: unknown): Map<Key, Setting> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new NodeConfigError(`${name}: expected a JSON object`);
  }
  const out = new Map<Key, Setting>();
  for (const [key, v] of Object.entries(value)) {
    if (!(KEYS as readonly string[]).includes(key)) {
      throw new NodeConfigError(`${name}: unknown setting "${key}" (known: ${KEYS.join(", ")})`);
    }
    const from = `${name} "${key}"`;
    let text: string;
    if (typeof v === "string") text = v;
    else if (typeof v === "number" && key === "listen") text = `:${v}`;
    else if ((key === "peers" || key === "peerClients") && typeof v === "object" && v !== null) {
      const pairs = Array.isArray(v)
        ? v.map((p) => {
          const id = (p as { id?: unknown })?.id;
          const addr = (p as { address?: unknown; url?: unknown })?.address ??
            (p as { url?: unknown })?.url;
          if (typeof id !== "string" || typeof addr !== "string") {
            throw new NodeConfigError(`${from}: each entry needs string "id" and "address"`);
          }
          return `${id}=${addr}`;
        })
        : Object.entries(v).map(([id, addr]) => {
          if (typeof addr !== "string") throw new NodeConfigError(`${from}: ${id} is not a string`);
          return `${id}=${addr}`;
        });
      text = pairs.join(",");
    } else throw new NodeConfigError(`${from} must be a string`);
    out.set(key as Key, { value: text, from });
  }
  return out;
}

/**
 * Merge `sources` (flags over environment over file over defaults) and check the result.
 *
 * @throws {NodeConfigError} naming the setting that is missing or wrong, and its source.
 */
export function resolveNodeConfig(sources: NodeConfigSources): FloeNodeConfig {
  const file = sources.file ? fileSettings(sources.file.name, sources.file.value) : new Map();
  const get = (key: Key): Setting | undefined => {
    const flag = sources.flags?.get(NODE_CONFIG_FLAGS[key]);
    if (flag !== undefined) return { value: flag, from: `--${NODE_CONFIG_FLAGS[key]}` };
    const env = sources.env?.[NODE_CONFIG_ENV[key]];
    if (env !== undefined && env !== "") return { value: env, from: NODE_CONFIG_ENV[key] };
    return file.get(key);
  };
  const within = <T>(s: Setting, f: (text: string, what: string) => T): T => f(s.value, s.from);

  const idSetting = get("id");
  if (idSetting === undefined) {
    throw new NodeConfigError('the node id is required: --id ID (or FLOE_ID, or "id" in --config)');
  }
  const id = idSetting.value;
  checkId(id, idSetting.from);

  const peersSetting = get("peers");
  const members = peersSetting ? within(peersSetting, parseMembers) : undefined;
  let peers = members?.peers;
  const dialOnly = members?.dialOnly ?? [];
  if (dialOnly.includes(id)) {
    throw new NodeConfigError(
      `${peersSetting!.from}: this node (${id}) listens, so it cannot be ${DIAL_ONLY}`,
    );
  }
  if (peers && !peers.some((p) => p.id === id)) {
    throw new NodeConfigError(
      `${peersSetting!.from} must list this node (${id}) too, e.g. ${id}=127.0.0.1:7401,...`,
    );
  }
  const listenSetting = get("listen");
  const listen = listenSetting
    ? within(listenSetting, parseHostPort)
    : peers?.find((p) => p.id === id)?.address ?? DEFAULT_LISTEN;
  peers ??= [{ id, address: listen }];

  const clientsSetting = get("peerClients");
  if (clientsSetting) {
    const urls = new Map<string, string>();
    for (const part of clientsSetting.value.split(",").map((p) => p.trim()).filter(Boolean)) {
      const eq = part.indexOf("=");
      const pid = part.slice(0, eq);
      const url = part.slice(eq + 1);
      if (eq <= 0 || !peers.some((p) => p.id === pid) || !/^https?:\/\/[^/\s]+\/?$/.test(url)) {
        throw new NodeConfigError(
          `${clientsSetting.from}: expected id=http://host:port for a listed peer, got "${part}"`,
        );
      }
      urls.set(pid, url.replace(/\/$/, ""));
    }
    peers = peers.map((p) => urls.has(p.id) ? { ...p, clientUrl: urls.get(p.id) } : p);
  }

  const secretSetting = get("secret");
  const secret = secretSetting?.value;
  if (secret !== undefined && new TextEncoder().encode(secret).length < 16) {
    throw new NodeConfigError(`${secretSetting!.from}: the cluster secret needs at least 16 bytes`);
  }
  const memberCount = peers.length + dialOnly.length;
  if (secret === undefined && memberCount > 1) {
    throw new NodeConfigError(
      `a cluster of ${memberCount} nodes needs a shared secret (at least 16 bytes): ` +
        '--secret S (or FLOE_SECRET, or "secret" in --config)',
    );
  }
  const clusterSetting = get("cluster");
  const cluster = clusterSetting?.value ?? DEFAULT_CLUSTER;
  if (clusterSetting) checkId(cluster, clusterSetting.from);
  const tokenSetting = get("token");
  if (tokenSetting && !/^[\x21-\x7e]+$/.test(tokenSetting.value)) {
    throw new NodeConfigError(`${tokenSetting.from}: the token must be printable ASCII, no spaces`);
  }
  const clientListenSetting = get("clientListen");
  const dataSetting = get("data");
  if (dataSetting && dataSetting.value.trim() === "") {
    throw new NodeConfigError(`${dataSetting.from}: the data directory is empty`);
  }
  return {
    id,
    listen,
    clientListen: clientListenSetting ? within(clientListenSetting, parseHostPort) : undefined,
    dataDir: dataSetting?.value ?? `./data/${id}`,
    peers,
    ...(dialOnly.length > 0 ? { dialOnlyPeers: dialOnly } : {}),
    secret,
    token: tokenSetting?.value,
    cluster,
  };
}

/**
 * `resolveNodeConfig` with the config file read from disk: the file named by the `config` flag,
 * else by `FLOE_CONFIG`, if either is set.
 *
 * @throws {NodeConfigError} also when the file cannot be read or is not JSON.
 */
export async function loadNodeConfig(
  flags: ReadonlyMap<string, string>,
  env: Readonly<Record<string, string | undefined>>,
): Promise<FloeNodeConfig> {
  const name = flags.get("config") ?? (env.FLOE_CONFIG || undefined);
  let file: NodeConfigSources["file"];
  if (name !== undefined) {
    let text: string;
    try {
      text = await Deno.readTextFile(name);
    } catch (e) {
      throw new NodeConfigError(`cannot read the config file ${name}: ${(e as Error).message}`);
    }
    try {
      file = { name, value: JSON.parse(text) };
    } catch (e) {
      throw new NodeConfigError(`${name} is not valid JSON: ${(e as Error).message}`);
    }
  }
  return resolveNodeConfig({ flags, env, file });
}
