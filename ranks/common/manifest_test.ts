import assert from "node:assert/strict";
import { fileMetaOf } from "./manifest.ts";
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
