/**
 * The calls a record log's writer carries out, in call order (private to `node/`, for
 * `RecordLog`): appends framed into a bounded queue from which batches are taken, and the calls
 * waiting to be queued, behind a full queue or a rewrite. Pure.
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";
import type { Records } from "./_log_file.ts";
import type { LogSwap } from "./_log_swap.ts";
import { frameRecord, RECORD_HEADER_SIZE_BYTES } from "./record_frame.ts";

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

/** A rewrite called (see `RecordLog.rewrite()`). */
export interface RewriteCall {
  records: Records;
  swapped?: (swap: LogSwap) => void;
  resolve: (swap: LogSwap) => void;
  reject: (error: unknown) => void;
}

/** An append called. */
interface AppendCall {
  record: Uint8Array;
  resolve: (offset: number) => void;
  reject: (error: unknown) => void;
}

/** A framed append, queued for the next batches. */
export interface Queued {
  frame: Uint8Array;
  /** Called with the file offset of the record's body once it is durable. */
  resolve: (offset: number) => void;
  reject: (error: unknown) => void;
}

/** See the module. */
export class AppendQueue {
  /** Calls not yet queued: appends while the queue is full, and everything behind a rewrite. */
  #waiting: (AppendCall | RewriteCall)[] = [];
  /** Framed appends for the next batches. */
  #queue: Queued[] = [];
  #queuedBytes = 0;

  /** Appends queued for the next batches. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Calls waiting to be queued. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Adds a call, queued now if it is an append that fits and nothing waits before it. */
  push(call: AppendCall | RewriteCall): void {
    this.#waiting.push(call);
    this.fill();
  }

  /** Moves waiting appends into the queue, in call order, while they fit; stops at a rewrite. */
  fill(): void {
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

  /** Takes the next batch from the queue: at least one record, at most RECORD_BATCH_BYTES_MAX. */
  takeBatch(): Queued[] {
    let count = 0;
    let bytes = 0;
    while (
      count < this.#queue.length &&
      (count === 0 || bytes + this.#queue[count].frame.length <= RECORD_BATCH_BYTES_MAX)
    ) {
      bytes += this.#queue[count++].frame.length;
    }
    this.#queuedBytes -= bytes;
    const batch = this.#queue.splice(0, count);
    this.fill();
    return batch;
  }

  /** Takes the rewrite at the head, with the queue empty (which admits any append). */
  takeRewrite(): RewriteCall {
    assert(this.#queue.length === 0, "a rewrite is taken once the appends before it are");
    const next = this.#waiting.shift();
    assert(next !== undefined && "records" in next, "only a rewrite waits before an empty queue");
    return next;
  }
}
