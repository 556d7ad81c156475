/**
 * A bare WebSocket client for tests that speak to a transport by hand: run the handshake (or
 * not), then send whatever bytes a test wants.
 *
 * @module
 */
import type { NodeId } from "../../src/core/types.ts";
import { DialerHandshake, type HandshakeKey } from "../../src/transport/handshake.ts";
import type { PeerSocket } from "../../src/transport/socket.ts";
import { wsDial } from "../../src/transport/ws_dial.ts";

/** One client socket with an inbox and a close promise. */
export class RawClient {
  /** The socket. */
  readonly socket: PeerSocket;
  /** Resolves with the close code. */
  readonly closed: Promise<number>;
  readonly #inbox: (Uint8Array | string)[] = [];
  #wake: (() => void) | undefined;
  #isClosed = false;

  private constructor(url: string, opened: () => void) {
    let onClosed!: (code: number) => void;
    this.closed = new Promise((r) => (onClosed = r));
    this.socket = wsDial(url, {
      onOpen: opened,
      onMessage: (d) => {
        this.#inbox.push(d);
        this.#wake?.();
      },
      onClose: (code) => {
        this.#isClosed = true;
        onClosed(code);
        this.#wake?.();
      },
    }, { maxMessageBytes: 16 * 1024 * 1024 });
  }

  /** Connect to `url`; rejects when the socket closes before opening. */
  static async connect(url: string): Promise<RawClient> {
    let opened!: () => void;
    const open = new Promise<void>((r) => (opened = r));
    const c = new RawClient(url, opened);
    await Promise.race([
      open,
      c.closed.then((code) => Promise.reject(new Error(`closed ${code}`))),
    ]);
    return c;
  }

  /** The next message, or undefined once closed. */
  async next(): Promise<Uint8Array | string | undefined> {
    while (this.#inbox.length === 0) {
      if (this.#isClosed) return undefined;
      await new Promise<void>((r) => (this.#wake = r));
      this.#wake = undefined;
    }
    return this.#inbox.shift();
  }

  /** Run the dialer's handshake as `self` toward `target`; resolves true when welcomed. */
  async authenticate(
    key: HandshakeKey | Promise<HandshakeKey>,
    cluster: string,
    self: NodeId,
    target: NodeId,
  ): Promise<boolean> {
    const hs = new DialerHandshake({ key, cluster, self }, target);
    this.socket.send(hs.start());
    for (;;) {
      const msg = await this.next();
      if (msg === undefined || typeof msg === "string") return false;
      const step = await hs.receive(msg);
      if (step.send) this.socket.send(step.send);
      if (step.kind === "done") return true;
      if (step.kind === "refused") return false;
    }
  }
}
