/**
 * Three `RaftCore`s with an instant storage, for core tests: messages wait in `inbox` until
 * delivered, so a test can drop, duplicate or reorder them.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { RaftConfig } from "../../src/core/config.ts";
import { RaftCore } from "../../src/core/raft.ts";
import type { Message, ReadState } from "../../src/core/types.ts";

/** UTF-8 bytes of `s`. */
export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Three cores a, b, c. */
export class Trio {
  readonly ids = ["a", "b", "c"];
  readonly cores = new Map<string, RaftCore>();
  inbox: Message[] = [];
  readonly applied = new Map<string, number[]>();
  readonly restored = new Map<string, number[]>();

  readonly reads = new Map<string, ReadState[]>();

  constructor(options: { chunk?: number; window?: number; config?: Partial<RaftConfig> } = {}) {
    for (const [i, id] of this.ids.entries()) {
      this.cores.set(
        id,
        new RaftCore({
          id,
          voters: this.ids,
          seed: i + 1,
          electionTicks: 10,
          heartbeatTicks: 1,
          snapshotChunkBytes: options.chunk ?? 4,
          snapshotWindow: options.window ?? 2,
          ...options.config,
        }),
      );
      this.applied.set(id, []);
      this.restored.set(id, []);
      this.reads.set(id, []);
    }
  }

  core(id: string): RaftCore {
    return this.cores.get(id)!;
  }

  // Drains every Ready of every core into the inbox.
  flush(): void {
    for (const [id, core] of this.cores) {
      while (core.hasReady()) {
        const rd = core.ready();
        this.inbox.push(...rd.messages);
        if (rd.restore) this.restored.get(id)!.push(rd.restore.index);
        this.reads.get(id)!.push(...rd.readStates);
        for (const e of rd.committed) this.applied.get(id)!.push(e.index);
        core.advance(rd);
      }
    }
  }

  // Delivers until quiet, except messages `drop` rejects.
  run(drop: (m: Message) => boolean = () => false, rounds = 100): void {
    for (let r = 0; r < rounds; r++) {
      this.flush();
      if (this.inbox.length === 0) return;
      const batch = this.inbox;
      this.inbox = [];
      for (const m of batch) if (!drop(m)) this.core(m.to).step(m);
    }
  }

  // Ticks `leader` `n` times (heartbeats drive retries and transfers), delivering after each.
  tickLeader(leader: string, n: number, drop: (m: Message) => boolean = () => false): void {
    for (let i = 0; i < n; i++) {
      this.core(leader).tick();
      this.run(drop);
    }
  }

  elect(id: string): void {
    this.core(id).campaign();
    this.run();
    assert.equal(this.core(id).role, "leader");
  }

  propose(id: string, n: number): void {
    for (let i = 0; i < n; i++) this.core(id).propose(enc(`cmd${i}`));
    this.run();
  }
}
