import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { chooseRanks, LoadTracker } from "./placement.ts";

Deno.test("chooseRanks() picks the least loaded ranks, ties to the lower rank", () => {
  const held = new Map([[1, 500], [2, 100], [3, 100], [4, 50]]);
  assert.deepEqual(chooseRanks(held, 2), [4, 2]);
  assert.deepEqual(chooseRanks(held, 1), [4]);
  assert.deepEqual(chooseRanks(held, 3), [4, 2, 3]);
});

Deno.test("chooseRanks() skips excluded ranks and refuses too few with UNAVAILABLE", () => {
  const held = new Map([[1, 0], [2, 0], [3, 0]]);
  assert.deepEqual(chooseRanks(held, 2, { exclude: new Set([1]) }), [2, 3]);
  assert.throws(
    () => chooseRanks(held, 2, { exclude: new Set([1, 2]) }),
    (e: unknown) =>
      e instanceof DfsError && e.code === "UNAVAILABLE" && /2 replicas wanted, 1/.test(e.message),
  );
});

Deno.test("LoadTracker.place() spreads equal chunks evenly over the data nodes", () => {
  const tracker = new LoadTracker([1, 2, 3]);
  const counts = new Map<number, number>();
  for (let i = 0; i < 300; i++) {
    const ranks = tracker.place(1024, 2);
    assert.equal(new Set(ranks).size, 2);
    for (const rank of ranks) counts.set(rank, (counts.get(rank) ?? 0) + 1);
  }
  assert.deepEqual([...counts.values()], [200, 200, 200]);
  assert.deepEqual([...tracker.bytesHeld.values()], [200 * 1024, 200 * 1024, 200 * 1024]);
});

Deno.test("LoadTracker.add() with a negative size frees space for placement", () => {
  const tracker = new LoadTracker([1, 2, 3]);
  tracker.add(1, 10);
  tracker.add(2, 10);
  tracker.add(3, 10);
  tracker.add(2, -10);
  assert.deepEqual(tracker.place(1, 1), [2]);
});
