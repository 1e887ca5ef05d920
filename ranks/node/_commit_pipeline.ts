/**
 * The batches a record log has in flight (private to `node/`): written into the file, their
 * fdatasync started, not yet acknowledged or rejected. Pure bookkeeping: it says when the oldest
 * batch may settle and what failed it; `RecordLog` does the I/O.
 *
 * Batches settle in log order. Each batch in flight has a place of its own, whose handle (open
 * file) its fdatasync goes through: Linux reports a writeback error once per open file (errseq),
 * so an fdatasync through its own handle reports the errors of every page it waited for. A batch
 * whose fdatasync had to share a handle (`shared`) with others that ran at the same time fails
 * if one of theirs failed: the one that returned the error may have taken it from the other, and
 * the other's success proves nothing. A batch that could not be written started no fdatasync: it
 * fails no other.
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";

/**
 * Batches whose fdatasync may run at once on one log: while one waits for the disk, the next is
 * written and its fdatasync started.
 */
export const LOG_COMMITS_IN_FLIGHT_MAX = 2;

/** A batch in flight, as `CommitPipeline.start()` returns it. */
export interface Commit<T> {
  readonly batch: T;
  /**
   * Its place in the pipeline, under the limit: no two batches in flight have the same (a
   * batch starts after the one `limit` before it settled).
   */
  readonly place: number;
  /** Set by the caller if its fdatasync goes through a handle other batches' may go through. */
  shared?: boolean;
  /**
   * Set once its fdatasync is done (or its write failed): its error, whether it was written, and
   * how many batches were started by then.
   */
  synced?: { error: unknown; written: boolean; startedCount: number };
}

/** The batches in flight of one log, in log order (see the module doc). */
export class CommitPipeline<T> {
  #limit: number;
  #inFlight: Commit<T>[] = [];
  #startedCount = 0;
  #halted = false;

  /** At most `limit` batches in flight (default `LOG_COMMITS_IN_FLIGHT_MAX`). */
  constructor(limit = LOG_COMMITS_IN_FLIGHT_MAX) {
    assert(Number.isInteger(limit) && limit >= 1, "at least one batch may be in flight");
    this.#limit = limit;
  }

  /** How many batches are in flight. */
  get size(): number {
    return this.#inFlight.length;
  }

  /**
   * Whether a batch may start: fewer than the limit are in flight, and none failed since the
   * last `resume()`.
   */
  get open(): boolean {
    return !this.#halted && this.#inFlight.length < this.#limit;
  }

  /** Takes a batch in flight, after the others; its write and fdatasync are the caller's. */
  start(batch: T): Commit<T> {
    assert(this.open, "a batch starts while the pipeline is open");
    const commit: Commit<T> = { batch, place: this.#startedCount % this.#limit };
    this.#inFlight.push(commit);
    this.#startedCount++;
    return commit;
  }

  /** The batch's fdatasync is done, with `error` if it failed: that halts the pipeline. */
  synced(commit: Commit<T>, error?: unknown): void {
    this.#done(commit, { error, written: true });
  }

  /** The batch could not be written (no fdatasync started): that halts the pipeline. */
  unwritten(commit: Commit<T>, error: unknown): void {
    this.#done(commit, { error, written: false });
  }

  /**
   * The oldest batch, taken out of the pipeline, if it may settle: its fdatasync is done, and so
   * are those of the batches started while it ran, if it or they were `shared`. With the error
   * that fails it (its own, or the first of theirs), undefined if it is durable.
   */
  next(): { batch: T; error: unknown } | undefined {
    const oldest = this.#inFlight[0];
    const synced = oldest?.synced;
    if (synced === undefined) return undefined;
    const overlapped = this.#inFlight.length - (this.#startedCount - synced.startedCount);
    let error = synced.error;
    for (let i = 1; i < overlapped; i++) {
      const other = this.#inFlight[i];
      if (!oldest.shared && !other.shared) continue;
      if (other.synced === undefined) return undefined;
      if (other.synced.written) error ??= other.synced.error;
    }
    return { batch: this.#inFlight.shift()!.batch, error };
  }

  /** Lets batches start again after a failure, once none is in flight (the file was cut back). */
  resume(): void {
    assert(this.#inFlight.length === 0, "the pipeline resumes empty");
    this.#halted = false;
  }

  #done(commit: Commit<T>, outcome: { error: unknown; written: boolean }): void {
    assert(commit.synced === undefined, "a batch's fdatasync is done once");
    commit.synced = { ...outcome, startedCount: this.#startedCount };
    if (outcome.error !== undefined) this.#halted = true;
  }
}
