import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { ManifestTable } from "./manifest_table.ts";
import { NODE_LIST_ENTRIES_MAX } from "../common/node_protocol.ts";
import { LISTING_FIELDS, toListing, tombstoneOf } from "../common/manifest.ts";
import { manifest } from "../testing/manifests.ts";
import { decodeRecord, encodeRecord } from "./log_record.ts";

Deno.test("ManifestTable keeps versions until released and lists the newest by prefix", () => {
  const table = new ManifestTable();
  table.apply({ kind: "commit", manifest: manifest("d/a", 1, [["c1", 1, [1]]]) });
  table.apply({ kind: "commit", manifest: manifest("d/a", 4, [["c2", 2, [1]]]) });
  table.apply({ kind: "commit", manifest: manifest("e", 2, [["c3", 3, [1]]]) });
  assert.deepEqual(
    table.page("d/", { limit: 10 }),
    {
      listing: toListing([{ name: "d/a", size: 2, modified: 1004, version: 4, replicas: 1 }]),
      more: false,
    },
  );
  assert.equal([...table.all()].length, 3);
  table.apply({ kind: "release", name: "d/a", version: 1 });
  assert.equal(table.get("d/a", 1), undefined);
  assert.equal(table.get("d/a", 4)?.size, 2);
  table.apply({ kind: "release", name: "d/a", version: 4 });
  assert.deepEqual(
    table.page("", { limit: 10 }),
    {
      listing: toListing([{ name: "e", size: 3, modified: 1002, version: 2, replicas: 1 }]),
      more: false,
    },
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
  assert.deepEqual(liveNames(table), ["new"]);
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
  assert.deepEqual(liveNames(table), ["whole"]);
});

/** The names `table` lists that are not tombstones. */
function liveNames(table: ManifestTable): string[] {
  const { listing } = table.page("", { limit: 100 });
  const names = listing.names === "" ? [] : listing.names.split("\0");
  return names.filter((_, i) => listing.numbers[i * LISTING_FIELDS + 4] === 0);
}

Deno.test("ManifestTable.page() pages the newest version of each name, and refuses a limit out of range", () => {
  const table = new ManifestTable();
  for (const [name, version] of [["b", 2], ["a", 1], ["b", 5], ["c", 3], ["a/x", 4]] as const) {
    table.apply({ kind: "commit", manifest: manifest(name, version, [["c1", 1, [1]]]) });
  }
  table.apply({ kind: "release", name: "b", version: 2 }); // b keeps version 5
  const first = table.page("", { limit: 2 });
  assert.deepEqual([first.listing.names, first.more], ["a\0a/x", true]);
  const rest = table.page("", { after: "a/x", limit: 2 });
  assert.deepEqual([rest.listing.names, rest.more], ["b\0c", false]);
  assert.equal(rest.listing.numbers[2], 5, "the newest version of b");
  for (const limit of [0, NODE_LIST_ENTRIES_MAX + 1, 1.5]) {
    assert.throws(
      () => table.page("", { limit }),
      (error) =>
        error instanceof DfsError && error.code === "INVALID_REQUEST" &&
        error.message ===
          `Cannot list ${limit} names at once: a page is 1 to ${NODE_LIST_ENTRIES_MAX} names`,
    );
  }
});
