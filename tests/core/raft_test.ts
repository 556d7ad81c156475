/**
 * Unit tests of `RaftCore` (src/core/raft.ts), driven directly in the etcd-raft style: several
 * cores, a hand-run network that carries each `Ready`'s messages, an in-memory "disk" per server
 * and explicit ticks. Every `Ready` is checked against the driver contract as it is handled: a
 * granted vote or an append acknowledgement may only leave once what it promises is persisted.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { RaftConfig } from "../../src/core/config.ts";
import { NotLeaderError } from "../../src/core/errors.ts";
import { LogInvariantError } from "../../src/core/log.ts";
import { RaftCore } from "../../src/core/raft.ts";
import type {
  AppendRequest,
  Entry,
  HardState,
  Message,
  NodeId,
  PersistedState,
  Ready,
} from "../../src/core/types.ts";
import { EMPTY_HARD_STATE } from "../../src/core/types.ts";

// ---- harness ------------------------------------------------------------------------------------

const enc = new TextEncoder();
const dec = new TextDecoder();
const cmd = (s: string): Uint8Array => enc.encode(s);
const text = (e: Entry): string => dec.decode(e.data);

function ent(index: number, term: number, s = ""): Entry {
  return { index, term, data: cmd(s) };
}

/** Entries `from..` with the given terms. */
function ents(from: number, terms: number[]): Entry[] {
  return terms.map((t, i) => ent(from + i, t, `e${from + i}t${t}`));
}

function persisted(term: number, entries: Entry[], vote = "", commit = 0): PersistedState {
  return { hardState: { term, vote, commit }, entries };
}

/** What one server has on disk. */
interface Disk {
  hardState: HardState;
  entries: Entry[];
}

/** Settings for tests: short timeouts so elections take few ticks. */
const TIMING = { electionTicks: 10, electionTicksMax: 20, heartbeatTicks: 2 };

/**
 * A hand-run cluster of cores. Messages sent go to `inflight`; `deliver` steps them into their
 * receivers. Each `Ready` is persisted to the server's `Disk`, checked against the contract,
 * applied (recorded in `applied`), and advanced.
 */
class Net {
  readonly cores = new Map<NodeId, RaftCore>();
  readonly disks = new Map<NodeId, Disk>();
  readonly applied = new Map<NodeId, Entry[]>();
  readonly configs = new Map<NodeId, RaftConfig>();
  /** Every message any server sent, in order. */
  readonly sent: Message[] = [];
  /** Messages sent and not yet delivered. */
  inflight: Message[] = [];
  readonly #isolated = new Set<NodeId>();
  /** Servers whose `Ready` the test holds itself: `process` leaves them alone. */
  readonly held = new Set<NodeId>();

  constructor(
    readonly ids: NodeId[],
    options: Partial<RaftConfig> = {},
    state: Record<NodeId, PersistedState> = {},
    seedBase = 1,
  ) {
    ids.forEach((id, i) => {
      const config: RaftConfig = { ...TIMING, ...options, id, voters: ids, seed: seedBase + i };
      this.configs.set(id, config);
      const p = state[id];
      this.disks.set(id, {
        hardState: p?.hardState ?? EMPTY_HARD_STATE,
        entries: p ? [...p.entries] : [],
      });
      this.cores.set(id, new RaftCore(config, p));
      this.applied.set(id, []);
    });
  }

  core(id: NodeId): RaftCore {
    return this.cores.get(id)!;
  }

  /** Crash and restart `id` from its disk; `applied` is what its state machine still reflects. */
  restart(id: NodeId, applied = 0): RaftCore {
    const disk = this.disks.get(id)!;
    const core = new RaftCore({ ...this.configs.get(id)!, applied }, {
      hardState: disk.hardState,
      entries: [...disk.entries],
    });
    this.cores.set(id, core);
    this.inflight = this.inflight.filter((m) => m.from !== id);
    return core;
  }

  isolate(id: NodeId): void {
    this.#isolated.add(id);
  }

  heal(): void {
    this.#isolated.clear();
  }

  #blocked(m: Message): boolean {
    return this.#isolated.has(m.from) || this.#isolated.has(m.to);
  }

  /** Persist, check, send, apply, advance — one `Ready` of `id`. */
  handle(id: NodeId, rd: Ready): Ready {
    const disk = this.disks.get(id)!;
    // A Ready marked `sendFirst` may be sent before it is saved: check against the disk as it was.
    if (rd.sendFirst) { for (const m of rd.messages) checkDurable(disk, m); }
    if (rd.hardState) disk.hardState = rd.hardState;
    if (rd.entries.length > 0) {
      const first = rd.entries[0].index;
      assert.ok(first <= disk.entries.length + 1, `${id}: saved entries leave a gap at ${first}`);
      disk.entries.length = first - 1;
      disk.entries.push(...rd.entries);
    }
    for (const m of rd.messages) {
      assert.equal(m.from, id);
      checkDurable(disk, m);
      this.sent.push(m);
      if (!this.#blocked(m)) this.inflight.push(m);
    }
    const applied = this.applied.get(id)!;
    for (const e of rd.committed) {
      const want = (applied.at(-1)?.index ?? 0) + 1;
      assert.equal(e.index, want, `${id}: applied ${e.index} where ${want} was expected`);
      assert.ok(e.index <= disk.entries.length, `${id}: applied ${e.index} before persisting it`);
      assert.equal(disk.hardState.commit >= e.index, true, `${id}: applied beyond saved commit`);
      applied.push(e);
    }
    this.core(id).advance(rd);
    return rd;
  }

  /** Handle every `Ready` `id` has. */
  process(id: NodeId): void {
    if (this.held.has(id)) return;
    const core = this.core(id);
    for (let n = 0; core.hasReady(); n++) {
      assert.ok(n < 1000, `${id}: hasReady() stays true`);
      this.handle(id, core.ready());
    }
  }

  processAll(): void {
    for (const id of this.ids) this.process(id);
  }

  /** Deliver the messages in flight that match `filter` (others stay), then process. */
  deliver(filter: (m: Message) => boolean = () => true): number {
    const now = this.inflight.filter(filter);
    this.inflight = this.inflight.filter((m) => !filter(m));
    for (const m of now) {
      if (!this.#blocked(m)) this.core(m.to).step(m);
    }
    this.processAll();
    return now.length;
  }

  /** Process and deliver until nothing is in flight. */
  stabilize(): void {
    this.processAll();
    for (let round = 0; this.inflight.length > 0; round++) {
      assert.ok(round < 1000, "the cluster does not settle");
      this.deliver();
    }
  }

  /** `n` rounds of: tick every server once, then settle. */
  tickAll(n: number): void {
    for (let i = 0; i < n; i++) {
      for (const id of this.ids) this.core(id).tick();
      this.stabilize();
    }
  }

  /** Make `id` leader by forcing its campaign. */
  elect(id: NodeId): void {
    this.core(id).campaign();
    this.stabilize();
    assert.equal(this.core(id).role, "leader", `${id} failed to become leader`);
  }

  leaders(): NodeId[] {
    return this.ids.filter((id) => this.core(id).role === "leader");
  }

  /** Propose on `id` and settle. */
  propose(id: NodeId, s: string): Entry {
    const { index, term } = this.core(id).propose(cmd(s));
    this.stabilize();
    return { index, term, data: cmd(s) };
  }
}

/** A message that promises durable state may only leave once that state is on disk. */
function checkDurable(disk: Disk, m: Message): void {
  if (m.type === "prevote" || m.type === "prevoteResp") return;
  assert.ok(
    disk.hardState.term >= m.term,
    `${m.from} sent ${m.type} at term ${m.term} before persisting that term`,
  );
  if (m.type === "voteResp" && !m.reject) {
    assert.equal(
      disk.hardState.term,
      m.term,
      `${m.from} granted a vote before persisting the term`,
    );
    assert.equal(disk.hardState.vote, m.to, `${m.from} granted a vote before persisting it`);
  }
  if (m.type === "vote") {
    assert.equal(disk.hardState.vote, m.from, `${m.from} asked for votes before voting for itself`);
  }
  if (m.type === "appResp" && !m.reject) {
    assert.ok(
      disk.entries.length >= m.index,
      `${m.from} acknowledged index ${m.index} with ${disk.entries.length} entries on disk`,
    );
  }
}

function lastIndexes(net: Net): number[] {
  return net.ids.map((id) => net.core(id).status().lastIndex);
}

function appsTo(msgs: readonly Message[], to: NodeId): AppendRequest[] {
  return msgs.filter((m): m is AppendRequest => m.type === "app" && m.to === to);
}

// ---- elections ----------------------------------------------------------------------------------

Deno.test("RaftCore: a single-node cluster elects itself and commits its proposals", () => {
  const net = new Net(["a"]);
  const a = net.core("a");
  let ticks = 0;
  while (a.role !== "leader") {
    assert.ok(ticks++ <= TIMING.electionTicksMax, "no election within electionTicksMax");
    a.tick();
    net.process("a");
  }
  assert.equal(a.term, 1);
  assert.equal(a.leader, "a");
  assert.deepEqual(net.disks.get("a")!.hardState, { term: 1, vote: "a", commit: 0 });

  const p = a.propose(cmd("x"));
  assert.deepEqual(p, { index: 1, term: 1 });
  const rd = a.ready();
  assert.deepEqual(rd.entries.map((e) => e.index), [1]);
  assert.deepEqual(rd.committed, [], "not committed before it is durable");
  assert.equal(a.status().commit, 0);
  net.handle("a", rd);
  assert.equal(a.status().commit, 1, "durable on the only voter: committed");
  net.process("a");
  assert.deepEqual(net.applied.get("a")!.map(text), ["x"]);
  assert.equal(net.disks.get("a")!.hardState.commit, 1);
  assert.equal(a.hasReady(), false);
});

Deno.test("RaftCore: three nodes elect a leader with pre-vote, terms untouched until it wins", () => {
  const net = new Net(["a", "b", "c"]);
  const [a, b, c] = ["a", "b", "c"].map((id) => net.core(id));
  a.campaign();
  assert.equal(a.role, "precandidate");
  assert.equal(a.term, 0, "a pre-candidate keeps its term");
  net.process("a");
  const prevotes = net.inflight.filter((m) => m.type === "prevote");
  assert.deepEqual(prevotes.map((m) => [m.to, m.term]), [["b", 1], ["c", 1]]);
  net.deliver(); // b and c answer the pre-vote
  assert.equal(b.term, 0, "granting a pre-vote changes no term");
  assert.equal(c.term, 0);
  assert.equal(net.disks.get("b")!.hardState.vote, "");
  net.stabilize();
  assert.equal(a.role, "leader");
  assert.equal(a.term, 1);
  for (const f of [b, c]) {
    assert.equal(f.role, "follower");
    assert.equal(f.term, 1);
    assert.equal(f.leader, "a");
  }
  assert.ok(net.sent.some((m) => m.type === "vote" && m.term === 1));
});

Deno.test("RaftCore: three nodes elect a leader without pre-vote", () => {
  const net = new Net(["a", "b", "c"], { preVote: false });
  const a = net.core("a");
  a.campaign();
  assert.equal(a.role, "candidate");
  assert.equal(a.term, 1);
  net.stabilize();
  assert.equal(a.role, "leader");
  assert.deepEqual(net.leaders(), ["a"]);
  assert.equal(net.sent.some((m) => m.type === "prevote"), false);
  assert.equal(net.core("b").leader, "a");
});

Deno.test("RaftCore: ticking alone elects exactly one leader, with or without pre-vote", () => {
  for (const preVote of [true, false]) {
    const net = new Net(["a", "b", "c", "d", "e"], { preVote }, {}, 7);
    net.tickAll(3 * TIMING.electionTicksMax);
    const leaders = net.leaders();
    assert.equal(leaders.length, 1, `preVote=${preVote}: leaders ${leaders}`);
    const term = net.core(leaders[0]).term;
    for (const id of net.ids) {
      assert.equal(net.core(id).term, term);
      assert.equal(net.core(id).leader, leaders[0]);
    }
  }
});

Deno.test("RaftCore: a vote is granted at most once per term", () => {
  const c = new RaftCore({ ...TIMING, id: "c", voters: ["a", "b", "c"], seed: 1, preVote: false });
  const vote = (from: string, term: number): Message => ({
    type: "vote",
    from,
    to: "c",
    term,
    lastIndex: 0,
    lastTerm: 0,
  });
  c.step(vote("a", 1));
  let rd = c.ready();
  assert.deepEqual(rd.hardState, { term: 1, vote: "a", commit: 0 });
  assert.deepEqual(rd.messages.map((m) => [m.type, m.to, m.term, "reject" in m && m.reject]), [
    ["voteResp", "a", 1, false],
  ]);
  c.advance(rd);

  c.step(vote("b", 1));
  rd = c.ready();
  assert.equal(rd.hardState, undefined, "the vote stands");
  assert.deepEqual(rd.messages.map((m) => [m.type, m.to, "reject" in m && m.reject]), [
    ["voteResp", "b", true],
  ]);
  c.advance(rd);

  c.step(vote("a", 1)); // a retries: the same vote again is fine
  rd = c.ready();
  assert.deepEqual(rd.messages.map((m) => [m.to, "reject" in m && m.reject]), [["a", false]]);
  c.advance(rd);

  c.step(vote("b", 2)); // a new term: a new vote
  rd = c.ready();
  assert.deepEqual(rd.hardState, { term: 2, vote: "b", commit: 0 });
  assert.deepEqual(rd.messages.map((m) => [m.to, m.term, "reject" in m && m.reject]), [
    ["b", 2, false],
  ]);
  c.advance(rd);
});

Deno.test("RaftCore: the election restriction refuses a candidate with an older log (§5.4.1)", () => {
  const logs = {
    // c has two entries of term 2; a is behind: shorter at the same last term.
    a: persisted(2, ents(1, [1, 2])),
    b: persisted(2, ents(1, [1, 2, 2])),
    c: persisted(2, ents(1, [1, 2, 2])),
  };
  for (const preVote of [false, true]) {
    const net = new Net(["a", "b", "c"], { preVote }, logs);
    const a = net.core("a");
    a.campaign();
    net.stabilize();
    assert.notEqual(a.role, "leader", `preVote=${preVote}`);
    const answers = net.sent.filter((m) => m.type === "voteResp" || m.type === "prevoteResp");
    assert.equal(answers.length, 2);
    assert.ok(answers.every((m) => "reject" in m && m.reject), "both refuse");
    assert.equal(net.disks.get("b")!.hardState.vote, "", "b recorded no vote");
  }
  // A longer log whose last term is older loses too.
  const net = new Net(["a", "b", "c"], { preVote: false }, {
    a: persisted(3, ents(1, [1, 1, 1, 1, 1])),
    b: persisted(3, ents(1, [1, 3])),
    c: persisted(3, ents(1, [1, 3])),
  });
  net.core("a").campaign();
  net.stabilize();
  assert.notEqual(net.core("a").role, "leader");
  // While b, whose log is up to date, wins.
  net.core("b").campaign();
  net.stabilize();
  assert.equal(net.core("b").role, "leader");
});

Deno.test("RaftCore: a lower-term vote request is ignored; a lower-term pre-vote is refused", () => {
  const c = new RaftCore(
    { ...TIMING, id: "c", voters: ["a", "b", "c"], seed: 1 },
    persisted(5, []),
  );
  c.step({ type: "vote", from: "a", to: "c", term: 4, lastIndex: 9, lastTerm: 4 });
  assert.equal(c.hasReady(), false);
  c.step({ type: "prevote", from: "a", to: "c", term: 4, lastIndex: 9, lastTerm: 4 });
  const rd = c.ready();
  assert.deepEqual(
    rd.messages.map((m) => [m.type, m.to, m.term, "reject" in m && m.reject]),
    [["prevoteResp", "a", 5, true]],
    "refused, with the term the pre-candidate is behind",
  );
  assert.equal(c.term, 5);
  assert.equal(c.status().vote, "");
});

Deno.test("RaftCore: messages not for this server, from itself or from non-members are ignored", () => {
  const c = new RaftCore({ ...TIMING, id: "c", voters: ["a", "b", "c"], seed: 1 });
  const base = { type: "vote", term: 3, lastIndex: 0, lastTerm: 0 } as const;
  c.step({ ...base, from: "a", to: "b" });
  c.step({ ...base, from: "c", to: "c" });
  c.step({ ...base, from: "zz", to: "c" });
  assert.equal(c.term, 0);
  assert.equal(c.hasReady(), false);
});

Deno.test("RaftCore: a candidate that hears from the leader of its term becomes its follower", () => {
  const net = new Net(["a", "b", "c"], { preVote: false });
  const b = net.core("b");
  b.campaign(); // b: candidate of term 1, its requests never delivered
  net.process("b");
  net.inflight = [];
  b.step({
    type: "app",
    from: "a",
    to: "b",
    term: 1,
    prevIndex: 0,
    prevTerm: 0,
    entries: [],
    commit: 0,
  });
  assert.equal(b.role, "follower");
  assert.equal(b.leader, "a");
  assert.equal(b.term, 1);
});

Deno.test("RaftCore: NotLeaderError carries the leader hint", () => {
  const net = new Net(["a", "b", "c"]);
  assert.throws(() => net.core("b").propose(cmd("x")), (e: unknown) => {
    assert.ok(e instanceof NotLeaderError);
    assert.equal(e.leaderHint, undefined, "no leader known yet");
    return true;
  });
  net.elect("a");
  assert.throws(() => net.core("b").propose(cmd("x")), (e: unknown) => {
    assert.ok(e instanceof NotLeaderError);
    assert.equal(e.name, "NotLeaderError");
    assert.equal(e.leaderHint, "a");
    assert.match(e.message, /\ba\b/);
    return true;
  });
});

// ---- the Ready contract -------------------------------------------------------------------------

Deno.test("RaftCore: a granted vote leaves in the same Ready as the hard state recording it", () => {
  for (const preVote of [false, true]) {
    const net = new Net(["a", "b", "c"], { preVote });
    net.core("a").campaign();
    net.process("a");
    net.deliver((m) => m.type === "prevote"); // b and c answer a pre-vote, if any
    net.deliver((m) => m.type === "prevoteResp");
    // Hand a's vote request to b and look at the very next Ready of b.
    const req = net.inflight.find((m) => m.type === "vote" && m.to === "b")!;
    assert.ok(req, `preVote=${preVote}: a asked b for its vote`);
    const b = net.core("b");
    b.step(req);
    const rd = b.ready();
    const grant = rd.messages.find((m) => m.type === "voteResp");
    assert.ok(grant && grant.type === "voteResp" && !grant.reject && grant.to === "a");
    assert.deepEqual(rd.hardState, { term: 1, vote: "a", commit: 0 });
    b.advance(rd);
    assert.equal(b.hasReady(), false);
  }
  // Also when the term is not new: c already knows term 5 and has not voted in it.
  const c = new RaftCore(
    { ...TIMING, id: "c", voters: ["a", "b", "c"], seed: 1 },
    persisted(5, []),
  );
  c.step({ type: "vote", from: "a", to: "c", term: 5, lastIndex: 0, lastTerm: 0 });
  const rd = c.ready();
  assert.deepEqual(rd.messages.map((m) => [m.type, m.to, "reject" in m && m.reject]), [
    ["voteResp", "a", false],
  ]);
  assert.deepEqual(rd.hardState, { term: 5, vote: "a", commit: 0 }, "the vote is persisted");
});

Deno.test("RaftCore: an append acknowledgement leaves in the same Ready as the entries", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const a = net.core("a");
  a.propose(cmd("x"));
  a.propose(cmd("y"));
  net.process("a");
  const app = net.inflight.find((m) => m.type === "app" && m.to === "b" && m.entries.length > 0);
  assert.ok(app);
  net.inflight = [];
  const b = net.core("b");
  b.step(app);
  const rd = b.ready();
  const ack = rd.messages.find((m) => m.type === "appResp");
  assert.ok(ack && ack.type === "appResp" && !ack.reject);
  assert.equal(ack.index, 2);
  assert.deepEqual(rd.entries.map(text), ["x", "y"], "the acknowledged entries");
  b.advance(rd);
  assert.equal(b.status().stabled, 2);
  assert.equal(b.hasReady(), false);
});

Deno.test("RaftCore: only a leader whose term and vote are durable may send before saving", () => {
  const net = new Net(["a", "b", "c"], { preVote: false });
  const a = net.core("a");
  a.campaign();
  const campaign = a.ready();
  assert.equal(campaign.sendFirst, false, "vote requests wait for the saved self-vote");
  assert.deepEqual(campaign.hardState, { term: 1, vote: "a", commit: 0 });
  net.handle("a", campaign);
  net.deliver((m) => m.type === "vote");
  for (const id of ["b", "c"]) {
    const grants = net.sent.filter((m) => m.type === "voteResp" && m.from === id);
    assert.equal(grants.length, 1);
  }
  net.stabilize();
  assert.equal(a.role, "leader");
  a.propose(cmd("x"));
  const rd = a.ready();
  assert.equal(rd.sendFirst, true, "the leader's appends may go before its own save");
  assert.equal(appsTo(rd.messages, "b").length + appsTo(rd.messages, "c").length, 2);
  net.handle("a", rd);
  net.process("a");
  // The followers' acknowledgements may not.
  const app = net.inflight.find((m) => m.type === "app" && m.to === "b")!;
  net.inflight = [];
  const b = net.core("b");
  b.step(app);
  const ack = b.ready();
  assert.ok(ack.messages.some((m) => m.type === "appResp" && !m.reject));
  assert.equal(ack.sendFirst, false);
  b.advance(ack);
});

Deno.test("RaftCore: ready() twice without advance() throws; hasReady() is false when idle", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  for (const id of net.ids) assert.equal(net.core(id).hasReady(), false);
  const a = net.core("a");
  a.propose(cmd("x"));
  const rd = a.ready();
  assert.throws(() => a.ready());
  net.handle("a", rd);
  net.stabilize();
  assert.equal(a.hasReady(), false);
});

// ---- replication and commit ---------------------------------------------------------------------

Deno.test("RaftCore: the leader counts its own entry toward commit only once advance() says durable", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  net.propose("a", "warm-up"); // followers now streaming
  const a = net.core("a");
  const before = a.status().commit;
  const { index } = a.propose(cmd("x"));
  const rd = a.ready(); // carries the entry to persist and the appends to b and c
  net.held.add("a");
  assert.deepEqual(rd.entries.map((e) => e.index), [index]);
  for (const m of rd.messages) net.inflight.push(m); // sent before the leader's own save finished
  // b acknowledges; c is slow.
  net.deliver((m) => m.to === "b");
  net.inflight = net.inflight.filter((m) => m.to !== "c");
  const ack = net.inflight.find((m) => m.type === "appResp" && m.from === "b");
  assert.ok(ack);
  net.inflight = [];
  a.step(ack);
  assert.equal(a.status().commit, before, "b alone is not a quorum while a's copy is not durable");
  // The leader's save completes.
  const disk = net.disks.get("a")!;
  disk.entries.push(...rd.entries);
  if (rd.hardState) disk.hardState = rd.hardState;
  a.advance(rd);
  assert.equal(a.status().commit, index, "a + b is a quorum");
});

Deno.test("RaftCore: two followers' acknowledgements commit before the leader's own save (§10.2.1)", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  net.propose("a", "warm-up");
  const a = net.core("a");
  const { index } = a.propose(cmd("x"));
  const rd = a.ready();
  net.held.add("a");
  net.inflight.push(...rd.messages);
  net.deliver((m) => m.from === "a"); // b and c persist and acknowledge
  for (const m of net.inflight.filter((m) => m.type === "appResp")) a.step(m);
  net.inflight = [];
  assert.equal(a.status().commit, index);
  a.advance(rd);
});

Deno.test("RaftCore: a quorum is needed; a minority of acknowledgements commits nothing", () => {
  const net = new Net(["a", "b", "c", "d", "e"]);
  net.elect("a");
  net.isolate("c");
  net.isolate("d");
  net.isolate("e");
  const before = net.core("a").status().commit;
  net.propose("a", "x");
  assert.equal(net.core("a").status().commit, before);
  net.heal();
  net.isolate("e");
  net.tickAll(TIMING.heartbeatTicks); // the heartbeat answers bring c and d up to date
  assert.equal(net.core("a").status().commit, before + 1);
});

Deno.test("RaftCore: replicas of an old-term entry never commit it by counting (Figure 8)", () => {
  // Figure 8 of the Raft paper: s1 led term 2 and got index 2 to s2 only; s5 led term 3 and wrote
  // its own index 2. Now s1 leads term 4 and replicates its index 2 to a majority.
  const net = new Net(["s1", "s2", "s3", "s4", "s5"], { checkQuorum: false }, {
    s1: persisted(3, ents(1, [1, 2])),
    s2: persisted(3, ents(1, [1, 2])),
    s3: persisted(3, ents(1, [1])),
    s4: persisted(3, ents(1, [1])),
    s5: persisted(3, ents(1, [1, 3])),
  });
  net.isolate("s5");
  net.elect("s1");
  assert.equal(net.core("s1").term, 4);
  net.stabilize();
  for (const id of ["s1", "s2", "s3", "s4"]) {
    assert.equal(net.core(id).termAt(2), 2, `${id} holds s1's index 2`);
  }
  assert.equal(net.core("s1").status().commit, 0, "on a majority, but of term 2: not committed");
  net.tickAll(2 * TIMING.heartbeatTicks);
  assert.equal(net.core("s1").status().commit, 0);
  for (const id of net.ids) assert.deepEqual(net.applied.get(id), []);

  // Which is what makes it safe for s5 (last term 3) to win now and overwrite index 2.
  net.heal();
  net.isolate("s1");
  net.core("s5").campaign(); // refused for term 4, which the others are in: s5 learns term 4
  net.stabilize();
  assert.equal(net.core("s5").term, 4);
  net.elect("s5");
  assert.equal(net.core("s5").term, 5);
  net.propose("s5", "s5's");
  net.heal();
  net.tickAll(2 * TIMING.heartbeatTicks);
  for (const id of net.ids) {
    assert.deepEqual(
      net.applied.get(id)!.map((e) => [e.index, e.term]),
      [[1, 1], [2, 3], [3, 5]],
      `${id} applied s5's log`,
    );
  }
});

Deno.test("RaftCore: an old-term entry commits with the first current-term entry after it", () => {
  const net = new Net(["a", "b", "c"], {}, {
    a: persisted(3, ents(1, [1, 2])),
    b: persisted(3, ents(1, [1])),
    c: persisted(3, ents(1, [1])),
  });
  net.elect("a");
  assert.deepEqual(lastIndexes(net), [2, 2, 2]);
  assert.equal(net.core("a").status().commit, 0);
  net.propose("a", "now");
  assert.equal(net.core("a").status().commit, 3);
  net.tickAll(TIMING.heartbeatTicks);
  for (const id of net.ids) {
    assert.deepEqual(net.applied.get(id)!.map((e) => [e.index, e.term]), [[1, 1], [2, 2], [3, 4]]);
  }
});

Deno.test("RaftCore: committed entries come out of ready() exactly once, in order", () => {
  const net = new Net(["a", "b", "c"], { maxApplyBytes: 8 });
  net.elect("a");
  for (let i = 0; i < 20; i++) {
    net.core("a").propose(cmd(`a${i}`));
    if (i % 3 === 0) net.stabilize();
  }
  net.stabilize();
  // A leader change in the middle of it.
  net.tickAll(TIMING.heartbeatTicks);
  net.isolate("a");
  let leader = "a";
  for (let i = 0; i < 5 * TIMING.electionTicksMax && leader === "a"; i++) {
    net.tickAll(1);
    leader = net.leaders().find((id) => id !== "a") ?? "a";
  }
  assert.notEqual(leader, "a", "b or c took over");
  for (let i = 0; i < 10; i++) net.core(leader).propose(cmd(`b${i}`));
  net.stabilize();
  net.heal();
  net.tickAll(3 * TIMING.electionTicks);
  assert.deepEqual(net.leaders(), [leader]);
  net.core(leader).propose(cmd("last"));
  net.stabilize();
  net.tickAll(TIMING.heartbeatTicks);
  const want = net.applied.get(leader)!.map((e) => `${e.index}:${e.term}:${text(e)}`);
  assert.equal(want.length, 31);
  for (const id of net.ids) {
    const got = net.applied.get(id)!;
    // The harness already checks index continuity on every Ready; here: same sequence everywhere.
    assert.deepEqual(got.map((e) => `${e.index}:${e.term}:${text(e)}`), want, id);
  }
  assert.deepEqual(want.slice(0, 20).map((s) => s.split(":")[2]), [
    ...Array.from({ length: 20 }, (_, i) => `a${i}`),
  ]);
});

Deno.test("RaftCore: maxApplyBytes splits applying across Readies, at least one entry each", () => {
  const net = new Net(["a"], { maxApplyBytes: 10 });
  net.elect("a");
  const a = net.core("a");
  for (let i = 0; i < 4; i++) a.propose(new Uint8Array(6));
  net.handle("a", a.ready()); // persist: all four commit at once
  const sizes: number[] = [];
  while (a.hasReady()) sizes.push(net.handle("a", a.ready()).committed.length);
  assert.deepEqual(sizes, [1, 1, 1, 1], "6 + 6 > 10: one entry per Ready");
  assert.equal(net.applied.get("a")!.length, 4);
});

Deno.test("RaftCore: a divergent follower is repaired in O(terms) rounds, not O(entries)", () => {
  // c's log has 100 entries of term 2 that nobody else has; a and b have 50 of term 3.
  const cases: [string, Entry[], Entry[], number][] = [
    ["follower longer", ents(1, [1, ...Array(50).fill(3)]), ents(1, [1, ...Array(100).fill(2)]), 1],
    [
      "follower shorter",
      ents(1, [1, ...Array(100).fill(3)]),
      ents(1, [1, ...Array(30).fill(2)]),
      1,
    ],
    [
      "several divergent terms",
      ents(1, [1, ...Array(20).fill(2), ...Array(40).fill(5)]),
      ents(1, [1, ...Array(20).fill(2), ...Array(30).fill(3), ...Array(30).fill(4)]),
      2,
    ],
  ];
  for (const [name, leaderLog, followerLog, maxRejections] of cases) {
    const net = new Net(["a", "b", "c"], {}, {
      a: persisted(5, leaderLog),
      b: persisted(5, leaderLog),
      c: persisted(4, followerLog),
    });
    net.elect("a");
    net.stabilize();
    const rejections = net.sent.filter((m) => m.type === "appResp" && m.from === "c" && m.reject);
    assert.ok(
      rejections.length >= 1 && rejections.length <= maxRejections,
      `${name}: ${rejections.length} rejections`,
    );
    const c = net.core("c");
    assert.equal(c.status().lastIndex, leaderLog.length, name);
    for (const e of leaderLog) assert.equal(c.termAt(e.index), e.term, `${name}: index ${e.index}`);
    assert.deepEqual(net.disks.get("c")!.entries, leaderLog, `${name}: c's disk`);
    // And the whole exchange took a handful of appends, not one per entry.
    const appsToC = net.sent.filter((m) => m.type === "app" && m.to === "c").length;
    assert.ok(appsToC <= maxRejections + 2, `${name}: ${appsToC} appends to c`);
  }
});

Deno.test("RaftCore: pipelining sends up to maxInflight appends, then pauses", () => {
  const net = new Net(["a", "b", "c"], { maxInflight: 3 });
  net.elect("a");
  net.propose("a", "warm-up");
  net.tickAll(TIMING.heartbeatTicks);
  const a = net.core("a");
  assert.equal(a.status().progress!.b.state, "replicate");
  const perReady: number[] = [];
  for (let i = 0; i < 6; i++) {
    a.propose(cmd(`p${i}`));
    const rd = net.handle("a", a.ready());
    perReady.push(appsTo(rd.messages, "b").filter((m) => m.entries.length > 0).length);
  }
  assert.deepEqual(perReady, [1, 1, 1, 0, 0, 0], "three in flight, then paused");
  const pb = a.status().progress!.b;
  assert.equal(pb.inflight, 3);
  assert.equal(pb.state, "replicate");
  // b answers the first append only: one slot frees, and the backlog leaves in one append.
  const first = net.inflight.find((m) => m.type === "app" && m.to === "b")!;
  net.inflight = net.inflight.filter((m) => m !== first);
  net.core("b").step(first);
  net.process("b");
  const ack = net.inflight.find((m) => m.type === "appResp" && m.from === "b")!;
  net.inflight = net.inflight.filter((m) => m !== ack);
  a.step(ack);
  const rd = net.handle("a", a.ready());
  const next = appsTo(rd.messages, "b");
  assert.equal(next.length, 1);
  assert.deepEqual(next[0].entries.map(text), ["p3", "p4", "p5"]);
  assert.equal(a.status().progress!.b.inflight, 3);
  net.stabilize();
  assert.deepEqual(lastIndexes(net), [7, 7, 7]);
});

Deno.test("RaftCore: proposals between two ready() calls leave in one append per follower", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  net.propose("a", "warm-up");
  net.tickAll(TIMING.heartbeatTicks);
  const a = net.core("a");
  for (let i = 0; i < 5; i++) a.propose(cmd(`p${i}`));
  const rd = a.ready();
  for (const to of ["b", "c"]) {
    const apps = appsTo(rd.messages, to);
    assert.equal(apps.length, 1, `one append to ${to}`);
    assert.deepEqual(apps[0].entries.map(text), ["p0", "p1", "p2", "p3", "p4"]);
  }
  net.handle("a", rd);
  net.stabilize();
  assert.deepEqual(lastIndexes(net), [6, 6, 6]);
});

Deno.test("RaftCore: maxEntriesPerAppend and maxAppendBytes bound each append", () => {
  const net = new Net(["a", "b", "c"], { maxEntriesPerAppend: 2, maxAppendBytes: 10 });
  net.elect("a");
  net.propose("a", "w");
  net.tickAll(TIMING.heartbeatTicks);
  const a = net.core("a");
  for (let i = 0; i < 5; i++) a.propose(new Uint8Array(4));
  a.propose(new Uint8Array(50)); // larger than maxAppendBytes: goes alone
  const rd = net.handle("a", a.ready());
  const apps = appsTo(rd.messages, "b");
  assert.deepEqual(apps.map((m) => m.entries.length), [2, 2, 1, 1]);
  for (const m of apps) {
    const bytes = m.entries.reduce((n, e) => n + e.data.length, 0);
    assert.ok(m.entries.length === 1 || bytes <= 10);
  }
  net.stabilize();
  assert.deepEqual(lastIndexes(net), [7, 7, 7]);
});

Deno.test("RaftCore: a new leader of an empty log streams the first proposal at once", () => {
  // On a fresh cluster the probe of each follower is acknowledged at index 0, which is also the
  // match the leader already assumes. The leader must still learn that the follower matches
  // and send the next proposal right away, not only after a heartbeat round trip.
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const a = net.core("a");
  a.propose(cmd("first"));
  const rd = a.ready();
  for (const to of ["b", "c"]) {
    const apps = appsTo(rd.messages, to);
    assert.equal(apps.length, 1, `the first proposal goes to ${to} in the same Ready`);
    assert.deepEqual(apps[0].entries.map(text), ["first"]);
  }
});

Deno.test("RaftCore: heartbeats carry the commit index to followers", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  net.propose("a", "x");
  net.tickAll(TIMING.heartbeatTicks);
  for (const id of net.ids) {
    assert.equal(net.core(id).status().commit, 1, id);
    assert.deepEqual(net.applied.get(id)!.map(text), ["x"], id);
    assert.equal(net.disks.get(id)!.hardState.commit, 1, id);
  }
});

// ---- failures -----------------------------------------------------------------------------------

Deno.test("RaftCore: with checkQuorum a leader cut off from a quorum steps down", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  const a = net.core("a");
  net.tickAll(3 * TIMING.electionTicks); // a live quorum: a keeps leading
  assert.equal(a.role, "leader");
  assert.equal(a.term, 1);
  net.isolate("a");
  for (let i = 0; i < 4 * TIMING.electionTicks && a.role === "leader"; i++) {
    a.tick();
    net.process("a");
  }
  assert.equal(a.role, "follower");
  assert.equal(a.leader, "");
  assert.equal(a.term, 1, "stepping down does not start a term");
  assert.throws(() => a.propose(cmd("x")), NotLeaderError);

  // Without checkQuorum it keeps believing it leads.
  const net2 = new Net(["a", "b", "c"], { checkQuorum: false });
  net2.elect("a");
  net2.isolate("a");
  for (let i = 0; i < 5 * TIMING.electionTicks; i++) {
    net2.core("a").tick();
    net2.process("a");
  }
  assert.equal(net2.core("a").role, "leader");
});

Deno.test("RaftCore: with pre-vote a partitioned node neither raises its term nor disrupts", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  net.propose("a", "x");
  net.isolate("c");
  net.tickAll(10 * TIMING.electionTicksMax); // c times out many times over
  const c = net.core("c");
  assert.equal(c.term, 1, "pre-votes never reached a quorum, so no new term");
  assert.notEqual(c.role, "leader");
  assert.ok(net.sent.some((m) => m.type === "prevote" && m.from === "c"), "c did try");
  assert.equal(net.sent.some((m) => m.type === "vote" && m.from === "c"), false);
  net.propose("a", "y"); // the majority goes on without c
  net.heal();
  net.tickAll(3 * TIMING.electionTicks);
  assert.deepEqual(net.leaders(), ["a"]);
  for (const id of net.ids) {
    assert.equal(net.core(id).term, 1, `${id} stayed in term 1`);
    assert.equal(net.core(id).leader, "a");
  }
  assert.deepEqual(net.applied.get("c")!.map(text), ["x", "y"], "c caught up");
});

Deno.test("RaftCore: without pre-vote the same partition does raise terms (control)", () => {
  const net = new Net(["a", "b", "c"], { preVote: false, checkQuorum: false });
  net.elect("a");
  net.isolate("c");
  net.tickAll(5 * TIMING.electionTicksMax);
  assert.ok(net.core("c").term > 1);
  net.heal();
  net.tickAll(5 * TIMING.electionTicksMax);
  assert.ok(net.core("a").term > 1, "the old term was disrupted");
});

Deno.test("RaftCore: lower-term messages are ignored; a stale leader learns the term from hbResp", () => {
  const net = new Net(["a", "b", "c"], { checkQuorum: false });
  net.elect("a");
  net.propose("a", "x");
  net.isolate("a");
  net.elect("b");
  assert.equal(net.core("b").term, 2);
  net.propose("b", "from b");
  const a = net.core("a");
  assert.equal(a.role, "leader", "a has not heard of term 2");
  a.propose(cmd("stale")); // never commits
  net.process("a");
  net.inflight = [];

  // A stale append reaching c changes nothing but earns a rejection at the new term.
  const c = net.core("c");
  const before = c.status();
  c.step({
    type: "app",
    from: "a",
    to: "c",
    term: 1,
    prevIndex: 1,
    prevTerm: 1,
    entries: [ent(2, 1, "stale")],
    commit: 2,
  });
  assert.deepEqual(c.status(), before);
  const rd = c.ready();
  assert.deepEqual(rd.entries, []);
  assert.deepEqual(rd.messages.map((m) => [m.type, m.to, m.term]), [["hbResp", "a", 2]]);
  c.advance(rd);
  assert.equal(c.leader, "b");

  net.heal();
  for (let i = 0; i < TIMING.heartbeatTicks && a.role === "leader"; i++) {
    a.tick();
    net.stabilize();
  }
  assert.equal(a.role, "follower");
  assert.equal(a.term, 2);
  net.tickAll(TIMING.heartbeatTicks);
  assert.equal(a.leader, "b");
  assert.equal(a.termAt(2), 2, "a's stale entry was replaced");
  for (const id of net.ids) {
    assert.deepEqual(net.applied.get(id)!.map(text), ["x", "from b"], id);
  }
});

Deno.test("RaftCore: with checkQuorum a follower in a leader's lease ignores vote requests", () => {
  const net = new Net(["a", "b", "c"], { preVote: false });
  net.elect("a");
  const b = net.core("b");
  b.step({ type: "vote", from: "c", to: "b", term: 9, lastIndex: 5, lastTerm: 5 });
  assert.equal(b.term, 1, "the term did not move");
  assert.equal(b.leader, "a");
  assert.equal(b.hasReady(), false, "no answer at all");
});

// ---- restart and determinism --------------------------------------------------------------------

Deno.test("RaftCore: a restart from persisted state keeps term, vote, log and commit", () => {
  const net = new Net(["a", "b", "c"]);
  net.elect("a");
  for (let i = 0; i < 5; i++) net.propose("a", `x${i}`);
  net.tickAll(TIMING.heartbeatTicks);
  const old = net.core("b").status();
  assert.equal(old.commit, 5);

  const b = net.restart("b");
  const s = b.status();
  assert.equal(s.term, old.term);
  assert.equal(s.vote, old.vote);
  assert.equal(s.vote, "a");
  assert.equal(s.commit, 5);
  assert.equal(s.lastIndex, 5);
  assert.equal(s.stabled, 5);
  assert.equal(s.role, "follower");
  // Nothing to save; the committed log is handed out again to rebuild the state machine.
  const rd = b.ready();
  assert.equal(rd.hardState, undefined);
  assert.deepEqual(rd.entries, []);
  assert.deepEqual(rd.committed.map(text), ["x0", "x1", "x2", "x3", "x4"]);
  b.advance(rd);

  // With `applied`, entries the state machine already reflects are not handed out again.
  const b2 = net.restart("b", 3);
  const rd2 = b2.ready();
  assert.deepEqual(rd2.committed.map(text), ["x3", "x4"]);
  b2.advance(rd2);
  net.applied.set("b", net.applied.get("b")!.slice(0, 5));

  // The restarted server rejoins and keeps up.
  net.propose("a", "after");
  net.tickAll(TIMING.heartbeatTicks);
  assert.equal(b2.status().commit, 6);
  assert.equal(b2.leader, "a");
});

Deno.test("RaftCore: a restarted voter does not vote twice in its term", () => {
  const net = new Net(["a", "b", "c"], { preVote: false });
  const c = net.core("c");
  c.step({ type: "vote", from: "a", to: "c", term: 1, lastIndex: 0, lastTerm: 0 });
  net.process("c");
  const c2 = net.restart("c");
  c2.step({ type: "vote", from: "b", to: "c", term: 1, lastIndex: 0, lastTerm: 0 });
  const rd = c2.ready();
  assert.deepEqual(rd.messages.map((m) => [m.type, "reject" in m && m.reject]), [
    ["voteResp", true],
  ]);
});

Deno.test("RaftCore: a persisted commit beyond the persisted log is refused", () => {
  assert.throws(
    () => new RaftCore({ id: "a", voters: ["a"], seed: 1 }, persisted(2, ents(1, [1, 2]), "a", 3)),
    LogInvariantError,
  );
});

Deno.test("RaftCore: the same seeds give the same sequence of messages", () => {
  const run = (seedBase: number) => {
    const net = new Net(["a", "b", "c", "d", "e"], {}, {}, seedBase);
    for (let round = 0; round < 4; round++) {
      net.tickAll(TIMING.electionTicksMax + 5);
      const [leader] = net.leaders();
      if (leader) net.core(leader).propose(cmd(`r${round}`));
      // Knock out the leader to force another timed election.
      if (leader) net.isolate(leader);
      net.tickAll(3 * TIMING.electionTicksMax);
      net.heal();
    }
    return JSON.stringify(
      net.sent.map((m) =>
        m.type === "app" ? { ...m, entries: m.entries.map((e) => [e.index, e.term, text(e)]) } : m
      ),
    );
  };
  const first = run(100);
  assert.equal(run(100), first);
  assert.notEqual(run(200), first, "another seed, other timeouts");
});
