/**
 * floe's key-value service against etcd, through the same load generator: a 3-node floe cluster
 * of `floe node` processes (FileStorage, fsync on) and, when `etcd` is on PATH, a 3-member etcd
 * cluster on loopback (WAL fsync on), on the same machine.
 *
 * Both clusters run at once (the idle one costs little) and take turns point by point, so drift
 * in the machine's background load hits both alike.
 *
 * Load: raw HTTP/1.1 keep-alive connections (http_load.ts), closed loop, all sent to the leader,
 * 16-byte keys from a space of `--keys` keys (written once before measuring), 128-byte values.
 * At each concurrency (1, 16, 64, 256 connections) a put run, then a linearizable get run, each
 * `--seconds` long after a short warm-up: ops/s, p50 and p99 latency, and the CPU time the
 * system's processes used per operation (/proc), which a busy shared machine disturbs less.
 * - floe: `PUT /kv/{key}` with the raw value; `GET /kv/{key}` (linearizable is the default).
 * - etcd: the v3 JSON gateway, `POST /v3/kv/put` and `POST /v3/kv/range` with base64 fields
 *   (a range is linearizable unless `serializable` is set).
 *
 * Targets (printed, checked with `--check`): floe's throughput at least etcd's at 64 and 256
 * connections, and its p99 at most etcd's there, for puts and for gets.
 *
 * Run: `deno task bench:kv [--seconds 5] [--concurrency 1,16,64,256] [--systems floe,etcd]
 * [--keys 1000] [--rounds 1] [--dir DIR] [--check]`. With `--rounds N` every point is measured N
 * times and the table shows each figure's median, which tames a noisy machine.
 *
 * @module
 */
import { ProcessCluster } from "../src/testing/process_cluster.ts";
import { EtcdCluster, etcdVersion } from "./etcd_cluster.ts";
import { Http1Connection } from "./http1_connection.ts";
import { type LoadRequest, type LoadResult, runLoad } from "./http_load.ts";
import { clockTicks, cpuSeconds } from "./process_cpu.ts";

type Op = "put" | "get";
const OPS: readonly Op[] = ["put", "get"];
const TARGET_CONCURRENCY = [64, 256];
const VALUE_BYTES = 128;
const KEY_BYTES = 16;

function arg(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

const SECONDS = Number(arg("--seconds") ?? "5");
const WARMUP_MS = Number(arg("--warmup") ?? "0.7") * 1000;
const CONCURRENCY = (arg("--concurrency") ?? "1,16,64,256").split(",").map(Number);
const SYSTEMS = (arg("--systems") ?? "floe,etcd").split(",");
const KEYS = Number(arg("--keys") ?? "1000");
const DIR = arg("--dir");
const CHECK = Deno.args.includes("--check");
const ROUNDS = Number(arg("--rounds") ?? "1");

for (
  const [name, ok] of [
    ["--seconds", SECONDS > 0],
    ["--concurrency", CONCURRENCY.every((c) => Number.isInteger(c) && c > 0)],
    ["--keys", Number.isInteger(KEYS) && KEYS > 0],
    ["--rounds", Number.isInteger(ROUNDS) && ROUNDS > 0],
    ["--systems", SYSTEMS.every((s) => s === "floe" || s === "etcd")],
  ] as const
) {
  if (!ok) {
    console.error(`kv_bench: bad ${name}`);
    Deno.exit(2);
  }
}

const encoder = new TextEncoder();
const keys = Array.from(
  { length: KEYS },
  (_, i) => `key-${String(i).padStart(KEY_BYTES - 4, "0")}`,
);
const value = new Uint8Array(VALUE_BYTES).map((_, i) => 97 + (i % 26));

function base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** Builds a system's requests. */
interface Dialect {
  put(key: number): LoadRequest;
  get(key: number): LoadRequest;
}

const floeDialect: Dialect = {
  put: (k) => ({ method: "PUT", path: `/kv/${keys[k]}`, body: value }),
  get: (k) => ({ method: "GET", path: `/kv/${keys[k]}` }),
};

function etcdDialect(): Dialect {
  const json = { "content-type": "application/json" };
  const puts = keys.map((k) =>
    encoder.encode(JSON.stringify({ key: base64(encoder.encode(k)), value: base64(value) }))
  );
  const gets = keys.map((k) => encoder.encode(JSON.stringify({ key: base64(encoder.encode(k)) })));
  return {
    put: (k) => ({ method: "POST", path: "/v3/kv/put", headers: json, body: puts[k] }),
    get: (k) => ({ method: "POST", path: "/v3/kv/range", headers: json, body: gets[k] }),
  };
}

/** A system under test, started. */
interface Running {
  readonly name: string;
  readonly port: number;
  readonly dialect: Dialect;
  /** The server processes, for their CPU time. */
  readonly pids: readonly number[];
  stop(): Promise<void>;
}

/** One measured point: the load result and the servers' CPU time per operation. */
interface Point extends LoadResult {
  /** CPU microseconds the system's processes used per completed operation. */
  readonly cpuUsPerOp: number;
}

async function startFloe(): Promise<Running> {
  const cluster = await ProcessCluster.start({ size: 3, parentDir: DIR, cluster: "bench" });
  try {
    const leader = await cluster.waitForLeader({ timeoutMs: 60_000 });
    progress(`floe: 3 nodes up, leader ${leader} (${cluster.url(leader)}), data in ${cluster.dir}`);
    return {
      name: "floe",
      port: cluster.port(leader),
      dialect: floeDialect,
      pids: cluster.ids.map((id) => cluster.process(id)!.pid),
      stop: () => cluster.close(true),
    };
  } catch (e) {
    await cluster.close();
    throw e;
  }
}

async function startEtcd(): Promise<Running> {
  const cluster = await EtcdCluster.start(3, DIR);
  try {
    const port = await cluster.leaderPort();
    progress(`etcd: 3 members up, leader at http://127.0.0.1:${port}`);
    return {
      name: "etcd",
      port,
      dialect: etcdDialect(),
      pids: cluster.members.map((m) => m.process.pid),
      stop: () => cluster.stop(),
    };
  } catch (e) {
    await cluster.stop();
    throw e;
  }
}

const t0 = performance.now();
function progress(line: string): void {
  console.log(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}`);
}

async function measure(sys: Running, op: Op, concurrency: number): Promise<Point> {
  const ticks = await clockTicks();
  let cpuStart = 0;
  let cpuEnd = 0;
  // Each connection walks the key space from its own offset with a stride, so concurrent
  // requests mostly touch different keys.
  const result = await runLoad({
    target: { hostname: "127.0.0.1", port: sys.port },
    concurrency,
    durationMs: SECONDS * 1000,
    warmupMs: WARMUP_MS,
    request: (c, n) => sys.dialect[op]((c * 7919 + n * 104729) % KEYS),
    onMeasure: (phase) => {
      if (phase === "start") cpuStart = cpuSeconds(sys.pids, ticks);
      else cpuEnd = cpuSeconds(sys.pids, ticks);
    },
  });
  const cpuUsPerOp = ((cpuEnd - cpuStart) * 1e6) / result.ops;
  progress(
    `${sys.name} ${op} x${concurrency}: ${fmt(result.opsPerSecond, 0)} ops/s, ` +
      `p50 ${fmt(result.p50Ms, 2)} ms, p99 ${fmt(result.p99Ms, 2)} ms, max ${
        fmt(result.maxMs, 1)
      } ms, cpu ${fmt(cpuUsPerOp, 0)} us/op, errors ${result.errors}${
        result.firstError ? ` (first: ${result.firstError})` : ""
      }`,
  );
  return { ...result, cpuUsPerOp };
}

/** Write every key once, so gets find values (16 connections, two minutes at most). */
async function preload(sys: Running): Promise<void> {
  let next = 0;
  const deadline = performance.now() + 120_000;
  await Promise.all(Array.from({ length: 16 }, async () => {
    const conn = await Http1Connection.open("127.0.0.1", sys.port);
    try {
      while (next < KEYS) {
        if (performance.now() > deadline) throw new Error(`${sys.name}: preload too slow`);
        const req = sys.dialect.put(next++);
        const res = await conn.request(req.method, req.path, req.headers, req.body);
        if (res.status !== 200) {
          throw new Error(
            `${sys.name}: preload ${req.path}: ${res.status} ${new TextDecoder().decode(res.body)}`,
          );
        }
      }
    } finally {
      conn.close();
    }
  }));
}

let stopping: Promise<void> | undefined;
let interrupted = false;

/** Stop every system at once; later calls wait for the same stop. */
function stopAll(systems: readonly Running[]): Promise<void> {
  return stopping ??= Promise.all(systems.map(async (sys) => {
    await sys.stop();
    progress(`${sys.name}: stopped`);
  })).then(() => {});
}

/** Each figure's median over the rounds (figures taken separately, so a row may mix rounds). */
function medianPoint(points: readonly Point[]): Point {
  const median = (f: (p: Point) => number) => {
    const xs = points.map(f).sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)];
  };
  return {
    ...points[0],
    ops: median((p) => p.ops),
    errors: median((p) => p.errors),
    opsPerSecond: median((p) => p.opsPerSecond),
    p50Ms: median((p) => p.p50Ms),
    p99Ms: median((p) => p.p99Ms),
    maxMs: median((p) => p.maxMs),
    cpuUsPerOp: median((p) => p.cpuUsPerOp),
  };
}

function fmt(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "-";
}

function pad(s: string, n: number): string {
  return s.padStart(n);
}

async function main(): Promise<number> {
  progress(
    `kv bench: ${CONCURRENCY.join(", ")} connections; ${SECONDS} s per point, ${ROUNDS} ` +
      `round(s); ${KEYS} keys of ` +
      `${KEY_BYTES} bytes, values of ${VALUE_BYTES} bytes; systems ${SYSTEMS.join(", ")}`,
  );
  const systems: Running[] = [];
  const results = new Map<string, Map<string, Point>>();
  // Ctrl-C or a SIGTERM still stops every server (etcd would outlive this process otherwise).
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      progress(`${signal}: stopping`);
      interrupted = true;
      stopAll(systems).finally(() => Deno.exit(130));
    });
  }
  try {
    if (SYSTEMS.includes("floe")) systems.push(await startFloe());
    if (SYSTEMS.includes("etcd")) {
      const version = await etcdVersion();
      if (version === undefined) {
        progress("etcd: not on PATH, skipped (apt-get install etcd-server to compare)");
      } else {
        progress(`etcd: ${version}`);
        systems.push(await startEtcd());
      }
    }
    for (const sys of systems) {
      const start = performance.now();
      await preload(sys);
      progress(
        `${sys.name}: wrote ${KEYS} keys in ${((performance.now() - start) / 1000).toFixed(1)} s`,
      );
      results.set(sys.name, new Map());
    }
    // Point by point, the systems take turns (the first alternating), so a change in the
    // machine's background load hits both alike rather than one system's whole sweep.
    const rounds = new Map<string, Point[]>();
    let turn = 0;
    for (let round = 1; round <= ROUNDS; round++) {
      if (ROUNDS > 1) progress(`round ${round} of ${ROUNDS}`);
      for (const c of CONCURRENCY) {
        for (const op of OPS) {
          const order = turn++ % 2 === 0 ? systems : [...systems].reverse();
          for (const sys of order) {
            const k = `${sys.name}/${op}/${c}`;
            if (!rounds.has(k)) rounds.set(k, []);
            rounds.get(k)!.push(await measure(sys, op, c));
          }
        }
      }
    }
    for (const sys of systems) {
      for (const c of CONCURRENCY) {
        for (const op of OPS) {
          results.get(sys.name)!.set(
            `${op}/${c}`,
            medianPoint(rounds.get(`${sys.name}/${op}/${c}`)!),
          );
        }
      }
    }
  } finally {
    await stopAll(systems);
  }

  const floe = results.get("floe");
  const etcd = results.get("etcd");
  const header = [
    "op",
    "conns",
    ...[...results.keys()].flatMap((s) => [
      `${s} ops/s`,
      `${s} p50`,
      `${s} p99`,
      `${s} cpu/op`,
    ]),
  ];
  if (floe && etcd) header.push("ops/s floe/etcd", "p99 floe/etcd");
  const rows: string[][] = [];
  for (const op of OPS) {
    for (const c of CONCURRENCY) {
      const row = [op, String(c)];
      for (const r of results.values()) {
        const x = r.get(`${op}/${c}`)!;
        row.push(fmt(x.opsPerSecond, 0), fmt(x.p50Ms, 2), fmt(x.p99Ms, 2), fmt(x.cpuUsPerOp, 0));
      }
      if (floe && etcd) {
        const f = floe.get(`${op}/${c}`)!;
        const e = etcd.get(`${op}/${c}`)!;
        row.push(fmt(f.opsPerSecond / e.opsPerSecond, 2), fmt(f.p99Ms / e.p99Ms, 2));
      }
      rows.push(row);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  console.log("");
  console.log("latencies in ms; cpu/op: CPU microseconds the system's 3 processes used per op");
  console.log(header.map((h, i) => pad(h, widths[i])).join("  "));
  for (const r of rows) console.log(r.map((x, i) => pad(x, widths[i])).join("  "));

  let missed = 0;
  if (floe && etcd) {
    console.log("");
    for (const op of OPS) {
      for (const c of TARGET_CONCURRENCY.filter((c) => CONCURRENCY.includes(c))) {
        const f = floe.get(`${op}/${c}`)!;
        const e = etcd.get(`${op}/${c}`)!;
        const thr = f.opsPerSecond >= e.opsPerSecond;
        const p99 = f.p99Ms <= e.p99Ms;
        missed += (thr ? 0 : 1) + (p99 ? 0 : 1);
        console.log(
          `target ${op} x${c}: floe ops/s >= etcd's: ${thr ? "met" : "MISSED"} ` +
            `(${fmt(f.opsPerSecond / e.opsPerSecond, 2)}x); floe p99 <= etcd's: ` +
            `${p99 ? "met" : "MISSED"} (${fmt(f.p99Ms, 2)} vs ${fmt(e.p99Ms, 2)} ms)`,
        );
      }
    }
  }
  return CHECK && missed > 0 ? 1 : 0;
}

Deno.exit(
  await main().catch(async (e) => {
    // Interrupted: the requests in flight failed as the servers went; that is not an error.
    if (!interrupted) throw e;
    await stopping;
    return 130;
  }),
);
