/**
 * Giving way on rank 0's one thread. Rank 0 answers every client, sends the heartbeats and
 * supervises the ranks on one thread, so a walk over every file of the index (ten million at the
 * scale dfs aims at) must not run in one go: it handles a step of files, then lets timers and I/O
 * run before the next step. The walk goes on through the index's own iteration, which holds across
 * changes (`FileIndex.values()`): what it finds is the index as it goes, not a snapshot.
 *
 * @module
 */

import { type Clock, giveWay } from "../env/env.ts";

/**
 * Files a walk over the index handles between two turns of giving way. A file costs ~0.7 us as a
 * manifest copy (`FileIndex.values()`, 2,000,000 files), a few more where the walk does more with
 * it (`status`), so a step holds the thread ~10-30 ms; giving way (a 0 ms timer, ~2 ms until it
 * fires) adds about a tenth to the walk's time, and nothing to its CPU.
 */
export const INDEX_STEP_FILES = 16_384;

/** `giveWay` on `clock`, as a function to hand to a walk. */
export function giveWayOn(clock: Pick<Clock, "setTimeout">): () => Promise<void> {
  return () => giveWay(clock);
}

/**
 * Calls `fn` with each of `items` in turn, awaiting `giveWay` after every `stepItems`
 * (`INDEX_STEP_FILES` unless told). `items` must be an iteration that may go on while what it
 * walks changes (the index's own are).
 */
export async function forEachInSteps<T>(
  items: Iterable<T>,
  fn: (item: T) => void,
  giveWay: () => Promise<void>,
  stepItems = INDEX_STEP_FILES,
): Promise<void> {
  let count = 0;
  for (const item of items) {
    fn(item);
    if (++count % stepItems === 0) await giveWay();
  }
}
