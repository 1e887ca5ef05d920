/**
 * Checking a download chunk by chunk against the CRC32s its metadata lists. CRC32 runs at several
 * GB/s where SHA-256 runs at under 2, so a reader checks every byte for a fraction of the CPU; the
 * chunks' order is checked too, since each CRC32 belongs to its place in the file. Pure: no I/O.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import { DfsError } from "./errors.ts";

/** Checks the bytes `start` to `end` (exclusive) of a file as they stream past. */
export class ChunkChecker {
  /** Each chunk's start offset, size and CRC32, in file order. */
  #chunks: { offset: number; size: number; crc32?: number }[] = [];
  #name: string;
  #start: number;
  #end: number;
  /** Offset in the file of the next byte expected. */
  #at: number;
  /** Index of the chunk holding `#at`, and the running CRC32 of its bytes so far. */
  #index = 0;
  #running = 0;

  constructor(
    name: string,
    chunks: readonly { size: number; crc32?: number }[],
    range: { start: number; end: number },
  ) {
    let offset = 0;
    for (const { size, crc32 } of chunks) {
      this.#chunks.push({ offset, size, crc32 });
      offset += size;
    }
    this.#name = name;
    this.#start = this.#at = range.start;
    this.#end = range.end;
    while (this.#index < this.#chunks.length && this.#endOf(this.#index) <= this.#at) this.#index++;
  }

  /** True if every byte of the range lies in a chunk with a CRC32 that the range covers whole. */
  get coversEveryByte(): boolean {
    const first = this.#chunks.findIndex((c) => c.offset + c.size > this.#start);
    for (let i = Math.max(first, 0); i < this.#chunks.length; i++) {
      const c = this.#chunks[i];
      if (c.offset >= this.#end) break;
      const whole = c.offset >= this.#start && c.offset + c.size <= this.#end;
      if (!whole || c.crc32 === undefined) return false;
    }
    return true;
  }

  /**
   * Takes the next bytes of the range.
   *
   * @throws {DfsError} `CORRUPTED` when a chunk the range covers whole ends with the wrong CRC32,
   *   or for bytes past the range's end.
   */
  update(bytes: Uint8Array): void {
    if (this.#at + bytes.length > this.#end) throw this.#corrupted("more bytes than asked for");
    let from = 0;
    while (from < bytes.length) {
      const chunk = this.#chunks[this.#index];
      const take = Math.min(bytes.length - from, this.#endOf(this.#index) - this.#at);
      if (this.#checks(chunk)) {
        this.#running = crc32(bytes.subarray(from, from + take), this.#running);
      }
      from += take;
      this.#at += take;
      if (this.#at === this.#endOf(this.#index)) {
        if (this.#checks(chunk) && this.#running !== chunk.crc32) {
          throw this.#corrupted(`chunk ${this.#index} does not match its CRC32`);
        }
        this.#index++;
        this.#running = 0;
      }
    }
  }

  /** @throws {DfsError} `CORRUPTED` if the range ended early. */
  finish(): void {
    if (this.#at !== this.#end) {
      throw this.#corrupted(`got ${this.#at - this.#start} of ${this.#end - this.#start} bytes`);
    }
  }

  /** A chunk is checked when it has a CRC32 and lies wholly inside the range. */
  #checks(chunk: { offset: number; size: number; crc32?: number }): boolean {
    return chunk.crc32 !== undefined && chunk.offset >= this.#start &&
      chunk.offset + chunk.size <= this.#end;
  }

  #endOf(index: number): number {
    const chunk = this.#chunks[index];
    return chunk.offset + chunk.size;
  }

  #corrupted(what: string): DfsError {
    return new DfsError("CORRUPTED", `Content of "${this.#name}" is damaged: ${what}`);
  }
}

/**
 * How a read of `name` (a `range` of it, or all) is checked when `verify` is on: each chunk the
 * range covers whole against its CRC32 or, for a whole file stored without CRC32s, the file
 * against its SHA-256. `check` takes the bytes in order; `finish` throws `CORRUPTED` if they
 * did not match.
 */
export function readChecker(
  name: string,
  meta: { size: number; sha256: string; chunks: readonly { size: number; crc32?: number }[] },
  range: { start?: number; end?: number },
  verify: boolean,
): { check: (bytes: Uint8Array) => void; finish: () => void } {
  if (!verify) return { check: () => {}, finish: () => {} };
  const whole = range.start === undefined && range.end === undefined;
  const span = { start: range.start ?? 0, end: range.end ?? meta.size };
  const checker = new ChunkChecker(name, meta.chunks, span);
  const hash = whole && !checker.coversEveryByte ? createHash("sha256") : null;
  return {
    check: (bytes) => {
      checker.update(bytes);
      hash?.update(bytes);
    },
    finish: () => {
      checker.finish();
      if (hash && hash.digest("hex") !== meta.sha256) {
        throw new DfsError("CORRUPTED", `Content of "${name}" does not match its SHA-256`);
      }
    },
  };
}
