import assert from "node:assert/strict";
import { ManifestTable } from "./manifest_table.ts";
import { mergeListings, toListing, tombstoneOf } from "../common/manifest.ts";
import { manifest } from "../testing/manifests.ts";

Deno.test("ManifestTable keeps versions until released and lists the newest by prefix", () => {
  const table = new ManifestTable();
  table.apply({ kind: "commit", manifest: manifest("d/a", 1, [["c1", 1, [1]]]) });
  table.apply({ kind: "commit", manifest: manifest("d/a", 4, [["c2", 2, [1]]]) });
  table.apply({ kind: "commit", manifest: manifest("e", 2, [["c3", 3, [1]]]) });
  assert.deepEqual(
    table.latest("d/"),
    toListing([{ name: "d/a", size: 2, modified: 1004, version: 4, replicas: 1 }]),
  );
  assert.equal([...table.all()].length, 3);
  table.apply({ kind: "release", name: "d/a", version: 1 });
  assert.equal(table.get("d/a", 1), undefined);
  assert.equal(table.get("d/a", 4)?.size, 2);
  table.apply({ kind: "release", name: "d/a", version: 4 });
  assert.deepEqual(
    table.latest(""),
    toListing([{ name: "e", size: 3, modified: 1002, version: 2, replicas: 1 }]),
  );
});

Deno.test("ManifestTable applies a rename at once: old name tombstoned, new name holds the chunks", () => {
  const table = new ManifestTable();
  const m = manifest("old", 3, [["c1", 4, [1, 2]]]);
  table.apply({ kind: "commit", manifest: m });
  const moved = { ...m, name: "new", version: 5 };
  table.apply({
    kind: "rename",
    fromVersion: 3,
    tombstone: tombstoneOf("old", 5, 9),
    manifest: moved,
  });
  assert.equal(table.get("old", 3), undefined);
  assert.deepEqual(table.get("new", 5)?.chunks, m.chunks);
  assert.deepEqual(mergeListings([table.latest("")]).map((e) => e.name), ["new"]);
});
