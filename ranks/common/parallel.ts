/**
 * A bounded parallel loop: the one way dfs runs many independent tasks at once.
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";

/**
 * Runs `action` on every item, at most `parallelMax` at a time, starting them in order. Rejects
 * with the first error once the running actions have settled (no new one starts after a failure).
 */
export async function forEachParallel<T>(
  items: readonly T[],
  parallelMax: number,
  action: (item: T) => Promise<void>,
): Promise<void> {
  assert(Number.isInteger(parallelMax) && parallelMax > 0, "parallelMax is a positive integer");
  let next = 0;
  let failed = false;
  const lane = async () => {
    while (!failed && next < items.length) {
      try {
        await action(items[next++]);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  const lanes = Array.from({ length: Math.min(parallelMax, items.length) }, lane);
  const results = await Promise.allSettled(lanes);
  const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failure) throw failure.reason;
}
