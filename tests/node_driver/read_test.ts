// Linearizable reads (ReadIndex) through RaftNode, in virtual time.
import assert from "node:assert/strict";
import { NotLeaderError } from "../../src/core/errors.ts";
import { SimCluster } from "../../src/testing/sim_cluster.ts";
import { register } from "./solo_node.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) => new TextDecoder().decode(b);
const Q = new Uint8Array(0);

async function cluster(leaderNoop: boolean): Promise<SimCluster> {
  return await SimCluster.create({
    servers: 3,
    seed: 11,
    stateMachine: () => register(),
    node: { leaderNoop },
  });
}

Deno.test("read: the leader answers with every write committed before the read", async () => {
  const c = await cluster(false);
  try {
    const l = await c.checkOneLeader();
    const node = c.node(l)!;
    const write = node.propose(enc("v1"));
    await c.sleep(100);
    await write;
    const read = node.read(Q);
    await c.sleep(100);
    assert.equal(dec(await read), "v1");
  } finally {
    await c.cleanup();
  }
});

Deno.test("read: a follower refuses a linearizable read with the leader's id", async () => {
  const c = await cluster(false);
  try {
    const l = await c.checkOneLeader();
    const f = (l + 1) % 3;
    await assert.rejects(c.node(f)!.read(Q), (e: unknown) => {
      assert.ok(e instanceof NotLeaderError);
      assert.equal(e.leaderHint, c.ids[l]);
      return true;
    });
    // A stale read answers from whatever the follower has applied.
    assert.equal(dec(await c.node(f)!.read(Q, { consistency: "stale" })), "");
  } finally {
    await c.cleanup();
  }
});

Deno.test("read: a new leader without leaderNoop answers a read without waiting for a write", async () => {
  const c = await cluster(false);
  try {
    const l = await c.checkOneLeader();
    const node = c.node(l)!;
    const read = node.read(Q);
    await c.sleep(200);
    assert.equal(dec(await read), "");
    // The read committed the term's no-op: an empty command, not passed to the state machine.
    const first = await node.applied().next();
    assert.equal(first.done, false);
    assert.equal(first.value.type === "entry" && first.value.command.length, 0);
  } finally {
    await c.cleanup();
  }
});

Deno.test("read: with leaderNoop a new leader serves reads at once", async () => {
  const c = await cluster(true);
  try {
    const l = await c.checkOneLeader();
    const read = c.node(l)!.read(Q);
    await c.sleep(200);
    assert.equal(dec(await read), "");
  } finally {
    await c.cleanup();
  }
});

Deno.test("read: a deposed leader cut off from the cluster never answers stale data", async () => {
  const c = await cluster(true);
  try {
    const l = await c.checkOneLeader();
    const old = c.node(l)!;
    c.disconnect(l);
    const read = old.read(Q);
    const outcome = read.then(() => "answered", (e) => e.constructor.name);
    // The rest elect a new leader and write; the old leader must not answer its read.
    await c.sleep(2000);
    const l2 = await c.checkOneLeader();
    assert.notEqual(l2, l);
    await c.one(enc("v3"), 2, true);
    assert.equal(await outcome, "NotLeaderError");
  } finally {
    await c.cleanup();
  }
});
