/**
 * Crash tests for FileStorage.
 *
 * 1. Kill -9: a child process (`crash_child.ts`) saves as fast as it can and prints each save
 *    that resolved; it is killed with SIGKILL at a random moment (sometimes while it is still
 *    recovering), the directory is reopened, and the state found must be exactly the state after
 *    some save at or after the last acknowledged one — nothing acknowledged lost, no save half
 *    applied — and `checkStorage` must find the directory sound. Then the next child continues
 *    from there. Two independent lanes run side by side (the machine has two cores).
 * 2. Random truncations and bit flips of the files of a directory built by known saves: damage
 *    in the last batch of the last segment is repaired to the state before that batch; any
 *    other damage stops start-up with a `StorageCorruptionError` naming the file and an offset
 *    at or before the damage; nothing ever throws anything else.
 *
 * Seeded: the seed is printed, and `FLOE_CRASH_SEED=<seed>` replays the same choices (the kill
 * moments still depend on timing). `FLOE_CRASH_KILLS` sets the number of kills (default 200).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { PersistedState } from "../../src/core/types.ts";
import { FileStorage } from "../../src/storage/file_storage.ts";
import { MemoryStorage } from "../../src/storage/memory_storage.ts";
import { checkStorage, formatCheckReport } from "../../src/storage/storage_check.ts";
import { StorageCorruptionError } from "../../src/storage/storage_errors.ts";
import { Random } from "../../src/testing/random.ts";
import { Workload } from "./crash_child.ts";

const CHILD = new URL("./crash_child.ts", import.meta.url).pathname;
const SEGMENT_SIZE = 32 * 1024;
const IN_FLIGHT = 16;

function envInt(name: string, fallback: number): number {
  const v = Deno.env.get(name);
  return v === undefined || v === "" ? fallback : Number(v);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Where two states differ, or `undefined` when they are the same. */
function difference(a: PersistedState, b: PersistedState): string | undefined {
  const ha = a.hardState, hb = b.hardState;
  if (ha.term !== hb.term || ha.vote !== hb.vote || ha.commit !== hb.commit) {
    return `hard state ${JSON.stringify(ha)} vs ${JSON.stringify(hb)}`;
  }
  const sa = a.snapshot, sb = b.snapshot;
  if ((sa === undefined) !== (sb === undefined)) return "snapshot present in one only";
  if (sa && sb) {
    if (sa.index !== sb.index || sa.term !== sb.term) {
      return `snapshot ${sa.index}/${sa.term} vs ${sb.index}/${sb.term}`;
    }
    if (sa.voters.join() !== sb.voters.join() || !sameBytes(sa.data, sb.data)) {
      return "snapshot content";
    }
  }
  if (a.entries.length !== b.entries.length) {
    return `${a.entries.length} entries vs ${b.entries.length}`;
  }
  for (let i = 0; i < a.entries.length; i++) {
    const x = a.entries[i], y = b.entries[i];
    if (x.index !== y.index || x.term !== y.term || !sameBytes(x.data, y.data)) {
      return `entry ${x.index}/${x.term} vs ${y.index}/${y.term}`;
    }
  }
  return undefined;
}

/** A copy of a model's state that later saves to the model do not change. */
function frozen(m: MemoryStorage): PersistedState {
  return m.load();
}

interface LaneResult {
  kills: number;
  killedWhileRecovering: number;
  acknowledged: number;
  tornTails: number;
  staleLocks: number;
  /** Runs whose recovered state included saves written but not yet acknowledged. */
  beyondAck: number;
}

/** Collects a child's stdout, and tells when a line has appeared. */
class Output {
  text = "";
  #waiters: { line: string; resolve: () => void }[] = [];
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) {
        this.text += decoder.decode(chunk, { stream: true });
        this.#waiters = this.#waiters.filter((w) => {
          if (!this.text.includes(w.line)) return true;
          w.resolve();
          return false;
        });
      }
    })();
  }

  /** Resolves when `line` has been printed (never, if it is not). */
  waitFor(line: string): Promise<void> {
    if (this.text.includes(line)) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ line, resolve }));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function killLane(lane: number, seed: number, kills: number): Promise<LaneResult> {
  const rng = new Random(seed);
  const dir = await Deno.makeTempDir({ prefix: `floe-crash-${lane}-` });
  const result: LaneResult = {
    kills: 0,
    killedWhileRecovering: 0,
    acknowledged: 0,
    tornTails: 0,
    staleLocks: 0,
    beyondAck: 0,
  };
  let start: PersistedState = new MemoryStorage().load();
  try {
    for (let run = 0; run < kills; run++) {
      const runSeed = rng.int(2 ** 31);
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-check",
          "--allow-read",
          "--allow-write",
          "--allow-env",
          CHILD,
          dir,
          String(runSeed),
          String(SEGMENT_SIZE),
          String(IN_FLIGHT),
        ],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const out = new Output(child.stdout);
      const stderr = new Response(child.stderr).text();
      const early = rng.chance(0.1);
      if (early) {
        await sleep(rng.range(0, 150));
      } else {
        await Promise.race([out.waitFor("ready\n"), child.status]);
        await sleep(rng.range(0, 120));
      }
      try {
        child.kill("SIGKILL");
      } catch {
        // It exited on its own: its stderr says why, below.
      }
      const status = await child.status;
      await out.done;
      const errors = await stderr;
      assert.ok(
        status.signal === "SIGKILL",
        `lane ${lane} run ${run}: child exited with ${status.code}: ${errors}`,
      );
      result.kills++;
      if (!out.text.startsWith("ready\n")) result.killedWhileRecovering++;
      const lines = out.text.split("\n").filter((l) => /^\d+$/.test(l)).map(Number);
      lines.forEach((n, i) => assert.equal(n, i + 1, "acknowledgements arrive in call order"));
      const acked = lines.length;
      result.acknowledged += acked;

      const warnings: string[] = [];
      const storage = await FileStorage.open(dir, {
        segmentSize: SEGMENT_SIZE,
        onWarning: (m) => warnings.push(m),
      });
      const recovered = await storage.load();
      await storage.close();
      if (warnings.some((w) => w.includes("torn write"))) result.tornTails++;
      if (warnings.some((w) => w.includes("stale lock"))) result.staleLocks++;

      // The child's saves, regenerated: the recovered state must be the state after save k
      // for some k at or after the last acknowledged one. Beyond it, at most the saves in
      // flight (and those resolved but not yet printed) can have been issued.
      const workload = new Workload(start, runSeed);
      let match = acked === 0 && difference(start, recovered) === undefined ? 0 : -1;
      let firstDiff = "";
      for (let k = 1; k <= acked + 2 * IN_FLIGHT && match < 0; k++) {
        workload.next();
        if (k < acked) continue;
        const d = difference(frozen(workload.model), recovered);
        if (d === undefined) match = k;
        else if (k === acked) firstDiff = d;
      }
      assert.ok(
        match >= 0,
        `lane ${lane} run ${run} (seed ${runSeed}): the recovered state is not the state after ` +
          `any save from the last acknowledged one (${acked}) on; at ${acked}: ${firstDiff}`,
      );
      if (match > acked) result.beyondAck++;
      const report = await checkStorage(dir);
      assert.ok(report.ok && report.tailRepair === undefined, formatCheckReport(report));
      start = recovered;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return result;
}

Deno.test({
  name: "crash: kill -9 at random moments loses no acknowledged save and no save is half applied",
  sanitizeResources: false,
  async fn() {
    const seed = envInt("FLOE_CRASH_SEED", Math.floor(Math.random() * 2 ** 31));
    const kills = envInt("FLOE_CRASH_KILLS", 200);
    const lanes = 2;
    console.log(`crash test seed ${seed} (replay: FLOE_CRASH_SEED=${seed}), ${kills} kills`);
    const t0 = performance.now();
    const results = await Promise.all(
      Array.from(
        { length: lanes },
        (_, lane) => killLane(lane, seed + lane, Math.ceil(kills / lanes)),
      ),
    );
    const seconds = (performance.now() - t0) / 1000;
    const sum = (f: (r: LaneResult) => number) => results.reduce((s, r) => s + f(r), 0);
    console.log(
      `crash test: ${sum((r) => r.kills)} kills in ${seconds.toFixed(1)} s ` +
        `(${sum((r) => r.killedWhileRecovering)} while starting or recovering), ` +
        `${sum((r) => r.acknowledged)} acknowledged saves checked, ` +
        `${sum((r) => r.beyondAck)} recoveries held unacknowledged saves too, ` +
        `${sum((r) => r.tornTails)} torn tails repaired, ${sum((r) => r.staleLocks)} stale locks ` +
        `taken over`,
    );
    assert.ok(sum((r) => r.kills) >= kills);
    // Not vacuous: the children did write, and some kills did land mid-write.
    assert.ok(sum((r) => r.acknowledged) >= kills * 5, "the children acknowledged saves");
  },
});

// ---------------------------------------------------------------------------------------------
// Random truncations and bit flips.

interface Built {
  readonly dir: string;
  /** The state after each save; `states[0]` is the empty state. */
  readonly states: PersistedState[];
  /** After save i: the segment it went to and that segment's size. */
  readonly ends: { file: string; size: number }[];
  readonly segments: string[];
  readonly snapshotFile: string;
}

/** A directory built by known saves, one batch each, over several segments, with a snapshot. */
async function build(): Promise<Built> {
  const dir = await Deno.makeTempDir({ prefix: "floe-damage-" });
  const storage = await FileStorage.open(dir, { segmentSize: 4096 });
  // No snapshots but one, early: the last segments then hold only batches whose loss a
  // replay can survive (a lost batch holding a snapshot that let older segments be deleted
  // would leave entries missing, which is reported, not repaired).
  const workload = new Workload(new MemoryStorage().load(), 7, { snapshots: false });
  const states = [frozen(workload.model)];
  const ends: { file: string; size: number }[] = [{ file: "", size: 0 }];
  const segs = () =>
    [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith("wal-")).sort();
  for (let i = 1;; i++) {
    let update;
    if (i === 40) {
      // A snapshot the log continues: older segments are deleted, recent ones stay.
      const m = workload.model;
      const e = m.entries[Math.floor(m.entries.length / 2)];
      update = {
        snapshot: { index: e.index, term: e.term, voters: ["a"], data: new Uint8Array(3000) },
        entries: [],
      };
      m.save(update);
    } else {
      update = workload.next();
    }
    await storage.save(update);
    states.push(frozen(workload.model));
    const files = segs();
    const file = files[files.length - 1];
    ends.push({ file, size: Deno.statSync(`${dir}/${file}`).size });
    const inLast = ends.filter((e) => e.file === file).length;
    if (i > 60 && files.length >= 3 && inLast >= 6 && ends[40].file < file) break;
  }
  await storage.close();
  const snapshotFile = [...Deno.readDirSync(dir)].map((e) => e.name).find((n) =>
    n.startsWith("snap-")
  )!;
  return { dir, states, ends, segments: segs(), snapshotFile };
}

/** Open a copy of `b.dir` damaged by `damage`; returns the loaded state or the error. */
async function openDamaged(
  b: Built,
  damage: (dir: string) => void,
): Promise<{ state?: PersistedState; error?: unknown; warnings: string[] }> {
  const dir = await Deno.makeTempDir({ prefix: "floe-damaged-" });
  const warnings: string[] = [];
  try {
    for (const e of Deno.readDirSync(b.dir)) {
      Deno.copyFileSync(`${b.dir}/${e.name}`, `${dir}/${e.name}`);
    }
    damage(dir);
    let storage: FileStorage | undefined;
    try {
      storage = await FileStorage.open(dir, {
        segmentSize: 4096,
        onWarning: (m) => warnings.push(m),
      });
      return { state: await storage.load(), warnings };
    } catch (error) {
      return { error, warnings };
    } finally {
      await storage?.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The last save whose batch ends at or before `cut` in `file`, else the last one before `file`. */
function lastSaveWithin(b: Built, file: string, cut: number): number {
  let k = 0;
  for (let i = 1; i < b.ends.length; i++) {
    const e = b.ends[i];
    if (e.file < file || (e.file === file && e.size <= cut)) k = i;
  }
  return k;
}

Deno.test("crash: random truncations repair at the tail and are reported elsewhere", async () => {
  const seed = envInt("FLOE_CRASH_SEED", Math.floor(Math.random() * 2 ** 31));
  console.log(`truncation seed ${seed}`);
  const rng = new Random(seed);
  const b = await build();
  try {
    const last = b.segments[b.segments.length - 1];
    let repaired = 0, reported = 0;
    for (let trial = 0; trial < 120; trial++) {
      // Half the trials cut the last segment: the case a crash produces.
      const file = rng.chance(0.5) ? last : rng.pick(b.segments);
      const size = Deno.statSync(`${b.dir}/${file}`).size;
      const cut = rng.int(size);
      const r = await openDamaged(b, (dir) => Deno.truncateSync(`${dir}/${file}`, cut));
      const where = `trial ${trial} (seed ${seed}): ${file} cut to ${cut} of ${size}`;
      if (file === last) {
        assert.equal(r.error, undefined, `${where}: ${r.error}`);
        const k = lastSaveWithin(b, file, cut);
        assert.equal(difference(r.state!, b.states[k]), undefined, `${where}: expected save ${k}`);
        const atBoundary = b.ends.some((e) => e.file === file && e.size === cut);
        assert.equal(r.warnings.some((w) => w.includes("torn write")), !atBoundary, where);
        repaired++;
      } else {
        assert.ok(r.error instanceof StorageCorruptionError, `${where}: ${r.error}`);
        const next = b.segments[b.segments.indexOf(file) + 1];
        assert.ok(
          r.error.file.endsWith(file) || r.error.file.endsWith(next),
          `${where}: names ${r.error.file}`,
        );
        reported++;
      }
    }
    console.log(`truncations: ${repaired} repaired at the tail, ${reported} reported`);
  } finally {
    await Deno.remove(b.dir, { recursive: true });
  }
});

Deno.test("crash: random bit flips repair in the last batch and are reported elsewhere", async () => {
  const seed = envInt("FLOE_CRASH_SEED", Math.floor(Math.random() * 2 ** 31));
  console.log(`bit flip seed ${seed}`);
  const rng = new Random(seed + 1);
  const b = await build();
  try {
    const last = b.segments[b.segments.length - 1];
    const n = b.states.length - 1;
    // The last batch starts where the save before it ended (0 if it opened the segment).
    const lastBatchStart = b.ends[n - 1].file === last ? b.ends[n - 1].size : 0;
    let repaired = 0, reported = 0, snapshotReported = 0;
    for (let trial = 0; trial < 200; trial++) {
      const file = rng.chance(0.1) ? b.snapshotFile : rng.chance(0.4) ? last : rng.pick(b.segments);
      const size = Deno.statSync(`${b.dir}/${file}`).size;
      // Bias toward the tail, where the interesting boundary is.
      const at = rng.chance(0.3) ? size - 1 - rng.int(Math.min(size, 200)) : rng.int(size);
      const bit = rng.int(8);
      const r = await openDamaged(b, (dir) => {
        const bytes = Deno.readFileSync(`${dir}/${file}`);
        bytes[at] ^= 1 << bit;
        Deno.writeFileSync(`${dir}/${file}`, bytes);
      });
      const where = `trial ${trial} (seed ${seed}): bit ${bit} of byte ${at} of ${file}`;
      if (r.error !== undefined) {
        assert.ok(r.error instanceof StorageCorruptionError, `${where}: ${r.error}`);
        assert.ok(r.error.file.endsWith(file), `${where}: names ${r.error.file}`);
        assert.ok(r.error.offset <= at, `${where}: offset ${r.error.offset}`);
      }
      if (file === b.snapshotFile) {
        assert.ok(r.error !== undefined, `${where}: not detected`);
        snapshotReported++;
      } else if (file === last && at >= lastBatchStart) {
        assert.equal(r.error, undefined, `${where}: ${r.error}`);
        assert.equal(difference(r.state!, b.states[n - 1]), undefined, where);
        assert.ok(r.warnings.some((w) => w.includes("torn write")), where);
        repaired++;
      } else {
        assert.ok(r.error !== undefined, `${where}: not detected`);
        reported++;
      }
    }
    console.log(
      `bit flips: ${repaired} repaired in the last batch, ${reported} reported, ` +
        `${snapshotReported} in the snapshot file reported`,
    );
  } finally {
    await Deno.remove(b.dir, { recursive: true });
  }
});
