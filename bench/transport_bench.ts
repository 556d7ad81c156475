/**
 * The WebSocket transport against the socket it runs on. In one run:
 *
 * 1. raw: a Deno.serve WebSocket server answers each message with a small ack (what an appResp is
 *    to an append), dialed with the `ws` client (TCP_NODELAY). Also a full echo, for reference.
 * 2. floe: two `WebSocketTransport`s (same dialer and server) carry AppendEntries (8 entries of
 *    128 bytes, ~1.1 KB encoded) answered by appResp, through the handshake, the codec, frame
 *    validation, the per-peer queue and batching.
 *
 * Each at 1 and 256 messages in flight. The answering side runs in a Worker (its own thread), as
 * a peer process would. Then cbor-x vs JSON encode+decode of a 64-entry AppendEntries.
 *
 * Target: floe's messages/s at least 0.8x the raw ack server's, at each depth.
 *
 * Run: `deno run -A bench/transport_bench.ts` (FLOE_BENCH_SECONDS sets each run's length,
 * FLOE_BENCH_ROUNDS the number of runs whose median is reported).
 *
 * @module
 */
import { Decoder, Encoder } from "../deps.ts";
import type { AppendRequest, AppendResponse, Message } from "../src/core/types.ts";
import { CBOR_OPTIONS, FrameCodec } from "../src/transport/codec.ts";
import type { PeerSocket } from "../src/transport/socket.ts";
import { adoptWebSocket } from "../src/transport/socket.ts";
import { WebSocketServer } from "../src/transport/websocket_server.ts";
import { WebSocketTransport } from "../src/transport/websocket_transport.ts";
import { wsDial } from "../src/transport/ws_dial.ts";

const SECONDS = Number(Deno.env.get("FLOE_BENCH_SECONDS") ?? "1");
const ROUNDS = Number(Deno.env.get("FLOE_BENCH_ROUNDS") ?? "3");
const SECRET = "bench-secret-0123456789abcdef";
const CLUSTER = "bench";
const WORKER_NAME = "floe-transport-bench-remote";

function append(prevIndex: number, entries: number, size: number): AppendRequest {
  return {
    type: "app",
    term: 3,
    from: "a",
    to: "b",
    prevIndex,
    prevTerm: 3,
    commit: prevIndex,
    entries: Array.from({ length: entries }, (_, i) => ({
      index: prevIndex + 1 + i,
      term: 3,
      data: new Uint8Array(size).fill(i & 255),
    })),
  };
}

const MESSAGE = append(1000, 8, 128);
const MESSAGE_BYTES =
  new FrameCodec().encode({ cluster: CLUSTER, from: "a", to: "b" }, [MESSAGE]).length;

// ---- the remote side (runs in the Worker) -----------------------------------------------------

type Command =
  | { cmd: "raw"; echo: boolean }
  | { cmd: "floe" }
  | { cmd: "stop" };

function remote(): void {
  const scope = self as unknown as {
    onmessage: ((e: MessageEvent<Command>) => void) | null;
    postMessage(v: unknown): void;
  };
  let stop: (() => Promise<void>) | undefined;
  scope.onmessage = async (e) => {
    const c = e.data;
    if (c.cmd === "stop") {
      await stop?.();
      stop = undefined;
      scope.postMessage({ stopped: true });
      return;
    }
    if (c.cmd === "raw") {
      const ack = new Uint8Array(8);
      const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
        const { socket, response } = Deno.upgradeWebSocket(req);
        socket.binaryType = "arraybuffer";
        socket.onmessage = (ev) => socket.send(c.echo ? ev.data : ack);
        return response;
      });
      stop = () => server.shutdown();
      scope.postMessage({ url: `ws://127.0.0.1:${server.addr.port}/` });
      return;
    }
    const b = new WebSocketTransport({
      id: "b",
      cluster: CLUSTER,
      secret: SECRET,
      peers: [{ id: "a" }],
      dial: wsDial,
    });
    b.listen((msgs) => {
      const out: Message[] = [];
      for (const m of msgs) {
        if (m.type !== "app") continue;
        const r: AppendResponse = {
          type: "appResp",
          term: m.term,
          from: "b",
          to: "a",
          reject: false,
          index: m.prevIndex + m.entries.length,
          hintIndex: 0,
          hintTerm: 0,
        };
        out.push(r);
      }
      b.send("a", out);
    });
    const server = WebSocketServer.listen({ hostname: "127.0.0.1", port: 0 }, b);
    stop = async () => {
      await b.close();
      await server.close();
    };
    scope.postMessage({ url: server.url });
  };
}

// ---- the measuring side -----------------------------------------------------------------------

class Remote {
  readonly #worker = new Worker(import.meta.url, { type: "module", name: WORKER_NAME });
  #next: ((v: Record<string, unknown>) => void) | undefined;

  constructor() {
    this.#worker.onmessage = (e) => this.#next?.(e.data);
  }

  ask(c: Command): Promise<Record<string, unknown>> {
    return new Promise((r) => {
      this.#next = r;
      this.#worker.postMessage(c);
    });
  }

  terminate(): void {
    this.#worker.terminate();
  }
}

interface Result {
  readonly msgsPerSec: number;
  readonly mbPerSec: number;
}

/** Keep `depth` round trips in flight for SECONDS; `send` starts one, `onDone` is called per ack. */
async function drive(
  depth: number,
  start: (onDone: () => void) => { send: () => void; close: () => Promise<void> },
): Promise<Result> {
  let done = 0;
  let measuring = false;
  let stopping = false;
  let finished!: () => void;
  const idle = new Promise<void>((r) => (finished = r));
  let inflight = 0;
  const link = start(() => {
    inflight--;
    if (measuring) done++;
    if (!stopping) {
      inflight++;
      link.send();
    } else if (inflight === 0) finished();
  });
  for (let i = 0; i < depth; i++) {
    inflight++;
    link.send();
  }
  await new Promise((r) => setTimeout(r, 300)); // warm-up
  measuring = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  measuring = false;
  const secs = (performance.now() - t0) / 1000;
  const counted = done;
  stopping = true;
  await Promise.race([idle, new Promise((r) => setTimeout(r, 2000))]);
  await link.close();
  const msgsPerSec = counted / secs;
  return { msgsPerSec, mbPerSec: (msgsPerSec * MESSAGE_BYTES) / 1e6 };
}

async function raw(remoteSide: Remote, depth: number, echo: boolean): Promise<Result> {
  const { url } = await remoteSide.ask({ cmd: "raw", echo }) as { url: string };
  const payload = new FrameCodec().encode({ cluster: CLUSTER, from: "a", to: "b" }, [MESSAGE]);
  let opened!: () => void;
  const open = new Promise<void>((r) => (opened = r));
  let onDone = () => {};
  let closed!: () => void;
  const isClosed = new Promise<void>((r) => (closed = r));
  const socket: PeerSocket = wsDial(url, {
    onOpen: () => opened(),
    onMessage: () => onDone(),
    onClose: () => closed(),
  }, { maxMessageBytes: 1 << 24 });
  await open;
  const r = await drive(depth, (done) => {
    onDone = done;
    return {
      send: () => socket.send(payload),
      close: async () => {
        socket.close(1000, "done");
        await isClosed;
      },
    };
  });
  await remoteSide.ask({ cmd: "stop" });
  return r;
}

async function floe(remoteSide: Remote, depth: number): Promise<Result> {
  const { url } = await remoteSide.ask({ cmd: "floe" }) as { url: string };
  const a = new WebSocketTransport({
    id: "a",
    cluster: CLUSTER,
    secret: SECRET,
    peers: [{ id: "b", url }],
    dial: wsDial,
  });
  while (!a.isConnected("b")) await new Promise((r) => setTimeout(r, 5));
  let onDone = () => {};
  a.listen((msgs) => {
    for (const m of msgs) if (m.type === "appResp") onDone();
  });
  const r = await drive(depth, (done) => {
    onDone = done;
    return { send: () => a.send("b", [MESSAGE]), close: () => a.close() };
  });
  await remoteSide.ask({ cmd: "stop" });
  return r;
}

function codecs(): void {
  const m = append(5000, 64, 100);
  const header = { cluster: CLUSTER, from: "a", to: "b" };
  const codec = new FrameCodec();
  const encoder = new Encoder(CBOR_OPTIONS);
  const decoder = new Decoder(CBOR_OPTIONS);
  const b64 = (d: Uint8Array) => btoa(String.fromCharCode(...d));
  const unb64 = (s: string) => Uint8Array.from(atob(s), (ch) => ch.charCodeAt(0));
  const cases: [string, () => number][] = [
    ["floe codec (positional CBOR, scan + validate)", () => {
      const f = codec.encode(header, [m]);
      codec.decode(f, header);
      return f.length;
    }],
    ["cbor-x, messages as maps, no validation", () => {
      const f = encoder.encode({ v: 1, cluster: CLUSTER, from: "a", to: "b", msgs: [m] });
      decoder.decode(f);
      return f.length;
    }],
    ["JSON, data as base64, no validation", () => {
      const s = JSON.stringify({
        v: 1,
        cluster: CLUSTER,
        msgs: [{ ...m, entries: m.entries.map((e) => ({ ...e, data: b64(e.data) })) }],
      });
      const back = JSON.parse(s) as { msgs: { entries: { data: string }[] }[] };
      for (const e of back.msgs[0].entries) unb64(e.data);
      return new TextEncoder().encode(s).length;
    }],
  ];
  console.log(`\nencode + decode of one 64-entry AppendEntries (100-byte commands):`);
  const rates: number[] = [];
  for (const [name, f] of cases) {
    for (let i = 0; i < 2000; i++) f(); // warm up
    let n = 0;
    let bytes = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < 1000) {
      bytes = f();
      n++;
    }
    const rate = n / ((performance.now() - t0) / 1000);
    rates.push(rate);
    console.log(
      `  ${name.padEnd(48)} ${fmt(rate)} /s  ${(1e6 / rate).toFixed(1)} µs  ${bytes} bytes`,
    );
  }
  console.log(`  floe codec vs JSON: ${(rates[0] / rates[2]).toFixed(1)}x faster`);
}

function median(rs: Result[]): Result {
  return [...rs].sort((x, y) => x.msgsPerSec - y.msgsPerSec)[rs.length >> 1];
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US").padStart(10);
}

async function main(): Promise<void> {
  console.log(
    `transport bench: median of ${ROUNDS} runs of ${SECONDS} s each; message = AppendEntries of 8 x 128 B (${MESSAGE_BYTES} B encoded)`,
  );
  const remoteSide = new Remote();
  try {
    // Loopback figures on a shared machine wander by tens of percent from one second to the
    // next, so the baseline and floe alternate over ROUNDS runs and each reports its median.
    const rows: [string, number, Result][] = [];
    for (const depth of [1, 256]) {
      const runs: Record<string, Result[]> = { ack: [], echo: [], floe: [] };
      for (let round = 0; round < ROUNDS; round++) {
        runs.ack.push(await raw(remoteSide, depth, false));
        runs.floe.push(await floe(remoteSide, depth));
        runs.echo.push(await raw(remoteSide, depth, true));
      }
      rows.push(["raw ack (baseline)", depth, median(runs.ack)]);
      rows.push(["raw full echo", depth, median(runs.echo)]);
      rows.push(["floe transport", depth, median(runs.floe)]);
    }
    console.log(
      `\n${"".padEnd(20)} ${"in flight".padStart(9)} ${"msgs/s".padStart(10)} ${
        "MB/s".padStart(8)
      }`,
    );
    for (const [name, depth, r] of rows) {
      console.log(
        `${name.padEnd(20)} ${String(depth).padStart(9)} ${fmt(r.msgsPerSec)} ${
          r.mbPerSec.toFixed(1).padStart(8)
        }`,
      );
    }
    console.log("");
    for (const depth of [1, 256]) {
      const base = rows.find(([n, d]) => n.startsWith("raw ack") && d === depth)![2];
      const ours = rows.find(([n, d]) => n === "floe transport" && d === depth)![2];
      const ratio = ours.msgsPerSec / base.msgsPerSec;
      console.log(
        `floe / raw at ${String(depth).padStart(3)} in flight: ${
          ratio.toFixed(2)
        }x  (target >= 0.80x: ${ratio >= 0.8 ? "met" : "MISSED"})`,
      );
    }
  } finally {
    remoteSide.terminate();
  }
  codecs();
}

if ((globalThis as { name?: string }).name === WORKER_NAME) {
  remote();
} else if (import.meta.main) {
  await main();
}

// adoptWebSocket is what the server side uses; imported so the bench exercises the same module.
void adoptWebSocket;
