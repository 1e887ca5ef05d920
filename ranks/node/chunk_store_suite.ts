/**
 * One behaviour suite that every `ChunkStore` passes (the disk one and the memory one).
 *
 * @module
 */

import assert from "node:assert/strict";
import { chunkIdOf, newBlobId } from "../common/chunk_id.ts";
import type { ChunkStore } from "./chunk_store.ts";

/** A store under test; disposing it closes the store and removes whatever it left behind. */
export interface OpenedChunkStore extends AsyncDisposable {
  store: ChunkStore;
}

/** How to test one `ChunkStore` implementation. */
export interface ChunkStoreSuiteOptions {
  /** Names the implementation in test names, e.g. `"DiskChunkStore"`. */
  name: string;
  /** Opens a new, empty store. */
  open: () => Promise<OpenedChunkStore>;
}

/** Registers the shared `ChunkStore` tests with `Deno.test`. */
export function runChunkStoreSuite(options: ChunkStoreSuiteOptions): void {
  const { name, open } = options;
  const test = (behaviour: string, body: (store: ChunkStore) => Promise<void>) => {
    Deno.test(`${name} ${behaviour}`, async () => {
      await using opened = await open();
      await body(opened.store);
    });
  };

  test("replace() overwrites a chunk in place, or recreates a missing one", async (store) => {
    const blob = newBlobId();
    const [first, second] = [chunkIdOf(blob, 0), chunkIdOf(blob, 1000)];
    await store.write(first, randomBytes(1000));
    const kept = randomBytes(500);
    await store.write(second, kept);
    const fresh = randomBytes(1000);
    await store.replace(first, fresh);
    assert.deepEqual(await store.read(first, 1000), fresh);
    assert.deepEqual(await store.read(second, 500), kept, "the blob's other chunk is untouched");
    await store.delete([first]);
    await store.replace(second, kept);
    assert.deepEqual(await store.read(second, 500), kept);
    assert.deepEqual([...(await store.scan())], [[blob, 1500]]);
  });

  test("read() with into fills the caller's buffer when the chunk fits", async (store) => {
    for (const [size, offset] of [[4096, 1 << 20], [256 * 1024 + 1, 0], [1024 * 1024, 0]]) {
      const id = chunkIdOf(newBlobId(), offset);
      const bytes = randomBytes(size);
      await store.write(id, bytes);
      const into = new Uint8Array(1024 * 1024 + 4096);
      const read = await store.read(id, size, { into });
      assert.deepEqual(read, bytes);
      assert.ok(read.buffer === into.buffer || read.buffer.byteLength === size, "into or its own");
      const small = new Uint8Array(size - 1);
      const own = await store.read(id, size, { into: small });
      assert.deepEqual(own, bytes);
      assert.notEqual(own.buffer, small.buffer);
    }
  });

  test("read() returns the bytes written, in a buffer of their own", async (store) => {
    for (const size of [0, 1, 4096, 256 * 1024 + 1, 1024 * 1024 + 3]) {
      for (const offset of [0, 3 * 1024 * 1024]) {
        const id = chunkIdOf(newBlobId(), offset);
        const bytes = randomBytes(size);
        await store.write(id, bytes);
        const read = await store.read(id, size);
        assert.deepEqual(read, bytes);
        assert.equal(read.byteOffset, 0);
        assert.equal(read.buffer.byteLength, size);
        structuredClone(read, { transfer: [read.buffer] });
        assert.equal(read.byteLength, 0);
      }
    }
  });

  test("chunks of one blob sit at their offsets, holes between them", async (store) => {
    const blob = newBlobId();
    const chunks = [[0, randomBytes(300)], [1000, randomBytes(200)], [
      500,
      randomBytes(100),
    ]] as const;
    for (const [offset, bytes] of chunks) await store.write(chunkIdOf(blob, offset), bytes);
    await store.sync(chunks.map(([offset]) => chunkIdOf(blob, offset)));
    for (const [offset, bytes] of chunks) {
      assert.deepEqual(await store.read(chunkIdOf(blob, offset), bytes.length), bytes);
    }
    assert.deepEqual(await store.read(chunkIdOf(blob, 300), 200), new Uint8Array(200), "a hole");
    assert.deepEqual(await store.scan(), new Map([[blob, 1200]]));
  });

  test("write() keeps a copy, not the caller's buffer, and accepts a view", async (store) => {
    const id = chunkIdOf(newBlobId(), 0);
    const backing = randomBytes(100);
    const view = backing.subarray(10, 60);
    const expected = view.slice();
    await store.write(id, view);
    view.fill(0);
    assert.deepEqual(await store.read(id, 50), expected);
  });

  test("read() of a missing chunk fails with NOT_FOUND", async (store) => {
    const id = chunkIdOf(newBlobId(), 0);
    await assert.rejects(store.read(id, 10), {
      name: "DfsError",
      code: "NOT_FOUND",
      message: `Cannot read chunk ${id}: chunk does not exist`,
    });
    await assert.rejects(store.read(id, 1024 * 1024), { code: "NOT_FOUND" });
  });

  test("read() past the end of its blob fails with CORRUPTED", async (store) => {
    for (const [size, offset] of [[10, 0], [1024 * 1024, 0], [10, 4096]]) {
      const id = chunkIdOf(newBlobId(), offset);
      await store.write(id, randomBytes(size));
      await assert.rejects(store.read(id, size + 1), {
        name: "DfsError",
        code: "CORRUPTED",
        message: `Cannot read chunk ${id}: expected ${size + 1} bytes, found ${size}`,
      });
    }
  });

  test("operations refuse a malformed id with an assertion", async (store) => {
    const blob = "0".repeat(32);
    const bad = ["", "../etc/passwd", "A".repeat(32), "0".repeat(31), `${blob}-`, `${blob}-01`];
    for (const id of [...bad, `${blob}-x`, `../${blob}-0`, `${blob}-0/..`]) {
      const assertion = { name: "Error", message: /^Assertion failed: chunk id/ };
      await assert.rejects(store.write(id, new Uint8Array(1)), assertion);
      await assert.rejects(store.read(id, 1), assertion);
      await assert.rejects(store.delete([chunkIdOf(newBlobId(), 0), id]), assertion);
    }
    const assertion = { name: "Error", message: /^Assertion failed: chunk id/ };
    await assert.rejects(store.write(blob, new Uint8Array(1)), assertion, "a blob id is no chunk");
  });

  test("delete() removes the blobs of chunks or blob ids, and ignores missing ones", async (store) => {
    const [kept, gone, alsoGone] = [newBlobId(), newBlobId(), newBlobId()];
    await store.write(chunkIdOf(kept, 0), new Uint8Array([1]));
    await store.write(chunkIdOf(gone, 0), new Uint8Array([2]));
    await store.write(chunkIdOf(gone, 1), new Uint8Array([3]));
    await store.write(chunkIdOf(alsoGone, 0), new Uint8Array([4]));
    await store.delete([chunkIdOf(gone, 1), chunkIdOf(newBlobId(), 0), alsoGone, newBlobId()]);
    await store.syncEntries();
    await assert.rejects(store.read(chunkIdOf(gone, 0), 1), { code: "NOT_FOUND" });
    assert.deepEqual(await store.scan(), new Map([[kept, 1]]));
    await store.write(chunkIdOf(gone, 0), new Uint8Array([5]));
    assert.deepEqual(await store.read(chunkIdOf(gone, 0), 1), new Uint8Array([5]));
  });

  test("scan() lists every blob with its size", async (store) => {
    assert.deepEqual(await store.scan(), new Map());
    const expected = new Map<string, number>();
    for (const size of [0, 7, 4096]) {
      const blob = newBlobId();
      await store.write(chunkIdOf(blob, 0), randomBytes(size));
      expected.set(blob, size);
    }
    assert.deepEqual(await store.scan(), expected);
  });

  test("concurrent writes, syncs and reads of different chunks all succeed", async (store) => {
    const chunks = new Map<string, Uint8Array>();
    const blobs = Array.from({ length: 8 }, newBlobId);
    for (let i = 0; i < 64; i++) {
      chunks.set(chunkIdOf(blobs[i % 8], Math.floor(i / 8) * 64_000), randomBytes(i * 1000));
    }
    await Promise.all([...chunks].map(async ([id, bytes]) => {
      await store.write(id, bytes);
      await store.sync([id]);
    }));
    await Promise.all([...chunks].map(async ([id, bytes]) => {
      assert.deepEqual(await store.read(id, bytes.length), bytes);
    }));
    assert.equal((await store.scan()).size, 8);
  });
}

/** `size` random bytes (crypto.getRandomValues fills at most 64 KiB at a time). */
export function randomBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65536) {
    crypto.getRandomValues(bytes.subarray(offset, offset + 65536));
  }
  return bytes;
}
