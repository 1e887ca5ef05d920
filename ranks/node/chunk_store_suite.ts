/**
 * One behaviour suite for the chunk store, run over every file system it may sit on (Deno's and
 * the memory one): the same assertions must hold on both.
 *
 * @module
 */

import assert from "node:assert/strict";
import { blobOf, chunkIdOf, newBlobId } from "../common/chunk_id.ts";
import type { FileSystem } from "../env/env.ts";
import { type DiskChunkStore, openDiskChunkStore } from "./chunk_store.ts";
import { type TestFileSystem, writeFileTo } from "./_test_fs.ts";

/** A store under test, in `dir` on `fs`. */
interface Opened {
  store: DiskChunkStore;
  fs: FileSystem;
  dir: string;
}

/** Registers the chunk store tests over one file system with `Deno.test`. */
export function runChunkStoreSuite(testFs: TestFileSystem): void {
  const name = `DiskChunkStore${testFs.suffix}`;
  const test = (
    behaviour: string,
    body: (store: DiskChunkStore, opened: Opened) => Promise<void>,
  ) => {
    Deno.test(`${name} ${behaviour}`, async () => {
      await using root = await testFs.newRoot();
      const dir = `${root.dir}/chunks`;
      const store = await openDiskChunkStore(dir, root);
      try {
        await body(store, { store, fs: root.fs, dir });
      } finally {
        await store.close();
      }
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

  Deno.test(`openDiskChunkStore()${testFs.suffix} creates a missing folder and synced chunks survive a reopen`, async () => {
    await using root = await testFs.newRoot();
    const dir = `${root.dir}/a/b/chunks`;
    const blob = newBlobId();
    const bytes = randomBytes(5000);
    const first = await openDiskChunkStore(dir, root);
    await first.write(chunkIdOf(blob, 1000), bytes);
    await first.sync([chunkIdOf(blob, 1000)]);
    await first.close();
    const second = await openDiskChunkStore(dir, root);
    assert.deepEqual(await second.scan(), new Map([[blob, 6000]]));
    assert.deepEqual(await second.read(chunkIdOf(blob, 1000), 5000), bytes);
    await second.close();
  });

  test("scan() removes stray files and keeps blobs and folders", async (store, { fs, dir }) => {
    const blob = newBlobId();
    await store.write(chunkIdOf(blob, 0), new Uint8Array(3));
    const strays = [`${blob}.tmp`, `${blob}-0`, blob.toUpperCase(), blob.slice(1), "notes.txt"];
    for (const name of strays) await writeFileTo(`${dir}/${name}`, Uint8Array.of(120), { fs });
    await fs.mkdir(`${dir}/folder`);
    assert.deepEqual(await store.scan(), new Map([[blob, 3]]));
    const left = [];
    for await (const entry of fs.readDir(dir)) left.push(entry.name);
    assert.deepEqual(left.sort(), [blob, "folder"].sort());
  });

  test("syncEntries() shares one fsync among concurrent callers", async (store) => {
    await store.syncEntries();
    await store.syncEntries();
    assert.equal(store.syncCount, 2);
    // The first call starts an fsync; the 19 calls that arrive while it runs share the next one.
    await Promise.all(Array.from({ length: 20 }, () => store.syncEntries()));
    assert.equal(store.syncCount, 4);
  });

  test("sync() fdatasyncs each blob with unsynced writes once", async (store) => {
    const [a, b] = [newBlobId(), newBlobId()];
    const ids = [chunkIdOf(a, 0), chunkIdOf(a, 10), chunkIdOf(a, 20), chunkIdOf(b, 0)];
    for (const id of ids) await store.write(id, randomBytes(10));
    await store.sync(ids);
    assert.equal(store.blobSyncCount, 2);
    await store.sync(ids);
    assert.equal(store.blobSyncCount, 2, "nothing left unsynced");
    await store.write(chunkIdOf(b, 10), randomBytes(10));
    await store.sync(ids);
    assert.equal(store.blobSyncCount, 3);
  });

  test("read() detects a blob cut short, and reads a longer one", async (store, { fs, dir }) => {
    for (const size of [100, 1024 * 1024]) {
      const [shorter, longer] = [newBlobId(), newBlobId()];
      await store.write(chunkIdOf(shorter, 0), randomBytes(size));
      const bytes = randomBytes(size);
      await store.write(chunkIdOf(longer, 0), bytes);
      {
        using file = await fs.open(`${dir}/${shorter}`, { write: true });
        await file.truncate(size - 1);
      }
      await writeFileTo(`${dir}/${longer}`, new Uint8Array(1), { fs, append: true });
      const id = chunkIdOf(shorter, 0);
      await assert.rejects(store.read(id, size), {
        name: "DfsError",
        code: "CORRUPTED",
        message: `Cannot read chunk ${id}: expected ${size} bytes, found ${size - 1}`,
      });
      assert.deepEqual(await store.read(chunkIdOf(longer, 0), size), bytes);
    }
  });

  const { newSmallRoot } = testFs;
  Deno.test({
    name: `${name} write() on a full disk fails with UNAVAILABLE and leaves no partial blob`,
    ignore: newSmallRoot === undefined,
    async fn() {
      await using root = await newSmallRoot!(1024 * 1024);
      const store = await openDiskChunkStore(`${root.dir}/chunks`, root);
      const id = chunkIdOf(newBlobId(), 0);
      await assert.rejects(store.write(id, randomBytes(2 * 1024 * 1024)), {
        name: "DfsError",
        code: "UNAVAILABLE",
        message: new RegExp(`^Cannot store chunk ${id}: No space left on device`),
      });
      assert.deepEqual(await store.scan(), new Map());
      // The space comes back: at once, but under load Deno may close the failed write's file a
      // moment after the write failed (its I/O thread drops the handle), so the unlinked blob
      // holds its blocks until then. Bounded by SPACE_BACK_TIMEOUT_MS.
      const deadline = Date.now() + SPACE_BACK_TIMEOUT_MS;
      while (true) {
        try {
          await store.write(id, randomBytes(4096));
          break;
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
      assert.deepEqual(await store.scan(), new Map([[blobOf(id), 4096]]));
      await store.close();
    },
  });
}

/** How long a test waits for the space of a removed blob to come back. */
const SPACE_BACK_TIMEOUT_MS = 2_000;

/** `size` random bytes (crypto.getRandomValues fills at most 64 KiB at a time). */
export function randomBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65536) {
    crypto.getRandomValues(bytes.subarray(offset, offset + 65536));
  }
  return bytes;
}
