/**
 * `deno task sim`: the randomized fault simulation from the command line.
 *
 * - `FLOE_SEED=n deno task sim [--trace]` replays seed n exactly and prints its report (with
 *   `--trace`, every event as it happens); exits 1 if it fails.
 * - `deno task sim [--seeds N] [--from S]` runs seeds S..S+N-1 (default 1000 seeds from 1) with a
 *   progress line on stderr, then prints a summary and every failing seed with its replay
 *   command; exits 1 if any failed.
 * - `--kv` does either with the key-value simulation instead (`simulateKv`): concurrent clients
 *   of a replicated `KvStateMachine` under faults, their history checked for linearizability.
 *
 * Bad arguments print what is wrong and the usage, and exit 2.
 *
 * @module
 */
import {
  replayCommand,
  simulate,
  SimulationFailure,
  type SimulationReport,
} from "./fault_simulation.ts";
import {
  kvReplayCommand,
  KvSimulationFailure,
  type KvSimulationReport,
  simulateKv,
} from "./kv_simulation.ts";

/** How the command was asked to run. `kv` (present only when true): the KV simulation. */
export type SimCommand =
  | { readonly mode: "help" }
  | { readonly mode: "replay"; readonly seed: number; readonly trace: boolean; readonly kv?: true }
  | { readonly mode: "sweep"; readonly seeds: number; readonly from: number; readonly kv?: true };

/** Bad command-line arguments; the message says what is wrong. */
export class UsageError extends Error {
  /** `message`: what is wrong. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The usage text. */
export const USAGE = `usage:
  deno task sim [--seeds N] [--from S]   run seeds S..S+N-1 (default: 1000 seeds from 1)
  FLOE_SEED=n deno task sim [--trace]    replay seed n exactly; --trace prints every event
  deno task sim --kv ...                 the same with the key-value simulation (concurrent
                                         clients under faults, histories checked)
  deno task sim --help                   this text`;

function parseInteger(flag: string, text: string | undefined, min: number): number {
  if (text === undefined || text === "") throw new UsageError(`${flag} needs a value`);
  if (!/^-?\d+$/.test(text)) {
    throw new UsageError(`${flag}: not an integer: ${JSON.stringify(text)}`);
  }
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${flag}: out of range: ${text}`);
  if (n < min) throw new UsageError(`${flag}: must be at least ${min}, got ${n}`);
  return n;
}

/**
 * Parse the arguments and the `FLOE_SEED` value (undefined when unset) strictly: unknown flags,
 * repeated flags, stray arguments and bad numbers are errors.
 *
 * @throws {UsageError} naming what is wrong.
 */
export function parseSimArgs(args: readonly string[], floeSeed: string | undefined): SimCommand {
  let seeds: number | undefined;
  let from: number | undefined;
  let trace = false;
  let help = false;
  let kv = false;
  for (let k = 0; k < args.length; k++) {
    const arg = args[k];
    const eq = arg.indexOf("=");
    const flag = arg.startsWith("--") && eq > 0 ? arg.slice(0, eq) : arg;
    const inline = arg.startsWith("--") && eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = (): string | undefined => inline ?? args[++k];
    switch (flag) {
      case "--seeds":
        if (seeds !== undefined) throw new UsageError("--seeds given twice");
        seeds = parseInteger("--seeds", value(), 1);
        break;
      case "--from":
        if (from !== undefined) throw new UsageError("--from given twice");
        from = parseInteger("--from", value(), 0);
        break;
      case "--trace":
        if (inline !== undefined) throw new UsageError("--trace takes no value");
        trace = true;
        break;
      case "--kv":
        if (inline !== undefined) throw new UsageError("--kv takes no value");
        if (kv) throw new UsageError("--kv given twice");
        kv = true;
        break;
      case "--help":
      case "-h":
        help = true;
        break;
      default:
        throw new UsageError(
          arg.startsWith("-") ? `unknown flag: ${arg}` : `unexpected argument: ${arg}`,
        );
    }
  }
  if (help) return { mode: "help" };
  if (floeSeed !== undefined && floeSeed !== "") {
    if (seeds !== undefined || from !== undefined) {
      throw new UsageError(
        "FLOE_SEED replays one seed; it cannot be combined with --seeds or --from",
      );
    }
    const seed = parseInteger("FLOE_SEED", floeSeed.trim(), 0);
    return { mode: "replay", seed, trace, ...(kv ? { kv: true } : {}) };
  }
  if (trace) throw new UsageError("--trace needs FLOE_SEED (it traces one replayed seed)");
  return { mode: "sweep", seeds: seeds ?? 1000, from: from ?? 1, ...(kv ? { kv: true } : {}) };
}

function formatReport(r: SimulationReport): string {
  const t = r.settings;
  return [
    `seed ${r.seed}: ok`,
    `  cluster:    ${r.servers} servers; heartbeat ${t.heartbeatMs} ms, election ` +
    `${t.electionMinMs}-${t.electionMaxMs} ms, tick ${t.tickMs} ms, preVote ${t.preVote}, ` +
    `checkQuorum ${t.checkQuorum}`,
    `  flow:       maxInflight ${t.maxInflight}, maxAppendBytes ${t.maxAppendBytes}`,
    `  ran:        ${r.rounds} rounds of faults and recovery, ${Math.round(r.virtualMs)} ms of ` +
    `virtual time, ${r.events} events, ${r.crashes} crashes`,
    `  proposals:  ${r.proposals} accepted by a leader, ${r.refused} refused`,
    `  committed:  indexes 1..${r.committed} applied identically on every server`,
    `  leaders:    elected in ${r.leaders} terms; slowest recovery election ${r.slowestElectionMs} ms`,
  ].join("\n");
}

function formatKvReport(r: KvSimulationReport): string {
  const t = r.settings;
  return [
    `seed ${r.seed}: ok (key-value simulation)`,
    `  cluster:    ${r.servers} servers, ${r.clients} clients; heartbeat ${t.heartbeatMs} ms, ` +
    `election ${t.electionMinMs}-${t.electionMaxMs} ms, preVote ${t.preVote}, checkQuorum ` +
    `${t.checkQuorum}, leaderNoop ${t.leaderNoop}, snapshot every ${t.snapshotEvery}`,
    `  ran:        ${Math.round(r.virtualMs)} ms of virtual time, ${r.faults} faults, ` +
    `${r.crashes} crashes, leaders in ${r.leaders} terms, ${r.snapshotsLoaded} snapshots loaded`,
    `  clients:    ${r.operations} operations (${r.unknown} with unknown outcome), ` +
    `${r.retries} retries, ${r.lostReplies} lost replies, ${r.duplicatesAbsorbed} duplicates absorbed`,
    `  checked:    linearizable in ${r.checkMs} ms; ${r.appends} acknowledged appends exactly ` +
    `once; replicas identical through index ${r.lastIndex}`,
  ].join("\n");
}

const encoder = new TextEncoder();

function writeErr(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text));
}

/** Replay one seed (of the KV simulation with `kv`); returns the exit code. */
export async function replay(seed: number, trace: boolean, kv = false): Promise<number> {
  if (kv) {
    try {
      const report = await simulateKv(seed, {
        onEvent: trace ? (line) => console.log(line) : undefined,
      });
      console.log(formatKvReport(report));
      return 0;
    } catch (e) {
      if (!(e instanceof KvSimulationFailure)) throw e;
      if (!trace) {
        console.error(`last events before the failure:`);
        for (const line of e.trace) console.error(`  ${line}`);
      }
      console.error(`FAILED ${e.message}`);
      return 1;
    }
  }
  try {
    const report = await simulate(seed, {
      onEvent: trace ? (line) => console.log(line) : undefined,
    });
    console.log(formatReport(report));
    return 0;
  } catch (e) {
    if (e instanceof SimulationFailure) {
      if (!trace) {
        console.error(`last events before the failure:`);
        for (const line of e.trace) console.error(`  ${line}`);
      }
      console.error(`FAILED ${e.message}`);
      if (e.cause instanceof Error && e.cause.stack) console.error(e.cause.stack);
      return 1;
    }
    throw e;
  }
}

/** Run `count` seeds of the KV simulation from `from`; returns the exit code. */
export async function sweepKv(count: number, from: number): Promise<number> {
  const started = performance.now();
  const failures: KvSimulationFailure[] = [];
  let operations = 0;
  let unknown = 0;
  let lastShown = performance.now();
  for (let k = 0; k < count; k++) {
    const seed = from + k;
    try {
      const r = await simulateKv(seed);
      operations += r.operations;
      unknown += r.unknown;
    } catch (e) {
      if (!(e instanceof KvSimulationFailure)) throw e;
      failures.push(e);
      console.error(e.message);
    }
    if (performance.now() - lastShown > 10_000) {
      lastShown = performance.now();
      writeErr(`kv seeds ${k + 1}/${count}  failures ${failures.length}\n`);
    }
  }
  const secs = (performance.now() - started) / 1000;
  console.log(
    `${count} kv seeds (${from}..${from + count - 1}) in ${secs.toFixed(1)} s: ` +
      `${count - failures.length} passed, ${failures.length} failed; ${operations} operations ` +
      `checked (${unknown} with unknown outcome)`,
  );
  for (const f of failures) console.log(`  seed ${f.seed}: replay: ${kvReplayCommand(f.seed)}`);
  return failures.length > 0 ? 1 : 0;
}

/** Run `count` seeds from `from` with a progress line; returns the exit code. */
export async function sweep(count: number, from: number): Promise<number> {
  const tty = Deno.stderr.isTerminal();
  const started = performance.now();
  const failures: SimulationFailure[] = [];
  const totals = { proposals: 0, committed: 0, leaders: 0, crashes: 0, events: 0, virtualMs: 0 };
  let slowest = { ms: -1, seed: 0 };
  let lastShown = -Infinity;
  const progress = (done: number, final: boolean): void => {
    const now = performance.now();
    // On a terminal, redraw at most 10 times a second; in a log, a line every 10 s.
    if (!final && now - lastShown < (tty ? 100 : 10_000)) return;
    lastShown = now;
    const secs = (now - started) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const line = `seeds ${done}/${count}  failures ${failures.length}  ` +
      `elapsed ${secs.toFixed(1)} s  ${rate.toFixed(1)} seeds/s`;
    writeErr(tty ? `\r\x1b[K${line}${final ? "\n" : ""}` : `${line}\n`);
  };
  for (let k = 0; k < count; k++) {
    const seed = from + k;
    try {
      const r = await simulate(seed);
      totals.proposals += r.proposals;
      totals.committed += r.committed;
      totals.leaders += r.leaders;
      totals.crashes += r.crashes;
      totals.events += r.events;
      totals.virtualMs += r.virtualMs;
      if (r.slowestElectionMs > slowest.ms) slowest = { ms: r.slowestElectionMs, seed };
    } catch (e) {
      if (!(e instanceof SimulationFailure)) throw e;
      failures.push(e);
      if (tty) writeErr("\r\x1b[K");
      console.error(e.message);
      lastShown = -Infinity;
    }
    progress(k + 1, k + 1 === count);
  }
  const secs = (performance.now() - started) / 1000;
  const ok = count - failures.length;
  console.log(
    `${count} seeds (${from}..${from + count - 1}) in ${secs.toFixed(1)} s ` +
      `(${(count / secs).toFixed(1)} seeds/s): ${ok} passed, ${failures.length} failed`,
  );
  console.log(
    `  passing runs: ${(totals.virtualMs / 1000).toFixed(0)} s of virtual time, ` +
      `${totals.events} events, ${totals.crashes} crashes, ${totals.proposals} proposals accepted, ` +
      `${totals.committed} entries committed, ${totals.leaders} leaders elected`,
  );
  if (slowest.ms >= 0) {
    console.log(`  slowest election after a recovery: ${slowest.ms} ms (seed ${slowest.seed})`);
  }
  if (failures.length > 0) {
    console.log(`failing seeds:`);
    for (const f of failures) {
      console.log(`  seed ${f.seed}: ${f.message.split("\n")[0].slice(`seed ${f.seed}: `.length)}`);
      console.log(`    replay: ${replayCommand(f.seed)}`);
    }
    return 1;
  }
  return 0;
}

/** Entry point: parse, run, and return the exit code. */
export async function main(args: readonly string[], floeSeed: string | undefined): Promise<number> {
  let command: SimCommand;
  try {
    command = parseSimArgs(args, floeSeed);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`sim: ${e.message}\n${USAGE}`);
    return 2;
  }
  switch (command.mode) {
    case "help":
      console.log(USAGE);
      return 0;
    case "replay":
      return await replay(command.seed, command.trace, command.kv === true);
    case "sweep":
      return command.kv
        ? await sweepKv(command.seeds, command.from)
        : await sweep(command.seeds, command.from);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args, Deno.env.get("FLOE_SEED")));
}
