/**
 * Which chunks of a file a byte range falls in: what a read through rank 0, a direct read and a
 * direct route each ask of a file's chunk list. Pure.
 *
 * @module
 */

/** A chunk a range falls in, by its index in the file, and the part of it (`from` to `to`). */
export interface ChunkSpan {
  index: number;
  from: number;
  to: number;
}

/** The chunks bytes `start` to `end` (end exclusive) fall in, in file order. */
export function chunkSpans(
  chunks: readonly { size: number }[],
  start: number,
  end: number,
): ChunkSpan[] {
  const spans: ChunkSpan[] = [];
  let offset = 0;
  chunks.forEach((chunk, index) => {
    const from = Math.max(start - offset, 0);
    const to = Math.min(end - offset, chunk.size);
    if (from < to) spans.push({ index, from, to });
    offset += chunk.size;
  });
  return spans;
}
