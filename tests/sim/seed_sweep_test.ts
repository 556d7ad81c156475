/**
 * The randomized simulation sweep: at least 1,000 seeds of random faults, crashes and proposals,
 * each checked for Raft's four safety properties at every step and for recovery at the end.
 * `FLOE_SIM_SEEDS` sets how many seeds (default 1000), `FLOE_SIM_FROM` the first (default 1); a
 * failing seed replays with `FLOE_SEED=<seed> deno task sim`.
 */
import assert from "node:assert/strict";
import { replayCommand, simulate, SimulationFailure } from "../../src/testing/fault_simulation.ts";
import { parseSimArgs, UsageError } from "../../src/testing/sim_cli.ts";

function envInt(name: string, fallback: number, min: number): number {
  const text = Deno.env.get(name);
  if (text === undefined || text === "") return fallback;
  const n = Number(text);
  if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new Error(`${name} must be an integer ≥ ${min}, got ${JSON.stringify(text)}`);
  }
  return n;
}

Deno.test("randomized simulation: 1000 seeds keep the four safety properties and recover", async () => {
  const count = envInt("FLOE_SIM_SEEDS", 1000, 1);
  const from = envInt("FLOE_SIM_FROM", 1, 0);
  const failures: SimulationFailure[] = [];
  let committed = 0;
  let crashes = 0;
  let leaders = 0;
  const started = performance.now();
  for (let seed = from; seed < from + count; seed++) {
    try {
      const r = await simulate(seed);
      committed += r.committed;
      crashes += r.crashes;
      leaders += r.leaders;
    } catch (e) {
      if (!(e instanceof SimulationFailure)) throw e;
      failures.push(e);
    }
  }
  const secs = ((performance.now() - started) / 1000).toFixed(1);
  console.log(
    `${count} seeds (${from}..${from + count - 1}) in ${secs} s: ${failures.length} failed; ` +
      `${committed} entries committed, ${crashes} crashes, ${leaders} leaders elected`,
  );
  if (failures.length > 0) {
    assert.fail(
      `${failures.length} of ${count} seeds failed:\n` +
        failures.map((f) => f.message).join("\n"),
    );
  }
});

// Seeds outside the default sweep that once failed or strained a check, rerun on every CI run:
// 3499 made a candidate win term 20 on vote grants delayed past term 21's first commit (a legal
// election the Leader Completeness check must not flag); 670 went 6 s without a leader after
// healing (laggards without pre-vote keep restarting everyone's election timer).
const REGRESSION_SEEDS = [670, 3499];

Deno.test("randomized simulation: seeds that once failed or strained a check", async () => {
  const failures: string[] = [];
  for (const seed of REGRESSION_SEEDS) {
    try {
      await simulate(seed);
    } catch (e) {
      if (!(e instanceof SimulationFailure)) throw e;
      failures.push(e.message);
    }
  }
  if (failures.length > 0) assert.fail(failures.join("\n"));
});

Deno.test("randomized simulation: the same seed gives the identical run", async () => {
  for (const seed of [7, 12345]) {
    const a = await simulate(seed, { trace: true });
    const b = await simulate(seed, { trace: true });
    assert.deepEqual(b, a);
    assert.ok(a.trace !== undefined && a.trace.length > a.events, "the trace records every event");
    assert.equal(a.seed, seed);
    assert.ok(a.servers === 3 || a.servers === 5);
    assert.ok(a.committed >= 1, "at least the final command commits");
  }
});

Deno.test("randomized simulation: a failure names its seed and the replay command", () => {
  const f = new SimulationFailure(42, new Error("boom"), ["[     0 ms] x"], 1234);
  assert.match(f.message, /^seed 42: Error: boom/);
  assert.ok(f.message.includes("FLOE_SEED=42 deno task sim"));
  assert.equal(replayCommand(42), "FLOE_SEED=42 deno task sim");
});

Deno.test("sim CLI: arguments are parsed strictly", () => {
  assert.deepEqual(parseSimArgs([], undefined), { mode: "sweep", seeds: 1000, from: 1 });
  assert.deepEqual(parseSimArgs(["--seeds", "20", "--from=5"], undefined), {
    mode: "sweep",
    seeds: 20,
    from: 5,
  });
  assert.deepEqual(parseSimArgs(["--trace"], "7"), { mode: "replay", seed: 7, trace: true });
  assert.deepEqual(parseSimArgs([], "7"), { mode: "replay", seed: 7, trace: false });
  assert.deepEqual(parseSimArgs(["-h"], undefined), { mode: "help" });
  for (
    const [args, seed] of [
      [["--seeds"], undefined],
      [["--seeds", "0"], undefined],
      [["--seeds", "1e3"], undefined],
      [["--seeds", "ten"], undefined],
      [["--from", "-1"], undefined],
      [["--seeds", "5", "--seeds", "6"], undefined],
      [["--bogus"], undefined],
      [["stray"], undefined],
      [["--trace"], undefined],
      [["--trace=yes"], "7"],
      [[], "seven"],
      [["--seeds", "3"], "7"],
    ] as [string[], string | undefined][]
  ) {
    assert.throws(() => parseSimArgs(args, seed), UsageError, `${args.join(" ")} / ${seed}`);
  }
});
