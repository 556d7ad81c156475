/**
 * `floe kv ...` and `floe status`: the key-value API and node status through `FloeClient`.
 * `get` writes the value's raw bytes to stdout; `list`, `status --json` and the write commands
 * print JSON; `watch` prints one JSON line per change until interrupted.
 *
 * @module
 */
import { FloeClient } from "../client/floe_client.ts";
import {
  FloeCompactedError,
  FloeConditionFailedError,
  FloeHttpError,
} from "../client/floe_errors.ts";
import { type FlagSpec, integerFlag, parseArgs, type ParsedArgs, UsageError } from "./cli_args.ts";
import type { CliIo } from "./cli_io.ts";

/** Where `floe kv` and `floe status` go without `--endpoints` or `FLOE_ENDPOINTS`. */
export const DEFAULT_ENDPOINTS: readonly string[] = [
  "http://127.0.0.1:7401",
  "http://127.0.0.1:7402",
  "http://127.0.0.1:7403",
];

const CONNECTION_HELP = `  --endpoints URL,...   nodes' HTTP URLs (default FLOE_ENDPOINTS, else
                        ${DEFAULT_ENDPOINTS.join(",")})
  --token T             API token (default FLOE_TOKEN)
  --attempts N          tries per request while no leader answers (default 10, about 10 s;
                        1 fails at once)`;

/** Usage of `floe kv`. */
export const KV_USAGE = `usage: floe kv <op> [args] [--endpoints URL,...] [--token T]

  put KEY VALUE [--if-absent]   write VALUE (- reads stdin); prints the revisions as JSON
  get KEY [--stale]             the value's raw bytes to stdout; exit 1 if absent
  del KEY [--if-revision REV]   delete; prints the revisions as JSON
  append KEY VALUE              append VALUE to the key's value
  cas KEY REV VALUE             write only if the key's revision is REV (0: only if absent)
  list [PREFIX] [--limit N] [--stale]
                                keys under PREFIX as JSON (values as UTF-8 text, or base64
                                in "valueBase64" when they are not text)
  watch PREFIX [--from REV]     one JSON line per change under PREFIX until Ctrl-C

${CONNECTION_HELP}
  --stale               answer from the node asked, without a round through the leader

exit codes: 0 ok, 1 failed (not found, failed condition, unreachable: said on stderr), 2 usage`;

/** Usage of `floe status`. */
export const STATUS_USAGE = `usage: floe status [--json] [--endpoints URL,...] [--token T]

Each node's role, term, leader and log indexes (a table, or JSON with --json). Exit 1 when no
node answers.

${CONNECTION_HELP}
  --json                print JSON`;

const FLAGS: FlagSpec = {
  endpoints: "string",
  token: "string",
  attempts: "string",
  stale: "boolean",
  "if-absent": "boolean",
  "if-revision": "string",
  limit: "string",
  from: "string",
  json: "boolean",
};

const ARITY: Readonly<Record<string, readonly [number, number]>> = {
  put: [2, 2],
  get: [1, 1],
  del: [1, 1],
  append: [2, 2],
  cas: [3, 3],
  list: [0, 1],
  watch: [1, 1],
};

// Flags every operation accepts.
const CONNECTION_FLAGS: readonly string[] = ["endpoints", "token", "attempts"];

// Which flags each operation accepts besides the connection flags.
const OP_FLAGS: Readonly<Record<string, readonly string[]>> = {
  put: ["if-absent"],
  get: ["stale"],
  del: ["if-revision"],
  append: [],
  cas: [],
  list: ["stale", "limit"],
  watch: ["from"],
};

function endpointsOf(parsed: ParsedArgs, io: CliIo, usage: string): string[] {
  const text = parsed.flags.get("endpoints") ?? (io.env().FLOE_ENDPOINTS || undefined);
  if (text === undefined) return [...DEFAULT_ENDPOINTS];
  const list = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const e of list) {
    if (!/^https?:\/\/[^/\s]+\/?$/.test(e)) {
      throw new UsageError(`endpoint must be http(s)://host:port, got "${e}"`, usage);
    }
  }
  if (list.length === 0) throw new UsageError("no endpoints given", usage);
  return list.map((e) => e.replace(/\/$/, ""));
}

function clientFor(parsed: ParsedArgs, io: CliIo, usage: string): FloeClient {
  const attempts = parsed.flags.get("attempts");
  return new FloeClient({
    endpoints: endpointsOf(parsed, io, usage),
    token: parsed.flags.get("token") ?? (io.env().FLOE_TOKEN || undefined),
    retry: attempts === undefined
      ? undefined
      : { attempts: integerFlag("attempts", attempts, usage) },
  });
}

async function valueArg(text: string): Promise<Uint8Array> {
  if (text !== "-") return new TextEncoder().encode(text);
  return new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer());
}

/** Printable form of a value: UTF-8 text when it is text, else base64. */
function valueJson(value: Uint8Array): { value: string } | { valueBase64: string } {
  try {
    return { value: new TextDecoder("utf-8", { fatal: true }).decode(value) };
  } catch {
    let s = "";
    for (const b of value) s += String.fromCharCode(b);
    return { valueBase64: btoa(s) };
  }
}

/** Run `floe kv ARGS`. */
export async function runKv(args: readonly string[], io: CliIo): Promise<number> {
  const [op, ...rest] = args;
  if (op === undefined || op === "--help" || op === "-h" || op === "help") {
    (op === undefined ? io.err : io.out)(KV_USAGE);
    return op === undefined ? 2 : 0;
  }
  const arity = ARITY[op];
  if (arity === undefined) throw new UsageError(`unknown operation ${op}`, KV_USAGE);
  const parsed = parseArgs(rest, FLAGS, KV_USAGE);
  if (parsed.help) {
    io.out(KV_USAGE);
    return 0;
  }
  for (const name of parsed.flags.keys()) {
    if (!CONNECTION_FLAGS.includes(name) && !OP_FLAGS[op].includes(name)) {
      throw new UsageError(`kv ${op} does not take --${name}`, KV_USAGE);
    }
  }
  const pos = parsed.positional;
  if (pos.length < arity[0] || pos.length > arity[1]) {
    throw new UsageError(
      `kv ${op} takes ${arity[0] === arity[1] ? arity[0] : `${arity[0]}-${arity[1]}`} ` +
        `argument(s), got ${pos.length}`,
      KV_USAGE,
    );
  }
  const num = (name: string, text: string, min: number) => integerFlag(name, text, KV_USAGE, min);
  const consistency = parsed.flags.has("stale") ? "stale" as const : "linearizable" as const;
  // Check every argument before touching the network.
  const ifRevision = parsed.flags.has("if-revision")
    ? num("if-revision", parsed.flags.get("if-revision")!, 0)
    : undefined;
  const casRevision = op === "cas" ? num("REV", pos[1], 0) : undefined;
  const limit = parsed.flags.has("limit") ? num("limit", parsed.flags.get("limit")!, 1) : undefined;
  const from = parsed.flags.has("from") ? num("from", parsed.flags.get("from")!, 0) : undefined;
  const client = clientFor(parsed, io, KV_USAGE);
  try {
    return await runOp(op, pos, io, client, {
      consistency,
      ifRevision,
      casRevision,
      limit,
      from,
      ifAbsent: parsed.flags.has("if-absent"),
    });
  } catch (e) {
    io.err(`floe kv ${op}: ${describeError(e)}`);
    return 1;
  } finally {
    client.close();
  }
}

interface OpOptions {
  readonly consistency: "stale" | "linearizable";
  readonly ifRevision?: number;
  readonly casRevision?: number;
  readonly limit?: number;
  readonly from?: number;
  readonly ifAbsent: boolean;
}

async function runOp(
  op: string,
  pos: readonly string[],
  io: CliIo,
  client: FloeClient,
  o: OpOptions,
): Promise<number> {
  switch (op) {
    case "get": {
      const got = await client.get(pos[0], { consistency: o.consistency });
      if (got === undefined) {
        io.err(`floe kv get: ${pos[0]}: not found`);
        return 1;
      }
      await io.write(got.value);
      if (io.isTerminal() && got.value.at(-1) !== 0x0a) await io.write(new Uint8Array([0x0a]));
      return 0;
    }
    case "put":
      io.out(JSON.stringify(
        await client.put(pos[0], await valueArg(pos[1]), {
          ifAbsent: o.ifAbsent || undefined,
        }),
      ));
      return 0;
    case "cas": {
      const value = await valueArg(pos[2]);
      io.out(JSON.stringify(
        await client.put(
          pos[0],
          value,
          o.casRevision === 0 ? { ifAbsent: true } : { ifRevision: o.casRevision },
        ),
      ));
      return 0;
    }
    case "del":
      io.out(JSON.stringify(await client.delete(pos[0], { ifRevision: o.ifRevision })));
      return 0;
    case "append":
      io.out(JSON.stringify(await client.append(pos[0], await valueArg(pos[1]))));
      return 0;
    case "list":
      return await list(pos[0] ?? "", io, client, o);
    case "watch":
      return await watch(pos[0], io, client, o);
  }
  throw new Error(`unhandled operation ${op}`);
}

async function list(prefix: string, io: CliIo, client: FloeClient, o: OpOptions): Promise<number> {
  const entries: unknown[] = [];
  let from: string | undefined;
  // Without --limit, follow the pages to the end.
  do {
    const page = await client.list(prefix, {
      from,
      limit: o.limit === undefined ? undefined : o.limit - entries.length,
      consistency: o.consistency,
    });
    for (const e of page.entries) {
      entries.push({
        key: e.key,
        ...valueJson(e.value),
        revision: e.revision,
        createRevision: e.createRevision,
        version: e.version,
      });
    }
    from = page.next;
  } while (from !== undefined && (o.limit === undefined || entries.length < o.limit));
  io.out(JSON.stringify({ entries, ...(from === undefined ? {} : { next: from }) }, null, 2));
  return 0;
}

async function watch(prefix: string, io: CliIo, client: FloeClient, o: OpOptions): Promise<number> {
  const abort = new AbortController();
  const { signal, dispose } = io.untilSignal();
  signal.then(() => abort.abort());
  try {
    for await (const change of client.watch(prefix, { from: o.from, signal: abort.signal })) {
      const { value, ...rest } = change as typeof change & { value?: Uint8Array };
      io.out(JSON.stringify({ ...rest, ...(value === undefined ? {} : valueJson(value)) }));
    }
  } catch (e) {
    if (abort.signal.aborted) return 0;
    throw e;
  } finally {
    dispose();
  }
  return abort.signal.aborted ? 0 : 1;
}

/** Run `floe status ARGS`. */
export async function runStatus(args: readonly string[], io: CliIo): Promise<number> {
  const parsed = parseArgs(args, FLAGS, STATUS_USAGE);
  if (parsed.help) {
    io.out(STATUS_USAGE);
    return 0;
  }
  for (const name of parsed.flags.keys()) {
    if (!CONNECTION_FLAGS.includes(name) && name !== "json") {
      throw new UsageError(`status does not take --${name}`, STATUS_USAGE);
    }
  }
  if (parsed.positional.length > 0) {
    throw new UsageError(`unexpected argument ${parsed.positional[0]}`, STATUS_USAGE);
  }
  const endpoints = endpointsOf(parsed, io, STATUS_USAGE);
  const client = clientFor(parsed, io, STATUS_USAGE);
  try {
    const rows = await Promise.all(endpoints.map(async (endpoint) => {
      try {
        return { endpoint, status: await client.status(endpoint) };
      } catch (e) {
        return { endpoint, error: describeError(e) };
      }
    }));
    if (parsed.flags.has("json")) io.out(JSON.stringify(rows, null, 2));
    else io.out(statusTable(rows));
    return rows.some((r) => "status" in r) ? 0 : 1;
  } finally {
    client.close();
  }
}

type StatusRow =
  | { endpoint: string; status: Awaited<ReturnType<FloeClient["status"]>> }
  | { endpoint: string; error: string };

function statusTable(rows: readonly StatusRow[]): string {
  const head = [
    "ENDPOINT",
    "ID",
    "ROLE",
    "TERM",
    "LEADER",
    "COMMIT",
    "APPLIED",
    "LAST",
    "SNAPSHOT",
  ];
  const body = rows.map((r) => {
    if (!("status" in r)) return [r.endpoint, "-", `unreachable: ${r.error}`];
    const s = r.status as unknown as Record<string, unknown>;
    return [
      r.endpoint,
      ...["id", "role", "term", "leader", "commit", "applied", "lastIndex", "snapshotIndex"]
        .map((k) => s[k] === undefined || s[k] === null || s[k] === "" ? "-" : String(s[k])),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? "").length)));
  return [head, ...body]
    .map((r) => r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i])).join("  "))
    .join("\n");
}

/** A client error as one line. */
export function describeError(e: unknown): string {
  if (e instanceof FloeConditionFailedError) {
    return `failed condition (HTTP 412): the key's revision is ${e.revision}` +
      (e.revision === 0 ? " (absent)" : "");
  }
  if (e instanceof FloeCompactedError) {
    return `compacted: the oldest revision a watch can start from is ${e.oldestRevision}`;
  }
  if (e instanceof FloeHttpError) return `${e.code} (HTTP ${e.status}): ${e.message}`;
  if (!(e instanceof Error)) return String(e);
  const cause = e.cause instanceof Error ? ` (${e.cause.message})` : "";
  return `${e.message}${cause}`;
}
