import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { ChunkChecker } from "./checksums.ts";

/** A file of `sizes` chunks with distinct bytes, and its chunk list with CRC32s. */
function file(sizes: number[]): { bytes: Uint8Array; chunks: { size: number; crc32: number }[] } {
  const bytes = new Uint8Array(sizes.reduce((a, b) => a + b, 0)).map((_, i) => (i * 31 + 7) & 0xff);
  let at = 0;
  const chunks = sizes.map((size) => {
    const chunk = { size, crc32: crc32(bytes.subarray(at, at + size)) };
    at += size;
    return chunk;
  });
  return { bytes, chunks };
}

/** Feeds `bytes` to `checker` in pieces of `piece` bytes, then finishes. */
function feed(checker: ChunkChecker, bytes: Uint8Array, piece: number): void {
  for (let at = 0; at < bytes.length; at += piece) checker.update(bytes.subarray(at, at + piece));
  checker.finish();
}

const corrupted = (what: RegExp) => ({ name: "DfsError", code: "CORRUPTED", message: what });

Deno.test("ChunkChecker passes a whole file in any framing and checks every byte", () => {
  const { bytes, chunks } = file([1000, 1000, 333]);
  for (const piece of [1, 7, 999, 1000, 1001, 5000]) {
    const checker = new ChunkChecker("f", chunks, { start: 0, end: bytes.length });
    assert.equal(checker.coversEveryByte, true);
    feed(checker, bytes, piece);
  }
});

Deno.test("ChunkChecker finds a flipped byte in any chunk, and chunks out of order", () => {
  const { bytes, chunks } = file([1000, 1000, 333]);
  for (const [at, index] of [[0, 0], [999, 0], [1500, 1], [2332, 2]]) {
    const damaged = bytes.slice();
    damaged[at] ^= 1;
    const checker = new ChunkChecker("f", chunks, { start: 0, end: bytes.length });
    assert.throws(
      () => feed(checker, damaged, 256),
      corrupted(new RegExp(`^Content of "f" is damaged: chunk ${index} does not match its CRC32$`)),
    );
  }
  const swapped = new Uint8Array([...bytes.subarray(1000, 2000), ...bytes.subarray(0, 1000)]);
  const checker = new ChunkChecker("f", chunks.slice(0, 2), { start: 0, end: 2000 });
  assert.throws(() => feed(checker, swapped, 1000), corrupted(/chunk 0 does not match/));
});

Deno.test("ChunkChecker refuses a short or a long stream", () => {
  const { bytes, chunks } = file([10, 10]);
  const short = new ChunkChecker("f", chunks, { start: 0, end: 20 });
  assert.throws(() => feed(short, bytes.subarray(0, 15), 5), corrupted(/got 15 of 20 bytes$/));
  const long = new ChunkChecker("f", chunks, { start: 0, end: 20 });
  assert.throws(() => long.update(new Uint8Array(21)), corrupted(/more bytes than asked for$/));
});

Deno.test("ChunkChecker checks the chunks a range covers whole and skips the cut ones", () => {
  const { bytes, chunks } = file([100, 100, 100, 100]);
  const range = { start: 50, end: 350 };
  const check = (damaged: Uint8Array) =>
    feed(new ChunkChecker("f", chunks, range), damaged.subarray(range.start, range.end), 64);
  check(bytes);
  assert.equal(new ChunkChecker("f", chunks, range).coversEveryByte, false);
  assert.equal(new ChunkChecker("f", chunks, { start: 100, end: 300 }).coversEveryByte, true);
  const inEdge = bytes.slice();
  inEdge[60] ^= 1; // chunk 0 is cut by the range: not checked
  check(inEdge);
  const inWhole = bytes.slice();
  inWhole[250] ^= 1;
  assert.throws(() => check(inWhole), corrupted(/chunk 2 does not match/));
});

Deno.test("ChunkChecker skips chunks without a CRC32 and says so", () => {
  const { bytes, chunks } = file([10, 10]);
  const partial = [chunks[0], { size: 10 }];
  const checker = new ChunkChecker("f", partial, { start: 0, end: 20 });
  assert.equal(checker.coversEveryByte, false);
  const damaged = bytes.slice();
  damaged[15] ^= 1;
  feed(checker, damaged, 3);
});

Deno.test("ChunkChecker handles an empty file", () => {
  const checker = new ChunkChecker("e", [{ size: 0, crc32: 0 }], { start: 0, end: 0 });
  assert.equal(checker.coversEveryByte, true);
  checker.finish();
});
