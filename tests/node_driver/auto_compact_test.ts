// Automatic compaction: with a state machine that can snapshot, the node keeps its log bounded
// by itself, and a restarted server starts from its snapshot.
import assert from "node:assert/strict";
import type { Applied, StateMachine } from "../../src/node/raft_node.ts";
import type { MemoryStorage } from "../../src/storage/memory_storage.ts";
import { SimCluster } from "../../src/testing/sim_cluster.ts";
import { SoloNode } from "./solo_node.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Counts commands and sums their lengths; snapshots as JSON. */
class Tally implements StateMachine {
  count = 0;
  bytes = 0;
  restoredAt: number[] = [];
  snapshots = 0;
  apply(command: Uint8Array): void {
    this.count++;
    this.bytes += command.length;
  }
  snapshot(): Uint8Array {
    this.snapshots++;
    return enc.encode(JSON.stringify({ count: this.count, bytes: this.bytes }));
  }
  restore(data: Uint8Array, index: number): void {
    const s = JSON.parse(dec.decode(data));
    this.count = s.count;
    this.bytes = s.bytes;
    this.restoredAt.push(index);
  }
}

Deno.test("auto compaction: the log stays bounded under a long run, and a restart restores the snapshot", async () => {
  const tallies: Tally[] = [];
  const c = await SimCluster.create({
    servers: 3,
    seed: 21,
    stateMachine: (i) => tallies[i] = new Tally(),
    node: { autoCompact: { logEntries: 50 } },
  });
  try {
    let longest = 0;
    let proposed = 0;
    while (proposed < 1000) {
      const l = await c.checkOneLeader();
      for (let k = 0; k < 20; k++) if (c.start(l, enc.encode(`cmd ${proposed}`))) proposed++;
      await c.sleep(50);
      for (let i = 0; i < 3; i++) longest = Math.max(longest, c.storage(i).entries.length);
    }
    await c.sleep(500);
    // Compaction at 50 applied entries, plus what a batch adds before it is applied.
    assert.ok(longest <= 50 + 2 * 20, `a log held ${longest} entries`);
    for (let i = 0; i < 3; i++) {
      const s = c.node(i)!.status();
      assert.equal(s.applied, 1000);
      assert.ok(s.snapshotIndex >= 950, `${c.ids[i]} snapshot at ${s.snapshotIndex}`);
      assert.equal(c.storage(i).snapshot?.index, s.snapshotIndex, "the snapshot was not saved");
      assert.equal(tallies[i].count, 1000);
      // About one snapshot per 50 entries, never one per entry.
      assert.ok(tallies[i].snapshots <= 1000 / 50, `${tallies[i].snapshots} snapshots`);
    }
    // A restarted server loads its snapshot first, then replays the few entries after it.
    const before = tallies[1].count;
    await c.crash1(1);
    await c.start1(1);
    const restarted = tallies[1];
    const snapIndex = c.storage(1).snapshot!.index;
    assert.deepEqual(restarted.restoredAt, [snapIndex]);
    const items: Applied[] = [];
    const it = c.node(1)!.applied();
    await c.sleep(0);
    for (let r = await Promise.race([it.next(), Promise.resolve(undefined)]); r && !r.done;) {
      items.push(r.value);
      r = await Promise.race([it.next(), Promise.resolve(undefined)]);
    }
    assert.equal(items[0]?.type, "snapshot");
    assert.equal(items[0]?.index, snapIndex);
    assert.equal(restarted.count, before);
    c.connect(1);
    await c.one(enc.encode("after restart"), 3, true);
    assert.equal(restarted.count, 1001);
  } finally {
    await c.cleanup();
  }
});

Deno.test("auto compaction: logBytes bounds the bytes applied since the snapshot", async () => {
  const tally = new Tally();
  const s = await SoloNode.start({
    stateMachine: tally,
    autoCompact: { logEntries: Infinity, logBytes: 1000 },
  });
  try {
    for (let i = 0; i < 30; i++) {
      s.node.start(new Uint8Array(100).fill(i + 1));
      await s.run(10);
    }
    // One entry per batch: a snapshot every 10 entries of 100 bytes.
    assert.equal(tally.snapshots, 3);
    assert.equal(s.node.status().snapshotIndex, 30);
    assert.equal(s.storage.inner.entries.length, 0);
  } finally {
    await s.node.stop();
  }
});

Deno.test("auto compaction: default 10,000 entries; false, or no snapshot(), turns it off", async () => {
  async function run(options: { autoCompact?: false }, sm: StateMachine): Promise<number> {
    const s = await SoloNode.start({ stateMachine: sm, ...options });
    try {
      for (let i = 0; i < 21; i++) {
        for (let k = 0; k < 500; k++) s.node.start(enc.encode("x"));
        await s.run(10);
      }
      assert.equal(s.node.status().applied, 10_500);
      return s.node.status().snapshotIndex;
    } finally {
      await s.node.stop();
    }
  }
  assert.equal(await run({}, new Tally()), 10_000);
  assert.equal(await run({ autoCompact: false }, new Tally()), 0);
  assert.equal(await run({}, { apply: () => {} }), 0);
});

Deno.test("auto compaction: a solo node restarted from compacted storage restores its state", async () => {
  const tally = new Tally();
  const s = await SoloNode.start({ stateMachine: tally, autoCompact: { logEntries: 10 } });
  let saved: MemoryStorage;
  try {
    for (let i = 0; i < 25; i++) s.node.start(enc.encode(`c${i}`));
    await s.run(50);
    assert.equal(s.node.status().snapshotIndex, 25);
  } finally {
    await s.node.stop();
    saved = s.storage.inner.crashCopy();
  }
  const fresh = new Tally();
  const r = await SoloNode.start({ stateMachine: fresh, autoCompact: { logEntries: 10 } }, saved);
  try {
    assert.deepEqual(fresh.restoredAt, [25]);
    assert.equal(fresh.count, 25);
  } finally {
    await r.node.stop();
  }
});
