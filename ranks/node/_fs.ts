/**
 * File system helpers shared by the data node's stores and its data folder (private to `node/`):
 * each takes the `FileSystem` to go through.
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";
import type { FileHandle, FileSystem } from "../env/env.ts";

/** Writes every byte, looping over short writes. */
export async function writeAll(file: FileHandle, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const written = await file.write(bytes.subarray(offset));
    assert(written > 0, "write() makes progress");
    offset += written;
  }
}

/** Writes every byte without leaving the thread, looping over short writes. */
export function writeAllSync(file: FileHandle, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) {
    const written = file.writeSync(bytes.subarray(offset));
    assert(written > 0, "writeSync() makes progress");
    offset += written;
  }
}

/** Removes a file; one that is already gone is fine. */
export async function removeIfExists(fs: FileSystem, path: string): Promise<void> {
  try {
    await fs.remove(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** Makes a folder's entries (files created, renamed or removed in it) durable. */
export async function syncDirectory(fs: FileSystem, path: string): Promise<void> {
  using handle = await fs.open(path, { read: true });
  await handle.sync();
}

/** The message of an error, for wrapping it in a `DfsError`. */
export function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
