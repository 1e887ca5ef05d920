/**
 * A counting semaphore: at most `permits` holders at a time, the rest wait in arrival order.
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";

export class Semaphore {
  #free: number;
  readonly permits: number;
  #waiting: (() => void)[] = [];

  constructor(permits: number) {
    assert(Number.isInteger(permits) && permits > 0, "a semaphore has at least one permit");
    this.permits = permits;
    this.#free = permits;
  }

  get free(): number {
    return this.#free;
  }

  /** Takes a permit if one is free at once. */
  tryAcquire(): boolean {
    if (this.#free === 0) return false;
    this.#free--;
    return true;
  }

  /** Takes a permit, waiting for one if none is free. */
  acquire(): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Gives a permit back, to the longest waiter if any. */
  release(): void {
    const next = this.#waiting.shift();
    if (next) return next();
    assert(this.#free < this.permits, "release() matches an acquire()");
    this.#free++;
  }
}
