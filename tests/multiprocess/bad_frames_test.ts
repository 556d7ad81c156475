/**
 * Bad frames over real sockets to a running `floe node` process. Two nodes of a three-node
 * cluster run; the test speaks for the third, n3, over raw WebSockets:
 *
 * - garbage instead of the handshake's hello: refused, socket closed (code 4001);
 * - after a genuine handshake, one bad frame per connection (random bytes, mutated valid frames,
 *   huge declared lengths, deep nesting, envelopes for another cluster, sender or receiver, wrong
 *   versions), each checked locally to be one the decoder refuses: socket closed with 4002 or
 *   4006.
 *
 * The node never crashes, its memory stays bounded, every bad frame and refused handshake is
 * counted — in its /metrics (floe_transport_decode_errors_total,
 * floe_transport_auth_failures_total) and one warning line per refusal in its log — and it still
 * serves.
 *
 * Seeded; FLOE_SEED=<seed> replays the same frames.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Encoder } from "../../deps.ts";
import { ProcessCluster } from "../../src/testing/process_cluster.ts";
import { Random } from "../../src/testing/random.ts";
import { CBOR_OPTIONS, FrameCodec } from "../../src/transport/codec.ts";
import { FrameError } from "../../src/transport/frame_validation.ts";
import { HandshakeKey } from "../../src/transport/handshake.ts";
import { CLOSE } from "../../src/transport/socket.ts";
import { everyMessage, mutateFrame } from "../transport/fixtures.ts";
import { RawClient } from "../transport/raw_client.ts";
import { readValue, SessionWriter } from "./node_http.ts";

const SEED = Number(Deno.env.get("FLOE_SEED") ?? Date.now() % 1_000_000);
const BAD_FRAMES = 300;
const BAD_HELLOS = 60;
const raw = new Encoder(CBOR_OPTIONS);

/** A candidate bad frame for the connection n3 -> target; may happen to be valid. */
function candidate(r: Random, valid: readonly Uint8Array[], cluster: string, to: string) {
  switch (r.int(6)) {
    case 0:
      return new Uint8Array(1 + r.int(300)).map(() => r.int(256));
    case 1:
    case 2:
      return mutateFrame(r, r.pick(valid));
    case 3: { // a well-formed envelope that is not for this connection
      const env = { v: 1, cluster, from: "n3", to, msgs: [] as unknown[] };
      const wrong = r.int(4);
      if (wrong === 0) env.cluster = "another-cluster";
      if (wrong === 1) env.from = r.pick(["n1", "n2", "n9", ""]);
      if (wrong === 2) env.to = r.pick(["n2", "n3", "n7"]);
      if (wrong === 3) env.v = 2 + r.int(5);
      return raw.encode(env);
    }
    case 4: { // deep nesting where the messages go
      const head = raw.encode({ v: 1, cluster, from: "n3", to, msgs: [] });
      const depth = 100 + r.int(5000);
      const b = new Uint8Array(head.length + depth);
      b.set(head.subarray(0, head.length - 1));
      b.fill(0x81, head.length - 1, head.length - 1 + depth);
      b[b.length - 1] = 0x80;
      return b;
    }
    default: { // a valid prefix, then a huge declared length
      const v = r.pick(valid);
      const cut = r.int(v.length);
      const b = new Uint8Array(cut + 9).fill(0xff);
      b.set(v.subarray(0, cut));
      b[cut] = r.pick([0x9b, 0x5b, 0x7b, 0xbb]);
      return b;
    }
  }
}

Deno.test({
  name: `a node process refuses ${BAD_HELLOS} bad hellos and ${BAD_FRAMES} bad frames over real ` +
    `sockets: each counted and its socket closed; no crash, bounded memory, still serving ` +
    `(seed ${SEED})`,
  async fn() {
    const r = new Random(SEED);
    // Only n1 and n2 run; the test is n3. Output is kept long enough to count every refusal.
    const refusals = { badFrames: 0, badHellos: 0 };
    const cluster = await ProcessCluster.start({
      size: 3,
      initial: ["n1", "n2"],
      onLine: (id, line) => {
        if (id !== "n1") return;
        if (/transport: bad-frame \(n3\)/.test(line)) refusals.badFrames++;
        // A hello naming a peer is logged with it: "refused (n3): accepted socket: ...".
        if (/transport: refused( \([^)]*\))?: accepted socket/.test(line)) refusals.badHellos++;
      },
    });
    try {
      await cluster.waitForLeader();
      const target = "n1";
      const url = `ws://127.0.0.1:${cluster.port(target)}/floe`;
      const header = { cluster: cluster.clusterName, from: "n3", to: target };
      const codec = new FrameCodec();
      const valid = [
        codec.encode(header, everyMessage("n3", target)),
        ...everyMessage("n3", target).map((m) => codec.encode(header, [m])),
      ];
      const key = await HandshakeKey.create(cluster.secret);
      const rssBefore = await cluster.rssBytes(target);
      assert.ok(rssBefore !== undefined, "the node's memory is readable (/proc, --allow-all)");

      for (let i = 0; i < BAD_HELLOS; i++) {
        const client = await RawClient.connect(url);
        client.socket.send(
          r.chance(0.5) ? new Uint8Array(1 + r.int(200)).map(() => r.int(256)) : mutateFrame(
            r,
            raw.encode({ hs: "hello", v: 1, cluster: cluster.clusterName, from: "n3" }),
          ),
        );
        assert.equal(await client.closed, CLOSE.refused, `bad hello ${i} (seed ${SEED})`);
      }

      const reasons = new Map<string, number>();
      for (let i = 0; i < BAD_FRAMES; i++) {
        let frame: Uint8Array;
        for (;;) {
          frame = candidate(r, valid, cluster.clusterName, target);
          try {
            codec.decode(frame, header);
          } catch (e) {
            assert.ok(e instanceof FrameError, `local decode threw ${e}`);
            reasons.set(e.reason, (reasons.get(e.reason) ?? 0) + 1);
            break;
          }
        }
        const client = await RawClient.connect(url);
        assert.ok(
          await client.authenticate(key, cluster.clusterName, "n3", target),
          `handshake ${i} refused (seed ${SEED})`,
        );
        client.socket.send(frame);
        const code = await client.closed;
        assert.ok(
          code === CLOSE.badFrame || code === CLOSE.tooLarge,
          `bad frame ${i}: close code ${code} (seed ${SEED})`,
        );
      }
      console.log(
        `bad frames by local decoder reason: ${JSON.stringify(Object.fromEntries(reasons))}`,
      );

      // Still running, still serving, memory bounded.
      assert.ok(cluster.isRunning(target), `${target} died:\n${cluster.output(target)}`);
      const writer = new SessionWriter();
      await writer.put([cluster.url(target)], "after-bad-frames", "fine");
      assert.equal(await readValue(cluster.url(target), "after-bad-frames"), "fine");
      const rssAfter = await cluster.rssBytes(target);
      assert.ok(rssAfter !== undefined, "the node is still running");
      console.log(`rss of ${target}: ${rssBefore >> 20} -> ${rssAfter >> 20} MiB`);
      assert.ok(
        rssAfter - rssBefore < 128 * 2 ** 20,
        `rss grew ${(rssAfter - rssBefore) >> 20} MiB`,
      );

      // Each refusal was counted (the log lines may trail the closes by a moment).
      const deadline = performance.now() + 10_000;
      while (refusals.badFrames < BAD_FRAMES || refusals.badHellos < BAD_HELLOS) {
        if (performance.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(refusals.badFrames, BAD_FRAMES);
      assert.equal(refusals.badHellos, BAD_HELLOS);
      const metrics = await (await fetch(`${cluster.url(target)}/metrics`)).text();
      const counter = (name: string) =>
        Number(new RegExp(`^${name} (\\d+)$`, "m").exec(metrics)?.[1] ?? NaN);
      assert.equal(counter("floe_transport_decode_errors_total"), BAD_FRAMES);
      assert.equal(counter("floe_transport_auth_failures_total"), BAD_HELLOS);
    } finally {
      await cluster.close();
    }
  },
});
