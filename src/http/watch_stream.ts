/**
 * A watch as a server-sent event stream: the changes under a prefix from a revision on, first
 * the retained history (read a page at a time, as fast as the client takes it), then each new
 * change as it is applied.
 *
 * Events: `id: <revision>` + `event: put|delete` + `data: {"key","revision","value"?}` (value in
 * base64, puts only); `event: compacted` + `data: {"oldestRevision"}` when the history no longer
 * reaches back to the watcher (the stream then ends); `event: error` + `data: {"code":
 * "watch-overflow","message"}` when the client reads so slowly that more than the buffer limit
 * of live changes waits for it (the stream then ends: the client resumes with `Last-Event-ID`,
 * nothing is ever skipped silently). Comments keep the connection alive.
 *
 * @module
 */
import { KvCompactedError } from "../kv/kv_errors.ts";
import type { KvChange } from "../kv/kv_query.ts";
import type { KvStateMachine, KvWatchEvent } from "../kv/kv_state_machine.ts";
import { bytesToBase64 } from "./base64.ts";
import { formatSseComment, formatSseEvent } from "./sse.ts";

/** What `openWatchStream` needs. */
export interface WatchStreamOptions {
  /** The store watched. */
  readonly kv: KvStateMachine;
  /** Only keys starting with this. */
  readonly prefix: string;
  /** The first revision wanted (≥ 1). */
  readonly from: number;
  /** Ends the stream (the request's signal, the API's shutdown). */
  readonly signal?: AbortSignal;
  /** Interval of keep-alive comments, ms. */
  readonly keepAliveMs: number;
  /** Most bytes of events waiting for a slow client before its stream ends with an error. */
  readonly maxBufferedBytes: number;
}

const encoder = new TextEncoder();

/** The event for one change. */
export function changeEvent(change: KvChange): string {
  const data = change.kind === "put"
    ? { key: change.key, revision: change.revision, value: bytesToBase64(change.value) }
    : { key: change.key, revision: change.revision };
  return formatSseEvent({
    id: String(change.revision),
    event: change.kind,
    data: JSON.stringify(data),
  });
}

/** The event that ends a watch whose position the history no longer reaches. */
export function compactedEvent(oldestRevision: number): string {
  return formatSseEvent({ event: "compacted", data: JSON.stringify({ oldestRevision }) });
}

/** The stream of a watch; it ends when `signal` aborts or the client goes away. */
export function openWatchStream(options: WatchStreamOptions): ReadableStream<Uint8Array> {
  const { kv, prefix, signal } = options;
  let next = options.from;
  let live = false;
  let done = false;
  let unsubscribe: (() => void) | undefined;
  let keepAlive: ReturnType<typeof setInterval> | undefined;
  let ctrl!: ReadableStreamDefaultController<Uint8Array>;

  const finish = () => {
    if (done) return;
    done = true;
    unsubscribe?.();
    unsubscribe = undefined;
    if (keepAlive !== undefined) clearInterval(keepAlive);
    signal?.removeEventListener("abort", onAbort);
  };
  const end = (last?: string) => {
    if (done) return;
    if (last !== undefined) ctrl.enqueue(encoder.encode(last));
    finish();
    ctrl.close();
  };
  const onAbort = () => end();

  // Live changes arrive while the store applies a command: queue them, never block or throw.
  let replaying = false;
  const push = (text: string) => {
    if (done) return;
    const chunk = encoder.encode(text);
    const room = ctrl.desiredSize ?? 0;
    // A replayed page was asked for (pull) and is bounded by the store's page size.
    if (!replaying && room < options.maxBufferedBytes && chunk.length > room) {
      end(formatSseEvent({
        event: "error",
        data: JSON.stringify({
          code: "watch-overflow",
          message: `the client fell more than ${options.maxBufferedBytes} bytes of changes ` +
            `behind; resume from the last revision received`,
        }),
      }));
      return;
    }
    ctrl.enqueue(chunk);
  };
  const listener = (event: KvWatchEvent) => {
    if (event.type === "change") push(changeEvent(event.change));
    else end(compactedEvent(event.oldestRevision));
  };

  return new ReadableStream<Uint8Array>({
    start(controller) {
      ctrl = controller;
      if (signal?.aborted) {
        done = true;
        controller.close();
        return;
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      controller.enqueue(encoder.encode(formatSseComment(`watching from revision ${next}`)));
      keepAlive = setInterval(() => {
        if (!done && (ctrl.desiredSize ?? 0) > 0) {
          ctrl.enqueue(encoder.encode(formatSseComment("keep-alive")));
        }
      }, options.keepAliveMs);
    },
    // The history is replayed a page per pull, so a slow client holds back the replay instead
    // of buffering all of it; once caught up, the watch subscribes in the same turn.
    pull() {
      if (done || live) return;
      try {
        if (next <= kv.appliedIndex) {
          const page = kv.changesSince(prefix, next);
          replaying = true;
          for (const change of page.changes) push(changeEvent(change));
          replaying = false;
          next = Math.max(next, page.next);
          if (done || next <= kv.appliedIndex) return;
        }
        live = true;
        unsubscribe = kv.watch(prefix, next, listener);
      } catch (e) {
        if (e instanceof KvCompactedError) end(compactedEvent(e.oldestRevision));
        else {
          finish();
          ctrl.error(e);
        }
      }
    },
    cancel() {
      finish();
    },
  }, { highWaterMark: options.maxBufferedBytes, size: (chunk) => chunk.byteLength });
}
