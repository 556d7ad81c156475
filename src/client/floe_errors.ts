/**
 * What `FloeClient` throws: an HTTP error answer of a node (`FloeHttpError`, with its status and
 * the API's error code), its two cases a program handles on purpose (`FloeConditionFailedError`,
 * `FloeCompactedError`), and `FloeNetworkError` when no node could be reached.
 *
 * @module
 */

/** A node answered with an error (after any retries). */
export class FloeHttpError extends Error {
  /**
   * `status`: the HTTP status; `code`: the API's error code (`"bad-request"`, `"no-leader"`,
   * ...); `details`: the other fields of the error body.
   */
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
    this.name = "FloeHttpError";
  }
}

/** A conditional write (`ifRevision`, `ifAbsent`) found the key elsewhere: HTTP 412. */
export class FloeConditionFailedError extends FloeHttpError {
  /** `revision`: the key's current revision (0: it does not exist). */
  constructor(readonly revision: number, message: string) {
    super(412, "failed-condition", message, { revision });
    this.name = "FloeConditionFailedError";
  }
}

/**
 * A watch asked for changes older than the store retains: changes were lost to it. Re-read the
 * state and watch again from `oldestRevision` or later.
 */
export class FloeCompactedError extends FloeHttpError {
  /** `oldestRevision`: the oldest revision a watch can start from. */
  constructor(readonly oldestRevision: number) {
    super(
      410,
      "compacted",
      `the watch's revision is compacted; the oldest available is ${oldestRevision}`,
      { oldestRevision },
    );
    this.name = "FloeCompactedError";
  }
}

/** No endpoint could be reached within the retry budget; `cause` is the last failure. */
export class FloeNetworkError extends Error {
  /** `message` says what was tried. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "FloeNetworkError";
  }
}
