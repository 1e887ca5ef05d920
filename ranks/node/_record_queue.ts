/**
 * The calls a `RecordLog` has not carried out yet (private to `node/`): framed appends queued for
 * the next batches, within `RECORD_QUEUE_BYTES_MAX` and `RECORD_QUEUE_RECORDS_MAX`, and behind
 * them, in call order, appends that did not fit and rewrites. Pure: the log takes batches from it
 * and writes them.
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";
import { frameRecord, RECORD_HEADER_SIZE_BYTES } from "./record_frame.ts";
import type { Records } from "./_log_file.ts";

/**
 * Framed bytes per write+fdatasync; a record bigger than this is written alone. Metadata records
 * are ~100 bytes, so one batch holds thousands; at ~1 GB/s writing 1 MiB takes about as long as the
 * fdatasync itself, so bigger batches would add latency and save little.
 */
export const RECORD_BATCH_BYTES_MAX = 1024 * 1024;

/**
 * Framed bytes queued for the next batches. An append that does not fit waits (in call order) until
 * a batch is taken from the queue; one record always fits an empty queue.
 */
export const RECORD_QUEUE_BYTES_MAX = 8 * RECORD_BATCH_BYTES_MAX;

/** Records queued for the next batches (bounds the per-record overhead of tiny records). */
export const RECORD_QUEUE_RECORDS_MAX = 16 * 1024;

/** An append, with what its promise is settled by. */
export interface Append {
  record: Uint8Array;
  resolve: (offset: number) => void;
  reject: (error: unknown) => void;
}

/** A rewrite, with what its promise is settled by. */
export interface Rewrite {
  records: Records;
  resolve: (offsets: number[]) => void;
  reject: (error: unknown) => void;
}

/** A framed append, queued for the next batches. */
export interface Queued {
  frame: Uint8Array;
  /** Called with the file offset of the record's body once it is durable. */
  resolve: (offset: number) => void;
  reject: (error: unknown) => void;
}

/** The size of the next batch: how many queued appends it takes, and their framed bytes. */
export interface BatchSize {
  count: number;
  bytes: number;
}

/** The calls of one log not carried out yet (see the module doc). */
export class RecordQueue {
  /** Calls not yet queued: appends while the queue is full, and everything behind a rewrite. */
  #waiting: (Append | Rewrite)[] = [];
  #queue: Queued[] = [];
  #queuedBytes = 0;

  /** Whether no call is left. */
  get empty(): boolean {
    return this.#queue.length === 0 && this.#waiting.length === 0;
  }

  /** Whether an append is queued (a batch can be taken). */
  get queued(): boolean {
    return this.#queue.length > 0;
  }

  /** Adds a call after the others; an append is framed (copied) once it is queued. */
  push(call: Append | Rewrite): void {
    this.#waiting.push(call);
    this.#fill();
  }

  /**
   * The size of the next batch, if an append is queued: at least one, at most
   * `RECORD_BATCH_BYTES_MAX` of frames.
   */
  nextBatch(): BatchSize | undefined {
    let count = 0;
    let bytes = 0;
    while (
      count < this.#queue.length &&
      (count === 0 || bytes + this.#queue[count].frame.length <= RECORD_BATCH_BYTES_MAX)
    ) {
      bytes += this.#queue[count++].frame.length;
    }
    return count === 0 ? undefined : { count, bytes };
  }

  /** Takes the next batch, as `nextBatch()` measured it; queues the appends that now fit. */
  takeBatch({ count, bytes }: BatchSize): Queued[] {
    this.#queuedBytes -= bytes;
    const batch = this.#queue.splice(0, count);
    this.#fill();
    return batch;
  }

  /** Takes the call at the head, when no append is queued: a rewrite, if any is left. */
  takeRewrite(): Rewrite | undefined {
    if (this.#queue.length > 0) return undefined;
    const head = this.#waiting.shift();
    assert(head === undefined || "records" in head, "an append waits only behind a rewrite");
    this.#fill();
    return head;
  }

  /** Moves waiting appends into the queue, in call order, while they fit; stops at a rewrite. */
  #fill(): void {
    let admitted = 0;
    while (admitted < this.#waiting.length) {
      const waiting = this.#waiting[admitted];
      if (!("record" in waiting)) break;
      const frameSize = RECORD_HEADER_SIZE_BYTES + waiting.record.length;
      const fits = this.#queue.length === 0 ||
        (this.#queuedBytes + frameSize <= RECORD_QUEUE_BYTES_MAX &&
          this.#queue.length < RECORD_QUEUE_RECORDS_MAX);
      if (!fits) break;
      const { resolve, reject } = waiting;
      this.#queue.push({ frame: frameRecord(waiting.record), resolve, reject });
      this.#queuedBytes += frameSize;
      admitted++;
    }
    this.#waiting.splice(0, admitted);
  }
}
