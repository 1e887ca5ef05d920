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
 * Sends `entries` as the answer to request `id`, in pages bounded by count and by bytes (at most
 * `pageBytesMax`), so long names never make a frame too large.
 */
export async function sendEntries(
  writer: FrameWriter,
  id: number,
  entries: readonly ListEntry[],
  pageBytesMax: number,
): Promise<void> {
  let page: ListEntry[] = [];
  let pageBytes = 0;
  for (const entry of entries) {
    const bytes = utf8ByteLength(entry.name) + LIST_ENTRY_OVERHEAD_BYTES;
    if (page.length === LIST_PAGE_ENTRIES_MAX || pageBytes + bytes > pageBytesMax) {
      await writer.send({ op: "entries", id, entries: page });
      page = [];
      pageBytes = 0;
    }
    page.push(entry);
    pageBytes += bytes;
  }
  if (page.length > 0) await writer.send({ op: "entries", id, entries: page });
  await writer.send({ op: "end", id });
}
