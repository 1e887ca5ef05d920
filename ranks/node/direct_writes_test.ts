/**
 * The blobs a data node keeps open for direct writes (`direct_writes.ts`), on a fake clock: what
 * `admit()` lets through, what `seal()` accepts, and how blobs close (sealed, forgotten, expired)
 * and are bounded in number.
 */

import assert from "node:assert/strict";
import { CHUNK_SIZE_BYTES } from "../../protocol/limits.ts";
import { chunkIdOf, newBlobId } from "../common/chunk_id.ts";
import { FakeClock } from "../env/fake_clock.ts";
import {
  DIRECT_BLOB_OPEN_MS,
  DIRECT_BLOBS_OPEN_MAX,
  DirectWrites,
  type PlannedChunk,
} from "./direct_writes.ts";
import { fails } from "../testing/fails.ts";

const MiB = CHUNK_SIZE_BYTES;
/** An upload of two whole chunks and a 1234-byte tail. */
const SIZE = 2 * MiB + 1234;
const SIZES = [MiB, MiB, 1234];

/** The planned chunks of blob `blob` of `SIZE` bytes, with CRC32 `100 + k` for chunk k. */
function planOf(blob: string): PlannedChunk[] {
  return SIZES.map((size, k) => ({ id: chunkIdOf(blob, k * MiB), size, crc32: 100 + k }));
}

/** Admits and finishes, as written, every chunk of `chunks`. */
function writeAll(direct: DirectWrites, chunks: readonly PlannedChunk[]): void {
  for (const { id, size, crc32 } of chunks) {
    direct.admit(id, size);
    direct.finish(id, { size, crc32 });
  }
}

Deno.test("DirectWrites: an expected blob takes its planned chunks and seals once all are written as named", () => {
  const direct = new DirectWrites(new FakeClock());
  const blob = newBlobId();
  assert.equal(direct.expect(blob, SIZE), true);
  assert.equal(direct.size, 1);
  const chunks = planOf(blob);
  // In any order, the tail first.
  writeAll(direct, [chunks[2], chunks[0], chunks[1]]);
  assert.equal(direct.seal(blob, chunks), true);
  assert.equal(direct.size, 0, "sealed: closed");
  // Sealed: no more writes, not even of a chunk of the plan, and no second seal.
  assert.throws(() => direct.admit(chunks[0].id, MiB), fails("UNAUTHORIZED", /not open/));
  assert.throws(() => direct.seal(blob, chunks), fails("UNAVAILABLE"));
});

Deno.test("DirectWrites: a node seals only the chunks it holds; a chunk written twice counts as last written", () => {
  const direct = new DirectWrites(new FakeClock());
  const blob = newBlobId();
  direct.expect(blob, SIZE);
  const chunks = planOf(blob);
  // This node holds chunks 0 and 2 (chunk 1's replicas are elsewhere).
  writeAll(direct, [chunks[0], chunks[2]]);
  // Chunk 2 written again (a client retrying), now with other bytes.
  direct.admit(chunks[2].id, 1234);
  direct.finish(chunks[2].id, { size: 1234, crc32: 777 });
  assert.throws(() => direct.seal(blob, [chunks[0], chunks[2]]), fails("CORRUPTED"));
  assert.equal(direct.seal(blob, [chunks[0], { ...chunks[2], crc32: 777 }]), true);
});

Deno.test("DirectWrites: admit() refuses a blob not open here: never expected, forgotten, sealed", () => {
  const direct = new DirectWrites(new FakeClock());
  const never = newBlobId();
  assert.throws(() => direct.admit(chunkIdOf(never, 0), MiB), fails("UNAUTHORIZED", /not open/));
  const forgotten = newBlobId();
  direct.expect(forgotten, SIZE);
  direct.forget([chunkIdOf(forgotten, MiB)]); // a discard names chunk ids: their blob closes
  assert.equal(direct.size, 0);
  assert.throws(() => direct.admit(chunkIdOf(forgotten, 0), MiB), fails("UNAUTHORIZED"));
  assert.throws(() => direct.seal(forgotten, []), fails("UNAVAILABLE", /not open/));
  const sealed = newBlobId();
  direct.expect(sealed, SIZE);
  writeAll(direct, planOf(sealed));
  direct.seal(sealed, planOf(sealed));
  assert.throws(() => direct.admit(chunkIdOf(sealed, 2 * MiB), 1234), fails("UNAUTHORIZED"));
  // Nothing refused was counted as in flight anywhere: another blob seals as usual.
  const other = newBlobId();
  direct.expect(other, SIZE);
  writeAll(direct, planOf(other));
  assert.equal(direct.seal(other, planOf(other)), true);
});

Deno.test("DirectWrites: admit() refuses a chunk the plan cannot have: a wrong offset or size", () => {
  const direct = new DirectWrites(new FakeClock());
  const blob = newBlobId();
  direct.expect(blob, SIZE);
  const bad: [string, string, number][] = [
    ["an offset inside a chunk", chunkIdOf(blob, 4096), MiB],
    ["an offset one byte past a chunk", chunkIdOf(blob, MiB + 1), MiB],
    ["an offset past the upload", chunkIdOf(blob, 3 * MiB), MiB],
    ["an offset at the upload's end", chunkIdOf(blob, SIZE), 0],
    ["a whole chunk short by a byte", chunkIdOf(blob, 0), MiB - 1],
    ["a whole chunk a byte long", chunkIdOf(blob, MiB), MiB + 1],
    ["an empty chunk", chunkIdOf(blob, 0), 0],
    ["the tail short", chunkIdOf(blob, 2 * MiB), 1233],
    ["the tail as a whole chunk", chunkIdOf(blob, 2 * MiB), MiB],
  ];
  for (const [why, id, size] of bad) {
    assert.throws(() => direct.admit(id, size), fails("INVALID_REQUEST", /not a chunk/), why);
  }
  // None of them was counted in flight: the blob seals once its chunks are written.
  writeAll(direct, planOf(blob));
  assert.equal(direct.seal(blob, planOf(blob)), true);
});

Deno.test("DirectWrites: seal() refuses a chunk not written, or written with another CRC32 or size", () => {
  const direct = new DirectWrites(new FakeClock());
  const blob = newBlobId();
  const chunks = planOf(blob);
  direct.expect(blob, SIZE);
  writeAll(direct, chunks.slice(0, 2));
  // Chunk 2 was never written here.
  assert.throws(() => direct.seal(blob, chunks), fails("CORRUPTED", /not written here/));
  // A write that failed (the node's CRC32 check, a full disk) is finished without a record.
  direct.admit(chunks[2].id, 1234);
  direct.finish(chunks[2].id);
  assert.throws(() => direct.seal(blob, chunks), fails("CORRUPTED"));
  direct.admit(chunks[2].id, 1234);
  direct.finish(chunks[2].id, { size: 1234, crc32: 102 });
  // The commit names another CRC32, or another size, than the node saw.
  const otherCrc = chunks.map((c, k) => k === 1 ? { ...c, crc32: 999 } : c);
  assert.throws(() => direct.seal(blob, otherCrc), fails("CORRUPTED", new RegExp(chunks[1].id)));
  const otherSize = chunks.map((c, k) => k === 2 ? { ...c, size: 1000 } : c);
  assert.throws(() => direct.seal(blob, otherSize), fails("CORRUPTED", new RegExp(chunks[2].id)));
  // A chunk of another blob at an offset this one has: not this blob's.
  const elsewhere = { ...chunks[0], id: chunkIdOf(newBlobId(), 0) };
  assert.throws(() => direct.seal(blob, [elsewhere]), fails("CORRUPTED"));
  // A refused seal leaves the blob open: the right one seals it.
  assert.equal(direct.size, 1);
  assert.equal(direct.seal(blob, chunks), true);
});

Deno.test("DirectWrites: seal() refuses while a write is in flight; finish() says if the blob is still open", () => {
  const direct = new DirectWrites(new FakeClock());
  const blob = newBlobId();
  const chunks = planOf(blob);
  direct.expect(blob, SIZE);
  writeAll(direct, chunks.slice(1));
  direct.admit(chunks[0].id, MiB);
  assert.throws(() => direct.seal(blob, chunks), fails("INVALID_REQUEST", /in flight/));
  // Discarded meanwhile: the write's finish is told, so that what it wrote is removed.
  const gone = newBlobId();
  direct.expect(gone, SIZE);
  direct.admit(chunkIdOf(gone, 0), MiB);
  direct.forget([chunkIdOf(gone, 0)]);
  assert.equal(direct.finish(chunkIdOf(gone, 0), { size: MiB, crc32: 1 }), false);
  // Expired meanwhile (swept by another upload's expect), likewise.
  let now = 0;
  const clockless = new DirectWrites({ monotonic: () => now });
  const late = newBlobId();
  clockless.expect(late, SIZE);
  clockless.admit(chunkIdOf(late, MiB), MiB);
  now = DIRECT_BLOB_OPEN_MS + 1;
  clockless.expect(newBlobId(), SIZE);
  assert.equal(clockless.finish(chunkIdOf(late, MiB), { size: MiB, crc32: 1 }), false);
  // Even a seal of the chunks already written waits for it.
  assert.throws(() => direct.seal(blob, chunks.slice(1)), fails("INVALID_REQUEST", /in flight/));
  assert.equal(direct.finish(chunks[0].id, { size: MiB, crc32: 100 }), true);
  assert.equal(direct.seal(blob, chunks), true);
  assert.throws(() => direct.seal(newBlobId(), chunks), fails("UNAVAILABLE"));
  // A finish for a blob no longer open says so (the upload was discarded under the write).
  assert.equal(direct.finish(chunks[0].id, { size: MiB, crc32: 100 }), false);
  assert.equal(direct.size, 0);
});

Deno.test("DirectWrites: expect() again keeps what was written and extends the blob's life", async () => {
  const clock = new FakeClock();
  const direct = new DirectWrites(clock);
  const blob = newBlobId();
  const chunks = planOf(blob);
  direct.expect(blob, SIZE);
  writeAll(direct, chunks.slice(0, 1));
  await clock.advance(DIRECT_BLOB_OPEN_MS - 1);
  // Rank 0 replaces a node by this one for chunk 2: it opens the blob here again.
  direct.expect(blob, SIZE);
  assert.equal(direct.size, 1);
  await clock.advance(DIRECT_BLOB_OPEN_MS - 1);
  writeAll(direct, chunks.slice(1));
  assert.equal(direct.seal(blob, chunks), true, "chunk 0, written before, still counts");
});

Deno.test("DirectWrites: a blob DIRECT_BLOB_OPEN_MS past its last write closes: no write, no seal", async () => {
  const clock = new FakeClock();
  const direct = new DirectWrites(clock);
  const blob = newBlobId();
  const chunks = planOf(blob);
  direct.expect(blob, SIZE);
  writeAll(direct, chunks.slice(0, 2));
  await clock.advance(DIRECT_BLOB_OPEN_MS);
  direct.admit(chunks[2].id, 1234); // at the very limit it is open still
  direct.finish(chunks[2].id, { size: 1234, crc32: 102 });
  // That write kept it open for as long again: an upload that goes on never lapses.
  await clock.advance(DIRECT_BLOB_OPEN_MS);
  direct.admit(chunks[2].id, 1234);
  direct.finish(chunks[2].id, { size: 1234, crc32: 102 });
  await clock.advance(DIRECT_BLOB_OPEN_MS + 1);
  assert.throws(() => direct.admit(chunks[2].id, 1234), fails("UNAUTHORIZED", /not open/));
  assert.equal(direct.size, 0, "the refused write closed it");
  assert.throws(() => direct.seal(blob, chunks), fails("UNAVAILABLE"));

  // An expired blob nobody touches is swept by the next expect(): it no longer takes a place.
  const idle = newBlobId();
  direct.expect(idle, SIZE);
  await clock.advance(DIRECT_BLOB_OPEN_MS + 1);
  const fresh = newBlobId();
  direct.expect(fresh, SIZE);
  assert.equal(direct.size, 1);
  assert.throws(() => direct.seal(idle, []), fails("UNAVAILABLE"));
  assert.equal(direct.seal(fresh, []), true);
});

Deno.test("DirectWrites: at most DIRECT_BLOBS_OPEN_MAX blobs are open; a place frees as one closes", async () => {
  const clock = new FakeClock();
  const direct = new DirectWrites(clock);
  const blobs = Array.from({ length: DIRECT_BLOBS_OPEN_MAX }, () => newBlobId());
  for (const blob of blobs) direct.expect(blob, SIZE);
  assert.equal(direct.size, DIRECT_BLOBS_OPEN_MAX);
  const extra = newBlobId();
  assert.throws(() => direct.expect(extra, SIZE), fails("UNAVAILABLE", /uploads are open/));
  assert.throws(() => direct.admit(chunkIdOf(extra, 0), MiB), fails("UNAUTHORIZED"));
  // A blob open already may be expected again at the limit (a replaced node's new chunk).
  assert.equal(direct.expect(blobs[7], SIZE), true);
  // Sealed, forgotten or expired, a blob gives its place back.
  direct.seal(blobs[0], []);
  assert.equal(direct.expect(extra, SIZE), true);
  assert.throws(() => direct.expect(newBlobId(), SIZE), fails("UNAVAILABLE"));
  direct.forget([chunkIdOf(blobs[1], 0)]);
  direct.expect(newBlobId(), SIZE);
  assert.throws(() => direct.expect(newBlobId(), SIZE), fails("UNAVAILABLE"));
  await clock.advance(DIRECT_BLOB_OPEN_MS + 1);
  direct.expect(newBlobId(), SIZE);
  assert.equal(direct.size, 1, "every other blob had expired");
});
