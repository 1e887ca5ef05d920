import assert from "node:assert/strict";
import { planRecovery } from "./plans.ts";
import { tombstoneOf } from "../common/manifest.ts";
import { blob, chunk, manifest } from "../common/_test_manifests.ts";

Deno.test("planRecovery() lets a tombstone win: the name and its chunks are gone everywhere", () => {
  const m = manifest("r", 1, [[chunk(1), 4, [1, 2]]]);
  const plan = planRecovery([
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
  const plan = planRecovery([
    { rank: 1, manifests: [m], blobs: [[blob(1), 4]] },
    { rank: 2, manifests: [tombstoneOf("old", 2, 0), moved], blobs: [[blob(1), 4]] },
  ]);
  assert.deepEqual(plan.files, [moved]);
  assert.deepEqual(plan.repairs.get(1), { keep: [moved], deleteBlobs: [], bytesHeld: 4 });
});

Deno.test("planRecovery() finds a chunk in a sparse blob only if the blob reaches past its end", () => {
  // Chunks 0 and 2 of a file on rank 1, chunk 1 on rank 2: each blob has a hole.
  const m = manifest("s", 1, [[chunk(5, 0), 4, [1]], [chunk(5, 4), 4, [2]], [chunk(5, 8), 2, [1]]]);
  const whole = planRecovery([
    { rank: 1, manifests: [m], blobs: [[blob(5), 10]] },
    { rank: 2, manifests: [m], blobs: [[blob(5), 8]] },
  ]);
  assert.deepEqual(whole.files, [m]);
  assert.equal(whole.repairs.get(1)?.bytesHeld, 6);
  assert.equal(whole.repairs.get(2)?.bytesHeld, 4);
  const cut = planRecovery([
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
  const plan = planRecovery([
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
  const plan = planRecovery([
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
  const plan = planRecovery([
    { rank: 1, manifests: [a], blobs: [[blob(1), 4]] },
    { rank: 2, manifests: [{ ...a }, b], blobs: [[blob(1), 4], [blob(2), 4]] }, // copies, not the same objects
    { rank: 3, manifests: [b, stale], blobs: [[blob(2), 4]] }, // stale's chunk is gone
  ]);
  assert.deepEqual(plan.files.map((m) => m.name).sort(), ["a", "b"]);
  assert.deepEqual([...plan.unchanged].sort(), [1, 2]);
});

Deno.test("planRecovery() counts a chunk kept in a rank's log as present there", () => {
  const small = manifest("s", 1, [[chunk(7), 64, [1, 2]]]);
  const plan = planRecovery([
    { rank: 1, manifests: [small], blobs: [], inLog: [chunk(7), chunk(8)].join("\0") },
    { rank: 2, manifests: [small], blobs: [] }, // lost it: rank 1's copy is enough
  ]);
  assert.deepEqual(plan.files, [small]);
  assert.deepEqual(plan.repairs.get(1), { keep: [small], deleteBlobs: [], bytesHeld: 64 });
  assert.deepEqual(plan.repairs.get(2), { keep: [small], deleteBlobs: [], bytesHeld: 0 });
  const gone = planRecovery([{ rank: 1, manifests: [small], blobs: [], inLog: "" }]);
  assert.deepEqual(gone.damaged, [{ name: "s", version: 1, fallback: undefined }]);
});
