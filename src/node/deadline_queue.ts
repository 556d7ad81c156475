/**
 * Timeouts that all share one delay, under one clock timer. A server with thousands of requests
 * in flight, each with the same timeout, arms one timer instead of one per request: since every
 * deadline is `now + delay`, they expire in the order they were added, so a queue ordered by
 * insertion is ordered by deadline, and only its head needs a timer.
 *
 * @module
 */
import type { Cancel, Clock } from "./clock.ts";

/** Callbacks run `delayMs` after they were added, unless cancelled first. */
export class DeadlineQueue {
  readonly #clock: Clock;
  readonly #delayMs: number;
  // Entry `id` sits at index `id - #base`; a cancelled or run entry has no callback.
  #deadlines: number[] = [];
  #callbacks: ((() => void) | undefined)[] = [];
  #head = 0;
  #base = 0;
  #live = 0;
  #cancelTimer: Cancel | undefined;
  #firing = false;

  /** Callbacks run `delayMs` after `add`, in `clock`'s time. */
  constructor(clock: Clock, delayMs: number) {
    this.#clock = clock;
    this.#delayMs = delayMs;
  }

  /** Entries waiting (not yet run or cancelled). */
  get size(): number {
    return this.#live;
  }

  /** Run `fn` after the delay; returns an id for `cancel`. */
  add(fn: () => void): number {
    const id = this.#base + this.#deadlines.length;
    const deadline = this.#clock.now() + this.#delayMs;
    this.#deadlines.push(deadline);
    this.#callbacks.push(fn);
    this.#live++;
    if (this.#cancelTimer === undefined && !this.#firing) this.#arm(deadline);
    return id;
  }

  /** Forget entry `id`; nothing happens if it ran or was cancelled already. */
  cancel(id: number): void {
    const i = id - this.#base;
    if (i < this.#head || i >= this.#callbacks.length || this.#callbacks[i] === undefined) return;
    this.#callbacks[i] = undefined;
    this.#live--;
    if (this.#live === 0) {
      this.#reset();
      return;
    }
    this.#skipDone();
  }

  /** Cancel everything. */
  clear(): void {
    this.#live = 0;
    this.#reset();
  }

  #reset(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    this.#base += this.#deadlines.length;
    this.#deadlines = [];
    this.#callbacks = [];
    this.#head = 0;
  }

  // Move the head past finished entries, and drop them once they are most of the arrays.
  #skipDone(): void {
    const cbs = this.#callbacks;
    while (this.#head < cbs.length && cbs[this.#head] === undefined) this.#head++;
    if (this.#head > 1024 && this.#head * 2 > cbs.length) {
      this.#deadlines = this.#deadlines.slice(this.#head);
      this.#callbacks = cbs.slice(this.#head);
      this.#base += this.#head;
      this.#head = 0;
    }
  }

  #arm(deadline: number): void {
    this.#cancelTimer = this.#clock.schedule(
      Math.max(0, deadline - this.#clock.now()),
      () => this.#fire(),
    );
  }

  #fire(): void {
    this.#cancelTimer = undefined;
    this.#firing = true;
    try {
      const now = this.#clock.now();
      while (this.#head < this.#callbacks.length) {
        const i = this.#head;
        const fn = this.#callbacks[i];
        if (fn !== undefined && this.#deadlines[i] > now) break;
        this.#head++;
        if (fn === undefined) continue;
        this.#callbacks[i] = undefined;
        this.#live--;
        // Anything `fn` does to the queue (add, cancel) sees the entry gone already.
        fn();
      }
    } finally {
      this.#firing = false;
    }
    if (this.#live === 0) {
      this.#reset();
      return;
    }
    this.#skipDone();
    if (this.#cancelTimer === undefined) this.#arm(this.#deadlines[this.#head]);
  }
}
