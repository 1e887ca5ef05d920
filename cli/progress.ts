/**
 * A progress line for transfers on a terminal: bytes done (and of how many), rate, time left.
 *
 * @module
 */

import { formatBytes } from "./format.ts";

/** Redraw at most this often. */
export const PROGRESS_REDRAW_MS = 100;

/** The progress line for `done` of `total` bytes after `elapsedMs`. Pure. */
export function progressLine(done: number, total: number | undefined, elapsedMs: number): string {
  const rate = elapsedMs > 0 ? done / (elapsedMs / 1000) : 0;
  const parts = [
    total === undefined ? formatBytes(done) : `${formatBytes(done)} / ${formatBytes(total)}`,
  ];
  if (total !== undefined && total > 0) parts.push(`${((100 * done) / total).toFixed(0)}%`);
  parts.push(`${formatBytes(rate)}/s`);
  if (total !== undefined && rate > 0 && done < total) {
    parts.push(`${Math.ceil((total - done) / rate)} s left`);
  }
  return parts.join("  ");
}

/** Counts bytes through a stream and redraws a progress line on `out` (a terminal). */
export class Progress {
  #total: number | undefined;
  #out: { writeSync(p: Uint8Array): number };
  #now: () => number;
  #start: number;
  #lastDraw = -Infinity;
  #done = 0;
  #width = 0;

  constructor(
    total: number | undefined,
    options: { out: { writeSync(p: Uint8Array): number }; now?: () => number },
  ) {
    this.#total = total;
    this.#out = options.out;
    this.#now = options.now ?? (() => performance.now());
    this.#start = this.#now();
  }

  /** A pass-through stream that reports every byte it carries. */
  counter(): TransformStream<Uint8Array, Uint8Array> {
    return new TransformStream({
      transform: (chunk, controller) => {
        this.add(chunk.length);
        controller.enqueue(chunk);
      },
    });
  }

  add(bytes: number): void {
    this.#done += bytes;
    const now = this.#now();
    if (now - this.#lastDraw >= PROGRESS_REDRAW_MS) this.#draw(now);
  }

  /** Draws the final line and moves to the next line. */
  finish(): void {
    this.#draw(this.#now());
    this.#out.writeSync(new TextEncoder().encode("\n"));
  }

  #draw(now: number): void {
    this.#lastDraw = now;
    const line = progressLine(this.#done, this.#total, now - this.#start);
    const padded = line.padEnd(this.#width); // erase what a longer line left
    this.#width = line.length;
    this.#out.writeSync(new TextEncoder().encode(`\r${padded}`));
  }
}
