/**
 * A TCP proxy on loopback that injects network faults between peers in tests: delay (with jitter,
 * order kept), dropped chunks (a corrupted stream, as a broken middlebox would make), cut (every
 * open connection closed at once), refusal of new connections, and half-open connections (one
 * direction, or both, silently stops forwarding while the sockets stay open: the failure only a
 * keepalive timeout can detect). Faults change at runtime and apply to connections already open.
 *
 * Put one in front of each node's server and give peers the proxy's port instead of the node's.
 * Deno only (it listens with `Deno.listen`).
 *
 * @example
 * ```ts ignore
 * const proxy = FaultProxy.listen({ port: serverPort });
 * proxy.setFaults({ delayMs: 20, jitterMs: 10 });
 * proxy.cut();
 * proxy.setFaults({ forward: false }); // half-open: client-to-server bytes vanish
 * proxy.clearFaults();
 * await proxy.close();
 * ```
 *
 * @module
 */

/** The faults a proxy applies; each field's zero value means "no fault". */
export interface ProxyFaults {
  /** Added one-way delay per chunk, in ms. Order within a direction is kept. */
  readonly delayMs: number;
  /** Extra random delay per chunk, 0..jitterMs ms (order still kept). */
  readonly jitterMs: number;
  /** Probability that a chunk is dropped (the byte stream is then corrupt). */
  readonly dropRate: number;
  /** Whether client-to-server bytes are forwarded (false: black-holed, sockets stay open). */
  readonly forward: boolean;
  /** Whether server-to-client bytes are forwarded. */
  readonly backward: boolean;
  /** Close new connections as soon as they are accepted. */
  readonly refuse: boolean;
}

/** No faults at all. */
export const NO_FAULTS: ProxyFaults = Object.freeze({
  delayMs: 0,
  jitterMs: 0,
  dropRate: 0,
  forward: true,
  backward: true,
  refuse: false,
});

/** Counters of a proxy. */
export interface ProxyStats {
  /** Connections accepted. */
  readonly accepted: number;
  /** Connections refused (while `refuse` was set, or the target was unreachable). */
  readonly refused: number;
  /** Connections closed by `cut`. */
  readonly cut: number;
  /** Chunks forwarded. */
  readonly chunksForwarded: number;
  /** Chunks dropped or black-holed. */
  readonly chunksDropped: number;
  /** Bytes forwarded. */
  readonly bytesForwarded: number;
}

/** Where the proxy forwards to and where it listens. */
export interface FaultProxyOptions {
  /** Interface to listen on. Default 127.0.0.1. */
  readonly hostname?: string;
  /** Port to listen on; 0 picks a free one. Default 0. */
  readonly port?: number;
  /** Uniform random source in [0, 1) for drops and jitter. Default `Math.random`. */
  readonly random?: () => number;
}

interface Pair {
  readonly client: Deno.TcpConn;
  readonly server: Deno.TcpConn;
  closed: boolean;
}

/** A fault-injecting TCP proxy. Create with `FaultProxy.listen`. */
export class FaultProxy {
  /** The port the proxy listens on. */
  readonly port: number;
  /** The interface it listens on. */
  readonly hostname: string;
  readonly #listener: Deno.TcpListener;
  readonly #target: { hostname: string; port: number };
  readonly #random: () => number;
  readonly #pairs = new Set<Pair>();
  readonly #tasks = new Set<Promise<void>>();
  #faults: ProxyFaults = NO_FAULTS;
  #closed = false;
  #stats = {
    accepted: 0,
    refused: 0,
    cut: 0,
    chunksForwarded: 0,
    chunksDropped: 0,
    bytesForwarded: 0,
  };

  private constructor(target: { hostname?: string; port: number }, options: FaultProxyOptions) {
    this.#target = { hostname: target.hostname ?? "127.0.0.1", port: target.port };
    this.#random = options.random ?? Math.random;
    this.#listener = Deno.listen({
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port ?? 0,
    });
    this.port = this.#listener.addr.port;
    this.hostname = this.#listener.addr.hostname;
    this.#track(this.#acceptLoop());
  }

  /** Listen now and forward every connection to `target` (hostname defaults to 127.0.0.1). */
  static listen(
    target: { hostname?: string; port: number },
    options: FaultProxyOptions = {},
  ): FaultProxy {
    return new FaultProxy(target, options);
  }

  /** The faults in force. */
  get faults(): ProxyFaults {
    return this.#faults;
  }

  /** Change some faults; the others stay as they are. Applies to open connections too. */
  setFaults(faults: Partial<ProxyFaults>): void {
    const next = { ...this.#faults, ...faults };
    if (!(next.dropRate >= 0 && next.dropRate <= 1)) {
      throw new RangeError("dropRate must be in [0, 1]");
    }
    if (!(next.delayMs >= 0 && next.jitterMs >= 0)) throw new RangeError("delays must be >= 0");
    this.#faults = Object.freeze(next);
  }

  /** Remove every fault. */
  clearFaults(): void {
    this.#faults = NO_FAULTS;
  }

  /** Close every open connection at once (new ones are still accepted unless `refuse` is set). */
  cut(): void {
    for (const p of this.#pairs) {
      this.#stats.cut++;
      this.#closePair(p);
    }
  }

  /** Connections open through the proxy now. */
  get connections(): number {
    return this.#pairs.size;
  }

  /** The counters. */
  stats(): ProxyStats {
    return { ...this.#stats };
  }

  /** Stop listening, close every connection, and wait for all forwarding to end. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    for (const p of this.#pairs) this.#closePair(p);
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let client: Deno.TcpConn;
      try {
        client = await this.#listener.accept();
      } catch {
        return; // listener closed
      }
      if (this.#closed || this.#faults.refuse) {
        this.#stats.refused++;
        client.close();
        continue;
      }
      this.#track(this.#open(client));
    }
  }

  async #open(client: Deno.TcpConn): Promise<void> {
    let server: Deno.TcpConn;
    try {
      server = await Deno.connect(this.#target);
    } catch {
      this.#stats.refused++;
      client.close();
      return;
    }
    if (this.#closed) {
      client.close();
      server.close();
      return;
    }
    client.setNoDelay(true);
    server.setNoDelay(true);
    this.#stats.accepted++;
    const pair: Pair = { client, server, closed: false };
    this.#pairs.add(pair);
    await Promise.all([
      this.#pipe(pair, client, server, "forward"),
      this.#pipe(pair, server, client, "backward"),
    ]);
    this.#closePair(pair);
  }

  async #pipe(
    pair: Pair,
    from: Deno.TcpConn,
    to: Deno.TcpConn,
    direction: "forward" | "backward",
  ): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    // Writes run on one chain per direction, each released no earlier than the previous one, so
    // delayed chunks keep their order.
    let chain: Promise<void> = Promise.resolve();
    let releaseAt = 0;
    for (;;) {
      let n: number | null;
      try {
        n = await from.read(buf);
      } catch {
        n = null;
      }
      if (n === null || pair.closed) break;
      const f = this.#faults;
      if (!f[direction] || (f.dropRate > 0 && this.#random() < f.dropRate)) {
        this.#stats.chunksDropped++;
        continue;
      }
      const chunk = buf.slice(0, n);
      const delay = f.delayMs + (f.jitterMs > 0 ? this.#random() * f.jitterMs : 0);
      const now = performance.now();
      releaseAt = Math.max(releaseAt, now + delay);
      // The release time is fixed now: waiting `delay` only after the previous chunk's write
      // would add the delays of a burst up and leave a backlog draining long after the fault.
      const due = releaseAt;
      chain = chain.then(async () => {
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        if (pair.closed) return;
        try {
          for (let off = 0; off < chunk.length;) off += await to.write(chunk.subarray(off));
          this.#stats.chunksForwarded++;
          this.#stats.bytesForwarded += chunk.length;
        } catch {
          this.#closePair(pair);
        }
      });
    }
    await chain;
    // One side finished: a real network would deliver the FIN; closing both ends is close enough
    // for WebSockets, which never half-close.
    this.#closePair(pair);
  }

  #closePair(pair: Pair): void {
    if (pair.closed) return;
    pair.closed = true;
    this.#pairs.delete(pair);
    for (const c of [pair.client, pair.server]) {
      try {
        c.close();
      } catch {
        // Already closed.
      }
    }
  }
}
