import assert from "node:assert/strict";
import { ManifestTable } from "./manifest_table.ts";
import { mergeListings, toListing, tombstoneOf } from "../common/manifest.ts";
import { manifest } from "../testing/manifests.ts";
import { decodeRecord, encodeRecord } from "./log_record.ts";

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

Deno.test("ManifestTable applies a compose at once: the sources tombstoned, the new file holds their chunks", () => {
  const table = new ManifestTable();
  const a = manifest("up/1", 3, [["c1", 4, [1, 2]]]);
  const b = manifest("up/2", 4, [["c2", 5, [1]], ["c3", 1, [2]]]);
  table.apply({ kind: "commit", manifest: a });
  table.apply({ kind: "commit", manifest: b });
  const whole = manifest(
    "whole",
    7,
    [...a.chunks, ...b.chunks].map((c) => [c.id, c.size, c.ranks]),
  );
  const record = {
    kind: "compose" as const,
    sources: [a, b].map(({ name, version }) => ({ name, version })),
    manifest: whole,
  };
  assert.deepEqual(decodeRecord(encodeRecord(record)), record);
  table.apply(record);
  assert.equal(table.get("up/1", 3), undefined);
  assert.equal(table.get("up/2", 4), undefined);
  assert.equal(table.get("up/1", 7)?.deleted, true);
  assert.equal(table.get("up/2", 7)?.modified, whole.modified);
  assert.deepEqual(table.get("whole", 7)?.chunks.map((c) => c.id), ["c1", "c2", "c3"]);
  assert.deepEqual(mergeListings([table.latest("")]).map((e) => e.name), ["whole"]);
});
