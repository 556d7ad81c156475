/**
 * The core's configuration, in ticks (the driver decides how long a tick is), with defaults and
 * validation that names the offending field.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";
import type { NodeId } from "./types.ts";

/** Settings for one `RaftCore`. */
export interface RaftConfig {
  /** This server's id. */
  readonly id: NodeId;
  /** Every voting member, this server included. */
  readonly voters: readonly NodeId[];
  /** Seed of the election-timeout jitter; a run replays exactly from it. */
  readonly seed: number;
  /** Shortest election timeout, in ticks. Default 30. */
  readonly electionTicks?: number;
  /** Election timeouts are drawn from [electionTicks, electionTicksMax]. Default 2 × electionTicks. */
  readonly electionTicksMax?: number;
  /** Ticks between a leader's heartbeats; must be below electionTicks. Default 10. */
  readonly heartbeatTicks?: number;
  /** Ask for a pre-vote before disturbing the cluster with a new term (thesis §9.6). Default true. */
  readonly preVote?: boolean;
  /**
   * A leader that has not heard from a quorum for the longest election timeout steps down, and servers
   * that hear from a live leader ignore vote requests (thesis §6.2). Default true.
   */
  readonly checkQuorum?: boolean;
  /** Appends in flight per follower while streaming. Default 256. */
  readonly maxInflight?: number;
  /** Entries per append at most. Default 4096. */
  readonly maxEntriesPerAppend?: number;
  /** Bytes of command data per append at most (one larger entry still goes alone). Default 1 MiB. */
  readonly maxAppendBytes?: number;
  /** Bytes per InstallSnapshot chunk. Default 1 MiB. */
  readonly snapshotChunkBytes?: number;
  /** Snapshot chunks in flight per follower. Default 4. */
  readonly snapshotWindow?: number;
  /** Bytes of committed entries handed out per `Ready` at most. Default 16 MiB. */
  readonly maxApplyBytes?: number;
  /**
   * A new leader appends an entry with an empty command at once, so it commits an entry of its
   * term (and so everything before it, and can serve reads) without waiting for a proposal.
   * Off by default: the 6.5840 lab expects the first command at index 1; then the first read of
   * a term with no entry appends the no-op instead (see `readIndex`). Default false.
   */
  readonly leaderNoop?: boolean;
  /** Index the state machine already reflects after a restart (entries up to it are not re-applied). Default 0. */
  readonly applied?: number;
}

/** A `RaftConfig` with every default filled in. */
export type ResolvedRaftConfig = Required<RaftConfig>;

function positiveInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new ConfigError(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/** Fill in defaults and check every field; throws `ConfigError` naming the first bad one. */
export function resolveConfig(config: RaftConfig): ResolvedRaftConfig {
  if (typeof config.id !== "string" || config.id === "") {
    throw new ConfigError("id must be a non-empty string");
  }
  if (!Array.isArray(config.voters) || config.voters.length === 0) {
    throw new ConfigError("voters must list at least one server");
  }
  const seen = new Set<string>();
  for (const v of config.voters) {
    if (typeof v !== "string" || v === "") {
      throw new ConfigError("voters must be non-empty strings");
    }
    if (seen.has(v)) throw new ConfigError(`voters lists ${v} twice`);
    seen.add(v);
  }
  if (!Number.isFinite(config.seed)) {
    throw new ConfigError(`seed must be a number, got ${config.seed}`);
  }
  const electionTicks = positiveInt("electionTicks", config.electionTicks ?? 30);
  const electionTicksMax = positiveInt(
    "electionTicksMax",
    config.electionTicksMax ?? 2 * electionTicks,
  );
  if (electionTicksMax < electionTicks) {
    throw new ConfigError(
      `electionTicksMax (${electionTicksMax}) must be at least electionTicks (${electionTicks})`,
    );
  }
  const heartbeatTicks = positiveInt("heartbeatTicks", config.heartbeatTicks ?? 10);
  if (heartbeatTicks >= electionTicks) {
    throw new ConfigError(
      `heartbeatTicks (${heartbeatTicks}) must be below electionTicks (${electionTicks})`,
    );
  }
  const applied = config.applied ?? 0;
  if (!Number.isInteger(applied) || applied < 0) {
    throw new ConfigError(`applied must be a non-negative integer, got ${applied}`);
  }
  return {
    id: config.id,
    voters: [...config.voters],
    seed: config.seed,
    electionTicks,
    electionTicksMax,
    heartbeatTicks,
    preVote: config.preVote ?? true,
    checkQuorum: config.checkQuorum ?? true,
    leaderNoop: config.leaderNoop ?? false,
    maxInflight: positiveInt("maxInflight", config.maxInflight ?? 256),
    maxEntriesPerAppend: positiveInt("maxEntriesPerAppend", config.maxEntriesPerAppend ?? 4096),
    maxAppendBytes: positiveInt("maxAppendBytes", config.maxAppendBytes ?? 1 << 20),
    snapshotChunkBytes: positiveInt("snapshotChunkBytes", config.snapshotChunkBytes ?? 1 << 20),
    snapshotWindow: positiveInt("snapshotWindow", config.snapshotWindow ?? 4),
    maxApplyBytes: positiveInt("maxApplyBytes", config.maxApplyBytes ?? 16 << 20),
    applied,
  };
}
