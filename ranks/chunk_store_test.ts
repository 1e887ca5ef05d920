import assert from "node:assert/strict";
import {
  CHUNK_ID_PATTERN,
  DiskChunkStore,
  MemoryChunkStore,
  newChunkId,
  openDiskChunkStore,
} from "./chunk_store.ts";
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

Deno.test("newChunkId() makes distinct ids matching CHUNK_ID_PATTERN", () => {
  const ids = new Set(Array.from({ length: 1000 }, newChunkId));
  assert.equal(ids.size, 1000);
  for (const id of ids) assert.match(id, CHUNK_ID_PATTERN);
});

Deno.test("openDiskChunkStore() creates a missing folder and chunks survive a reopen", async () => {
  const root = await Deno.makeTempDir();
  const dir = `${root}/a/b/chunks`;
  const id = newChunkId();
  const bytes = randomBytes(5000);
  const first = await openDiskChunkStore(dir);
  await first.write(id, bytes);
  await first.syncEntries();
  await first.close();
  const second = await openDiskChunkStore(dir);
  assert.deepEqual(await second.scan(), new Map([[id, 5000]]));
  assert.deepEqual(await second.read(id), bytes);
  await second.close();
  await Deno.remove(root, { recursive: true });
});

Deno.test("DiskChunkStore scan() removes stray files and keeps chunks and folders", async () => {
  await using opened = await openTempStore();
  const { store, dir } = opened;
  const id = newChunkId();
  await store.write(id, new Uint8Array(3));
  const strays = [`${id}.tmp`, id.toUpperCase(), id.slice(1), "notes.txt"];
  for (const name of strays) await Deno.writeTextFile(`${dir}/${name}`, "x");
  await Deno.mkdir(`${dir}/folder`);
  assert.deepEqual(await store.scan(), new Map([[id, 3]]));
  const left = [];
  for await (const entry of Deno.readDir(dir)) left.push(entry.name);
  assert.deepEqual(left.sort(), [id, "folder"].sort());
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

Deno.test("DiskChunkStore read() detects a chunk file that is shorter or longer", async () => {
  await using opened = await openTempStore();
  const { store, dir } = opened;
  for (const size of [100, 1024 * 1024]) {
    const [shorter, longer] = [newChunkId(), newChunkId()];
    await store.write(shorter, randomBytes(size));
    await store.write(longer, randomBytes(size));
    await Deno.truncate(`${dir}/${shorter}`, size - 1);
    await Deno.writeFile(`${dir}/${longer}`, new Uint8Array(1), { append: true });
    for (const [id, found] of [[shorter, size - 1], [longer, size + 1]] as const) {
      await assert.rejects(store.read(id, { expectedSize: size }), {
        name: "DfsError",
        code: "CORRUPTED",
        message: `Cannot read chunk ${id}: expected ${size} bytes, found ${found}`,
      });
    }
  }
});

Deno.test({
  name: "DiskChunkStore write() on a full disk fails with UNAVAILABLE and leaves no partial file",
  ignore: !await canMountTmpfs(),
  async fn() {
    await using disk = await mountTmpfs(1024 * 1024);
    const store = await openDiskChunkStore(`${disk.dir}/chunks`);
    const id = newChunkId();
    await assert.rejects(store.write(id, randomBytes(2 * 1024 * 1024)), {
      name: "DfsError",
      code: "UNAVAILABLE",
      message: new RegExp(`^Cannot store chunk ${id}: No space left on device`),
    });
    assert.deepEqual(await store.scan(), new Map());
    await store.write(id, randomBytes(4096));
    assert.deepEqual(await store.scan(), new Map([[id, 4096]]));
    await store.close();
  },
});
