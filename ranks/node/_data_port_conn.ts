/**
 * A bare connection to a data port that sends and reads frames as a test says (the data port
 * tests share it).
 *
 * @module
 */

import { FrameReader, FrameWriter } from "../../protocol/conn.ts";
import { decodeFrameBody } from "../../protocol/frame.ts";

/** A chunk a test writes to or reads from a data port: its id, bytes and CRC32. */
export interface DataChunk {
  id: string;
  bytes: Uint8Array;
  crc32: number;
}

/** How long a test waits for a data port's reply. */
export const REPLY_TIMEOUT_MS = 10_000;

/** Connects to the data port on 127.0.0.1 `port`; `next()` is the next frame, null at its end. */
export async function rawDataConn(port: number) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const reader = new FrameReader(conn, { frameSizeBytesMax: 4 * 1024 * 1024 });
  const writer = new FrameWriter(conn);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const next = async () => {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("no reply from the data port")), REPLY_TIMEOUT_MS);
    });
    try {
      const body = await Promise.race([reader.read(), timeout]);
      return body === null ? null : decodeFrameBody(body) as Record<string, unknown>;
    } finally {
      clearTimeout(timer);
    }
  };
  return { conn, writer, next };
}
