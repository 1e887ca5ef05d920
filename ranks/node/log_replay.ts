/**
 * Reading a record log back: streams a log file through a `RecordScanner` (`record_frame.ts`,
 * pure) with a bounded buffer, for the replay of a log as it is opened (`openLogFile`, which then
 * cuts a torn tail and keeps a zero tail) and for the check of a log in use
 * (`RecordLog.verify()`); and what each found. A log holding file data never has to fit in memory.
 *
 * @module
 */

import { dirname } from "node:path";
import { assert, DfsError } from "../../protocol/errors.ts";
import type { FileHandle, FileSystem, Log } from "../env/env.ts";
import { reasonOf, removeIfExists, syncDirectory } from "./_fs.ts";
import { freeNow } from "../common/slot_table.ts";
import { type Preallocation, writeZerosAt } from "./_log_file.ts";
import {
  DAMAGED_REGIONS_LISTED_MAX,
  type DamagedRegion,
  RecordScanner,
  SCAN_WINDOW_BYTES_MAX,
  type ScanReport,
} from "./record_frame.ts";

/** Bytes read at a time while scanning a log (the buffer grows for a bigger record). */
export const REPLAY_READ_BYTES = 4 * 1024 * 1024;

/** What opening a log found (`RecordLog.replay`). */
export interface ReplayReport {
  /** Intact records replayed. */
  readonly records: number;
  /** Of those, records after the first damaged region (which damage used to cut off). */
  readonly recordsAfterDamage: number;
  /** Runs of damaged bytes that intact records follow: skipped, and left in the file. */
  readonly damagedRegions: number;
  readonly damagedBytes: number;
  /** The first `DAMAGED_REGIONS_LISTED_MAX` damaged regions, in file order. */
  readonly regions: readonly DamagedRegion[];
  /**
   * Bytes of a torn tail (no intact record in them, up to its last byte that is not zero) cut off
   * the file; 0 if none.
   */
  readonly tailCutBytes: number;
  /**
   * Zeros after the last record (or after a torn tail), up to the end. With no torn tail, the
   * space a log keeps written ahead of its records (its clean end), kept and fdatasynced for the
   * next appends; else cut with the tail.
   */
  readonly zeroTailBytes: number;
  /** The file was missing and was created. */
  readonly created: boolean;
  /**
   * Set if the search through the last damaged region ran out of `RESYNC_CRC_BYTES_MAX`: the file
   * offset it reached. Nothing after it was replayed or cut, and the log refuses appends.
   */
  readonly unsearchedFrom: number | undefined;
}

/** What `RecordLog.verify()` found in the log's durable bytes. */
export interface LogVerifyReport {
  /** Intact records. */
  records: number;
  /** Runs of bytes holding no intact record, a record cut short at the end included. */
  damagedRegions: number;
  damagedBytes: number;
  /** The first `DAMAGED_REGIONS_LISTED_MAX` damaged regions, in file order. */
  regions: readonly DamagedRegion[];
  /**
   * Durable bytes the file no longer holds, records or the zeros written ahead of them: it was
   * cut under the node.
   */
  missingBytes: number;
  /** A `rewrite()` ran meanwhile: the other fields mean nothing. */
  superseded: boolean;
}

/** The report of a check a rewrite made meaningless. */
export function supersededReport(): LogVerifyReport {
  return {
    records: 0,
    damagedRegions: 0,
    damagedBytes: 0,
    regions: [],
    missingBytes: 0,
    superseded: true,
  };
}

/** How `scanLogFile` reads. */
export interface ScanLogOptions {
  /** Scan only the first this many bytes (what was durable when a check started). */
  limitBytes?: number;
  /** Bytes read at a time (default `REPLAY_READ_BYTES`). */
  readBytes?: number;
}

/**
 * Opens the log file at `path` (creating it if missing, its folder entry fsynced) and replays it
 * through `onRecord` with `scanLogFile`, for `replayRecordLog()` (see there): removes a stale
 * `path + ".tmp"`, cuts a torn tail (fsynced), keeps a zero tail (fdatasynced: it may be zeros a
 * crashed process wrote and never synced) and brings it up to `preallocation.bytes` if it is
 * under the margin, reports damage and cuts to `log`. Returns the file open for writing, its
 * logical size (where the next record goes), its size with the zeros, what the replay found, and
 * the failure the log must refuse appends with if the search through damage gave up.
 *
 * @throws {DfsError} UNAVAILABLE if the file cannot be read, created, synced or truncated.
 */
export async function openLogFile(
  path: string,
  onRecord: (body: Uint8Array, offset: number) => void,
  { fs, log, preallocation }: { fs: FileSystem; log: Log; preallocation: Preallocation },
): Promise<{
  file: FileHandle;
  sizeBytes: number;
  zeroedBytes: number;
  replay: ReplayReport;
  failure: DfsError | undefined;
}> {
  let file: FileHandle | undefined;
  try {
    await removeIfExists(fs, `${path}.tmp`);
    const reader = await openIfExists(fs, path);
    let scanned: { report: ScanReport; bytesRead: number } | undefined;
    try {
      if (reader) scanned = await scanLogFile(reader, onRecord);
    } finally {
      reader?.close();
    }
    const report = scanned?.report;
    const replay: ReplayReport = {
      records: report?.records ?? 0,
      recordsAfterDamage: report?.recordsAfterDamage ?? 0,
      damagedRegions: report?.damagedRegions ?? 0,
      damagedBytes: report?.damagedBytes ?? 0,
      regions: report?.regions ?? [],
      tailCutBytes: report?.tailBytes ?? 0,
      zeroTailBytes: report?.zeroTailBytes ?? 0,
      created: reader === undefined,
      unsearchedFrom: report?.unsearchedFrom,
    };
    tellReplay(path, replay, log);
    file = await fs.open(path, { write: true, create: true });
    let zeroedBytes = scanned?.bytesRead ?? 0;
    let sizeBytes = zeroedBytes - replay.zeroTailBytes;
    if (replay.tailCutBytes > 0) {
      sizeBytes -= replay.tailCutBytes;
      zeroedBytes = sizeBytes;
      await file.truncate(sizeBytes);
      await file.sync();
    }
    if (replay.created) await syncDirectory(fs, dirname(path));
    const failure = replay.unsearchedFrom === undefined ? undefined : new DfsError(
      "UNAVAILABLE",
      `Cannot append record: log "${path}" has damage that could not be searched past byte ${replay.unsearchedFrom}, so records appended after it would not be replayed`,
    );
    const { bytes, marginBytes } = preallocation;
    if (failure === undefined && bytes > 0 && zeroedBytes - sizeBytes < marginBytes) {
      const to = sizeBytes + bytes;
      ({ zeroedBytes } = await writeZerosAt(file, zeroedBytes, to, { path, log }));
    } else if (replay.tailCutBytes === 0 && replay.zeroTailBytes > 0) {
      await file.syncData();
    }
    return { file, sizeBytes, zeroedBytes, replay, failure };
  } catch (error) {
    file?.close();
    throw new DfsError("UNAVAILABLE", `Cannot open log "${path}": ${reasonOf(error)}`, {
      cause: error,
    });
  }
}

/**
 * What a check of the records of a log (its bytes up to its logical end) found, from their scan:
 * a torn or zero tail there counts as damage (those bytes were durable records), and
 * `missingBytes` durable bytes are no longer in the file.
 */
export function verifyReportOf(report: ScanReport, missingBytes: number): LogVerifyReport {
  const regions = [...report.regions];
  const tailBytes = report.tailBytes + report.zeroTailBytes;
  const tail = tailBytes > 0 ? 1 : 0;
  if (tail > 0 && regions.length < DAMAGED_REGIONS_LISTED_MAX) {
    regions.push({ offset: report.intactBytes, bytes: tailBytes });
  }
  return {
    records: report.records,
    damagedRegions: report.damagedRegions + tail,
    damagedBytes: report.damagedBytes + tailBytes,
    regions,
    missingBytes,
    superseded: false,
  };
}

/**
 * Reads `file` from its start to its end (or to `options.limitBytes`) and scans the records in
 * it, resynchronising past damage (see `RecordScanner`): each intact record goes to `onRecord`
 * with the file offset of its body, as a view only valid during the call. Returns what the scan
 * found and how many bytes were read (fewer than `limitBytes` if the file is shorter).
 *
 * The buffer starts at `readBytes` and grows only while one record, or a candidate record in a
 * damaged region, does not fit: it never exceeds `SCAN_WINDOW_BYTES_MAX + readBytes`. Bytes
 * before the scanner's position are dropped. Its memory is freed as it is outgrown and as the scan
 * returns (`freeNow`).
 *
 * @throws whatever the file's reads throw.
 */
export async function scanLogFile(
  file: FileHandle,
  onRecord: (body: Uint8Array, offset: number) => void,
  options: ScanLogOptions = {},
): Promise<{ report: ScanReport; bytesRead: number }> {
  const { limitBytes = Infinity, readBytes = REPLAY_READ_BYTES } = options;
  const bufferBytesMax = SCAN_WINDOW_BYTES_MAX + readBytes;
  const scanner = new RecordScanner();
  let buffer = new Uint8Array(readBytes);
  let base = 0; // the file offset of buffer[0]
  let start = 0; // buffer[start, end) are the file's bytes from scanner.position on
  let end = 0;
  while (true) {
    let final = base + end >= limitBytes;
    if (!final) {
      if (end === buffer.length) {
        if (start > 0 && (start >= readBytes || buffer.length >= bufferBytesMax)) {
          buffer.copyWithin(0, start, end);
        } else {
          // The scanner stops only for more than the buffer holds from its position, and never
          // needs more than SCAN_WINDOW_BYTES_MAX: so a full buffer is under its bound here.
          assert(buffer.length < bufferBytesMax, "the scan buffer stays within its bound");
          const bigger = new Uint8Array(Math.min(2 * buffer.length, bufferBytesMax));
          bigger.set(buffer.subarray(start, end));
          freeNow(buffer);
          buffer = bigger;
        }
        [base, end, start] = [base + start, end - start, 0];
      }
      const room = Math.min(buffer.length, limitBytes - base);
      const read = await file.read(buffer.subarray(end, room));
      if (read === null) final = true;
      else end += read;
      final ||= base + end >= limitBytes;
    }
    scanner.scan(buffer.subarray(start, end), final, onRecord);
    start = scanner.position - base;
    if (final) {
      freeNow(buffer); // at once: a replay goes on to fill the table, which needs the room
      return { report: scanner.report, bytesRead: base + end };
    }
  }
}

/** The file at `path` open for reading, or undefined if there is none. */
async function openIfExists(fs: FileSystem, path: string): Promise<FileHandle | undefined> {
  try {
    return await fs.open(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Tells `log` of the damage a replay skipped, a search that gave up, and a torn tail it cut. */
function tellReplay(path: string, replay: ReplayReport, log: Log): void {
  const { damagedRegions, damagedBytes, recordsAfterDamage, unsearchedFrom } = replay;
  if (damagedRegions > 0) {
    log.error(
      `dfs: log "${path}": skipped ${damagedRegions} damaged region(s), ${damagedBytes} bytes ` +
        `in all; kept ${recordsAfterDamage} intact record(s) after the damage`,
    );
  }
  if (unsearchedFrom !== undefined) {
    log.error(
      `dfs: log "${path}": the search through damage gave up at byte ${unsearchedFrom}; ` +
        `the rest of the log is kept but not replayed, and appends are refused`,
    );
  }
  if (replay.tailCutBytes > 0) {
    log.error(`dfs: log "${path}": cut a torn tail of ${replay.tailCutBytes} bytes`);
  }
}
