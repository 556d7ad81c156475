/**
 * What the API answers for each error the node and the KV store throw, and a real 504: a
 * proposal that cannot be persisted in time.
 *
 * @module
 */
import assert from "node:assert/strict";
import { NotLeaderError } from "../../src/core/errors.ts";
import { toHttpApiError } from "../../src/http/http_errors.ts";
import { KvCommandError } from "../../src/kv/kv_errors.ts";
import { QueueOverflowError } from "../../src/node/async_queue.ts";
import {
  CommandTooLargeError,
  NodeBusyError,
  ProposalTimeoutError,
  ReadTimeoutError,
  StaleReadError,
} from "../../src/node/node_errors.ts";
import {
  NodeStoppedError,
  ProposalLostError,
  ProposalOutcomeUnknownError,
} from "../../src/node/raft_node.ts";
import { MemoryStorage } from "../../src/storage/memory_storage.ts";
import type { Storage, StorageUpdate } from "../../src/storage/storage.ts";
import { HttpCluster } from "./http_cluster.ts";

Deno.test("http errors: each node and KV error maps to its status, code and Retry-After", () => {
  const cases: [unknown, number, string, string | null][] = [
    [new KvCommandError("key", "empty"), 400, "bad-request", null],
    [new KvCommandError("value", "big", "too-large"), 413, "too-large", null],
    [new NotLeaderError("n2"), 503, "no-leader", "2"],
    [new NotLeaderError(undefined), 503, "no-leader", "2"],
    [new ProposalTimeoutError(5, 1, 100), 504, "timeout", null],
    [new ReadTimeoutError(100), 504, "timeout", null],
    [new ProposalOutcomeUnknownError(5, 1), 504, "timeout", null],
    [new CommandTooLargeError(2000, 1000), 413, "too-large", null],
    [new NodeBusyError(10, 10), 503, "busy", "2"],
    [new QueueOverflowError(10), 503, "busy", "2"],
    [new StaleReadError(500, 100), 503, "not-ready", "2"],
    [new NodeStoppedError(), 503, "not-ready", "2"],
    [new ProposalLostError(5, 1), 503, "no-leader", "2"],
    [new Error("a bug"), 500, "internal", null],
    ["not even an error", 500, "internal", null],
  ];
  for (const [error, status, code, retryAfter] of cases) {
    const e = toHttpApiError(error, 2);
    const what = String(error);
    assert.equal(e.status, status, what);
    assert.equal(e.code, code, what);
    assert.equal(e.headers["Retry-After"] ?? null, retryAfter, what);
  }
  assert.deepEqual(toHttpApiError(new NotLeaderError("n2"), 1).details, { leader: "n2" });
  assert.deepEqual(toHttpApiError(new KvCommandError("key", "empty"), 1).details, { field: "key" });
});

/** MemoryStorage whose saves wait while held. */
class HeldStorage implements Storage {
  readonly inner = new MemoryStorage();
  #gate: Promise<void> | undefined;
  #open: (() => void) | undefined;
  hold(): void {
    this.#gate = new Promise((r) => (this.#open = r));
  }
  release(): void {
    this.#open?.();
    this.#gate = undefined;
  }
  load() {
    return this.inner.load();
  }
  save(update: StorageUpdate): void | Promise<void> {
    const gate = this.#gate;
    if (gate === undefined) return this.inner.save(update);
    return gate.then(() => this.inner.save(update));
  }
  close() {
    return this.inner.close();
  }
}

Deno.test("http errors: a write the node cannot persist in time is 504 timeout", async () => {
  const storage = new HeldStorage();
  const c = await HttpCluster.start(["n1"], {
    storage: () => storage,
    node: { proposalTimeoutMs: 200 },
  });
  try {
    const n = await c.leader();
    storage.hold();
    const r = await fetch(`${n.url}/kv/k`, { method: "PUT", body: "v" });
    assert.equal(r.status, 504);
    assert.equal((await r.json()).error.code, "timeout");
  } finally {
    storage.release();
    await c.close();
  }
});
