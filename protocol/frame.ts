/**
 * Framing: every message is a u32 big-endian length followed by that many bytes of CBOR. Pure: no I/O.
 *
 * Data frames (`{ op: "data", id, crc32?, bytes }`) carry up to `DATA_BYTES_MAX` bytes. To avoid copying the
 * payload into the CBOR encoder, their header is built by hand (`encodeDataHeader`) and the payload
 * is written after it; any CBOR decoder reads the two as one map.
 *
 * @module
 */

import { decode, messageEncoder } from "./cbor.ts";
import { assert, DfsError } from "./errors.ts";
import { FRAME_HEADER_BYTES, FRAME_SIZE_BYTES_MAX } from "./limits.ts";

const encoder = messageEncoder();

/**
 * Encodes a message as one frame (length prefix included) in a fresh buffer.
 *
 * @throws {DfsError} `TOO_LARGE` if the encoded message exceeds `FRAME_SIZE_BYTES_MAX`.
 */
export function encodeFrame(message: unknown): Uint8Array {
  // encode() returns a view into the encoder's shared buffer: copy it out before the next call.
  const body = encoder.encode(message);
  if (body.length > FRAME_SIZE_BYTES_MAX) {
    throw new DfsError(
      "TOO_LARGE",
      `Message is ${body.length} bytes, over the frame limit of ${FRAME_SIZE_BYTES_MAX}`,
    );
  }
  const frame = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Reads a frame's length prefix (at `at` in `header`) and checks it against the limit before the
 * caller allocates.
 *
 * @throws {DfsError} `TOO_LARGE` for a length over `frameSizeBytesMax`.
 */
export function readFrameLength(
  header: Uint8Array,
  frameSizeBytesMax: number = FRAME_SIZE_BYTES_MAX,
  at = 0,
): number {
  assert(header.length >= at + FRAME_HEADER_BYTES, "frame header has 4 bytes");
  // Big-endian, by hand: no view made per frame.
  const length =
    (header[at] << 24 | header[at + 1] << 16 | header[at + 2] << 8 | header[at + 3]) >>>
    0;
  if (length > frameSizeBytesMax) {
    throw new DfsError(
      "TOO_LARGE",
      `Frame of ${length} bytes is over the limit of ${frameSizeBytesMax}`,
    );
  }
  return length;
}

/**
 * Decodes a frame body. Byte strings in the result are views into `body`, so `body` must not be
 * reused afterwards (give every frame its own buffer).
 *
 * @throws {DfsError} `INVALID_REQUEST` if the bytes are not one well-formed CBOR item.
 */
export function decodeFrameBody(body: Uint8Array): unknown {
  try {
    return decode(body);
  } catch (error) {
    throw new DfsError("INVALID_REQUEST", `Malformed frame: ${(error as Error).message}`);
  }
}

const DATA_KEYS = new TextEncoder().encode("\x62op\x64data\x62id");
const BYTES_KEY = new TextEncoder().encode("\x65bytes");
const CRC32_KEY = new TextEncoder().encode("\x65crc32");

/**
 * Builds the length prefix and CBOR header of a data frame `{ op: "data", id, crc32?, bytes }`
 * whose payload of `payloadBytes` follows it on the wire. `crc32` is the payload's CRC32, for the
 * receiver to check.
 */
export function encodeDataHeader(id: number, payloadBytes: number, crc32?: number): Uint8Array {
  assert(Number.isSafeInteger(id) && id >= 0 && id <= 0xffff_ffff, "data frame id is a u32");
  assert(payloadBytes >= 0 && payloadBytes <= 0xffff_ffff, "data frame payload fits a u32");
  assert(
    crc32 === undefined || (Number.isInteger(crc32) && crc32 >= 0 && crc32 <= 0xffff_ffff),
    "a CRC32 is a u32",
  );
  // Written in place (one per data frame, so no intermediate arrays): at most 4 + 1 + 12 + 5 +
  // 6 + 5 + 6 + 5 bytes.
  const header = new Uint8Array(FRAME_HEADER_BYTES + 1 + DATA_KEYS.length + 5 + 6 + 5 + 6 + 5);
  let at = FRAME_HEADER_BYTES;
  header[at++] = crc32 === undefined ? 0xa3 : 0xa4;
  header.set(DATA_KEYS, at);
  at += DATA_KEYS.length;
  at = writeCborHead(header, at, 0, id);
  if (crc32 !== undefined) {
    header.set(CRC32_KEY, at);
    at = writeCborHead(header, at + CRC32_KEY.length, 0, crc32);
  }
  header.set(BYTES_KEY, at);
  at = writeCborHead(header, at + BYTES_KEY.length, 2, payloadBytes);
  const cborBytes = at - FRAME_HEADER_BYTES;
  new DataView(header.buffer).setUint32(0, cborBytes + payloadBytes);
  return header.subarray(0, at);
}

/** Writes the CBOR head of a major type with a u32 argument at `at`; returns where it ends. */
function writeCborHead(out: Uint8Array, at: number, major: number, value: number): number {
  const type = major << 5;
  if (value < 24) {
    out[at] = type | value;
    return at + 1;
  }
  if (value < 0x100) {
    out[at] = type | 24;
    out[at + 1] = value;
    return at + 2;
  }
  if (value < 0x10000) {
    out[at] = type | 25;
    out[at + 1] = value >> 8;
    out[at + 2] = value & 0xff;
    return at + 3;
  }
  out[at] = type | 26;
  out[at + 1] = value >>> 24;
  out[at + 2] = (value >>> 16) & 0xff;
  out[at + 3] = (value >>> 8) & 0xff;
  out[at + 4] = value & 0xff;
  return at + 5;
}
