/**
 * The browser-peer scenario's driver: two `floe node` processes (FileStorage in temp
 * directories) and a headless Chromium tab running node n3 (`peer_page.ts`), one cluster of three
 * voters. It runs the steps of `browser_peer_steps.ts` in order and prints one result line per
 * step (`protocol.ts`'s `RESULT_MARK` + JSON); once a step fails, the later ones are reported as
 * not run. `browser_peer_test.ts` runs it as a child process (playwright-core needs
 * `--allow-all` under Deno); by hand:
 *
 * ```sh
 * deno run -A tests/browser/run_browser_peer.ts
 * ```
 *
 * Exits 0 when every step passed, 1 otherwise; on SIGTERM it stops the browser and the nodes and
 * exits 143. The nodes run with `--stop-with-stdin`, so they never outlive this process.
 *
 * @module
 */
import { SpawnedProcess } from "../../src/testing/spawned_process.ts";
import { freePorts } from "../../src/testing/free_port.ts";
import { bundlePage, type PageBundle } from "./browser_harness.ts";
import { PEER_STEPS, type PeerStep } from "./browser_peer_steps.ts";
import { PeerBrowser, type PeerTab } from "./peer_browser.ts";
import type { PeerPageConfig, PeerReport } from "./peer_page.ts";
import { sleep } from "./processes.ts";
import { type CaseResult, RESULT_MARK } from "./protocol.ts";

const FLOE = new URL("../../src/cli/floe.ts", import.meta.url).pathname;
const PEER_PAGE = new URL("./peer_page.ts", import.meta.url);
const SECRET = "browser-peer-secret-0123456789";
const CLUSTER = "floe-browser";
const BROWSER_ID = "n3";
const SERVER_IDS = ["n1", "n2"] as const;
const READY_TIMEOUT_MS = 30_000;
const WAIT_MS = 30_000;

/** Inputs that must never reach a browser bundle: the filesystem adapter, Node, server packages. */
const SERVER_MODULES = [
  /src\/storage\/(file_storage|file_system|wal_\w+)\.ts$/,
  /src\/service\//,
  /(^|\/)node:/,
  /node_modules\/(ws|cbor-extract|playwright-core|esbuild)\//,
];

function checkBundle(bundle: PageBundle): void {
  const server = bundle.inputs.filter((path) => SERVER_MODULES.some((re) => re.test(path)));
  if (server.length > 0) throw new Error(`server modules in the page bundle: ${server.join(", ")}`);
  if (bundle.externalImports.length > 0) {
    throw new Error(`imports left unbundled: ${bundle.externalImports.join(", ")}`);
  }
  for (const needed of ["raft_node.ts", "indexeddb_storage.ts", "websocket_transport.ts"]) {
    if (!bundle.inputs.some((path) => path.endsWith(needed))) {
      throw new Error(`the page bundle does not contain ${needed}`);
    }
  }
}

function fail(message: string): never {
  throw new Error(message);
}

/** What `/status` answers (the fields read here). */
interface NodeStatus {
  readonly role: string;
  readonly leader?: string | null;
  readonly commit: number;
  readonly peers?: readonly { readonly id: string; readonly match: number }[];
}

/** The two Deno nodes: processes, ports, data directories. */
class DenoNodes {
  readonly #dir: string;
  readonly #ports: ReadonlyMap<string, number>;
  readonly #procs = new Map<string, SpawnedProcess>();

  constructor(dir: string) {
    this.#dir = dir;
    const ports = freePorts(SERVER_IDS.length);
    this.#ports = new Map(SERVER_IDS.map((id, i) => [id, ports[i]]));
  }

  url(id: string): string {
    return `http://127.0.0.1:${this.#ports.get(id)}`;
  }

  peerUrl(id: string): string {
    return `ws://127.0.0.1:${this.#ports.get(id)}/floe`;
  }

  /** Start node `id` (again, from its directory) and wait for its ready line. */
  async start(id: string): Promise<void> {
    const peers = [
      ...SERVER_IDS.map((s) => `${s}=127.0.0.1:${this.#ports.get(s)}`),
      `${BROWSER_ID}=dial-only`,
    ].join(",");
    const proc = SpawnedProcess.spawn({
      name: id,
      command: Deno.execPath(),
      args: [
        "run",
        "-A",
        FLOE,
        "node",
        "--id",
        id,
        "--listen",
        `127.0.0.1:${this.#ports.get(id)}`,
        "--data",
        `${this.#dir}/${id}`,
        "--peers",
        peers,
        "--secret",
        SECRET,
        "--cluster",
        CLUSTER,
        "--stop-with-stdin",
      ],
      holdStdin: true,
    });
    this.#procs.set(id, proc);
    await proc.waitForLine(new RegExp(`^floe node ${id} ready `), READY_TIMEOUT_MS);
  }

  /** SIGTERM node `id`; fails unless it exits 0. */
  async stop(id: string): Promise<void> {
    const proc = this.#procs.get(id) ?? fail(`${id} was never started`);
    const status = await proc.stop(10_000);
    if (status.code !== 0) {
      fail(`${id} exited with ${status.code} after SIGTERM; its output:\n${proc.output()}`);
    }
  }

  running(): string[] {
    return SERVER_IDS.filter((id) => this.#procs.get(id)?.exited === false);
  }

  /** Output lines of node `id` so far (stderr lines start with "! "). */
  lines(id: string): string[] {
    return (this.#procs.get(id)?.output() ?? "").split("\n");
  }

  /** Every node's latest output, for failure messages. */
  outputs(): string {
    return [...this.#procs].map(([id, p]) => `--- ${id}:\n${p.output()}`).join("\n");
  }

  async status(id: string): Promise<NodeStatus | undefined> {
    try {
      const r = await fetch(`${this.url(id)}/status`, { signal: AbortSignal.timeout(5_000) });
      if (r.status !== 200) {
        await r.body?.cancel();
        return undefined;
      }
      return await r.json() as NodeStatus;
    } catch {
      return undefined;
    }
  }

  /** The running Deno node that leads, once one does. */
  async leader(): Promise<string> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      for (const id of this.running()) {
        if ((await this.status(id))?.role === "leader") return id;
      }
      if (Date.now() > deadline) {
        fail(`no Deno node leads within ${WAIT_MS} ms; outputs:\n${this.outputs()}`);
      }
      await sleep(100);
    }
  }

  /**
   * PUT `value` at `key` through the nodes `via`, in turn, until one answers 200 (503 and 504
   * mean no leader yet or a commit still waiting; followers forward to the leader). Resolves
   * with the write's revision, which is its log index.
   */
  async put(via: readonly string[], key: string, value: string): Promise<number> {
    const deadline = Date.now() + WAIT_MS;
    let last = "";
    for (let attempt = 0;; attempt++) {
      const id = via[attempt % via.length];
      try {
        const r = await fetch(`${this.url(id)}/kv/${key}`, {
          method: "PUT",
          body: value,
          signal: AbortSignal.timeout(10_000),
        });
        const body = await r.json();
        if (r.status === 200) return body.revision as number;
        last = `${id}: ${r.status} ${JSON.stringify(body)}`;
        if (r.status !== 503 && r.status !== 504) fail(`PUT ${key} failed: ${last}`);
      } catch (e) {
        if (e instanceof Error && e.message.startsWith("PUT ")) throw e;
        last = `${id}: ${e}`;
      }
      if (Date.now() > deadline) fail(`PUT ${key} did not commit within ${WAIT_MS} ms: ${last}`);
      await sleep(200);
    }
  }

  /** SIGTERM every node still running (cleanup). */
  async stopAll(): Promise<void> {
    await Promise.all([...this.#procs.values()].map((p) => p.stop(10_000).catch(() => {})));
  }
}

function hasAll(report: PeerReport, expected: ReadonlyMap<string, string>): boolean {
  for (const [key, value] of expected) if (report.values[key] !== value) return false;
  return true;
}

/**
 * The Deno nodes' log lines about a handshake refused for the secret: the dialer checks the
 * acceptor's proof first, so a node logs `refused-by-peer` (the peer refused: bad-mac) for a
 * dialer with the wrong secret.
 */
function secretRefusals(nodes: DenoNodes): string[] {
  return SERVER_IDS.flatMap((id) =>
    nodes.lines(id).filter((l) => /transport: refused.*bad-mac/.test(l))
  );
}

/** Fails unless n3 found at least the `applied` entries it had applied in its IndexedDB log. */
function checkRestored(report: PeerReport, applied: number): void {
  const restored = report.restored ?? fail("the restarted tab reports no restored state");
  if (restored.lastIndex < applied || restored.term < 1) {
    fail(
      `n3 restarted without its log: IndexedDB held ${JSON.stringify(restored)}, ` +
        `n3 had applied ${applied} before`,
    );
  }
}

/** The scenario; `step` runs and reports one step. */
async function scenario(
  dir: string,
  step: (name: PeerStep, body: () => Promise<void>) => Promise<void>,
  cleanup: { nodes?: DenoNodes; browser?: PeerBrowser },
): Promise<void> {
  const nodes = new DenoNodes(dir);
  cleanup.nodes = nodes;
  const written = new Map<string, string>();
  const write = async (via: readonly string[], key: string, value: string) => {
    const revision = await nodes.put(via, key, value);
    written.set(key, value);
    return revision;
  };
  const config: PeerPageConfig = {
    id: BROWSER_ID,
    members: [...SERVER_IDS, BROWSER_ID],
    dial: Object.fromEntries(SERVER_IDS.map((id) => [id, nodes.peerUrl(id)])),
    cluster: CLUSTER,
    secret: SECRET,
    database: "floe-browser-peer-n3",
  };

  await step(PEER_STEPS[0], async () => {
    await Promise.all(SERVER_IDS.map((id) => nodes.start(id)));
    await nodes.leader();
    for (let i = 1; i <= 3; i++) await write([...SERVER_IDS], `before/${i}`, `b${i}`);
  });

  let bundle: PageBundle | undefined;
  await step(PEER_STEPS[1], async () => {
    bundle = await bundlePage(PEER_PAGE);
    checkBundle(bundle);
    cleanup.browser = await PeerBrowser.start(bundle, `${dir}/profile`);
  });
  const browser = cleanup.browser!;

  let tab: PeerTab | undefined;
  await step(PEER_STEPS[2], async () => {
    tab = await browser.open(config);
    // The writes made before the tab existed reach it through the leader's replication.
    await tab.waitFor(
      "n3 runs and holds the writes made before it joined",
      (r) => r.phase === "running" && hasAll(r, written),
    );
    // Writes through either Deno node (a follower forwards to the leader) are applied in the tab.
    for (let i = 1; i <= 3; i++) await write([SERVER_IDS[i % 2]], `live/${i}`, `l${i}`);
    const report = await tab.waitFor(
      "n3 applies the writes made over HTTP",
      (r) => hasAll(r, written),
    );
    if (report.restored?.lastIndex !== 0) {
      fail(`a new tab's IndexedDB should start empty: ${JSON.stringify(report.restored)}`);
    }
  });

  let leader = "";
  await step(PEER_STEPS[3], async () => {
    leader = await nodes.leader();
    const other = SERVER_IDS.find((id) => id !== leader)!;
    await nodes.stop(other);
    // Of three voters, only the leader and n3 are left: nothing commits without n3's ack.
    const revision = await write([leader], "quorum/1", "q1");
    const status = await nodes.status(leader) ?? fail(`${leader} does not answer /status`);
    const n3 = status.peers?.find((p) => p.id === BROWSER_ID);
    if (status.commit < revision || n3 === undefined || n3.match < revision) {
      fail(`${leader} committed ${revision} without n3's ack? /status: ${JSON.stringify(status)}`);
    }
    await tab!.waitFor("n3 applies the write that needed its ack", (r) => hasAll(r, written));
    // Back to two Deno nodes, so the cluster can take writes while the tab is away.
    await nodes.start(other);
  });

  await step(PEER_STEPS[4], async () => {
    const before = await tab!.report();
    const applied = before.applied ?? fail("n3 reports no applied index");
    await tab!.close();
    for (let i = 1; i <= 3; i++) await write([...SERVER_IDS], `away/${i}`, `a${i}`);
    tab = await browser.open(config);
    const report = await tab.waitFor(
      "the reopened n3 catches up",
      (r) => r.phase === "running" && hasAll(r, written),
    );
    checkRestored(report, applied);
    // A reload: the new page may open the database, and dial, before the old one let go.
    const appliedBeforeReload = report.applied ?? fail("n3 reports no applied index");
    await tab.reload();
    await write([...SERVER_IDS], "reloaded/1", "r1");
    checkRestored(
      await tab.waitFor(
        "the reloaded n3 catches up",
        (r) => r.phase === "running" && hasAll(r, written),
      ),
      appliedBeforeReload,
    );
  });

  await step(PEER_STEPS[5], async () => {
    // The real n3 was never refused.
    const refusedBefore = secretRefusals(nodes);
    if (refusedBefore.length > 0) {
      fail(`a Deno node refused a connection already:\n${refusedBefore.join("\n")}`);
    }
    const imposter = await browser.open({
      ...config,
      secret: "not-the-cluster-secret-0000",
      database: "floe-browser-peer-imposter",
    });
    try {
      const deadline = Date.now() + WAIT_MS;
      while (secretRefusals(nodes).length === 0) {
        if (Date.now() > deadline) fail(`no Deno node logged a refusal:\n${nodes.outputs()}`);
        await sleep(100);
      }
      const report = await imposter.waitFor(
        "the imposter sees its dials refused",
        (r) => r.transportLog.some((l) => /bad-mac/.test(l)),
      );
      if (report.connected.length > 0 || Object.keys(report.values).length > 0) {
        fail(`the imposter got in: ${JSON.stringify(report)}`);
      }
      // The real n3 keeps its connections and applies what the cluster commits meanwhile.
      await write([...SERVER_IDS], "after/imposter", "still-here");
      await tab!.waitFor(
        "n3 applies a write made while the imposter dialed",
        (r) => hasAll(r, written) && r.connected.length === SERVER_IDS.length,
      );
    } finally {
      await imposter.close();
    }
  });
}

async function main(): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "floe-browser-peer-" });
  const cleanup: { nodes?: DenoNodes; browser?: PeerBrowser } = {};
  let stopped: Promise<void> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      await cleanup.browser?.close();
      await cleanup.nodes?.stopAll();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    })();
  // The test module stops a run it no longer needs (or that hangs) with SIGTERM.
  Deno.addSignalListener("SIGTERM", () => void stop().finally(() => Deno.exit(143)));

  let failedAt: string | undefined;
  const step = async (name: PeerStep, body: () => Promise<void>) => {
    const start = performance.now();
    const report = (result: Omit<CaseResult, "name" | "ms">) =>
      console.log(
        RESULT_MARK + JSON.stringify({ name, ms: performance.now() - start, ...result }),
      );
    if (failedAt !== undefined) {
      report({ ok: false, error: `not run: "${failedAt}" failed` });
      throw new StepFailed();
    }
    try {
      await body();
      report({ ok: true });
    } catch (e) {
      failedAt = name;
      report({ ok: false, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
      throw new StepFailed();
    }
  };
  try {
    await scenario(dir, step, cleanup);
  } catch (e) {
    if (!(e instanceof StepFailed)) throw e;
    for (const name of PEER_STEPS.slice(PEER_STEPS.indexOf(failedAt as PeerStep) + 1)) {
      await step(name, () => Promise.resolve()).catch(() => {});
    }
  } finally {
    await stop();
  }
  return failedAt === undefined ? 0 : 1;
}

/** Thrown out of the scenario once a step has failed and was reported. */
class StepFailed extends Error {}

if (import.meta.main) Deno.exit(await main());
