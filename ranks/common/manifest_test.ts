import assert from "node:assert/strict";
import { chunkIdOf } from "./chunk_id.ts";
import {
  decodeRecord,
  decodeRecordWithData,
  encodeRecord,
  FileIndex,
  fileMetaOf,
  type Manifest,
  ManifestTable,
  mergeListings,
  planRecovery,
  toListing,
  tombstoneOf,
} from "./manifest.ts";

/** A blob id made from a number, and the id of a chunk in it. */
const blob = (n: number) => n.toString(16).padStart(32, "0");
const chunk = (n: number, offset = 0) => chunkIdOf(blob(n), offset);

function manifest(name: string, version: number, chunks: [string, number, number[]][]): Manifest {
  return {
    name,
    version,
    size: chunks.reduce((n, [, size]) => n + size, 0),
    sha256: "0".repeat(64),
    modified: 1000 + version,
    chunks: chunks.map(([id, size, ranks]) => ({ id, size, ranks })),
  };
}

Deno.test("encodeRecord() and decodeRecord() round-trip commit and release records", () => {
  const m = manifest("a/b", 3, [["c1", 10, [1, 2]]]);
  assert.deepEqual(decodeRecord(encodeRecord({ kind: "commit", manifest: m })), {
    kind: "commit",
    manifest: m,
  });
  const release = { kind: "release" as const, name: "a/b", version: 3 };
  assert.deepEqual(decodeRecord(encodeRecord(release)), release);
});

Deno.test("decodeRecord() refuses a manifest whose chunk sizes do not add up", () => {
  const m = { ...manifest("a", 1, [["c1", 10, [1]]]), size: 11 };
  assert.throws(() => decodeRecord(encodeRecord({ kind: "commit", manifest: m })), /sizes add up/);
});

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

Deno.test("FileIndex.install() lets the higher version win whatever the arrival order", () => {
  const index = new FileIndex();
  const v2 = manifest("a", 2, []);
  const v1 = manifest("a", 1, []);
  assert.deepEqual(index.install(v2), { installed: true, superseded: undefined });
  assert.deepEqual(index.install(v1), { installed: false, superseded: v1 });
  assert.equal(index.get("a"), v2);
  assert.equal(index.nextVersion(), 3);
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

Deno.test("encodeRecord() with data round-trips through decodeRecordWithData()", () => {
  const record = { kind: "commit" as const, manifest: manifest("s", 3, [[chunk(1), 5, [1, 2]]]) };
  const data = Uint8Array.of(9, 8, 7, 6, 5);
  const bytes = encodeRecord(record, data);
  const decoded = decodeRecordWithData(bytes);
  assert.deepEqual(decoded.record, record);
  assert.deepEqual(decoded.data, { offset: bytes.length - 5, size: 5 });
  assert.deepEqual(bytes.subarray(decoded.data!.offset), data);
  assert.deepEqual(decodeRecord(bytes), record, "decodeRecord() reads past the data");
  const plain = encodeRecord(record);
  assert.deepEqual(decodeRecordWithData(plain), { record });
  const empty = decodeRecordWithData(
    encodeRecord({ kind: "data", id: chunk(2) }, new Uint8Array()),
  );
  assert.deepEqual(empty.data?.size, 0);
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
