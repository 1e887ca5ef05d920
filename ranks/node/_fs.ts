/**
 * File system helpers shared by the data node's stores (private to `ranks/`).
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";

/** Writes every byte, looping over short writes. */
export async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const written = await file.write(bytes.subarray(offset));
    assert(written > 0, "write() makes progress");
    offset += written;
  }
}

/** Removes a file; one that is already gone is fine. */
export async function removeIfExists(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** Makes a folder's entries (files created, renamed or removed in it) durable. */
export async function syncDirectory(path: string): Promise<void> {
  using handle = await Deno.open(path, { read: true });
  await handle.sync();
}

/** The message of an error, for wrapping it in a `DfsError`. */
export function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
