/**
 * A loopback TCP proxy that injects delay, loss, cuts and half-open connections between peers,
 * for tests of real clusters (Deno only).
 *
 * @module
 */
export {
  FaultProxy,
  type FaultProxyOptions,
  NO_FAULTS,
  type ProxyFaults,
  type ProxyStats,
} from "./src/testing/fault_proxy.ts";
