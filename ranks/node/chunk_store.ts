/**
 * The chunk storage of a data node: one flat directory of blob files, one per upload, each chunk
 * at its offset in its blob (see `chunk_id.ts`). Writes are made durable in bulk: an upload's
 * chunks are written as they come (whole pages with direct I/O, bypassing the page cache: see
 * `DIRECT_IO_ENABLED`), and `sync()` fdatasyncs each blob once, at commit. All I/O goes
 * through the `FileSystem` the store is opened with: Deno's for a server, a `MemoryFileSystem` for
 * tests and the simulator (the same store, so tests of the layers above test it too).
 *
 * @module
 */

import { dirname } from "node:path";
import { assert, DfsError } from "../../protocol/errors.ts";
import { CHUNK_SIZE_BYTES } from "../../protocol/limits.ts";
import { denoFileSystem } from "../env/deno_env.ts";
import { systemClock } from "../env/system.ts";
import {
  alignedBuffers,
  type Clock,
  DIRECT_IO_ALIGN_BYTES,
  type DirectFile,
  type FileHandle,
  type FileSystem,
  giveWay,
} from "../env/env.ts";
import { GroupSync, reasonOf, removeIfExists, syncDirectory, writeAll } from "./_fs.ts";
import {
  BLOB_ID_PATTERN,
  blobOf,
  CHUNK_ID_PATTERN,
  offsetOf,
  SMALL_READ_BYTES_MAX,
} from "../common/chunk_id.ts";
import { forEachParallel as forEachBounded } from "../common/parallel.ts";
import { BlobReaders, BlobWriters } from "./open_blobs.ts";

/**
 * Bytes of one blob written and not yet fdatasynced after which a `write()` waits for an
 * fdatasync of it: bounds the dirty pages one upload leaves and the work left for its commit.
 */
export const BLOB_UNSYNCED_BYTES_MAX = 1024 * 1024 * 1024;

/** File system ops run at once by `delete()`, `sync()` and `scan()` (Deno runs them on a thread pool). */
export const DISK_OPS_PARALLEL_MAX = 16;

/**
 * Blobs `scan()` stats synchronously before it lets other work run (a 0 ms timer of its clock):
 * `Deno.statSync` measured 5x the rate of 16 parallel `Deno.stat` (100k files: 0.3 s against
 * 1.4 s); 4096 take ~10 ms.
 */
export const SCAN_STATS_PER_TURN_MAX = 4096;

/**
 * Page-aligned buffers of `CHUNK_SIZE_BYTES` for direct I/O, shared by the chunk stores of one
 * thread (a data node's Worker has one store): a chunk write takes one while it runs (writes run
 * one at a time per store) and so does a direct read. When none is free, the I/O goes through the
 * page cache instead, so this bounds their memory and never makes anyone wait.
 */
export const DIRECT_BUFFERS_PER_THREAD = 6;

/**
 * Chunks are written and large ones read with direct I/O (`O_DIRECT`), bypassing the page cache,
 * where the file system allows it: a storage server's page cache only grows with data written
 * once and read rarely. On this project's VMs, growing it costs ~2.3 CPU-seconds per GiB (memory
 * the host backs on first touch) and capped a durable 1 GiB put at ~200 MB/s, against ~850 MB/s
 * for two copies written direct. Small chunks (`SMALL_READ_BYTES_MAX`) and the last piece of a
 * blob that is not whole pages go through the page cache.
 */
export const DIRECT_IO_ENABLED = true;

/**
 * Stores chunks by id (`<blob>-<offset>`). Ids are checked with assertions: a bad id is a bug of
 * the caller.
 */
export interface ChunkStore {
  /**
   * Writes a chunk's bytes at its offset in its blob, creating the blob. Not durable until
   * `sync()` names it. May wait for an fdatasync of the blob once `BLOB_UNSYNCED_BYTES_MAX` of it
   * are unsynced.
   */
  write(id: string, bytes: Uint8Array): Promise<void>;
  /**
   * Makes written chunks durable: one fdatasync per blob with unsynced writes, then an fsync of
   * the folder (shared by concurrent callers), so that the blobs' entries survive a crash too.
   */
  sync(ids: readonly string[]): Promise<void>;
  /**
   * Rewrites a chunk in place from good bytes (a repair) and makes it durable; its blob may be
   * missing before.
   */
  replace(id: string, bytes: Uint8Array): Promise<void>;
  /**
   * Reads a chunk of `size` bytes into a fresh Uint8Array that owns its own ArrayBuffer exactly
   * (byteOffset 0, buffer.byteLength === size) so it can be transferred with postMessage. Missing
   * blob -> DfsError NOT_FOUND; a blob too short to hold it -> DfsError CORRUPTED. With `into` (at
   * least `size` bytes, e.g. a pooled buffer) the bytes may instead be read into its start and a
   * view of it returned, so that steady reads allocate nothing.
   */
  read(
    id: string,
    size: number,
    options?: { into?: Uint8Array<ArrayBuffer> },
  ): Promise<Uint8Array<ArrayBuffer>>;
  /**
   * Removes the blobs of these chunk ids (or these blob ids): a node holds all of an upload's
   * chunks that were placed on it, or none. Missing ones are ignored. Durable after the next
   * `syncEntries()`.
   */
  delete(ids: readonly string[]): Promise<void>;
  /** Makes created/removed directory entries durable (fsync of the folder; group commit). */
  syncEntries(): Promise<void>;
  /**
   * Every blob present with its size in bytes (used at start-up to find orphans and missing
   * chunks). Files that are not valid blob ids (e.g. leftovers) are removed.
   */
  scan(): Promise<Map<string, number>>;
  /** Waits for a running syncEntries() and releases the store; using it afterwards is a bug. */
  close(): Promise<void>;
}

/**
 * Where a chunk store does its I/O, and the clock whose 0 ms timer `scan()` yields to between
 * batches of stats (so that other I/O and messages run): Deno's file system and the system clock
 * unless told (an `Env` will do).
 */
export interface ChunkStoreOptions {
  fs?: FileSystem;
  clock?: Clock;
}

/**
 * Opens the chunk store in `dir`, creating the folder (and its parents) if missing.
 *
 * @throws {DfsError} UNAVAILABLE if the folder cannot be created or opened.
 */
export async function openDiskChunkStore(
  dir: string,
  options: ChunkStoreOptions = {},
): Promise<DiskChunkStore> {
  const { fs = denoFileSystem, clock = systemClock } = options;
  try {
    await fs.mkdir(dir, { recursive: true });
    const handle = await fs.open(dir, { read: true });
    // A folder created just now must itself survive a crash.
    await syncDirectory(fs, dirname(dir));
    return new DiskChunkStore(dir, { fs, clock, handle });
  } catch (error) {
    throw new DfsError("UNAVAILABLE", `Cannot open chunk store "${dir}": ${reasonOf(error)}`, {
      cause: error,
    });
  }
}

/** The `ChunkStore`, on a file system. Open it with `openDiskChunkStore()`. */
export class DiskChunkStore implements ChunkStore {
  #dir: string;
  #fs: FileSystem;
  #clock: Clock;
  #handle: FileHandle;
  #entries: GroupSync;
  /** Blobs written since their last fdatasync, with the bytes written. */
  #unsynced = new Map<string, number>();
  /** Blobs kept open for direct writes and reads (`open_blobs.ts`). */
  #writers = new BlobWriters((blob) => this.#openDirect(blob, { write: true }));
  #readers = new BlobReaders((blob) => this.#openDirect(blob, { write: false }));
  #blobSyncs = 0;
  /**
   * Chunk writes run one at a time: concurrent writes into one blob spin on its inode lock, and
   * 1 GiB puts measured 290 MB/s (median of 5) this way against 262 MB/s with up to 16 at once.
   */
  #writes: Promise<void> = Promise.resolve();
  /** False once the file system refused direct I/O (tmpfs): the page cache it is. */
  #direct = DIRECT_IO_ENABLED;
  #closed = false;

  /**
   * Use `openDiskChunkStore()`; `handle` is the chunk folder open on `fs`, owned by the store from
   * now on.
   */
  constructor(dir: string, opened: { fs: FileSystem; clock: Clock; handle: FileHandle }) {
    this.#dir = dir;
    this.#fs = opened.fs;
    this.#clock = opened.clock;
    this.#handle = opened.handle;
    this.#entries = new GroupSync(() => this.#handle.sync());
  }

  /** How many fsyncs of the chunk folder were started (to observe group commit). */
  get syncCount(): number {
    return this.#entries.count;
  }

  /** How many fdatasyncs of blobs were started (to observe that each blob is synced once). */
  get blobSyncCount(): number {
    return this.#blobSyncs;
  }

  async write(id: string, bytes: Uint8Array): Promise<void> {
    const blob = this.#blob(id, { chunkOnly: true });
    const offset = offsetOf(id);
    const fresh = !this.#unsynced.has(blob) && offset === 0;
    this.#unsynced.set(blob, this.#unsynced.get(blob) ?? 0);
    try {
      // A full disk must not leave a partial blob behind. It is removed in the write's own turn:
      // a write queued behind it (a client's direct writes come in any order) then starts a blob
      // anew, rather than having its bytes removed under it.
      const turn = this.#writes.then(() =>
        this.#writeAt(id, bytes).catch(async (error) => {
          this.#forget(blob);
          if (fresh) await removeIfExists(this.#fs, this.#path(blob)).catch(() => {});
          throw error;
        })
      );
      this.#writes = turn.catch(() => {});
      await turn;
    } catch (error) {
      throw storeError(id, error);
    }
    const unsynced = (this.#unsynced.get(blob) ?? 0) + bytes.length;
    this.#unsynced.set(blob, unsynced);
    if (unsynced >= BLOB_UNSYNCED_BYTES_MAX) await this.#syncBlob(blob, id);
  }

  async sync(ids: readonly string[]): Promise<void> {
    const blobs = [...new Set(ids.map((id) => this.#blob(id, { chunkOnly: true })))];
    await forEachParallel(blobs.filter((b) => this.#unsynced.has(b)), async (blob) => {
      await this.#syncBlob(blob, `${blob}-0`);
    });
    await this.syncEntries();
  }

  async replace(id: string, bytes: Uint8Array): Promise<void> {
    this.#blob(id, { chunkOnly: true });
    try {
      await this.#writeAt(id, bytes, { sync: true });
    } catch (error) {
      throw storeError(id, error);
    }
    await this.syncEntries();
  }

  async read(
    id: string,
    size: number,
    options: { into?: Uint8Array<ArrayBuffer> } = {},
  ): Promise<Uint8Array<ArrayBuffer>> {
    assert(Number.isSafeInteger(size) && size >= 0, "a chunk size is a whole number");
    const path = this.#path(this.#blob(id, { chunkOnly: true }));
    const { into } = options;
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      if (offsetOf(id) === 0 && size <= SMALL_READ_BYTES_MAX) {
        const whole = await this.#fs.readFile(path);
        if (whole.length < size) throw sizeError(id, size, whole.length);
        bytes = ownBuffer(whole.subarray(0, size));
      } else {
        const target = into && into.length >= size ? into.subarray(0, size) : new Uint8Array(size);
        bytes = await this.#readDirect(id, target) ?? await this.#readAt(id, target);
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
    return bytes;
  }

  async delete(ids: readonly string[]): Promise<void> {
    const blobs = [...new Set(ids.map((id) => this.#blob(id)))];
    await forEachParallel(blobs, async (blob) => {
      try {
        this.#unsynced.delete(blob);
        this.#forget(blob);
        await removeIfExists(this.#fs, this.#path(blob));
      } catch (error) {
        throw new DfsError("UNAVAILABLE", `Cannot delete blob ${blob}: ${reasonOf(error)}`, {
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
      const blobs: string[] = [];
      const strays: string[] = [];
      for await (const entry of this.#fs.readDir(this.#dir)) {
        const blob = BLOB_ID_PATTERN.test(entry.name);
        if (blob && entry.isFile) blobs.push(entry.name);
        else if (entry.isFile || entry.isSymlink) strays.push(`${this.#dir}/${entry.name}`);
      }
      await forEachParallel(strays, (path) => removeIfExists(this.#fs, path));
      const sizes = new Map<string, number>();
      for (let start = 0; start < blobs.length; start += SCAN_STATS_PER_TURN_MAX) {
        if (start > 0) await giveWay(this.#clock);
        for (const blob of blobs.slice(start, start + SCAN_STATS_PER_TURN_MAX)) {
          const size = statSizeOrUndefined(this.#fs, this.#path(blob));
          if (size !== undefined) sizes.set(blob, size);
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
    this.#readers.dropAll();
    // Writes queued before the close may still open their blob: close until none is left.
    do {
      for (const writer of this.#writers.takeAll()) this.#closeWriter(writer);
      await this.#writes;
    } while (this.#writers.size > 0);
    await this.#entries.settled();
    this.#handle.close();
  }

  /** fdatasyncs a blob; writes that land meanwhile stay counted as unsynced. */
  async #syncBlob(blob: string, id: string): Promise<void> {
    const before = this.#unsynced.get(blob) ?? 0;
    const writer = this.#writers.take(blob); // synced at its commit: no more writes come
    if (writer) this.#closeWriter(writer);
    this.#blobSyncs++;
    try {
      using file = await this.#fs.open(this.#path(blob), { write: true });
      await file.syncData();
    } catch (error) {
      throw storeError(id, error);
    }
    const now = this.#unsynced.get(blob);
    if (now === undefined) return; // deleted meanwhile
    if (now === before) this.#unsynced.delete(blob);
    else this.#unsynced.set(blob, now - before);
  }

  /** The blob of a chunk id (or, unless `chunkOnly`, of a blob id), checked. */
  #blob(id: string, options: { chunkOnly?: boolean } = {}): string {
    assert(!this.#closed, "chunk store is open");
    checkId(id, options);
    return blobOf(id);
  }

  #path(blob: string): string {
    return `${this.#dir}/${blob}`;
  }

  /** Reads chunk `id` into `bytes`; CORRUPTED if its blob ends first. */
  async #readAt(id: string, bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
    const offset = offsetOf(id);
    using file = await this.#fs.open(this.#path(blobOf(id)), { read: true });
    if (offset > 0) await file.seek(offset, Deno.SeekMode.Start);
    let filled = 0;
    while (filled < bytes.length) {
      const read = await file.read(bytes.subarray(filled));
      if (read === null) break;
      filled += read;
    }
    if (filled < bytes.length) throw sizeError(id, bytes.length, filled);
    return bytes;
  }

  /**
   * Reads chunk `id` into `bytes` with direct I/O, or returns undefined if it cannot (no aligned
   * buffer free, or the file system refuses it); CORRUPTED if its blob ends first.
   */
  #readDirect(
    id: string,
    bytes: Uint8Array<ArrayBuffer>,
  ): Promise<Uint8Array<ArrayBuffer> | undefined> {
    if (!this.#direct || bytes.length > CHUNK_SIZE_BYTES) return Promise.resolve(undefined);
    return this.#withDirectFile(id, { write: false, staged: true }, async (file, buffer) => {
      const offset = offsetOf(id);
      const length = roundUp(bytes.length, DIRECT_IO_ALIGN_BYTES);
      let filled = 0;
      while (filled < length) {
        const read = await file.readAt(buffer.subarray(filled, length), offset + filled);
        filled += read;
        // A read ends short only at the end of the file.
        if (read === 0 || filled % DIRECT_IO_ALIGN_BYTES !== 0) break;
      }
      if (filled < bytes.length) throw sizeError(id, bytes.length, filled);
      bytes.set(buffer.subarray(0, bytes.length));
      return bytes;
    });
  }

  /**
   * Writes chunk `id` with direct I/O if it is whole pages: from where its bytes are when they lie
   * in a page-aligned slot of memory shared with rank 0, else from a copy in an aligned buffer of
   * this thread. Returns false if it did not (the caller writes it through the page cache).
   */
  async #writeDirect(id: string, bytes: Uint8Array): Promise<boolean> {
    if (!this.#direct || bytes.length % DIRECT_IO_ALIGN_BYTES !== 0) return false;
    if (bytes.length === 0 || bytes.length > CHUNK_SIZE_BYTES) return false;
    const offset = offsetOf(id);
    const write = { write: true };
    if (isSharedSlot(bytes)) {
      const unstaged = { ...write, staged: false };
      const written = await this.#withDirectFile(id, unstaged, async (file) => {
        await file.writeAt(bytes, offset);
        return true;
      });
      if (written) return true;
    }
    const staged = { ...write, staged: true };
    return await this.#withDirectFile(id, staged, async (file, buffer) => {
      const aligned = buffer.subarray(0, bytes.length);
      aligned.set(bytes);
      await file.writeAt(aligned, offset);
      return true;
    }) ?? false;
  }

  /**
   * Runs `io` on chunk `id`'s blob open for direct I/O, with one of this thread's aligned buffers
   * if `staged`; returns what `io` returns, or undefined if it could not run:
   * no buffer free, or the file system refused (EINVAL). A refusal of a staged call turns direct
   * I/O off for the store; an unstaged one only means the caller's bytes were not aligned after all.
   */
  async #withDirectFile<T>(
    id: string,
    options: { write: boolean; staged: boolean },
    io: (file: DirectFile, buffer: Uint8Array<ArrayBuffer>) => Promise<T>,
  ): Promise<T | undefined> {
    const buffer = options.staged ? directBuffers.take() : undefined;
    if (options.staged && buffer === undefined) return undefined;
    try {
      if (options.write) {
        // Only in a write's turn (see `BlobWriters`).
        const file = await this.#writers.get(blobOf(id));
        return file === null ? undefined : await io(file, buffer!);
      }
      return await this.#readers.use(blobOf(id), (file) => io(file, buffer!));
    } catch (error) {
      if (!(error instanceof Deno.errors.InvalidData)) throw error;
      if (options.staged) this.#direct = false;
      return undefined;
    } finally {
      if (buffer) directBuffers.give(buffer);
    }
  }

  /** Blob `blob` is gone or rewritten: neither its writer nor its reader is kept. */
  #forget(blob: string): void {
    this.#readers.drop(blob);
    const writer = this.#writers.take(blob);
    if (writer) this.#closeWriter(writer);
  }

  /** Closes a writer once the writes queued before now are done (see `BlobWriters.take`). */
  #closeWriter(writer: DirectFile): void {
    // (A close that fails loses nothing: a blob is made durable by its fdatasync, not its close.)
    this.#writes = this.#writes.then(() => writer.close()).catch(() => {});
  }

  /** Opens a blob for direct I/O; null (and no more tries) if the file system refuses it. */
  async #openDirect(blob: string, options: { write: boolean }): Promise<DirectFile | null> {
    const { write } = options;
    const file = await this.#fs.openDirect(this.#path(blob), { write, create: write });
    if (file === null) this.#direct = false;
    return file;
  }

  /** Writes chunk `id` at its offset in its blob, creating it; with `sync`, fdatasyncs it. */
  async #writeAt(id: string, bytes: Uint8Array, options: { sync?: boolean } = {}): Promise<void> {
    if (!options.sync && await this.#writeDirect(id, bytes)) return;
    const offset = offsetOf(id);
    using file = await this.#fs.open(this.#path(blobOf(id)), { write: true, create: true });
    if (offset > 0) await file.seek(offset, Deno.SeekMode.Start);
    await writeAll(file, bytes);
    if (options.sync) await file.syncData();
  }
}

/** A pool of aligned buffers, allocated on first use. */
class AlignedPool {
  #free: Uint8Array<ArrayBuffer>[] | undefined;

  /** A free buffer, or undefined if all are taken. */
  take(): Uint8Array<ArrayBuffer> | undefined {
    this.#free ??= alignedBuffers(DIRECT_BUFFERS_PER_THREAD, CHUNK_SIZE_BYTES);
    return this.#free.pop();
  }

  give(buffer: Uint8Array<ArrayBuffer>): void {
    this.#free!.push(buffer);
  }
}

/**
 * Whether `bytes` lie in memory shared with rank 0 at a page boundary: its chunk slots are
 * page-aligned shared WebAssembly memory (`rank0/shared_slots.ts`). A shared buffer of another
 * kind that is not aligned after all is refused by the OS, and the write copies instead.
 */
function isSharedSlot(bytes: Uint8Array): bytes is Uint8Array<SharedArrayBuffer> {
  return bytes.buffer instanceof SharedArrayBuffer &&
    bytes.byteOffset % DIRECT_IO_ALIGN_BYTES === 0;
}

/** This thread's aligned buffers (`DIRECT_BUFFERS_PER_THREAD`). */
const directBuffers = new AlignedPool();

function roundUp(value: number, unit: number): number {
  return Math.ceil(value / unit) * unit;
}

/** Asserts `id` is a chunk id or, unless `chunkOnly`, a blob id. */
function checkId(id: string, options: { chunkOnly?: boolean }): void {
  assert(
    CHUNK_ID_PATTERN.test(id) || (!options.chunkOnly && BLOB_ID_PATTERN.test(id)),
    `chunk id ${JSON.stringify(id)} is a blob id (32 lower-case hex digits), a dash and an offset`,
  );
}

/** `bytes` itself if it owns its whole ArrayBuffer, else a copy that does. */
function ownBuffer(bytes: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const exact = bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length;
  return exact ? bytes : bytes.slice();
}

/** The size of the file at `path`, or undefined if it was removed meanwhile. */
function statSizeOrUndefined(fs: FileSystem, path: string): number | undefined {
  try {
    return fs.statSync(path).size;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Runs `action` on every item, at most `DISK_OPS_PARALLEL_MAX` at once; rejects on the first error. */
function forEachParallel<T>(items: readonly T[], action: (item: T) => Promise<void>) {
  return forEachBounded(items, DISK_OPS_PARALLEL_MAX, action);
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
