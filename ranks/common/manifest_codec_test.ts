import assert from "node:assert/strict";
import { assertCorrupted } from "../testing/assert_corrupted.ts";
import {
  decodeManifest,
  encodeManifest,
  ManifestReader,
  ManifestWriter,
  readManifests,
} from "./manifest_codec.ts";
import { VARINT_BYTES_MAX } from "./byte_codec.ts";
import { type Manifest, tombstoneOf } from "./manifest.ts";
import { DfsError } from "../../protocol/errors.ts";
import { blob, chunk } from "../testing/manifests.ts";

const SHA256 = "0123456789abcdef".repeat(4);

/** A small file as rank 0 commits it: one chunk kept in the log, on two ranks. */
function smallFile(n: number): Manifest {
  return {
    name: `dir/file-${String(n).padStart(6, "0")}.txt`,
    version: 1_000_000 + n,
    size: 4096,
    sha256: SHA256,
    modified: 1_735_000_000_000 + n,
    chunks: [{ id: chunk(0xabcdef0123 + n), size: 4096, ranks: [1, 2], crc32: 0xfedcba98 }],
  };
}

/** A large file: `count` chunks of 1 MiB at growing offsets of one blob, on varied ranks. */
function largeFile(count: number): Manifest {
  const chunks = Array.from({ length: count }, (_, i) => ({
    id: chunk(7, i * 1024 * 1024),
    size: 1024 * 1024,
    ranks: [1 + (i % 3), 300 + i],
    ...(i % 2 === 0 ? { crc32: i * 7919 } : {}),
  }));
  return {
    name: "big/ü-файл-🎉.bin",
    version: 2 ** 53 - 1,
    size: count * 1024 * 1024,
    sha256: SHA256,
    modified: 0,
    chunks,
  };
}

/** Asserts `m` round-trips exactly, alone and through a writer; returns its encoding. */
function assertRoundTrip(m: Manifest): Uint8Array {
  const bytes = encodeManifest(m);
  const { manifest, end } = decodeManifest(bytes);
  assert.deepEqual(manifest, m);
  assert.equal(end, bytes.length);
  assert.deepEqual(Object.keys(manifest).sort(), Object.keys(m).sort(), "no extra keys");
  manifest.chunks.forEach((c, i) => {
    assert.deepEqual(Object.keys(c).sort(), Object.keys(m.chunks[i]).sort(), "no extra chunk keys");
  });
  return bytes;
}

Deno.test("encodeManifest() and decodeManifest() round-trip a small file in under 100 bytes", () => {
  const bytes = assertRoundTrip(smallFile(123));
  assert.ok(bytes.length < 100, `${bytes.length} bytes`);
  const noCrc = smallFile(1);
  delete noCrc.chunks[0].crc32;
  assert.equal(assertRoundTrip(noCrc).length, bytes.length - 4);
});

Deno.test("encodeManifest() round-trips a file of many chunks, high ranks and the largest version", () => {
  const m = largeFile(5000);
  const bytes = assertRoundTrip(m);
  // Per chunk: flags, offset (<= 5), size (3), half a CRC32 (2), rank count and ranks (4); the
  // blob id once, as every chunk after the first has the same.
  assert.ok(bytes.length < 5000 * 15 + 16 + 100, `${bytes.length} bytes`);
  m.chunks.forEach((c, i) => c.id = chunk(i % 2, i * 1024 * 1024));
  assert.equal(assertRoundTrip(m).length, bytes.length + 16 * 4999, "a blob id per chunk");
});

Deno.test("encodeManifest() round-trips tombstones and attributes", () => {
  const tombstone = tombstoneOf("gone/α", 9, 1_700_000_000_123);
  assert.equal(assertRoundTrip(tombstone).length, 1 + 8 + 1 + 1 + 6 + 1);
  const withAttrs: Manifest = {
    ...smallFile(2),
    attrs: {
      "content-type": "text/plain; charset=utf-8",
      "x-amz-meta-note": "naïve ☃\ttab",
      ["__proto__"]: "a valid name",
      "123": "digits",
      "empty": "",
    },
  };
  assertRoundTrip(withAttrs);
  assertRoundTrip({ ...smallFile(3), attrs: {} });
  const decoded = decodeManifest(encodeManifest(withAttrs)).manifest;
  assert.equal(Object.getPrototypeOf(decoded.attrs), Object.prototype);
  assert.equal(decoded.attrs?.["__proto__"], "a valid name");
});

Deno.test("encodeManifest() keeps chunk ids and sha256s that are not canonical as text", () => {
  const odd: Manifest = {
    name: "odd",
    version: 4,
    size: 6,
    sha256: SHA256.toUpperCase(),
    modified: 5,
    chunks: [
      { id: "c1", size: 1, ranks: [1] },
      { id: `${blob(1)}-00`, size: 1, ranks: [1] }, // a leading zero
      { id: `${blob(1).toUpperCase()}-0`, size: 1, ranks: [1] },
      { id: `${blob(1)}-${"f".repeat(13)}`, size: 1, ranks: [1] }, // the largest offset
      { id: `${blob(1)}-1${"0".repeat(13)}`, size: 1, ranks: [1] }, // one digit too many
      { id: "", size: 1, ranks: [1] },
    ],
  };
  assertRoundTrip(odd);
  assertRoundTrip({ ...odd, sha256: "abc" });
  assertRoundTrip({ ...odd, sha256: SHA256.slice(0, 62) + "zz" });
  assertRoundTrip({ ...odd, sha256: SHA256 + "0" });
});

Deno.test("encodeManifest() round-trips numbers that are not safe non-negative integers exactly", () => {
  assertRoundTrip({ ...smallFile(1), modified: 1_735_000_000_000.25 });
  assertRoundTrip({ ...smallFile(1), modified: -1 });
  assertRoundTrip({ ...smallFile(1), modified: -0 });
  assertRoundTrip({ ...smallFile(1), modified: 2 ** 60 });
  const crc = smallFile(1);
  crc.chunks[0].crc32 = 2 ** 32; // not a u32
  assertRoundTrip(crc);
  const halves: Manifest = {
    name: "halves",
    version: 1,
    size: 1,
    sha256: "",
    modified: 1,
    chunks: [{ id: "a", size: 0.5, ranks: [1] }, { id: "b", size: 0.5, ranks: [1.5] }],
  };
  assertRoundTrip(halves);
});

Deno.test("ManifestWriter encodes manifests back to back and readManifests() reads them all", () => {
  const writer = new ManifestWriter(1);
  const manifests = [smallFile(1), largeFile(300), tombstoneOf("t", 3, 4), smallFile(2)];
  let total = 0;
  for (const m of manifests) {
    writer.add(m);
    total += encodeManifest(m).length;
  }
  assert.equal(writer.count, 4);
  assert.equal(writer.byteLength, total);
  const bytes = writer.bytes();
  assert.equal(bytes.length, total);
  assert.equal(bytes.buffer.byteLength, total, "an exactly-sized copy");
  assert.deepEqual([...readManifests(bytes)], manifests);
  bytes[0] ^= 0xff;
  assert.notDeepEqual(writer.bytes()[0], bytes[0], "a copy, not a view");
  let at = 0;
  for (const m of manifests) {
    const decoded = decodeManifest(writer.bytes(), at);
    assert.deepEqual(decoded.manifest, m);
    at = decoded.end;
  }
  assert.deepEqual([...readManifests(new Uint8Array())], []);
});

Deno.test("ManifestWriter.add() appends nothing when it throws", () => {
  const writer = new ManifestWriter();
  writer.add(smallFile(1));
  const before = writer.bytes();
  assert.throws(() => writer.add({ ...smallFile(2), name: "lone \ud800" }), /well-formed/);
  assert.throws(
    () => writer.add({ ...smallFile(2), deleted: false as unknown as true }),
    /deleted is true or absent/,
  );
  assert.deepEqual(writer.bytes(), before);
  assert.equal(writer.count, 1);
  writer.reset();
  assert.deepEqual([writer.count, writer.byteLength], [0, 0]);
});

Deno.test("readManifests() throws on trailing bytes that are not a manifest", () => {
  const bytes = new Uint8Array([...encodeManifest(smallFile(1)), 0x01]);
  const read = readManifests(bytes);
  assert.deepEqual(read.next().value, smallFile(1));
  assertCorrupted(() => read.next(), /at byte 93: it ends inside a number/);
});

Deno.test("decodeManifest() throws on an encoding cut at any byte", () => {
  for (const m of [smallFile(1), largeFile(3), { ...smallFile(2), attrs: { a: "b" } }]) {
    const bytes = encodeManifest(m);
    for (let end = 0; end < bytes.length; end++) {
      assertCorrupted(() => decodeManifest(bytes.subarray(0, end)), /it ends (inside|before)/);
    }
  }
});

Deno.test("decodeManifest() refuses malformed bytes with the reason", () => {
  const good = encodeManifest(smallFile(1));
  const with0 = (at: number, byte: number) => good.map((b, i) => i === at ? byte : b);
  assertCorrupted(() => decodeManifest(with0(0, 0x20 | good[0])), /byte 0: unknown flags 0x28/);
  assertCorrupted(() => decodeManifest(with0(0, 0x18)), /flagged both raw and text/);
  const chunkAt = good.length - 1 - 2 - 4 - 2 - 1 - 16 - 1; // flags of the first chunk
  assertCorrupted(() => decodeManifest(with0(chunkAt, 0x0b)), /unknown chunk flags 0xb/);
  assertCorrupted(() => decodeManifest(with0(chunkAt, 0x05)), /byte 66: a chunk has no previous/);
  assertCorrupted(() => decodeManifest(with0(chunkAt, 0x04)), /text is flagged with the previous/);
  // A name of invalid UTF-8, a varint with a needless 0 byte, one too long, one over 2^53.
  assertCorrupted(
    () => decodeManifest(Uint8Array.of(0, 2, 0xc3, 0x28, 1, 0, 0, 0)),
    /byte 2: a string is not UTF-8/,
  );
  assertCorrupted(() => decodeManifest(Uint8Array.of(0, 0x81, 0)), /needless 0 byte/);
  const long = Uint8Array.of(0, 1, 0x61, ...new Array(VARINT_BYTES_MAX).fill(0x81), 1);
  assertCorrupted(() => decodeManifest(long), /byte 3: a number runs over 8 bytes/);
  const big = Uint8Array.of(0, 1, 0x61, ...new Array(VARINT_BYTES_MAX - 1).fill(0xff), 0x10);
  assertCorrupted(() => decodeManifest(big), /over 2\^53 - 1/);
  // 2^32 chunks claimed in a few bytes: refused before any is read.
  const many = Uint8Array.of(0, 1, 0x61, 1, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0, 0, 0, 0);
  assertCorrupted(() => decodeManifest(many), /byte 0: it ends before its chunks/);
  // A canonical id whose offset has 14 hex digits; a manifest whose sizes do not add up.
  const offset = encodeManifest({
    name: "a",
    version: 1,
    size: 1,
    sha256: "",
    modified: 1,
    chunks: [{ id: `${blob(1)}-${"f".repeat(13)}`, size: 1, ranks: [1] }],
  });
  offset[offset.length - 4] = 0x0f; // the last byte of the offset: 2^52 * 15 + ...
  assertCorrupted(() => decodeManifest(offset), /a chunk offset is over 2\^52/);
  assertCorrupted(
    () => decodeManifest(encodeManifest({ ...smallFile(1), size: 4095 })),
    /byte 0: the manifest is not valid \(Assertion failed: manifest of "dir\/file-000001.txt" sizes add up\)/,
  );
  assertCorrupted(
    () => decodeManifest(encodeManifest({ ...smallFile(1), attrs: { "A": "b" } })),
    /the manifest is not valid \(Attribute name "A"/,
  );
  const twice = encodeManifest({ ...smallFile(1), attrs: { a: "1", b: "2" } });
  twice[twice.length - 3] = 0x61; // "b" becomes "a"
  assertCorrupted(() => decodeManifest(twice), /attribute "a" is given twice/);
});

Deno.test("decodeManifest() never hangs on random bytes, and returns only valid manifests", () => {
  let seed = 0x2545f491;
  const random = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  const good = [encodeManifest(smallFile(1)), encodeManifest(largeFile(4))];
  let decoded = 0;
  for (let i = 0; i < 20_000; i++) {
    let bytes: Uint8Array;
    if (i % 2 === 0) {
      bytes = Uint8Array.from({ length: Math.floor(random() * 120) }, () => random() * 256);
    } else {
      // A good encoding with a few bytes changed: mostly valid-looking structure.
      bytes = good[i % 4 === 1 ? 0 : 1].slice();
      for (let k = 0; k < 1 + random() * 3; k++) {
        bytes[Math.floor(random() * bytes.length)] = random() * 256;
      }
    }
    try {
      const { manifest, end } = decodeManifest(bytes);
      assert.ok(end <= bytes.length);
      assert.deepEqual(decodeManifest(encodeManifest(manifest)).manifest, manifest);
      decoded++;
    } catch (error) {
      if (!(error instanceof DfsError) || error.code !== "CORRUPTED") throw error;
    }
  }
  assert.ok(decoded > 0, "some changed bytes still decode (a changed CRC32 or sha256 byte)");
});

Deno.test("ManifestReader reads manifests among the primitives ManifestWriter writes", () => {
  const writer = new ManifestWriter(2);
  writer.addVarint(300);
  writer.add(smallFile(5));
  writer.addString("after");
  assert.equal(writer.count, 1);
  const reader = new ManifestReader(writer.bytes(), { at: 2, subject: "a test record" });
  assert.deepEqual(reader.manifest(), smallFile(5));
  assert.equal(reader.string(), "after");
  assert.equal(reader.left, 0);
  assertCorrupted(
    () => reader.manifest(),
    /^Cannot decode a test record at byte 100: it ends inside a byte$/,
  );
});

Deno.test("ManifestReader.nameAndVersion() steps over a manifest to where manifest() ends", () => {
  const odd: Manifest = {
    ...largeFile(3),
    sha256: "not hex",
    modified: 1.5,
    attrs: { a: "1", b: "2" },
    chunks: [{ id: "odd id", size: largeFile(3).size, ranks: [2, 300] }],
  };
  const manifests = [smallFile(1), largeFile(300), tombstoneOf("t", 3, 4), odd];
  const writer = new ManifestWriter();
  for (const m of manifests) writer.add(m);
  const bytes = writer.bytes();
  const skipping = new ManifestReader(bytes);
  const reading = new ManifestReader(bytes);
  for (const m of manifests) {
    assert.deepEqual(skipping.nameAndVersion(), { name: m.name, version: m.version });
    assert.deepEqual(reading.manifest(), m);
    assert.equal(skipping.at, reading.at);
  }
  assert.equal(skipping.left, 0);
  for (let cut = 1; cut < encodeManifest(manifests[1]).length; cut++) {
    const truncated = encodeManifest(manifests[1]).subarray(0, cut);
    assert.throws(() => new ManifestReader(truncated).nameAndVersion(), DfsError, `cut at ${cut}`);
  }
});
