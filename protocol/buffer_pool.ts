/**
 * A bounded pool of equal-sized buffers. Chunk buffers travel rank 0 -> data node -> rank 0 (moved,
 * never copied) and come back here, so a steady transfer allocates nothing and memory stays flat
 * instead of waiting on the garbage collector, which does not see buffers moved between Workers.
 *
 * @module
 */

import { assert } from "./errors.ts";

export class BufferPool {
  readonly bufferBytes: number;
  readonly buffersMax: number;
  #free: ArrayBuffer[] = [];
  #allocated = 0;
  /** When `take()` was last called (`performance.now()`). */
  #usedAt = 0;

  /** Keeps at most `buffersMax` idle buffers of `bufferBytes` each. */
  constructor(bufferBytes: number, options: { buffersMax: number }) {
    assert(bufferBytes > 0 && options.buffersMax >= 0, "pool sizes are positive");
    this.bufferBytes = bufferBytes;
    this.buffersMax = options.buffersMax;
  }

  /** Buffers handed out by `take()` that had to be newly allocated. */
  get allocated(): number {
    return this.#allocated;
  }

  /** Idle buffers in the pool. */
  get idle(): number {
    return this.#free.length;
  }

  /** A buffer of `bufferBytes`: a recycled one if any is idle, else a new one. Contents are stale. */
  take(): Uint8Array<ArrayBuffer> {
    this.#usedAt = performance.now();
    const buffer = this.#free.pop();
    if (buffer) return new Uint8Array(buffer);
    this.#allocated++;
    return new Uint8Array(this.bufferBytes);
  }

  /**
   * Returns a buffer for reuse. Anything of another size, detached, or beyond `buffersMax` idle
   * buffers is left to the garbage collector.
   */
  give(buffer: ArrayBufferLike | undefined): void {
    if (!(buffer instanceof ArrayBuffer) || buffer.byteLength !== this.bufferBytes) return;
    if (this.#free.length < this.buffersMax) this.#free.push(buffer);
  }

  /**
   * Lets go of idle buffers beyond `keep` if no buffer was taken for `idleMs`: a burst of
   * transfers does not hold its buffers for good. Returns how many were let go.
   */
  trim(options: { keep: number; idleMs: number }): number {
    if (performance.now() - this.#usedAt < options.idleMs) return 0;
    const dropped = Math.max(0, this.#free.length - options.keep);
    this.#free.length -= dropped;
    return dropped;
  }
}
