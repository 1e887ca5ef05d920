/**
 * The answers that take more than one frame: a read as `ok {meta}`, `data` frames and `end` (a
 * small one in a single write), and a listing as `entries` pages bounded by count and by bytes,
 * then `end`. Private to the gateway (used by `session.ts`).
 *
 * @module
 */

import { COALESCE_BYTES_MAX, type FrameWriter } from "../../protocol/conn.ts";
import { LIST_PAGE_ENTRIES_MAX } from "../../protocol/limits.ts";
import type { ListEntry } from "../../protocol/messages.ts";
import { utf8ByteLength } from "../../protocol/names.ts";
import type { FileReader } from "../common/file_store.ts";
import { LIST_ENTRY_OVERHEAD_BYTES } from "./limits.ts";

/**
 * Sends what `reader` reads as the answer to request `id`, recycling each chunk once it is
 * written out. Stops early, unanswered, once `closed()` says the connection is closing. The
 * caller closes the reader.
 */
export async function sendRead(
  writer: FrameWriter,
  id: number,
  reader: FileReader,
  closed: () => boolean,
): Promise<void> {
  if (reader.end - reader.start <= COALESCE_BYTES_MAX) {
    // A small read: its bytes first, then every frame of the answer in one write.
    const chunks: Uint8Array[] = [];
    for await (const chunk of reader.chunks()) chunks.push(chunk);
    await Promise.all([
      writer.send({ op: "ok", id, result: reader.meta }),
      ...chunks.map((chunk) => writer.sendData(id, chunk)),
      writer.send({ op: "end", id }),
    ]);
    for (const chunk of chunks) reader.recycle(chunk);
    return;
  }
  await writer.send({ op: "ok", id, result: reader.meta });
  for await (const chunk of reader.chunks()) {
    if (closed()) return;
    await writer.sendData(id, chunk);
    reader.recycle(chunk);
  }
  await writer.send({ op: "end", id });
}

/**
 * Sends the entries of `pages` as the answer to request `id`, in frames bounded by count and by
 * bytes (at most `pageBytesMax`), so long names never make a frame too large. Each frame is
 * handed to the socket before the next page is asked for: a listing goes at the pace the client
 * reads it, and no more than a page and a frame are held. Stops early, unanswered, once `closed()`
 * says the connection is closing (or a write fails): the iteration is stopped, and so is whatever
 * makes the pages.
 */
export async function sendEntries(
  writer: FrameWriter,
  id: number,
  pages: AsyncIterable<readonly ListEntry[]>,
  options: { pageBytesMax: number; closed: () => boolean },
): Promise<void> {
  const { pageBytesMax, closed } = options;
  let frame: ListEntry[] = [];
  let frameBytes = 0;
  for await (const page of pages) {
    for (const entry of page) {
      const bytes = utf8ByteLength(entry.name) + LIST_ENTRY_OVERHEAD_BYTES;
      if (frameBytes + bytes > pageBytesMax) {
        if (closed()) return;
        await writer.send({ op: "entries", id, entries: frame });
        frame = [];
        frameBytes = 0;
      }
      frame.push(entry);
      frameBytes += bytes;
      // A full frame goes at once: its entries are garbage before the next page is merged.
      if (frame.length === LIST_PAGE_ENTRIES_MAX) {
        if (closed()) return;
        await writer.send({ op: "entries", id, entries: frame });
        frame = [];
        frameBytes = 0;
      }
    }
  }
  if (closed()) return;
  if (frame.length > 0) await writer.send({ op: "entries", id, entries: frame });
  await writer.send({ op: "end", id });
}
