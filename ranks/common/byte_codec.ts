/**
 * The primitives of dfs's compact binary encodings (`manifest_codec.ts`, a data node's log
 * records): bytes, unsigned LEB128 varints of whole numbers up to 2^53, strings as a varint UTF-8
 * byte length and the bytes, big-endian u32s and float64s, and lower-case hex kept as raw bytes.
 * `ByteWriter` appends them to a buffer that doubles as it fills; `ByteReader` reads them back,
 * checking every length against the bytes left before it reads or allocates anything, and throws a
 * `DfsError` `CORRUPTED` rather than read past the end. Pure: no I/O.
 *
 * @module
 */

import { assert, DfsError } from "../../protocol/errors.ts";
import { parseHex } from "./hex_bytes.ts";

/** Bytes of a varint at most: 8 groups of 7 bits hold every number up to 2^53. */
export const VARINT_BYTES_MAX = 8;
/** Bytes a new `ByteWriter` holds before it first doubles, unless told otherwise. */
export const BYTE_WRITER_BYTES_MIN = 256;
/** Bytes a `ByteWriter` keeps when reset; a larger buffer is let go. */
export const BYTE_WRITER_KEPT_BYTES_MAX = 64 * 1024;
/** Bytes one `ByteWriter` holds at most (it doubles up to this). */
export const BYTE_WRITER_BYTES_MAX = 2 ** 30;

const U32_BYTES = 4;
const FLOAT64_BYTES = 8;
/** Strings up to this many bytes, if ASCII, are made without a `TextDecoder` (~3x faster). */
const ASCII_FAST_BYTES_MAX = 128;

/** Character codes of the lower-case hex digits. */
export const HEX_DIGIT_CODES: readonly number[] = Array.from(
  "0123456789abcdef",
  (digit) => digit.charCodeAt(0),
);
/** Eight bytes to turn a float64 into big-endian bytes and back. */
const float64 = new DataView(new ArrayBuffer(FLOAT64_BYTES));
const float64Bytes = new Uint8Array(float64.buffer);
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** True for a number a varint holds as is: a safe integer, not negative (nor -0). */
export function isWhole(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0 && !Object.is(n, -0);
}

/** Appends primitives to a buffer that doubles as it fills. */
export class ByteWriter {
  #buffer: Uint8Array;
  #length = 0;

  /** A writer holding `initialBytes` before it first grows. */
  constructor(initialBytes = BYTE_WRITER_BYTES_MIN) {
    assert(
      Number.isSafeInteger(initialBytes) && initialBytes > 0 &&
        initialBytes <= BYTE_WRITER_BYTES_MAX,
      "a writer starts with 1 to BYTE_WRITER_BYTES_MAX bytes",
    );
    this.#buffer = new Uint8Array(initialBytes);
  }

  /** Bytes written so far. */
  get byteLength(): number {
    return this.#length;
  }

  /** A fresh copy of the bytes written, exactly sized. */
  bytes(): Uint8Array {
    return this.#buffer.slice(0, this.#length);
  }

  /** Copies the bytes written into `target` from byte `at` (which must have room for them). */
  copyTo(target: Uint8Array, at = 0): void {
    assert(at >= 0 && at + this.#length <= target.length, "the target has room for the bytes");
    target.set(this.#buffer.subarray(0, this.#length), at);
  }

  /**
   * Forgets the bytes written, to write anew into the same buffer (a new buffer costs more than
   * encoding a small manifest); a buffer grown over `BYTE_WRITER_KEPT_BYTES_MAX` is let go.
   */
  reset(): void {
    this.#length = 0;
    if (this.#buffer.length > BYTE_WRITER_KEPT_BYTES_MAX) {
      this.#buffer = new Uint8Array(BYTE_WRITER_BYTES_MIN);
    }
  }

  /** Forgets the bytes written after the first `length` (to undo a write that failed). */
  truncate(length: number): void {
    assert(length >= 0 && length <= this.#length, "a writer is cut within its bytes");
    this.#length = length;
  }

  /** Appends one byte (0 to 255). */
  addByte(byte: number): void {
    assert(Number.isInteger(byte) && byte >= 0 && byte <= 0xff, "a byte is 0 to 255");
    this.#reserve(1);
    this.#buffer[this.#length++] = byte;
  }

  /** Overwrites byte `at`, written before (a flags byte is known after the fields it flags). */
  setByte(at: number, byte: number): void {
    assert(at >= 0 && at < this.#length, "a byte is set where one was written");
    this.#buffer[at] = byte;
  }

  /** Appends a safe non-negative integer as a varint of 1 to `VARINT_BYTES_MAX` bytes. */
  addVarint(n: number): void {
    if (!isWhole(n)) assert(false, `${n} is a safe non-negative integer`);
    this.#reserve(VARINT_BYTES_MAX);
    const buffer = this.#buffer;
    let at = this.#length;
    while (n > 0xffffffff) {
      buffer[at++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    while (n > 0x7f) {
      buffer[at++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    buffer[at++] = n;
    this.#length = at;
  }

  /** Appends a u32, big-endian. */
  addU32(n: number): void {
    assert(Number.isInteger(n) && n >= 0 && n <= 0xffffffff, "a u32 is 0 to 2^32 - 1");
    this.#reserve(U32_BYTES);
    const [buffer, at] = [this.#buffer, this.#length];
    buffer[at] = n >>> 24; // a Uint8Array keeps the low 8 bits of each
    buffer[at + 1] = n >>> 16;
    buffer[at + 2] = n >>> 8;
    buffer[at + 3] = n;
    this.#length += U32_BYTES;
  }

  /** Appends any number as a float64, big-endian (-0 and NaN too). */
  addFloat64(n: number): void {
    assert(typeof n === "number", "a float64 is a number");
    float64.setFloat64(0, n);
    this.#reserve(FLOAT64_BYTES);
    this.#buffer.set(float64Bytes, this.#length);
    this.#length += FLOAT64_BYTES;
  }

  /**
   * Appends the first `bytes` * 2 characters of `text` as raw bytes if they are lower-case hex
   * digits; else appends nothing and returns false.
   */
  addHex(text: string, bytes: number): boolean {
    this.#reserve(bytes);
    if (!parseHex(text, bytes, this.#buffer, this.#length)) return false;
    this.#length += bytes;
    return true;
  }

  /**
   * Appends a string: its UTF-8 byte length as a varint, then its UTF-8 bytes.
   *
   * @throws {Error} an assertion if `text` is not well-formed UTF-16 (a lone surrogate would not
   *   come back the same).
   */
  addString(text: string): void {
    assert(typeof text === "string", "a string field holds a string");
    const length = text.length;
    if (length <= 0x7f) {
      // One length byte; write the bytes as ASCII until a character is not.
      this.#reserve(1 + length);
      const buffer = this.#buffer;
      const at = this.#length + 1;
      let i = 0;
      for (; i < length; i++) {
        const code = text.charCodeAt(i);
        if (code > 0x7f) break;
        buffer[at + i] = code;
      }
      if (i === length) {
        buffer[at - 1] = length;
        this.#length = at + length;
        return;
      }
    }
    assert(text.isWellFormed(), "a string is well-formed UTF-16");
    const bytes = utf8Encoder.encode(text);
    this.addVarint(bytes.length);
    this.#reserve(bytes.length);
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  /**
   * Appends `bytes` as they are.
   *
   * @throws {DfsError} `TOO_LARGE` past `BYTE_WRITER_BYTES_MAX`.
   */
  addBytes(bytes: Uint8Array): void {
    this.#reserve(bytes.length);
    this.#buffer.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  /** Makes room for `bytes` more, doubling the buffer as often as needed. */
  #reserve(bytes: number): void {
    const needed = this.#length + bytes;
    if (needed <= this.#buffer.length) return;
    if (needed > BYTE_WRITER_BYTES_MAX) {
      throw new DfsError(
        "TOO_LARGE",
        `Cannot encode: ${needed} bytes is over the limit of ${BYTE_WRITER_BYTES_MAX}`,
      );
    }
    let capacity = this.#buffer.length;
    while (capacity < needed) capacity *= 2;
    const grown = new Uint8Array(Math.min(capacity, BYTE_WRITER_BYTES_MAX));
    grown.set(this.#buffer.subarray(0, this.#length));
    this.#buffer = grown;
  }
}

/** Reads primitives from a position on, checking the bytes left before each read. */
export class ByteReader {
  #bytes: Uint8Array;
  #at: number;
  #subject: string;

  /**
   * A reader of `bytes` from `at`; errors name `subject` (what the bytes hold: "a manifest",
   * "a log record").
   */
  constructor(bytes: Uint8Array, options: { at?: number; subject?: string } = {}) {
    const at = options.at ?? 0;
    assert(
      Number.isSafeInteger(at) && at >= 0 && at <= bytes.length,
      "a reader starts within its bytes",
    );
    this.#bytes = bytes;
    this.#at = at;
    this.#subject = options.subject ?? "bytes";
  }

  /** Where the next read starts. */
  get at(): number {
    return this.#at;
  }

  /** Bytes left after `at`. */
  get left(): number {
    return this.#bytes.length - this.#at;
  }

  /** A `CORRUPTED` error saying what is wrong at `at`, to throw (also for the caller's checks). */
  malformed(why: string, at = this.#at): DfsError {
    return new DfsError("CORRUPTED", `Cannot decode ${this.#subject} at byte ${at}: ${why}`);
  }

  /** Reads one byte. */
  byte(): number {
    this.#need(1, "a byte");
    return this.#bytes[this.#at++];
  }

  /**
   * Reads a varint: a safe non-negative integer in at most `VARINT_BYTES_MAX` bytes, with no
   * needless 0 byte at its end (so that every number has one encoding).
   */
  varint(): number {
    const bytes = this.#bytes;
    const start = this.#at;
    this.#need(1, "a number");
    let byte = bytes[start];
    if (byte < 0x80) {
      this.#at = start + 1;
      return byte;
    }
    let value = byte & 0x7f;
    let scale = 0x80;
    let at = start + 1;
    while (true) {
      if (at - start === VARINT_BYTES_MAX) {
        throw this.malformed(`a number runs over ${VARINT_BYTES_MAX} bytes`, start);
      }
      if (at === bytes.length) throw this.malformed("it ends inside a number", start);
      byte = bytes[at++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) break;
      scale *= 0x80;
    }
    if (byte === 0) throw this.malformed("a number ends in a needless 0 byte", start);
    if (value > Number.MAX_SAFE_INTEGER) throw this.malformed("a number is over 2^53 - 1", start);
    this.#at = at;
    return value;
  }

  /** Reads a big-endian u32. */
  u32(): number {
    this.#need(U32_BYTES, "a u32");
    const [bytes, at] = [this.#bytes, this.#at];
    this.#at += U32_BYTES;
    return bytes[at] * 0x1000000 + ((bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]);
  }

  /** Reads a big-endian float64. */
  float64(): number {
    this.#need(FLOAT64_BYTES, "a float64");
    float64Bytes.set(this.#bytes.subarray(this.#at, this.#at + FLOAT64_BYTES));
    this.#at += FLOAT64_BYTES;
    return float64.getFloat64(0);
  }

  /** Reads a string: a varint byte length, then that many bytes of UTF-8. */
  string(): string {
    const length = this.varint();
    this.#need(length, "a string");
    const bytes = this.#bytes;
    const start = this.#at;
    const end = start + length;
    this.#at = end;
    if (length <= ASCII_FAST_BYTES_MAX) {
      let i = start;
      while (i < end && bytes[i] < 0x80) i++;
      if (i === end) {
        // A plain array: ~40% faster than passing a subarray.
        const codes = new Array<number>(length);
        for (let k = 0; k < length; k++) codes[k] = bytes[start + k];
        return String.fromCharCode.apply(null, codes);
      }
    }
    try {
      return utf8Decoder.decode(bytes.subarray(start, end));
    } catch {
      throw this.malformed("a string is not UTF-8", start);
    }
  }

  /** Skips `bytes` bytes holding `what`, and returns where they start (for `hexCodes()`). */
  skip(bytes: number, what: string): number {
    this.#need(bytes, what);
    const start = this.#at;
    this.#at += bytes;
    return start;
  }

  /**
   * Puts the lower-case hex digits of `bytes` bytes from `at` (read before, see `skip()`) into
   * `codes` from index `into`, as character codes.
   */
  hexCodes(at: number, bytes: number, codes: number[], into = 0): void {
    assert(at >= 0 && at + bytes <= this.#bytes.length, "hex digits of bytes in the reader");
    const source = this.#bytes;
    for (let i = 0; i < bytes; i++) {
      const byte = source[at + i];
      codes[into + 2 * i] = HEX_DIGIT_CODES[byte >>> 4];
      codes[into + 2 * i + 1] = HEX_DIGIT_CODES[byte & 15];
    }
  }

  #need(bytes: number, what: string): void {
    if (bytes > this.#bytes.length - this.#at) throw this.malformed(`it ends inside ${what}`);
  }
}
