/**
 * Writing a whole log file for `RecordLog.rewrite()` (private to `node/`): the records framed and
 * written in batches, then fdatasynced; and the errors a rewrite raises.
 *
 * @module
 */

import { concatBytes } from "../../protocol/bytes.ts";
import { assert, DfsError } from "../../protocol/errors.ts";
import type { FileHandle, FileSystem } from "../env/env.ts";
import { reasonOf, removeIfExists, writeAll } from "./_fs.ts";
import { frameRecord, RECORD_HEADER_SIZE_BYTES, RECORD_SIZE_BYTES_MAX } from "./record_frame.ts";

/** The records of a rewrite: a list, or produced one by one as they are written. */
export type Records = readonly Uint8Array[] | AsyncIterable<Uint8Array>;

/**
 * Writes a new log file of `records` at `path` and fdatasyncs it; returns it open for appending,
 * with the file offset of each record's body. Frames are written `batchBytes` at a time (at least
 * one). On failure the file is removed.
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
    file = await fs.open(path, { append: true, createNew: true });
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
    await file.syncData();
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
