/**
 * An open read (`FileReader`) handed on: as a byte stream pulled a chunk at a time, or whole in one
 * buffer. Each closes the read when done, failed or cancelled.
 *
 * @module
 */

import type { FileReader } from "./file_store.ts";

/** The read as a byte stream, a chunk at a time (each copied out, its buffer recycled). */
export function readerStream(reader: FileReader): ReadableStream<Uint8Array> {
  const chunks = reader.chunks()[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await chunks.next();
        if (next.done) {
          reader.close();
          return controller.close();
        }
        controller.enqueue(next.value.slice());
        reader.recycle(next.value);
      } catch (error) {
        reader.close();
        controller.error(error);
      }
    },
    async cancel() {
      await chunks.return?.();
      reader.close();
    },
  }, { highWaterMark: 0 });
}

/** The read's bytes in one buffer (its range's length, `end - start`). */
export async function readWhole(reader: FileReader): Promise<Uint8Array<ArrayBuffer>> {
  const bytes = new Uint8Array(reader.end - reader.start);
  let at = 0;
  try {
    for await (const chunk of reader.chunks()) {
      bytes.set(chunk, at);
      at += chunk.length;
      reader.recycle(chunk);
    }
  } finally {
    reader.close();
  }
  return bytes;
}
