import assert from "node:assert/strict";
import {
  BLOB_ID_PATTERN,
  blobOf,
  CHUNK_ID_PATTERN,
  chunkIdOf,
  newBlobId,
  offsetOf,
} from "../common/chunk_id.ts";
import { DiskChunkStore, MemoryChunkStore, openDiskChunkStore } from "./chunk_store.ts";
import { randomBytes, runChunkStoreSuite } from "./chunk_store_suite.ts";
import { canMountTmpfs, mountTmpfs } from "./_tmpfs_test_util.ts";

runChunkStoreSuite({
  name: "MemoryChunkStore",
  open: () => {
    const store = new MemoryChunkStore();
    return Promise.resolve({ store, [Symbol.asyncDispose]: () => store.close() });
  },
});

runChunkStoreSuite({ name: "DiskChunkStore", open: openTempStore });

/** A disk store in a new temp folder, removed on dispose. */
async function openTempStore(): Promise<{ store: DiskChunkStore; dir: string } & AsyncDisposable> {
  const root = await Deno.makeTempDir();
  const dir = `${root}/chunks`;
  const store = await openDiskChunkStore(dir);
  return {
    store,
    dir,
    async [Symbol.asyncDispose]() {
      await store.close();
      await Deno.remove(root, { recursive: true });
    },
  };
}

Deno.test("newBlobId() makes distinct ids; chunkIdOf(), blobOf() and offsetOf() agree", () => {
  const ids = new Set(Array.from({ length: 1000 }, newBlobId));
  assert.equal(ids.size, 1000);
  for (const blob of ids) {
    assert.match(blob, BLOB_ID_PATTERN);
    for (const offset of [0, 1, 1024 * 1024, 2 ** 40 + 5]) {
      const id = chunkIdOf(blob, offset);
      assert.match(id, CHUNK_ID_PATTERN);
      assert.equal(blobOf(id), blob);
      assert.equal(offsetOf(id), offset);
    }
  }
});

Deno.test("openDiskChunkStore() creates a missing folder and synced chunks survive a reopen", async () => {
  const root = await Deno.makeTempDir();
  const dir = `${root}/a/b/chunks`;
  const blob = newBlobId();
  const bytes = randomBytes(5000);
  const first = await openDiskChunkStore(dir);
  await first.write(chunkIdOf(blob, 1000), bytes);
  await first.sync([chunkIdOf(blob, 1000)]);
  await first.close();
  const second = await openDiskChunkStore(dir);
  assert.deepEqual(await second.scan(), new Map([[blob, 6000]]));
  assert.deepEqual(await second.read(chunkIdOf(blob, 1000), 5000), bytes);
  await second.close();
  await Deno.remove(root, { recursive: true });
});

Deno.test("DiskChunkStore scan() removes stray files and keeps blobs and folders", async () => {
  await using opened = await openTempStore();
  const { store, dir } = opened;
  const blob = newBlobId();
  await store.write(chunkIdOf(blob, 0), new Uint8Array(3));
  const strays = [`${blob}.tmp`, `${blob}-0`, blob.toUpperCase(), blob.slice(1), "notes.txt"];
  for (const name of strays) await Deno.writeTextFile(`${dir}/${name}`, "x");
  await Deno.mkdir(`${dir}/folder`);
  assert.deepEqual(await store.scan(), new Map([[blob, 3]]));
  const left = [];
  for await (const entry of Deno.readDir(dir)) left.push(entry.name);
  assert.deepEqual(left.sort(), [blob, "folder"].sort());
});

Deno.test("DiskChunkStore syncEntries() shares one fsync among concurrent callers", async () => {
  await using opened = await openTempStore();
  const { store } = opened;
  await store.syncEntries();
  await store.syncEntries();
  assert.equal(store.syncCount, 2);
  // The first call starts an fsync; the 19 calls that arrive while it runs share the next one.
  await Promise.all(Array.from({ length: 20 }, () => store.syncEntries()));
  assert.equal(store.syncCount, 4);
});

Deno.test("DiskChunkStore sync() fdatasyncs each blob with unsynced writes once", async () => {
  await using opened = await openTempStore();
  const { store } = opened;
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

Deno.test("DiskChunkStore read() detects a blob cut short, and reads a longer one", async () => {
  await using opened = await openTempStore();
  const { store, dir } = opened;
  for (const size of [100, 1024 * 1024]) {
    const [shorter, longer] = [newBlobId(), newBlobId()];
    await store.write(chunkIdOf(shorter, 0), randomBytes(size));
    const bytes = randomBytes(size);
    await store.write(chunkIdOf(longer, 0), bytes);
    await Deno.truncate(`${dir}/${shorter}`, size - 1);
    await Deno.writeFile(`${dir}/${longer}`, new Uint8Array(1), { append: true });
    const id = chunkIdOf(shorter, 0);
    await assert.rejects(store.read(id, size), {
      name: "DfsError",
      code: "CORRUPTED",
      message: `Cannot read chunk ${id}: expected ${size} bytes, found ${size - 1}`,
    });
    assert.deepEqual(await store.read(chunkIdOf(longer, 0), size), bytes);
  }
});

Deno.test({
  name: "DiskChunkStore write() on a full disk fails with UNAVAILABLE and leaves no partial blob",
  ignore: !await canMountTmpfs(),
  async fn() {
    await using disk = await mountTmpfs(1024 * 1024);
    const store = await openDiskChunkStore(`${disk.dir}/chunks`);
    const id = chunkIdOf(newBlobId(), 0);
    await assert.rejects(store.write(id, randomBytes(2 * 1024 * 1024)), {
      name: "DfsError",
      code: "UNAVAILABLE",
      message: new RegExp(`^Cannot store chunk ${id}: No space left on device`),
    });
    assert.deepEqual(await store.scan(), new Map());
    await store.write(id, randomBytes(4096));
    assert.deepEqual(await store.scan(), new Map([[blobOf(id), 4096]]));
    await store.close();
  },
});
