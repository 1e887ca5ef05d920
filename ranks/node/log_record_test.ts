import assert from "node:assert/strict";
import { assertCorrupted } from "../testing/assert_corrupted.ts";
import { decodeRecord, decodeRecordWithData, encodeRecord, type LogRecord } from "./log_record.ts";
import { chunk, manifest } from "../testing/manifests.ts";
import { Encoder } from "../../protocol/cbor.ts";
import { tombstoneOf } from "../common/manifest.ts";

/** A record of every kind, each with chunk ids as rank 0 makes them and as older tests do. */
const RECORDS: LogRecord[] = [
  { kind: "commit", manifest: manifest("a/b", 3, [["c1", 10, [1, 2]]]) },
  { kind: "commit", manifest: { ...manifest("s", 3, [[chunk(1), 5, [1, 2]]]), attrs: { a: "b" } } },
  { kind: "commit", manifest: tombstoneOf("gone", 4, 5) },
  { kind: "release", name: "a/b", version: 3 },
  {
    kind: "rename",
    fromVersion: 3,
    tombstone: tombstoneOf("old", 5, 6),
    manifest: manifest("new", 5, [[chunk(1), 4, [1]]]),
  },
  { kind: "rename", fromVersion: 3, manifest: manifest("same", 5, [[chunk(2), 4, [2, 3]]]) },
  {
    kind: "compose",
    sources: [{ name: "up/1", version: 3 }, { name: "up/2", version: 4 }],
    manifest: manifest("whole", 7, [[chunk(1), 4, [1, 2]], [chunk(2), 5, [1]]]),
  },
  { kind: "compose", sources: [], manifest: manifest("whole", 8, []) },
  { kind: "data", id: chunk(2) },
];

/** A log record as dfs wrote it before the binary form: CBOR, with data behind a header. */
function encodeCborRecord(record: LogRecord, data?: Uint8Array): Uint8Array {
  const cbor = new Encoder({ useRecords: false, mapsAsObjects: true }).encode(record);
  if (data === undefined) return cbor.slice();
  const header = new Uint8Array(5);
  header[0] = 0x01;
  new DataView(header.buffer).setUint32(1, cbor.length);
  return Uint8Array.from([...header, ...cbor, ...data]);
}

Deno.test("encodeRecord() and decodeRecord() round-trip every kind of record", () => {
  for (const record of RECORDS) {
    const bytes = encodeRecord(record);
    assert.ok(bytes[0] >= 0x10 && bytes[0] <= 0x14, `binary, first byte ${bytes[0]}`);
    assert.deepEqual(decodeRecord(bytes), record);
    assert.deepEqual(decodeRecordWithData(bytes), { record });
  }
});

Deno.test("decodeRecord() refuses a manifest whose chunk sizes do not add up", () => {
  const m = { ...manifest("a", 1, [["c1", 10, [1]]]), size: 11 };
  assert.throws(() => decodeRecord(encodeRecord({ kind: "commit", manifest: m })), /sizes add up/);
});

Deno.test("encodeRecord() with data round-trips through decodeRecordWithData()", () => {
  const data = Uint8Array.of(9, 8, 7, 6, 5);
  for (const record of RECORDS) {
    const bytes = encodeRecord(record, data);
    assert.ok(bytes[0] >= 0x18 && bytes[0] <= 0x1c, `binary with data, first byte ${bytes[0]}`);
    const decoded = decodeRecordWithData(bytes);
    assert.deepEqual(decoded.record, record);
    assert.deepEqual(decoded.data, { offset: bytes.length - 5, size: 5 });
    assert.deepEqual(bytes.subarray(decoded.data!.offset), data);
    assert.deepEqual(decodeRecord(bytes), record, "decodeRecord() reads past the data");
  }
  const empty = decodeRecordWithData(
    encodeRecord({ kind: "data", id: chunk(2) }, new Uint8Array()),
  );
  assert.deepEqual(empty.data?.size, 0);
});

Deno.test("encodeRecord() writes a small file's commit with its data in under half the CBOR bytes", () => {
  const m = {
    ...manifest("dir/file-000123.txt", 1_000_123, [[chunk(0xabcdef), 4096, [1, 2]]]),
    sha256: "9f".repeat(32),
    modified: 1_735_000_000_000,
  };
  m.chunks[0].crc32 = 0xcbf43926;
  const record: LogRecord = { kind: "commit", manifest: m };
  const data = new Uint8Array(4096);
  const binary = encodeRecord(record, data).length - data.length;
  const cbor = encodeCborRecord(record, data).length - data.length;
  assert.ok(binary <= cbor / 2, `${binary} bytes, ${cbor} in CBOR`);
  assert.equal(binary, 1 + 92);
});

Deno.test("decodeRecordWithData() reads records in the CBOR form of earlier logs", () => {
  // A commit with 5 bytes of data, as dfs wrote it before the binary form.
  const hex = "01000000eab90002646b696e6466636f6d6d6974686d616e6966657374b90006646e616d6573" +
    "6469722f66696c652d3030303132332e7478746776657273696f6e076473697a65056673686132" +
    "3536784061626162616261626162616261626162616261626162616261626162616261626162" +
    "616261626162616261626162616261626162616261626162616261626162686d6f6469666965" +
    "64fb42793f60f0600000666368756e6b7381b90004626964782230313233343536373839616263" +
    "646566303132333435363738396162636465662d306473697a65056572616e6b73820102656372" +
    "6333321aefcdab890102030405";
  const bytes = Uint8Array.from(hex.match(/../g)!, (byte) => parseInt(byte, 16));
  const decoded = decodeRecordWithData(bytes);
  assert.deepEqual(decoded, {
    record: {
      kind: "commit",
      manifest: {
        name: "dir/file-000123.txt",
        version: 7,
        size: 5,
        sha256: "ab".repeat(32),
        modified: 1_735_000_000_000,
        chunks: [{
          id: "0123456789abcdef0123456789abcdef-0",
          size: 5,
          ranks: [1, 2],
          crc32: 0xefcdab89,
        }],
      },
    },
    data: { offset: bytes.length - 5, size: 5 },
  });
  const release = "b90003646b696e646772656c65617365646e616d6563612f626776657273696f6e03";
  assert.deepEqual(
    decodeRecord(Uint8Array.from(release.match(/../g)!, (byte) => parseInt(byte, 16))),
    { kind: "release", name: "a/b", version: 3 },
  );
  for (const record of RECORDS) {
    assert.deepEqual(decodeRecord(encodeCborRecord(record)), record);
    const withData = encodeCborRecord(record, Uint8Array.of(1, 2));
    assert.deepEqual(decodeRecordWithData(withData), {
      record,
      data: { offset: withData.length - 2, size: 2 },
    });
  }
  assert.throws(
    () => decodeRecord(encodeCborRecord({ kind: "bogus" } as unknown as LogRecord)),
    /log record has a known kind/,
  );
});

Deno.test("decodeRecord() throws on a binary record cut at any byte, or with bytes after it", () => {
  for (const record of RECORDS) {
    const bytes = encodeRecord(record);
    for (let end = 1; end < bytes.length; end++) {
      assertCorrupted(() => decodeRecord(bytes.subarray(0, end)), /^Cannot decode a log record/);
    }
    assertCorrupted(
      () => decodeRecord(Uint8Array.from([...bytes, 0])),
      /at byte \d+: 1 bytes follow the record/,
    );
  }
});

Deno.test("decodeRecord() refuses a binary record of an unknown kind or with a bad field", () => {
  assertCorrupted(() => decodeRecord(Uint8Array.of(0x15)), /at byte 0: unknown kind 5/);
  assertCorrupted(() => decodeRecord(Uint8Array.of(0x1f, 1, 2)), /at byte 0: unknown kind 7/);
  const rename = encodeRecord(RECORDS[4]);
  rename[2] = 2; // the tombstone flag
  assertCorrupted(() => decodeRecord(rename), /at byte 3: a rename's tombstone flag is not 0 or 1/);
  assertCorrupted(() => decodeRecord(Uint8Array.of(0x13, 100, 0)), /ends before its sources/);
});
