/**
 * Frames over a byte stream (a `Deno.Conn` in practice). The only protocol module that does I/O.
 *
 * @module
 */

import type { BufferPool } from "./buffer_pool.ts";
import { concatBytes } from "./bytes.ts";
import { assert, DfsError } from "./errors.ts";
import { encodeDataHeader, encodeFrame, readFrameLength } from "./frame.ts";
import { FRAME_HEADER_BYTES, FRAME_SIZE_BYTES_MAX } from "./limits.ts";

/** The part of `Deno.Conn` the framing needs. */
export interface ByteStream {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
}

/** Bytes read from the socket at a time for small frames; large bodies are read straight in place. */
export const READ_BUFFER_BYTES = 64 * 1024;

/** Reads length-prefixed frames; each frame body comes back in its own buffer. */
export class FrameReader {
  #stream: ByteStream;
  /**
   * Largest frame body read, checked before allocating; may be raised once a handshake has said
   * who the peer is (a small limit before, a larger one after).
   */
  frameSizeBytesMax: number;
  /** Where bodies that fit are read into (settable, as the frame limit is). */
  pool: BufferPool | undefined;
  #buffer = new Uint8Array(READ_BUFFER_BYTES);
  #start = 0;
  #end = 0;

  /**
   * With a `pool`, bodies larger than `READ_BUFFER_BYTES` that fit a pooled buffer are read into one
   * (the caller may hand it back to the pool when done); others get a buffer of their own.
   */
  constructor(stream: ByteStream, options: { frameSizeBytesMax?: number; pool?: BufferPool } = {}) {
    this.#stream = stream;
    this.frameSizeBytesMax = options.frameSizeBytesMax ?? FRAME_SIZE_BYTES_MAX;
    this.pool = options.pool;
  }

  /**
   * Reads the next frame body into a buffer of its own (never reused by the reader). Returns null
   * when the stream ends cleanly between frames.
   *
   * @throws {DfsError} `TOO_LARGE` for a length over the limit (nothing allocated);
   *   `INVALID_REQUEST` when the stream ends inside a frame.
   */
  async read(): Promise<Uint8Array | null> {
    // A frame already buffered (a small put's three come in one read) costs no await and no view:
    // a server's reader makes every object it can spare less per request.
    const hasHeader = this.#end - this.#start >= FRAME_HEADER_BYTES;
    if (!hasHeader && !await this.#fill(FRAME_HEADER_BYTES)) {
      if (this.#end === this.#start) return null;
      throw new DfsError("INVALID_REQUEST", "Connection ended inside a frame header");
    }
    const length = readFrameLength(this.#buffer, this.frameSizeBytesMax, this.#start);
    this.#start += FRAME_HEADER_BYTES;
    if (length <= this.#end - this.#start && length <= READ_BUFFER_BYTES) {
      this.#start += length;
      return this.#buffer.slice(this.#start - length, this.#start);
    }
    const pooled = this.pool && length > READ_BUFFER_BYTES && length <= this.pool.bufferBytes;
    const body = pooled ? this.pool!.take().subarray(0, length) : new Uint8Array(length);
    const buffered = Math.min(length, this.#end - this.#start);
    body.set(this.#buffer.subarray(this.#start, this.#start + buffered));
    this.#start += buffered;
    let filled = buffered;
    while (filled < length) {
      // Large bodies: read straight into the frame's own buffer, no copy through #buffer.
      const n = await this.#stream.read(body.subarray(filled));
      if (n === null) {
        throw new DfsError("INVALID_REQUEST", "Connection ended inside a frame body");
      }
      filled += n;
    }
    return body;
  }

  /**
   * The next `bytes` bytes (at most `READ_BUFFER_BYTES`) without consuming them: fewer if the
   * stream ends first. Lets a caller look at a frame header before `read()` judges it.
   */
  async peek(bytes: number): Promise<Uint8Array> {
    assert(bytes <= READ_BUFFER_BYTES, "a peek fits the read buffer");
    await this.#fill(bytes);
    return this.#buffer.slice(this.#start, Math.min(this.#end, this.#start + bytes));
  }

  /** Makes at least `bytes` buffered bytes available; false at end of stream. */
  async #fill(bytes: number): Promise<boolean> {
    if (this.#end - this.#start >= bytes) return true;
    if (this.#start > 0) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    while (this.#end < bytes) {
      const n = await this.#stream.read(this.#buffer.subarray(this.#end));
      if (n === null) return false;
      this.#end += n;
    }
    return true;
  }
}

/**
 * Frames queued while the socket is busy (or within one turn) are written with one call while
 * together they stay under this many bytes: a small-file get's three frames (ok, data, end) then
 * cost one write instead of four.
 */
export const COALESCE_BYTES_MAX = 64 * 1024;

/** Drops a rejection: for promises whose failure is reported elsewhere. */
function ignore(): void {}

/**
 * Writes whole frames in order, so concurrent senders never interleave bytes; small frames queued
 * together go out in one write (`COALESCE_BYTES_MAX`).
 */
export class FrameWriter {
  #stream: ByteStream;
  #tail: Promise<void> = Promise.resolve();
  /** The queued batch small frames may still join, until its write starts. */
  #open: { parts: Uint8Array[]; bytes: number; done?: Promise<void> } | null = null;
  #stall: { timeoutMs: number; onStall: () => void } | undefined;
  #stallTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the write in progress started (`performance.now()`), 0 when none is. */
  #writingSince = 0;

  /**
   * With `stallTimeoutMs`, a single write that makes no progress for that long calls `onStall`
   * (which should close the stream, failing the write): a peer that stops reading cannot hold the
   * writer's buffers forever.
   */
  constructor(stream: ByteStream, options: { stallTimeoutMs?: number; onStall?: () => void } = {}) {
    this.#stream = stream;
    if (options.stallTimeoutMs !== undefined && options.onStall) {
      this.#stall = { timeoutMs: options.stallTimeoutMs, onStall: options.onStall };
    }
  }

  /** Encodes and writes one message. Resolves when the bytes are handed to the socket. */
  send(message: unknown): Promise<void> {
    const frame = encodeFrame(message);
    return this.#enqueue([frame]);
  }

  /**
   * Writes a frame already encoded, length prefix included (one the caller built for its own
   * limits), as one or several parts written in order and never interleaved with other frames.
   * Resolves when the bytes are handed to the socket.
   */
  sendFrame(...parts: Uint8Array[]): Promise<void> {
    return this.#enqueue(parts);
  }

  /** Writes a data frame `{ op: "data", id, crc32?, bytes }` without copying the payload. */
  sendData(id: number, payload: Uint8Array, crc32?: number): Promise<void> {
    return this.#enqueue([encodeDataHeader(id, payload.length, crc32), payload]);
  }

  #enqueue(parts: Uint8Array[]): Promise<void> {
    let bytes = 0;
    for (const part of parts) bytes += part.length;
    const open = this.#open;
    if (open && open.bytes + bytes <= COALESCE_BYTES_MAX) {
      open.parts.push(...parts);
      open.bytes += bytes;
      return open.done!;
    }
    const batch: { parts: Uint8Array[]; bytes: number; done?: Promise<void> } = { parts, bytes };
    this.#open = bytes <= COALESCE_BYTES_MAX ? batch : null;
    batch.done = this.#tail.then(() => {
      if (this.#open === batch) this.#open = null; // its write starts: nothing joins any more
      return this.#writeAll(batch.parts, batch.bytes);
    });
    // Later writes wait for this one but must not inherit its failure twice.
    this.#tail = batch.done.catch(ignore);
    return batch.done;
  }

  async #writeAll(parts: Uint8Array[], bytes: number): Promise<void> {
    // (No array around the joined frames, and a view only for what a short write left.)
    const joined = parts.length > 1 && bytes <= COALESCE_BYTES_MAX
      ? concatBytes(parts, bytes)
      : undefined;
    const count = joined ? 1 : parts.length;
    for (let i = 0; i < count; i++) {
      const part = joined ?? parts[i];
      let written = await this.#write(part);
      while (written < part.length) written += await this.#write(part.subarray(written));
    }
  }

  async #write(bytes: Uint8Array): Promise<number> {
    if (!this.#stall) return await this.#stream.write(bytes);
    this.#writingSince = performance.now();
    if (this.#stallTimer === undefined) this.#watchStall(this.#stall.timeoutMs);
    try {
      return await this.#stream.write(bytes);
    } finally {
      this.#writingSince = 0;
    }
  }

  /**
   * One timer per writer, not one per write (a timer per write cost ~4% of rank 0's time on small
   * files): when it fires it looks at how long the write in progress, if any, has been waiting.
   */
  #watchStall(ms: number): void {
    const timer = setTimeout(() => {
      this.#stallTimer = undefined;
      if (this.#writingSince === 0 || !this.#stall) return; // idle: the next write re-arms it
      const waited = performance.now() - this.#writingSince;
      if (waited >= this.#stall.timeoutMs) this.#stall.onStall();
      else this.#watchStall(this.#stall.timeoutMs - waited);
    }, ms);
    Deno.unrefTimer(timer); // a write in progress keeps the process alive by itself
    this.#stallTimer = timer;
  }

  /** Stops watching for stalls (the stream is being closed). */
  close(): void {
    clearTimeout(this.#stallTimer);
    this.#stallTimer = undefined;
    this.#stall = undefined;
  }
}

/** A socket failure: the peer closed or reset the connection, or it was closed under us. */
export function isConnectionError(error: unknown): error is Error {
  return error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.NotConnected ||
    error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted;
}

/**
 * Turns off Nagle's algorithm: a request or a reply is several small frames, and holding them back
 * until the peer's delayed ACK would add ~40 ms to every small operation.
 */
export function setNoDelay(conn: Deno.Conn): void {
  try {
    (conn as Partial<Deno.TcpConn>).setNoDelay?.(true);
  } catch { /* not TCP, or already closed */ }
}

/** Closes a socket (or listener) that may already be closed. */
export function closeQuietly(conn: { close(): void }): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}
