/**
 * The store's live throughput: operations and bytes per second over the last
 * `THROUGHPUT_WINDOW_SECONDS`, at one second's resolution, in a fixed ring of counters (its memory
 * never grows), plus totals since start. Every gateway (the CBOR port, S3, the dashboard) reaches
 * the store through the same calls, so counting in the store counts them all, once each. Pure: the
 * time comes from the clock it is given.
 *
 * What counts: an operation when a store call is made (`meta`, `list`, `remove`, `rename`), when a
 * read opens (`get`) and when an upload commits (`put`); bytes read as each chunk is handed to
 * the reader, and bytes written as each piece is handed to the upload (so a large transfer shows
 * as a rate over its whole length, and an upload that fails still shows what it moved).
 *
 * @module
 */

import type { Clock } from "../env/env.ts";

/** Seconds of history kept: the chart's width (10 minutes). */
export const THROUGHPUT_WINDOW_SECONDS = 600;

/** The kinds of store operation counted. */
export const THROUGHPUT_OPS = ["put", "get", "meta", "list", "remove", "rename"] as const;
export type ThroughputOp = typeof THROUGHPUT_OPS[number];

/** What the last `THROUGHPUT_WINDOW_SECONDS` complete seconds saw, oldest first. */
export interface ThroughputSnapshot {
  /** Seconds in each series (`THROUGHPUT_WINDOW_SECONDS`); one value per second. */
  windowSeconds: number;
  /** Wall-clock time (ms since the epoch) at the end of the last second in the series. */
  endsAtMs: number;
  /** Operations in each second. */
  ops: number[];
  /** Bytes read (handed to readers) in each second. */
  readBytes: number[];
  /** Bytes written (handed to uploads) in each second. */
  writtenBytes: number[];
  /** Since start: operations of each kind, and bytes read and written. */
  totals: { ops: Record<ThroughputOp, number>; readBytes: number; writtenBytes: number };
}

/** Counts operations and bytes per second in a ring; see the module doc. */
export class Throughput {
  #clock: Pick<Clock, "now" | "monotonic">;
  /** One slot per second of the window, plus the second in progress. */
  #slots = THROUGHPUT_WINDOW_SECONDS + 1;
  /** The second (of the monotonic clock) each slot counts; -1 for none yet. */
  #second = new Float64Array(this.#slots).fill(-1);
  #ops = new Float64Array(this.#slots);
  #read = new Float64Array(this.#slots);
  #written = new Float64Array(this.#slots);
  #totals = {
    ops: Object.fromEntries(THROUGHPUT_OPS.map((op) => [op, 0])) as Record<ThroughputOp, number>,
    readBytes: 0,
    writtenBytes: 0,
  };

  constructor(clock: Pick<Clock, "now" | "monotonic">) {
    this.#clock = clock;
  }

  /** Counts one operation of kind `op` now. */
  op(op: ThroughputOp): void {
    this.#ops[this.#slotNow()]++;
    this.#totals.ops[op]++;
  }

  /** Counts `bytes` read now. */
  read(bytes: number): void {
    this.#read[this.#slotNow()] += bytes;
    this.#totals.readBytes += bytes;
  }

  /** Counts `bytes` written now. */
  written(bytes: number): void {
    this.#written[this.#slotNow()] += bytes;
    this.#totals.writtenBytes += bytes;
  }

  /**
   * About how many operations the last 1000 ms saw: those of the second in progress plus those of
   * the second before, scaled by the part of it still within the last 1000 ms (counts are kept per
   * second, so ops within a past second are taken as evenly spread). Reads only: counts nothing and
   * clears no slot. What the scrubber asks before each file, to give way to clients.
   */
  opsLastSecond(): number {
    const monotonic = this.#clock.monotonic();
    const now = Math.floor(monotonic / 1000);
    const inSecond = (second: number) => {
      const slot = this.#slotOf(second);
      return this.#second[slot] === second ? this.#ops[slot] : 0;
    };
    const previousShare = 1 - (monotonic - now * 1000) / 1000;
    return inSecond(now) + inSecond(now - 1) * previousShare;
  }

  /**
   * The complete seconds of the window, oldest first, ending before the second in progress (a
   * partial second would show as a dip at the chart's end).
   */
  snapshot(): ThroughputSnapshot {
    const monotonic = this.#clock.monotonic();
    const now = Math.floor(monotonic / 1000);
    const series = (counts: Float64Array) => {
      const out = new Array<number>(THROUGHPUT_WINDOW_SECONDS);
      for (let i = 0; i < THROUGHPUT_WINDOW_SECONDS; i++) {
        const second = now - THROUGHPUT_WINDOW_SECONDS + i;
        const slot = this.#slotOf(second);
        out[i] = this.#second[slot] === second ? counts[slot] : 0;
      }
      return out;
    };
    return {
      windowSeconds: THROUGHPUT_WINDOW_SECONDS,
      endsAtMs: Math.round(this.#clock.now() - (monotonic - now * 1000)),
      ops: series(this.#ops),
      readBytes: series(this.#read),
      writtenBytes: series(this.#written),
      totals: {
        ops: { ...this.#totals.ops },
        readBytes: this.#totals.readBytes,
        writtenBytes: this.#totals.writtenBytes,
      },
    };
  }

  /** The slot of the second in progress, cleared if it last counted an older second. */
  #slotNow(): number {
    const second = Math.floor(this.#clock.monotonic() / 1000);
    const slot = this.#slotOf(second);
    if (this.#second[slot] !== second) {
      this.#second[slot] = second;
      this.#ops[slot] = 0;
      this.#read[slot] = 0;
      this.#written[slot] = 0;
    }
    return slot;
  }

  #slotOf(second: number): number {
    return ((second % this.#slots) + this.#slots) % this.#slots;
  }
}
