/**
 * floe's proving ground, for floe's own tests and for applications that want to test code on
 * top of floe the same way: a virtual clock, a simulated cluster of real `RaftNode`s with the
 * MIT 6.5840 lab's faults and checks, and incremental checkers of Raft's safety properties.
 *
 * @module
 */
export { VirtualClock } from "./src/testing/virtual_clock.ts";
export { Random } from "./src/testing/random.ts";
export { commandKey, SafetyChecker, SafetyViolation } from "./src/testing/safety_checker.ts";
export {
  ClusterCheckError,
  intCommand,
  SimCluster,
  type SimClusterOptions,
  type SimNodeOptions,
} from "./src/testing/sim_cluster.ts";
export {
  replayCommand,
  simulate,
  type SimulationFailure,
  type SimulationOptions,
  type SimulationReport,
  type SimulationSettings,
} from "./src/testing/fault_simulation.ts";
export {
  checkLinearizable,
  type CheckOk,
  type CheckOptions,
  type CheckResult,
  type CheckUnknown,
  type CheckViolation,
  HistoryRecorder,
  type Model,
  type Operation,
} from "./src/testing/linearizability.ts";
export * from "./src/testing/kv_model.ts";
export {
  KvSimClient,
  type KvSimClientOptions,
  type KvSimClientStats,
  type KvSimLeg,
  passTime,
} from "./src/testing/kv_sim_client.ts";
export {
  type AppendRecord,
  checkAppendsExactlyOnce,
  kvReplayCommand,
  KvSimulationFailure,
  type KvSimulationOptions,
  type KvSimulationReport,
  type KvSimulationSettings,
  simulateKv,
} from "./src/testing/kv_simulation.ts";
