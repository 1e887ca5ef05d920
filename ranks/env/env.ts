/**
 * The environment a rank runs in: its clock, its randomness, its disk and its log, in one small
 * object handed down from where the rank starts. `denoEnv()` is the real one; tests and the
 * simulator pass a fake clock, seeded randomness and a memory file system (`env/mod.ts`), so a
 * whole cluster can run in one thread and a run can be replayed from its seed.
 *
 * Nothing below `ranks/` calls `Date.now`, `setTimeout`, `crypto.getRandomValues` or `Deno.open`
 * directly: it asks its `Env`.
 *
 * @module
 */

/** Time: the wall clock for what is recorded, a monotonic one for what is measured, and timers. */
export interface Clock {
  /** Milliseconds since the Unix epoch (what `Date.now()` gives). */
  now(): number;
  /** Milliseconds from an arbitrary start, never going back (what `performance.now()` gives). */
  monotonic(): number;
  /** Calls `callback` once after `ms`; returns a handle for `clearTimeout`. */
  setTimeout(callback: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
}

/**
 * Resolves after a 0 ms timer on `clock`, once the timers and I/O due have had a turn: how long
 * work on one thread (a rank's) goes in steps and still answers heartbeats and clients.
 */
export function giveWay(clock: Pick<Clock, "setTimeout">): Promise<void> {
  return new Promise((resolve) => void clock.setTimeout(resolve, 0));
}

/** An opaque timer handle (each clock has its own kind). */
export type TimerHandle = unknown;

/** Randomness. */
export interface Random {
  /** Fills `bytes` with random bytes and returns it. */
  fill<T extends Uint8Array>(bytes: T): T;
}

/** Where a rank writes what an operator should see (warnings, repairs, failures). */
export interface Log {
  error(message: string, ...details: unknown[]): void;
}

/** What `statfs` says of the file system under a path. */
export interface FsStats {
  totalBytes: number;
  availableBytes: number;
  /** The device the path is on: paths on one device share its space. */
  device: number;
}

/** An entry of `readDir`. */
export interface DirEntry {
  name: string;
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
}

/** How `open` opens a file (the subset of `Deno.OpenOptions` dfs uses). */
export interface OpenOptions {
  read?: boolean;
  write?: boolean;
  append?: boolean;
  create?: boolean;
  createNew?: boolean;
  truncate?: boolean;
}

/** An open file: the subset of `Deno.FsFile` dfs uses. */
export interface FileHandle extends Disposable {
  read(into: Uint8Array): Promise<number | null>;
  readSync(into: Uint8Array): number | null;
  write(bytes: Uint8Array): Promise<number>;
  /**
   * Writes at the file's position without leaving the thread: for a few kilobytes into the page
   * cache, microseconds, where an async write hops to a thread pool and back.
   */
  writeSync(bytes: Uint8Array): number;
  seek(offset: number, whence: Deno.SeekMode): Promise<number>;
  seekSync(offset: number, whence: Deno.SeekMode): number;
  truncate(length?: number): Promise<void>;
  /** fsync: the file's data and metadata are durable. */
  sync(): Promise<void>;
  /** fdatasync: the file's data (and its size) are durable. */
  syncData(): Promise<void>;
  /**
   * fstat: the file's size and how many folder entries name it (0 once it was removed or renamed
   * over; null where the platform does not say). Synchronous: it costs about a microsecond.
   */
  statSync(): { size: number; nlink: number | null };
  /** An exclusive (or shared) advisory lock on the whole file; waits until it is granted. */
  lock(exclusive?: boolean): Promise<void>;
  close(): void;
}

/** Reads `into` from byte `at` of `file`, until it is full or the file ends; the bytes read. */
export function readAtSync(file: FileHandle, into: Uint8Array, at: number): number {
  file.seekSync(at, Deno.SeekMode.Start);
  let filled = 0;
  while (filled < into.length) {
    const read = file.readSync(into.subarray(filled));
    if (read === null) break;
    filled += read;
  }
  return filled;
}

/**
 * The file system: the subset of Deno's file API that the data node's log, chunk store and data
 * folder use. Errors are Deno's (`Deno.errors.NotFound`, `AlreadyExists`, ...), in every
 * implementation, so callers tell them apart the same way.
 */
export interface FileSystem {
  open(path: string, options: OpenOptions): Promise<FileHandle>;
  openSync(path: string, options: OpenOptions): FileHandle;
  readFile(path: string): Promise<Uint8Array<ArrayBuffer>>;
  readTextFile(path: string): Promise<string>;
  /** Size in bytes of the file at `path`. */
  statSync(path: string): { size: number; isFile: boolean; isDirectory: boolean; dev: number };
  mkdir(path: string, options?: { recursive?: boolean }): Promise<void>;
  readDir(path: string): AsyncIterable<DirEntry>;
  remove(path: string, options?: { recursive?: boolean }): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  statfs(path: string): Promise<FsStats>;
  /**
   * Opens a file for direct I/O (`O_DIRECT`: its bytes bypass the page cache), or returns null
   * where the file system cannot do it (tmpfs refuses it). See `DirectFile` for the alignment it
   * asks. `NotFound` if it is missing and `create` is not set.
   */
  openDirect(path: string, options: DirectOpenOptions): Promise<DirectFile | null>;
}

/**
 * Position, length and memory address of every direct read and write are multiples of this many
 * bytes (the page size; block devices ask 512 or 4096).
 */
export const DIRECT_IO_ALIGN_BYTES = 4096;

/** How `openDirect()` opens a file: for reading, or for writing (and creating). */
export interface DirectOpenOptions {
  write?: boolean;
  create?: boolean;
}

/**
 * A file open for direct I/O. Each call's `position` and length are multiples of
 * `DIRECT_IO_ALIGN_BYTES`, and its bytes lie in a buffer from `alignedBuffers()` (a misaligned
 * call is a bug of the caller: `Deno.errors.InvalidData`, or the OS's `EINVAL`). Written bytes are
 * durable after an fdatasync of the file, as with any write.
 */
export interface DirectFile extends Disposable {
  /** Reads up to `into.length` bytes at `position`; fewer only at the end of the file. */
  readAt(into: Uint8Array, position: number): Promise<number>;
  /** Writes all of `bytes` at `position`. */
  writeAt(bytes: Uint8Array, position: number): Promise<void>;
  /**
   * Whether the file still has a name: false once it was removed or another file renamed over
   * it (a file kept open reads what it held, not what its path now holds). One `fstat`.
   */
  linked(): boolean;
  close(): void;
}

/**
 * `count` buffers of `bytes` each (a multiple of `DIRECT_IO_ALIGN_BYTES`) whose memory starts on
 * a page boundary, as direct I/O needs: views of one WebAssembly memory, which V8 allocates in
 * whole pages (unlike an ArrayBuffer's, whose start malloc chooses). They live as long as the
 * caller keeps one of them.
 */
export function alignedBuffers(count: number, bytes: number): Uint8Array<ArrayBuffer>[] {
  return pageViews(wasmMemory(count, bytes, false).buffer as ArrayBuffer, count, bytes);
}

/**
 * The same, in memory shared with this process's Workers (a `SharedArrayBuffer`): a view posted
 * to a Worker is not copied, and both threads see the same bytes.
 */
export function sharedAlignedBuffers(
  count: number,
  bytes: number,
): Uint8Array<SharedArrayBuffer>[] {
  const memory = wasmMemory(count, bytes, true);
  return pageViews(memory.buffer as unknown as SharedArrayBuffer, count, bytes);
}

/** A WebAssembly memory of whole pages holding `count` buffers of `bytes` (whole pages too). */
function wasmMemory(count: number, bytes: number, shared: boolean): WebAssembly.Memory {
  if (bytes % DIRECT_IO_ALIGN_BYTES !== 0 || !Number.isSafeInteger(count) || count < 1) {
    throw new RangeError(`aligned buffers are whole pages: ${count} x ${bytes} bytes`);
  }
  const pages = Math.ceil((count * bytes) / WASM_PAGE_BYTES);
  return new WebAssembly.Memory({ initial: pages, maximum: pages, shared });
}

function pageViews<B extends ArrayBufferLike>(buffer: B, count: number, bytes: number) {
  return Array.from({ length: count }, (_, i) => new Uint8Array(buffer, i * bytes, bytes));
}

/** The unit a WebAssembly memory grows by. */
const WASM_PAGE_BYTES = 64 * 1024;

/** Clock, randomness, disk and log: everything a rank takes from the world. */
export interface Env {
  readonly clock: Clock;
  readonly random: Random;
  readonly fs: FileSystem;
  readonly log: Log;
}
