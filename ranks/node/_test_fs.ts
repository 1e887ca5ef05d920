/**
 * The file systems the node's tests run on: Deno's (a temp folder) and a `MemoryFileSystem`, each
 * with a fresh folder per test, and a small (full-disk) one where the platform allows.
 *
 * @module
 */

import type { FileSystem, Log } from "../env/env.ts";
import { denoFileSystem } from "../env/deno_env.ts";
import { MemoryFileSystem } from "../env/memory_fs.ts";
import { writeAll } from "./_fs.ts";
import { canMountTmpfs, mountTmpfs } from "./_tmpfs_test_util.ts";

/** A fresh folder on a file system; disposing it removes the folder. */
export interface TestRoot extends AsyncDisposable {
  fs: FileSystem;
  dir: string;
  /** The memory file system, to crash it or inject faults (undefined on Deno's). */
  memory?: MemoryFileSystem;
}

/** A file system to run tests on. */
export interface TestFileSystem {
  /** `""` for Deno's (test names as before), `" on MemoryFileSystem"` for the memory one. */
  suffix: string;
  newRoot(): Promise<TestRoot>;
  /** A folder on a file system of `capacityBytes`, or undefined where none can be made. */
  newSmallRoot: ((capacityBytes: number) => Promise<TestRoot>) | undefined;
}

/** Deno's file system, in a temp folder (a small one on a tmpfs, as root on Linux). */
export const DENO_TEST_FS: TestFileSystem = {
  suffix: "",
  async newRoot() {
    const dir = await Deno.makeTempDir();
    return {
      fs: denoFileSystem,
      dir,
      [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
    };
  },
  newSmallRoot: await canMountTmpfs()
    ? async (capacityBytes) => {
      const disk = await mountTmpfs(capacityBytes);
      return {
        fs: denoFileSystem,
        dir: disk.dir,
        [Symbol.asyncDispose]: () => disk[Symbol.asyncDispose](),
      };
    }
    : undefined,
};

/** A `MemoryFileSystem` with `/tmp/test` made durable in it, as a temp folder would be. */
export const MEMORY_TEST_FS: TestFileSystem = {
  suffix: " on MemoryFileSystem",
  newRoot: () => newMemoryRoot({}),
  newSmallRoot: (capacityBytes) => newMemoryRoot({ capacityBytes }),
};

/** Both file systems. */
export const TEST_FILE_SYSTEMS: readonly TestFileSystem[] = [DENO_TEST_FS, MEMORY_TEST_FS];

async function newMemoryRoot(options: { capacityBytes?: number }): Promise<TestRoot> {
  const memory = new MemoryFileSystem(options);
  const dir = "/tmp/test";
  await memory.mkdir(dir, { recursive: true });
  memory.syncAll();
  return { fs: memory, dir, memory, [Symbol.asyncDispose]: () => Promise.resolve() };
}

/** Writes (or, with `append`, appends) `bytes` to the file at `path` on `fs`, creating it. */
export async function writeFileTo(
  path: string,
  bytes: Uint8Array,
  options: { fs: FileSystem; append?: boolean },
): Promise<void> {
  const mode = options.append ? { append: true } : { write: true, truncate: true };
  using file = await options.fs.open(path, { ...mode, create: true });
  await writeAll(file, bytes);
}

/** The records as text (UTF-8), to compare with what was appended. */
export function texts(records: readonly Uint8Array[]): string[] {
  const decoder = new TextDecoder();
  return records.map((record) => decoder.decode(record));
}

/** A fresh folder on a test file system with a log path in it; disposing removes the folder. */
export async function tempLogPath(testFs: TestFileSystem): Promise<TestRoot & { path: string }> {
  const root = await testFs.newRoot();
  return Object.assign(root, { path: `${root.dir}/meta.log` });
}

/** A `Log` that keeps its messages. */
export function recordingLog(): Log & { messages: string[] } {
  const messages: string[] = [];
  return { messages, error: (message) => void messages.push(message) };
}
