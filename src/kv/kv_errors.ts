/**
 * Errors of the replicated key-value store. Each carries what an HTTP layer needs to answer with a
 * status code and a machine-readable body, without parsing messages.
 *
 * @module
 */

/** Why a command or query was refused: its shape is wrong, or a key or value is over a limit. */
export type KvCommandErrorReason = "malformed" | "too-large";

/**
 * A KV command, query or result that does not decode or validate: bad CBOR, a missing or unknown
 * field, a wrong type, a key or value over its limit. `field` names the offending field as a
 * path (`"key"`, `"condition.revision"`, `"session.client"`); `"command"` when the message as a
 * whole is wrong (not CBOR, not a map, too large).
 */
export class KvCommandError extends Error {
  /**
   * `field`: the path of the offending field; `detail`: what is wrong with it (the message is
   * `"field: detail"`); `reason`:
   * `"too-large"` for a size limit (HTTP 413), `"malformed"` otherwise (HTTP 400).
   */
  constructor(
    readonly field: string,
    readonly detail: string,
    readonly reason: KvCommandErrorReason = "malformed",
  ) {
    super(`${field}: ${detail}`);
    this.name = "KvCommandError";
  }
}

/**
 * A snapshot handed to `KvStateMachine.restore` is not one this version can load (corrupt, from
 * another application, from a newer format, or inconsistent with the index it is restored at).
 * The state machine is left as it was.
 */
export class KvSnapshotError extends Error {
  /** `field`: where in the snapshot the problem is; `detail`: what it is. */
  constructor(readonly field: string, detail: string) {
    super(`KV snapshot ${field}: ${detail}`);
    this.name = "KvSnapshotError";
  }
}

/**
 * Changes from `requestedRevision` on are no longer all retained: the history was trimmed past
 * it. Resume from `oldestRevision` (after re-reading the current state, since changes in between
 * are lost to this watcher) — the store never skips changes silently.
 */
export class KvCompactedError extends Error {
  /**
   * `requestedRevision`: the revision asked for; `oldestRevision`: the oldest revision from which
   * every change is still retained.
   */
  constructor(readonly requestedRevision: number, readonly oldestRevision: number) {
    super(
      `revision ${requestedRevision} is compacted; the oldest available revision is ${oldestRevision}`,
    );
    this.name = "KvCompactedError";
  }
}
