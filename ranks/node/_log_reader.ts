/**
 * Reads of a log file by offset (private to `node/`): for `RecordLog.read()`, the bytes of small
 * files kept in the log, read back with synchronous calls through one handle kept open, larger
 * reads through a handle of their own; and whole records, for a data node's table of manifests
 * (`RecordReader`).
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { DfsError } from "../../protocol/errors.ts";
import { type FileHandle, type FileSystem, readAtSync } from "../env/env.ts";
import { reasonOf } from "./_fs.ts";
import { RECORD_HEADER_SIZE_BYTES, RECORD_SIZE_BYTES_MAX } from "./record_frame.ts";

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
        filled = readAtSync(file, bytes, offset);
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

  /**
   * Opens the file now, if it is not open: reads then go to that file even once another is renamed
   * over its path, until `close()` (or a read fails).
   */
  pin(): void {
    try {
      this.#reader ??= this.#fs.openSync(this.#path, { read: true });
    } catch { /* the next read opens it, and says why it cannot */ }
  }

  /** Closes the kept handle: the next read opens the file at its path again (a new file there). */
  close(): void {
    try {
      this.#reader?.close();
    } catch { /* already closed */ }
    this.#reader = null;
  }
}

/**
 * Bytes `RecordReader` reads at once when reads go on through the log (a summary, a scan, a
 * compaction walking a table built by replay): one read per window. A read at another place
 * reads `RECORD_READ_BYTES_MIN` (a release or an overwrite on the put path: ~18 µs a read from
 * the page cache with the whole window, a few with this).
 */
export const RECORD_READ_AHEAD_BYTES = 256 * 1024;
/** Bytes `RecordReader` reads at least: a small record and its header at once. */
export const RECORD_READ_BYTES_MIN = 4 * 1024;

/**
 * Reads whole records of a log file back by the offset of their body, synchronously, through one
 * handle kept open (`pin()` opens it now: it then reads that file even once another is renamed
 * over its path, until `close()`). Each record is checked against its header's length and CRC32.
 * What it read ahead is kept until the next read outside it or `forget()`: call that before using
 * an offset of a record appended since, whose bytes the window may hold as they were before.
 */
export class RecordReader {
  #path: string;
  #fs: FileSystem;
  #file: FileHandle | null = null;
  #window = new Uint8Array(0);
  #windowAt = 0;
  #windowBytes = 0;
  /** Where the last read from the file started: a read at most a window past it reads ahead. */
  #lastReadAt = -Infinity;

  constructor(path: string, fs: FileSystem) {
    this.#path = path;
    this.#fs = fs;
  }

  /**
   * The body of the record whose body starts at `at`: a view that holds until the next call.
   *
   * @throws {DfsError} CORRUPTED if no intact record is there; UNAVAILABLE if the file cannot be
   *   read.
   */
  readSync(at: number): Uint8Array {
    const header = this.#bytes(at - RECORD_HEADER_SIZE_BYTES, RECORD_HEADER_SIZE_BYTES);
    const view = new DataView(header.buffer, header.byteOffset, RECORD_HEADER_SIZE_BYTES);
    const [length, sum] = [view.getUint32(0), view.getUint32(4)];
    if (length === 0 || length > RECORD_SIZE_BYTES_MAX) throw this.#damaged(at, "its length");
    const body = this.#bytes(at, length);
    if (crc32(body) !== sum) throw this.#damaged(at, "its CRC32");
    return body;
  }

  /** Opens the file now, if it is not open. */
  pin(): void {
    try {
      this.#file ??= this.#fs.openSync(this.#path, { read: true });
    } catch (error) {
      throw this.#unavailable(error);
    }
  }

  /** Drops what was read ahead. */
  forget(): void {
    this.#windowBytes = 0;
  }

  /** Closes the kept handle: the next read opens the file at its path again. */
  close(): void {
    try {
      this.#file?.close();
    } catch { /* already closed */ }
    this.#file = null;
    this.forget();
  }

  #bytes(at: number, size: number): Uint8Array {
    const end = this.#windowAt + this.#windowBytes;
    if (at >= this.#windowAt && at + size <= end) {
      return this.#window.subarray(at - this.#windowAt, at - this.#windowAt + size);
    }
    const onward = at >= this.#lastReadAt && at - this.#lastReadAt <= RECORD_READ_AHEAD_BYTES;
    const want = Math.max(size, onward ? RECORD_READ_AHEAD_BYTES : RECORD_READ_BYTES_MIN);
    if (this.#window.length < want) this.#window = new Uint8Array(want);
    this.forget();
    this.#lastReadAt = at;
    let filled = 0;
    try {
      this.pin();
      filled = readAtSync(this.#file!, this.#window.subarray(0, want), at);
    } catch (error) {
      this.close();
      throw this.#unavailable(error);
    }
    if (filled < size) throw this.#damaged(at, "the end of the file");
    [this.#windowAt, this.#windowBytes] = [at, filled];
    return this.#window.subarray(0, size);
  }

  #damaged(at: number, what: string): DfsError {
    this.forget();
    return new DfsError(
      "CORRUPTED",
      `No intact record at byte ${at} of log "${this.#path}": ${what} does not match`,
    );
  }

  #unavailable(error: unknown): DfsError {
    if (error instanceof DfsError) return error;
    return new DfsError("UNAVAILABLE", `Cannot read log "${this.#path}": ${reasonOf(error)}`, {
      cause: error,
    });
  }
}
