/**
 * A rewrite of a log file beside it while appends go on into it (private to `node/`, for
 * `RecordLog.rewrite()`): the records given are written to `path + ".tmp"`, then what was
 * appended to the log meanwhile (its tail, past where the rewrite started) is copied after them,
 * a round at a time while appends go on, and its last piece with appends paused, just before the
 * new file is fdatasynced and renamed over the log. The tail keeps its order and its bytes: a
 * record that was at `offset` in the old file is at `offset + shift` in the new one.
 *
 * @module
 */

import { assert, DfsError } from "../../protocol/errors.ts";
import type { FileHandle, FileSystem } from "../env/env.ts";
import { removeIfExists, writeAll } from "./_fs.ts";
import { type Records, rewriteError, writeLogFile, writeZeros } from "./_log_file.ts";

/**
 * Tail bytes under which the rest is copied with appends paused: a copy of 1 MiB from the page
 * cache and its fdatasync take a few milliseconds. Above it, the tail is copied while appends go
 * on, and a round starts again from where the last one ended.
 */
export const REWRITE_TAIL_PAUSE_BYTES = 1024 * 1024;

/**
 * Rounds of copying the tail while appends go on, at most: appends faster than a copy (they
 * fdatasync a batch at a time, a copy does not) would make it go on for ever.
 */
export const REWRITE_TAIL_ROUNDS_MAX = 16;

/** Bytes read and written at once while copying the tail (one buffer per rewrite). */
export const REWRITE_COPY_BYTES = 1024 * 1024;

/** Where a rewrite put what the log held: see `RecordLog.rewrite()`. */
export interface LogSwap {
  /** The file offset of each rewritten record's body, in the new file. */
  offsets: number[];
  /** Records that were at or past this offset in the old file (appended meanwhile)... */
  tailFrom: number;
  /** ...are this many bytes further on in the new one (less, if negative). */
  shift: number;
}

/** The new file, once it is the log. */
export interface SwappedFile {
  file: FileHandle;
  /** Where its records end. */
  sizeBytes: number;
  /** Where its durable zeros end (its records, if none). */
  zeroedBytes: number;
  swap: LogSwap;
}

/** One rewrite of the log at `path`, started when its records ended at `tailFrom`. */
export class LogRewrite {
  #path: string;
  #fs: FileSystem;
  #tailFrom: number;
  #zeroBytes: number;
  #file: FileHandle | undefined;
  /** The old file, read through a handle of its own (it stays readable once renamed over). */
  #old: FileHandle | undefined;
  #offsets: number[] = [];
  /** Where the rewritten records end in the new file: the tail follows. */
  #recordsEnd = 0;
  /** The old file's tail is copied up to here. */
  #copied: number;
  /** Where the zeros written after the tail end in the new file (durable once `finish()`ed). */
  #zeroedBytes = 0;
  #buffer: Uint8Array | undefined;

  /**
   * `tailFrom`: where the log's records end now (every append before is in `records`);
   * `zeroBytes`: zeros to keep ahead of the new file's records.
   */
  constructor(path: string, options: { fs: FileSystem; tailFrom: number; zeroBytes: number }) {
    this.#path = path;
    this.#fs = options.fs;
    this.#tailFrom = options.tailFrom;
    this.#copied = options.tailFrom;
    this.#zeroBytes = options.zeroBytes;
  }

  /**
   * Writes `records` to the new file (taken one by one, if an async iterable, as their turn
   * comes), then copies the tail, up to `durableEnd()` (where the log's durable records end
   * then), in rounds while it is over `REWRITE_TAIL_PAUSE_BYTES`, then writes the zeros and
   * fdatasyncs it all. Call `finish()` next, with appends paused; or `abort()`.
   *
   * @throws {DfsError} TOO_LARGE for a record over `RECORD_SIZE_BYTES_MAX`; UNAVAILABLE if writing
   * or reading fails.
   */
  async build(records: Records, durableEnd: () => number): Promise<void> {
    try {
      const written = await writeLogFile(`${this.#path}.tmp`, records, {
        fs: this.#fs,
        batchBytes: REWRITE_COPY_BYTES,
      });
      this.#file = written.file;
      this.#offsets = written.offsets;
      this.#recordsEnd = written.sizeBytes;
      for (let round = 0; round < REWRITE_TAIL_ROUNDS_MAX; round++) {
        const end = durableEnd();
        if (end - this.#copied <= REWRITE_TAIL_PAUSE_BYTES) break;
        await this.#copyTail(end);
      }
      const end = this.#at(this.#copied);
      try {
        await writeZeros(this.#file, this.#zeroBytes);
        this.#zeroedBytes = end + this.#zeroBytes;
      } catch {
        await this.#file.truncate(end); // the log works without them
        this.#zeroedBytes = end;
      }
      await this.#file.syncData();
    } catch (error) {
      await this.abort();
      throw error instanceof DfsError ? error : rewriteError(error);
    }
  }

  /**
   * Copies the rest of the tail, up to `durableEnd` (appends are paused: nothing is appended to
   * the old file until this settles), fdatasyncs the new file and renames it over the log. Once
   * this resolves, the new file is the log; if it rejects, the old one still is.
   *
   * @throws {DfsError} UNAVAILABLE if copying, syncing or renaming fails.
   */
  async finish(durableEnd: number): Promise<SwappedFile> {
    assert(this.#file !== undefined, "a rewrite is built before it is finished");
    const file = this.#file;
    try {
      await this.#copyTail(durableEnd);
      await file.syncData();
      await this.#fs.rename(`${this.#path}.tmp`, this.#path);
    } catch (error) {
      await this.abort();
      throw error instanceof DfsError ? error : rewriteError(error);
    }
    this.#file = undefined;
    this.#closeOld();
    const sizeBytes = this.#at(durableEnd);
    return {
      file,
      sizeBytes,
      zeroedBytes: Math.max(sizeBytes, this.#zeroedBytes),
      swap: {
        offsets: this.#offsets,
        tailFrom: this.#tailFrom,
        shift: this.#recordsEnd - this.#tailFrom,
      },
    };
  }

  /** Closes the new file and removes it; never throws. */
  async abort(): Promise<void> {
    try {
      this.#file?.close();
    } catch { /* closed */ }
    this.#file = undefined;
    this.#closeOld();
    await removeIfExists(this.#fs, `${this.#path}.tmp`).catch(() => {});
  }

  /** Where byte `offset` of the old file's tail goes in the new file. */
  #at(offset: number): number {
    return this.#recordsEnd + offset - this.#tailFrom;
  }

  /**
   * Copies the old file's bytes from where the copy stands up to `end` to the new file (the old
   * one is opened for it the first time: by its path, so before the rename).
   */
  async #copyTail(end: number): Promise<void> {
    if (end <= this.#copied) return;
    const old = this.#old ??= await this.#fs.open(this.#path, { read: true });
    const file = this.#file!;
    this.#buffer ??= new Uint8Array(REWRITE_COPY_BYTES);
    await old.seek(this.#copied, Deno.SeekMode.Start);
    await file.seek(this.#at(this.#copied), Deno.SeekMode.Start);
    while (this.#copied < end) {
      const want = Math.min(this.#buffer.length, end - this.#copied);
      const read = await old.read(this.#buffer.subarray(0, want));
      if (read === null) throw new Error(`the log ends at byte ${this.#copied}, before ${end}`);
      await writeAll(file, this.#buffer.subarray(0, read));
      this.#copied += read;
    }
  }

  #closeOld(): void {
    try {
      this.#old?.close();
    } catch { /* closed */ }
    this.#old = undefined;
  }
}
