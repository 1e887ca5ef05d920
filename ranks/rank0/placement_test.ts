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

/** Zones `a` (ranks 1 to 3) and `b` (rank 4). */
const zoneAb = (rank: number) => rank <= 3 ? "a" : "b";

Deno.test("LoadTracker.place() over zones of 3 and 1 nodes puts one of 2 replicas in each zone", () => {
  const tracker = new LoadTracker([1, 2, 3, 4], { zoneOf: zoneAb });
  const counts = new Map<number, number>();
  for (let i = 0; i < 300; i++) {
    const ranks = tracker.place(1024, 2);
    assert.deepEqual(ranks.map(zoneAb).sort(), ["a", "b"], `chunk ${i}: ${ranks}`);
    for (const rank of ranks) counts.set(rank, (counts.get(rank) ?? 0) + 1);
  }
  assert.deepEqual([...counts].sort(([a], [b]) => a - b), [[1, 100], [2, 100], [3, 100], [4, 300]]);
});

Deno.test("chooseRanks() with every rank in one zone picks exactly as without zones", () => {
  const held = new Map([[1, 500], [2, 100], [3, 100], [4, 50], [5, 100]]);
  const oneZone = () => "local";
  for (const exclude of [new Set<number>(), new Set([4]), new Set([2, 5])]) {
    for (let replicas = 1; replicas <= held.size - exclude.size; replicas++) {
      assert.deepEqual(
        chooseRanks(held, replicas, { exclude, zoneOf: oneZone }),
        chooseRanks(held, replicas, { exclude }),
      );
    }
  }
  assert.deepEqual(chooseRanks(held, 3, { zoneOf: oneZone }), [4, 2, 3]);
});

Deno.test("chooseRanks() puts a replica in another zone even if its nodes hold more", () => {
  const held = new Map([[1, 0], [2, 0], [3, 0], [4, 900]]);
  assert.deepEqual(chooseRanks(held, 2, { zoneOf: zoneAb }), [1, 4]);
  assert.deepEqual(chooseRanks(held, 2), [1, 2], "without zones: the least loaded");
});

Deno.test("chooseRanks() falls back to the least loaded rank when a zone's nodes are all excluded", () => {
  const held = new Map([[1, 30], [2, 10], [3, 20], [4, 0]]);
  const exclude = new Set([4]);
  assert.deepEqual(chooseRanks(held, 2, { exclude, zoneOf: zoneAb }), [2, 3]);
});

Deno.test("chooseRanks() of 3 replicas over 2 zones uses both, the third on the least loaded left", () => {
  const zoneOf = (rank: number) => rank <= 2 ? "a" : "b";
  const held = new Map([[1, 50], [2, 60], [3, 10], [4, 20]]);
  // One per zone first (3, then 1 in zone a), then the least loaded of the rest (4).
  assert.deepEqual(chooseRanks(held, 3, { zoneOf }), [3, 1, 4]);
  assert.deepEqual(chooseRanks(new Map([[1, 0], [2, 0], [3, 0], [4, 0]]), 3, { zoneOf }), [
    1,
    3,
    2,
  ]);
});

Deno.test("chooseRanks() avoids the zones of holders and never picks a holder", () => {
  const zoneOf = (rank: number) => ["", "a", "a", "b", "b", "c"][rank];
  const held = new Map([[1, 0], [2, 0], [3, 0], [4, 5], [5, 90]]);
  assert.deepEqual(chooseRanks(held, 1, { holders: [1], zoneOf }), [3]);
  assert.deepEqual(chooseRanks(held, 1, { holders: [1, 3], zoneOf }), [5]);
  assert.deepEqual(chooseRanks(held, 2, { holders: [1, 3], zoneOf }), [5, 2]);
  assert.deepEqual(chooseRanks(held, 1, { holders: [1] }), [2], "without zones: only excluded");
});

Deno.test("chooseRanks() counts holders as not eligible when too few ranks remain", () => {
  const held = new Map([[1, 0], [2, 0], [3, 0]]);
  assert.throws(
    () => chooseRanks(held, 2, { holders: [1], exclude: new Set([2]), zoneOf: zoneAb }),
    (e: unknown) =>
      e instanceof DfsError && e.code === "UNAVAILABLE" &&
      e.message === "Cannot place a chunk: 2 replicas wanted, 1 data nodes available",
  );
});

Deno.test("chooseRanks() over zones breaks ties to the lower rank, zone by zone", () => {
  const zoneOf = (rank: number) => rank % 2 === 0 ? "even" : "odd";
  const held = new Map([[6, 0], [5, 0], [4, 0], [3, 0], [2, 0], [1, 0]]);
  assert.deepEqual(chooseRanks(held, 4, { zoneOf }), [1, 2, 3, 4]);
  assert.deepEqual(chooseRanks(held, 2, { zoneOf, exclude: new Set([1, 2]) }), [3, 4]);
  assert.deepEqual(chooseRanks(held, 2, { zoneOf, holders: [2] }), [1, 3]);
});

Deno.test("LoadTracker.addRank() adds a joining rank, which placement then fills first", () => {
  const tracker = new LoadTracker([1, 2], { zoneOf: (rank) => rank === 3 ? "far" : "near" });
  tracker.place(100, 2);
  tracker.addRank(3);
  assert.equal(tracker.bytesHeld.get(3), 0);
  assert.deepEqual(tracker.place(100, 2), [3, 1]);
  tracker.set(3, 40);
  assert.equal(tracker.bytesHeld.get(3), 40);
  assert.throws(() => tracker.addRank(3), /rank 3 is not a data node yet/);
});
