/**
 * Everything the transport keeps per peer: its address, the connection in use, the bounded send
 * queue and the counters. Messages to one peer leave in the order `send` was called, on one
 * connection, batched: whatever is queued when a flush runs (after the current task, or when the
 * socket drains) goes out together, in as few frames as the frame limit allows.
 *
 * @module
 */
import type { Message, NodeId } from "../core/types.ts";
import { EncodeError, type FrameCodec, type FrameHeader } from "./codec.ts";
import type { Connection } from "./connection.ts";

/** Counters and state of one peer, as `WebSocketTransport.metrics()` reports them. */
export interface PeerMetrics {
  /** An authenticated connection is up. */
  readonly connected: boolean;
  /** Who opened the connection in use: this node (`dialed`) or the peer (`accepted`). */
  readonly via?: "dialed" | "accepted";
  /** Connections authenticated, in either direction. */
  readonly connects: number;
  /** Connections authenticated after an earlier one was lost. */
  readonly reconnects: number;
  /** Dials that closed before authenticating (refused, unreachable, timed out). */
  readonly dialFailures: number;
  /** Frames sent. */
  readonly framesOut: number;
  /** Bytes of frames sent. */
  readonly bytesOut: number;
  /** Raft messages sent. */
  readonly messagesOut: number;
  /** Frames received and accepted. */
  readonly framesIn: number;
  /** Bytes of frames received (accepted or not). */
  readonly bytesIn: number;
  /** Raft messages received and handed on. */
  readonly messagesIn: number;
  /** Messages dropped: queue full, larger than a frame, or unencodable. */
  readonly drops: number;
  /** Frames refused by the decoder (each closed its connection). */
  readonly decodeErrors: number;
  /** Handshakes with this peer (or with a socket claiming to be it) that failed. */
  readonly authFailures: number;
  /** Messages waiting to be sent. */
  readonly queued: number;
}

/** Bounds of one peer's send queue. */
export interface QueueLimits {
  /** Most messages waiting. */
  readonly maxMessages: number;
  /** Most estimated bytes waiting. */
  readonly maxBytes: number;
  /** Stop handing frames to a socket holding this many unsent bytes until it drains. */
  readonly highWaterBytes: number;
  /**
   * Drop messages that waited longer than this (ms) for a connection: by then Raft has moved on,
   * and a peer that comes back is better served by fresh messages than by a backlog.
   */
  readonly maxAgeMs: number;
}

/** Writable counters behind `PeerMetrics`. */
export type PeerCounters = {
  -readonly [K in Exclude<keyof PeerMetrics, "connected" | "via" | "queued">]: number;
};

/** A rough wire size of `m`, enough to bound the queue and fill frames. */
export function estimateSize(m: Message): number {
  let size = 24;
  if (m.type === "app") {
    for (const e of m.entries) size += 10 + e.data.length;
  } else if (m.type === "snap") {
    size += 32 + m.data.length + 16 * m.snapshot.voters.length;
  }
  return size;
}

const DRAIN_POLL_MS = 2;
const UNCHECKED_BYTES = 64 * 1024;
const RESOLVED = Promise.resolve();

/** One peer's state in a `WebSocketTransport`. */
export class PeerLink {
  /** The peer. */
  readonly id: NodeId;
  /** Where to dial it, when it can be dialed. */
  url: string | undefined;
  /** The authenticated connection messages go out on. */
  active: Connection | undefined;
  /** An outbound connection still opening or authenticating. */
  dialing: Connection | undefined;
  /** Failed dials since the last success (the backoff exponent). */
  attempts = 0;
  /** Pending redial. */
  reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  /** Whether a connection was ever authenticated (to tell reconnects from first connects). */
  everConnected = false;
  /** What frames from this peer must say: cluster, sender (the peer), receiver (this node). */
  readonly expect: FrameHeader;
  /** The counters. */
  readonly counters: PeerCounters = {
    connects: 0,
    reconnects: 0,
    dialFailures: 0,
    framesOut: 0,
    bytesOut: 0,
    messagesOut: 0,
    framesIn: 0,
    bytesIn: 0,
    messagesIn: 0,
    drops: 0,
    decodeErrors: 0,
    authFailures: 0,
  };
  readonly #codec: FrameCodec;
  readonly #header: FrameHeader;
  readonly #limits: QueueLimits;
  readonly #onEncodeError: (error: EncodeError) => void;
  #queue: Message[] = [];
  #sizes: number[] = [];
  #times: number[] = [];
  #head = 0;
  #bytes = 0;
  #flushQueued = false;
  // Some queued messages have no time yet (NaN): see `enqueue`.
  #unstamped = false;
  #drainTimer: ReturnType<typeof setTimeout> | undefined;
  #unchecked = 0;

  /** A link to `id` sending frames with `header` through `codec`. */
  constructor(
    id: NodeId,
    url: string | undefined,
    codec: FrameCodec,
    header: FrameHeader,
    limits: QueueLimits,
    onEncodeError: (error: EncodeError) => void,
  ) {
    this.id = id;
    this.url = url;
    this.#codec = codec;
    this.#header = header;
    this.expect = Object.freeze({ cluster: header.cluster, from: header.to, to: header.from });
    this.#limits = limits;
    this.#onEncodeError = onEncodeError;
  }

  /** Messages waiting. */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  /** The metrics snapshot. */
  metrics(): PeerMetrics {
    const active = this.active;
    return {
      ...this.counters,
      connected: active !== undefined,
      via: active === undefined ? undefined : active.outbound ? "dialed" : "accepted",
      queued: this.queued,
    };
  }

  /**
   * Queue `messages` and (unless `schedule` is false: the caller flushes) arrange a flush. When the queue passes its bounds, the oldest messages
   * go first: Raft recovers from any loss, and the newest carry the freshest state.
   */
  enqueue(messages: readonly Message[], schedule = true): void {
    // The clock is read only for messages that will wait: with a connection up, messages leave in
    // this task (reading the clock would cost more than the rest of this method), and those that
    // do not get their time when the flush leaves them behind (`flush`, `expire`).
    let now = NaN;
    if (this.active === undefined) now = performance.now();
    else this.#unstamped = true;
    for (const m of messages) {
      const size = estimateSize(m);
      this.#queue.push(m);
      this.#sizes.push(size);
      this.#times.push(now);
      this.#bytes += size;
    }
    const limits = this.#limits;
    while (this.queued > 0 && (this.queued > limits.maxMessages || this.#bytes > limits.maxBytes)) {
      this.#bytes -= this.#sizes[this.#head];
      this.#head++;
      this.counters.drops++;
    }
    this.#compact();
    if (schedule) this.scheduleFlush();
  }

  /** Flush after the current task, so messages sent together share a frame. */
  scheduleFlush(): void {
    if (this.#flushQueued || this.active === undefined || this.queued === 0) return;
    if (this.#drainTimer !== undefined) return; // a drain poll will flush
    this.#flushQueued = true;
    // A promise reaction is the cheapest way to run after the current task (queueMicrotask
    // costs twice as much in Deno), and this runs once per batch.
    RESOLVED.then(this.#flushQueuedNow);
  }

  readonly #flushQueuedNow = (): void => {
    this.#flushQueued = false;
    this.flush();
  };

  /** Send what is queued now, as far as the socket's buffer allows. */
  flush(): void {
    this.#sendQueued();
    if (!this.#unstamped) return;
    if (this.queued === 0) this.#unstamped = false;
    else this.#stamp(performance.now()); // left behind: from now on they wait
  }

  #sendQueued(): void {
    const conn = this.active;
    if (conn === undefined || conn.state !== "open") return;
    const maxFrame = this.#codec.limits.maxFrameBytes;
    const maxMessages = this.#codec.limits.maxMessages;
    while (this.queued > 0) {
      // Reading bufferedAmount is a call into the runtime on some sockets, so it is read only
      // after a good many bytes went out since it last showed room: the buffer overshoots the
      // high water mark by at most that much.
      if (this.#unchecked > UNCHECKED_BYTES) {
        const buffered = conn.bufferedAmount;
        if (buffered > this.#limits.highWaterBytes) {
          // No drain event is common to every WebSocket, so poll until the buffer empties.
          this.#drainTimer ??= setTimeout(() => {
            this.#drainTimer = undefined;
            this.flush();
          }, DRAIN_POLL_MS);
          return;
        }
        this.#unchecked = 0;
      }
      const start = this.#head;
      let end = start;
      let bytes = 0;
      while (end < this.#queue.length && end - start < maxMessages) {
        const s = this.#sizes[end];
        if (end > start && bytes + s > maxFrame) break;
        bytes += s;
        end++;
      }
      let batch: Message[];
      if (start === 0 && end === this.#queue.length) {
        // Everything queued goes: hand over the array rather than copy it.
        batch = this.#queue;
        this.#queue = [];
        this.#sizes = [];
        this.#times = [];
        end = 0;
      } else {
        batch = this.#queue.slice(start, end);
      }
      this.#head = end;
      this.#bytes -= bytes;
      this.#send(conn, batch);
      if (this.active !== conn || conn.state !== "open") break;
    }
    this.#compact();
  }

  /** Drop (and count) messages queued before `now - maxAgeMs`. */
  expire(now: number): void {
    if (this.#unstamped) this.#stamp(now);
    const oldest = now - this.#limits.maxAgeMs;
    while (this.queued > 0 && this.#times[this.#head] < oldest) {
      this.#bytes -= this.#sizes[this.#head];
      this.#head++;
      this.counters.drops++;
    }
    this.#compact();
  }

  /** Send an empty frame, which tells the peer the connection is alive. */
  keepalive(conn: Connection): void {
    const f = this.#codec.encode(this.#header, []);
    conn.send(f);
    this.counters.framesOut++;
    this.counters.bytesOut += f.length;
  }

  /** Drop everything queued (the transport is closing or the peer was removed). */
  clear(): void {
    this.#queue = [];
    this.#sizes = [];
    this.#times = [];
    this.#head = 0;
    this.#bytes = 0;
    this.#unstamped = false;
    this.stopTimers();
  }

  /** Cancel pending timers. */
  stopTimers(): void {
    if (this.#drainTimer !== undefined) clearTimeout(this.#drainTimer);
    this.#drainTimer = undefined;
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
  }

  #send(conn: Connection, batch: Message[]): void {
    let frames: Uint8Array[];
    try {
      const out = this.#codec.encodeBatch(this.#header, batch);
      frames = out.frames;
      this.counters.drops += out.oversized.length;
      this.counters.messagesOut += batch.length - out.oversized.length;
    } catch (e) {
      if (!(e instanceof EncodeError)) throw e;
      this.counters.drops += batch.length;
      this.#onEncodeError(e);
      return;
    }
    for (const f of frames) {
      conn.send(f);
      this.counters.framesOut++;
      this.counters.bytesOut += f.length;
      this.#unchecked += f.length;
    }
  }

  /** Give queued messages that have no time yet the time `now`. */
  #stamp(now: number): void {
    const times = this.#times;
    for (let i = this.#head; i < times.length; i++) if (Number.isNaN(times[i])) times[i] = now;
    this.#unstamped = false;
  }

  #compact(): void {
    const head = this.#head;
    if (head === 0) return;
    if (head === this.#queue.length) {
      this.#queue = [];
      this.#sizes = [];
      this.#times = [];
      this.#head = 0;
      this.#unstamped = false;
    } else if (head > 1024 && head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(head);
      this.#sizes = this.#sizes.slice(head);
      this.#times = this.#times.slice(head);
      this.#head = 0;
    }
  }
}
