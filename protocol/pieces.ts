/**
 * How a client cuts what it uploads into data frames: the payload a server's frame limit allows,
 * and any source turned into pieces of that size. Pure: no I/O.
 *
 * @module
 */

import { CHUNK_SIZE_BYTES, DATA_FRAME_OVERHEAD_BYTES } from "./limits.ts";
import type { ByteSource } from "../ranks/common/file_store.ts";

/**
 * The data payload that fits a server's frame limit: a whole chunk normally; less for a server
 * started with a smaller `--frame-size-bytes-max` (it joins the pieces back into chunks).
 */
export function dataBytesFor(frameSizeBytesMax: number | undefined): number {
  if (typeof frameSizeBytesMax !== "number") return CHUNK_SIZE_BYTES;
  return Math.max(1, Math.min(CHUNK_SIZE_BYTES, frameSizeBytesMax - DATA_FRAME_OVERHEAD_BYTES));
}

/** Turns any source into pieces of exactly `size` bytes (the last one shorter). */
export async function* rechunk(source: ByteSource, size: number): AsyncIterable<Uint8Array> {
  if (source instanceof Uint8Array) {
    for (let at = 0; at < source.length; at += size) yield source.subarray(at, at + size);
    return;
  }
  let buffer = new Uint8Array(size);
  let filled = 0;
  for await (const piece of source as AsyncIterable<Uint8Array>) {
    if (filled === 0 && piece.length === size) {
      yield piece; // already a whole piece: no copy
      continue;
    }
    let at = 0;
    while (at < piece.length) {
      const n = Math.min(piece.length - at, size - filled);
      buffer.set(piece.subarray(at, at + n), filled);
      filled += n;
      at += n;
      if (filled === size) {
        yield buffer;
        // The writer has written it by the time we resume, but a new buffer keeps that obvious.
        buffer = new Uint8Array(size);
        filled = 0;
      }
    }
  }
  if (filled > 0) yield buffer.subarray(0, filled);
}
