/**
 * Small files written so that a crash leaves either the old content or the new, never a mix:
 * written beside, synced, renamed into place, the folder synced.
 *
 * @module
 */

import { dirname } from "node:path";
import type { FileSystem } from "./env.ts";

/** Replaces the file at `path` with `bytes`, durably and atomically. */
export async function writeFileDurably(
  fs: FileSystem,
  path: string,
  bytes: Uint8Array,
): Promise<void> {
  const tmp = `${path}.tmp`;
  {
    using file = await fs.open(tmp, { write: true, create: true, truncate: true });
    let offset = 0;
    while (offset < bytes.length) offset += await file.write(bytes.subarray(offset));
    await file.sync();
  }
  await fs.rename(tmp, path);
  using folder = await fs.open(dirname(path), { read: true });
  await folder.sync();
}

/** Reads a small JSON file; undefined if it does not exist. */
export async function readJsonFile(fs: FileSystem, path: string): Promise<unknown> {
  let text: string;
  try {
    text = await fs.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  return JSON.parse(text);
}
