/**
 * Clusters of real `floe node` processes (FileStorage in temp directories, WebSockets on
 * loopback): they elect a leader, replicate writes made over HTTP to any node, and survive
 * SIGKILL. A killed follower restarted from its directory catches up (its applied index reaches
 * the leader's commit and its stale reads see every write); a killed leader is replaced and no
 * acknowledged write is lost.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ProcessCluster } from "../../src/testing/process_cluster.ts";
import { readValue, SessionWriter } from "./node_http.ts";

/** Write `count` keys named `prefix`-i through the given nodes in turn; returns what was acked. */
async function writeKeys(
  writer: SessionWriter,
  bases: readonly string[],
  prefix: string,
  count: number,
  acked: Map<string, string>,
): Promise<void> {
  for (let i = 0; i < count; i++) {
    const key = `${prefix}-${i}`;
    const value = `${prefix}:${i}:${writer.clientId.slice(0, 8)}`;
    // Start each write at a different node, so followers forward some of them.
    const rotated = [...bases.slice(i % bases.length), ...bases.slice(0, i % bases.length)];
    await writer.put(rotated, key, value);
    acked.set(key, value);
  }
}

/** Every acknowledged write, read back from `base` with `consistency`. */
async function assertAllVisible(
  base: string,
  acked: ReadonlyMap<string, string>,
  consistency: "linearizable" | "stale",
): Promise<void> {
  for (const [key, value] of acked) {
    assert.equal(await readValue(base, key, consistency), value, `${key} at ${base}`);
  }
}

async function leaderCommit(cluster: ProcessCluster, leader: string): Promise<number> {
  const s = await cluster.status(leader);
  assert.ok(s, `${leader} answers /status`);
  return s.commit;
}

Deno.test({
  name: "3 processes: elect, replicate over HTTP, a SIGKILLed follower catches up, a SIGKILLed " +
    "leader is replaced without losing an acknowledged write",
  async fn() {
    const cluster = await ProcessCluster.start({ size: 3 });
    try {
      const leader = await cluster.waitForLeader();
      const urls = cluster.ids.map((id) => cluster.url(id));
      const writer = new SessionWriter();
      const acked = new Map<string, string>();
      await writeKeys(writer, urls, "a", 30, acked);

      // A follower dies; the other two keep taking writes.
      const follower = cluster.ids.find((id) => id !== leader)!;
      await cluster.kill(follower);
      const up = cluster.running().map((id) => cluster.url(id));
      await writeKeys(writer, up, "b", 30, acked);

      // Restarted from its directory, it catches up with the leader's commit.
      await cluster.startNode(follower);
      await cluster.waitForApplied(follower, await leaderCommit(cluster, leader));
      await assertAllVisible(cluster.url(follower), acked, "stale");

      // The leader dies: a new one is elected and every acknowledged write is still there.
      await cluster.kill(leader);
      const next = await cluster.waitForLeader({ excluding: [leader] });
      await assertAllVisible(cluster.url(next), acked, "linearizable");
      await writeKeys(writer, [cluster.url(next)], "c", 10, acked);

      // The old leader comes back as a follower and catches up too.
      await cluster.startNode(leader);
      await cluster.waitForApplied(leader, await leaderCommit(cluster, next));
      await assertAllVisible(cluster.url(leader), acked, "stale");

      // SIGTERM stops a node cleanly.
      const status = await cluster.kill(follower, "SIGTERM");
      assert.equal(status?.code, 0, `${follower} exit status after SIGTERM`);
    } finally {
      await cluster.close();
    }
  },
});

Deno.test({
  name: "5 processes: the leader and a follower SIGKILLed together; the other three elect, " +
    "keep every acknowledged write and take more; both restarted catch up",
  async fn() {
    const cluster = await ProcessCluster.start({ size: 5 });
    try {
      const leader = await cluster.waitForLeader();
      const writer = new SessionWriter();
      const acked = new Map<string, string>();
      await writeKeys(writer, cluster.ids.map((id) => cluster.url(id)), "a", 25, acked);

      const follower = cluster.ids.find((id) => id !== leader)!;
      await Promise.all([cluster.kill(leader), cluster.kill(follower)]);
      const next = await cluster.waitForLeader({ excluding: [leader, follower] });
      await assertAllVisible(cluster.url(next), acked, "linearizable");
      await writeKeys(writer, cluster.running().map((id) => cluster.url(id)), "b", 25, acked);

      await Promise.all([cluster.startNode(leader), cluster.startNode(follower)]);
      const commit = await leaderCommit(cluster, next);
      for (const id of [leader, follower]) {
        await cluster.waitForApplied(id, commit);
        await assertAllVisible(cluster.url(id), acked, "stale");
      }
    } finally {
      await cluster.close();
    }
  },
});
