// The 6.5840 lab's part 3C scenarios (persistence), in virtual time.
//
// Each test follows the lab's test_test.go step by step, with the lab's checks and limits (see
// /work/shared/6.5840-scenarios.md). Every random choice comes from the cluster's seeded `Random`,
// so a run replays exactly from its seed: `FLOE_SEED=<seed>` (with --allow-env) overrides the
// default, and a failing test prints its seed.
//
// Concurrency. The lab runs clients as goroutines. Here only the test's main line ever advances
// virtual time (through `c.sleep` and the harness's checks, which sleep too); the lab's goroutines
// (the churn clients, the background `one()`s of "unreliable agreement") are chains of synchronous
// `c.clock.schedule` callbacks that run, at their exact due times, while the main line's sleeps
// move the clock. Running them as async functions that each call `c.sleep` would be wrong: each
// `sleep` advances the one shared clock, so concurrent sleepers add up (three clients sleeping
// 10 ms would move time 30 ms per round, and a 700 ms sleep of the churn driver would freeze the
// clients for 700 ms). Where the lab waits for its goroutines (`wg.Wait()`, reading the clients'
// channels), the main line sleeps in 1 ms steps until they are done. A background task that fails
// a check throws from its callback; the error leaves through whatever call is advancing time, as a
// goroutine's `t.Fatalf` ends the lab's test.
import assert from "node:assert/strict";
import { commandKey } from "../../src/testing/safety_checker.ts";
import type { Random } from "../../src/testing/random.ts";
import {
  ClusterCheckError,
  intCommand,
  SimCluster,
  type SimClusterOptions,
} from "../../src/testing/sim_cluster.ts";

/** The lab's RaftElectionTimeout: the tester's allowance for one election. */
const ELECTION_TIMEOUT = 1000;

/** The seed of every test unless `FLOE_SEED` says otherwise. */
const DEFAULT_SEED = 1;

/** `FLOE_SEED` when set and readable (needs --allow-env), else the default. */
function scenarioSeed(): number {
  const permission = Deno.permissions.querySync({ name: "env", variable: "FLOE_SEED" });
  if (permission.state !== "granted") return DEFAULT_SEED;
  const env = Deno.env.get("FLOE_SEED");
  if (env === undefined || env === "") return DEFAULT_SEED;
  const seed = Number(env);
  if (!Number.isInteger(seed)) throw new Error(`FLOE_SEED must be an integer, got ${env}`);
  return seed;
}

/** A test on a fresh cluster built from the scenario's seed; a failure prints how to replay it. */
function scenario(
  name: string,
  options: Omit<SimClusterOptions, "seed">,
  body: (c: SimCluster) => Promise<void>,
): void {
  Deno.test(name, async () => {
    const seed = scenarioSeed();
    let c: SimCluster | undefined;
    try {
      c = await SimCluster.create({ ...options, seed });
      await body(c);
    } catch (e) {
      console.error(
        `seed ${seed}: replay with FLOE_SEED=${seed} deno test --allow-env --filter "${name}" ` +
          "tests/scenario/persistence_3c_test.ts",
      );
      throw e;
    } finally {
      await c?.cleanup();
    }
  });
}

/** The lab's `rand.Int()` as a command. */
function randomCommand(random: Random): Uint8Array {
  return intCommand(random.int(2 ** 31));
}

/** The lab's Figure 8 pause: 0–499 ms one time in ten, else 0–12 ms. */
function figure8Pause(random: Random): number {
  return random.int(1000) < 100 ? random.int(ELECTION_TIMEOUT / 2) : random.int(13);
}

/** Let virtual time pass in 1 ms steps until `done()` (the lab's `wg.Wait()` on goroutines). */
async function sleepUntil(c: SimCluster, done: () => boolean): Promise<void> {
  while (!done()) await c.sleep(1);
}

/**
 * The lab's `go cfg.one(cmd, expected, true)`: the harness's `one` with retry, as a chain of clock
 * callbacks. For up to 10 s, find a connected server that accepts `cmd`; then, polling every 20 ms
 * for 2 s, wait for `expected` servers to apply it there; try again if they do not. `done` is
 * called with the index once agreed; a failure throws from the callback.
 */
function oneInBackground(
  c: SimCluster,
  cmd: Uint8Array,
  expected: number,
  done: (index: number) => void,
): void {
  const t0 = c.clock.now();
  const want = commandKey(cmd);
  let starts = 0;
  const attempt = () => {
    if (c.clock.now() - t0 >= 10_000) {
      throw new ClusterCheckError(`one(${want}) failed to reach agreement in 10 s`);
    }
    let index = -1;
    for (let si = 0; si < c.n; si++) {
      starts = (starts + 1) % c.n;
      if (!c.connected(starts)) continue;
      const p = c.start(starts, cmd);
      if (p) {
        index = p.index;
        break;
      }
    }
    if (index === -1) {
      c.clock.schedule(50, attempt);
      return;
    }
    const t1 = c.clock.now();
    const poll = () => {
      if (c.clock.now() - t1 >= 2_000) {
        attempt();
        return;
      }
      const { count, command } = c.nCommitted(index);
      if (count > 0 && count >= expected && command === want) {
        done(index);
        return;
      }
      c.clock.schedule(20, poll);
    };
    poll();
  };
  attempt();
}

scenario("3C: basic persistence", { servers: 3 }, async (c) => {
  const servers = 3;
  await c.one(intCommand(11), servers, true);

  // Crash and restart all.
  for (let i = 0; i < servers; i++) await c.start1(i);
  for (let i = 0; i < servers; i++) {
    c.disconnect(i);
    c.connect(i);
  }
  await c.one(intCommand(12), servers, true);

  // Restart the leader.
  const leader1 = await c.checkOneLeader();
  c.disconnect(leader1);
  await c.start1(leader1);
  c.connect(leader1);
  await c.one(intCommand(13), servers, true);

  // Cut the leader off, agree without it, then restart it.
  const leader2 = await c.checkOneLeader();
  c.disconnect(leader2);
  await c.one(intCommand(14), servers - 1, true);
  await c.start1(leader2);
  c.connect(leader2);
  // Wait for leader2 to catch up before cutting off i3.
  await c.wait(4, servers, -1);

  // Cut a follower off, agree without it, then restart it.
  const i3 = ((await c.checkOneLeader()) + 1) % servers;
  c.disconnect(i3);
  await c.one(intCommand(15), servers - 1, true);
  await c.start1(i3);
  c.connect(i3);
  await c.one(intCommand(16), servers, true);
});

scenario("3C: more persistence", { servers: 5 }, async (c) => {
  const servers = 5;
  let index = 1;
  for (let iters = 0; iters < 5; iters++) {
    await c.one(intCommand(10 + index), servers, true);
    index++;

    const leader1 = await c.checkOneLeader();
    c.disconnect((leader1 + 1) % servers);
    c.disconnect((leader1 + 2) % servers);
    await c.one(intCommand(10 + index), servers - 2, true);
    index++;

    // The other three leave; the two that were cut off restart and come back, without a quorum.
    c.disconnect((leader1 + 0) % servers);
    c.disconnect((leader1 + 3) % servers);
    c.disconnect((leader1 + 4) % servers);
    await c.start1((leader1 + 1) % servers);
    await c.start1((leader1 + 2) % servers);
    c.connect((leader1 + 1) % servers);
    c.connect((leader1 + 2) % servers);
    await c.sleep(ELECTION_TIMEOUT);

    // A third restarts and joins them: a quorum, which must hold every committed entry.
    await c.start1((leader1 + 3) % servers);
    c.connect((leader1 + 3) % servers);
    await c.one(intCommand(10 + index), servers - 2, true);
    index++;

    c.connect((leader1 + 4) % servers);
    c.connect((leader1 + 0) % servers);
  }
  await c.one(intCommand(1000), servers, true);
});

scenario(
  "3C: partitioned leader and one follower crash, leader restarts",
  { servers: 3 },
  async (c) => {
    const servers = 3;
    await c.one(intCommand(101), 3, true);

    const leader = await c.checkOneLeader();
    c.disconnect((leader + 2) % servers);
    await c.one(intCommand(102), 2, true);

    // The two that hold 102 crash; the one that missed it comes back, then the old leader restarts.
    await c.crash1((leader + 0) % servers);
    await c.crash1((leader + 1) % servers);
    c.connect((leader + 2) % servers);
    await c.start1((leader + 0) % servers);
    c.connect((leader + 0) % servers);
    await c.one(intCommand(103), 2, true);

    await c.start1((leader + 1) % servers);
    c.connect((leader + 1) % servers);
    await c.one(intCommand(104), servers, true);
  },
);

scenario("3C: Figure 8", { servers: 5 }, async (c) => {
  const servers = 5;
  await c.one(randomCommand(c.random), 1, true);

  let nup = servers;
  for (let iters = 0; iters < 1000; iters++) {
    // Every live server is asked to start a command; remember the (last) one that accepted.
    let leader = -1;
    for (let i = 0; i < servers; i++) {
      if (c.node(i) && c.start(i, randomCommand(c.random))) leader = i;
    }

    await c.sleep(figure8Pause(c.random));

    if (leader !== -1) {
      await c.crash1(leader);
      nup--;
    }

    if (nup < 3) {
      const s = c.random.int(servers);
      if (!c.node(s)) {
        await c.start1(s);
        c.connect(s);
        nup++;
      }
    }
  }

  for (let i = 0; i < servers; i++) {
    if (!c.node(i)) {
      await c.start1(i);
      c.connect(i);
    }
  }
  await c.one(randomCommand(c.random), servers, true);
});

scenario("3C: unreliable agreement", { servers: 5, unreliable: true }, async (c) => {
  const servers = 5;
  // The lab's WaitGroup: background agreements still running.
  let running = 0;
  for (let iters = 1; iters < 50; iters++) {
    for (let j = 0; j < 4; j++) {
      running++;
      oneInBackground(c, intCommand(100 * iters + j), 1, () => running--);
    }
    await c.one(intCommand(iters), 1, true);
  }

  c.setUnreliable(false);
  await sleepUntil(c, () => running === 0);

  await c.one(intCommand(100), servers, true);
});

scenario("3C: Figure 8 (unreliable)", { servers: 5, unreliable: true }, async (c) => {
  const servers = 5;
  await c.one(intCommand(c.random.int(10_000)), 1, true);

  let nup = servers;
  for (let iters = 0; iters < 1000; iters++) {
    if (iters === 200) c.setLongReordering(true);
    // Every server is asked to start a command; remember the (last) connected one that accepted.
    let leader = -1;
    for (let i = 0; i < servers; i++) {
      const p = c.start(i, intCommand(c.random.int(10_000)));
      if (p && c.connected(i)) leader = i;
    }

    await c.sleep(figure8Pause(c.random));

    if (leader !== -1 && c.random.int(1000) < ELECTION_TIMEOUT / 2) {
      c.disconnect(leader);
      nup--;
    }

    if (nup < 3) {
      const s = c.random.int(servers);
      if (!c.connected(s)) {
        c.connect(s);
        nup++;
      }
    }
  }

  // As in the lab, the network stays unreliable (with long reordering) for the final agreement.
  for (let i = 0; i < servers; i++) {
    if (!c.connected(i)) c.connect(i);
  }
  await c.one(intCommand(c.random.int(10_000)), servers, true);
});

/**
 * One churn client (a lab goroutine), as clock callbacks: until `stopped()`, pick a random value,
 * ask every live server to start it, and if one accepted, check at 0, 10, 30, 80 and 180 ms whether
 * its index was committed, recording the value if it was committed there; with no taker, wait
 * 79 + 17·me ms. `done` receives the recorded values (as command keys) when the client stops.
 */
function churnClient(
  c: SimCluster,
  me: number,
  random: Random,
  stopped: () => boolean,
  done: (values: string[]) => void,
): void {
  const values: string[] = [];
  const waits = [10, 20, 50, 100, 200];
  const loop = () => {
    if (stopped()) {
      done(values);
      return;
    }
    const x = randomCommand(random);
    let index = -1;
    let ok = false;
    for (let i = 0; i < c.n; i++) {
      // Try them all; maybe one of them is a leader.
      const p = c.start(i, x);
      if (p) {
        ok = true;
        index = p.index;
      }
    }
    if (!ok) {
      c.clock.schedule(79 + me * 17, loop);
      return;
    }
    // Maybe the leader will commit our value, maybe not; don't wait forever.
    const poll = (k: number) => {
      if (k === waits.length) {
        c.clock.schedule(0, loop);
        return;
      }
      const { count, command } = c.nCommitted(index);
      if (count > 0) {
        if (command === commandKey(x)) values.push(command);
        // Next value at once (through the clock, so a long streak cannot grow the stack).
        c.clock.schedule(0, loop);
        return;
      }
      c.clock.schedule(waits[k], () => poll(k + 1));
    };
    poll(0);
  };
  loop();
}

async function churn(c: SimCluster, unreliable: boolean): Promise<void> {
  const servers = 5;
  const ncli = 3;
  let stop = false;
  const results: (string[] | undefined)[] = Array.from({ length: ncli }, () => undefined);
  for (let me = 0; me < ncli; me++) {
    churnClient(c, me, c.random.fork(), () => stop, (values) => results[me] = values);
  }

  for (let iters = 0; iters < 20; iters++) {
    if (c.random.int(1000) < 200) {
      c.disconnect(c.random.int(servers));
    }
    if (c.random.int(1000) < 500) {
      const i = c.random.int(servers);
      if (!c.node(i)) await c.start1(i);
      c.connect(i);
    }
    if (c.random.int(1000) < 200) {
      const i = c.random.int(servers);
      if (c.node(i)) await c.crash1(i);
    }
    // Often enough that the peers have not settled between changes, rarely enough that they can
    // often keep up: less than an election timeout, but not hugely less.
    await c.sleep((ELECTION_TIMEOUT * 7) / 10);
  }

  await c.sleep(ELECTION_TIMEOUT);
  if (unreliable) c.setUnreliable(false);
  for (let i = 0; i < servers; i++) {
    if (!c.node(i)) await c.start1(i);
    c.connect(i);
  }

  stop = true;
  await sleepUntil(c, () => results.every((r) => r !== undefined));
  const values = results.flatMap((r) => r!);

  await c.sleep(ELECTION_TIMEOUT);

  const lastIndex = await c.one(randomCommand(c.random), servers, true);
  const really = new Set<string>();
  for (let index = 1; index <= lastIndex; index++) {
    const v = await c.wait(index, servers, -1);
    assert.ok(v !== undefined, `no value agreed at index ${index}`);
    really.add(v);
  }
  for (const v of values) {
    assert.ok(really.has(v), `didn't find a value: a client saw ${JSON.stringify(v)} committed`);
  }
}

scenario("3C: churn", { servers: 5 }, (c) => churn(c, false));

scenario("3C: unreliable churn", { servers: 5, unreliable: true }, (c) => churn(c, true));
