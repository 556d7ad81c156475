/**
 * A closed-loop HTTP/1.1 load generator: `concurrency` keep-alive connections, each sending its
 * next request as soon as the previous answer is read, for a fixed time after a warm-up. Reports
 * completed requests per second and latency percentiles. Raw sockets (http1_connection.ts), not
 * `fetch`, so the generator costs as little as it can.
 *
 * @module
 */
import { Http1Connection, type Http1Response } from "./http1_connection.ts";

/** Where requests go. */
export interface LoadTarget {
  /** Host to connect to. */
  readonly hostname: string;
  /** Port to connect to. */
  readonly port: number;
}

/** One request to send. */
export interface LoadRequest {
  /** HTTP method. */
  readonly method: string;
  /** Path and query. */
  readonly path: string;
  /** Extra headers (no Host or Content-Length). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Body, if any. */
  readonly body?: Uint8Array;
}

/** What to run. */
export interface LoadOptions {
  /** The server, or one per connection (connection index in 0..concurrency-1). */
  readonly target: LoadTarget | ((connection: number) => LoadTarget);
  /** Connections, each with one request in flight at a time. */
  readonly concurrency: number;
  /** How long to measure, in ms. */
  readonly durationMs: number;
  /** How long to run before measuring, in ms. Default 500. */
  readonly warmupMs?: number;
  /** The `n`-th request of connection `connection`. */
  readonly request: (connection: number, n: number) => LoadRequest;
  /** Whether a response counts as a success. Default: a 2xx status. */
  readonly ok?: (response: Http1Response) => boolean;
  /** Called when measuring starts (after the warm-up) and when it ends, e.g. to read CPU time. */
  readonly onMeasure?: (phase: "start" | "end") => void;
}

/** The outcome of one run. */
export interface LoadResult {
  /** Connections used. */
  readonly concurrency: number;
  /** Successful requests completed while measuring. */
  readonly ops: number;
  /** Failed requests (bad status or broken connection) while measuring. */
  readonly errors: number;
  /** The measuring time, in seconds. */
  readonly seconds: number;
  /** `ops / seconds`. */
  readonly opsPerSecond: number;
  /** Median latency of successful requests, ms. */
  readonly p50Ms: number;
  /** 99th percentile latency, ms. */
  readonly p99Ms: number;
  /** Highest latency, ms. */
  readonly maxMs: number;
  /** The first failure seen, for a message. */
  readonly firstError?: string;
}

/** The `p` quantile (0..1) of `sorted` (ascending), nearest rank; NaN when empty. */
export function quantile(sorted: Float64Array | readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil(p * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

/** Run the load and report. Opens every connection first, closes them all at the end. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const { concurrency, durationMs } = options;
  const warmupMs = options.warmupMs ?? 500;
  const ok = options.ok ?? ((r: Http1Response) => r.status >= 200 && r.status < 300);
  const targetOf = typeof options.target === "function"
    ? options.target
    : () => options.target as LoadTarget;
  const open = (i: number) => {
    const t = targetOf(i);
    return Http1Connection.open(t.hostname, t.port);
  };
  const conns = await Promise.all(Array.from({ length: concurrency }, (_, i) => open(i)));
  let latencies = new Float64Array(1 << 16);
  let count = 0;
  let errors = 0;
  let firstError: string | undefined;
  const start = performance.now();
  const measureFrom = start + warmupMs;
  const end = measureFrom + durationMs;

  const fail = (why: string, t0: number) => {
    if (t0 < measureFrom) return;
    errors++;
    firstError ??= why;
  };
  const worker = async (i: number) => {
    let conn = conns[i];
    for (let n = 0; performance.now() < end; n++) {
      const req = options.request(i, n);
      const t0 = performance.now();
      try {
        if (conn.closed) conn = conns[i] = await open(i);
        const res = await conn.request(req.method, req.path, req.headers, req.body);
        const t1 = performance.now();
        if (!ok(res)) {
          fail(
            `${req.method} ${req.path}: ${res.status} ${new TextDecoder().decode(res.body)}`,
            t0,
          );
          continue;
        }
        if (t0 < measureFrom || t1 > end) continue;
        if (count === latencies.length) {
          const bigger = new Float64Array(latencies.length * 2);
          bigger.set(latencies);
          latencies = bigger;
        }
        latencies[count++] = t1 - t0;
      } catch (e) {
        fail(`${req.method} ${req.path}: ${e}`, t0);
        // A broken connection: back off a little before reconnecting.
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  };
  // CPU readings bracket the measuring window; the end one also runs if its timer is late.
  let phase: "warmup" | "start" | "end" = "warmup";
  const mark = (p: "start" | "end") => {
    if (phase === "end" || phase === p) return;
    if (p === "end" && phase === "warmup") options.onMeasure?.("start");
    phase = p;
    options.onMeasure?.(p);
  };
  const timers = [
    setTimeout(() => mark("start"), measureFrom - performance.now()),
    setTimeout(() => mark("end"), end - performance.now()),
  ];
  try {
    await Promise.all(conns.map((_, i) => worker(i)));
  } finally {
    for (const c of conns) c.close();
    for (const t of timers) clearTimeout(t);
    mark("end");
  }
  const seconds = durationMs / 1000;
  const sorted = latencies.subarray(0, count).sort();
  return {
    concurrency,
    ops: count,
    errors,
    seconds,
    opsPerSecond: count / seconds,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    maxMs: count > 0 ? sorted[count - 1] : NaN,
    firstError,
  };
}
