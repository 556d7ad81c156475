import assert from "node:assert/strict";
import type { Message } from "../../src/core/types.ts";
import { FrameCodec } from "../../src/transport/codec.ts";
import type { Connection } from "../../src/transport/connection.ts";
import { PeerLink } from "../../src/transport/peer_link.ts";

const header = { cluster: "c1", from: "a", to: "b" };
const limits = { maxMessages: 100, maxBytes: 1 << 20, highWaterBytes: 1 << 20, maxAgeMs: 1000 };

function hb(ctx: number): Message {
  return { type: "hb", term: 1, from: "a", to: "b", commit: 0, ctx };
}

/** A connection stand-in: `state` decides whether frames go out; sent frames are kept. */
function fakeConnection(state: "open" | "closed"): Connection & { frames: Uint8Array[] } {
  const frames: Uint8Array[] = [];
  return {
    state,
    outbound: true,
    bufferedAmount: 0,
    frames,
    send: (f: Uint8Array) => frames.push(f),
  } as unknown as Connection & { frames: Uint8Array[] };
}

function link(): PeerLink {
  return new PeerLink("b", undefined, new FrameCodec(), header, limits, (e) => {
    throw e;
  });
}

Deno.test("peer link: with a connection up, queued messages leave at the flush", () => {
  const l = link();
  const conn = fakeConnection("open");
  l.active = conn;
  l.enqueue([hb(1), hb(2)], false);
  l.flush();
  assert.equal(l.queued, 0);
  assert.equal(conn.frames.length, 1);
  assert.deepEqual(new FrameCodec().decode(conn.frames[0], header), [hb(1), hb(2)]);
});

Deno.test("peer link: messages a flush leaves behind wait from then on, and expire", () => {
  const l = link();
  l.active = fakeConnection("closed"); // up a moment ago, closed before the flush
  const before = performance.now();
  l.enqueue([hb(1)], false);
  l.flush();
  assert.equal(l.queued, 1);
  l.expire(before + limits.maxAgeMs - 100);
  assert.equal(l.queued, 1, "not expired before its time");
  l.expire(performance.now() + limits.maxAgeMs + 1);
  assert.equal(l.queued, 0);
  assert.equal(l.metrics().drops, 1);
});

Deno.test("peer link: messages queued while up and never flushed start waiting at the next expiry check", () => {
  const l = link();
  l.active = fakeConnection("open");
  l.enqueue([hb(1)], false); // no flush: the connection drops before one runs
  l.active = undefined;
  const t = performance.now() + 5000;
  l.expire(t); // first seen waiting now: kept
  assert.equal(l.queued, 1);
  l.enqueue([hb(2)]); // queued without a connection: waits from now
  l.expire(t + limits.maxAgeMs + 1);
  assert.equal(l.queued, 0);
  assert.equal(l.metrics().drops, 2);
});
