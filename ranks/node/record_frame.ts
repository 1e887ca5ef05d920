/**
 * How records lie in a data node's log file: `[u32 BE body length][u32 BE CRC32 of body][body]`.
 * Framing a record and parsing framed bytes back, with no I/O (`record_log.ts` does the I/O).
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { assert } from "../../protocol/errors.ts";

/** Bytes of the header in front of every record: body length and CRC32, both u32 big-endian. */
export const RECORD_HEADER_SIZE_BYTES = 8;

/** Largest record body. A length prefix over this marks a corrupt tail at replay. */
export const RECORD_SIZE_BYTES_MAX = 16 * 1024 * 1024;

/**
 * Frames one record for the log: header then a copy of the body.
 *
 * @throws {Error} an assertion if `record` is empty or over `RECORD_SIZE_BYTES_MAX`.
 */
export function frameRecord(record: Uint8Array): Uint8Array {
  assert(record.length > 0, "a record is not empty");
  assert(record.length <= RECORD_SIZE_BYTES_MAX, "a record is within RECORD_SIZE_BYTES_MAX");
  const frame = new Uint8Array(RECORD_HEADER_SIZE_BYTES + record.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, record.length);
  view.setUint32(4, crc32(record));
  frame.set(record, RECORD_HEADER_SIZE_BYTES);
  return frame;
}

/**
 * Parses framed records from the start of `bytes` (no I/O). Stops at the first record that is not
 * intact and is not followed by an intact one: a short header, an empty or oversized length, a
 * short body or a CRC mismatch (a torn tail; a zero-filled tail is thus never taken for records).
 * A record whose body fails its CRC but which an intact record follows is bit rot, not a torn
 * write: it is skipped and counted in `damaged`, and parsing goes on. Records are views into
 * `bytes`; `offsets` are where their bodies start.
 */
export function parseRecords(
  bytes: Uint8Array,
): { records: Uint8Array[]; offsets: number[]; intactBytes: number; damaged: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: Uint8Array[] = [];
  const offsets: number[] = [];
  let damaged = 0;
  /** The end of the record framed at `offset`, if its header is sane and its body all there. */
  const endOf = (offset: number): number | undefined => {
    if (bytes.length - offset < RECORD_HEADER_SIZE_BYTES) return undefined;
    const length = view.getUint32(offset);
    if (length === 0 || length > RECORD_SIZE_BYTES_MAX) return undefined;
    const end = offset + RECORD_HEADER_SIZE_BYTES + length;
    return end <= bytes.length ? end : undefined;
  };
  const intact = (offset: number, end: number): boolean =>
    crc32(bytes.subarray(offset + RECORD_HEADER_SIZE_BYTES, end)) === view.getUint32(offset + 4);
  let offset = 0;
  let intactBytes = 0;
  while (true) {
    const end = endOf(offset);
    if (end === undefined) break;
    if (intact(offset, end)) {
      records.push(bytes.subarray(offset + RECORD_HEADER_SIZE_BYTES, end));
      offsets.push(offset + RECORD_HEADER_SIZE_BYTES);
      offset = intactBytes = end;
      continue;
    }
    const next = endOf(end);
    if (next === undefined || !intact(end, next)) break; // a torn tail
    damaged++;
    offset = end;
  }
  return { records, offsets, intactBytes, damaged };
}
