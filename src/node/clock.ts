/**
 * Time as the node sees it. The node never reads the runtime's clock directly, so a simulation can
 * run it in virtual time (`VirtualClock`) and a server in real time (`RealClock`).
 *
 * @module
 */

/** Cancels a scheduled callback; calling it after the callback ran does nothing. */
export type Cancel = () => void;

/** A source of time and timers. */
export interface Clock {
  /** Milliseconds since an arbitrary origin; never decreases. */
  now(): number;
  /** Run `fn` once after `delayMs` milliseconds. */
  schedule(delayMs: number, fn: () => void): Cancel;
  /** Run `fn` soon, after the current synchronous work, before any timer that is due later. */
  defer(fn: () => void): void;
}

/** The runtime's clock: `performance.now()`, `setTimeout` and microtasks. */
export class RealClock implements Clock {
  /** Milliseconds from `performance.now()`. */
  now(): number {
    return performance.now();
  }

  /** Schedule with `setTimeout`. */
  schedule(delayMs: number, fn: () => void): Cancel {
    const handle = setTimeout(fn, delayMs);
    return () => clearTimeout(handle);
  }

  /** Defer to a microtask. */
  defer(fn: () => void): void {
    queueMicrotask(fn);
  }
}
