/**
 * A bounded queue read as an async iterator: the writer never waits, the reader waits for the
 * next item. Past its limit the queue fails the reader with an explicit overflow error rather
 * than growing without bound or skipping items silently.
 *
 * @module
 */

/** The reader fell more than `limit` items behind; items were not kept. */
export class QueueOverflowError extends Error {
  /** `limit`: the bound that was passed. */
  constructor(readonly limit: number) {
    super(`the reader fell more than ${limit} items behind; the stream was closed`);
    this.name = "QueueOverflowError";
  }
}

/** A single-reader queue. */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  #items: T[] = [];
  #head = 0;
  #waiter: ((r: IteratorResult<T>) => void) | undefined;
  #failWaiter: ((e: unknown) => void) | undefined;
  #closed = false;
  #error: unknown = undefined;

  /** A queue holding at most `limit` unread items. */
  constructor(readonly limit: number) {}

  /** Whether the queue was closed (by the writer, the reader, or an overflow). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Add an item; on overflow the queue closes with `QueueOverflowError`. */
  push(item: T): void {
    if (this.#closed) return;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = this.#failWaiter = undefined;
      w({ value: item, done: false });
      return;
    }
    if (this.#items.length - this.#head >= this.limit) {
      this.fail(new QueueOverflowError(this.limit));
      return;
    }
    this.#items.push(item);
  }

  /** End the stream after the items already queued. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = this.#failWaiter = undefined;
      w({ value: undefined, done: true });
    }
  }

  /** End the stream with an error, dropping queued items. */
  fail(error: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#error = error;
    this.#items = [];
    this.#head = 0;
    if (this.#failWaiter) {
      const f = this.#failWaiter;
      this.#waiter = this.#failWaiter = undefined;
      f(error);
    }
  }

  /** The next item, waiting for one if needed. */
  next(): Promise<IteratorResult<T>> {
    if (this.#head < this.#items.length) {
      const value = this.#items[this.#head++];
      if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
        this.#items = this.#items.slice(this.#head);
        this.#head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (this.#closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.#waiter = resolve;
      this.#failWaiter = reject;
    });
  }

  /** The reader stops early: the queue closes. */
  return(): Promise<IteratorResult<T>> {
    this.close();
    this.#items = [];
    this.#head = 0;
    return Promise.resolve({ value: undefined, done: true });
  }

  /** This queue is its own iterator. */
  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
