/**
 * `floe snapshot save FILE` (a consistent backup through the leader) and `floe snapshot restore
 * FILE --data DIR --id ID --peers ...` (a new node's data directory from a backup). The file
 * format is snapshot_file.ts's.
 *
 * @module
 */
import { FloeClient } from "../client/floe_client.ts";
import { NodeConfigError, parseMembers } from "../service/node_config.ts";
import {
  decodeSnapshotFile,
  encodeSnapshotFile,
  restoreSnapshot,
  SnapshotFileError,
  writeFileAtomically,
} from "../service/snapshot_file.ts";
import { type FlagSpec, parseArgs, UsageError } from "./cli_args.ts";
import type { CliIo } from "./cli_io.ts";
import { DEFAULT_ENDPOINTS, describeError } from "./floe_kv.ts";

/** Usage of `floe snapshot`. */
export const SNAPSHOT_USAGE = `usage: floe snapshot save FILE [--endpoints URL,...] [--token T]
       floe snapshot restore FILE --data DIR --id ID --peers ID=HOST:PORT|dial-only,...

save     takes a consistent snapshot of the key-value state through the leader and writes it
         to FILE atomically (header: index, term, size, CRC-32C)
restore  makes DIR (missing or empty) the data directory of node ID of a NEW cluster whose
         members are --peers, holding the snapshot; restore every member from the same FILE,
         then start each with floe node and the same --peers

  --endpoints URL,...   nodes' HTTP URLs (default FLOE_ENDPOINTS, else
                        ${DEFAULT_ENDPOINTS.join(",")})
  --token T             API token (default FLOE_TOKEN)`;

const FLAGS: FlagSpec = {
  endpoints: "string",
  token: "string",
  data: "string",
  id: "string",
  peers: "string",
};

/** Run `floe snapshot ARGS`. */
export async function runSnapshot(args: readonly string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h") {
    (sub === undefined ? io.err : io.out)(SNAPSHOT_USAGE);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== "save" && sub !== "restore") {
    throw new UsageError(`unknown command snapshot ${sub}`, SNAPSHOT_USAGE);
  }
  const parsed = parseArgs(rest, FLAGS, SNAPSHOT_USAGE);
  if (parsed.help) {
    io.out(SNAPSHOT_USAGE);
    return 0;
  }
  const allowed = sub === "save" ? ["endpoints", "token"] : ["data", "id", "peers"];
  for (const name of parsed.flags.keys()) {
    if (!allowed.includes(name)) {
      throw new UsageError(`snapshot ${sub} does not take --${name}`, SNAPSHOT_USAGE);
    }
  }
  if (parsed.positional.length !== 1) {
    throw new UsageError(`snapshot ${sub} takes one FILE`, SNAPSHOT_USAGE);
  }
  const file = parsed.positional[0];
  return sub === "save"
    ? await save(file, parsed.flags, io)
    : await restore(file, parsed.flags, io);
}

async function save(file: string, flags: ReadonlyMap<string, string>, io: CliIo): Promise<number> {
  const text = flags.get("endpoints") ?? (io.env().FLOE_ENDPOINTS || undefined);
  const endpoints = text === undefined
    ? [...DEFAULT_ENDPOINTS]
    : text.split(",").map((s) => s.trim().replace(/\/$/, "")).filter((s) => s !== "");
  for (const e of endpoints) {
    if (!/^https?:\/\/[^/\s]+$/.test(e)) {
      throw new UsageError(`endpoint must be http(s)://host:port, got "${e}"`, SNAPSHOT_USAGE);
    }
  }
  const client = new FloeClient({
    endpoints,
    token: flags.get("token") ?? (io.env().FLOE_TOKEN || undefined),
  });
  try {
    const snap = await client.snapshot();
    await writeFileAtomically(file, encodeSnapshotFile(snap.data, snap.index, snap.term));
    io.out(JSON.stringify({ file, index: snap.index, term: snap.term, bytes: snap.data.length }));
    return 0;
  } catch (e) {
    io.err(`floe snapshot save: ${describeError(e)}`);
    return 1;
  } finally {
    client.close();
  }
}

async function restore(
  file: string,
  flags: ReadonlyMap<string, string>,
  io: CliIo,
): Promise<number> {
  const data = flags.get("data");
  const id = flags.get("id");
  const peersText = flags.get("peers");
  if (data === undefined || id === undefined || peersText === undefined) {
    const missing = ["data", "id", "peers"].filter((n) => !flags.has(n)).map((n) => `--${n}`);
    throw new UsageError(`snapshot restore needs ${missing.join(", ")}`, SNAPSHOT_USAGE);
  }
  let voters: string[];
  try {
    // Dial-only members (a browser tab, say) vote like any other.
    const members = parseMembers(peersText, "--peers");
    voters = [...members.peers.map((p) => p.id), ...members.dialOnly];
  } catch (e) {
    if (e instanceof NodeConfigError) throw new UsageError(e.message, SNAPSHOT_USAGE);
    throw e;
  }
  if (!voters.includes(id)) {
    throw new UsageError(`--peers must list this node (${id})`, SNAPSHOT_USAGE);
  }
  try {
    const bytes = await Deno.readFile(file);
    const snapshot = decodeSnapshotFile(bytes, file);
    await restoreSnapshot({ snapshot, dataDir: data, voters });
    io.out(
      `restored ${file} (index ${snapshot.header.index}, term ${snapshot.header.term}) into ` +
        `${data} for ${id}; start it with: floe node --id ${id} --data ${data} --peers ${peersText} --secret ...`,
    );
    return 0;
  } catch (e) {
    if (e instanceof SnapshotFileError || e instanceof Deno.errors.NotFound) {
      io.err(`floe snapshot restore: ${(e as Error).message}`);
      return 1;
    }
    io.err(`floe snapshot restore: ${describeError(e)}`);
    return 1;
  }
}
