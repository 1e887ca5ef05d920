import assert from "node:assert/strict";
import { FileIndex } from "./file_index.ts";
import { tombstoneOf } from "../common/manifest.ts";
import { manifest } from "../testing/manifests.ts";

Deno.test("FileIndex hides removed names and refuses older versions after a tombstone", () => {
  const index = new FileIndex();
  const v1 = manifest("a", 1, [["c1", 1, [1]]]);
  index.install(v1);
  assert.deepEqual(index.install(tombstoneOf("a", 2, 0)), { installed: true, superseded: v1 });
  assert.equal(index.get("a"), undefined);
  assert.equal(index.size, 0);
  assert.equal(index.install(manifest("a", 1, [["c9", 1, [1]]])).installed, false);
  const v3 = manifest("a", 3, [["c3", 1, [1]]]);
  assert.deepEqual(index.install(v3), { installed: true, superseded: undefined });
  assert.equal(index.get("a"), v3);
  assert.equal(index.size, 1);
});

Deno.test("FileIndex.install() lets the higher version win whatever the arrival order", () => {
  const index = new FileIndex();
  const v2 = manifest("a", 2, []);
  const v1 = manifest("a", 1, []);
  assert.deepEqual(index.install(v2), { installed: true, superseded: undefined });
  assert.deepEqual(index.install(v1), { installed: false, superseded: v1 });
  assert.equal(index.get("a"), v2);
  assert.equal(index.nextVersion(), 3);
});
