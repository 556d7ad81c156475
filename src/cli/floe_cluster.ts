/**
 * `floe cluster`: a local cluster of N `floe node` processes on consecutive loopback ports,
 * for trying floe out and for multi-process tests. Waits until every node printed its ready
 * line, forwards their output prefixed with their ids, and on SIGINT/SIGTERM stops them all
 * (SIGTERM, then SIGKILL after a grace period). A node that dies on its own is reported and the
 * others keep running. Data lives under DATA/nK, so running it again resumes the cluster.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type FlagSpec, integerFlag, parseArgs, UsageError } from "./cli_args.ts";
import type { CliIo } from "./cli_io.ts";

/** Usage of `floe cluster`. */
export const CLUSTER_USAGE = `usage: floe cluster [--nodes N] [--port P] [--data DIR] [--secret S]
                    [--token T] [--cluster NAME] [--ready-timeout SECONDS]

Starts N floe node processes (n1..nN) on 127.0.0.1 ports P..P+N-1, data in DIR/n1..DIR/nN,
prints their HTTP endpoints once all are ready, and forwards their output prefixed with the
id. Ctrl-C (SIGINT) or SIGTERM stops them all cleanly. Running it again resumes from DIR.

  --nodes N              cluster size, 1-9 (default 3)
  --port P               first port (default 7401)
  --data DIR             data directory (default ./data)
  --secret S             cluster secret, 16+ bytes (default FLOE_SECRET, else a random one
                         for this run)
  --token T              API token the nodes require (default FLOE_TOKEN, else none)
  --cluster NAME         cluster id (default floe)
  --ready-timeout SECS   give up if the nodes are not all ready by then (default 60)`;

const FLAGS: FlagSpec = {
  nodes: "string",
  port: "string",
  data: "string",
  secret: "string",
  token: "string",
  cluster: "string",
  "ready-timeout": "string",
};

/** How long stopped nodes get to exit before they are killed. */
const STOP_GRACE_MS = 10_000;

interface Child {
  readonly id: string;
  readonly url: string;
  readonly process: Deno.ChildProcess;
  readonly output: Promise<void>;
  exited: boolean;
  status?: Deno.CommandStatus;
}

/** Run `floe cluster ARGS`; resolves with the exit code once every node has stopped. */
export async function runCluster(args: readonly string[], io: CliIo): Promise<number> {
  const parsed = parseArgs(args, FLAGS, CLUSTER_USAGE);
  if (parsed.help) {
    io.out(CLUSTER_USAGE);
    return 0;
  }
  if (parsed.positional.length > 0) {
    throw new UsageError(`unexpected argument ${parsed.positional[0]}`, CLUSTER_USAGE);
  }
  const f = parsed.flags;
  const env = io.env();
  const nodes = integerFlag("nodes", f.get("nodes") ?? "3", CLUSTER_USAGE, 1, 9);
  const port = integerFlag("port", f.get("port") ?? "7401", CLUSTER_USAGE, 1, 65536 - nodes);
  const readyTimeoutS = integerFlag(
    "ready-timeout",
    f.get("ready-timeout") ?? "60",
    CLUSTER_USAGE,
    1,
    3600,
  );
  const data = f.get("data") ?? "./data";
  const secret = f.get("secret") ?? (env.FLOE_SECRET || undefined) ?? randomSecret();
  if (new TextEncoder().encode(secret).length < 16) {
    throw new UsageError("the cluster secret needs at least 16 bytes", CLUSTER_USAGE);
  }
  const token = f.get("token") ?? (env.FLOE_TOKEN || undefined);
  const cluster = f.get("cluster") ?? "floe";

  const ids = Array.from({ length: nodes }, (_, i) => `n${i + 1}`);
  const address = (i: number) => `127.0.0.1:${port + i}`;
  const peers = ids.map((id, i) => `${id}=${address(i)}`).join(",");
  const floe = fileURLToPath(new URL("./floe.ts", import.meta.url));
  const config = fileURLToPath(new URL("../../deno.json", import.meta.url));

  let stopping = false;
  const { signal, dispose } = io.untilSignal();
  const children: Child[] = [];
  // A terminal's Ctrl-C reaches the nodes too: their exits after a signal are expected.
  signal.then(() => stopping = true);
  const ready = new Map<string, string>();
  let onReady: () => void = () => {};
  const changed = () => onReady();

  for (const [i, id] of ids.entries()) {
    const command = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `--config=${config}`,
        floe,
        "node",
        "--id",
        id,
        "--listen",
        address(i),
        "--data",
        join(data, id),
        "--peers",
        peers,
        "--cluster",
        cluster,
        "--stop-with-stdin",
      ],
      // Secrets go through the environment, not the argument list other users can read.
      env: {
        FLOE_SECRET: secret,
        FLOE_TOKEN: token ?? "",
        FLOE_CONFIG: "",
        FLOE_CLIENT_LISTEN: "",
        FLOE_PEER_CLIENTS: "",
      },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    });
    const process = command.spawn();
    io.out(`floe cluster: ${id} started (pid ${process.pid}, data in ${join(data, id)})`);
    const child: Child = {
      id,
      url: `http://${address(i)}`,
      process,
      exited: false,
      output: Promise.all([
        forwardLines(process.stdout, (line) => {
          const m = /^floe node (\S+) ready (\S+)$/.exec(line);
          if (m && m[1] === id) {
            ready.set(id, m[2]);
            changed();
          }
          io.out(`[${id}] ${line}`);
        }),
        forwardLines(process.stderr, (line) => io.err(`[${id}] ${line}`)),
      ]).then(() => {}),
    };
    children.push(child);
    process.status.then(async (status) => {
      child.exited = true;
      child.status = status;
      // The signal that stopped a node may reach this process a moment later (a terminal's
      // Ctrl-C, or npm passing it on): only a node still gone after that is news.
      if (!stopping && status.success) await new Promise((r) => setTimeout(r, 500));
      if (!stopping) {
        io.err(
          `floe cluster: ${id} exited ${status.success ? "on its own" : "unexpectedly"} ` +
            `(${describe(status)}); ${
              children.filter((c) => !c.exited).length
            } node(s) keep running`,
        );
      }
      changed();
    });
  }

  const allReady = new Promise<"ready" | "died">((resolve) => {
    onReady = () => {
      if (ids.every((id) => ready.has(id))) resolve("ready");
      else if (children.some((c) => c.exited && !ready.has(c.id))) resolve("died");
    };
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), readyTimeoutS * 1000);
  });
  const started = await Promise.race([allReady, timeout, signal]);
  clearTimeout(timer);
  let code = 0;
  if (started === "ready") {
    printReady(io, children, ready, data, cluster, token);
    const allDead = new Promise<"dead">((resolve) => {
      onReady = () => {
        if (children.every((c) => c.exited)) resolve("dead");
      };
      onReady();
    });
    if ((await Promise.race([signal, allDead])) === "dead") {
      io.err("floe cluster: every node has exited");
      code = 1;
    }
  } else if (started === "died" || started === "timeout") {
    io.err(
      started === "died"
        ? "floe cluster: a node exited before it was ready; stopping the others"
        : `floe cluster: not every node was ready after ${readyTimeoutS} s; stopping them`,
    );
    code = 1;
  }
  stopping = true;
  dispose();
  const killed = await stopChildren(children, io);
  if (code === 0) {
    if (killed.length > 0) {
      io.err(`floe cluster: ${killed.join(", ")} had to be killed`);
      code = 1;
    } else io.err("floe cluster: stopped cleanly");
  }
  return code;
}

function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function describe(status: Deno.CommandStatus): string {
  return status.signal ? `signal ${status.signal}` : `exit code ${status.code}`;
}

async function forwardLines(
  stream: ReadableStream<Uint8Array>,
  line: (text: string) => void,
): Promise<void> {
  let rest = "";
  try {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const p of parts) line(p);
    }
  } catch { /* the process went away */ }
  if (rest !== "") line(rest);
}

// SIGTERM every live node (and close its stdin), wait, SIGKILL the ones still running; returns
// the ids that had to be killed.
async function stopChildren(children: readonly Child[], io: CliIo): Promise<string[]> {
  for (const c of children) {
    if (c.exited) continue;
    try {
      c.process.kill("SIGTERM");
    } catch { /* exited meanwhile */ }
  }
  for (const c of children) await c.process.stdin.close().catch(() => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  const grace = new Promise<void>((r) => timer = setTimeout(r, STOP_GRACE_MS));
  await Promise.race([Promise.all(children.map((c) => c.process.status)), grace]);
  clearTimeout(timer);
  const killed: string[] = [];
  for (const c of children) {
    if (c.exited) continue;
    killed.push(c.id);
    try {
      c.process.kill("SIGKILL");
    } catch { /* exited meanwhile */ }
  }
  await Promise.all(children.map((c) => c.process.status));
  await Promise.all(children.map((c) => c.output));
  for (const c of children) {
    if (c.status && !c.status.success && !killed.includes(c.id)) {
      io.err(`floe cluster: ${c.id} ended with ${describe(c.status)}`);
    }
  }
  return killed;
}

function printReady(
  io: CliIo,
  children: readonly Child[],
  ready: ReadonlyMap<string, string>,
  data: string,
  cluster: string,
  token: string | undefined,
): void {
  const urls = children.map((c) => ready.get(c.id) ?? c.url);
  const endpoints = urls.join(",");
  const defaults = endpoints ===
    "http://127.0.0.1:7401,http://127.0.0.1:7402,http://127.0.0.1:7403";
  const auth = token === undefined ? "" : ` -H "Authorization: Bearer $FLOE_TOKEN"`;
  const ep = defaults ? "" : ` --endpoints ${endpoints}`;
  io.out(
    [
      `floe cluster: ${children.length} node(s) ready (cluster "${cluster}", data in ${data})`,
      ...children.map((c, i) => `  ${c.id}  ${urls[i]}`),
      "try:",
      `  curl -X PUT --data-binary world${auth} ${urls[0]}/kv/hello`,
      `  curl${auth} ${urls[urls.length - 1]}/kv/hello`,
      `  curl${auth} ${urls[0]}/status`,
      `  deno task floe kv put hello world${ep}`,
      `  deno task floe kv get hello${ep}`,
      `  deno task floe status${ep}`,
      "Ctrl-C stops the cluster; run it again to resume from its data.",
    ].join("\n"),
  );
}
