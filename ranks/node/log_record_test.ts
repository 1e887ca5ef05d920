import assert from "node:assert/strict";
import { decodeRecord, decodeRecordWithData, encodeRecord } from "./log_record.ts";
import { chunk, manifest } from "../testing/manifests.ts";

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
