/**
 * One behaviour suite that every `ChunkStore` passes (the disk one and the memory one).
 *
 * @module
 */

import assert from "node:assert/strict";
import { type ChunkStore, newChunkId } from "./chunk_store.ts";

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

  test("replace() overwrites a chunk, or recreates a missing one", async (store) => {
    const id = newChunkId();
    await store.write(id, randomBytes(1000));
    const fresh = randomBytes(700);
    await store.replace(id, fresh);
    assert.deepEqual(await store.read(id), fresh);
    await store.delete([id]);
    await store.replace(id, fresh);
    assert.deepEqual(await store.read(id, { expectedSize: 700 }), fresh);
    assert.deepEqual([...(await store.scan())], [[id, 700]]);
  });

  test("read() with into fills the caller's buffer when the chunk fits", async (store) => {
    for (const size of [4096, 256 * 1024 + 1, 1024 * 1024]) {
      const id = newChunkId();
      const bytes = randomBytes(size);
      await store.write(id, bytes);
      const into = new Uint8Array(1024 * 1024 + 4096);
      const read = await store.read(id, { expectedSize: size, into });
      assert.deepEqual(read, bytes);
      assert.ok(read.buffer === into.buffer || read.buffer.byteLength === size, "into or its own");
      const small = new Uint8Array(size - 1);
      const own = await store.read(id, { expectedSize: size, into: small });
      assert.deepEqual(own, bytes);
      assert.notEqual(own.buffer, small.buffer);
    }
  });

  test("read() returns the bytes written, in a buffer of their own", async (store) => {
    for (const size of [0, 1, 4096, 256 * 1024 + 1, 1024 * 1024 + 3]) {
      const id = newChunkId();
      const bytes = randomBytes(size);
      await store.write(id, bytes);
      for (const options of [{}, { expectedSize: size }]) {
        const read = await store.read(id, options);
        assert.deepEqual(read, bytes);
        assert.equal(read.byteOffset, 0);
        assert.equal(read.buffer.byteLength, size);
        structuredClone(read, { transfer: [read.buffer] });
        assert.equal(read.byteLength, 0);
      }
    }
  });

  test("write() keeps a copy, not the caller's buffer, and accepts a view", async (store) => {
    const id = newChunkId();
    const backing = randomBytes(100);
    const view = backing.subarray(10, 60);
    const expected = view.slice();
    await store.write(id, view);
    view.fill(0);
    assert.deepEqual(await store.read(id), expected);
  });

  test("write() refuses an id that exists and keeps the first bytes", async (store) => {
    const id = newChunkId();
    await store.write(id, new Uint8Array([1, 2, 3]));
    await assert.rejects(store.write(id, new Uint8Array([4])), {
      name: "DfsError",
      code: "INTERNAL",
      message: `Cannot store chunk ${id}: chunk already exists`,
    });
    assert.deepEqual(await store.read(id), new Uint8Array([1, 2, 3]));
  });

  test("read() of a missing chunk fails with NOT_FOUND", async (store) => {
    const id = newChunkId();
    await assert.rejects(store.read(id), {
      name: "DfsError",
      code: "NOT_FOUND",
      message: `Cannot read chunk ${id}: chunk does not exist`,
    });
    await assert.rejects(store.read(id, { expectedSize: 1024 * 1024 }), { code: "NOT_FOUND" });
  });

  test("read() with a wrong expectedSize fails with CORRUPTED", async (store) => {
    for (const size of [10, 1024 * 1024]) {
      const id = newChunkId();
      await store.write(id, randomBytes(size));
      for (const expectedSize of [size - 1, size + 1, 0]) {
        await assert.rejects(store.read(id, { expectedSize }), {
          name: "DfsError",
          code: "CORRUPTED",
          message: `Cannot read chunk ${id}: expected ${expectedSize} bytes, found ${size}`,
        });
      }
    }
  });

  test("operations refuse a malformed id with an assertion", async (store) => {
    for (const id of ["", "../etc/passwd", "A".repeat(32), "0".repeat(31), "0".repeat(33)]) {
      const assertion = { name: "Error", message: /^Assertion failed: chunk id/ };
      await assert.rejects(store.write(id, new Uint8Array(1)), assertion);
      await assert.rejects(store.read(id), assertion);
      await assert.rejects(store.delete([newChunkId(), id]), assertion);
    }
  });

  test("delete() removes chunks and ignores missing ids", async (store) => {
    const [kept, gone] = [newChunkId(), newChunkId()];
    await store.write(kept, new Uint8Array([1]));
    await store.write(gone, new Uint8Array([2]));
    await store.delete([gone, newChunkId(), gone]);
    await store.syncEntries();
    await assert.rejects(store.read(gone), { code: "NOT_FOUND" });
    assert.deepEqual(await store.scan(), new Map([[kept, 1]]));
    await store.write(gone, new Uint8Array([3]));
    assert.deepEqual(await store.read(gone), new Uint8Array([3]));
  });

  test("scan() lists every chunk with its size", async (store) => {
    assert.deepEqual(await store.scan(), new Map());
    const expected = new Map<string, number>();
    for (const size of [0, 7, 4096]) {
      const id = newChunkId();
      await store.write(id, randomBytes(size));
      expected.set(id, size);
    }
    assert.deepEqual(await store.scan(), expected);
  });

  test("concurrent writes, syncs and reads of different chunks all succeed", async (store) => {
    const chunks = new Map<string, Uint8Array>();
    for (let i = 0; i < 64; i++) chunks.set(newChunkId(), randomBytes(i * 1000));
    await Promise.all([...chunks].map(async ([id, bytes]) => {
      await store.write(id, bytes);
      await store.syncEntries();
    }));
    await Promise.all([...chunks].map(async ([id, bytes]) => {
      assert.deepEqual(await store.read(id, { expectedSize: bytes.length }), bytes);
    }));
    assert.equal((await store.scan()).size, 64);
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
