/**
 * A transport over byte streams (TCP or TLS sockets) between processes and hosts: a star, as the
 * rank library needs (rank 0 holds one link per remote peer, a remote peer holds one to rank 0).
 *
 * On the wire every packet is one frame: a u32 big-endian length, then a u32 header length, the
 * CBOR array `[source, tag, body]`, and the body's large byte strings after it (`encodePacket`). The length is checked against `TCP_FRAME_BYTES_MAX` before anything is
 * allocated, and a frame whose source is not the link's peer fails the link. Bodies are
 * serialized, never moved (`movesBuffers()` is false): a sent body may be reused at once.
 *
 * Backpressure: each link counts the bytes queued toward its peer. Past `TCP_QUEUE_BYTES_HIGH`,
 * `whenWritable(peer)` makes `Comm`'s calls and answers to that peer wait until the socket drains,
 * so a slow peer slows its own transfers and no one else's. Past `TCP_QUEUE_BYTES_MAX` (only sends
 * that do not wait can get there) the link is failed, as is a write that makes no progress for
 * `TCP_WRITE_STALL_MS`: nothing queues without bound. With `silenceTimeoutMs`, a link that brings
 * nothing for that long is failed too (a node's link to rank 0, which heartbeats every second:
 * a cable pulled out shows as silence, not as an error).
 *
 * Setting a link up (connecting, authenticating, telling ranks apart) is the caller's job; it hands
 * over the stream and the `FrameReader` it read the handshake with.
 *
 * @module
 */

import { concatBytes } from "../../protocol/bytes.ts";
import { addExtension, messageEncoder } from "../../protocol/cbor.ts";
import type { BufferPool } from "../../protocol/buffer_pool.ts";
import { FrameReader, FrameWriter } from "../../protocol/conn.ts";
import { assert, DfsError } from "../../protocol/errors.ts";
import { decodeFrameBody } from "../../protocol/frame.ts";
import { FRAME_HEADER_BYTES } from "../../protocol/limits.ts";
import type { Clock, TimerHandle } from "../env/env.ts";
import { systemClock } from "../env/system.ts";
import type { Packet, Transport } from "./transport.ts";

/**
 * Largest packet frame: a chunk with its call, or a node's whole scan or listing (one frame each:
 * 256 MiB holds the scan of about a million small files).
 */
export const TCP_FRAME_BYTES_MAX = 256 * 1024 * 1024;
/** Bytes queued toward one peer beyond which calls and answers to it wait for the socket. */
export const TCP_QUEUE_BYTES_HIGH = 8 * 1024 * 1024;
/** Bytes queued toward one peer beyond which its link is failed (it is not reading). */
export const TCP_QUEUE_BYTES_MAX = TCP_FRAME_BYTES_MAX + TCP_QUEUE_BYTES_HIGH;
/** A write to a peer that makes no progress for this long fails the link. */
export const TCP_WRITE_STALL_MS = 30_000;

/** The part of `Deno.Conn` a link uses. */
export interface LinkStream {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

/** Options of `new TcpTransport()`. */
export interface TcpTransportOptions {
  /** Largest frame read or written; default `TCP_FRAME_BYTES_MAX`. */
  frameBytesMax?: number;
  /** Queued bytes past which calls wait; default `TCP_QUEUE_BYTES_HIGH`. */
  queueBytesHigh?: number;
  /** Queued bytes past which the link fails; default `TCP_QUEUE_BYTES_MAX`. */
  queueBytesMax?: number;
  /** A link that brings no frame for this long fails (default: never). */
  silenceTimeoutMs?: number;
  /** Times silence; default systemClock. */
  clock?: Clock;
  /**
   * Told of each buffer a sender gave up (`transfer`) once its bytes are written (or their link
   * failed): the sender's pool takes it back.
   */
  recycle?: (buffer: ArrayBufferLike) => void;
}

interface Link {
  stream: LinkStream;
  reader: FrameReader;
  writer: FrameWriter;
  /** Bytes handed to the writer and not yet to the socket. */
  queued: number;
  /** Sends waiting for the queue to fall below the high-water mark. */
  room: PromiseWithResolvers<void> | null;
  /** When the last frame arrived (the clock's monotonic ms). */
  heardAt: number;
  closed: boolean;
}

const encoder = messageEncoder();

/**
 * Byte strings at least this long travel after a packet's CBOR header rather than inside it: they
 * are copied once into the frame, and arrive as views of it, never through the CBOR codec.
 */
export const ATTACHMENT_BYTES_MIN = 16 * 1024;
/** How deep in a body byte strings are looked for (a call's or an answer's bytes are shallow). */
const ATTACHMENT_DEPTH_MAX = 3;
/**
 * Room a sender leaves before the bytes of a buffer it gives up (a node's chunk read), for the
 * frame's prefix and header: then the whole frame is written at once, from that buffer.
 */
export const HEADROOM_BYTES = 128;
/** Bytes of a frame body's header length (u32, big-endian) before its CBOR header. */
const HEADER_LENGTH_BYTES = 4;

/** Where an attached byte string is, within the frame body's attachment area. */
class Attached {
  constructor(readonly offset: number, readonly length: number) {}
}

/** The CBOR tag (first-come range) of an `Attached` placeholder. */
const ATTACHED_TAG = 40_501;

addExtension({
  Class: Attached,
  tag: ATTACHED_TAG,
  encode(attached: Attached, encode: (value: unknown) => Uint8Array) {
    return encode([attached.offset, attached.length]);
  },
  decode(value: unknown) {
    const [offset, length] = Array.isArray(value) ? value : [];
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length)) {
      throw new TypeError("an attachment names its offset and length");
    }
    return new Attached(offset, length);
  },
});

/** Replaces large byte strings in `value` by placeholders, collecting them (copy on write). */
function detach(value: unknown, attachments: Uint8Array[], at: { bytes: number }, depth: number) {
  if (value instanceof Uint8Array) {
    if (value.length < ATTACHMENT_BYTES_MIN) return value;
    attachments.push(value);
    const attached = new Attached(at.bytes, value.length);
    at.bytes += value.length;
    return attached;
  }
  if (depth === 0 || typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    value.forEach((item, i) => {
      const moved = detach(item, attachments, at, depth - 1);
      if (moved !== item) (copy ??= [...value])[i] = moved;
    });
    return copy ?? value;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  let copy: Record<string, unknown> | undefined;
  for (const [key, item] of Object.entries(value)) {
    const moved = detach(item, attachments, at, depth - 1);
    if (moved !== item) (copy ??= { ...value as Record<string, unknown> })[key] = moved;
  }
  return copy ?? value;
}

/** Puts the attached byte strings back, as views of the frame body's attachment area. */
function attach(value: unknown, area: Uint8Array, depth: number): unknown {
  if (value instanceof Attached) {
    if (value.offset < 0 || value.length < 0 || value.offset + value.length > area.length) {
      throw new DfsError("CORRUPTED", "Malformed packet: an attachment lies outside the frame");
    }
    return area.subarray(value.offset, value.offset + value.length);
  }
  if (depth === 0 || typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = attach(value[i], area, depth - 1);
    return value;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) record[key] = attach(record[key], area, depth - 1);
  return value;
}

/**
 * Encodes a packet as one frame, length prefix included, in a buffer of its own: a u32 header
 * length, the CBOR array `[source, tag, body]` with large byte strings replaced by placeholders,
 * then those byte strings (`ATTACHMENT_BYTES_MIN`), each copied once.
 *
 * @throws {DfsError} `TOO_LARGE` if the frame body would exceed `frameBytesMax`.
 */
export function encodePacket(
  packet: Packet,
  frameBytesMax: number = TCP_FRAME_BYTES_MAX,
): Uint8Array {
  const parts = encodePacketParts(packet, { frameBytesMax });
  return parts.length === 1 ? parts[0] : concatBytes(parts);
}

/**
 * Encodes a packet as the parts of one frame, to write in order: the first holds the length
 * prefix, the header and every attachment copied into it, except those whose buffer is in `owned`
 * (given up by the sender, as `transfer` lists them), which follow as parts of their own, not
 * copied. When the first of those has room before its bytes in its buffer (`HEADROOM_BYTES`), the
 * prefix and header are written there and the two go as one part.
 *
 * @throws {DfsError} `TOO_LARGE` if the frame body would exceed `frameBytesMax`.
 */
export function encodePacketParts(
  packet: Packet,
  options: { frameBytesMax?: number; owned?: readonly ArrayBufferLike[] } = {},
): Uint8Array[] {
  const { frameBytesMax = TCP_FRAME_BYTES_MAX, owned = [] } = options;
  const attachments: Uint8Array[] = [];
  const at = { bytes: 0 };
  const body = detach(packet.body, attachments, at, ATTACHMENT_DEPTH_MAX + 1);
  // encode() returns a view into the encoder's shared buffer: copied out at once.
  const header = encoder.encode([packet.source, packet.tag, body]);
  const bodyBytes = HEADER_LENGTH_BYTES + header.length + at.bytes;
  if (bodyBytes > frameBytesMax) {
    throw new DfsError(
      "TOO_LARGE",
      `A packet of ${bodyBytes} bytes is over the frame limit of ${frameBytesMax}`,
    );
  }
  // Attachments are copied into the first part up to the first one the sender gave up; that one
  // and all after it go as parts of their own (copied only if not given up), keeping the order.
  const firstOwned = attachments.findIndex((bytes) => owned.includes(bytes.buffer));
  const copied = firstOwned === -1 ? attachments : attachments.slice(0, firstOwned);
  const copiedBytes = copied.reduce((sum, bytes) => sum + bytes.length, 0);
  const first = new Uint8Array(
    FRAME_HEADER_BYTES + HEADER_LENGTH_BYTES + header.length + copiedBytes,
  );
  const view = new DataView(first.buffer);
  view.setUint32(0, bodyBytes);
  view.setUint32(FRAME_HEADER_BYTES, header.length);
  let offset = FRAME_HEADER_BYTES + HEADER_LENGTH_BYTES;
  first.set(header, offset);
  offset += header.length;
  for (const bytes of copied) {
    first.set(bytes, offset);
    offset += bytes.length;
  }
  const rest = firstOwned === -1 ? [] : attachments.slice(firstOwned);
  const parts = rest.map((bytes) => owned.includes(bytes.buffer) ? bytes : bytes.slice());
  // A given-up buffer with room before its bytes takes the header there: one write, no copy.
  const [next] = parts;
  if (copied.length === 0 && next !== undefined && next.byteOffset >= first.length) {
    const merged = new Uint8Array(
      next.buffer,
      next.byteOffset - first.length,
      first.length + next.length,
    );
    merged.set(first);
    return [merged, ...parts.slice(1)];
  }
  return [first, ...parts];
}

/**
 * Decodes a frame body into a packet. Byte strings in the body are views into `body`.
 *
 * @throws {DfsError} `CORRUPTED` if it is not a packet `[source, tag, body]`.
 */
export function decodePacket(body: Uint8Array): Packet {
  let value: unknown;
  try {
    if (body.length < HEADER_LENGTH_BYTES) throw new Error("shorter than its header length");
    const headerBytes = new DataView(body.buffer, body.byteOffset, HEADER_LENGTH_BYTES)
      .getUint32(0);
    if (headerBytes > body.length - HEADER_LENGTH_BYTES) throw new Error("header past its end");
    const end = HEADER_LENGTH_BYTES + headerBytes;
    value = decodeFrameBody(body.subarray(HEADER_LENGTH_BYTES, end));
    value = attach(value, body.subarray(end), ATTACHMENT_DEPTH_MAX + 2);
  } catch (error) {
    if (error instanceof DfsError && error.code === "CORRUPTED") throw error;
    throw new DfsError("CORRUPTED", `Malformed packet: ${(error as Error).message}`);
  }
  if (
    !Array.isArray(value) || value.length !== 3 || !Number.isSafeInteger(value[0]) ||
    !Number.isSafeInteger(value[1])
  ) {
    throw new DfsError("CORRUPTED", "Malformed packet: not [source, tag, body]");
  }
  return { source: value[0], tag: value[1], body: value[2] };
}

/** A Transport over one byte stream per peer. */
export class TcpTransport implements Transport {
  readonly rank: number;
  readonly size: number;
  onPacket: ((packet: Packet) => void) | null = null;
  onPeerError: ((rank: number, error: unknown) => void) | null = null;
  #links = new Map<number, Link>();
  #frameBytesMax: number;
  #queueBytesHigh: number;
  #queueBytesMax: number;
  #silenceTimeoutMs: number | undefined;
  #clock: Clock;
  #recycle: ((buffer: ArrayBufferLike) => void) | undefined;
  #silenceTimer: TimerHandle | undefined;
  #closed = false;

  constructor(rank: number, size: number, options: TcpTransportOptions = {}) {
    assert(Number.isSafeInteger(size) && size >= 1, `size ${size} must be a positive integer`);
    assert(Number.isSafeInteger(rank) && rank >= 0 && rank < size, `rank ${rank} out of range`);
    this.rank = rank;
    this.size = size;
    this.#frameBytesMax = options.frameBytesMax ?? TCP_FRAME_BYTES_MAX;
    this.#queueBytesHigh = options.queueBytesHigh ?? TCP_QUEUE_BYTES_HIGH;
    this.#queueBytesMax = options.queueBytesMax ?? TCP_QUEUE_BYTES_MAX;
    this.#silenceTimeoutMs = options.silenceTimeoutMs;
    this.#clock = options.clock ?? systemClock;
    this.#recycle = options.recycle;
    assert(this.#queueBytesHigh <= this.#queueBytesMax, "the high-water mark is below the limit");
  }

  /** Never: bodies are serialized. */
  movesBuffers(_dest: number): boolean {
    return false;
  }

  /**
   * Where frames that fit are read into (rank 0's chunk buffers: a chunk read from a node arrives
   * in one, and goes back to the pool once sent on to its client). Set before links are attached.
   */
  pool: BufferPool | undefined;

  /** Whether a link to `peer` is open. */
  hasLink(peer: number): boolean {
    return this.#links.has(peer);
  }

  /** Bytes queued toward `peer` and not yet written to its socket (0 without a link). */
  queuedBytes(peer: number): number {
    return this.#links.get(peer)?.queued ?? 0;
  }

  /**
   * Makes `stream` the link to `peer` and starts reading packets from it, with `reader` if the
   * caller already read from the stream (a handshake; its frame limit is raised to this
   * transport's). A link already open to `peer` is closed
   * first, without reporting it. A link that fails later (its stream ends, a read or write fails,
   * a malformed frame, silence) is closed and reported through `onPeerError`.
   */
  attach(peer: number, stream: LinkStream, options: { reader?: FrameReader } = {}): void {
    assert(Number.isSafeInteger(peer) && peer >= 0 && peer < this.size, `peer ${peer} in range`);
    assert(peer !== this.rank, `rank ${peer} cannot link to itself`);
    assert(!this.#closed, "attach() on a closed transport");
    this.detach(peer);
    const reader = options.reader ?? new FrameReader(stream, { pool: this.pool });
    reader.frameSizeBytesMax = this.#frameBytesMax;
    reader.pool = this.pool;
    const link: Link = {
      stream,
      reader,
      writer: new FrameWriter(stream, {
        stallTimeoutMs: TCP_WRITE_STALL_MS,
        onStall: () => {
          const message = `Writes to rank ${peer} made no progress for ${TCP_WRITE_STALL_MS} ms`;
          this.#fail(peer, link, new DfsError("UNAVAILABLE", message));
        },
      }),
      queued: 0,
      room: null,
      heardAt: this.#clock.monotonic(),
      closed: false,
    };
    this.#links.set(peer, link);
    void this.#readLoop(peer, link);
    this.#watchSilence();
  }

  /** Closes the link to `peer`, if any, without reporting it (its owner decided). */
  detach(peer: number): void {
    const link = this.#links.get(peer);
    if (link) this.#closeLink(peer, link);
  }

  /**
   * Queues a packet for `dest`'s socket, serialized now: `body` may be reused at once, except
   * the buffers listed in `transfer`, which the sender gives up (as it would to postMessage): large
   * byte strings in them are written from where they are, not copied.
   *
   * @throws {DfsError} `UNAVAILABLE` with no link to `dest` (or after close()), or when its queue
   *   would pass `queueBytesMax` (the link is failed); `TOO_LARGE` for a packet over the frame
   *   limit.
   */
  send(dest: number, tag: number, body: unknown, transfer: ArrayBuffer[] = []): void {
    const link = this.#links.get(dest);
    if (link === undefined) {
      const why = this.#closed ? "the transport is closed" : "it is not connected";
      throw new DfsError("UNAVAILABLE", `Cannot send to rank ${dest}: ${why}`);
    }
    const parts = encodePacketParts({ source: this.rank, tag, body }, {
      frameBytesMax: this.#frameBytesMax,
      owned: transfer,
    });
    const frame = { length: parts.reduce((sum, part) => sum + part.length, 0) };
    if (link.queued + frame.length > this.#queueBytesMax) {
      const message = `Cannot send to rank ${dest}: ${link.queued} bytes are queued toward it ` +
        `already, the limit is ${this.#queueBytesMax}`;
      this.#fail(dest, link, new DfsError("UNAVAILABLE", message));
      throw new DfsError("UNAVAILABLE", message);
    }
    link.queued += frame.length;
    const given = parts.filter((part) => transfer.includes(part.buffer as ArrayBuffer));
    const recycle = () => {
      for (const part of given) this.#recycle?.(part.buffer);
    };
    link.writer.sendFrame(...parts).then(
      () => {
        recycle();
        link.queued -= frame.length;
        if (link.queued < this.#queueBytesHigh) this.#wake(link);
      },
      (error) => {
        recycle();
        this.#fail(dest, link, error);
      },
    );
  }

  /** Resolves once the queue toward `dest` is below the high-water mark (or its link closes). */
  whenWritable(dest: number): Promise<void> | undefined {
    const link = this.#links.get(dest);
    if (link === undefined || link.queued < this.#queueBytesHigh) return undefined;
    link.room ??= Promise.withResolvers<void>();
    return link.room.promise;
  }

  /** Closes every link; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [peer, link] of [...this.#links]) this.#closeLink(peer, link);
    this.#clock.clearTimeout(this.#silenceTimer);
    this.onPacket = null;
    this.onPeerError = null;
  }

  async #readLoop(peer: number, link: Link): Promise<void> {
    try {
      while (!link.closed) {
        const body = await link.reader.read();
        if (body === null) throw new DfsError("UNAVAILABLE", "the connection was closed");
        link.heardAt = this.#clock.monotonic();
        const packet = decodePacket(body);
        if (packet.source !== peer) {
          throw new DfsError("CORRUPTED", `a packet claims to come from rank ${packet.source}`);
        }
        if (link.closed) return;
        this.onPacket?.(packet);
      }
    } catch (error) {
      this.#fail(peer, link, error);
    }
  }

  /** Closes a link that failed and reports it, unless it was closed or replaced already. */
  #fail(peer: number, link: Link, error: unknown): void {
    if (link.closed) return;
    this.#closeLink(peer, link);
    const why = error instanceof Error ? error.message : String(error);
    const code = error instanceof DfsError && error.code === "CORRUPTED"
      ? "CORRUPTED"
      : "UNAVAILABLE";
    const failure = new DfsError(code, `Lost the link to rank ${peer}: ${why}`, { cause: error });
    if (this.onPeerError !== null) this.onPeerError(peer, failure);
  }

  #closeLink(peer: number, link: Link): void {
    link.closed = true;
    if (this.#links.get(peer) === link) this.#links.delete(peer);
    link.writer.close();
    try {
      link.stream.close();
    } catch { /* already closed */ }
    this.#wake(link);
  }

  #wake(link: Link): void {
    const room = link.room;
    link.room = null;
    room?.resolve();
  }

  /** One timer for every link's silence, armed while there are links. */
  #watchSilence(): void {
    const timeoutMs = this.#silenceTimeoutMs;
    if (timeoutMs === undefined || this.#silenceTimer !== undefined || this.#closed) return;
    this.#silenceTimer = this.#clock.setTimeout(() => {
      this.#silenceTimer = undefined;
      const now = this.#clock.monotonic();
      for (const [peer, link] of [...this.#links]) {
        if (now - link.heardAt < timeoutMs) continue;
        const message = `nothing arrived for ${Math.round(now - link.heardAt)} ms`;
        this.#fail(peer, link, new DfsError("UNAVAILABLE", message));
      }
      if (this.#links.size > 0) this.#watchSilence();
    }, Math.max(1, Math.floor(timeoutMs / 4)));
  }
}
