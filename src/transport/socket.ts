/**
 * The small socket surface the WebSocket transport needs, so it runs on any WebSocket: the
 * runtime's own (browsers, and the accepting side in Deno), or the `ws` package's client
 * (Deno and Node, see ws_dial.ts). A dialer is passed in, never imported here, so a browser
 * bundle of the transport pulls in neither `ws` nor any Deno API.
 *
 * @module
 */

/** What a socket reports to the connection that owns it. Each is called at most as stated. */
export interface SocketEvents {
  /** The socket is open (at most once). */
  onOpen(): void;
  /** One whole WebSocket message: bytes for a binary one, a string for a text one. */
  onMessage(data: Uint8Array | string): void;
  /** The socket closed, or failed to open (exactly once; nothing is reported after it). */
  onClose(code: number, reason: string): void;
}

/** One WebSocket, as the transport uses it. */
export interface PeerSocket {
  /** Queue a binary message. Never throws: a closed socket discards it. */
  send(data: Uint8Array): void;
  /** Close, with a code of 1000 or 3000–4999 and a reason of at most 123 bytes. */
  close(code?: number, reason?: string): void;
  /** Drop the connection at once, without the closing handshake (when a close takes too long). */
  terminate(): void;
  /** Bytes queued by `send` and not yet handed to the network. */
  readonly bufferedAmount: number;
}

/** Limits a dialer applies to the socket it opens. */
export interface DialOptions {
  /** Largest incoming message the socket should accept, in bytes. */
  readonly maxMessageBytes: number;
}

/** Opens a client socket to `url` that reports to `events`. */
export type Dialer = (url: string, events: SocketEvents, options: DialOptions) => PeerSocket;

/** Attaches `events` to a socket that was accepted elsewhere (a server) and returns it. */
export type SocketOpener = (events: SocketEvents) => PeerSocket;

/** Close codes the transport uses (the 4000–4999 range is the application's). */
export const CLOSE = {
  normal: 1000,
  refused: 4001,
  badFrame: 4002,
  duplicate: 4003,
  idle: 4004,
  shutdown: 4005,
  tooLarge: 4006,
} as const;

/**
 * Wrap a standard `WebSocket` (a browser's, or one from `Deno.upgradeWebSocket`) as a
 * `PeerSocket` reporting to `events`. Binary messages arrive as `Uint8Array`s over their own
 * buffer.
 */
export function adoptWebSocket(ws: WebSocket, events: SocketEvents): PeerSocket {
  ws.binaryType = "arraybuffer";
  let closed = false;
  ws.onopen = () => {
    if (!closed) events.onOpen();
  };
  ws.onmessage = (ev: MessageEvent) => {
    if (closed) return;
    const d: unknown = ev.data;
    if (d instanceof ArrayBuffer) events.onMessage(new Uint8Array(d));
    else if (typeof d === "string") events.onMessage(d);
    else events.onMessage("");
  };
  ws.onerror = () => {
    // A close event follows every error event; the reason is reported there.
  };
  ws.onclose = (ev: CloseEvent) => {
    if (closed) return;
    closed = true;
    events.onClose(ev.code, ev.reason);
  };
  return {
    send(data) {
      try {
        if (ws.readyState === WebSocket.OPEN) ws.send(data);
      } catch {
        // Closing under us: the close event reports it.
      }
    },
    close(code, reason) {
      try {
        ws.close(code, reason);
      } catch {
        // Already closed, or a code the runtime refuses: it is closing either way.
        try {
          ws.close();
        } catch {
          // Nothing left to close.
        }
      }
    },
    terminate() {
      // A standard WebSocket has no abort; a close without a code is the closest.
      try {
        ws.close();
      } catch {
        // Nothing left to close.
      }
    },
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
  };
}

/**
 * Dial with the runtime's own `WebSocket` (`globalThis.WebSocket`): what a browser uses. In Deno
 * prefer `wsDial` (ws_dial.ts): Deno's client socket leaves Nagle's algorithm on, which delays
 * frames of a kilobyte or more by tens of milliseconds.
 *
 * @throws {Error} when the runtime has no global `WebSocket`.
 */
export function nativeDial(url: string, events: SocketEvents, _options?: DialOptions): PeerSocket {
  const Ctor = (globalThis as { WebSocket?: typeof WebSocket }).WebSocket;
  if (Ctor === undefined) throw new Error("no global WebSocket here: pass a dialer (wsDial)");
  // A browser's WebSocket has no size limit to set; the codec refuses oversized frames.
  return adoptWebSocket(new Ctor(url), events);
}
