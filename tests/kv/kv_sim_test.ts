// KvStateMachine under the simulator: three servers, clients with sessions that retry through a
// leader crash and a partition, then every replica holds the same state and reads see the last
// writes. Replay a failure with FLOE_SEED=<seed>.
import assert from "node:assert/strict";
import { decodeKvCommand, type KvCommand, type KvWriteResult } from "../../src/kv/kv_command.ts";
import { KvStateMachine } from "../../src/kv/kv_state_machine.ts";
import { KvSimClient } from "../../src/testing/kv_sim_client.ts";
import type { Random } from "../../src/testing/random.ts";
import type { SimCluster } from "../../src/testing/sim_cluster.ts";
import { withCluster } from "../scenario/seeded.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const bytes = (s: string) => new TextEncoder().encode(s);

/**
 * A client that retries with its session until answered. One reply in ten is lost on its way
 * back, so the client sends the same command again: it must not apply twice.
 */
function clerk(c: SimCluster, id: string, random: Random): KvSimClient {
  return new KvSimClient(c, {
    id,
    attemptTimeoutMs: 500,
    giveUpAfterMs: 600_000,
    lose: (leg) => leg === "reply" && random.chance(0.1),
  });
}

async function write(client: KvSimClient, cmd: KvCommand): Promise<KvWriteResult> {
  const r = await client.write(cmd);
  assert.ok(r, `${client.id}: ${cmd.op} ${cmd.key} was never answered`);
  return r;
}

// Each server's current state machine (a restart builds a fresh one that replays the log), and
// how many commands it was handed a second time.
const kvs: KvStateMachine[] = [];
const duplicates = [0, 0, 0];

Deno.test("kv sim: replicas agree and reads see the last writes after a leader crash", async () => {
  await withCluster("kv sim", {
    servers: 3,
    seed: 42,
    node: { leaderNoop: true },
    stateMachine: (i) => {
      const kv = kvs[i] = new KvStateMachine();
      const seen = new Set<string>();
      return {
        // Counts commands committed more than once (the retries sessions must absorb).
        apply(command: Uint8Array, index: number) {
          const s = decodeKvCommand(command).session!;
          const id = `${s.client}/${s.seq}`;
          if (seen.has(id)) duplicates[i]++;
          seen.add(id);
          return kv.apply(command, index);
        },
        query: (q: Uint8Array) => kv.query(q),
        restore: (data: Uint8Array, index: number) => kv.restore(data, index),
      };
    },
  }, async (c) => {
    const random = c.random.fork();
    await c.checkOneLeader();
    const clerks = ["alice", "bob", "carol"].map((id) => clerk(c, id, random.fork()));
    const appended = new Map<string, string>();
    const lastPut = new Map<string, string>();
    let increments = 0;
    let done = 0;

    const run = async (clerk: KvSimClient, ops: number) => {
      for (let op = 0; op < ops; op++) {
        switch (random.int(3)) {
          case 0: { // the lab's Append: each must land exactly once, in order
            const piece = `${clerk.id}:${op};`;
            const r = await write(clerk, {
              op: "append",
              key: `log/${clerk.id}`,
              value: bytes(piece),
            });
            assert.equal(r.status, "ok");
            appended.set(clerk.id, (appended.get(clerk.id) ?? "") + piece);
            break;
          }
          case 1: { // a put to a key shared by everyone
            const key = `shared/${random.int(4)}`;
            const v = `${clerk.id}@${op}`;
            const r = await write(clerk, { op: "put", key, value: bytes(v) });
            assert.equal(r.status, "ok");
            lastPut.set(key, v);
            break;
          }
          default: { // compare-and-swap increment of a shared counter
            for (let tries = 0;; tries++) {
              assert.ok(tries < 100, "CAS never succeeded");
              const cur = await clerk.get("counter");
              const n = cur ? Number(text(cur.value)) : 0;
              assert.ok(cur !== undefined, "the counter's read was never answered");
              const r = await write(clerk, {
                op: "put",
                key: "counter",
                value: bytes(String(n + 1)),
                condition: { revision: cur?.revision ?? 0 },
              });
              if (r.status === "ok") break;
              assert.equal(r.status, "failed-condition");
            }
            increments++;
          }
        }
        done++;
      }
    };

    const nemesis = async () => {
      // Crash the leader mid-run, bring it back, then cut the next leader off for a while.
      while (done < 100) await c.sleep(20);
      const l1 = await c.checkOneLeader();
      await c.crash1(l1);
      while (done < 180) await c.sleep(20);
      await c.start1(l1);
      c.connect(l1);
      // Lost, delayed and reordered messages: proposals time out and are retried.
      c.setUnreliable(true);
      while (done < 240) await c.sleep(20);
      c.setUnreliable(false);
      const l2 = await c.checkOneLeader();
      c.disconnect(l2);
      await c.sleep(1500);
      c.connect(l2);
    };

    await Promise.all([...clerks.map((k) => run(k, 100)), nemesis()]);
    assert.equal(done, 300);
    assert.ok(clerks.some((k) => k.stats.retries > 0), "the faults should have made someone retry");
    assert.ok(clerks.some((k) => k.stats.lostReplies > 0), "some replies should have been lost");
    assert.ok(duplicates.every((n) => n > 0), "every replica should have seen duplicates");

    // Every replica converges to the same bytes.
    let snapshots: Uint8Array[] = [];
    for (let t = 0; t < 200; t++) {
      await c.sleep(50);
      snapshots = kvs.map((kv) => kv.snapshot());
      if (snapshots.every((s) => equalBytes(s, snapshots[0]))) break;
    }
    for (let i = 1; i < kvs.length; i++) {
      assert.ok(equalBytes(snapshots[i], snapshots[0]), `server ${i} differs from server 0`);
    }

    // Exactly-once: each append appears once, in order; the counter counts every increment.
    const reader = clerk(c, "reader", random.fork());
    for (const clerk of clerks) {
      const entry = await reader.get(`log/${clerk.id}`);
      assert.equal(entry && text(entry.value), appended.get(clerk.id));
    }
    for (const [key, v] of lastPut) assert.equal(text((await reader.get(key))!.value), v);
    assert.equal(text((await reader.get("counter"))!.value), String(increments));
    for (const kv of kvs) {
      assert.equal(text(kv.get("counter")!.value), String(increments));
      assert.equal(kv.sessionCount, 3);
    }
  });
});

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
