/**
 * One socket between this node and a peer, from the first byte through the handshake to its close.
 * A connection knows nothing of Raft or of other connections: it runs the handshake, then hands
 * every whole message up to its owner (the transport), which decodes and routes it.
 *
 * @module
 */
import type { NodeId } from "../core/types.ts";
import {
  type AcceptorHandshake,
  DialerHandshake,
  type HandshakeStep,
  type Refusal,
} from "./handshake.ts";
import { CLOSE, type PeerSocket, type SocketEvents } from "./socket.ts";

/** Where a connection is in its life. */
export type ConnectionState = "handshake" | "open" | "closed";

/** What a connection tells its owner. Each connection calls `closed` exactly once. */
export interface ConnectionOwner {
  /** The handshake completed: `conn.peer` is authenticated. */
  authenticated(conn: Connection): void;
  /** The handshake failed (the connection closes next). */
  refused(conn: Connection, refusal: Refusal): void;
  /** A message after the handshake. */
  message(conn: Connection, data: Uint8Array | string): void;
  /** The connection is closed, by either side or by failing to open. */
  closed(conn: Connection, code: number, reason: string): void;
}

let serials = 0;

/** One socket and its handshake. */
export class Connection {
  /** Distinct per connection in this process; later connections have larger serials. */
  readonly serial = ++serials;
  /** True when this node dialed. */
  readonly outbound: boolean;
  /**
   * Whether a message arrived (`heardFrom`) or was sent (`spokeTo`) since the owner last cleared
   * the flag. Flags rather than timestamps: reading the clock on every message costs more than
   * the owner's periodic check that turns them into times.
   */
  heardFrom = false;
  /** See `heardFrom`. */
  spokeTo = false;
  /** When the owner last saw `heardFrom` set (performance-clock ms). */
  lastIn: number;
  /** When the owner last saw `spokeTo` set. */
  lastOut: number;
  /** Whether the socket ever opened (a dial that never did failed to connect, not to authenticate). */
  opened = false;
  #state: ConnectionState = "handshake";
  #socket: PeerSocket | undefined;
  readonly #owner: ConnectionOwner;
  readonly #dialer: DialerHandshake | undefined;
  readonly #acceptor: AcceptorHandshake | undefined;
  #peer: NodeId;
  #pending: (Uint8Array | string)[] = [];
  #busy = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #socketClosed = false;
  #closeAfterPump: { code: number; reason: string } | undefined;
  readonly #socketClosedWaiters: (() => void)[] = [];

  /**
   * A connection driven by `handshake`: a `DialerHandshake` (toward `peer`) for an outbound one,
   * an `AcceptorHandshake` for an inbound one. Call `attach` with its socket next.
   */
  constructor(
    owner: ConnectionOwner,
    handshake: DialerHandshake | AcceptorHandshake,
    peer: NodeId,
    handshakeTimeoutMs: number,
  ) {
    this.#owner = owner;
    if (handshake instanceof DialerHandshake) this.#dialer = handshake;
    else this.#acceptor = handshake;
    this.outbound = this.#dialer !== undefined;
    this.#peer = peer;
    this.lastIn = this.lastOut = performance.now();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#state !== "handshake") return;
      this.#refuse({ reason: "timeout", detail: `no handshake within ${handshakeTimeoutMs} ms` });
    }, handshakeTimeoutMs);
  }

  /** The events to give the socket this connection will own. */
  readonly events: SocketEvents = {
    onOpen: () => {
      this.opened = true;
      if (this.#state !== "handshake" || this.#dialer === undefined) return;
      this.#send(this.#dialer.start());
    },
    onMessage: (data) => {
      if (this.#state === "closed") return;
      this.opened = true;
      this.heardFrom = true;
      if (this.#state === "open" && !this.#busy) {
        this.#owner.message(this, data);
        return;
      }
      // During the handshake, steps are asynchronous (WebCrypto): hold what arrives meanwhile.
      this.#pending.push(data);
      if (this.#state === "handshake" && this.#pending.length > 8) {
        this.#refuse({ reason: "unexpected", detail: "flooded during the handshake" });
        return;
      }
      void this.#pump();
    },
    onClose: (code, reason) => {
      this.#socketClosed = true;
      for (const w of this.#socketClosedWaiters.splice(0)) w();
      if (this.#busy) {
        // A handshake step is awaiting WebCrypto: let it and what arrived before the close (often
        // the other side's refusal, which says why) finish first.
        this.#closeAfterPump = { code, reason };
        return;
      }
      this.#finish(code, reason);
    },
  };

  /** Give the connection its socket (once). */
  attach(socket: PeerSocket): void {
    this.#socket = socket;
    if (this.#state === "closed") socket.close(CLOSE.shutdown, "closed");
  }

  /** The peer: the one dialed, or the one that said hello (empty before a hello). */
  get peer(): NodeId {
    return this.#acceptor && this.#peer === "" ? this.#acceptor.peer : this.#peer;
  }

  /** The current state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** Bytes the socket has not yet handed to the network. */
  get bufferedAmount(): number {
    return this.#socket?.bufferedAmount ?? 0;
  }

  /** Send one message on an open connection; ignored otherwise. */
  send(data: Uint8Array): void {
    if (this.#state !== "open") return;
    this.#send(data);
  }

  /**
   * Close now with `code` and `reason`. The owner hears `closed` at once; the socket finishes
   * closing in the background (`socketClosed` resolves then).
   */
  close(code: number, reason: string): void {
    if (this.#state === "closed") return;
    this.#socket?.close(code, reason.slice(0, 100));
    this.#finish(code, reason);
  }

  /**
   * Resolves once the socket reported its close, or after `timeoutMs` (then the socket is
   * terminated, so nothing of it outlives the wait).
   */
  socketClosed(timeoutMs: number): Promise<void> {
    if (this.#socketClosed || this.#socket === undefined) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#socket?.terminate();
        resolve();
      }, timeoutMs);
      this.#socketClosedWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  #send(data: Uint8Array): void {
    this.spokeTo = true;
    this.#socket?.send(data);
  }

  async #pump(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      while (this.#pending.length > 0 && this.#state !== "closed") {
        const data = this.#pending.shift()!;
        if (this.#state === "open") {
          this.#owner.message(this, data);
          continue;
        }
        if (typeof data === "string") {
          this.#refuse({ reason: "malformed", detail: "text message during the handshake" });
          return;
        }
        const step = this.#dialer
          ? await this.#dialer.receive(data)
          : await this.#acceptor!.receive(data);
        // The socket may have closed while the step awaited WebCrypto.
        if (this.state === "closed") return;
        this.#step(step);
      }
    } finally {
      this.#busy = false;
      const closing = this.#closeAfterPump;
      if (closing !== undefined) {
        this.#closeAfterPump = undefined;
        if (this.#state === "handshake") {
          this.#owner.refused(this, { reason: "closed", detail: "closed during the handshake" });
        }
        this.#finish(closing.code, closing.reason);
      }
    }
  }

  #step(step: HandshakeStep): void {
    if (step.kind === "continue") {
      this.#send(step.send);
      return;
    }
    if (step.kind === "refused") {
      if (step.send) this.#send(step.send);
      this.#refuse(step.refusal);
      return;
    }
    if (step.send) this.#send(step.send);
    this.#peer = step.peer;
    this.#state = "open";
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#owner.authenticated(this);
  }

  #refuse(refusal: Refusal): void {
    if (this.#state === "closed") return;
    this.#owner.refused(this, refusal);
    this.close(CLOSE.refused, `refused: ${refusal.reason}`);
  }

  #finish(code: number, reason: string): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#pending = [];
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#owner.closed(this, code, reason);
  }
}
