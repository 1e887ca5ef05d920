import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import {
  isPresent,
  planReconcile,
  planRecovery,
  planRereplication,
  type RecoveryPlan,
} from "./plans.ts";
import { type Manifest, tombstoneOf } from "../common/manifest.ts";
import { ChunkIdSet } from "../common/chunk_id_set.ts";
import { blob, chunk, keptIn, manifest, scanOf, type TestScan } from "../testing/manifests.ts";

/** `planRecovery()` of scans written as objects, with its files and repairs as objects. */
function recoveryOf(scans: TestScan[]) {
  const plan: RecoveryPlan = planRecovery(scans.map(scanOf));
  return {
    ...plan,
    files: [...plan.files.values()],
    repairs: new Map([...plan.repairs].map(([rank, repair]) => [rank, keptIn(repair)!])),
  };
}

/** `planReconcile()` of a scan written as objects, with its repair as objects. */
function reconcileOf(files: Manifest[], scan: TestScan) {
  const plan = planReconcile(files, scanOf(scan));
  return { ...plan, repair: keptIn(plan.repair)! };
}

Deno.test("planRecovery() lets a tombstone win: the name and its chunks are gone everywhere", () => {
  const m = manifest("r", 1, [[chunk(1), 4, [1, 2]]]);
  const plan = recoveryOf([
    { rank: 1, manifests: [m], blobs: [[blob(1), 4]] }, // missed the removal
    { rank: 2, manifests: [m, tombstoneOf("r", 2, 0)], blobs: [[blob(1), 4]] },
  ]);
  assert.deepEqual(plan.files, []);
  assert.deepEqual(plan.repairs.get(1), { keep: [], deleteBlobs: [blob(1)], bytesHeld: 0 });
  assert.deepEqual(plan.repairs.get(2), { keep: [], deleteBlobs: [blob(1)], bytesHeld: 0 });
});

Deno.test("planRecovery() keeps a renamed file's chunks on a node that missed the rename", () => {
  const m = manifest("old", 1, [[chunk(1), 4, [1, 2]]]);
  const moved = { ...m, name: "new", version: 2 };
  const plan = recoveryOf([
    { rank: 1, manifests: [m], blobs: [[blob(1), 4]] },
    { rank: 2, manifests: [tombstoneOf("old", 2, 0), moved], blobs: [[blob(1), 4]] },
  ]);
  assert.deepEqual(plan.files, [moved]);
  assert.deepEqual(plan.repairs.get(1), { keep: [moved], deleteBlobs: [], bytesHeld: 4 });
});

Deno.test("planRecovery() finds a chunk in a sparse blob only if the blob reaches past its end", () => {
  // Chunks 0 and 2 of a file on rank 1, chunk 1 on rank 2: each blob has a hole.
  const m = manifest("s", 1, [[chunk(5, 0), 4, [1]], [chunk(5, 4), 4, [2]], [chunk(5, 8), 2, [1]]]);
  const whole = recoveryOf([
    { rank: 1, manifests: [m], blobs: [[blob(5), 10]] },
    { rank: 2, manifests: [m], blobs: [[blob(5), 8]] },
  ]);
  assert.deepEqual(whole.files, [m]);
  assert.equal(whole.repairs.get(1)?.bytesHeld, 6);
  assert.equal(whole.repairs.get(2)?.bytesHeld, 4);
  const cut = recoveryOf([
    { rank: 1, manifests: [m], blobs: [[blob(5), 9]] }, // the last chunk is cut short
    { rank: 2, manifests: [m], blobs: [[blob(5), 8]] },
  ]);
  assert.deepEqual(cut.files, []);
  assert.deepEqual(cut.damaged, [{ name: "s", version: 1, fallback: undefined }]);
  assert.deepEqual(cut.repairs.get(1)?.deleteBlobs, [blob(5)]);
});

Deno.test("planRecovery() picks the newest complete version and repairs every rank", () => {
  const old = manifest("f", 1, [[chunk(1), 4, [1, 2]]]);
  const fresh = manifest("f", 2, [[chunk(2), 8, [2, 3]]]);
  const plan = recoveryOf([
    // Rank 1 never saw version 2 and still holds version 1.
    { rank: 1, manifests: [old], blobs: [[blob(1), 4], [blob(9), 9]] },
    // Rank 2 committed version 2 but was cut off before releasing version 1.
    { rank: 2, manifests: [old, fresh], blobs: [[blob(1), 4], [blob(2), 8]] },
    // Rank 3 holds the new chunk but crashed before its manifest was appended.
    { rank: 3, manifests: [], blobs: [[blob(2), 8]] },
  ]);
  assert.deepEqual(plan.files, [fresh]);
  assert.deepEqual(plan.damaged, []);
  assert.deepEqual(plan.repairs.get(1), {
    keep: [],
    deleteBlobs: [blob(1), blob(9)],
    bytesHeld: 0,
  });
  assert.deepEqual(plan.repairs.get(2), { keep: [fresh], deleteBlobs: [blob(1)], bytesHeld: 8 });
  assert.deepEqual(plan.repairs.get(3), { keep: [fresh], deleteBlobs: [], bytesHeld: 8 });
});

Deno.test("planRecovery() falls back to an older version when every replica of a chunk is gone", () => {
  const v1 = manifest("g", 1, [[chunk(0xa), 1, [1, 2]]]);
  const v2 = manifest("g", 2, [[chunk(0xb), 1, [1, 2]]]);
  const plan = recoveryOf([
    { rank: 1, manifests: [v1, v2], blobs: [[blob(0xa), 1]] },
    { rank: 2, manifests: [v1, v2], blobs: [[blob(0xa), 1], [blob(0xb), 0]] }, // too short
  ]);
  assert.deepEqual(plan.files, [v1]);
  assert.deepEqual(plan.damaged, [{ name: "g", version: 2, fallback: 1 }]);
  assert.deepEqual(plan.repairs.get(2)?.deleteBlobs, [blob(0xb)]);
});

Deno.test("planRecovery() says which ranks already hold exactly what they should", () => {
  const a = manifest("a", 1, [[chunk(1), 4, [1, 2]]]);
  const b = manifest("b", 2, [[chunk(2), 4, [2, 3]]]);
  const stale = manifest("a", 3, [[chunk(3), 4, [3]]]);
  const plan = recoveryOf([
    { rank: 1, manifests: [a], blobs: [[blob(1), 4]] },
    { rank: 2, manifests: [{ ...a }, b], blobs: [[blob(1), 4], [blob(2), 4]] }, // copies, not the same objects
    { rank: 3, manifests: [b, stale], blobs: [[blob(2), 4]] }, // stale's chunk is gone
  ]);
  assert.deepEqual(plan.files.map((m) => m.name).sort(), ["a", "b"]);
  assert.deepEqual([...plan.unchanged].sort(), [1, 2]);
});

Deno.test("planRecovery() counts a chunk kept in a rank's log as present there", () => {
  const small = manifest("s", 1, [[chunk(7), 64, [1, 2]]]);
  const plan = recoveryOf([
    { rank: 1, manifests: [small], blobs: [], inLog: [chunk(7), chunk(8)] },
    { rank: 2, manifests: [small], blobs: [] }, // lost it: rank 1's copy is enough
  ]);
  assert.deepEqual(plan.files, [small]);
  // Both hold the manifests they should: they are left alone (their repairs list nothing to
  // keep), and rank 2's replica is copied back as a missing one.
  assert.deepEqual([...plan.unchanged], [1, 2]);
  assert.deepEqual(plan.repairs.get(1), { keep: [], deleteBlobs: [], bytesHeld: 64 });
  assert.deepEqual(plan.repairs.get(2), { keep: [], deleteBlobs: [], bytesHeld: 0 });
  assert.deepEqual(plan.missing.map(({ name, rank }) => [name, rank]), [["s", 2]]);
  const gone = recoveryOf([{ rank: 1, manifests: [small], blobs: [], inLog: [] }]);
  assert.deepEqual(gone.damaged, [{ name: "s", version: 1, fallback: undefined }]);
});

Deno.test("planReconcile() keeps the node's files, drops stray blobs, restores what it lacks", () => {
  const kept = manifest("kept", 4, [[chunk(1), 10, [1, 2]], [chunk(1, 10), 5, [2, 3]]]);
  const small = manifest("small", 5, [[chunk(2), 7, [2, 3]]]);
  const elsewhere = manifest("elsewhere", 6, [[chunk(3), 9, [1, 3]]]);
  const plan = reconcileOf([kept, small, elsewhere], {
    rank: 2,
    manifests: [],
    // blob 1 holds only the first chunk (its second chunk was written after the node went
    // down); blob 9 is stray (released while it was down); the small file is in its log.
    blobs: [[blob(1), 10], [blob(9), 4]],
    inLog: [chunk(2)],
  });
  assert.deepEqual(plan.repair.keep.map((m) => m.name), ["kept", "small"]);
  assert.deepEqual(plan.repair.deleteBlobs, [blob(9)]);
  assert.equal(plan.repair.bytesHeld, 10 + 5 + 7);
  assert.deepEqual(plan.restore.map((r) => r.chunk.id), [chunk(1, 10)]);
});

Deno.test("planReconcile() of a node that holds nothing any more deletes every blob", () => {
  const plan = reconcileOf([manifest("a", 1, [[chunk(1), 3, [1, 3]]])], {
    rank: 2,
    manifests: [manifest("a", 1, [[chunk(1), 3, [1, 2]]])],
    blobs: [[blob(1), 3]],
  });
  assert.deepEqual(plan, {
    repair: { keep: [], deleteBlobs: [blob(1)], bytesHeld: 0 },
    restore: [],
  });
});

Deno.test("planRereplication() moves a lost rank's replicas to the least loaded live nodes", () => {
  const m = manifest("f", 3, [[chunk(1), 100, [1, 2]], [chunk(1, 100), 100, [2, 3]], [
    chunk(1, 200),
    50,
    [3, 4],
  ]]);
  const bytesHeld = new Map([[1, 0], [2, 500], [3, 10], [4, 60], [5, 20]]);
  const plan = planRereplication(m, 2, { bytesHeld, down: new Set([2, 5]) });
  // Chunk 0 (on 1, 2) may not go to 1 (has it), 2 (lost) or 5 (down): 3 is least loaded.
  // Chunk 1 (on 2, 3): 3 has it; 1 is least loaded. Chunk 2 is not on rank 2: unchanged.
  assert.deepEqual(plan.copies.map((c) => [c.chunk.id, c.sources, c.target]), [
    [chunk(1), [1], 3],
    [chunk(1, 100), [3], 1],
  ]);
  assert.deepEqual(plan.chunks.map((c) => c.ranks), [[1, 3], [3, 1], [3, 4]]);
  assert.equal(bytesHeld.get(3), 10, "the caller's loads are not changed");
});

Deno.test("planRereplication() counts each copy as it places it", () => {
  const m = manifest("f", 3, [[chunk(1), 100, [1, 2]], [chunk(1, 100), 100, [1, 2]]]);
  const bytesHeld = new Map([[1, 0], [2, 0], [3, 0], [4, 50]]);
  const plan = planRereplication(m, 2, { bytesHeld, down: new Set([2]) });
  assert.deepEqual(plan.copies.map((c) => c.target), [3, 4]);
});

Deno.test("planRereplication() throws UNAVAILABLE when no live node can take a replica", () => {
  const m = manifest("f", 3, [[chunk(1), 100, [1, 2]]]);
  assert.throws(
    () => planRereplication(m, 2, { bytesHeld: new Map([[1, 0], [2, 0]]), down: new Set([2]) }),
    (e: unknown) =>
      e instanceof DfsError && e.code === "UNAVAILABLE" && /Cannot place/.test(e.message),
  );
});

Deno.test("isPresent() is the one rule: kept in the log, or a blob reaching past the chunk", () => {
  const holdings = { blobs: new Map([[blob(1), 15]]), inLog: ChunkIdSet.of([chunk(2)]) };
  assert.ok(isPresent({ id: chunk(1, 10), size: 5, ranks: [1] }, holdings));
  assert.ok(!isPresent({ id: chunk(1, 10), size: 6, ranks: [1] }, holdings));
  assert.ok(isPresent({ id: chunk(2), size: 100, ranks: [1] }, holdings));
  assert.ok(!isPresent({ id: chunk(3), size: 0, ranks: [1] }, holdings));
});

Deno.test("planRecovery() lists replicas missing on ranks that answered, ranks that are gone, and manifests a rank lacks", () => {
  const a = manifest("a", 1, [[chunk(1), 4, [1, 2]]]);
  const b = manifest("b", 2, [[chunk(2), 4, [2, 4]]]); // rank 4 is gone
  const plan = recoveryOf([
    { rank: 1, manifests: [], blobs: [] }, // lost its log and its blob of a
    { rank: 2, manifests: [a, b], blobs: [[blob(1), 4], [blob(2), 4]] },
  ]);
  assert.deepEqual(plan.files.map((m) => m.name).sort(), ["a", "b"]);
  assert.deepEqual(plan.missing.map(({ name, rank }) => [name, rank]), [["a", 1]]);
  assert.deepEqual([...plan.goneRanks], [[4, 1]]);
  assert.deepEqual([...plan.lacking], [[1, 1]], "rank 1 lacks a's manifest");
  assert.deepEqual(plan.repairs.get(1)?.keep, [a], "and gets it back");
});

Deno.test("planRecovery() rewrites a rank whose log had damage, even if it holds what it should", () => {
  const a = manifest("a", 1, [[chunk(1), 4, [1]]]);
  const opened = { damagedRegions: 1, damagedBytes: 40, tailCutBytes: 0, created: false };
  const plan = recoveryOf([{ rank: 1, manifests: [a], blobs: [[blob(1), 4]], opened }]);
  assert.deepEqual([...plan.unchanged], []);
  assert.deepEqual(plan.opened.get(1), opened);
});

Deno.test("planRereplication() prefers a target in a zone that holds no replica of the chunk", () => {
  // Zone a: ranks 1, 2, 3; zone b: ranks 4, 5. Rank 4 is lost.
  const zoneOf = (rank: number) => rank <= 3 ? "a" : "b";
  const m = manifest("f", 3, [[chunk(1), 100, [1, 4]], [chunk(1, 100), 100, [4, 5]]]);
  const bytesHeld = new Map([[1, 0], [2, 0], [3, 0], [4, 0], [5, 900]]);
  const plan = planRereplication(m, 4, { bytesHeld, down: new Set([4]), zoneOf });
  // Chunk 0 stays on 1 (zone a): it goes to 5, in zone b, though 5 holds the most. Chunk 1
  // stays on 5 (zone b): it goes to 1, the least loaded (and lowest) rank of zone a.
  assert.deepEqual(plan.copies.map((c) => [c.chunk.id, c.sources, c.target]), [
    [chunk(1), [1], 5],
    [chunk(1, 100), [5], 1],
  ]);
  const flat = planRereplication(m, 4, { bytesHeld, down: new Set([4]) });
  assert.deepEqual(flat.copies.map((c) => c.target), [2, 1], "without zones: the least loaded");
});

Deno.test("planRereplication() takes the least loaded live node when no other zone can take it", () => {
  const zoneOf = (rank: number) => rank <= 3 ? "a" : "b";
  const m = manifest("f", 3, [[chunk(1), 100, [1, 4]]]);
  const bytesHeld = new Map([[1, 0], [2, 30], [3, 20], [4, 0], [5, 0]]);
  const plan = planRereplication(m, 4, { bytesHeld, down: new Set([4, 5]), zoneOf });
  assert.deepEqual(plan.copies.map((c) => c.target), [3]);
});
