// stop() leaves nothing behind: waiting proposals and reads fail with NodeStoppedError, event
// iterators end, and no timer stays scheduled (in virtual time, and in real time where Deno's
// sanitizers would see a leaked one).
import assert from "node:assert/strict";
import { NodeStoppedError, RaftNode, type StateMachine } from "../../src/node/raft_node.ts";
import { MemoryNetwork } from "../../src/transport/memory_network.ts";
import { RealClock } from "../../src/node/clock.ts";
import { GatedStorage, settle, SoloNode } from "./solo_node.ts";

const enc = new TextEncoder();
const sm: StateMachine = { apply: () => {}, query: () => new Uint8Array(0) };

Deno.test("stop: proposals and reads fail with NodeStoppedError, events end, timers are cancelled", async () => {
  const s = await SoloNode.start({ stateMachine: sm, proposalTimeoutMs: 5000 });
  const events = s.node.events();
  assert.equal((await events.next()).value?.type, "state");
  // Nothing commits while the save is held; a read without a commit in the term waits too.
  const read = s.node.read(new Uint8Array(0));
  s.storage.hold();
  const proposals = [s.node.propose(enc.encode("a")), s.node.propose(enc.encode("b"))];
  await s.run(100);
  // The tick and the timeout queue (one timer for every waiting proposal and read).
  assert.ok(s.clock.pendingTimers() >= 2, "tick and proposal timeouts");
  s.storage.release();
  const stopping = s.node.stop();
  for (const p of [read, ...proposals]) await assert.rejects(p, NodeStoppedError);
  await stopping;
  assert.deepEqual(await events.next(), { value: undefined, done: true });
  assert.equal(s.clock.pendingTimers(), 0, "a timer outlived stop()");
  assert.equal(s.node.status().running, false);
  await assert.rejects(s.node.propose(enc.encode("c")), NodeStoppedError);
  assert.throws(() => s.node.start(enc.encode("c")), NodeStoppedError);
  await assert.rejects(s.node.read(new Uint8Array(0)), NodeStoppedError);
  // The two proposals abandoned by stop() count as failed (calls on a stopped node do not).
  assert.equal(s.node.metrics().proposalsFailed, 2);
});

Deno.test("stop: in real time, a node with waiting proposals stops without leaking a timer", async () => {
  const clock = new RealClock();
  // A lone server sends nothing, so the network never schedules a delivery.
  const net = new MemoryNetwork({ scheduler: clock, random: () => 0.5 });
  const storage = new GatedStorage();
  const node = await RaftNode.start({
    id: "r",
    peers: ["r"],
    storage,
    transport: net.transport("r"),
    clock,
    tickMs: 2,
    heartbeatMs: 4,
    electionMinMs: 10,
    electionMaxMs: 20,
    stateMachine: sm,
  });
  try {
    for (let i = 0; i < 500 && !node.state().isLeader; i++) {
      await new Promise((r) => setTimeout(r, 2));
    }
    assert.ok(node.state().isLeader, "a lone server did not elect itself");
    storage.hold();
    const p = node.propose(enc.encode("x"));
    await settle();
    storage.release();
    await node.stop();
    // Either it made it before stop() or stop() rejected it; it never hangs.
    await p.catch((e) => assert.ok(e instanceof NodeStoppedError, String(e)));
  } finally {
    storage.release();
    await node.stop();
  }
});
