/**
 * The contract every transport adapter keeps: fire-and-forget delivery of Raft messages between
 * servers. Raft tolerates loss, duplication and reordering, so a transport may drop under pressure.
 *
 * @module
 */
import type { Message, NodeId } from "../core/types.ts";

/** Receives a batch of messages addressed to this server. */
export type MessageHandler = (messages: readonly Message[]) => void;

/** Carries messages to peers and hands arriving ones to the registered handler. */
export interface Transport {
  /** Send a batch to one peer. Never throws for an unreachable peer: the batch is dropped. */
  send(to: NodeId, messages: readonly Message[]): void;
  /** Register the one handler for arriving messages (a later call replaces it). */
  listen(handler: MessageHandler): void;
  /** Stop sending and receiving. */
  close(): void | Promise<void>;
}
