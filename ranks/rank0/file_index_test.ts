import assert from "node:assert/strict";
import { FileIndex } from "./file_index.ts";
import { LISTING_FIELDS, tombstoneOf } from "../common/manifest.ts";
import type { ManifestSummary } from "../common/manifest_columns.ts";
import { chunk, manifest } from "../testing/manifests.ts";

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
  assert.deepEqual(index.get("a"), v3);
  assert.equal(index.size, 1);
});

Deno.test("FileIndex.install() lets the higher version win whatever the arrival order", () => {
  const index = new FileIndex();
  const v2 = manifest("a", 2, []);
  const v1 = manifest("a", 1, []);
  assert.deepEqual(index.install(v2), { installed: true, superseded: undefined });
  const lost = index.install(v1);
  assert.deepEqual(lost, { installed: false, superseded: v1 });
  assert.equal(lost.superseded, v1, "the manifest that lost is the one given");
  assert.deepEqual(index.get("a"), v2);
  assert.equal(index.nextVersion(), 3);
});

Deno.test("FileIndex gives out copies: changing one changes nothing in the index", () => {
  const index = new FileIndex();
  const m = manifest("a", 1, [[chunk(1), 5, [1, 2]]]);
  index.install(m);
  const got = index.get("a")!;
  assert.notEqual(got, m);
  got.chunks[0].ranks.push(3);
  m.chunks[0].ranks.pop();
  assert.deepEqual(index.get("a"), manifest("a", 1, [[chunk(1), 5, [1, 2]]]));
  const { superseded } = index.install(manifest("a", 2, [[chunk(2), 5, [1, 2]]]));
  assert.deepEqual(superseded, manifest("a", 1, [[chunk(1), 5, [1, 2]]]));
});

Deno.test("FileIndex.values(), names() and forEachSummary() skip tombstones and filter by prefix", () => {
  const index = new FileIndex();
  const files = [
    manifest("docs/a", 1, [[chunk(1), 3, [1, 2]]]),
    manifest("docs/é", 2, [[chunk(2), 4, [2]], [chunk(2, 4), 1, [1, 2]]]),
    manifest("photos/b", 3, [[chunk(3), 5, [1, 2]]]),
  ];
  for (const m of files) index.install(m);
  index.install(manifest("docs/gone", 4, [[chunk(4), 1, [1]]]));
  index.install(tombstoneOf("docs/gone", 5, 0));
  const byName = (a: { name: string }, b: { name: string }) => a.name < b.name ? -1 : 1;
  assert.deepEqual([...index.values()].sort(byName), files);
  assert.deepEqual([...index.values("docs/")].sort(byName), files.slice(0, 2));
  assert.deepEqual([...index.names("photos/")], ["photos/b"]);
  const summaries: ManifestSummary[] = [];
  index.forEachSummary((s) => summaries.push(s), "docs/");
  assert.deepEqual(summaries.sort(byName), [
    { name: "docs/a", version: 1, size: 3, modified: 1001, deleted: false, replicas: 2 },
    { name: "docs/é", version: 2, size: 5, modified: 1002, deleted: false, replicas: 1 },
  ]);
  assert.equal(index.size, 3);
});

Deno.test("FileIndex.page() pages names in order with tombstones marked, as a data node does", () => {
  const index = new FileIndex();
  for (const name of ["d/b", "d/a", "e", "d/c"]) {
    index.install(manifest(name, index.nextVersion(), []));
  }
  index.install(tombstoneOf("d/b", index.nextVersion(), 1));
  const first = index.page("d/", { limit: 2 });
  assert.deepEqual([first.listing.names, first.more], ["d/a\0d/b", true]);
  assert.equal(first.listing.numbers[LISTING_FIELDS + 4], 1, "d/b is a tombstone");
  const rest = index.page("d/", { after: "d/b", limit: 2 });
  assert.deepEqual([rest.listing.names, rest.more], ["d/c", false]);
});
