/**
 * A data node's data port (`dfs node --data-port`): clients read chunks here directly, and write
 * the chunks of uploads rank 0 planned, each request carrying a grant rank 0 signed
 * (`protocol/direct.ts`), so that a large file's bytes do not pass through rank 0.
 *
 * Every connection starts with a hello (within `DATA_PORT_HANDSHAKE_TIMEOUT_MS`), then sends
 * requests: a `read`, answered by a `data` frame; a `write`, its bytes in the `data` frame right
 * after it, answered `written` once in the blob (the upload must be open here: see
 * `direct_writes.ts`); any of them by an `error` frame with the request's id; in the order they
 * finish. Limits: request frames of at most `DATA_REQUEST_BYTES_MAX` (a write's bytes, one chunk);
 * `DIRECT_READS_INFLIGHT_MAX` requests in flight per connection (beyond that the connection is
 * not read, so TCP pushes back on the client) and `DATA_PORT_TRANSFERS_MAX` for the whole port,
 * each holding one pooled buffer; `DATA_PORT_CONNECTIONS_MAX` connections (more are closed at
 * once, and at most `DATA_PORT_CONNECTIONS_PER_ADDRESS_MAX` from one address); a write's grant is
 * checked before its bytes are read (without one the connection closes); a connection quiet for
 * `DATA_PORT_IDLE_TIMEOUT_MS` with nothing in flight is closed, and one whose client stops reading
 * is closed after `DATA_PORT_WRITE_TIMEOUT_MS`. A malformed frame gets an error and closes its
 * connection; nothing else is disturbed.
 *
 * @module
 */

import type { BufferPool } from "../../protocol/buffer_pool.ts";
import {
  closeQuietly,
  FrameReader,
  FrameWriter,
  isConnectionError,
  setNoDelay,
} from "../../protocol/conn.ts";
import {
  checkGrant,
  DATA_REQUEST_BYTES_MAX,
  type DataRequest,
  DIRECT_PROTOCOL_VERSION,
  DIRECT_READS_INFLIGHT_MAX,
  parseDataRequest,
} from "../../protocol/direct.ts";
import { DfsError } from "../../protocol/errors.ts";
import { FRAME_SIZE_BYTES_MAX } from "../../protocol/limits.ts";
import { decodeFrameBody, encodeDataHeader } from "../../protocol/frame.ts";
import { HEADROOM_BYTES } from "../comm/tcp_transport.ts";
import { SMALL_READ_BYTES_MAX } from "../common/chunk_id.ts";
import { Semaphore } from "../common/semaphore.ts";
import type { Clock, Log } from "../env/env.ts";
import type { DataNode } from "./data_node.ts";

/** Client connections a data port serves at once; more are closed as they come. */
export const DATA_PORT_CONNECTIONS_MAX = 256;
/** Connections from one address at once (a client host); more are closed as they come. */
export const DATA_PORT_CONNECTIONS_PER_ADDRESS_MAX = 64;
/** Chunk reads and writes in flight on one data port, all connections together (each holds a buffer). */
export const DATA_PORT_TRANSFERS_MAX = 32;
/** How long a client has to send its hello. */
export const DATA_PORT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** A connection with nothing in flight that sends nothing for this long is closed. */
export const DATA_PORT_IDLE_TIMEOUT_MS = 60_000;
/** A write to a client that makes no progress for this long closes its connection. */
export const DATA_PORT_WRITE_TIMEOUT_MS = 30_000;

/** What a data port serves from. */
export interface DataPortOptions {
  /** The node now (a node whose disk failed is opened again: the port follows it). */
  node: () => DataNode | undefined;
  /** The key grants are signed with (`grantKey` of the cluster secret). */
  key: Uint8Array;
  /** Buffers chunks are read into; each goes back once its bytes are on the socket. */
  pool: BufferPool;
  clock: Clock;
  log: Log;
}

/** A data port being served; `close()` stops it and closes its connections. */
export interface DataPort {
  /** The port it listens on. */
  readonly port: number;
  close(): Promise<void>;
}

/** Serves `listener` as a data port until closed. */
export function serveDataPort(listener: Deno.Listener, options: DataPortOptions): DataPort {
  const conns = new Set<Deno.Conn>();
  /** Connections open by client address (`DATA_PORT_CONNECTIONS_PER_ADDRESS_MAX`). */
  const perAddress = new Map<string, number>();
  const transfers = new Semaphore(DATA_PORT_TRANSFERS_MAX);
  const served = new Set<Promise<void>>();
  let closed = false;
  const accepting = (async () => {
    while (!closed) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (closed || error instanceof Deno.errors.BadResource) return;
        options.log.error(`dfs: data port: ${(error as Error).message}`);
        continue;
      }
      const from = (conn.remoteAddr as Deno.NetAddr).hostname;
      const fromHere = perAddress.get(from) ?? 0;
      if (
        conns.size >= DATA_PORT_CONNECTIONS_MAX || fromHere >= DATA_PORT_CONNECTIONS_PER_ADDRESS_MAX
      ) {
        closeQuietly(conn);
        continue;
      }
      conns.add(conn);
      perAddress.set(from, fromHere + 1);
      const serving = serveConnection(conn, transfers, options).finally(() => {
        conns.delete(conn);
        const left = (perAddress.get(from) ?? 1) - 1;
        if (left > 0) perAddress.set(from, left);
        else perAddress.delete(from);
        closeQuietly(conn);
      });
      served.add(serving);
      serving.then(() => served.delete(serving));
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      closed = true;
      closeQuietly(listener);
      for (const conn of conns) closeQuietly(conn);
      await accepting;
      await Promise.allSettled(served);
    },
  };
}

/** Serves one client connection until it leaves, misbehaves or goes quiet. */
async function serveConnection(
  conn: Deno.Conn,
  transfers: Semaphore,
  options: DataPortOptions,
): Promise<void> {
  setNoDelay(conn);
  const { clock } = options;
  const reader = new FrameReader(conn, { frameSizeBytesMax: DATA_REQUEST_BYTES_MAX });
  const writer = new FrameWriter(conn, {
    stallTimeoutMs: DATA_PORT_WRITE_TIMEOUT_MS,
    onStall: () => closeQuietly(conn),
  });
  const mine = new Semaphore(DIRECT_READS_INFLIGHT_MAX);
  const inflight = new Set<Promise<void>>();
  let activeAt = clock.monotonic();
  let timeoutMs = DATA_PORT_HANDSHAKE_TIMEOUT_MS;
  let timer: unknown;
  const watch = () => {
    timer = clock.setTimeout(() => {
      const quiet = clock.monotonic() - activeAt;
      if (inflight.size === 0 && quiet >= timeoutMs) return closeQuietly(conn);
      watch();
    }, Math.max(timeoutMs - (clock.monotonic() - activeAt), 1));
  };
  watch();
  try {
    const hello = await reader.read();
    if (hello === null) return;
    parseHello(hello);
    const node = options.node();
    await writer.send({ op: "hello", version: DIRECT_PROTOCOL_VERSION, rank: node?.rank ?? 0 });
    timeoutMs = DATA_PORT_IDLE_TIMEOUT_MS;
    reader.pool = options.pool; // a write's bytes go into pooled buffers
    while (true) {
      activeAt = clock.monotonic();
      await mine.acquire();
      const body = await reader.read();
      if (body === null) break;
      activeAt = clock.monotonic();
      const request = parseDataRequest(decodeFrameBody(body));
      if (request.op === "hello") throw new DfsError("INVALID_REQUEST", "A second hello");
      let answer: Promise<void>;
      if (request.op === "read") {
        await transfers.acquire();
        answer = answerRead(request, writer, options);
      } else {
        // Only a write with a grant has its bytes taken in, and in a slot of the port's: a client
        // without one holds no buffer and no slot (the connection closes: its bytes would follow).
        checkGrant(options.key, request.grant, request.chunk, clock.now(), "write");
        await transfers.acquire();
        reader.frameSizeBytesMax = FRAME_SIZE_BYTES_MAX;
        const bytes = await readPayload(reader, request.id, options.pool).catch((error) => {
          transfers.release();
          throw error;
        }).finally(() => reader.frameSizeBytesMax = DATA_REQUEST_BYTES_MAX);
        answer = answerWrite(request, bytes, writer, options);
      }
      const done = answer.finally(() => {
        transfers.release();
        mine.release();
      });
      inflight.add(done);
      done.then(() => inflight.delete(done));
    }
  } catch (error) {
    if (!isConnectionError(error)) {
      const wire = error instanceof DfsError ? error : new DfsError("INTERNAL", String(error));
      await writer.send({ op: "error", id: 0, ...wire.toWire() }).catch(() => {});
    }
  } finally {
    clock.clearTimeout(timer);
    await Promise.allSettled(inflight);
    writer.close();
  }
}

/**
 * The bytes of write `id`: the next frame, a `data` frame of that id (a view of a pooled buffer).
 *
 * @throws {DfsError} `INVALID_REQUEST` for anything else (the connection is then out of step).
 */
async function readPayload(
  reader: FrameReader,
  id: number,
  pool: BufferPool,
): Promise<Uint8Array> {
  const body = await reader.read();
  if (body === null) {
    throw new DfsError("INVALID_REQUEST", "Connection ended before a write's bytes");
  }
  const frame = decodeFrameBody(body) as { op?: unknown; id?: unknown; bytes?: unknown } | null;
  if (frame?.op !== "data" || frame.id !== id || !(frame.bytes instanceof Uint8Array)) {
    pool.give(body.buffer);
    throw new DfsError("INVALID_REQUEST", `Write ${id}'s bytes must follow it in a data frame`);
  }
  return frame.bytes;
}

/**
 * Writes one chunk of an upload open here (`direct_writes.ts`), its grant checked before its
 * bytes were read, and answers `written`, or sends the reason it cannot; never throws. Gives the
 * bytes' buffer back to the pool.
 */
async function answerWrite(
  request: Extract<DataRequest, { op: "write" }>,
  bytes: Uint8Array,
  writer: FrameWriter,
  options: DataPortOptions,
): Promise<void> {
  const { id, chunk, crc32 } = request;
  try {
    const node = options.node();
    if (node === undefined) throw new DfsError("UNAVAILABLE", "This data node is not open");
    node.direct.admit(chunk, bytes.length);
    let written: { size: number; crc32: number } | undefined;
    try {
      await node.handle({ op: "write", id: chunk, bytes, crc32 });
      written = { size: bytes.length, crc32 };
    } finally {
      if (!node.direct.finish(chunk, written)) {
        // Discarded (or expired) while this write was on its way to the disk, which may have made
        // the blob again after the discard removed it: it goes for good.
        written = undefined;
        await node.handle({ op: "discard", ids: [chunk] }).catch(() => {});
      }
    }
    if (written === undefined) {
      throw new DfsError(
        "UNAUTHORIZED",
        `Upload of chunk ${chunk} was closed while it was written`,
      );
    }
    await writer.send({ op: "written", id });
  } catch (error) {
    await sendError(writer, id, error);
  } finally {
    options.pool.give(bytes.buffer);
  }
}

/** Tells the client why request `id` failed (a failed disk as rank 0 would: try elsewhere). */
async function sendError(writer: FrameWriter, id: number, error: unknown): Promise<void> {
  const wire = error instanceof DfsError ? error : new DfsError("INTERNAL", String(error));
  const code = wire.code === "NODE_FAILED" ? "UNAVAILABLE" : wire.code;
  await writer.send({ op: "error", id, code, message: wire.message }).catch(() => {});
}

function parseHello(body: Uint8Array): void {
  const hello = parseDataRequest(decodeFrameBody(body));
  if (hello.op !== "hello") throw new DfsError("INVALID_REQUEST", "Expected a hello first");
}

/**
 * Reads one chunk and sends it, or sends the reason it cannot; never throws. A large chunk is read
 * into a pooled buffer past `HEADROOM_BYTES`, where its frame's header then goes, so that the
 * frame leaves in one write.
 */
async function answerRead(
  request: Extract<DataRequest, { op: "read" }>,
  writer: FrameWriter,
  options: DataPortOptions,
): Promise<void> {
  const { id, chunk, size, crc32 } = request;
  const fits = size > SMALL_READ_BYTES_MAX && HEADROOM_BYTES + size <= options.pool.bufferBytes;
  const buffer = fits ? options.pool.take() : undefined;
  try {
    checkGrant(options.key, request.grant, chunk, options.clock.now());
    const node = options.node();
    if (node === undefined) throw new DfsError("UNAVAILABLE", "This data node is not open");
    const into = buffer?.subarray(HEADROOM_BYTES, HEADROOM_BYTES + size);
    const bytes = await node.handle({ op: "read", id: chunk, size, crc32, into });
    if (!(bytes instanceof Uint8Array)) throw new DfsError("INTERNAL", "A read gave no bytes");
    if (into === undefined || bytes.buffer !== into.buffer || bytes.byteOffset !== HEADROOM_BYTES) {
      return await writer.sendData(id, bytes);
    }
    const header = encodeDataHeader(id, bytes.length);
    const at = HEADROOM_BYTES - header.length;
    buffer!.set(header, at);
    await writer.sendFrame(buffer!.subarray(at, HEADROOM_BYTES + bytes.length));
  } catch (error) {
    await sendError(writer, id, error);
  } finally {
    options.pool.give(buffer?.buffer);
  }
}
