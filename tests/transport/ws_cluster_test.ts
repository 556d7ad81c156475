/**
 * Real `RaftNode`s (MemoryStorage, real clock, default timing) on `WebSocketTransport`s over
 * loopback: elect, replicate, crash and restart a node, and the same through fault proxies.
 * Safety (Election Safety, Leader Completeness, State Machine Safety, apply order) is checked on
 * every apply by the simulator's `SafetyChecker`.
 *
 * Waits are generous: two cores host three nodes, their sockets and the test.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { NodeId } from "../../src/core/types.ts";
import { RaftNode } from "../../src/node/raft_node.ts";
import { MemoryStorage } from "../../src/storage/memory_storage.ts";
import { SafetyChecker } from "../../src/testing/safety_checker.ts";
import type { WebSocketTransportOptions } from "../../src/transport/websocket_transport.ts";
import { sleep, waitFor } from "./fixtures.ts";
import { Loopback } from "./loopback.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

class WsCluster {
  readonly lb: Loopback;
  readonly ids: NodeId[];
  readonly storages = new Map<NodeId, MemoryStorage>();
  readonly nodes = new Map<NodeId, RaftNode>();
  /** Commands applied per node, by log index (index 0 unused). */
  readonly applied = new Map<NodeId, string[]>();
  readonly checker = new SafetyChecker();
  readonly violations: string[] = [];
  /** Snapshots nodes loaded, in order. */
  readonly snapshots: { id: NodeId; index: number; data: Uint8Array }[] = [];

  private constructor(lb: Loopback, ids: NodeId[]) {
    this.lb = lb;
    this.ids = ids;
  }

  static async start(
    ids: NodeId[],
    options: { proxy?: boolean; transport?: Partial<WebSocketTransportOptions> } = {},
  ): Promise<WsCluster> {
    const lb = Loopback.start(ids.map((id) => ({ id, options: options.transport })), options);
    const c = new WsCluster(lb, ids);
    for (const id of ids) await c.#startNode(id, new MemoryStorage());
    return c;
  }

  async #startNode(id: NodeId, storage: MemoryStorage): Promise<void> {
    this.storages.set(id, storage);
    this.applied.set(id, [""]);
    this.checker.restarted(id, 0);
    const holder: { node?: RaftNode } = {};
    const node = await RaftNode.start({
      id,
      peers: this.ids,
      storage,
      transport: this.lb.node(id).transport,
      onApply: (item) => {
        if (item.type === "snapshot") {
          this.snapshots.push({ id, index: item.index, data: item.data });
          // The snapshot's contents are opaque bytes here; only the apply order is checked on.
          this.#check(() => this.checker.snapshotLoaded(id, item.index, new Map()));
          const log = this.applied.get(id)!;
          for (let i = log.length; i <= item.index; i++) log[i] = "(snapshot)";
          return;
        }
        const log = this.applied.get(id)!;
        log[item.index] = dec.decode(item.command);
        this.#check(() => this.checker.applied(id, item.index, item.term, item.command));
      },
      onStateChange: (s) => {
        const n = holder.node;
        if (s.role !== "leader" || n === undefined) return;
        this.#check(() =>
          this.checker.leaderElected(id, s.term, (i) => n.logTerm(i), n.status().lastIndex)
        );
      },
    });
    holder.node = node;
    this.nodes.set(id, node);
  }

  #check(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.violations.push(String(e));
    }
  }

  leader(): RaftNode | undefined {
    let best: RaftNode | undefined;
    for (const n of this.nodes.values()) {
      const s = n.state();
      if (s.isLeader && (best === undefined || s.term > best.state().term)) best = n;
    }
    return best;
  }

  async waitLeader(timeoutMs = 30_000): Promise<RaftNode> {
    await waitFor("a leader", () => this.leader() !== undefined, timeoutMs);
    return this.leader()!;
  }

  /** Propose every command until each was applied once at least; retries on other leaders. */
  async submitAll(cmds: string[], timeoutMs = 90_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    let pending = cmds;
    while (pending.length > 0) {
      if (performance.now() > deadline) throw new Error(`${pending.length} commands not committed`);
      const leader = await this.waitLeader(Math.max(1, deadline - performance.now()));
      const results = await Promise.allSettled(
        pending.map((c) => withTimeout(leader.propose(enc.encode(c)), 10_000)),
      );
      pending = pending.filter((_, i) => results[i].status === "rejected");
      if (pending.length > 0) await sleep(100);
    }
  }

  /** Wait until every running node applied the same commands up to the highest commit. */
  async waitConverged(timeoutMs = 60_000): Promise<void> {
    await waitFor("logs converge", () => {
      const lens = [...this.nodes.keys()].map((id) => this.applied.get(id)!.length);
      const max = Math.max(...lens);
      return lens.every((l) => l === max) &&
        [...this.nodes.values()].every((n) => n.status().commit === max - 1);
    }, timeoutMs);
    const logs = [...this.nodes.keys()].map((id) => this.applied.get(id)!);
    for (const log of logs.slice(1)) assert.deepEqual(log, logs[0]);
  }

  /** Crash `id`: its storage keeps exactly what was saved; its transport and server go away. */
  async crash(id: NodeId): Promise<void> {
    const copy = this.storages.get(id)!.crashCopy();
    const node = this.nodes.get(id)!;
    this.nodes.delete(id);
    await node.stop();
    await this.lb.stop(id);
    this.storages.set(id, copy);
  }

  /** Restart `id` on its saved state, with a new transport on the same port. */
  async restart(id: NodeId): Promise<void> {
    this.lb.restart(id);
    await this.#startNode(id, this.storages.get(id)!);
  }

  /** Distinct commands applied by `id`. */
  commands(id: NodeId): Set<string> {
    return new Set(this.applied.get(id)!.filter((c) => c.startsWith("cmd-")));
  }

  async close(): Promise<void> {
    for (const n of this.nodes.values()) await n.stop();
    await this.lb.close();
  }
}

function cmds(from: number, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `cmd-${from + i}`);
}

Deno.test({
  name:
    "raft over websockets: 3 nodes elect, replicate 1,000 commands; a crashed node restarts and catches up",
  async fn() {
    const c = await WsCluster.start(["a", "b", "c"]);
    try {
      const leader = await c.waitLeader();
      const t0 = performance.now();
      await c.submitAll(cmds(0, 1000));
      const ms = performance.now() - t0;
      console.log(`1,000 commands committed in ${ms.toFixed(0)} ms (leader ${leader.id})`);
      await c.waitConverged();
      for (const id of c.ids) assert.equal(c.commands(id).size, 1000);

      // Crash a follower, write more, restart it: it catches up from its saved log.
      const victim = c.ids.find((id) => id !== c.leader()!.id)!;
      await c.crash(victim);
      await c.submitAll(cmds(1000, 200));
      await c.restart(victim);
      await c.waitConverged();
      for (const id of c.ids) assert.equal(c.commands(id).size, 1200);

      // Crash the leader: another takes over and the old one rejoins.
      const old = c.leader()!.id;
      await c.crash(old);
      const next = await c.waitLeader();
      assert.notEqual(next.id, old);
      await c.submitAll(cmds(1200, 100));
      await c.restart(old);
      await c.waitConverged();
      for (const id of c.ids) assert.equal(c.commands(id).size, 1300);
      assert.deepEqual(c.violations, []);
    } finally {
      await c.close();
    }
  },
});

Deno.test({
  name: "raft over websockets: a node far behind a compacted leader receives a multi-MiB snapshot",
  async fn() {
    // Appends queued for the crashed node expire quickly, so its catch-up cannot come from them.
    const c = await WsCluster.start(["a", "b", "c"], { transport: { queue: { maxAgeMs: 100 } } });
    try {
      await c.waitLeader();
      await c.submitAll(cmds(0, 200));
      const victim = c.ids.find((id) => id !== c.leader()!.id)!;
      await c.crash(victim);
      await c.submitAll(cmds(200, 200));
      const leader = c.leader()!;
      await waitFor("applied", () => leader.status().applied === leader.status().commit);
      // 2.5 MiB: three chunks at the default 1 MiB chunk size.
      const state = Uint8Array.from({ length: 2.5 * 1024 * 1024 }, (_, i) => (i * 7) & 255);
      const at = leader.status().applied;
      assert.ok(leader.compact(at, state));
      await sleep(300);
      await c.restart(victim);
      try {
        await waitFor("snapshot installed", () => c.snapshots.some((s) => s.id === victim));
      } catch (e) {
        for (const id of c.ids) {
          console.log(id, JSON.stringify(c.nodes.get(id)?.status()));
          console.log(id, JSON.stringify(c.lb.node(id).transport.metrics()));
          console.log(
            id,
            JSON.stringify(c.lb.node(id).log.filter((l) => l.level !== "info").slice(0, 5)),
          );
        }
        throw e;
      }
      const snap = c.snapshots.find((s) => s.id === victim)!;
      assert.ok(snap.index >= at);
      assert.deepEqual(snap.data, state);
      await c.submitAll(cmds(400, 50));
      await waitFor(
        "caught up",
        () =>
          c.nodes.get(victim)!.status().commit === leader.status().commit &&
          c.commands(victim).size >= 50,
        60_000,
      );
      for (const cmd of cmds(400, 50)) assert.ok(c.commands(victim).has(cmd));
      assert.deepEqual(c.violations, []);
    } finally {
      await c.close();
    }
  },
});

Deno.test({
  name:
    "raft over websockets through fault proxies: delay, drops, cuts and a crash keep safety; liveness returns",
  async fn() {
    const c = await WsCluster.start(["a", "b", "c"], {
      proxy: true,
      // Quicker detection of a stream the drops broke, so the test spends its time on faults.
      transport: { keepaliveMs: 200, idleTimeoutMs: 1500 },
    });
    try {
      await c.waitLeader();
      await c.submitAll(cmds(0, 100));
      await c.waitConverged();

      // Faults on every link: delay with jitter, then drops, then cuts, while commands keep coming.
      let stop = false;
      let next = 100;
      const load = (async () => {
        while (!stop) {
          const leader = c.leader();
          if (leader) {
            for (let i = 0; i < 10; i++) {
              leader.propose(enc.encode(`cmd-${next++}`)).catch(() => {});
            }
          }
          await sleep(50);
        }
      })();
      c.lb.eachProxy((p) => p.setFaults({ delayMs: 15, jitterMs: 30 }));
      await sleep(2000);
      c.lb.eachProxy((p) => p.setFaults({ dropRate: 0.05 }));
      await sleep(2000);
      for (let i = 0; i < 4; i++) {
        c.lb.eachProxy((p) => p.cut());
        await sleep(500);
      }
      // A crash under faults, and the restart.
      const victim = c.ids[Math.floor(Math.random() * 3)];
      await c.crash(victim);
      await sleep(1000);
      await c.restart(victim);
      c.lb.eachProxy((p) => p.setFaults({ dropRate: 0.1, delayMs: 5, jitterMs: 10 }));
      await sleep(2000);
      stop = true;
      await load;

      // Faults stop: the cluster must make progress again and converge.
      c.lb.eachProxy((p) => p.clearFaults());
      await c.submitAll(cmds(100_000, 100), 120_000);
      await c.waitConverged(120_000);
      for (const id of c.ids) {
        const got = c.commands(id);
        for (const cmd of cmds(100_000, 100)) assert.ok(got.has(cmd), `${id} lacks ${cmd}`);
      }
      const dropped = [...c.lb.proxies.values()].reduce((n, p) => n + p.stats().chunksDropped, 0);
      console.log(
        `applied ${c.applied.get("a")!.length - 1} entries; proxies dropped ${dropped} chunks`,
      );
      assert.deepEqual(c.violations, []);
    } finally {
      await c.close();
    }
  },
});
