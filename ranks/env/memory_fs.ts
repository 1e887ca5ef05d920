/**
 * A file system in memory with Deno's semantics and error classes, for tests and the simulator:
 * sparse files stored in blocks, directories, handles with positions, advisory locks, a capacity
 * (writes past it fail with ENOSPC), injected faults, and crashes. Each file and directory keeps a
 * durable image: fdatasync/fsync of a file makes its bytes durable, fsync of a directory (opened
 * with `read: true`) its entries; `crash()` returns everything to its durable image. Every async
 * call settles in a microtask (no timers, no I/O), so a run replays exactly.
 *
 * @module
 */

import { posix } from "node:path";
import {
  DIRECT_IO_ALIGN_BYTES,
  type DirectFile,
  type DirectOpenOptions,
  type DirEntry,
  type FileHandle,
  type FileSystem,
  type FsStats,
  type OpenOptions,
  readAtSync,
} from "./env.ts";
import {
  DirNode,
  type FaultError,
  type FaultOp,
  FileNode,
  isUnder,
  MEMORY_FS_BLOCK_SIZE_BYTES,
  MemoryFileHandle,
  type Node,
  osError,
  Volume,
} from "./_memory_volume.ts";

export { type FaultError, type FaultOp, MEMORY_FS_BLOCK_SIZE_BYTES };

/** Capacity of a `MemoryFileSystem` unless told otherwise (1 TiB). */
export const MEMORY_FS_CAPACITY_BYTES_DEFAULT = 2 ** 40;

/**
 * A file system in memory (see the module doc). Paths are POSIX; relative ones start at `/`,
 * which always exists. Files are sparse: only the blocks written take room.
 */
export class MemoryFileSystem implements FileSystem {
  #volume: Volume;

  /** `capacityBytes` is what `statfs` reports as the total (default 1 TiB); `device` its id. */
  constructor(options: { capacityBytes?: number; device?: number } = {}) {
    const capacityBytes = options.capacityBytes ?? MEMORY_FS_CAPACITY_BYTES_DEFAULT;
    this.#volume = new Volume(capacityBytes, options.device ?? 1);
  }

  /** Bytes of the blocks the files hold (what capacity is counted against). */
  get usedBytes(): number {
    return this.#volume.usedBytes;
  }

  /**
   * Makes the next `op` on a path under `pathPrefix` (for a handle: the path it was opened with)
   * throw `error` instead of taking effect: `"EIO"` and `"ENOSPC"` throw Deno's errors for them.
   * Faults queue up; each is used once.
   */
  failNext(pathPrefix: string, op: FaultOp, error: FaultError = "EIO"): void {
    this.#volume.faults.push({ prefix: resolve(pathPrefix), op, error });
  }

  /**
   * A crash: every file and directory returns to its durable image (unsynced writes and
   * directory entries are lost), open handles die (their calls throw `BadResource`) and their
   * locks go. Injected faults stay.
   */
  crash(): void {
    const volume = this.#volume;
    volume.generation++;
    for (const table of volume.locks.values()) table.failAll();
    volume.locks.clear();
    volume.usedBytes = 0;
    const seen = new Set<Node>();
    const visit = (dir: DirNode) => {
      dir.entries = new Map(dir.durable);
      for (const node of dir.entries.values()) {
        if (seen.has(node)) {
          if (node.kind === "file") node.links++;
          continue;
        }
        seen.add(node);
        if (node.kind === "dir") {
          visit(node);
          continue;
        }
        node.restore();
        node.links = 1;
        node.opens = 0;
        node.freed = false;
        volume.usedBytes += node.blocks.size * MEMORY_FS_BLOCK_SIZE_BYTES;
      }
    };
    visit(volume.root);
  }

  /** Makes every file and directory durable as it stands (a clean shutdown). */
  syncAll(): void {
    const visit = (dir: DirNode) => {
      dir.durable = new Map(dir.entries);
      for (const node of dir.entries.values()) {
        if (node.kind === "dir") visit(node);
        else node.snapshot();
      }
    };
    visit(this.#volume.root);
  }

  open(path: string, options: OpenOptions): Promise<FileHandle> {
    return Promise.try(() => this.openSync(path, options));
  }

  openSync(path: string, options: OpenOptions): MemoryFileHandle {
    checkOpenOptions(options);
    const absolute = resolve(path);
    this.#volume.checkFault("open", absolute);
    const call = `open '${path}'`;
    const writable = options.write === true || options.append === true;
    const { dir, name, node: found } = this.#locate(absolute, call);
    let node = found;
    if (node !== undefined) {
      if (options.createNew) throw osError("EEXIST", call);
      if (node.kind === "dir" && writable) throw osError("EISDIR", call);
      if (options.truncate && node.kind === "file") node.truncate(0);
    } else {
      if (!options.create && !options.createNew) throw osError("ENOENT", call);
      node = new FileNode(this.#volume);
      node.links = 1;
      dir!.entries.set(name!, node);
    }
    return new MemoryFileHandle(this.#volume, { path: absolute, node, options });
  }

  /**
   * A handle of this file system that checks direct I/O's alignment of positions and lengths (it
   * cannot see memory addresses), so that tests catch a misaligned call a disk would refuse.
   */
  openDirect(path: string, options: DirectOpenOptions): Promise<DirectFile | null> {
    return Promise.try(() => {
      const write = options.write === true;
      const handle = this.openSync(path, { read: !write, write, create: options.create });
      const aligned = (bytes: Uint8Array, position: number) => {
        if (position % DIRECT_IO_ALIGN_BYTES !== 0 || bytes.length % DIRECT_IO_ALIGN_BYTES !== 0) {
          throw new Deno.errors.InvalidData(
            `direct I/O of ${bytes.length} bytes at ${position} is not aligned to ` +
              `${DIRECT_IO_ALIGN_BYTES} bytes`,
          );
        }
      };
      // Each call seeks and moves its bytes in one synchronous step, as pread and pwrite do: calls
      // in flight at once on one file (a chunk store shares a blob's) never move each other's
      // position.
      return {
        readAt: (into, position) =>
          Promise.try(() => {
            aligned(into, position);
            return readAtSync(handle, into, position);
          }),
        writeAt: (bytes, position) =>
          Promise.try(() => {
            aligned(bytes, position);
            handle.seekSync(position, Deno.SeekMode.Start);
            for (let done = 0; done < bytes.length;) done += handle.writeSync(bytes.subarray(done));
          }),
        linked: () => {
          try {
            return handle.links() > 0;
          } catch {
            return false; // closed
          }
        },
        close: () => handle[Symbol.dispose](),
        [Symbol.dispose]: () => handle[Symbol.dispose](),
      };
    });
  }

  readFile(path: string): Promise<Uint8Array<ArrayBuffer>> {
    return Promise.try(() => {
      const absolute = resolve(path);
      this.#volume.checkFault("read", absolute);
      const node = this.#lookup(absolute, `readfile '${path}'`);
      if (node.kind === "dir") throw osError("EISDIR", `readfile '${path}'`);
      const bytes = new Uint8Array(node.size);
      node.read(0, bytes);
      return bytes;
    });
  }

  async readTextFile(path: string): Promise<string> {
    return new TextDecoder().decode(await this.readFile(path));
  }

  statSync(path: string): { size: number; isFile: boolean; isDirectory: boolean; dev: number } {
    const absolute = resolve(path);
    this.#volume.checkFault("stat", absolute);
    const node = this.#lookup(absolute, `stat '${path}'`);
    const isFile = node.kind === "file";
    return { size: isFile ? node.size : 0, isFile, isDirectory: !isFile, dev: this.#volume.device };
  }

  mkdir(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    return Promise.try(() => {
      const absolute = resolve(path);
      this.#volume.checkFault("mkdir", absolute);
      const call = `mkdir '${path}'`;
      if (!options.recursive) {
        const { dir, name, node } = this.#locate(absolute, call);
        if (node !== undefined) throw osError("EEXIST", call);
        dir!.entries.set(name!, new DirNode());
        return;
      }
      const names = componentsOf(absolute);
      let dir = this.#volume.root;
      names.forEach((name, i) => {
        const next = dir.entries.get(name) ?? new DirNode();
        if (next.kind === "file") {
          throw osError(i === names.length - 1 ? "EEXIST" : "ENOTDIR", call);
        }
        dir.entries.set(name, next);
        dir = next;
      });
    });
  }

  async *readDir(path: string): AsyncIterable<DirEntry> {
    const absolute = resolve(path);
    this.#volume.checkFault("readDir", absolute);
    const node = this.#lookup(absolute, `readdir '${path}'`);
    if (node.kind === "file") throw osError("ENOTDIR", `readdir '${path}'`);
    for (const [name, entry] of [...node.entries]) {
      const isFile = entry.kind === "file";
      yield { name, isFile, isDirectory: !isFile, isSymlink: false };
    }
  }

  remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    return Promise.try(() => {
      const absolute = resolve(path);
      this.#volume.checkFault("remove", absolute);
      const call = `remove '${path}'`;
      if (absolute === "/") throw osError("EBUSY", call);
      const { dir, name, node } = this.#locate(absolute, call);
      if (node === undefined) throw osError("ENOENT", call);
      if (node.kind === "dir" && node.entries.size > 0 && !options.recursive) {
        throw osError("ENOTEMPTY", call);
      }
      dir!.entries.delete(name!);
      this.#unlink(node);
    });
  }

  rename(from: string, to: string): Promise<void> {
    return Promise.try(() => {
      const [source, target] = [resolve(from), resolve(to)];
      this.#volume.checkFault("rename", source, target);
      const call = `rename '${from}' -> '${to}'`;
      if (source === "/" || target === "/") throw osError("EBUSY", call);
      const { dir: sourceDir, name: sourceName, node } = this.#locate(source, call);
      if (node === undefined) throw osError("ENOENT", call);
      const { dir: targetDir, name: targetName, node: replaced } = this.#locate(target, call);
      if (source === target || replaced === node) return;
      if (node.kind === "dir" && isUnder(target, source)) throw osError("EINVAL", call);
      if (replaced?.kind === "dir") {
        if (node.kind === "file") throw osError("EISDIR", call);
        if (replaced.entries.size > 0) throw osError("ENOTEMPTY", call);
      } else if (replaced !== undefined && node.kind === "dir") {
        throw osError("ENOTDIR", call);
      }
      sourceDir!.entries.delete(sourceName!);
      targetDir!.entries.set(targetName!, node);
      if (replaced !== undefined) this.#unlink(replaced);
    });
  }

  statfs(path: string): Promise<FsStats> {
    return Promise.try(() => {
      const volume = this.#volume;
      const absolute = resolve(path);
      volume.checkFault("stat", absolute);
      this.#lookup(absolute, `statfs '${path}'`);
      const availableBytes = Math.max(0, volume.capacityBytes - volume.usedBytes);
      return { totalBytes: volume.capacityBytes, availableBytes, device: volume.device };
    });
  }

  /** The node at `absolute`. @throws NotFound, NotADirectory */
  #lookup(absolute: string, call: string): Node {
    const { node } = this.#locate(absolute, call);
    if (node === undefined) throw osError("ENOENT", call);
    return node;
  }

  /**
   * The directory holding `absolute`, its name there and its node if it exists (for `/`: the
   * root, with no directory or name). @throws NotFound, NotADirectory for the directories above.
   */
  #locate(absolute: string, call: string): { dir?: DirNode; name?: string; node?: Node } {
    const names = componentsOf(absolute);
    if (names.length === 0) return { node: this.#volume.root };
    let dir = this.#volume.root;
    for (const name of names.slice(0, -1)) {
      const next = dir.entries.get(name);
      if (next === undefined) throw osError("ENOENT", call);
      if (next.kind === "file") throw osError("ENOTDIR", call);
      dir = next;
    }
    const name = names[names.length - 1];
    return { dir, name, node: dir.entries.get(name) };
  }

  /** Drops one directory entry's hold on `node` (and, for a directory, on all below it). */
  #unlink(node: Node): void {
    if (node.kind === "dir") {
      for (const child of node.entries.values()) this.#unlink(child);
      return;
    }
    node.links--;
    this.#volume.releaseIfUnused(node);
  }
}

/** Deno's checks of open options, with its messages. */
function checkOpenOptions(options: OpenOptions): void {
  if (!Object.values(options).includes(true)) {
    throw new Error("'options' requires at least one option to be true");
  }
  if (options.truncate && !options.write) {
    throw new Error("'truncate' option requires 'write' to be true");
  }
  if ((options.create || options.createNew) && !(options.write || options.append)) {
    throw new Error("'create' or 'createNew' options require 'write' or 'append' to be true");
  }
}

function resolve(path: string): string {
  return posix.resolve("/", path);
}

function componentsOf(absolute: string): string[] {
  return absolute.split("/").filter((name) => name !== "");
}
