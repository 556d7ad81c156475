// InstallSnapshot and compaction in the core, message by message.
import assert from "node:assert/strict";
import { RaftCore } from "../../src/core/raft.ts";
import type { Message, SnapshotChunk } from "../../src/core/types.ts";
import { fnv1a32 } from "../../src/core/checksum.ts";
import { enc, Trio } from "./core_trio.ts";

Deno.test("compact at the last index keeps the log usable and replication going", () => {
  const t = new Trio();
  t.elect("a");
  t.propose("a", 5);
  const a = t.core("a");
  assert.equal(a.status().commit, 5);
  assert.ok(a.compact(5, enc("state@5")));
  t.run();
  assert.equal(a.status().snapshotIndex, 5);
  assert.equal(a.status().firstIndex, 6);
  assert.equal(a.termAt(5), a.term);
  t.propose("a", 3);
  assert.equal(t.core("b").status().commit, 8);
  assert.deepEqual(t.applied.get("b"), [1, 2, 3, 4, 5, 6, 7, 8]);
  // An older or equal snapshot changes nothing.
  assert.equal(a.compact(5, enc("again")), false);
  assert.equal(a.compact(3, enc("older")), false);
});

Deno.test("compact beyond what was handed out for applying is refused", () => {
  const t = new Trio();
  t.elect("a");
  t.core("a").propose(enc("x"));
  assert.throws(() => t.core("a").compact(1, enc("s")), RangeError);
});

Deno.test("a follower behind the leader's compacted log gets the snapshot in chunks", () => {
  const t = new Trio({ chunk: 4, window: 2 });
  t.elect("a");
  const isC = (m: Message) => m.to === "c" || m.from === "c";
  t.propose("a", 1);
  // c falls behind; the leader compacts past it.
  for (let i = 0; i < 6; i++) t.core("a").propose(enc(`late${i}`));
  t.run(isC);
  const data = enc("0123456789abcdefghij"); // 20 bytes: 5 chunks of 4
  assert.ok(t.core("a").compact(7, data));
  t.run(isC);
  const sent: SnapshotChunk[] = [];
  t.tickLeader("a", 3, (m) => {
    if (m.type === "snap") sent.push(m);
    return false;
  });
  const c = t.core("c");
  assert.equal(c.status().snapshotIndex, 7);
  assert.equal(c.status().commit, 7);
  assert.deepEqual(t.restored.get("c"), [7]);
  // Each byte went once: the query, then 5 chunks.
  const bytes = sent.reduce((n, m) => n + m.data.length, 0);
  assert.equal(bytes, data.length);
  assert.equal(sent.filter((m) => m.data.length > 0).length, 5);
  // And replication resumes after the snapshot.
  t.propose("a", 2);
  assert.equal(c.status().commit, 9);
});

Deno.test("duplicate and out-of-order chunks are ignored; the receiver reports what it holds", () => {
  const c = new RaftCore({ id: "c", voters: ["a", "b", "c"], seed: 1 });
  const data = enc("abcdefgh");
  const base = {
    type: "snap" as const,
    from: "a",
    to: "c",
    term: 1,
    snapshot: { index: 10, term: 1, voters: ["a", "b", "c"] },
    size: data.length,
    checksum: fnv1a32(data),
  };
  const acks: number[] = [];
  const step = (offset: number, len: number) => {
    c.step({ ...base, offset, data: data.subarray(offset, offset + len) });
    const rd = c.ready();
    for (const m of rd.messages) {
      if (m.type === "snapResp") acks.push(m.received);
      if (m.type === "appResp") acks.push(-m.index);
    }
    c.advance(rd);
  };
  step(4, 4); // past a gap: ignored
  step(0, 4);
  step(0, 4); // duplicate: ignored
  step(4, 4); // completes
  assert.deepEqual(acks, [0, 4, 4, -10]);
  assert.equal(c.status().commit, 10);
  assert.equal(c.status().snapshotIndex, 10);
});

Deno.test("a snapshot no newer than the follower's commit is not installed", () => {
  const t = new Trio();
  t.elect("a");
  t.propose("a", 4);
  const b = t.core("b");
  const data = enc("old");
  b.step({
    type: "snap",
    from: "a",
    to: "b",
    term: t.core("a").term,
    snapshot: { index: 2, term: 1, voters: t.ids },
    size: data.length,
    checksum: fnv1a32(data),
    offset: 0,
    data,
  });
  const rd = b.ready();
  b.advance(rd);
  assert.equal(rd.snapshot, undefined);
  assert.equal(rd.restore, undefined);
  assert.equal(b.status().snapshotIndex, 0);
  const resp = rd.messages.find((m) => m.type === "appResp");
  assert.ok(resp && resp.type === "appResp" && !resp.reject && resp.index === 4);
});

Deno.test("a transfer resumes after a dropped chunk without resending acknowledged bytes", () => {
  const t = new Trio({ chunk: 4, window: 1 });
  t.elect("a");
  const isC = (m: Message) => m.to === "c" || m.from === "c";
  for (let i = 0; i < 4; i++) t.core("a").propose(enc(`x${i}`));
  t.run(isC);
  const data = enc("0123456789abcdef"); // 4 chunks
  t.core("a").compact(4, data);
  t.run(isC);
  // Let the query and two chunks through, then lose the third chunk.
  const offsets: number[] = [];
  let dropped = false;
  t.tickLeader("a", 1, (m) => {
    if (m.type !== "snap") return false;
    if (m.offset === 8 && !dropped) {
      dropped = true;
      return true;
    }
    if (m.data.length > 0) offsets.push(m.offset);
    return false;
  });
  assert.ok(dropped);
  assert.notEqual(t.core("c").status().snapshotIndex, 4);
  // The heartbeat-driven timeout resends from the acknowledged offset, not from 0.
  for (let i = 0; i < 12; i++) {
    t.core("a").tick();
    t.run((m) => {
      if (m.type === "snap" && m.data.length > 0) offsets.push(m.offset);
      return false;
    });
  }
  assert.equal(t.core("c").status().snapshotIndex, 4);
  assert.deepEqual(offsets, [0, 4, 8, 12]);
});

Deno.test("after a leader change the new leader resumes the transfer where it stopped", () => {
  // a and b both compact at the same point (the same state), so their snapshots are identical.
  const t = new Trio({ chunk: 4, window: 1 });
  t.elect("a");
  const isC = (m: Message) => m.to === "c" || m.from === "c";
  for (let i = 0; i < 4; i++) t.core("a").propose(enc(`x${i}`));
  t.run(isC);
  t.run(isC); // commit reaches b
  const data = enc("0123456789abcdef");
  t.core("a").compact(4, data);
  t.core("b").compact(4, data);
  t.run(isC);
  // a sends the first two chunks to c, then dies.
  let delivered = 0;
  t.tickLeader("a", 1, (m) => {
    if (m.from === "a" && m.type === "snap" && m.data.length > 0) {
      delivered++;
      return delivered > 2;
    }
    return false;
  });
  assert.equal(delivered, 3);
  const cStatus = t.core("c").status();
  assert.equal(cStatus.snapshotIndex, 0);
  // b takes over and sends the rest: only offsets 8 and 12.
  t.cores.delete("a");
  const offsets: number[] = [];
  t.inbox = t.inbox.filter((m) => m.to !== "a" && m.from !== "a");
  // c must stop hearing from a before it grants b a vote (check-quorum leases).
  for (let i = 0; i < 30; i++) t.core("c").tick();
  t.core("b").campaign();
  t.run((m) => {
    if (m.to === "a") return true;
    if (m.type === "snap" && m.data.length > 0) offsets.push(m.offset);
    return false;
  });
  assert.equal(t.core("b").role, "leader");
  assert.equal(t.core("c").status().snapshotIndex, 4);
  assert.deepEqual(offsets, [8, 12]);
});

Deno.test("a leader that compacts again before the transfer starts sends the newer snapshot", () => {
  const t = new Trio({ chunk: 64, window: 1 });
  t.elect("a");
  const isC = (m: Message) => m.to === "c" || m.from === "c";
  for (let i = 0; i < 4; i++) t.core("a").propose(enc(`x${i}`));
  t.run(isC);
  t.core("a").compact(2, enc("state@2"));
  // The query goes out but is lost; the leader compacts again.
  t.tickLeader("a", 1, (m) => isC(m) || (m.type === "snap"));
  for (let i = 0; i < 3; i++) t.core("a").propose(enc(`y${i}`));
  t.run(isC);
  t.core("a").compact(6, enc("state@6"));
  for (let i = 0; i < 12; i++) {
    t.core("a").tick();
    t.run();
  }
  assert.equal(t.core("c").status().snapshotIndex, 6);
  assert.equal(t.core("c").status().commit, 7);
});
