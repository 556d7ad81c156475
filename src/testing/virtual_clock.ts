/**
 * A clock that runs in virtual time: nothing happens until the test advances it, and then every
 * timer runs in a fixed order, so a simulation is reproducible and runs as fast as the CPU allows.
 *
 * @module
 */
import type { Cancel, Clock } from "../node/clock.ts";

/** One scheduled callback. `fn` is null once it ran or was cancelled. */
interface Timer {
  readonly due: number;
  readonly seq: number;
  fn: (() => void) | null;
}

/** Heap order: earlier due time first; equal times in scheduling order. */
function before(x: Timer, y: Timer): boolean {
  return x.due < y.due || (x.due === y.due && x.seq < y.seq);
}

// Cancelled timers stay in the heap until they surface; rebuild once they are the majority so a
// node that keeps resetting a long timer does not grow the heap without bound.
const COMPACT_MIN_CANCELLED = 1024;

/**
 * A deterministic `Clock` for simulations. Time starts at 0 and moves only through `runUntil`,
 * `advance` or `sleep`, which run the due callbacks in order of due time, ties in the order they
 * were scheduled. Deferred callbacks run before any timer, including one due at the current time.
 * An exception thrown by a callback propagates out of the call that advanced time.
 *
 * @example
 * ```ts
 * const clock = new VirtualClock();
 * clock.schedule(100, () => console.log("at", clock.now()));
 * clock.advance(150); // logs "at 100"; clock.now() is now 150
 * ```
 */
export class VirtualClock implements Clock {
  #now = 0;
  #seq = 0;
  #heap: Timer[] = [];
  #live = 0;
  #deferred: (() => void)[] = [];
  #deferredHead = 0;
  #running = false;

  /** The current virtual time in milliseconds. */
  now(): number {
    return this.#now;
  }

  /** Run `fn` at `now() + delayMs` (a negative delay counts as 0). The cancel is O(1). */
  schedule(delayMs: number, fn: () => void): Cancel {
    if (Number.isNaN(delayMs)) throw new RangeError("VirtualClock.schedule: delay is NaN");
    const timer: Timer = { due: this.#now + (delayMs > 0 ? delayMs : 0), seq: this.#seq++, fn };
    this.#push(timer);
    this.#live++;
    return () => {
      if (timer.fn !== null) {
        timer.fn = null;
        this.#live--;
        this.#maybeCompact();
      }
    };
  }

  /** Queue `fn` to run, in FIFO order, before the next timer (even one already due). */
  defer(fn: () => void): void {
    this.#deferred.push(fn);
  }

  /**
   * Run deferred callbacks and every timer due at or before `t`, in order, setting the time to
   * each timer's due time as it runs; then set the time to `t` if that is later. With
   * `pauseWhen`, stop right after a callback once it returns true, and return false (time stays
   * at that callback's due time); otherwise return true.
   *
   * @throws {RangeError} when `t` is not finite.
   * @throws {Error} when called from inside a callback this clock is running.
   */
  runUntil(t: number, pauseWhen?: () => boolean): boolean {
    if (!Number.isFinite(t)) {
      throw new RangeError(`VirtualClock.runUntil: time must be finite: ${t}`);
    }
    // A nested run could move time past the outer run's timers, making time go backwards.
    if (this.#running) throw new Error("VirtualClock.runUntil: called from inside a callback");
    this.#running = true;
    try {
      const heap = this.#heap;
      for (;;) {
        this.#drainDeferred();
        if (heap.length === 0 || heap[0].due > t) break;
        const timer = this.#pop();
        const fn = timer.fn;
        if (fn === null) continue;
        timer.fn = null;
        this.#live--;
        this.#now = timer.due;
        fn();
        if (pauseWhen?.()) return false;
      }
      if (t > this.#now) this.#now = t;
      return true;
    } finally {
      this.#running = false;
    }
  }

  /** `runUntil(now() + ms)`. */
  advance(ms: number): void {
    this.runUntil(this.#now + ms);
  }

  /**
   * Let the caller's queued microtasks run (one turn of the microtask queue), then advance by
   * `ms`. This is how an async test waits in virtual time.
   */
  async sleep(ms: number): Promise<void> {
    await Promise.resolve();
    this.advance(ms);
  }

  /**
   * Like `sleep`, but whenever `pending()` returns a promise (real I/O in flight, such as a file
   * save), virtual time stops until it settles, so timeouts do not fire just because a disk is
   * slower than virtual time.
   */
  async sleepSettled(ms: number, pending: () => Promise<unknown> | undefined): Promise<void> {
    await Promise.resolve();
    const target = this.#now + ms;
    for (;;) {
      const done = this.runUntil(target, () => pending() !== undefined);
      const p = pending();
      if (p) {
        await p.catch(() => {});
        continue;
      }
      if (done) return;
    }
  }

  /** How many timers are scheduled and neither run nor cancelled. */
  pendingTimers(): number {
    return this.#live;
  }

  #drainDeferred(): void {
    const queue = this.#deferred;
    while (this.#deferredHead < queue.length) {
      // Advance the head before calling, so a throwing callback is not run again.
      const fn = queue[this.#deferredHead++];
      fn();
    }
    queue.length = 0;
    this.#deferredHead = 0;
  }

  #push(timer: Timer): void {
    const heap = this.#heap;
    let i = heap.length;
    heap.push(timer);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent];
      if (!before(timer, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = timer;
  }

  #pop(): Timer {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length > 0) this.#siftDown(0, last);
    return top;
  }

  #siftDown(start: number, timer: Timer): void {
    const heap = this.#heap;
    const n = heap.length;
    let i = start;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && before(heap[child + 1], heap[child])) child++;
      if (!before(heap[child], timer)) break;
      heap[i] = heap[child];
      i = child;
    }
    heap[i] = timer;
  }

  #maybeCompact(): void {
    const heap = this.#heap;
    const cancelled = heap.length - this.#live;
    if (cancelled < COMPACT_MIN_CANCELLED || cancelled <= this.#live) return;
    let j = 0;
    for (let i = 0; i < heap.length; i++) {
      if (heap[i].fn !== null) heap[j++] = heap[i];
    }
    heap.length = j;
    for (let i = (j >> 1) - 1; i >= 0; i--) this.#siftDown(i, heap[i]);
  }
}
