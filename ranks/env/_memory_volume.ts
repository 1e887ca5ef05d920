/**
 * The volume behind a `MemoryFileSystem` (private to `env/`): its files, stored sparse in blocks
 * copied on write, with their durable images; its directories; open handles with positions; and
 * advisory locks. Errors are Deno's classes with Deno's messages and codes.
 *
 * @module
 */

import type { FileHandle, OpenOptions } from "./env.ts";

/** Bytes of one block: files are stored, copied on write and counted against capacity in blocks. */
export const MEMORY_FS_BLOCK_SIZE_BYTES = 4096;

/** The calls a fault can be injected into (`sync` covers fsync and fdatasync, `stat` statfs too). */
export type FaultOp =
  | "open"
  | "read"
  | "write"
  | "sync"
  | "truncate"
  | "rename"
  | "remove"
  | "mkdir"
  | "readDir"
  | "stat";

/** What an injected fault throws: an I/O error, a full disk, or a given error. */
export type FaultError = "EIO" | "ENOSPC" | Error;

const BLOCK = MEMORY_FS_BLOCK_SIZE_BYTES;

/** Deno's error class, message and errno for each OS error code the file system raises. */
const OS_ERRORS = {
  ENOENT: [Deno.errors.NotFound, "No such file or directory", 2],
  EEXIST: [Deno.errors.AlreadyExists, "File exists", 17],
  EISDIR: [Deno.errors.IsADirectory, "Is a directory", 21],
  ENOTDIR: [Deno.errors.NotADirectory, "Not a directory", 20],
  ENOTEMPTY: [Error, "Directory not empty", 39],
  ENOSPC: [Error, "No space left on device", 28],
  EIO: [Error, "Input/output error", 5],
  EBADF: [Error, "Bad file descriptor", 9],
  EBUSY: [Error, "Device or resource busy", 16],
  EINVAL: [TypeError, "Invalid argument", 22],
} as const;

type OsErrorCode = keyof typeof OS_ERRORS;

/** An error as Deno raises it: `Is a directory (os error 21): open '/x'`, with `code`. */
export function osError(code: OsErrorCode, call?: string): Error {
  const [ErrorClass, text, errno] = OS_ERRORS[code];
  const message = `${text} (os error ${errno})${call === undefined ? "" : `: ${call}`}`;
  return Object.assign(new ErrorClass(message), { code });
}

function badResource(): Error {
  return new Deno.errors.BadResource("Bad resource ID");
}

/** A file: its blocks (holes read as zeros), its size, and its durable image. */
export class FileNode {
  readonly kind = "file";
  readonly volume: Volume;
  blocks = new Map<number, Uint8Array>();
  size = 0;
  /** Blocks written since the last snapshot: the others are shared with the durable image. */
  owned = new Set<number>();
  durable = { blocks: new Map<number, Uint8Array>(), size: 0 };
  /** Directory entries naming it, and handles open on it: at 0 and 0 its blocks are freed. */
  links = 0;
  opens = 0;
  freed = false;

  constructor(volume: Volume) {
    this.volume = volume;
  }

  /** Copies bytes from `at` into `into`; returns how many (0 at or past the end). */
  read(at: number, into: Uint8Array): number {
    const count = Math.max(0, Math.min(into.length, this.size - at));
    for (let done = 0; done < count;) {
      const position = at + done;
      const start = position % BLOCK;
      const length = Math.min(BLOCK - start, count - done);
      const block = this.blocks.get(Math.floor(position / BLOCK));
      if (block) into.set(block.subarray(start, start + length), done);
      else into.fill(0, done, done + length);
      done += length;
    }
    return count;
  }

  /** Writes `bytes` at `at`; returns how many fit in the volume (all, or fewer when it is full). */
  write(at: number, bytes: Uint8Array): number {
    let done = 0;
    while (done < bytes.length) {
      const position = at + done;
      const start = position % BLOCK;
      const length = Math.min(BLOCK - start, bytes.length - done);
      const block = this.#own(Math.floor(position / BLOCK));
      if (block === undefined) break;
      block.set(bytes.subarray(done, done + length), start);
      done += length;
    }
    this.size = Math.max(this.size, at + done);
    return done;
  }

  /** Cuts the file to `length` bytes or extends it with a hole. */
  truncate(length: number): void {
    if (length < this.size) {
      const firstGone = Math.ceil(length / BLOCK);
      for (const index of this.blocks.keys()) {
        if (index < firstGone) continue;
        this.blocks.delete(index);
        this.owned.delete(index);
        this.volume.usedBytes -= BLOCK;
      }
      const tail = length % BLOCK;
      if (tail > 0 && this.blocks.has(Math.floor(length / BLOCK))) {
        this.#own(Math.floor(length / BLOCK))!.fill(0, tail);
      }
    }
    this.size = length;
  }

  /** Makes the bytes and size durable (fsync, fdatasync). */
  snapshot(): void {
    this.durable = { blocks: new Map(this.blocks), size: this.size };
    this.owned.clear();
  }

  /** Returns to the durable image (after a crash). */
  restore(): void {
    this.blocks = new Map(this.durable.blocks);
    this.size = this.durable.size;
    this.owned.clear();
  }

  /** The block at `index`, writable by this file alone; allocated if missing, unless no room. */
  #own(index: number): Uint8Array | undefined {
    const volume = this.volume;
    let block = this.blocks.get(index);
    if (block !== undefined && this.owned.has(index)) return block;
    if (block === undefined) {
      if (volume.usedBytes + BLOCK > volume.capacityBytes) return undefined;
      volume.usedBytes += BLOCK;
      block = new Uint8Array(BLOCK);
    } else {
      block = block.slice(); // shared with the durable image: copy on write
    }
    this.blocks.set(index, block);
    this.owned.add(index);
    return block;
  }
}

/** A directory: its entries, and those its last fsync made durable. */
export class DirNode {
  readonly kind = "dir";
  entries = new Map<string, Node>();
  durable = new Map<string, Node>();
}

export type Node = FileNode | DirNode;

/** Exclusive and shared advisory locks on one file, granted in request order. */
export class LockTable {
  #holders = new Map<object, boolean>();
  #waiters: { handle: object; exclusive: boolean; granted: PromiseWithResolvers<void> }[] = [];

  request(handle: object, exclusive: boolean): Promise<void> {
    const granted = Promise.withResolvers<void>();
    this.#waiters.push({ handle, exclusive, granted });
    this.#grant();
    return granted.promise;
  }

  /** Drops the handle's lock and fails its waiting requests (its handle closed). */
  release(handle: object): void {
    this.#holders.delete(handle);
    const gone = this.#waiters.filter((waiter) => waiter.handle === handle);
    this.#waiters = this.#waiters.filter((waiter) => waiter.handle !== handle);
    for (const waiter of gone) waiter.granted.reject(badResource());
    this.#grant();
  }

  /** Fails every waiting request (a crash). */
  failAll(): void {
    for (const waiter of this.#waiters.splice(0)) waiter.granted.reject(badResource());
    this.#holders.clear();
  }

  #grant(): void {
    while (this.#waiters.length > 0) {
      const { handle, exclusive, granted } = this.#waiters[0];
      const others = [...this.#holders].filter(([holder]) => holder !== handle);
      if (exclusive ? others.length > 0 : others.some(([, held]) => held)) return;
      this.#holders.set(handle, exclusive);
      this.#waiters.shift();
      granted.resolve();
    }
  }
}

/** The state a `MemoryFileSystem` shares with its handles. */
export class Volume {
  root = new DirNode();
  /** Bumped by a crash: handles opened before it are dead. */
  generation = 0;
  usedBytes = 0;
  readonly capacityBytes: number;
  readonly device: number;
  faults: { prefix: string; op: FaultOp; error: FaultError }[] = [];
  locks = new Map<Node, LockTable>();

  constructor(capacityBytes: number, device: number) {
    this.capacityBytes = capacityBytes;
    this.device = device;
  }

  /** Throws the first fault injected for `op` under one of `paths`, once. */
  checkFault(op: FaultOp, ...paths: string[]): void {
    const index = this.faults.findIndex((fault) =>
      fault.op === op && paths.some((path) => isUnder(path, fault.prefix))
    );
    if (index < 0) return;
    const [{ error }] = this.faults.splice(index, 1);
    throw typeof error === "string" ? osError(error) : error;
  }

  /** Frees a file's blocks once no entry names it and no handle holds it open. */
  releaseIfUnused(node: Node): void {
    if (node.kind !== "file" || node.links > 0 || node.opens > 0 || node.freed) return;
    node.freed = true;
    this.usedBytes -= node.blocks.size * BLOCK;
  }
}

/** An open file or directory of a `MemoryFileSystem`. */
export class MemoryFileHandle implements FileHandle {
  #volume: Volume;
  #generation: number;
  #path: string;
  #node: Node;
  #readable: boolean;
  #writable: boolean;
  #append: boolean;
  #position = 0;
  #closed = false;

  constructor(volume: Volume, opened: { path: string; node: Node; options: OpenOptions }) {
    const { path, node, options } = opened;
    this.#volume = volume;
    this.#generation = volume.generation;
    this.#path = path;
    this.#node = node;
    this.#readable = options.read === true;
    this.#append = options.append === true;
    this.#writable = options.write === true || this.#append;
    if (node.kind === "file") node.opens++;
  }

  read(into: Uint8Array): Promise<number | null> {
    return Promise.try(() => this.readSync(into));
  }

  readSync(into: Uint8Array): number | null {
    const file = this.#file("read", this.#readable);
    if (into.length === 0) return 0;
    const count = file.read(this.#position, into);
    this.#position += count;
    return count === 0 ? null : count;
  }

  write(bytes: Uint8Array): Promise<number> {
    return Promise.try(() => this.writeSync(bytes));
  }

  writeSync(bytes: Uint8Array): number {
    const file = this.#file("write", this.#writable);
    const at = this.#append ? file.size : this.#position;
    const count = file.write(at, bytes);
    if (count === 0 && bytes.length > 0) throw osError("ENOSPC");
    this.#position = at + count;
    return count;
  }

  seek(offset: number, whence: Deno.SeekMode): Promise<number> {
    return Promise.try(() => this.seekSync(offset, whence));
  }

  seekSync(offset: number, whence: Deno.SeekMode): number {
    this.#alive();
    const size = this.#node.kind === "file" ? this.#node.size : 0;
    const base = [0, this.#position, size][whence];
    if (base === undefined || base + offset < 0) throw osError("EINVAL");
    this.#position = base + offset;
    return this.#position;
  }

  truncate(length = 0): Promise<void> {
    return Promise.try(() => {
      const file = this.#file("truncate", this.#writable, "EINVAL");
      if (length < 0) throw osError("EINVAL");
      file.truncate(length);
    });
  }

  sync(): Promise<void> {
    return Promise.try(() => {
      this.#alive();
      this.#volume.checkFault("sync", this.#path);
      if (this.#node.kind === "file") this.#node.snapshot();
      else this.#node.durable = new Map(this.#node.entries);
    });
  }

  syncData(): Promise<void> {
    return this.sync();
  }

  /**
   * Folder entries naming the file (0 once removed; a folder has one), with no fault injected
   * here: `DirectFile.linked()` asks before every kept read, and must not take a fault meant for
   * a stat.
   */
  links(): number {
    this.#alive();
    return this.#node.kind === "file" ? this.#node.links : 1;
  }

  /** The file's size and its folder entries (0 once removed); a folder has one. */
  statSync(): { size: number; nlink: number } {
    this.#alive();
    this.#volume.checkFault("stat", this.#path);
    const node = this.#node;
    return node.kind === "file" ? { size: node.size, nlink: node.links } : { size: 0, nlink: 1 };
  }

  lock(exclusive = false): Promise<void> {
    return Promise.try(() => {
      this.#alive();
      const locks = this.#volume.locks;
      if (!locks.has(this.#node)) locks.set(this.#node, new LockTable());
      return locks.get(this.#node)!.request(this, exclusive);
    });
  }

  /** Closes the handle and releases its lock. @throws BadResource if it is closed already. */
  close(): void {
    if (this.#generation !== this.#volume.generation) return; // the crash closed it
    if (this.#closed) throw badResource();
    this.#closed = true;
    this.#volume.locks.get(this.#node)?.release(this);
    if (this.#node.kind === "file") {
      this.#node.opens--;
      this.#volume.releaseIfUnused(this.#node);
    }
  }

  [Symbol.dispose](): void {
    if (!this.#closed) this.close();
  }

  /** @throws BadResource once closed, or once a crash killed it. */
  #alive(): void {
    if (this.#closed || this.#generation !== this.#volume.generation) throw badResource();
  }

  /** The file, for `op`: checks the handle is alive and `allowed`, and any injected fault. */
  #file(op: FaultOp, allowed: boolean, refusal: OsErrorCode = "EBADF"): FileNode {
    this.#alive();
    if (this.#node.kind === "dir") throw osError(op === "read" ? "EISDIR" : refusal);
    if (!allowed) throw osError(refusal);
    this.#volume.checkFault(op, this.#path);
    return this.#node;
  }
}

/** Whether `path` is `prefix` or below it (both absolute). */
export function isUnder(path: string, prefix: string): boolean {
  return prefix === "/" || path === prefix || path.startsWith(`${prefix}/`);
}
