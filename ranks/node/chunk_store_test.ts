import assert from "node:assert/strict";
import {
  BLOB_ID_PATTERN,
  blobOf,
  CHUNK_ID_PATTERN,
  chunkIdOf,
  newBlobId,
  offsetOf,
} from "../common/chunk_id.ts";
import { CHUNK_SIZE_BYTES } from "../../protocol/limits.ts";
import type { DirectFile, DirectOpenOptions } from "../env/env.ts";
import { FakeClock } from "../env/fake_clock.ts";
import { MemoryFileSystem } from "../env/memory_fs.ts";
import { openDiskChunkStore, SCAN_STATS_PER_TURN_MAX } from "./chunk_store.ts";
import { OPEN_BLOB_READERS_MAX, OPEN_BLOB_WRITERS_MAX } from "./open_blobs.ts";
import { randomBytes, runChunkStoreSuite } from "./chunk_store_suite.ts";
import { DENO_TEST_FS, MEMORY_TEST_FS } from "./_test_fs.ts";
import { canMountTmpfs, mountTmpfs } from "./_tmpfs_test_util.ts";

runChunkStoreSuite(DENO_TEST_FS);
runChunkStoreSuite(MEMORY_TEST_FS);

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

Deno.test("DiskChunkStore after a crash keeps synced chunks and deletes, not the others", async () => {
  const fs = new MemoryFileSystem();
  const dir = "/data/rank-1/chunks";
  await fs.mkdir("/data/rank-1", { recursive: true });
  fs.syncAll(); // the node's folder, made durable as a server makes it
  const [kept, deleted, unsynced] = [newBlobId(), newBlobId(), newBlobId()];
  const bytes = randomBytes(5000);
  const store = await openDiskChunkStore(dir, { fs });
  await store.write(chunkIdOf(kept, 0), bytes);
  await store.write(chunkIdOf(deleted, 0), bytes);
  await store.sync([chunkIdOf(kept, 0), chunkIdOf(deleted, 0)]);
  await store.delete([deleted]);
  await store.syncEntries();
  await store.write(chunkIdOf(unsynced, 0), bytes);
  await store.write(chunkIdOf(kept, 5000), bytes);
  fs.crash();
  const reopened = await openDiskChunkStore(dir, { fs });
  assert.deepEqual(await reopened.scan(), new Map([[kept, 5000]]));
  assert.deepEqual(await reopened.read(chunkIdOf(kept, 0), 5000), bytes);
  await assert.rejects(reopened.read(chunkIdOf(kept, 5000), 5000), { code: "CORRUPTED" });
  await reopened.close();
});

Deno.test("DiskChunkStore on an injected EIO fails with UNAVAILABLE and leaves no partial blob", async () => {
  const fs = new MemoryFileSystem();
  const store = await openDiskChunkStore("/chunks", { fs });
  const id = chunkIdOf(newBlobId(), 0);
  fs.failNext("/chunks", "write", "EIO");
  await assert.rejects(store.write(id, randomBytes(10)), {
    name: "DfsError",
    code: "UNAVAILABLE",
    message: `Cannot store chunk ${id}: Input/output error (os error 5)`,
  });
  assert.deepEqual(await store.scan(), new Map());
  await store.write(id, randomBytes(10));
  fs.failNext("/chunks", "sync", "EIO");
  await assert.rejects(store.sync([id]), { code: "UNAVAILABLE" });
  fs.failNext(`/chunks/${blobOf(id)}`, "read", "EIO");
  await assert.rejects(store.read(id, 10), {
    name: "DfsError",
    code: "UNAVAILABLE",
    message: `Cannot read chunk ${id}: Input/output error (os error 5)`,
  });
  await store.close();
});

Deno.test("DiskChunkStore scan() yields to its clock's 0 ms timer between batches of stats", async () => {
  const fs = new MemoryFileSystem();
  const clock = new FakeClock();
  const store = await openDiskChunkStore("/chunks", { fs, clock });
  for (let i = 0; i <= SCAN_STATS_PER_TURN_MAX; i++) {
    await store.write(chunkIdOf(newBlobId(), 0), new Uint8Array(1));
  }
  let done = false;
  const scanning = store.scan().finally(() => done = true);
  for (let turn = 0; clock.pending === 0; turn++) {
    assert.ok(turn < 1_000_000, "scan() sets a timer");
    await null;
  }
  assert.equal(done, false, "waits for the clock");
  await clock.advance(0);
  assert.equal((await scanning).size, SCAN_STATS_PER_TURN_MAX + 1);
  await store.close();
});

/** A memory file system that counts direct opens, or refuses them as tmpfs does. */
class DirectCountingFs extends MemoryFileSystem {
  readonly opens = { write: 0, read: 0 };
  #refuse: boolean;

  constructor(options: { refuse?: boolean } = {}) {
    super();
    this.#refuse = options.refuse === true;
  }

  /** Direct files open now; I/O started or ending on a file closed (a bug: its fd is reused). */
  readonly live = { write: 0, read: 0 };
  ioAfterClose = 0;

  override async openDirect(path: string, options: DirectOpenOptions): Promise<DirectFile | null> {
    this.opens[options.write ? "write" : "read"]++;
    if (this.#refuse) return null;
    const file = await super.openDirect(path, options);
    if (file === null) return null;
    const mode = options.write ? "write" : "read";
    this.live[mode]++;
    let closed = false;
    const close = () => {
      if (!closed) this.live[mode]--;
      closed = true;
      file.close();
    };
    return {
      // The bytes reach the file or the caller a turn later, as a thread pool's do.
      readAt: async (into, position) => {
        if (closed) this.ioAfterClose++;
        const read = await file.readAt(into, position);
        await new Promise((resolve) => setTimeout(resolve, 0));
        if (closed) this.ioAfterClose++;
        return read;
      },
      writeAt: async (bytes, position) => {
        if (closed) this.ioAfterClose++;
        await file.writeAt(bytes, position);
        await new Promise((resolve) => setTimeout(resolve, 0));
        if (closed) this.ioAfterClose++;
      },
      linked: () => file.linked(),
      close,
      [Symbol.dispose]: close,
    };
  }
}

function directCounting(options: { refuse?: boolean } = {}) {
  const fs = new DirectCountingFs(options);
  return { fs, memory: fs, opens: fs.opens };
}

Deno.test("DiskChunkStore writes whole-page chunks and reads large ones with direct I/O", async () => {
  const { fs, opens } = directCounting();
  const store = await openDiskChunkStore("/chunks", { fs });
  const blob = newBlobId();
  const whole = randomBytes(CHUNK_SIZE_BYTES);
  const tail = randomBytes(5000);
  await store.write(chunkIdOf(blob, 0), whole);
  await store.write(chunkIdOf(blob, CHUNK_SIZE_BYTES), tail);
  assert.deepEqual(opens, { write: 1, read: 0 }, "the tail is not whole pages");
  await store.sync([chunkIdOf(blob, 0)]);
  assert.deepEqual(await store.read(chunkIdOf(blob, 0), CHUNK_SIZE_BYTES), whole);
  // Rounded up to whole pages, the read runs past the end of the blob and ends short.
  assert.deepEqual(await store.read(chunkIdOf(blob, CHUNK_SIZE_BYTES), 5000), tail);
  assert.deepEqual(opens, { write: 1, read: 1 }, "the blob is kept open for reads");
  await assert.rejects(store.read(chunkIdOf(blob, CHUNK_SIZE_BYTES), 6000), { code: "CORRUPTED" });
  // A small chunk at the start of its blob is read whole through the page cache.
  const small = chunkIdOf(newBlobId(), 0);
  await store.write(small, randomBytes(8192));
  assert.equal((await store.read(small, 8192)).length, 8192);
  assert.deepEqual(opens, { write: 2, read: 1 });
  await store.close();
});

Deno.test("DiskChunkStore opens a blob once for its direct writes and once for its reads, and closes it when synced, deleted and closed, never under I/O", async () => {
  const fs = new DirectCountingFs();
  const store = await openDiskChunkStore("/chunks", { fs });
  const page = 4096;
  const blob = newBlobId();
  const chunks = [0, 1, 2].map(() => randomBytes(page));
  for (const [i, bytes] of chunks.entries()) await store.write(chunkIdOf(blob, i * page), bytes);
  assert.deepEqual(fs.opens, { write: 1, read: 0 }, "one open for the blob's three chunks");
  assert.equal(fs.live.write, 1);
  await store.sync([chunkIdOf(blob, 0)]);
  assert.equal(fs.live.write, 0, "synced at its commit: closed");
  // Reads at once share one file, and later reads too.
  const reads = chunks.map((_, i) => store.read(chunkIdOf(blob, i * page), page));
  assert.deepEqual(await Promise.all(reads), chunks);
  assert.deepEqual(await store.read(chunkIdOf(blob, page), page), chunks[1]);
  assert.equal(fs.opens.read, 1, "one open for the blob's reads");
  assert.equal(fs.live.read, 1);

  // More blobs than the store keeps open: the oldest are closed, every chunk still lands.
  const many = Math.max(OPEN_BLOB_WRITERS_MAX, OPEN_BLOB_READERS_MAX) + 3;
  const blobs = Array.from({ length: many }, () => newBlobId());
  for (const [i, b] of blobs.entries()) await store.write(chunkIdOf(b, 0), chunks[i % 3]);
  assert.equal(fs.live.write, OPEN_BLOB_WRITERS_MAX);
  for (const [i, b] of blobs.entries()) {
    await store.write(chunkIdOf(b, page), chunks[(i + 1) % 3]);
  }
  assert.equal(fs.live.write, OPEN_BLOB_WRITERS_MAX);
  for (const [i, b] of blobs.entries()) {
    assert.deepEqual(await store.read(chunkIdOf(b, page), page), chunks[(i + 1) % 3]);
  }
  assert.equal(fs.live.read, OPEN_BLOB_READERS_MAX, "the least recently read are closed");

  // A delete while the blob's write and read are in flight: its files close after them.
  const doomed = newBlobId();
  await store.write(chunkIdOf(doomed, 0), chunks[0]);
  const writing = store.write(chunkIdOf(doomed, page), chunks[1]);
  const reading = store.read(chunkIdOf(doomed, 0), page);
  await new Promise((resolve) => setTimeout(resolve, 0)); // both wait for their bytes to move
  await store.delete([doomed]);
  await writing;
  assert.deepEqual(await reading, chunks[0]);
  assert.equal(fs.ioAfterClose, 0);
  assert.equal((await store.scan()).has(doomed), false);
  await assert.rejects(store.read(chunkIdOf(doomed, 0), page), { code: "NOT_FOUND" });
  // A write after the delete opens the blob anew, and so does a read.
  await store.write(chunkIdOf(doomed, 0), chunks[2]);
  assert.deepEqual(await store.read(chunkIdOf(doomed, 0), page), chunks[2]);

  await store.close();
  assert.deepEqual(fs.live, { write: 0, read: 0 }, "the store's close closes every blob it held");
  assert.equal(fs.ioAfterClose, 0);
});

Deno.test("DiskChunkStore: writes queued before close() leave no blob open, and a stat fault still reaches scan()", async () => {
  const fs = new DirectCountingFs();
  const store = await openDiskChunkStore("/chunks", { fs });
  const page = randomBytes(4096);
  const writes = [0, 1].map(() => store.write(chunkIdOf(newBlobId(), 0), page));
  await store.close();
  await Promise.allSettled(writes);
  assert.deepEqual(fs.live, { write: 0, read: 0 });

  // A kept reader's check before each read takes no fault meant for a stat.
  const memory = new MemoryFileSystem();
  const reopened = await openDiskChunkStore("/chunks", { fs: memory });
  const blob = newBlobId();
  await reopened.write(chunkIdOf(blob, 4096), page);
  await reopened.sync([chunkIdOf(blob, 4096)]);
  await reopened.read(chunkIdOf(blob, 4096), 4096);
  memory.failNext(`/chunks/${blob}`, "stat");
  assert.deepEqual(await reopened.read(chunkIdOf(blob, 4096), 4096), page);
  await assert.rejects(reopened.scan(), { code: "UNAVAILABLE" });
  await reopened.close();
});

Deno.test("DiskChunkStore: a chunk written direct and not synced is lost in a crash", async () => {
  const { fs, memory } = directCounting();
  await memory.mkdir("/data", { recursive: true });
  memory.syncAll();
  const store = await openDiskChunkStore("/data/chunks", { fs });
  const [kept, lost] = [chunkIdOf(newBlobId(), 0), chunkIdOf(newBlobId(), 0)];
  const bytes = randomBytes(3 * 4096);
  await store.write(kept, bytes);
  await store.sync([kept]);
  await store.write(lost, bytes);
  memory.crash();
  const reopened = await openDiskChunkStore("/data/chunks", { fs });
  assert.deepEqual(await reopened.scan(), new Map([[blobOf(kept), bytes.length]]));
  assert.deepEqual(await reopened.read(kept, bytes.length), bytes);
  await reopened.close();
});

Deno.test("DiskChunkStore on a file system without direct I/O uses the page cache", async () => {
  const { fs, opens } = directCounting({ refuse: true });
  const store = await openDiskChunkStore("/chunks", { fs });
  const blob = newBlobId();
  const chunks = [randomBytes(CHUNK_SIZE_BYTES), randomBytes(CHUNK_SIZE_BYTES)];
  await store.write(chunkIdOf(blob, 0), chunks[0]);
  await store.write(chunkIdOf(blob, CHUNK_SIZE_BYTES), chunks[1]);
  assert.deepEqual(
    await store.read(chunkIdOf(blob, CHUNK_SIZE_BYTES), CHUNK_SIZE_BYTES),
    chunks[1],
  );
  assert.deepEqual(opens, { write: 1, read: 0 }, "asked once, then no more");
  await store.close();
});

Deno.test({
  name: "DiskChunkStore on a real tmpfs (direct I/O as tmpfs takes it) stores and reads back",
  ignore: !await canMountTmpfs(),
  fn: async () => {
    await using tmpfs = await mountTmpfs(8 * CHUNK_SIZE_BYTES);
    const store = await openDiskChunkStore(`${tmpfs.dir}/chunks`);
    const blob = newBlobId();
    const chunks = [randomBytes(CHUNK_SIZE_BYTES), randomBytes(CHUNK_SIZE_BYTES)];
    await store.write(chunkIdOf(blob, 0), chunks[0]);
    await store.write(chunkIdOf(blob, CHUNK_SIZE_BYTES), chunks[1]);
    await store.sync([chunkIdOf(blob, 0)]);
    assert.deepEqual(await store.read(chunkIdOf(blob, 0), CHUNK_SIZE_BYTES), chunks[0]);
    assert.deepEqual(
      await store.read(chunkIdOf(blob, CHUNK_SIZE_BYTES), CHUNK_SIZE_BYTES),
      chunks[1],
    );
    await store.close();
  },
});
