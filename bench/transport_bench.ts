/**
 * The WebSocket transport against the socket it runs on. In one run:
 *
 * 1. raw: a Deno.serve WebSocket server answers each message with a small ack (what an appResp is
 *    to an append), dialed with the `ws` client (TCP_NODELAY). Also a full echo, for reference.
 * 2. floe: two `WebSocketTransport`s (same dialer and server) carry AppendEntries (8 entries of
 *    128 bytes, ~1.1 KB encoded) answered by appResp, through the handshake, the codec, frame
 *    validation, the per-peer queue and batching.
 *
 * Each at 1 and 256 messages in flight, the three connections open together and measured in
 * turns, a short stretch each, so that the baseline and floe see the same machine (loopback
 * figures on a shared machine swing by a factor of two from one second to the next). The
 * answering side runs in a Worker (its own thread), as a peer process would. Then the codec
 * against cbor-x and JSON on a 64-entry AppendEntries, and the codec's share of one round trip of
 * the bench above.
 *
 * Target: floe's messages/s at least 0.8x the raw ack server's, at each depth, as the median of
 * the per-round ratios (each floe stretch against the baseline stretch of the same round).
 *
 * Run: `deno run -A bench/transport_bench.ts` (FLOE_BENCH_SECONDS sets each stretch's length,
 * default 0.5; FLOE_BENCH_ROUNDS the number of rounds, default 7).
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

const SECONDS = Number(Deno.env.get("FLOE_BENCH_SECONDS") ?? "0.5");
const ROUNDS = Number(Deno.env.get("FLOE_BENCH_ROUNDS") ?? "7");
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
  // Every server started since the last stop: the links they serve are measured in turns.
  let stops: (() => Promise<void>)[] = [];
  scope.onmessage = async (e) => {
    const c = e.data;
    if (c.cmd === "stop") {
      await Promise.all(stops.map((stop) => stop()));
      stops = [];
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
      stops.push(() => server.shutdown());
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
    stops.push(async () => {
      await b.close();
      await server.close();
    });
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

/** One way of carrying the bench message to the Worker and back. */
interface Link {
  /** Start one round trip. */
  send(): void;
  /** Close what the link opened. */
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Keeps `depth` round trips in flight on a link while measuring. Links stay open between
 * measurements, so the baseline and floe can be measured in alternation, a short stretch each.
 */
class Driver {
  link: Link | undefined;
  #inflight = 0;
  #done = 0;
  #counting = false;
  #running = false;
  #idle: (() => void) | undefined;

  constructor(readonly depth: number) {}

  /** To be called once per answer the link receives. */
  readonly answered = (): void => {
    this.#inflight--;
    if (this.#counting) this.#done++;
    if (this.#running) {
      this.#inflight++;
      this.link!.send();
    } else if (this.#inflight === 0) this.#idle?.();
  };

  /** Messages/s over `seconds`, after a short warm-up, with `depth` in flight throughout. */
  async measure(seconds: number): Promise<Result> {
    this.#running = true;
    for (let i = 0; i < this.depth; i++) {
      this.#inflight++;
      this.link!.send();
    }
    await sleep(100);
    this.#done = 0;
    this.#counting = true;
    const t0 = performance.now();
    await sleep(seconds * 1000);
    this.#counting = false;
    const secs = (performance.now() - t0) / 1000;
    const counted = this.#done;
    this.#running = false;
    if (this.#inflight > 0) {
      await Promise.race([new Promise<void>((r) => (this.#idle = r)), sleep(2000)]);
    }
    this.#idle = undefined;
    this.#inflight = 0;
    const msgsPerSec = counted / secs;
    return { msgsPerSec, mbPerSec: (msgsPerSec * MESSAGE_BYTES) / 1e6 };
  }
}

async function openRaw(remoteSide: Remote, echo: boolean, driver: Driver): Promise<Link> {
  const { url } = await remoteSide.ask({ cmd: "raw", echo }) as { url: string };
  const payload = new FrameCodec().encode({ cluster: CLUSTER, from: "a", to: "b" }, [MESSAGE]);
  let opened!: () => void;
  const open = new Promise<void>((r) => (opened = r));
  let closed!: () => void;
  const isClosed = new Promise<void>((r) => (closed = r));
  const socket: PeerSocket = wsDial(url, {
    onOpen: () => opened(),
    onMessage: () => driver.answered(),
    onClose: () => closed(),
  }, { maxMessageBytes: 1 << 24 });
  await open;
  return {
    send: () => socket.send(payload),
    close: async () => {
      socket.close(1000, "done");
      await isClosed;
    },
  };
}

async function openFloe(remoteSide: Remote, driver: Driver): Promise<Link> {
  const { url } = await remoteSide.ask({ cmd: "floe" }) as { url: string };
  const a = new WebSocketTransport({
    id: "a",
    cluster: CLUSTER,
    secret: SECRET,
    peers: [{ id: "b", url }],
    dial: wsDial,
  });
  while (!a.isConnected("b")) await sleep(5);
  a.listen((msgs) => {
    for (const m of msgs) if (m.type === "appResp") driver.answered();
  });
  return { send: () => a.send("b", [MESSAGE]), close: () => a.close() };
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
    ["floe codec (positional CBOR, fully validated)", () => {
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

  // What one round trip of the transport bench costs in the codec, on both sides together: the
  // append encoded and decoded, its response encoded and decoded. Frames are decoded from buffers
  // of their own, as they arrive from a socket.
  const back = { cluster: CLUSTER, from: "b", to: "a" };
  const resp: AppendResponse = {
    type: "appResp",
    term: 3,
    from: "b",
    to: "a",
    reject: false,
    index: 1008,
    hintIndex: 0,
    hintTerm: 0,
  };
  const appFrame = codec.encode(header, [MESSAGE]).slice();
  const respFrame = codec.encode(back, [resp]).slice();
  const roundTrip = () => {
    codec.encode(header, [MESSAGE]);
    codec.decode(appFrame, header);
    codec.encode(back, [resp]);
    codec.decode(respFrame, back);
  };
  for (let i = 0; i < 20_000; i++) roundTrip();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 1000) {
    for (let i = 0; i < 100; i++) roundTrip();
    n += 100;
  }
  const us = ((performance.now() - t0) * 1000) / n;
  console.log(
    `\ncodec work per round trip of the transport bench (encode + decode of the append and of its appResp): ${
      us.toFixed(2)
    } µs`,
  );
}

function median(rs: Result[]): Result {
  return [...rs].sort((x, y) => x.msgsPerSec - y.msgsPerSec)[rs.length >> 1];
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US").padStart(10);
}

async function main(): Promise<void> {
  console.log(
    `transport bench: median of ${ROUNDS} runs of ${SECONDS} s each, in turns; message = AppendEntries of 8 x 128 B (${MESSAGE_BYTES} B encoded)`,
  );
  const remoteSide = new Remote();
  try {
    // Loopback figures on a shared machine wander by tens of percent from one second to the
    // next, so the three links stay open and take turns, a short stretch each, ROUNDS times
    // (starting with a different one each round). Each reports its median, and floe's ratio to
    // the baseline is also taken per round, against the baseline stretch measured next to it.
    const rows: [string, number, Result][] = [];
    const paired = new Map<number, number[]>();
    for (const depth of [1, 256]) {
      const names = ["ack", "floe", "echo"] as const;
      const drivers = { ack: new Driver(depth), floe: new Driver(depth), echo: new Driver(depth) };
      drivers.ack.link = await openRaw(remoteSide, false, drivers.ack);
      drivers.floe.link = await openFloe(remoteSide, drivers.floe);
      drivers.echo.link = await openRaw(remoteSide, true, drivers.echo);
      const runs: Record<string, Result[]> = { ack: [], echo: [], floe: [] };
      const ratios: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        for (let k = 0; k < names.length; k++) {
          const name = names[(round + k) % names.length];
          runs[name].push(await drivers[name].measure(SECONDS));
        }
        ratios.push(runs.floe[round].msgsPerSec / runs.ack[round].msgsPerSec);
      }
      for (const name of names) await drivers[name].link!.close();
      await remoteSide.ask({ cmd: "stop" });
      paired.set(depth, ratios);
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
      const ofMedians = ours.msgsPerSec / base.msgsPerSec;
      const ratios = [...paired.get(depth)!].sort((x, y) => x - y);
      const ratio = ratios[ratios.length >> 1];
      console.log(
        `floe / raw at ${String(depth).padStart(3)} in flight: ${
          ratio.toFixed(2)
        }x  (target >= 0.80x: ${
          ratio >= 0.8 ? "met" : "MISSED"
        })  median of ${ratios.length} paired rounds, range ${ratios[0].toFixed(2)}-${
          ratios[ratios.length - 1].toFixed(2)
        }; ratio of the medians ${ofMedians.toFixed(2)}x`,
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
