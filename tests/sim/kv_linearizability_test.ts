/**
 * The replicated KV store under every fault of the simulator: concurrent clients against a
 * 5-server cluster through crashes and restarts (leaders most of all), partitions, lost, delayed
 * and reordered messages, lost replies, and snapshots; every history checked for
 * linearizability, no acknowledged write lost, appends exactly once, replicas identical. Several
 * seeds per run; `FLOE_SEED=<n>` replays one (here, or with `deno task sim --kv`).
 *
 * The checks are shown to bite: clients that retry without a session apply appends twice, and a
 * read served from a cut-off server's stale state, and each is caught.
 */
import assert from "node:assert/strict";
import { KvStateMachine } from "../../src/kv/kv_state_machine.ts";
import { KvSimClient, passTime } from "../../src/testing/kv_sim_client.ts";
import {
  checkAppendsExactlyOnce,
  kvReplayCommand,
  KvSimulationFailure,
  type KvSimulationReport,
  simulateKv,
} from "../../src/testing/kv_simulation.ts";
import { type KvInput, kvModel, type KvOutput } from "../../src/testing/kv_model.ts";
import { checkLinearizable, HistoryRecorder } from "../../src/testing/linearizability.ts";
import { parseSimArgs, UsageError } from "../../src/testing/sim_cli.ts";
import { SimCluster } from "../../src/testing/sim_cluster.ts";
import { scenarioSeed } from "../scenario/seeded.ts";

/** Seeds run on every CI run; together they draw every setting both ways. */
const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8];
const TEST_NAME = "kv linearizability: concurrent clients under faults";

async function runSeed(seed: number): Promise<KvSimulationReport> {
  try {
    return await simulateKv(seed);
  } catch (e) {
    if (e instanceof KvSimulationFailure) {
      console.error(`last events before the failure:\n  ${e.trace.join("\n  ")}`);
      console.error(
        `${TEST_NAME}: failed with seed ${seed}; replay with ${kvReplayCommand(seed)}, or ` +
          `FLOE_SEED=${seed} deno test -A tests/sim/kv_linearizability_test.ts`,
      );
    }
    throw e;
  }
}

Deno.test(`${TEST_NAME}: histories linearizable, no write lost, exactly once`, async () => {
  const replay = scenarioSeed(-1);
  const seeds = replay === -1 ? SEEDS : [replay];
  const reports: KvSimulationReport[] = [];
  for (const seed of seeds) {
    const r = await runSeed(seed);
    reports.push(r);
    // Every seed must actually have been under fire and busy.
    assert.ok(r.faults >= 10, `seed ${seed}: only ${r.faults} faults`);
    assert.ok(r.crashes > 0, `seed ${seed}: no crash`);
    assert.ok(r.operations >= 150, `seed ${seed}: only ${r.operations} operations`);
    assert.ok(r.appends >= 30, `seed ${seed}: only ${r.appends} acknowledged appends`);
    assert.ok(r.retries > 0, `seed ${seed}: no retries`);
  }
  const total = (f: (r: KvSimulationReport) => number) => reports.reduce((n, r) => n + f(r), 0);
  console.log(
    `${seeds.length} seeds: ${total((r) => r.operations)} operations checked ` +
      `(${total((r) => r.unknown)} with unknown outcome), ${total((r) => r.crashes)} crashes, ` +
      `${total((r) => r.snapshotsLoaded)} snapshots loaded, ${total((r) => r.lostReplies)} lost ` +
      `replies, ${total((r) => r.duplicatesAbsorbed)} duplicates absorbed; slowest check ` +
      `${Math.max(...reports.map((r) => r.checkMs))} ms`,
  );
  if (replay !== -1) return;
  // Across the seeds, each kind of trouble happened: snapshots were installed or restored,
  // replies were lost and their retries absorbed by sessions, and some operations were given up
  // on (open in the history).
  assert.ok(total((r) => r.snapshotsLoaded) > 0, "no snapshot was ever loaded");
  assert.ok(total((r) => r.lostReplies) > 0, "no reply was ever lost");
  assert.ok(total((r) => r.duplicatesAbsorbed) > 0, "no retry was ever absorbed by a session");
  assert.ok(total((r) => r.unknown) > 0, "no operation was ever left with an unknown outcome");
  for (const flag of ["preVote", "checkQuorum", "leaderNoop"] as const) {
    assert.equal(
      new Set(reports.map((r) => r.settings[flag])).size,
      2,
      `the seeds should run with ${flag} both on and off`,
    );
  }
});

Deno.test(`${TEST_NAME}: a seed replays exactly`, async () => {
  const seed = scenarioSeed(9);
  const strip = ({ checkMs: _, ...r }: KvSimulationReport) => r;
  const a = await simulateKv(seed, { faultMs: 4_000 });
  const b = await simulateKv(seed, { faultMs: 4_000 });
  assert.deepEqual(strip(a), strip(b));
});

// ---- the checks can fail -----------------------------------------------------------------------

async function kvCluster(seed: number): Promise<SimCluster> {
  return await SimCluster.create({
    servers: 5,
    seed,
    node: { leaderNoop: true },
    stateMachine: () => new KvStateMachine(),
  });
}

/** One append whose first reply is lost, then a read of the key; returns value and history. */
async function appendWithLostReply(sessions: boolean) {
  const c = await kvCluster(21);
  try {
    const leader = await c.checkOneLeader();
    const recorder = new HistoryRecorder<KvInput, KvOutput>(() => c.clock.now());
    let replies = 0;
    const client = new KvSimClient(c, {
      id: "a",
      history: recorder,
      server: leader,
      sessions,
      lose: (leg) => leg === "reply" && replies++ === 0,
    });
    assert.ok(await client.append("log", "a.1;"));
    const entry = await client.get("log");
    assert.ok(entry);
    assert.equal(client.stats.lostReplies, 1);
    const value = new TextDecoder().decode(entry.value);
    return { value, history: recorder.history() };
  } finally {
    await c.cleanup();
  }
}

Deno.test(`${TEST_NAME}: a retry without a session applies twice, and is caught`, async () => {
  const appended = [{ key: "log", client: "a", token: "a.1;", acknowledged: true }];

  const withSession = await appendWithLostReply(true);
  assert.equal(withSession.value, "a.1;");
  assert.deepEqual(checkAppendsExactlyOnce(withSession.value, appended), []);
  assert.equal(checkLinearizable(kvModel, withSession.history).ok, true);

  const without = await appendWithLostReply(false);
  assert.equal(without.value, "a.1;a.1;");
  assert.deepEqual(checkAppendsExactlyOnce(without.value, appended), [
    "append a.1; (acknowledged) appears 2 times",
  ]);
  const verdict = checkLinearizable(kvModel, without.history);
  assert.equal(verdict.ok, false, "the checker should reject an append applied twice");
});

Deno.test(`${TEST_NAME}: a whole run without sessions fails`, async () => {
  await assert.rejects(
    () => simulateKv(3, { sessions: false, faultMs: 6_000 }),
    (e: unknown) => {
      assert.ok(e instanceof KvSimulationFailure);
      assert.match(e.message, /not linearizable|appears \d+ times/);
      assert.match(e.message, /replay: FLOE_SEED=\d+ deno task sim --kv/);
      return true;
    },
  );
});

Deno.test(`${TEST_NAME}: a stale read from a cut-off server is caught`, async () => {
  const c = await kvCluster(5);
  try {
    const leader = await c.checkOneLeader();
    const follower = (leader + 1) % c.n;
    const recorder = new HistoryRecorder<KvInput, KvOutput>(() => c.clock.now());
    const writer = new KvSimClient(c, { id: "writer", history: recorder, server: leader });
    assert.ok(await writer.put("x", "1"));
    await passTime(c, 500); // a heartbeat brings the follower the commit; it applies "1"
    const cutOff = c.ids[follower];
    c.network.partition([[cutOff], c.ids.filter((id) => id !== cutOff)]);
    assert.ok(await writer.put("x", "2"));
    await passTime(c, 10); // the read starts strictly after the put returned

    // Wrong on purpose: the cut-off follower answers from its own state.
    const stale = new KvSimClient(c, {
      id: "stale",
      history: recorder,
      server: follower,
      readConsistency: "stale",
    });
    const old = await stale.get("x");
    assert.equal(old && new TextDecoder().decode(old.value), "1");
    // Right: the same follower redirects a linearizable read to the leader.
    const fresh = new KvSimClient(c, { id: "fresh", history: recorder, server: follower });
    const now = await fresh.get("x");
    assert.equal(now && new TextDecoder().decode(now.value), "2");
    assert.ok(fresh.stats.redirects > 0);

    const history = recorder.history();
    const verdict = checkLinearizable(kvModel, history);
    assert.equal(verdict.ok, false, "the checker should reject the stale read");
    assert.ok(verdict.ok === false && verdict.message.includes(`client stale: get("x")`));
    const correct = history.filter((op) => op.client !== "stale");
    assert.equal(checkLinearizable(kvModel, correct).ok, true);
  } finally {
    await c.cleanup();
  }
});

Deno.test(`${TEST_NAME}: an operation given up on stays open in the history`, async () => {
  const c = await kvCluster(8);
  try {
    const leader = await c.checkOneLeader();
    const recorder = new HistoryRecorder<KvInput, KvOutput>(() => c.clock.now());
    const client = new KvSimClient(c, {
      id: "a",
      history: recorder,
      server: leader,
      giveUpAfterMs: 2_000,
    });
    // Three of five followers down: the leader takes the write but cannot commit it.
    const down = [1, 2, 3].map((k) => (leader + k) % c.n);
    for (const i of down) await c.crash1(i);
    assert.equal(await client.put("x", "lost?"), undefined);
    assert.equal(client.stats.gaveUp, 1);
    const [open] = recorder.history();
    assert.equal(open.return, Infinity);
    assert.equal(open.output, undefined);

    // Once a majority is back the write may still take effect; either way the history holds.
    for (const i of down) {
      await c.start1(i);
      c.connect(i);
    }
    const reader = new KvSimClient(c, { id: "b", history: recorder, server: leader });
    const entry = await reader.get("x");
    assert.notEqual(entry, undefined);
    assert.equal(checkLinearizable(kvModel, recorder.history()).ok, true);
  } finally {
    await c.cleanup();
  }
});

Deno.test(`${TEST_NAME}: checkAppendsExactlyOnce names each problem`, () => {
  const a = (token: string, acknowledged = true, client = token.split(".")[0]) => ({
    key: "k",
    client,
    token,
    acknowledged,
  });
  assert.deepEqual(checkAppendsExactlyOnce("a.1;b.1;a.2;", [a("a.1;"), a("b.1;"), a("a.2;")]), []);
  // Unacknowledged: present once or not at all.
  assert.deepEqual(checkAppendsExactlyOnce("a.1;", [a("a.1;"), a("a.2;", false)]), []);
  assert.deepEqual(checkAppendsExactlyOnce("", []), []);
  assert.deepEqual(checkAppendsExactlyOnce("a.1;", [a("a.1;"), a("a.2;")]), [
    "acknowledged append a.2; is lost",
  ]);
  assert.deepEqual(checkAppendsExactlyOnce("a.1;a.1;", [a("a.1;", false)]), [
    "append a.1; (outcome unknown) appears 2 times",
  ]);
  assert.deepEqual(checkAppendsExactlyOnce("a.2;a.1;", [a("a.1;"), a("a.2;")]), [
    "a's append a.2; comes before its earlier a.1;",
  ]);
  assert.deepEqual(checkAppendsExactlyOnce("a.1;x.9;", [a("a.1;")]), [
    `"x.9;" was never appended`,
  ]);
  assert.deepEqual(checkAppendsExactlyOnce("a.1;a.", [a("a.1;")]), [
    "value ends in a partial token",
  ]);
});

Deno.test(`${TEST_NAME}: deno task sim --kv runs or replays this simulation`, () => {
  assert.deepEqual(parseSimArgs(["--kv"], undefined), {
    mode: "sweep",
    seeds: 1000,
    from: 1,
    kv: true,
  });
  assert.deepEqual(parseSimArgs(["--seeds", "5", "--kv"], undefined), {
    mode: "sweep",
    seeds: 5,
    from: 1,
    kv: true,
  });
  assert.deepEqual(parseSimArgs(["--kv", "--trace"], "7"), {
    mode: "replay",
    seed: 7,
    trace: true,
    kv: true,
  });
  assert.throws(() => parseSimArgs(["--kv=yes"], undefined), UsageError);
  assert.throws(() => parseSimArgs(["--kv", "--kv"], undefined), UsageError);
  assert.equal(kvReplayCommand(12), "FLOE_SEED=12 deno task sim --kv");
});
