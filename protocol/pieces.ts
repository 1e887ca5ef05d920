/**
 * How a client cuts what it uploads into data frames: the payload a server's frame limit allows,
 * any source turned into pieces of that size, and those pieces sent as an upload's data frames.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import type { FrameWriter } from "./conn.ts";
import { CHUNK_SIZE_BYTES, DATA_FRAME_OVERHEAD_BYTES } from "./limits.ts";
import type { Reply } from "./messages.ts";
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

/**
 * Sends upload `id`'s bytes from `source` in data frames of at most `dataBytesMax`, each with its
 * CRC32 (with `verify`), then its end (with the SHA-256); resolves with the server's answer. An
 * early refusal (a bad name, a full disk), which arrives while the bytes go, stops the sending
 * and is the answer: the upload is then aborted.
 */
export async function sendPieces(
  link: { writer: FrameWriter; dataBytesMax: number },
  reply: () => Promise<Reply>,
  upload: { id: number; source: ByteSource; verify: boolean },
): Promise<Reply> {
  const { writer, dataBytesMax } = link;
  const { id, source, verify } = upload;
  let answer: Reply | null = null;
  const watching = reply().then((r) => answer = r);
  watching.catch(() => {});
  const hash = verify ? createHash("sha256") : null;
  for await (const piece of rechunk(source, dataBytesMax)) {
    if (answer) break;
    hash?.update(piece);
    await writer.sendData(id, piece, verify ? crc32(piece) : undefined);
  }
  if (answer) {
    // Refused early: the server drops the rest of this upload and answers nothing more for it.
    await writer.send({ op: "abort", id });
    return answer;
  }
  await writer.send({ op: "end", id, sha256: hash?.digest("hex") });
  return await watching;
}
