/**
 * Errors the core raises to its callers.
 *
 * @module
 */
import type { NodeId } from "./types.ts";

/** A request that only the leader can serve reached a server that is not the leader. */
export class NotLeaderError extends Error {
  /** The leader this server knows of, or undefined when it knows none. */
  readonly leaderHint: NodeId | undefined;

  /** `leaderHint`: the known leader, if any. */
  constructor(leaderHint: NodeId | undefined, message?: string) {
    super(
      message ??
        (leaderHint
          ? `not the leader; the leader is ${leaderHint}`
          : "not the leader; no leader known"),
    );
    this.name = "NotLeaderError";
    this.leaderHint = leaderHint;
  }
}

/** A configuration value is missing or out of range. */
export class ConfigError extends Error {
  /** `message` names the field and what is wrong with it. */
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}
