/**
 * Errors of `RaftNode`'s bounds: proposal and read timeouts, the command size limit, the limit
 * of requests waiting at once, and the staleness bound of stale reads. Each carries the figures
 * a caller needs to decide (retry, shrink, go elsewhere).
 *
 * @module
 */

/**
 * A proposal was not applied within `timeoutMs`. Its outcome is unknown: the command may still
 * commit and apply later (it was placed in the log at `index` in `term`), so a retry must be
 * idempotent (the KV layer's sessions make it so).
 */
export class ProposalTimeoutError extends Error {
  /** `index`/`term`: where the proposal was placed; `timeoutMs`: the bound that passed. */
  constructor(readonly index: number, readonly term: number, readonly timeoutMs: number) {
    super(
      `the proposal at index ${index} (term ${term}) was not applied within ${timeoutMs} ms; ` +
        "it may still commit",
    );
    this.name = "ProposalTimeoutError";
  }
}

/**
 * A linearizable read did not complete within `timeoutMs` (no quorum confirmed the leadership,
 * or the state machine did not catch up). Nothing was read; retrying is safe.
 */
export class ReadTimeoutError extends Error {
  /** `timeoutMs`: the bound that passed. */
  constructor(readonly timeoutMs: number) {
    super(`the read did not complete within ${timeoutMs} ms`);
    this.name = "ReadTimeoutError";
  }
}

/** A command is larger than the node accepts (`maxCommandBytes`); nothing was proposed. */
export class CommandTooLargeError extends Error {
  /** `size`: the command's bytes; `limit`: the most accepted. */
  constructor(readonly size: number, readonly limit: number) {
    super(`the command is ${size} bytes, more than the limit of ${limit}`);
    this.name = "CommandTooLargeError";
  }
}

/**
 * Too many proposals (or linearizable reads) are waiting on this node (`maxPendingProposals`);
 * nothing was proposed or read. Retryable once some complete.
 */
export class NodeBusyError extends Error {
  /** Always true: the request may be sent again later. */
  readonly retryable = true;

  /** `pending`: requests of this kind waiting; `limit`: the most allowed. */
  constructor(readonly pending: number, readonly limit: number) {
    super(`${pending} requests are waiting, the limit is ${limit}; retry later`);
    this.name = "NodeBusyError";
  }
}

/**
 * A stale read with a staleness bound was refused: this server has not heard from a current
 * leader (a leader: from a quorum) within `boundMs`, or knows no leader at all.
 */
export class StaleReadError extends Error {
  /**
   * `lastContactMs`: milliseconds since that contact, undefined when there was none in the
   * current term; `boundMs`: the bound asked for.
   */
  constructor(readonly lastContactMs: number | undefined, readonly boundMs: number) {
    super(
      lastContactMs === undefined
        ? `no contact with a current leader; a read within ${boundMs} ms cannot be served here`
        : `last contact with the leader was ${lastContactMs} ms ago, more than the bound of ${boundMs} ms`,
    );
    this.name = "StaleReadError";
  }
}
