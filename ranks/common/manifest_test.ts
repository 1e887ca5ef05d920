import assert from "node:assert/strict";
import { fileMetaOf, mergeListings, toListing } from "./manifest.ts";
import { manifest } from "../testing/manifests.ts";

Deno.test("fileMetaOf() exposes sizes, ranks and CRC32s but not chunk ids", () => {
  const m = manifest("a", 1, [["c1", 10, [1, 2]], ["c2", 5, [2, 3]]]);
  m.chunks[0].crc32 = 1234;
  const meta = fileMetaOf(m);
  assert.deepEqual(meta.chunks, [{ size: 10, ranks: [1, 2], crc32: 1234 }, {
    size: 5,
    ranks: [2, 3],
  }]);
  assert.equal(JSON.stringify(meta).includes("c1"), false);
});

Deno.test("mergeListings() keeps the highest version of each name, sorted by name", () => {
  const merged = mergeListings([
    toListing([
      { name: "b", size: 1, modified: 1, version: 1, replicas: 2 },
      { name: "a", size: 5, modified: 5, version: 5, replicas: 2 },
      { name: "a/é", size: 6, modified: 6, version: 6, replicas: 2 },
    ]),
    toListing([]),
    toListing([
      { name: "b", size: 2, modified: 2, version: 7, replicas: 3 },
      { name: "B", size: 8, modified: 8, version: 8, replicas: 1 },
      { name: "c", size: 3, modified: 3, version: 2, replicas: 2 },
    ]),
    toListing([{ name: "b", size: 4, modified: 4, version: 6, replicas: 2 }]),
  ]);
  assert.deepEqual(merged, [
    { name: "B", size: 8, modified: 8, replicas: 1 },
    { name: "a", size: 5, modified: 5, replicas: 2 },
    { name: "a/é", size: 6, modified: 6, replicas: 2 },
    { name: "b", size: 2, modified: 2, replicas: 3 },
    { name: "c", size: 3, modified: 3, replicas: 2 },
  ]);
});

Deno.test("mergeListings() drops a name whose newest version anywhere is a tombstone", () => {
  const merged = mergeListings([
    toListing([{ name: "gone", size: 9, modified: 1, version: 3, replicas: 2 }]),
    toListing([{ name: "gone", size: 0, modified: 2, version: 4, replicas: 0, deleted: true }]),
  ]);
  assert.deepEqual(merged, []);
});
