/**
 * The steps of the browser-peer scenario, in the order the driver (`run_browser_peer.ts`) runs
 * and reports them; the test module (`browser_peer_test.ts`) shows one test step per name.
 *
 * @module
 */

/** Every step, in order. Each needs the ones before it. */
export const PEER_STEPS = [
  "two floe node processes (n3 dial-only) elect a leader without the browser",
  "the page bundles without server modules and Chromium starts",
  "the browser node n3 catches up and applies writes made over HTTP",
  "with one Deno node stopped, a write commits: n3's acknowledgement makes the majority",
  "a tab closed and reopened on the same profile, then reloaded, restarts n3 from IndexedDB",
  "a tab with the wrong secret is refused by the Deno nodes; the cluster carries on",
] as const;

/** One step's name. */
export type PeerStep = typeof PEER_STEPS[number];
