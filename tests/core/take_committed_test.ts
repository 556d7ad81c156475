// RaftCore.takeCommitted: a driver whose save is in flight applies what was committed meanwhile,
// but only entries durable on this server, in order, none twice.
import assert from "node:assert/strict";
import { enc, Trio } from "./core_trio.ts";

Deno.test("takeCommitted: hands out entries committed and durable here, once each, in order", () => {
  const t = new Trio();
  t.elect("a");
  t.propose("a", 2);
  const a = t.core("a");
  const applied = t.applied.get("a")!.slice();
  // A Ready with a new entry is being saved (not advanced yet); the followers store and ack it.
  a.propose(enc("x"));
  const rd = a.ready();
  const index = rd.entries[rd.entries.length - 1].index;
  for (const m of rd.messages) t.core(m.to).step(m);
  for (const id of ["b", "c"]) {
    const f = t.core(id);
    while (f.hasReady()) {
      const frd = f.ready();
      for (const m of frd.messages) if (m.to === "a") a.step(m);
      f.advance(frd);
    }
  }
  assert.equal(a.commitIndex, index, "committed by the two followers");
  assert.deepEqual(a.takeCommitted(), [], "not durable on the leader yet");
  a.advance(rd);
  const taken = a.takeCommitted().map((e) => e.index);
  assert.deepEqual(taken, [index]);
  assert.deepEqual(a.takeCommitted(), [], "none twice");
  // The next Ready does not hand it out again either.
  const next = a.ready();
  assert.ok(next.committed.every((e) => e.index > index));
  a.advance(next);
  assert.ok(applied.every((i) => i < index));
});
