/**
 * The chunk storage of a data node: one flat directory with one file per chunk, named by its id.
 * `MemoryChunkStore` has the same behaviour in memory, for tests of the layers above.
 *
 * @module
 */

import { dirname } from "node:path";
import { assert, DfsError } from "../protocol/errors.ts";
import { reasonOf, removeIfExists, syncDirectory, writeAll } from "./_fs.ts";

/** A chunk id: 128 random bits in lower-case hex, made by the server (never a client's name). */
export const CHUNK_ID_PATTERN = /^[0-9a-f]{32}$/;

/**
 * Chunks up to this size are read with one `Deno.readFile` op (~3x the rate of open+read for
 * 4 KiB); bigger ones are read into a buffer of the expected size, which measured faster when
 * several 1 MiB reads run at once.
 */
export const SMALL_READ_BYTES_MAX = 256 * 1024;

/** File system ops run at once by `delete()` and `scan()` (Deno runs them on a thread pool). */
export const DISK_OPS_PARALLEL_MAX = 16;

/**
 * Chunks `scan()` stats synchronously before it lets other work run: `Deno.statSync` measured 5x
 * the rate of 16 parallel `Deno.stat` (100k chunks: 0.3 s against 1.4 s); 4096 take ~10 ms.
 */
export const SCAN_STATS_PER_TURN_MAX = 4096;

/** Makes a new random chunk id matching `CHUNK_ID_PATTERN`. */
export function newChunkId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Stores whole chunks by id. Ids are checked with assertions: a bad id is a bug of the caller. */
export interface ChunkStore {
  /**
   * Writes a new chunk and makes its bytes durable (write + fdatasync) before resolving. Refuses
   * an id that exists (INTERNAL) or a malformed id (assertion). The caller still has to call
   * syncEntries() before the chunk's existence is durable.
   */
  write(id: string, bytes: Uint8Array): Promise<void>;
  /**
   * Replaces a chunk's content atomically (a repair from a good replica): writes a temporary file,
   * fsyncs it, renames it over the chunk and fsyncs the folder. The chunk may be missing before.
   */
  replace(id: string, bytes: Uint8Array): Promise<void>;
  /**
   * Reads a whole chunk into a fresh Uint8Array that owns its own ArrayBuffer exactly (byteOffset
   * 0, buffer.byteLength === length) so it can be transferred with postMessage. Missing -> DfsError
   * NOT_FOUND. If expectedSize is given and differs -> DfsError CORRUPTED. With `into` (at least
   * expectedSize bytes, e.g. a pooled buffer) the bytes may instead be read into its start and a
   * view of it returned, so that steady reads allocate nothing.
   */
  read(
    id: string,
    options?: { expectedSize?: number; into?: Uint8Array<ArrayBuffer> },
  ): Promise<Uint8Array<ArrayBuffer>>;
  /** Removes chunks; missing ids are ignored. Durable after the next syncEntries(). */
  delete(ids: readonly string[]): Promise<void>;
  /**
   * Makes created/removed directory entries durable (fsync of the chunk directory). Concurrent
   * callers share one fsync when they can (group commit: a call that arrives while an fsync is
   * running waits for the next one).
   */
  syncEntries(): Promise<void>;
  /**
   * Every chunk present with its size in bytes (used at start-up to find orphans and to count
   * bytes held). Files that are not valid chunk ids (e.g. leftover temp files) are removed.
   */
  scan(): Promise<Map<string, number>>;
  /** Waits for a running syncEntries() and releases the store; using it afterwards is a bug. */
  close(): Promise<void>;
}

/**
 * Opens the chunk store in `dir`, creating the folder (and its parents) if missing.
 *
 * @throws {DfsError} UNAVAILABLE if the folder cannot be created or opened.
 */
export async function openDiskChunkStore(dir: string): Promise<DiskChunkStore> {
  try {
    await Deno.mkdir(dir, { recursive: true });
    const handle = await Deno.open(dir, { read: true });
    // A folder created just now must itself survive a crash.
    await syncDirectory(dirname(dir));
    return new DiskChunkStore(dir, handle);
  } catch (error) {
    throw new DfsError("UNAVAILABLE", `Cannot open chunk store "${dir}": ${reasonOf(error)}`, {
      cause: error,
    });
  }
}

/** The on-disk `ChunkStore`. Open it with `openDiskChunkStore()`. */
export class DiskChunkStore implements ChunkStore {
  #dir: string;
  #handle: Deno.FsFile;
  #entries: GroupSync;
  #closed = false;

  /** Use `openDiskChunkStore()`; `handle` is the open chunk folder, owned by the store from now on. */
  constructor(dir: string, handle: Deno.FsFile) {
    this.#dir = dir;
    this.#handle = handle;
    this.#entries = new GroupSync(() => this.#handle.sync());
  }

  /** How many fsyncs of the chunk folder were started (to observe group commit). */
  get syncCount(): number {
    return this.#entries.count;
  }

  async replace(id: string, bytes: Uint8Array): Promise<void> {
    const path = this.#path(id);
    const temporary = `${path}.repair`; // not a chunk id: scan() removes a leftover
    await removeIfExists(temporary);
    let file: Deno.FsFile | undefined;
    try {
      file = await Deno.open(temporary, { createNew: true, write: true });
      await writeAll(file, bytes);
      await file.syncData();
      file.close();
      file = undefined;
      await Deno.rename(temporary, path);
      await this.syncEntries();
    } catch (error) {
      file?.close();
      await removeIfExists(temporary).catch(() => {});
      throw storeError(id, error);
    }
  }

  async write(id: string, bytes: Uint8Array): Promise<void> {
    const path = this.#path(id);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { createNew: true, write: true });
    } catch (error) {
      if (error instanceof Deno.errors.AlreadyExists) {
        throw new DfsError("INTERNAL", `Cannot store chunk ${id}: chunk already exists`);
      }
      throw storeError(id, error);
    }
    try {
      await writeAll(file, bytes);
      await file.syncData();
    } catch (error) {
      file.close();
      // A full disk must not leave a partial chunk behind.
      await removeIfExists(path).catch(() => {});
      throw storeError(id, error);
    }
    file.close();
  }

  async read(
    id: string,
    options: { expectedSize?: number; into?: Uint8Array<ArrayBuffer> } = {},
  ): Promise<Uint8Array<ArrayBuffer>> {
    const path = this.#path(id);
    const { expectedSize, into } = options;
    assert(expectedSize === undefined || expectedSize >= 0, "expectedSize is not negative");
    const target = into && expectedSize !== undefined && into.length >= expectedSize
      ? into.subarray(0, expectedSize)
      : undefined;
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      if (target && expectedSize! > SMALL_READ_BYTES_MAX) {
        bytes = await readExactly(id, path, expectedSize!, target);
      } else if (expectedSize !== undefined && expectedSize > SMALL_READ_BYTES_MAX) {
        bytes = await readExactly(id, path, expectedSize, new Uint8Array(expectedSize));
      } else {
        bytes = ownBuffer(await Deno.readFile(path));
      }
    } catch (error) {
      if (error instanceof DfsError) throw error;
      if (error instanceof Deno.errors.NotFound) {
        throw new DfsError("NOT_FOUND", `Cannot read chunk ${id}: chunk does not exist`);
      }
      throw new DfsError("UNAVAILABLE", `Cannot read chunk ${id}: ${reasonOf(error)}`, {
        cause: error,
      });
    }
    if (expectedSize !== undefined && bytes.length !== expectedSize) {
      throw sizeError(id, expectedSize, bytes.length);
    }
    assert(
      bytes === target || (bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length),
      "read owns its buffer or fills the caller's",
    );
    return bytes;
  }

  async delete(ids: readonly string[]): Promise<void> {
    for (const id of ids) this.#path(id);
    await forEachParallel(ids, async (id) => {
      try {
        await removeIfExists(this.#path(id));
      } catch (error) {
        throw new DfsError("UNAVAILABLE", `Cannot delete chunk ${id}: ${reasonOf(error)}`, {
          cause: error,
        });
      }
    });
  }

  async syncEntries(): Promise<void> {
    assert(!this.#closed, "chunk store is open");
    try {
      await this.#entries.run();
    } catch (error) {
      throw new DfsError("UNAVAILABLE", `Cannot sync chunk folder: ${reasonOf(error)}`, {
        cause: error,
      });
    }
  }

  async scan(): Promise<Map<string, number>> {
    assert(!this.#closed, "chunk store is open");
    try {
      const ids: string[] = [];
      const strays: string[] = [];
      for await (const entry of Deno.readDir(this.#dir)) {
        const chunk = CHUNK_ID_PATTERN.test(entry.name);
        if (chunk && entry.isFile) ids.push(entry.name);
        else if (entry.isFile || entry.isSymlink) strays.push(`${this.#dir}/${entry.name}`);
      }
      await forEachParallel(strays, removeIfExists);
      const sizes = new Map<string, number>();
      for (let start = 0; start < ids.length; start += SCAN_STATS_PER_TURN_MAX) {
        if (start > 0) await new Promise((resolve) => setTimeout(resolve, 0));
        for (const id of ids.slice(start, start + SCAN_STATS_PER_TURN_MAX)) {
          const size = statSizeOrUndefined(this.#path(id));
          if (size !== undefined) sizes.set(id, size);
        }
      }
      return sizes;
    } catch (error) {
      throw new DfsError("UNAVAILABLE", `Cannot scan chunk folder: ${reasonOf(error)}`, {
        cause: error,
      });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#entries.settled();
    this.#handle.close();
  }

  #path(id: string): string {
    assert(!this.#closed, "chunk store is open");
    assert(CHUNK_ID_PATTERN.test(id), `chunk id ${JSON.stringify(id)} is 32 lower-case hex digits`);
    return `${this.#dir}/${id}`;
  }
}

/**
 * An in-memory `ChunkStore` with the same behaviour as the disk one, for tests. Every failure is a
 * rejected promise, as from the disk store.
 */
export class MemoryChunkStore implements ChunkStore {
  #chunks = new Map<string, Uint8Array<ArrayBuffer>>();
  #closed = false;

  write(id: string, bytes: Uint8Array): Promise<void> {
    return Promise.try(() => {
      this.#check(id);
      if (this.#chunks.has(id)) {
        throw new DfsError("INTERNAL", `Cannot store chunk ${id}: chunk already exists`);
      }
      this.#chunks.set(id, bytes.slice());
    });
  }

  replace(id: string, bytes: Uint8Array): Promise<void> {
    return Promise.try(() => {
      this.#check(id);
      this.#chunks.set(id, bytes.slice());
    });
  }

  read(
    id: string,
    options: { expectedSize?: number; into?: Uint8Array<ArrayBuffer> } = {},
  ): Promise<Uint8Array<ArrayBuffer>> {
    return Promise.try(() => {
      this.#check(id);
      const bytes = this.#chunks.get(id);
      if (bytes === undefined) {
        throw new DfsError("NOT_FOUND", `Cannot read chunk ${id}: chunk does not exist`);
      }
      const { expectedSize } = options;
      if (expectedSize !== undefined && bytes.length !== expectedSize) {
        throw sizeError(id, expectedSize, bytes.length);
      }
      const { into } = options;
      if (!into || into.length < bytes.length) return bytes.slice();
      into.set(bytes);
      return into.subarray(0, bytes.length);
    });
  }

  delete(ids: readonly string[]): Promise<void> {
    return Promise.try(() => {
      for (const id of ids) this.#check(id);
      for (const id of ids) this.#chunks.delete(id);
    });
  }

  syncEntries(): Promise<void> {
    return Promise.try(() => assert(!this.#closed, "chunk store is open"));
  }

  scan(): Promise<Map<string, number>> {
    return Promise.try(() => {
      assert(!this.#closed, "chunk store is open");
      return new Map([...this.#chunks].map(([id, bytes]) => [id, bytes.length]));
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  #check(id: string): void {
    assert(!this.#closed, "chunk store is open");
    assert(CHUNK_ID_PATTERN.test(id), `chunk id ${JSON.stringify(id)} is 32 lower-case hex digits`);
  }
}

/**
 * Runs `sync` so that concurrent callers share it: a call while no sync runs starts one; a call
 * while one runs waits for the next one, which every such caller shares.
 */
class GroupSync {
  #sync: () => Promise<void>;
  #running: Promise<void> | undefined;
  #next: Promise<void> | undefined;
  #count = 0;

  constructor(sync: () => Promise<void>) {
    this.#sync = sync;
  }

  /** How many syncs were started. */
  get count(): number {
    return this.#count;
  }

  /** Runs a sync, or joins the next one if one is running. */
  run(): Promise<void> {
    if (this.#next) return this.#next;
    if (!this.#running) return this.#start();
    this.#next = this.#running.catch(() => {}).then(() => {
      this.#next = undefined;
      return this.#start();
    });
    return this.#next;
  }

  /** Resolves once no sync is running or waiting to run. */
  async settled(): Promise<void> {
    while (this.#next ?? this.#running) await (this.#next ?? this.#running)!.catch(() => {});
  }

  #start(): Promise<void> {
    this.#count++;
    const running = this.#sync().finally(() => {
      this.#running = undefined;
    });
    this.#running = running;
    return running;
  }
}

/** Reads chunk `id`, expected to hold `size` bytes, into a new buffer; CORRUPTED if it does not. */
async function readExactly(
  id: string,
  path: string,
  size: number,
  bytes: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array<ArrayBuffer>> {
  assert(bytes.length === size, "the target has exactly the expected size");
  using file = await Deno.open(path, { read: true });
  let offset = 0;
  while (offset < size) {
    const read = await file.read(bytes.subarray(offset));
    if (read === null) break;
    offset += read;
  }
  if (offset < size || await file.read(new Uint8Array(1)) !== null) {
    throw sizeError(id, size, (await file.stat()).size);
  }
  return bytes;
}

/** `bytes` itself if it owns its whole ArrayBuffer, else a copy that does. */
function ownBuffer(bytes: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const exact = bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length;
  return exact ? bytes : bytes.slice();
}

/** The size of the file at `path`, or undefined if it was removed meanwhile. */
function statSizeOrUndefined(path: string): number | undefined {
  try {
    return Deno.statSync(path).size;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Runs `action` on every item, at most `DISK_OPS_PARALLEL_MAX` at once; rejects on the first error. */
async function forEachParallel<T>(items: readonly T[], action: (item: T) => Promise<void>) {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await action(items[next++]);
  };
  const lanes = Math.min(DISK_OPS_PARALLEL_MAX, items.length);
  await Promise.all(Array.from({ length: lanes }, lane));
}

function storeError(id: string, error: unknown): DfsError {
  return new DfsError("UNAVAILABLE", `Cannot store chunk ${id}: ${reasonOf(error)}`, {
    cause: error,
  });
}

function sizeError(id: string, expected: number, found: number): DfsError {
  return new DfsError(
    "CORRUPTED",
    `Cannot read chunk ${id}: expected ${expected} bytes, found ${found}`,
  );
}
