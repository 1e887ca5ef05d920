import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { ManifestTable } from "./manifest_table.ts";
import { NODE_LIST_ENTRIES_MAX } from "../common/node_protocol.ts";
import { LISTING_FIELDS, toListing, tombstoneOf } from "../common/manifest.ts";
import { manifest } from "../testing/manifests.ts";
import { decodeRecord, encodeRecord, type LogRecord } from "./log_record.ts";
import { tableOnModelLog } from "./_model_log.ts";

/**
 * A table over a model of the log: each record applied is encoded into it at a made-up offset,
 * and read back from there. `whole`: applied before its append resolves, then placed.
 */
function onLog(mode: "replayed" | "whole" = "replayed") {
  const { table, log, reads } = tableOnModelLog();
  const apply = (record: LogRecord) => {
    const where = 100 + 10 * log.size;
    log.set(where, encodeRecord(record));
    if (mode === "replayed") return table.apply(record, where);
    table.apply(record);
    table.placed(record, where);
  };
  return { table, apply, log, reads };
}

for (const mode of ["replayed", "whole"] as const) {
  Deno.test(`ManifestTable keeps versions until released and lists the newest by prefix (${mode})`, () => {
    const { table, apply } = onLog(mode);
    apply({ kind: "commit", manifest: manifest("d/a", 1, [["c1", 1, [1]]]) });
    apply({ kind: "commit", manifest: manifest("d/a", 4, [["c2", 2, [1]]]) });
    apply({ kind: "commit", manifest: manifest("e", 2, [["c3", 3, [1]]]) });
    assert.deepEqual(
      table.page("d/", { limit: 10 }),
      {
        listing: toListing([{ name: "d/a", size: 2, modified: 1004, version: 4, replicas: 1 }]),
        more: false,
      },
    );
    assert.equal([...table.all()].length, 3);
    apply({ kind: "release", name: "d/a", version: 1 });
    assert.equal(table.get("d/a", 1), undefined);
    assert.equal(table.get("d/a", 4)?.size, 2);
    apply({ kind: "release", name: "d/a", version: 4 });
    assert.deepEqual(
      table.page("", { limit: 10 }),
      {
        listing: toListing([{ name: "e", size: 3, modified: 1002, version: 2, replicas: 1 }]),
        more: false,
      },
    );
  });

  Deno.test(`ManifestTable applies a rename at once: old name tombstoned, new name holds the chunks (${mode})`, () => {
    const { table, apply } = onLog(mode);
    const m = manifest("old", 3, [["c1", 4, [1, 2]]]);
    apply({ kind: "commit", manifest: m });
    const moved = { ...m, name: "new", version: 5 };
    apply({
      kind: "rename",
      fromVersion: 3,
      tombstone: tombstoneOf("old", 5, 9),
      manifest: moved,
    });
    assert.equal(table.get("old", 3), undefined);
    assert.deepEqual(table.get("new", 5)?.chunks, m.chunks);
    assert.deepEqual(liveNames(table), ["new"]);
  });

  Deno.test(`ManifestTable applies a compose at once: the sources tombstoned, the new file holds their chunks (${mode})`, () => {
    const { table, apply } = onLog(mode);
    const a = manifest("up/1", 3, [["c1", 4, [1, 2]]]);
    const b = manifest("up/2", 4, [["c2", 5, [1]], ["c3", 1, [2]]]);
    apply({ kind: "commit", manifest: a });
    apply({ kind: "commit", manifest: b });
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

  Deno.test(`ManifestTable.page() pages the newest version of each name, and refuses a limit out of range (${mode})`, () => {
    const { table, apply } = onLog(mode);
    for (const [name, version] of [["b", 2], ["a", 1], ["b", 5], ["c", 3], ["a/x", 4]] as const) {
      apply({ kind: "commit", manifest: manifest(name, version, [["c1", 1, [1]]]) });
    }
    apply({ kind: "release", name: "b", version: 2 }); // b keeps version 5
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
}

/** The names `table` lists that are not tombstones. */
function liveNames(table: ManifestTable): string[] {
  const { listing } = table.page("", { limit: 100 });
  const names = listing.names === "" ? [] : listing.names.split("\0");
  return names.filter((_, i) => listing.numbers[i * LISTING_FIELDS + 4] === 0);
}

Deno.test("ManifestTable holds whole only what is not in the log yet, reads the rest back, and says so when a record is damaged", () => {
  const { table, apply, log, reads } = onLog("replayed");
  const a = manifest("a", 1, [["c1", 1, [1]]]);
  apply({ kind: "commit", manifest: a });
  assert.equal(table.heldWhole, 0);
  assert.deepEqual(table.get("a", 1), a, "read back from its record");
  assert.deepEqual(reads, [100]);
  // Applied before its append resolves: held whole, then placed.
  const b = manifest("b", 2, [["c2", 2, [1]]]);
  table.apply({ kind: "commit", manifest: b });
  assert.equal(table.heldWhole, 1);
  assert.deepEqual(table.get("b", 2), b);
  assert.deepEqual(reads, [100], "held whole: no read");
  log.set(110, encodeRecord({ kind: "commit", manifest: b }));
  table.placed({ kind: "commit", manifest: b }, 110);
  assert.equal(table.heldWhole, 0);
  assert.deepEqual([...table.all()].map((m) => m.name).sort(), ["a", "b"]);
  // Undoing a release puts the manifest back where its record is.
  const undo = table.undoOf({ kind: "release", name: "a", version: 1 });
  assert.deepEqual(undo, [{ record: { kind: "commit", manifest: a }, where: 100 }]);
  table.apply({ kind: "release", name: "a", version: 1 });
  for (const step of undo) table.apply(step.record, step.where);
  assert.equal(table.heldWhole, 0);
  assert.deepEqual(table.get("a", 1), a);
  // A newer version keeps the older whole until it is released.
  apply({ kind: "commit", manifest: manifest("a", 3, [["c3", 3, [1]]]) });
  assert.equal(table.heldWhole, 1);
  assert.deepEqual(table.get("a", 1), a);
  table.apply({ kind: "release", name: "a", version: 1 });
  assert.equal(table.heldWhole, 0);
  // A record that is not there, or holds another manifest, is damage.
  log.set(100, encodeRecord({ kind: "commit", manifest: manifest("z", 9, []) }));
  table.place("b", 2, 100);
  assert.throws(() => table.get("b", 2), (e) => e instanceof DfsError && e.code === "CORRUPTED");
  assert.deepEqual([...table.versions()].map((v) => v.name).sort(), ["a", "b"]);
});
