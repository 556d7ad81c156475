// RaftNode.events(): term, role and leader changes as a stream, in virtual time.
import assert from "node:assert/strict";
import { QueueOverflowError } from "../../src/node/async_queue.ts";
import type { NodeEvent } from "../../src/node/node_events.ts";
import { SimCluster } from "../../src/testing/sim_cluster.ts";
import { settle } from "./solo_node.ts";

/** Reads `it` in the background into `events`; `done` settles when the stream ends. */
function collect(it: AsyncIterableIterator<NodeEvent>): {
  events: NodeEvent[];
  done: Promise<unknown>;
} {
  const events: NodeEvent[] = [];
  const done = (async () => {
    for await (const e of it) events.push(e);
    return "ended";
  })().catch((e) => e);
  return { events, done };
}

Deno.test("events: the first event is the current state, then term, role and leader changes", async () => {
  const c = await SimCluster.create({ servers: 3, seed: 3 });
  try {
    const streams = c.ids.map((_, i) => collect(c.node(i)!.events()));
    await settle();
    for (const s of streams) {
      assert.deepEqual(s.events[0], { type: "state", term: 0, role: "follower", leader: "" });
    }
    const l = await c.checkOneLeader();
    await settle();
    const id = c.ids[l];
    const term = c.getState(l)!.term;
    const mine = streams[l].events;
    // The winner went through pre-candidate and candidate, then took its term's leadership.
    assert.ok(mine.some((e) => e.type === "role" && e.role === "precandidate"));
    const toLeader = mine.find((e) => e.type === "role" && e.role === "leader");
    assert.deepEqual(toLeader, {
      type: "role",
      term,
      role: "leader",
      leader: id,
      previousRole: "candidate",
    });
    assert.ok(mine.some((e) => e.type === "term" && e.term === term && e.previousTerm < term));
    assert.deepEqual(mine.at(-1), {
      type: "leader",
      term,
      role: "leader",
      leader: id,
      previousLeader: "",
    });
    for (let i = 0; i < 3; i++) {
      if (i === l) continue;
      const last = streams[i].events.at(-1)!;
      assert.equal(last.type, "leader");
      assert.equal(last.leader, id);
      assert.equal(last.term, term);
      assert.equal(last.role, "follower");
      // A term event precedes the leader event of the same step or an earlier one.
      assert.ok(streams[i].events.some((e) => e.type === "term" && e.term === term));
    }
    // Depose the leader; every change is reported, the stream carries the new state.
    c.disconnect(l);
    await c.sleep(2000);
    const l2 = await c.checkOneLeader();
    await settle();
    const other = streams[l2].events;
    assert.equal(other.at(-1)!.leader, c.ids[l2]);
    c.connect(l);
    await c.sleep(1000);
    await settle();
    const back = mine.filter((e) => e.type !== "state");
    const last = back.at(-1)!;
    assert.equal(last.role, "follower");
    assert.equal(last.leader, c.ids[l2]);
    assert.ok(back.some((e) => e.type === "role" && e.previousRole === "leader"));
    // Subscribing later starts from the state at that moment.
    const late = c.node(l)!.events();
    assert.deepEqual((await late.next()).value, {
      type: "state",
      term: c.getState(l)!.term,
      role: "follower",
      leader: c.ids[l2],
    });
    await late.return!();
    // stop() ends every stream.
    await c.cleanup();
    for (const s of streams) assert.equal(await s.done, "ended");
  } finally {
    await c.cleanup();
  }
});

Deno.test("events: a subscriber past bufferLimit gets QueueOverflowError, never a silent gap", async () => {
  const c = await SimCluster.create({ servers: 3, seed: 4 });
  try {
    const slow = c.node(0)!.events({ bufferLimit: 2 });
    const keeping = collect(c.node(0)!.events({ bufferLimit: 2 }));
    await c.checkOneLeader();
    await settle();
    // The election made more than two events on every server: the reader that kept up has them
    // all; the one that did not is told.
    assert.ok(keeping.events.length > 2, `${keeping.events.length} events`);
    await assert.rejects(slow.next(), (e: unknown) => {
      assert.ok(e instanceof QueueOverflowError);
      assert.equal(e.limit, 2);
      return true;
    });
    assert.throws(() => c.node(0)!.events({ bufferLimit: 0 }), RangeError);
  } finally {
    await c.cleanup();
  }
});

Deno.test("events: return() unsubscribes; a stopped node's stream gives its state and ends", async () => {
  const c = await SimCluster.create({ servers: 3, seed: 8 });
  try {
    const node = c.node(1)!;
    const it = node.events({ bufferLimit: 1 });
    assert.equal((await it.next()).value?.type, "state");
    assert.deepEqual(await it.return!(), { value: undefined, done: true });
    // No overflow although nobody reads: the subscription is gone.
    await c.checkOneLeader();
    await c.sleep(1000);
    assert.deepEqual(await it.next(), { value: undefined, done: true });
    await c.crash1(1);
    const after = node.events();
    assert.equal((await after.next()).value?.type, "state");
    assert.deepEqual(await after.next(), { value: undefined, done: true });
  } finally {
    await c.cleanup();
  }
});
