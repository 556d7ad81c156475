/**
 * Raft cores pumped in memory for benchmarks: an instant storage and network, so a figure
 * measures the core alone. A link can be cut to let a follower fall behind.
 *
 * @module
 */
import { RaftCore } from "../src/core/raft.ts";
import type { RaftConfig } from "../src/core/config.ts";
import type { Message } from "../src/core/types.ts";
import { messageSize } from "../src/transport/memory_network.ts";

/** A cluster of `RaftCore`s named s0, s1, …. */
export class CoreCluster {
  /** The cores, by number. */
  readonly cores: RaftCore[];
  /** Servers whose messages are dropped, both ways. */
  readonly cut = new Set<string>();
  /** Bytes (estimated wire size) of messages delivered to each server. */
  readonly bytesIn = new Map<string, number>();
  #queue: Message[] = [];

  /** `n` servers; `config` overrides the core settings. */
  constructor(n: number, seed: number, config: Partial<RaftConfig> = {}) {
    const ids = Array.from({ length: n }, (_, i) => `s${i}`);
    this.cores = ids.map((id, i) =>
      new RaftCore({
        id,
        voters: ids,
        seed: seed + i,
        electionTicks: 10,
        heartbeatTicks: 2,
        ...config,
      })
    );
  }

  /** Carry out every Ready and deliver every message until nothing is left. */
  pump(): void {
    for (;;) {
      let busy = false;
      for (const core of this.cores) {
        while (core.hasReady()) {
          busy = true;
          const rd = core.ready();
          for (const m of rd.messages) this.#queue.push(m);
          core.advance(rd);
        }
      }
      if (this.#queue.length > 0) {
        busy = true;
        const q = this.#queue;
        this.#queue = [];
        for (const m of q) {
          if (this.cut.has(m.to) || this.cut.has(m.from)) continue;
          this.bytesIn.set(m.to, (this.bytesIn.get(m.to) ?? 0) + messageSize(m));
          this.cores[Number(m.to.slice(1))].step(m);
        }
      }
      if (!busy) return;
    }
  }

  /** Elect s0 and return it. */
  elect(): RaftCore {
    this.cores[0].campaign();
    this.pump();
    const leader = this.cores[0];
    if (leader.role !== "leader") throw new Error("no leader");
    return leader;
  }

  /** Tick every core once and pump. */
  tick(): void {
    for (const c of this.cores) c.tick();
    this.pump();
  }

  /** Throws unless every server committed and applied the leader's whole log. */
  verify(): void {
    const last = this.cores.find((c) => c.role === "leader")!.status().lastIndex;
    for (const core of this.cores) {
      const s = core.status();
      if (s.commit !== last || s.applied !== last) {
        throw new Error(`${s.id} committed ${s.commit}, applied ${s.applied} of ${last}`);
      }
    }
  }
}
