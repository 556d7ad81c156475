/**
 * A floe cluster of real processes for tests and benchmarks: each node is a `floe node` process
 * (FileStorage in its own directory under one temp directory, loopback ports), started, killed
 * with any signal and restarted from its directory. Deno only.
 *
 * With `proxied`, every directed link goes through its own `FaultProxy`: node a's peer list names
 * b at the address of proxy a→b, which forwards to b. Each pair of nodes shares one WebSocket,
 * dialed by either side, so `linkFaults(a, b, ...)` sets both a→b and b→a; a partition is
 * `refuse` plus a cut. Clients talk to the nodes directly (`url(id)`); requests a follower
 * forwards to the leader take the faulty links like peer traffic does.
 *
 * @example
 * ```ts ignore
 * const cluster = await ProcessCluster.start({ size: 3 });
 * try {
 *   const leader = await cluster.waitForLeader();
 *   await cluster.kill(leader);
 *   await cluster.waitForLeader({ excluding: [leader] });
 *   await cluster.restart(leader);
 * } finally {
 *   await cluster.close();
 * }
 * ```
 *
 * @module
 */
import { FaultProxy, type ProxyFaults } from "./fault_proxy.ts";
import { freePorts } from "./free_port.ts";
import { SpawnedProcess } from "./spawned_process.ts";

/** What `/status` answers (the fields this harness reads; see the HTTP API). */
export interface NodeStatus {
  /** Node id. */
  readonly id: string;
  /** "leader", "follower", "candidate", ... */
  readonly role: string;
  /** Current term. */
  readonly term: number;
  /** The leader this node knows of, if any. */
  readonly leader?: string | null;
  /** Commit index. */
  readonly commit: number;
  /** Applied index. */
  readonly applied: number;
  /** Last log index. */
  readonly lastIndex: number;
  /** Index of the latest snapshot. */
  readonly snapshotIndex?: number;
}

/** How to build the cluster. */
export interface ProcessClusterOptions {
  /** Number of nodes, named n1..nN. */
  readonly size: number;
  /** Put a `FaultProxy` on every directed link. Default false. */
  readonly proxied?: boolean;
  /** Cluster secret. Default a fixed test secret. */
  readonly secret?: string;
  /** Cluster name. Default "floe-test". */
  readonly cluster?: string;
  /** Where to make the temp directory holding every node's data. Default the OS temp dir. */
  readonly parentDir?: string;
  /** The nodes `start` starts (the others wait for `startNode`). Default: all. */
  readonly initial?: readonly string[];
  /** Extra arguments for every `floe node`. */
  readonly extraArgs?: readonly string[];
  /** Extra environment for every node process. */
  readonly env?: Record<string, string>;
  /** How long a node may take to print its ready line. Default 30,000 ms. */
  readonly readyTimeoutMs?: number;
  /** Keep the data directory at `close` (for a post-mortem). Default false. */
  readonly keepData?: boolean;
  /** Each output line of every node, for debugging. */
  readonly onLine?: (id: string, line: string) => void;
}

/** Options of the waits. */
export interface WaitOptions {
  /** Give up after this long. Default 30,000 ms. */
  readonly timeoutMs?: number;
}

const FLOE_CLI = new URL("../cli/floe.ts", import.meta.url).pathname;
const POLL_MS = 50;

/** A cluster of `floe node` processes. Create with `ProcessCluster.start`. */
export class ProcessCluster {
  /** Node ids, n1..nN. */
  readonly ids: readonly string[];
  /** The directory holding every node's data directory. */
  readonly dir: string;
  /** The shared cluster secret the nodes were given. */
  readonly secret: string;
  /** The cluster name the nodes were given. */
  readonly clusterName: string;
  readonly #options: ProcessClusterOptions;
  readonly #ports = new Map<string, number>();
  readonly #proxies = new Map<string, FaultProxy>();
  readonly #procs = new Map<string, SpawnedProcess>();
  readonly #startedAt = new Map<string, number>();
  #closed = false;

  private constructor(options: ProcessClusterOptions, dir: string) {
    this.#options = options;
    this.dir = dir;
    this.secret = options.secret ?? "process-cluster-secret-0123456789";
    this.clusterName = options.cluster ?? "floe-test";
    this.ids = Array.from({ length: options.size }, (_, i) => `n${i + 1}`);
    const ports = freePorts(options.size);
    this.ids.forEach((id, i) => this.#ports.set(id, ports[i]));
    if (options.proxied) {
      for (const from of this.ids) {
        for (const to of this.ids) {
          if (from !== to) {
            this.#proxies.set(`${from}>${to}`, FaultProxy.listen({ port: this.#ports.get(to)! }));
          }
        }
      }
    }
  }

  /** Make the directories and proxies, start the nodes, and wait until each is ready. */
  static async start(options: ProcessClusterOptions): Promise<ProcessCluster> {
    if (!Number.isInteger(options.size) || options.size < 1) {
      throw new RangeError(`size must be a positive integer, got ${options.size}`);
    }
    const dir = await Deno.makeTempDir({ dir: options.parentDir, prefix: "floe-cluster-" });
    const cluster = new ProcessCluster(options, dir);
    try {
      const initial = options.initial ?? cluster.ids;
      await Promise.all(initial.map((id) => cluster.startNode(id)));
    } catch (e) {
      await cluster.close();
      throw e;
    }
    return cluster;
  }

  /** The HTTP base URL of node `id` (direct, never through a proxy). */
  url(id: string): string {
    return `http://127.0.0.1:${this.#port(id)}`;
  }

  /** The port node `id` listens on. */
  port(id: string): number {
    return this.#port(id);
  }

  /** Node `id`'s data directory. */
  dataDir(id: string): string {
    return `${this.dir}/${id}`;
  }

  /** Node `id`'s process, if it was ever started (it may have exited). */
  process(id: string): SpawnedProcess | undefined {
    return this.#procs.get(id);
  }

  /** Whether node `id` runs now. */
  isRunning(id: string): boolean {
    const p = this.#procs.get(id);
    return p !== undefined && !p.exited;
  }

  /** The nodes running now. */
  running(): string[] {
    return this.ids.filter((id) => this.isRunning(id));
  }

  /** The latest output of node `id`. */
  output(id: string): string {
    return this.#procs.get(id)?.output() ?? "";
  }

  /** The latest output of every node, for a failure message. */
  outputs(lines = 40): string {
    return this.ids.map((id) => {
      const text = this.output(id).split("\n").slice(-lines).join("\n");
      return `--- ${id} (${this.isRunning(id) ? "running" : "stopped"}) ---\n${text}`;
    }).join("\n");
  }

  /**
   * Start node `id` (it must not be running) from its data directory and wait for its ready
   * line. Returns the process.
   */
  async startNode(id: string): Promise<SpawnedProcess> {
    this.#port(id);
    if (this.isRunning(id)) throw new Error(`${id} is already running`);
    if (this.#closed) throw new Error("the cluster is closed");
    await Deno.mkdir(this.dataDir(id), { recursive: true });
    const args = [
      "run",
      "-A",
      FLOE_CLI,
      "node",
      "--id",
      id,
      "--listen",
      `127.0.0.1:${this.#port(id)}`,
      "--data",
      this.dataDir(id),
      "--peers",
      this.#peerList(id),
      "--secret",
      this.secret,
      "--cluster",
      this.clusterName,
      // A node whose parent died (and with it this pipe) stops too: no orphans.
      "--stop-with-stdin",
      ...(this.#options.extraArgs ?? []),
    ];
    const onLine = this.#options.onLine;
    const proc = SpawnedProcess.spawn({
      name: `floe node ${id}`,
      command: Deno.execPath(),
      args,
      env: { NO_COLOR: "1", ...this.#options.env },
      holdStdin: true,
      onLine: onLine && ((line) => onLine(id, line)),
    });
    this.#procs.set(id, proc);
    this.#startedAt.set(id, performance.now());
    await proc.waitForLine(
      new RegExp(`^floe node ${id} ready `),
      this.#options.readyTimeoutMs ?? 30_000,
    );
    return proc;
  }

  /** Send `signal` (default SIGKILL) to node `id` and wait until it has exited. */
  async kill(id: string, signal: Deno.Signal = "SIGKILL"): Promise<Deno.CommandStatus | undefined> {
    return await this.#procs.get(id)?.kill(signal);
  }

  /** Kill node `id` (SIGKILL unless told) if running, then start it again from its directory. */
  async restart(id: string, signal: Deno.Signal = "SIGKILL"): Promise<SpawnedProcess> {
    await this.kill(id, signal);
    return await this.startNode(id);
  }

  /** The proxy carrying connections node `from` dials to node `to` (proxied clusters only). */
  proxy(from: string, to: string): FaultProxy {
    const p = this.#proxies.get(`${from}>${to}`);
    if (p === undefined) {
      throw new Error(`no proxy ${from} -> ${to}${this.#options.proxied ? "" : " (not proxied)"}`);
    }
    return p;
  }

  /** Set `faults` on the link between `a` and `b`, both directions of dialing. */
  linkFaults(a: string, b: string, faults: Partial<ProxyFaults>): void {
    this.proxy(a, b).setFaults(faults);
    this.proxy(b, a).setFaults(faults);
  }

  /** Close every open connection between `a` and `b` (they reconnect unless refused). */
  cutLink(a: string, b: string): void {
    this.proxy(a, b).cut();
    this.proxy(b, a).cut();
  }

  /**
   * Partition: no connection between a node of `side` and one outside it, until `heal`. Open
   * connections are cut and new ones refused.
   */
  partition(side: readonly string[]): void {
    for (const a of side) {
      for (const b of this.ids) {
        if (side.includes(b)) continue;
        this.linkFaults(a, b, { refuse: true });
        this.cutLink(a, b);
      }
    }
  }

  /** Remove every fault from every link. */
  heal(): void {
    for (const p of this.#proxies.values()) p.clearFaults();
  }

  /** Node `id`'s /status, or undefined when it does not answer within `timeoutMs`. */
  async status(id: string, timeoutMs = 2000): Promise<NodeStatus | undefined> {
    if (!this.isRunning(id)) return undefined;
    // A timer cleared in `finally` rather than AbortSignal.timeout, whose timer outlives the call
    // and trips Deno's test sanitizers.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      const res = await fetch(`${this.url(id)}/status`, { signal: abort.signal });
      if (!res.ok) {
        await res.body?.cancel();
        return undefined;
      }
      return await res.json() as NodeStatus;
    } catch {
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /** /status of every running node that answers. */
  async statuses(): Promise<Map<string, NodeStatus>> {
    const out = new Map<string, NodeStatus>();
    await Promise.all(
      this.running().map(async (id) => {
        const s = await this.status(id);
        if (s) out.set(id, s);
      }),
    );
    return out;
  }

  /**
   * Poll `condition` until it returns true; throws after the timeout with `what` and every
   * node's latest output.
   */
  async waitFor(
    what: string,
    condition: () => boolean | Promise<boolean>,
    options: WaitOptions = {},
  ): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (await condition()) return;
      if (performance.now() > deadline) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${this.outputs()}`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  /**
   * Wait for a leader that a majority of the cluster, counting the leader, names in the leader's
   * term; returns its id. `excluding` nodes are not accepted as the leader.
   */
  async waitForLeader(
    options: WaitOptions & { readonly excluding?: readonly string[] } = {},
  ): Promise<string> {
    let found: string | undefined;
    await this.waitFor("a leader a majority agrees on", async () => {
      found = this.#agreedLeader(await this.statuses(), options.excluding ?? []);
      return found !== undefined;
    }, options);
    return found!;
  }

  /** Wait until node `id`'s applied index reaches `index`. */
  async waitForApplied(id: string, index: number, options: WaitOptions = {}): Promise<void> {
    let last: number | undefined;
    await this.waitFor(`${id} to apply up to ${index} (last seen ${last})`, async () => {
      last = (await this.status(id))?.applied;
      return last !== undefined && last >= index;
    }, options);
  }

  /** Resident memory of node `id`'s process in bytes (Linux), undefined when not running. */
  async rssBytes(id: string): Promise<number | undefined> {
    return await this.#procs.get(id)?.rssBytes();
  }

  /**
   * Kill every node (SIGKILL; with `graceful`, SIGTERM first and a wait), close the proxies and
   * remove the data directory (unless `keepData`). Safe to call twice.
   */
  async close(graceful = false): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#procs.values()].map((p) => graceful ? p.stop(5000) : p.kill()));
    await Promise.all([...this.#proxies.values()].map((p) => p.close()));
    if (!this.#options.keepData) await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  #agreedLeader(
    statuses: Map<string, NodeStatus>,
    excluding: readonly string[],
  ): string | undefined {
    const majority = Math.floor(this.ids.length / 2) + 1;
    for (const [id, s] of statuses) {
      if (s.role !== "leader" || excluding.includes(id)) continue;
      let votes = 0;
      for (const other of statuses.values()) {
        if (other.term === s.term && (other.leader === id || other.id === id)) votes++;
      }
      if (votes >= majority) return id;
    }
    return undefined;
  }

  #port(id: string): number {
    const port = this.#ports.get(id);
    if (port === undefined) throw new Error(`no node ${id} in ${this.ids.join(", ")}`);
    return port;
  }

  #peerList(self: string): string {
    return this.ids.map((id) => {
      const port = id === self || !this.#options.proxied
        ? this.#port(id)
        : this.proxy(self, id).port;
      return `${id}=127.0.0.1:${port}`;
    }).join(",");
  }
}
