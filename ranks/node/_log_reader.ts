/**
 * Reads of a log file by offset, for `RecordLog.read()` (private to `node/`): the bytes of small
 * files kept in the log, read back with synchronous calls through one handle kept open, larger
 * reads through a handle of their own.
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";
import type { FileHandle, FileSystem } from "../env/env.ts";
import { reasonOf } from "./_fs.ts";

/**
 * Reads of the log up to this size (small files kept in it) use synchronous file calls: from the
 * page cache they take microseconds, and each async call hops to a thread pool and back, four
 * times per read.
 */
export const SYNC_READ_BYTES_MAX = 64 * 1024;

/** Reads the log file at `path` by offset. */
export class LogReader {
  #path: string;
  #fs: FileSystem;
  #reader: FileHandle | null = null;

  constructor(path: string, fs: FileSystem) {
    this.#path = path;
    this.#fs = fs;
  }

  /**
   * Reads `size` bytes at `offset` of the file.
   *
   * @throws {DfsError} UNAVAILABLE if the file cannot be read; CORRUPTED if it ends first.
   */
  async read(offset: number, size: number): Promise<Uint8Array<ArrayBuffer>> {
    const bytes = new Uint8Array(size);
    try {
      let filled = 0;
      if (size <= SYNC_READ_BYTES_MAX) {
        // Synchronous, so no other read moves the shared handle's position meanwhile.
        const file = this.#reader ??= this.#fs.openSync(this.#path, { read: true });
        file.seekSync(offset, Deno.SeekMode.Start);
        while (filled < size) {
          const read = file.readSync(bytes.subarray(filled));
          if (read === null) break;
          filled += read;
        }
      } else {
        using file = await this.#fs.open(this.#path, { read: true });
        await file.seek(offset, Deno.SeekMode.Start);
        while (filled < size) {
          const read = await file.read(bytes.subarray(filled));
          if (read === null) break;
          filled += read;
        }
      }
      if (filled < size) {
        throw new DfsError("CORRUPTED", `Log "${this.#path}" ends before byte ${offset + size}`);
      }
    } catch (error) {
      this.close();
      if (error instanceof DfsError) throw error;
      throw new DfsError("UNAVAILABLE", `Cannot read log "${this.#path}": ${reasonOf(error)}`, {
        cause: error,
      });
    }
    return bytes;
  }

  /** Closes the kept handle: the next read opens the file at its path again (a new file there). */
  close(): void {
    try {
      this.#reader?.close();
    } catch { /* already closed */ }
    this.#reader = null;
  }
}
