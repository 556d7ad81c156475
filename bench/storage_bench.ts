/**
 * FileStorage against the disk's own limit, in one run, on one disk:
 *
 * 1. raw: append 100 bytes and fdatasync, one at a time — the limit any durable save meets
 *    (through `node:fs`, as FileStorage does, and through `Deno.FsFile` for comparison);
 * 2. FileStorage, one save at a time (one 100-byte entry each): latency;
 * 3. FileStorage with 64 and with 256 concurrent proposers, each saving one entry and saving
 *    again as soon as its save resolves: entries per second (group commit).
 *
 * Targets: single-save latency at most 1.5× one raw fdatasync; group commit at least 20× the raw
 * fsync rate in entries/s. Disk latency drifts (and other processes share the disk), so every
 * round measures all of them back to back and the ratios are medians of per-round ratios.
 *
 * Run: `deno run -A bench/storage_bench.ts [--dir DIR] [--check]`. The files go to a temp
 * directory under DIR (default: the OS temp dir, /tmp here); the mount it lives on is printed,
 * with a warning if it is tmpfs, where fsync costs nothing and the figures mean nothing.
 * `--check` exits with status 1 when a target is missed. (`deno bench` does not run this file.)
 *
 * @module
 */
import * as fs from "node:fs";
import { FileStorage } from "../src/storage/file_storage.ts";

const ROUNDS = 7;
const OPS_PER_ROUND = 150;
const CONCURRENT_SECONDS = 0.7;
const ENTRY_BYTES = 100;

function arg(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

function median(xs: number[]): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function percentile(xs: number[], p: number): number {
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))];
}

/** The mount holding `path`: its device, mount point and filesystem type. */
function mountOf(path: string): { device: string; point: string; type: string } {
  let best = { device: "?", point: "", type: "?" };
  for (const line of Deno.readTextFileSync("/proc/mounts").split("\n")) {
    const [device, point, type] = line.split(" ");
    if (point === undefined) continue;
    const inside = path === point || path.startsWith(point.endsWith("/") ? point : `${point}/`);
    if (inside && point.length > best.point.length) best = { device, point, type };
  }
  return best;
}

function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (e) => (e ? reject(e) : resolve())));
}

/** Latencies (ms) of `n` raw appends of 100 bytes, each followed by fdatasync via node:fs. */
async function rawNodeFs(path: string, n: number): Promise<number[]> {
  const fd = fs.openSync(path, "a+");
  const buf = new Uint8Array(ENTRY_BYTES).fill(7);
  let pos = fs.fstatSync(fd).size;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    fs.writeSync(fd, buf, 0, buf.length, pos);
    pos += buf.length;
    await fdatasync(fd);
    out.push(performance.now() - t0);
  }
  fs.closeSync(fd);
  return out;
}

/** The same through Deno's own file API. */
async function rawDeno(path: string, n: number): Promise<number[]> {
  const file = await Deno.open(path, { append: true, create: true });
  const buf = new Uint8Array(ENTRY_BYTES).fill(7);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    file.writeSync(buf);
    await file.syncData();
    out.push(performance.now() - t0);
  }
  file.close();
  return out;
}

let nextIndex = 1;

function entry() {
  const index = nextIndex++;
  return { index, term: 1, data: new Uint8Array(ENTRY_BYTES).fill(index & 0xff) };
}

/** Latencies (ms) of `n` FileStorage saves, one at a time. */
async function singleSaves(storage: FileStorage, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await storage.save({ entries: [entry()] });
    out.push(performance.now() - t0);
  }
  return out;
}

/** Entries per second with `proposers` saving concurrently for `seconds`. */
async function concurrent(
  storage: FileStorage,
  proposers: number,
  seconds: number,
): Promise<{ perSecond: number; perBatch: number }> {
  const before = storage.stats;
  const end = performance.now() + seconds * 1000;
  let saved = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: proposers }, async () => {
    while (performance.now() < end) {
      await storage.save({ entries: [entry()] });
      saved++;
    }
  }));
  const elapsed = (performance.now() - t0) / 1000;
  const batches = storage.stats.batches - before.batches;
  return { perSecond: saved / elapsed, perBatch: saved / batches };
}

async function main(): Promise<void> {
  const root = arg("--dir") ?? Deno.env.get("TMPDIR") ?? "/tmp";
  const dir = await Deno.makeTempDir({ dir: root, prefix: "floe-storage-bench-" });
  const mount = mountOf(fs.realpathSync(dir));
  console.log(`directory: ${dir}`);
  console.log(`disk: ${mount.device} mounted on ${mount.point} (${mount.type})`);
  if (mount.type === "tmpfs" || mount.type === "ramfs") {
    console.log("WARNING: a memory filesystem: fsync is free here and the figures mean nothing");
  }
  try {
    const storage = await FileStorage.open(`${dir}/wal`);
    // Warm-up: first writes to fresh files cost extra (allocation, journal).
    await rawNodeFs(`${dir}/raw-node`, 20);
    await rawDeno(`${dir}/raw-deno`, 20);
    await singleSaves(storage, 20);

    // Each round measures everything once, back to back, so a ratio compares figures taken
    // under the same disk conditions; the report gives medians over rounds.
    const raw: number[] = [];
    const rawD: number[] = [];
    const single: number[] = [];
    const rounds: {
      raw: number;
      single: number;
      c64: number;
      c256: number;
      b64: number;
      b256: number;
    }[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const rr = await rawNodeFs(`${dir}/raw-node`, OPS_PER_ROUND);
      const ss = await singleSaves(storage, OPS_PER_ROUND);
      const c64 = await concurrent(storage, 64, CONCURRENT_SECONDS);
      const c256 = await concurrent(storage, 256, CONCURRENT_SECONDS);
      rawD.push(...await rawDeno(`${dir}/raw-deno`, OPS_PER_ROUND / 2));
      raw.push(...rr);
      single.push(...ss);
      rounds.push({
        raw: median(rr),
        single: median(ss),
        c64: c64.perSecond,
        c256: c256.perSecond,
        b64: c64.perBatch,
        b256: c256.perBatch,
      });
    }
    await storage.close();

    const f = (x: number, d = 3) => x.toFixed(d);
    const verdict = (ok: boolean) => (ok ? "PASS" : "MISS");
    const rawMs = median(raw);
    const rawRate = 1000 / rawMs;
    const singleMs = median(single);
    const singleRatio = median(rounds.map((r) => r.single / r.raw));
    const r64 = median(rounds.map((r) => r.c64 / (1000 / r.raw)));
    const r256 = median(rounds.map((r) => r.c256 / (1000 / r.raw)));
    console.log("");
    console.log(`${ROUNDS} rounds; per round: raw ms, single ms, 64 and 256 proposers entries/s`);
    for (const r of rounds) {
      console.log(
        `  raw ${f(r.raw)}  single ${f(r.single)}  64: ${f(r.c64, 0)} (${f(r.b64, 1)}/sync)  ` +
          `256: ${f(r.c256, 0)} (${f(r.b256, 1)}/sync)`,
      );
    }
    console.log(
      `raw write+fdatasync (node:fs)    median ${f(rawMs)} ms, p99 ${
        f(percentile(raw, 0.99))
      } ms ` +
        `-> ${f(rawRate, 0)} syncs/s`,
    );
    console.log(
      `raw write+syncData (Deno.FsFile) median ${f(median(rawD))} ms, ` +
        `p99 ${f(percentile(rawD, 0.99))} ms`,
    );
    console.log(
      `FileStorage single save          median ${f(singleMs)} ms, p99 ` +
        `${f(percentile(single, 0.99))} ms -> ${f(singleRatio, 2)}x raw ` +
        `(median of per-round ratios; target <= 1.5x): ${verdict(singleRatio <= 1.5)}`,
    );
    const c64 = median(rounds.map((r) => r.c64));
    const c256 = median(rounds.map((r) => r.c256));
    for (const [name, rate, ratio] of [["64", c64, r64], ["256", c256, r256]] as const) {
      console.log(
        `FileStorage ${name.padStart(3)} proposers        ${f(rate, 0)} entries/s -> ` +
          `${f(ratio, 1)}x the raw sync rate (median of per-round ratios; target >= 20x): ` +
          `${verdict(ratio >= 20)}`,
      );
    }
    const ok = singleRatio <= 1.5 && r64 >= 20 && r256 >= 20;
    if (Deno.args.includes("--check") && !ok) Deno.exitCode = 1;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main();
