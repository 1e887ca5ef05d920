/**
 * Where the bytes of each chunk kept in a data node's log are: chunk id to offset and size, one
 * number per chunk (offset and size packed, exact in a double) instead of an object, so a node
 * with millions of small files keeps ~80 bytes per file here instead of ~120. Pure.
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";
import { LOG_FILE_BYTES_MAX } from "../common/chunk_id.ts";

/** Sizes packed below this (a chunk kept in the log is at most `LOG_FILE_BYTES_MAX`). */
const SIZE_LIMIT = 2 ** 17;
/** Log offsets below this are exact when packed (64 GiB of log). */
export const LOG_PLACE_OFFSET_LIMIT = 2 ** 53 / SIZE_LIMIT;

/** Where a chunk's bytes are in the log file. */
export interface LogPlace {
  offset: number;
  size: number;
}

/** Chunk id to where its bytes are in the log. */
export class LogPlaces {
  #packed = new Map<string, number>();

  get size(): number {
    return this.#packed.size;
  }

  has(id: string): boolean {
    return this.#packed.has(id);
  }

  get(id: string): LogPlace | undefined {
    const packed = this.#packed.get(id);
    if (packed === undefined) return undefined;
    return { offset: Math.floor(packed / SIZE_LIMIT), size: packed % SIZE_LIMIT };
  }

  set(id: string, place: LogPlace): void {
    const { offset, size } = place;
    assert(size >= 0 && size <= LOG_FILE_BYTES_MAX && size < SIZE_LIMIT, "a log chunk is small");
    assert(
      Number.isSafeInteger(offset) && offset >= 0 && offset < LOG_PLACE_OFFSET_LIMIT,
      `a log offset is below ${LOG_PLACE_OFFSET_LIMIT}`,
    );
    this.#packed.set(id, offset * SIZE_LIMIT + size);
  }

  delete(id: string): boolean {
    return this.#packed.delete(id);
  }

  keys(): IterableIterator<string> {
    return this.#packed.keys();
  }
}
