/**
 * A browser tab as a voting floe member, in real headless Chromium: the tab runs `RaftNode` n3
 * (IndexedDBStorage, WebSocketTransport dialing out with the browser's own WebSocket,
 * KvStateMachine with `leaderNoop`), and two `floe node` processes n1 and n2 (FileStorage in temp
 * directories) list it as `n3=dial-only`: they reach it over the connections the tab opens. Each
 * step of `browser_peer_steps.ts` is a test step:
 *
 * 1. n1 and n2 elect a leader without the tab (two of three voters) and take writes over HTTP;
 * 2. the page bundles without server modules, Chromium starts;
 * 3. the tab's node catches up with those writes, and applies new ones made through either
 *    Deno node;
 * 4. the Deno follower is stopped with SIGTERM and a write to the leader still commits: only the
 *    leader and n3 are left, so n3's acknowledgement is the majority (the leader's /status shows
 *    n3's match at the write's index); the follower is restarted;
 * 5. the tab is closed, the cluster takes writes, a new tab on the same profile restarts n3 from
 *    IndexedDB (its log held what it had applied) and catches up; then that tab is reloaded
 *    (the new page may open the database and dial before the old one let go) and catches up
 *    again;
 * 6. a second tab with the wrong secret is refused: the Deno nodes log the refusal, the imposter
 *    gets no connection and no data, and the real n3 keeps its connections and applies a write
 *    made meanwhile.
 *
 * The scenario runs in a child Deno process (`run_browser_peer.ts`), as the IndexedDB suite's
 * driver does: playwright-core needs `--allow-all` under Deno, and a child can be killed whole.
 * It takes about 3-10 s; the child is killed after `FLOE_BROWSER_PEER_TIMEOUT_MS` (default
 * 120 000), and whatever happens its browser and node processes are stopped and its temp
 * directory (data, profile) deleted. Needs Chromium (see `browser_harness.ts`).
 *
 * @module
 */
import { PEER_STEPS } from "./browser_peer_steps.ts";
import { type CaseResult, parseResult } from "./protocol.ts";

const DRIVER = new URL("./run_browser_peer.ts", import.meta.url).pathname;
const TIMEOUT_MS = Number(Deno.env.get("FLOE_BROWSER_PEER_TIMEOUT_MS") ?? 120_000);

/** Run the driver to its end; its results by step name, and its other output. */
async function runDriver(): Promise<
  { results: Map<string, CaseResult>; output: string[]; timedOut: boolean }
> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", DRIVER],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output: string[] = [];
  const signal = (name: Deno.Signal) => {
    try {
      child.kill(name);
    } catch {
      // Exited meanwhile.
    }
  };
  let killer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    output.push(`stopped: no end after ${TIMEOUT_MS} ms (FLOE_BROWSER_PEER_TIMEOUT_MS)`);
    // SIGTERM lets it stop its browser and nodes; SIGKILL if that hangs.
    signal("SIGTERM");
    killer = setTimeout(() => signal("SIGKILL"), 20_000);
  }, TIMEOUT_MS);
  const results = new Map<string, CaseResult>();
  const [out, err, status] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.status,
  ]);
  clearTimeout(timer);
  clearTimeout(killer);
  for (const line of out.split("\n")) {
    const result = parseResult(line);
    if (result === undefined) output.push(line);
    else results.set(result.name, result);
  }
  output.push(...err.split("\n"), `driver exit: ${status.code}${status.signal ?? ""}`);
  return { results, output: output.filter((l) => l !== "").slice(-100), timedOut };
}

Deno.test({
  name: "chromium: a browser tab is a voting member of a cluster of two floe node processes",
  async fn(t) {
    const { results, output, timedOut } = await runDriver();
    // A step cut short by the stop fails on the browser closing under it; say why.
    const cause = timedOut
      ? `the driver was stopped after ${TIMEOUT_MS} ms (FLOE_BROWSER_PEER_TIMEOUT_MS): `
      : "";
    for (const name of PEER_STEPS) {
      await t.step(name, () => {
        const result = results.get(name);
        if (result === undefined) {
          throw new Error(
            `the driver reported nothing for this step; its output:\n  ${output.join("\n  ")}`,
          );
        }
        if (!result.ok) {
          throw new Error(cause + (result.error ?? "failed").replace(/^Error: /, ""));
        }
      });
    }
  },
});
