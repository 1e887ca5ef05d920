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

/**
 * Runs `sync` so that concurrent callers share it: a call while no sync runs starts one; a call
 * while one runs waits for the next one, which every such caller shares.
 */
export class GroupSync {
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
