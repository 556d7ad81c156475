/**
 * Dialing peers with the `ws` package's client, for Deno and Node. The only module that imports
 * `ws`: a browser bundle leaves it out and dials with `nativeDial` (socket.ts).
 *
 * Why not Deno's own client: it leaves Nagle's algorithm on, and a frame of a kilobyte or more
 * waited ~44 ms for the peer's delayed ACK (measured on this machine kind); `ws` sets TCP_NODELAY.
 *
 * @module
 */
import WebSocket from "ws";
import type { Dialer, DialOptions, PeerSocket, SocketEvents } from "./socket.ts";

export type { Dialer, DialOptions, PeerSocket, SocketEvents };

/** TLS settings for dialing `wss://` peers. */
export interface WsDialOptions {
  /** Certificates (PEM) to trust besides the system's: a cluster's own CA or a self-signed peer. */
  readonly ca?: string | readonly string[];
  /** Give up on a connection whose WebSocket upgrade takes longer. Default 10,000 ms. */
  readonly handshakeTimeoutMs?: number;
}

/**
 * A dialer over the `ws` client with `options`. Compression is off (frames are CBOR with opaque
 * commands, and deflate costs more CPU than it saves on loopback and LANs).
 */
export function createWsDialer(options: WsDialOptions = {}): Dialer {
  return (url: string, events: SocketEvents, dial: DialOptions): PeerSocket => {
    const ca = options.ca === undefined
      ? undefined
      : typeof options.ca === "string"
      ? options.ca
      : [...options.ca];
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      maxPayload: dial.maxMessageBytes,
      handshakeTimeout: options.handshakeTimeoutMs ?? 10_000,
      ca,
    });
    let closed = false;
    ws.on("open", () => {
      if (!closed) events.onOpen();
    });
    ws.on("message", (data: WebSocket.RawData, isBinary: boolean) => {
      if (closed) return;
      if (!isBinary) {
        events.onMessage(String(data));
        return;
      }
      // A Buffer is a Uint8Array; whoever keeps bytes from it copies them (the codec does), so
      // Buffer's sharing slice() never leaks further.
      events.onMessage(
        Array.isArray(data)
          ? concat(data)
          : data instanceof ArrayBuffer
          ? new Uint8Array(data)
          : data,
      );
    });
    ws.on("error", () => {
      // A close event follows (ws emits "close" after "error"); it reports the outcome.
    });
    ws.on("close", (code: number, reason: Uint8Array) => {
      if (closed) return;
      closed = true;
      events.onClose(code, new TextDecoder().decode(reason));
    });
    return {
      send(data) {
        if (ws.readyState !== WebSocket.OPEN) return;
        // No callback: a failed write surfaces as an "error" then a "close" event, handled above.
        ws.send(data, SEND_OPTIONS);
      },
      close(code, reason) {
        try {
          if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
          else ws.close(code, reason);
        } catch {
          ws.terminate();
        }
      },
      terminate() {
        ws.terminate();
      },
      get bufferedAmount() {
        return ws.bufferedAmount;
      },
    };
  };
}

const SEND_OPTIONS = { binary: true } as const;

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A `ws` dialer with default options (system CAs only). */
export const wsDial: Dialer = createWsDialer();
