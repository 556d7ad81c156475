/**
 * floe: Raft consensus for the edge. One deterministic Raft core (`RaftCore`), driven by
 * `RaftNode` with pluggable `Storage` and `Transport` adapters, running unchanged in Deno,
 * browsers and Node.
 *
 * ```ts
 * import { MemoryStorage, RaftNode } from "@floe/floe";
 * const node = await RaftNode.start({ id: "a", peers: ["a"], storage: new MemoryStorage(), transport });
 * const { index, term } = node.start(new TextEncoder().encode("hello"));
 * ```
 *
 * The simulation harness (virtual clock, simulated cluster, safety checker) is exported from
 * `@floe/floe/testing`.
 *
 * @module
 */
export * from "./src/core/types.ts";
export { ConfigError, NotLeaderError } from "./src/core/errors.ts";
export type { RaftConfig, ResolvedRaftConfig } from "./src/core/config.ts";
export { LogInvariantError } from "./src/core/log.ts";
export type { ProgressState, SnapshotTransfer } from "./src/core/progress.ts";
export { RaftCore } from "./src/core/raft.ts";
export type { CoreStatus, PeerProgress, Proposal } from "./src/core/raft.ts";
export type { MaybePromise, Storage, StorageUpdate } from "./src/storage/storage.ts";
export { MemoryStorage } from "./src/storage/memory_storage.ts";
export type { MemoryStorageOptions } from "./src/storage/memory_storage.ts";
export type { MessageHandler, Transport } from "./src/transport/transport.ts";
export { MemoryNetwork, messageSize } from "./src/transport/memory_network.ts";
export type { MemoryNetworkOptions, Scheduler } from "./src/transport/memory_network.ts";
export { type Cancel, type Clock, RealClock } from "./src/node/clock.ts";
export { QueueOverflowError } from "./src/node/async_queue.ts";
export {
  type Applied,
  type AppliedEntry,
  type AppliedSnapshot,
  type AutoCompactOptions,
  type NodeMetrics,
  type NodeStatus,
  NodeStoppedError,
  ProposalLostError,
  ProposalOutcomeUnknownError,
  RaftNode,
  type RaftNodeOptions,
  type ReadConsistency,
  type ReadOptions,
  type StateChange,
  type StateMachine,
} from "./src/node/raft_node.ts";
export {
  CommandTooLargeError,
  NodeBusyError,
  ProposalTimeoutError,
  ReadTimeoutError,
  StaleReadError,
} from "./src/node/node_errors.ts";
export {
  DEFAULT_EVENT_BUFFER,
  type NodeEvent,
  type NodeEventsOptions,
  type NodeEventState,
  type NodeLeaderEvent,
  type NodeRoleEvent,
  type NodeStateEvent,
  type NodeTermEvent,
} from "./src/node/node_events.ts";
export { DURATION_BUCKETS, type Histogram } from "./src/node/histogram.ts";
export * from "./src/storage/storage_errors.ts";
export {
  INDEXEDDB_FORMAT_VERSION,
  IndexedDBStorage,
  type IndexedDBStorageOptions,
  type Persistence,
} from "./src/storage/indexeddb_storage.ts";
export { openStorage, type OpenStorageOptions, storageKind } from "./src/storage/open_storage.ts";
export * from "./src/kv/kv_errors.ts";
export * from "./src/kv/kv_command.ts";
export * from "./src/kv/kv_query.ts";
export * from "./src/kv/kv_state_machine.ts";
export { compareKeys } from "./src/kv/kv_sorted_keys.ts";
export { EncodeError, FrameCodec, type FrameHeader } from "./src/transport/codec.ts";
export {
  DEFAULT_FRAME_LIMITS,
  FrameError,
  type FrameErrorReason,
  type FrameExpectation,
  type FrameLimits,
} from "./src/transport/frame_validation.ts";
export { HandshakeKey, PROTOCOL_VERSION } from "./src/transport/handshake.ts";
export {
  adoptWebSocket,
  CLOSE,
  type Dialer,
  type DialOptions,
  nativeDial,
  type PeerSocket,
  type SocketEvents,
  type SocketOpener,
} from "./src/transport/socket.ts";
export type { PeerMetrics, QueueLimits } from "./src/transport/peer_link.ts";
export {
  type PeerAddress,
  type TransportLogEntry,
  type TransportMetrics,
  WebSocketTransport,
  type WebSocketTransportOptions,
} from "./src/transport/websocket_transport.ts";
export { createKvHttpApi, type KvHttpApi, type KvHttpApiOptions } from "./src/http/kv_http_api.ts";
export { HttpApiError, type HttpErrorCode } from "./src/http/http_errors.ts";
export type { CorsOrigins } from "./src/http/cors.ts";
export * from "./src/http/floe_headers.ts";
export {
  type FloeChange,
  FloeClient,
  type FloeClientOptions,
  type FloeConsistency,
  type FloeEntry,
  type FloeListPage,
  type FloePeerStatus,
  type FloeSnapshot,
  type FloeStatus,
  type FloeValue,
  type FloeValueEntry,
  type FloeWriteResult,
} from "./src/client/floe_client.ts";
export {
  FloeCompactedError,
  FloeConditionFailedError,
  FloeHttpError,
  FloeNetworkError,
} from "./src/client/floe_errors.ts";
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from "./src/client/retry_policy.ts";
