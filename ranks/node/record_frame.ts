/**
 * How records lie in a data node's log file: `[u32 BE body length][u32 BE CRC32 of body][body]`,
 * one after another, then zeros up to the end of the file (the space the log keeps written ahead
 * of its records; a body is never empty, so no record starts with a length of 0). Framing a
 * record, and scanning framed bytes back with resynchronisation past damage, with no I/O
 * (`log_replay.ts` streams a file through the scanner, `record_log.ts` does the rest of the I/O).
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { assert } from "../../protocol/errors.ts";

/** Bytes of the header in front of every record: body length and CRC32, both u32 big-endian. */
export const RECORD_HEADER_SIZE_BYTES = 8;

/** Largest record body. A length prefix over this (or 0) is never taken for a record. */
export const RECORD_SIZE_BYTES_MAX = 16 * 1024 * 1024;

/**
 * Bytes of CRC32 work the search for the next intact record may spend in one damaged region, so
 * that damage can never stall a replay (or a check) for long. Each candidate offset worth a CRC
 * costs its body length, up to `RECORD_SIZE_BYTES_MAX`: this is at least 64 max-size candidates,
 * about 25 ms at the 40 GB/s of a vectorised CRC32 (0.1 s at 10 GB/s). A flipped length, a rotten
 * body or a zeroed sector cost a few MiB at most; random bytes in front of a long log run out of it
 * after about a megabyte (their lengths are large, and their followers often look sane).
 */
export const RESYNC_CRC_BYTES_MAX = 1024 * 1024 * 1024;

/**
 * In a damaged region, a candidate record neither followed by a sane header nor ending at (or
 * within a header of) the end of the bytes has its CRC checked only if its body is at most this
 * long. Random bytes give a sane length at 1 offset in 256 and a sane follower at 1 in 256 of those,
 * so this keeps the search through garbage cheap, while an intact metadata or small-file record
 * followed by more damage is still found.
 */
export const RESYNC_UNCHAINED_BYTES_MAX = 64 * 1024;

/** Damaged regions a scan lists by offset and size; the rest are only counted. */
export const DAMAGED_REGIONS_LISTED_MAX = 16;

/**
 * Bytes from its position a `RecordScanner` may need to see before it can move on: a header, the
 * longest body and the header after it. A reader that keeps this much (plus its read size) in its
 * buffer never stalls.
 */
export const SCAN_WINDOW_BYTES_MAX = 2 * RECORD_HEADER_SIZE_BYTES + RECORD_SIZE_BYTES_MAX;

/** A run of bytes holding no intact record, followed by an intact record. */
export interface DamagedRegion {
  /** File offset of its first byte. */
  offset: number;
  bytes: number;
}

/** What a scan found, once it has seen the last byte. */
export interface ScanReport {
  /** Intact records found. */
  records: number;
  /** Of those, records after the first damaged region: damage no longer cuts them off. */
  recordsAfterDamage: number;
  /** Runs of bytes holding no intact record that an intact record follows (skipped). */
  damagedRegions: number;
  damagedBytes: number;
  /** The first `DAMAGED_REGIONS_LISTED_MAX` damaged regions, in file order. */
  regions: DamagedRegion[];
  /**
   * Where the last intact record ends (0 if none): the log's logical end, where a torn tail or
   * the zero tail starts.
   */
  intactBytes: number;
  /**
   * Bytes after the last intact record where no intact record starts, up to the last byte that
   * is not zero: a torn tail (0 if none).
   */
  tailBytes: number;
  /**
   * Zeros after the last intact record (or after a torn tail), up to the end. With no torn tail,
   * the zero space the log keeps ahead of its records: its clean end.
   */
  zeroTailBytes: number;
  /**
   * Set if the search through a damaged region ran out of `RESYNC_CRC_BYTES_MAX`: the file offset
   * it had reached. The region then runs from its start to the end and is counted as damaged (not
   * as a tail), since intact records may lie past the point reached.
   */
  unsearchedFrom: number | undefined;
}

/**
 * Scans framed records out of a file's bytes, given window by window in file order (no I/O).
 *
 * A record at a record boundary is intact if its length is 1..`RECORD_SIZE_BYTES_MAX`, its body is
 * all there and its CRC32 matches. When one is not (its body or CRC rotted, its length is wrong, it
 * was torn), the scanner resynchronises: it searches forward byte by byte for the next offset
 * where an intact record starts, checking the CRC only of candidates likely to be real (see
 * `RESYNC_UNCHAINED_BYTES_MAX`). The bytes skipped are a damaged region, and scanning goes on from
 * that record. If no intact record starts anywhere up to the end, the bytes from the last intact
 * record on are a torn tail: that is all a crash can leave, and only at the end. Unless they are
 * all zero: a zero tail is the clean end of a log that keeps zeros written ahead of its records
 * (`zeroTailBytes`), never taken for records (length 0 is never sane) nor for a torn tail. A
 * torn record followed by zeros is a torn tail, and zeros followed by an intact record are a
 * damaged region. Only its CRC tells a record, so a well-framed record carried inside a damaged
 * record's body (file data) would be taken for one.
 *
 * The search spends at most `RESYNC_CRC_BYTES_MAX` of CRC work per damaged region. If it runs out,
 * it stops there and the rest of the bytes are one damaged region (`unsearchedFrom` says where it
 * stopped): never a torn tail, since cutting it could destroy intact records, and never silent.
 *
 * Feed it with `scan()`: each window must start at `position` (bytes before it are no longer
 * needed) and should hold at least `SCAN_WINDOW_BYTES_MAX` bytes, or reach the end of the file;
 * the last window is marked `final`. Then read `report`.
 */
export class RecordScanner {
  #position = 0;
  /** Set while searching through damage: the file offset where the damaged region started. */
  #damageStart: number | undefined;
  /**
   * While searching through damage: the file offset just past the last byte of it seen not to be
   * zero; undefined while all are zero (then it may be the zero tail).
   */
  #damageNonZeroEnd: number | undefined;
  /** CRC work spent searching through the current damaged region. */
  #crcBytes = 0;
  #unsearchedFrom: number | undefined;
  #records = 0;
  #recordsAfterDamage = 0;
  #damagedRegions = 0;
  #damagedBytes = 0;
  #regions: DamagedRegion[] = [];
  #intactBytes = 0;
  #tailBytes = 0;
  #zeroTailBytes = 0;
  #done = false;

  /** File offset the next window must start at: every byte before it is scanned. */
  get position(): number {
    return this.#position;
  }

  /** What the scan found; complete once a `final` window was scanned. */
  get report(): ScanReport {
    return {
      records: this.#records,
      recordsAfterDamage: this.#recordsAfterDamage,
      damagedRegions: this.#damagedRegions,
      damagedBytes: this.#damagedBytes,
      regions: [...this.#regions],
      intactBytes: this.#intactBytes,
      tailBytes: this.#tailBytes,
      zeroTailBytes: this.#zeroTailBytes,
      unsearchedFrom: this.#unsearchedFrom,
    };
  }

  /**
   * Scans `window`, the file's bytes from `position` on, calling `onRecord` with each intact
   * record's body (a view into `window`, valid only during the call) and the file offset of the
   * body, and moves `position` past what it has decided. Unless `final`, it stops where it needs
   * more bytes than `window` holds: never more than `SCAN_WINDOW_BYTES_MAX` from the new
   * `position`.
   *
   * @throws {Error} an assertion if called after a `final` window.
   */
  scan(
    window: Uint8Array,
    final: boolean,
    onRecord: (body: Uint8Array, offset: number) => void,
  ): void {
    assert(!this.#done, "scan() is not called after a final window");
    const decided = this.#unsearchedFrom === undefined
      ? this.#scanWindow(window, final, onRecord)
      : window.length;
    this.#position += decided;
    if (!final) return;
    this.#done = true;
    if (this.#damageStart === undefined) {
      this.#intactBytes = this.#position;
    } else if (this.#unsearchedFrom !== undefined) {
      this.#intactBytes = this.#damageStart;
      this.#closeRegion(this.#position);
    } else {
      this.#intactBytes = this.#damageStart;
      const nonZeroEnd = this.#damageNonZeroEnd ?? this.#damageStart;
      this.#tailBytes = nonZeroEnd - this.#damageStart;
      this.#zeroTailBytes = this.#position - nonZeroEnd;
    }
  }

  /**
   * Scans one window (see `scan`); returns how many of its bytes are decided. The hot path, intact
   * records one after another, is a header read, a CRC and a call.
   */
  #scanWindow(
    window: Uint8Array,
    final: boolean,
    onRecord: (body: Uint8Array, offset: number) => void,
  ): number {
    const view = new DataView(window.buffer, window.byteOffset, window.byteLength);
    const base = this.#position;
    const size = window.length;
    let at = 0;
    while (true) {
      if (this.#damageStart === undefined) { // at a record boundary
        if (size - at < RECORD_HEADER_SIZE_BYTES) {
          if (!final || at === size) return at;
          // A short header, or the last bytes of a zero tail: the search finds it is a tail.
          this.#startDamage(window, base, at, size);
          at++;
          continue;
        }
        const length = view.getUint32(at);
        const end = at + RECORD_HEADER_SIZE_BYTES + length;
        if (length === 0 || length > RECORD_SIZE_BYTES_MAX || end > size) {
          if (end > size && !final && length !== 0 && length <= RECORD_SIZE_BYTES_MAX) return at;
          this.#startDamage(window, base, at, at + 4); // a length of 0 may start the zero tail
          at++;
          continue;
        }
        const body = window.subarray(at + RECORD_HEADER_SIZE_BYTES, end);
        if (crc32(body) === view.getUint32(at + 4)) {
          onRecord(body, base + at + RECORD_HEADER_SIZE_BYTES);
          this.#countRecord();
          at = end;
          continue;
        }
        this.#startDamage(window, base, at, at + 4); // a body failing its CRC, or a wrong length
        at++;
        continue;
      }
      // In damage: search byte by byte for the next offset where an intact record starts.
      if (size - at < RECORD_HEADER_SIZE_BYTES) {
        if (!final) return at;
        this.#seeNonZero(window, base, at, size);
        return size;
      }
      const length = view.getUint32(at);
      if (length === 0) {
        at = skipZeros(window, at);
        continue;
      }
      // Every offset of the region is read or skipped as zero: each non-zero byte is seen here.
      this.#seeNonZero(window, base, at, at + 4);
      const end = at + RECORD_HEADER_SIZE_BYTES + length;
      if (length > RECORD_SIZE_BYTES_MAX || (end > size && final)) {
        at++;
        continue;
      }
      if (end > size) return at;
      let chained: boolean;
      if (size - end < RECORD_HEADER_SIZE_BYTES) {
        if (!final) return at;
        chained = true; // it ends at the end, or a short (torn) header follows it
      } else {
        const following = view.getUint32(end);
        chained = following !== 0 && following <= RECORD_SIZE_BYTES_MAX;
      }
      if (!chained && length > RESYNC_UNCHAINED_BYTES_MAX) {
        at++;
        continue;
      }
      if (!this.#spend(length, base + at)) return size;
      if (intactAt(view, at, end)) {
        this.#closeRegion(base + at);
        onRecord(
          window.subarray(at + RECORD_HEADER_SIZE_BYTES, end),
          base + at + RECORD_HEADER_SIZE_BYTES,
        );
        this.#countRecord();
        at = end;
        continue;
      }
      at++;
    }
  }

  #countRecord(): void {
    this.#records++;
    if (this.#damagedRegions > 0) this.#recordsAfterDamage++;
  }

  /**
   * Damage starts at `window[at]`, `base` the file offset of `window[0]`, and `window[at, seen)`
   * are the bytes of it read so far: the search through it starts with a full budget.
   */
  #startDamage(window: Uint8Array, base: number, at: number, seen: number): void {
    this.#damageStart = base + at;
    this.#damageNonZeroEnd = undefined;
    this.#seeNonZero(window, base, at, seen);
    this.#crcBytes = 0;
  }

  /** Notes the last non-zero byte of `window[from, to)`, in damage; `base`: window[0]'s offset. */
  #seeNonZero(window: Uint8Array, base: number, from: number, to: number): void {
    for (let at = to - 1; at >= from; at--) {
      if (window[at] === 0) continue;
      this.#damageNonZeroEnd = Math.max(this.#damageNonZeroEnd ?? 0, base + at + 1);
      return;
    }
  }

  /** Spends `bytes` of CRC work on the search; false, and gives up at `offset`, if over budget. */
  #spend(bytes: number, offset: number): boolean {
    if (this.#crcBytes + bytes > RESYNC_CRC_BYTES_MAX) {
      this.#unsearchedFrom = offset;
      return false;
    }
    this.#crcBytes += bytes;
    return true;
  }

  /** The damaged region ends at file offset `end`. */
  #closeRegion(end: number): void {
    const offset = this.#damageStart!;
    this.#damageStart = undefined;
    this.#damagedRegions++;
    this.#damagedBytes += end - offset;
    if (this.#regions.length < DAMAGED_REGIONS_LISTED_MAX) {
      this.#regions.push({ offset, bytes: end - offset });
    }
  }
}

/** Whether the record framed at `start`, whose sane header says it ends at `end`, passes its CRC. */
function intactAt(view: DataView, start: number, end: number): boolean {
  const body = new Uint8Array(
    view.buffer,
    view.byteOffset + start + RECORD_HEADER_SIZE_BYTES,
    end - start - RECORD_HEADER_SIZE_BYTES,
  );
  return crc32(body) === view.getUint32(start + 4);
}

/**
 * The next candidate offset after `at`, whose u32 is 0: every offset up to 3 before the next
 * non-zero byte also reads a length of 0, so a zero-filled run is crossed in one pass.
 */
function skipZeros(window: Uint8Array, at: number): number {
  let nonZero = at + 4;
  while (nonZero < window.length && window[nonZero] === 0) nonZero++;
  return Math.max(at + 1, nonZero - 3);
}

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
 * Parses all the framed records in `bytes`, a whole log file (no I/O), resynchronising past damage
 * as `RecordScanner` does: records are views into `bytes`, `offsets` where their bodies start;
 * damaged regions are counted and listed, and `tailBytes` after `intactBytes` are a torn tail
 * (`zeroTailBytes` its clean end).
 */
export function parseRecords(
  bytes: Uint8Array,
): Omit<ScanReport, "records"> & { records: Uint8Array[]; offsets: number[] } {
  const records: Uint8Array[] = [];
  const offsets: number[] = [];
  const scanner = new RecordScanner();
  scanner.scan(bytes, true, (body, offset) => {
    records.push(body);
    offsets.push(offset);
  });
  return { ...scanner.report, records, offsets };
}
