/**
 * The log file under `RecordLog` (private to `node/`): the zero space it keeps written and
 * fdatasynced ahead of its records (`ZeroSpace`), so that a group commit overwrites allocated
 * space instead of growing the file (which costs an inode write per fdatasync); and writing a
 * whole log file for `RecordLog.rewrite()`, with the errors a rewrite raises.
 *
 * @module
 */

import { concatBytes } from "../../protocol/bytes.ts";
import { assert, DfsError } from "../../protocol/errors.ts";
import type { FileHandle, FileSystem, Log } from "../env/env.ts";
import { reasonOf, removeIfExists, writeAll } from "./_fs.ts";
import { frameRecord, RECORD_HEADER_SIZE_BYTES, RECORD_SIZE_BYTES_MAX } from "./record_frame.ts";

/**
 * Zero space a log keeps written and fdatasynced ahead of its records at most: an extension
 * brings it back up to this. A write + fdatasync of 12.9 KB that grows the file took 243-358 µs
 * on this machine's ext4, one over written zeros 144-193 µs (it writes no inode); each extension
 * grows the file a few times instead of every batch.
 */
export const LOG_PREALLOCATE_BYTES = 4 * 1024 * 1024;

/**
 * When the zero space ahead of a log's records falls under this, an extension starts in the
 * background. Appends go on meanwhile in what is left; only a batch that does not fit in it waits
 * for the extension (at most `LOG_PREALLOCATE_BYTES` of zeros written and fdatasynced).
 */
export const LOG_PREALLOCATE_MARGIN_BYTES = 2 * 1024 * 1024;

/**
 * Bytes of zeros per write and fdatasync while extending (and the size of the one zero buffer).
 * An fdatasync on ext4 writes every dirty page of the file: a commit running while an extension
 * writes flushes at most this many zeros with its records.
 */
export const PREALLOCATE_WRITE_BYTES = 256 * 1024;

/** How much zero space a log keeps ahead of its records; `bytes: 0` keeps none. */
export interface Preallocation {
  /** Zero space an extension brings it back up to (default `LOG_PREALLOCATE_BYTES`). */
  bytes: number;
  /** An extension starts under this (default `LOG_PREALLOCATE_MARGIN_BYTES`). */
  marginBytes: number;
}

/** The default: `LOG_PREALLOCATE_BYTES`, extended under `LOG_PREALLOCATE_MARGIN_BYTES`. */
export const DEFAULT_PREALLOCATION: Preallocation = {
  bytes: LOG_PREALLOCATE_BYTES,
  marginBytes: LOG_PREALLOCATE_MARGIN_BYTES,
};

/**
 * The zero space of one log file: up to `zeroedBytes` the file holds its records, then zeros,
 * all durable. Records are placed only there (or, when a batch does not fit, the file grows as a
 * plain append would); a replay takes zeros after the last record for the clean end.
 *
 * An extension writes zeros past `zeroedBytes` through a handle of its own, a piece at a time,
 * and moves `zeroedBytes` past each piece once it is fdatasynced: so a record never lands on zeros
 * a crash could undo, and zeros a crash leaves half-written are just more zero tail. One
 * extension runs at a time; a failed one (a full disk) is cut back and not retried before the
 * records have grown by the margin.
 */
export class ZeroSpace {
  #path: string;
  #fs: FileSystem;
  #log: Log;
  #preallocation: Preallocation;
  #zeroedBytes: number;
  /** The largest size the file may have: an extension running may have written zeros up to it. */
  #ceilingBytes: number;
  #extending: Promise<void> | undefined;
  /** After a failed extension: no new one until the records reach this. */
  #retryAtBytes = 0;

  /** `zeroedBytes`: the file's durable size, records then zeros (no extension runs on it). */
  constructor(
    path: string,
    options: { fs: FileSystem; log: Log; preallocation: Preallocation; zeroedBytes: number },
  ) {
    this.#path = path;
    this.#fs = options.fs;
    this.#log = options.log;
    this.#preallocation = options.preallocation;
    this.#zeroedBytes = options.zeroedBytes;
    this.#ceilingBytes = options.zeroedBytes;
  }

  /** The end of the durable zeros (or records): records may be placed below it. */
  get zeroedBytes(): number {
    return this.#zeroedBytes;
  }

  /** Resolves once no extension runs (never rejects). */
  async settled(): Promise<void> {
    while (this.#extending) await this.#extending;
  }

  /**
   * Starts an extension in the background, up to `recordsEnd + bytes`, if the zero space ahead
   * of `recordsEnd` (where the records end) is under the margin, none runs, and no failed one
   * asks to wait. The caller writes nothing past `zeroedBytes` until `settled()`.
   */
  extendIfLow(recordsEnd: number): void {
    const { bytes, marginBytes } = this.#preallocation;
    if (bytes === 0 || this.#extending || recordsEnd < this.#retryAtBytes) return;
    if (this.#zeroedBytes - recordsEnd >= marginBytes) return;
    const to = recordsEnd + bytes;
    this.#ceilingBytes = Math.max(this.#ceilingBytes, to);
    this.#extending = this.#extend(this.#zeroedBytes, to, recordsEnd).finally(() => {
      this.#extending = undefined;
    });
  }

  /** Records were written up to `end`, past the zero space (no extension ran): the file grew. */
  grewTo(end: number): void {
    assert(!this.#extending && end > this.#zeroedBytes, "a batch grows the file alone");
    this.#zeroedBytes = end;
    this.#ceilingBytes = Math.max(this.#ceilingBytes, end);
  }

  /** The file was cut to `end` (no extension runs): nothing past it is left. */
  cutTo(end: number): void {
    assert(!this.#extending, "a log is cut back with no extension running");
    this.#zeroedBytes = end;
    this.#ceilingBytes = end;
  }

  /**
   * Undefined if `size` is a size the file may have now; else the sizes it may have, said for an
   * error message ("N" or "N to M").
   */
  unexpected(size: number): string | undefined {
    if (size >= this.#zeroedBytes && size <= this.#ceilingBytes) return undefined;
    return this.#ceilingBytes === this.#zeroedBytes
      ? `${this.#zeroedBytes}`
      : `${this.#zeroedBytes} to ${this.#ceilingBytes}`;
  }

  async #extend(from: number, to: number, recordsEnd: number): Promise<void> {
    let written: { zeroedBytes: number; cutBack: boolean };
    try {
      using file = await this.#fs.open(this.#path, { write: true });
      written = await writeZerosAt(file, from, to, {
        path: this.#path,
        log: this.#log,
        onSynced: (end) => void (this.#zeroedBytes = end),
      });
    } catch (error) {
      this.#log.error(zerosFailure(this.#path, error));
      written = { zeroedBytes: from, cutBack: true }; // nothing was written
    }
    if (written.zeroedBytes < to) this.#retryAtBytes = recordsEnd + this.#preallocation.marginBytes;
    if (written.cutBack) this.#ceilingBytes = this.#zeroedBytes;
  }
}

/**
 * Writes zeros over `[from, to)` of `file` (the log at `path`, where nothing else writes there
 * meanwhile), `PREALLOCATE_WRITE_BYTES` at a time, each piece fdatasynced before `onSynced` is
 * called with its end. Returns where the durable zeros end: `to`, unless writing failed (a full
 * disk): then it says so to `log` and cuts the file back to the end of the last piece synced. The
 * log works without the rest (and zeros past its records are harmless, if the cut fails too).
 * Never throws.
 */
export async function writeZerosAt(
  file: FileHandle,
  from: number,
  to: number,
  options: { path: string; log: Log; onSynced?: (end: number) => void },
): Promise<{ zeroedBytes: number; cutBack: boolean }> {
  let zeroedBytes = from;
  try {
    await file.seek(from, Deno.SeekMode.Start);
    while (zeroedBytes < to) {
      const end = Math.min(to, zeroedBytes + PREALLOCATE_WRITE_BYTES);
      await writeZeros(file, end - zeroedBytes);
      await file.syncData();
      zeroedBytes = end;
      options.onSynced?.(end);
    }
    return { zeroedBytes, cutBack: false };
  } catch (error) {
    options.log.error(zerosFailure(options.path, error));
    try {
      await file.truncate(zeroedBytes);
      return { zeroedBytes, cutBack: true };
    } catch {
      return { zeroedBytes, cutBack: false };
    }
  }
}

function zerosFailure(path: string, error: unknown): string {
  return `dfs: log "${path}": cannot write zeros ahead of its records, appends grow the file ` +
    `meanwhile: ${reasonOf(error)}`;
}

/** One buffer of zeros, shared by every extension and rewrite (they only read it). */
let zeros: Uint8Array | undefined;

/** Writes `bytes` zeros at the file's position, `PREALLOCATE_WRITE_BYTES` at a time. */
export async function writeZeros(file: FileHandle, bytes: number): Promise<void> {
  zeros ??= new Uint8Array(PREALLOCATE_WRITE_BYTES);
  for (let done = 0; done < bytes;) {
    const size = Math.min(PREALLOCATE_WRITE_BYTES, bytes - done);
    await writeAll(file, zeros.subarray(0, size));
    done += size;
  }
}

/** The records of a rewrite: a list, or produced one by one as they are written. */
export type Records = readonly Uint8Array[] | AsyncIterable<Uint8Array>;

/**
 * Writes a new log file of `records` at `path` (not synced: the caller writes on after them and
 * syncs it all); returns it open for writing at their end, with the file offset of each record's
 * body and where they end. Frames are written `batchBytes` at a time (at least one). On failure
 * the file is removed.
 *
 * @throws {DfsError} TOO_LARGE for a record over `RECORD_SIZE_BYTES_MAX`; UNAVAILABLE if writing
 * fails.
 */
export async function writeLogFile(
  path: string,
  records: Records,
  { fs, batchBytes }: { fs: FileSystem; batchBytes: number },
): Promise<{ file: FileHandle; sizeBytes: number; offsets: number[] }> {
  let file: FileHandle | undefined;
  try {
    await removeIfExists(fs, path);
    file = await fs.open(path, { write: true, createNew: true });
    const offsets: number[] = [];
    let sizeBytes = 0;
    let frames: Uint8Array[] = [];
    let bytes = 0;
    for await (const record of records) {
      checkRewritten(record);
      const frame = frameRecord(record);
      if (frames.length > 0 && bytes + frame.length > batchBytes) {
        await writeAll(file, concatBytes(frames));
        [frames, bytes] = [[], 0];
      }
      offsets.push(sizeBytes + RECORD_HEADER_SIZE_BYTES);
      sizeBytes += frame.length;
      frames.push(frame);
      bytes += frame.length;
    }
    if (frames.length > 0) await writeAll(file, concatBytes(frames));
    return { file, sizeBytes, offsets };
  } catch (error) {
    file?.close();
    await removeIfExists(fs, path).catch(() => {});
    throw error instanceof DfsError ? error : rewriteError(error);
  }
}

/** @throws {DfsError} TOO_LARGE for a record over `RECORD_SIZE_BYTES_MAX`. */
export function checkRewritten(record: Uint8Array): void {
  if (record.length > RECORD_SIZE_BYTES_MAX) {
    throw new DfsError(
      "TOO_LARGE",
      `Cannot rewrite log: a record of ${record.length} bytes is over the limit of ${RECORD_SIZE_BYTES_MAX}`,
    );
  }
  assert(record.length > 0, "a record is not empty");
}

/** A failure to rewrite the log, as callers see it. */
export function rewriteError(error: unknown): DfsError {
  return new DfsError("UNAVAILABLE", `Cannot rewrite log: ${reasonOf(error)}`, { cause: error });
}
