/**
 * The `aws-chunked` body encoding of S3 uploads, decoded as it streams: `<hex size>[;chunk-
 * signature=<sig>]\r\n<data>\r\n` chunks up to a last one of size 0, then trailer lines such as
 * `x-amz-checksum-crc32:<base64>\r\n` and an empty line. Signed chunks (`STREAMING-AWS4-HMAC-
 * SHA256-PAYLOAD[-TRAILER]`, as restic's minio-go and SDKs over plain HTTP send) chain each chunk's
 * signature from the previous one, starting at the request's; unsigned chunks
 * (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`, as current SDKs send over HTTPS) end with a checksum
 * trailer. Pure: bytes in, bytes out, an `S3AuthError` on bad input. Memory is bounded: a chunk's
 * data is passed through as it arrives, only header and trailer lines are buffered.
 *
 * @module
 */

import { concatBytes } from "../../protocol/bytes.ts";
import { Buffer } from "node:buffer";
import { createHash, type Hash } from "node:crypto";
import { crc32 } from "node:zlib";
import { S3AuthError } from "./auth_error.ts";
import { bytesToHex, hmac, sha256Hex, signatureMatches } from "./canonical.ts";
import { type ChecksumTrailer, type ChunkSigning, type Payload } from "./payload.ts";
import { checkPayloadSha256, EMPTY_SHA256 } from "./sigv4.ts";

/** Longest chunk header line, CRLF included (a signed one is about 100 bytes). */
export const CHUNK_HEADER_BYTES_MAX = 4096;
/** Largest chunk accepted (SDKs send 64 KiB to 8 MiB); a chunk's data is streamed, not held. */
export const CHUNK_SIZE_BYTES_MAX = 16 * 1024 * 1024;
/** Most bytes of trailer lines after the last chunk, CRLFs included. */
export const TRAILER_BYTES_MAX = 4096;

/** The payloads sent as `aws-chunked`. */
export type StreamingPayload = Extract<
  Payload,
  { kind: "streaming-signed" } | { kind: "streaming-unsigned-trailer" }
>;

const CR = 0x0d;
const LF = 0x0a;
const CHUNK_SIGNATURE_PATTERN = /^chunk-signature=([0-9a-fA-F]{64})$/;
const TRAILER_SIGNATURE = "x-amz-trailer-signature";

/**
 * Decodes an `aws-chunked` body, checking every chunk signature, the checksum trailer and
 * `x-amz-decoded-content-length` as the payload (from `verifyRequest`) says. Pure: `push()` takes
 * the bytes as they arrive, in pieces of any size, and returns the decoded bytes (views of its
 * input, not copies); `end()` says the body is over.
 *
 * Decoded bytes are returned as they arrive, BEFORE the signature of their chunk (known only
 * after its last byte) or the trailer checksum (after the last chunk) is checked: the caller must
 * commit what it stored only once `end()` has returned, and discard it on any error.
 *
 * @throws {S3AuthError} from `push()` or `end()`: `SignatureDoesNotMatch` (a chunk or trailer
 *   signature), `BadDigest` (the checksum trailer), `IncompleteBody` (the body ends early, or
 *   decodes to fewer bytes than declared), `MalformedTrailerError` (a trailer missing, unknown
 *   or given twice), `InvalidArgument` (a malformed chunk header or CRLF, a header line over
 *   `CHUNK_HEADER_BYTES_MAX`, a chunk over `CHUNK_SIZE_BYTES_MAX`, trailers over
 *   `TRAILER_BYTES_MAX`, more bytes than declared, bytes after the end).
 */
export class AwsChunkedDecoder {
  #payload: StreamingPayload;
  #phase: "header" | "data" | "data-crlf" | "trailer" | "done" = "header";
  #line = new Uint8Array(CHUNK_HEADER_BYTES_MAX);
  #lineLength = 0;
  /** Bytes of the current chunk's data still to come. */
  #remaining = 0;
  /** Bytes of the CRLF after a chunk's data seen so far. */
  #crlfSeen = 0;
  #chunks = 0;
  #decodedBytes = 0;
  #trailerBytes = 0;
  #trailers = new Map<string, string>();
  /** For signed chunks: the previous signature, the claimed one and the running SHA-256. */
  #previousSignature = "";
  #claimedSignature = "";
  #chunkHash: Hash | undefined;
  #checksum: Checksum | undefined;

  constructor(payload: StreamingPayload) {
    this.#payload = payload;
    if (payload.kind === "streaming-signed") this.#previousSignature = payload.seedSignature;
    if (payload.trailer !== undefined) this.#checksum = newChecksum(payload.trailer);
  }

  /** Decoded bytes so far. */
  get decodedBytes(): number {
    return this.#decodedBytes;
  }

  /** The trailers read (names in lower case), once the body is over. */
  get trailers(): ReadonlyMap<string, string> {
    return this.#trailers;
  }

  /** Takes the next bytes of the body and returns the data they decode to. */
  push(bytes: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    let at = 0;
    while (at < bytes.length) {
      if (this.#phase === "header" || this.#phase === "trailer") {
        at = this.#readLine(bytes, at);
      } else if (this.#phase === "data") {
        const take = Math.min(this.#remaining, bytes.length - at);
        const piece = bytes.subarray(at, at + take);
        this.#chunkHash?.update(piece);
        this.#checksum?.update(piece);
        this.#decodedBytes += take;
        this.#remaining -= take;
        at += take;
        out.push(piece);
        if (this.#remaining === 0) {
          this.#checkChunkSignature();
          this.#phase = "data-crlf";
          this.#crlfSeen = 0;
        }
      } else if (this.#phase === "data-crlf") {
        if (bytes[at] !== (this.#crlfSeen === 0 ? CR : LF)) {
          throw malformed(`The data of chunk ${this.#chunks} is not followed by CRLF`);
        }
        at++;
        if (++this.#crlfSeen === 2) this.#phase = "header";
      } else {
        throw malformed("The aws-chunked body goes on after its trailers");
      }
    }
    return out;
  }

  /**
   * Says the body is over.
   *
   * @throws {S3AuthError} `IncompleteBody` unless the last chunk and the trailers have come.
   */
  end(): void {
    if (this.#phase !== "done") {
      throw new S3AuthError(
        "IncompleteBody",
        `The aws-chunked body ended ${
          this.#phase === "trailer" ? "in its trailers" : `in chunk ${this.#chunks}`
        } after ${this.#decodedBytes} bytes of data`,
      );
    }
  }

  /** Buffers bytes of a header or trailer line up to its LF; returns where it stopped. */
  #readLine(bytes: Uint8Array, at: number): number {
    const room = this.#line.length - this.#lineLength;
    const window = bytes.subarray(at, at + room);
    const lf = window.indexOf(LF);
    const end = lf < 0 ? window.length : lf + 1;
    this.#line.set(window.subarray(0, end), this.#lineLength);
    this.#lineLength += end;
    if (lf < 0) {
      if (this.#lineLength === this.#line.length) {
        throw malformed(
          `A ${this.#phase === "header" ? "chunk header" : "trailer"} line is longer than ` +
            `${CHUNK_HEADER_BYTES_MAX} bytes`,
        );
      }
      return at + end;
    }
    const line = this.#line.subarray(0, this.#lineLength);
    this.#lineLength = 0;
    if (line.length < 2 || line[line.length - 2] !== CR) {
      throw malformed(`A line of the aws-chunked body does not end with CRLF`);
    }
    const text = String.fromCharCode(...line.subarray(0, line.length - 2));
    if (this.#phase === "header") this.#onChunkHeader(text);
    else this.#onTrailerLine(text, line.length);
    return at + end;
  }

  #onChunkHeader(text: string): void {
    this.#chunks++;
    const semicolon = text.indexOf(";");
    const hex = semicolon < 0 ? text : text.slice(0, semicolon);
    if (!/^[0-9a-fA-F]{1,16}$/.test(hex)) {
      throw malformed(`Chunk ${this.#chunks} has no hexadecimal size: "${text.slice(0, 80)}"`);
    }
    const size = parseInt(hex, 16);
    if (size > CHUNK_SIZE_BYTES_MAX) {
      throw malformed(
        `Chunk ${this.#chunks} of ${size} bytes is over the ${CHUNK_SIZE_BYTES_MAX} allowed`,
      );
    }
    const declared = this.#payload.decodedContentLength;
    if (declared !== undefined && this.#decodedBytes + size > declared) {
      throw malformed(
        `The aws-chunked body holds more than the ${declared} bytes x-amz-decoded-content-length ` +
          "declares",
      );
    }
    if (this.#payload.kind === "streaming-signed") {
      const match = CHUNK_SIGNATURE_PATTERN.exec(semicolon < 0 ? "" : text.slice(semicolon + 1));
      if (match === null) {
        throw malformed(`Chunk ${this.#chunks} has no chunk-signature=<64 hexadecimal digits>`);
      }
      this.#claimedSignature = match[1];
      this.#chunkHash = createHash("sha256");
    }
    this.#remaining = size;
    if (size > 0) {
      this.#phase = "data";
      return;
    }
    this.#checkChunkSignature();
    this.#phase = "trailer";
  }

  #checkChunkSignature(): void {
    if (this.#payload.kind !== "streaming-signed") return;
    const expected = chunkSignature(
      this.#payload,
      this.#previousSignature,
      this.#chunkHash!.digest("hex"),
    );
    if (!signatureMatches(this.#claimedSignature, expected)) {
      throw signatureMismatch(`chunk ${this.#chunks}`);
    }
    this.#previousSignature = this.#claimedSignature.toLowerCase();
  }

  #onTrailerLine(text: string, bytes: number): void {
    this.#trailerBytes += bytes;
    if (this.#trailerBytes > TRAILER_BYTES_MAX) {
      throw malformed(`The trailers are longer than ${TRAILER_BYTES_MAX} bytes`);
    }
    if (text === "") {
      this.#finish();
      return;
    }
    const colon = text.indexOf(":");
    const name = text.slice(0, colon).trim().toLowerCase();
    if (colon <= 0 || name === "") throw badTrailer(`"${text.slice(0, 80)}" is not name:value`);
    if (this.#trailers.has(name)) throw badTrailer(`The trailer ${name} is given twice`);
    this.#trailers.set(name, text.slice(colon + 1).trim());
  }

  #finish(): void {
    const payload = this.#payload;
    const expected = new Set<string>();
    if (payload.trailer !== undefined) expected.add(payload.trailer);
    if (payload.trailer !== undefined && payload.kind === "streaming-signed") {
      expected.add(TRAILER_SIGNATURE);
    }
    for (const name of this.#trailers.keys()) {
      if (!expected.has(name)) {
        throw badTrailer(`The trailer ${name.slice(0, 80)} was not declared in x-amz-trailer`);
      }
    }
    for (const name of expected) {
      if (!this.#trailers.has(name)) throw badTrailer(`The trailer ${name} is missing`);
    }
    if (payload.trailer !== undefined) {
      const value = this.#trailers.get(payload.trailer)!;
      if (payload.kind === "streaming-signed") {
        const signature = trailerSignature(
          payload,
          this.#previousSignature,
          `${payload.trailer}:${value}\n`,
        );
        if (!signatureMatches(this.#trailers.get(TRAILER_SIGNATURE)!, signature)) {
          throw signatureMismatch("the trailers");
        }
      }
      const computed = this.#checksum!.digestBase64();
      if (computed !== value) {
        throw new S3AuthError(
          "BadDigest",
          `The ${CHECKSUM_NAMES[payload.trailer]} you specified did not match the calculated ` +
            "checksum",
          { ExpectedChecksum: value.slice(0, 80), CalculatedChecksum: computed },
        );
      }
    }
    const declared = payload.decodedContentLength;
    if (declared !== undefined && this.#decodedBytes !== declared) {
      throw new S3AuthError(
        "IncompleteBody",
        `The aws-chunked body holds ${this.#decodedBytes} bytes where ` +
          `x-amz-decoded-content-length declares ${declared}`,
      );
    }
    this.#phase = "done";
  }
}

/**
 * An `aws-chunked` decoder as a stream (see `AwsChunkedDecoder`, whose errors it fails with):
 * `request.body.pipeThrough(awsChunkedStream(payload))`. Data flows before it is verified; only
 * a stream that closes without error holds a verified body.
 */
export function awsChunkedStream(
  payload: StreamingPayload,
): TransformStream<Uint8Array, Uint8Array> {
  const decoder = new AwsChunkedDecoder(payload);
  return new TransformStream({
    transform(bytes, controller) {
      for (const piece of decoder.push(bytes)) controller.enqueue(piece);
    },
    flush() {
      decoder.end();
    },
  });
}

/**
 * A stream that passes a body through and fails, at its end, if its SHA-256 is not `expected`
 * (lower-case hex).
 *
 * @throws {S3AuthError} `XAmzContentSHA256Mismatch` (through the stream).
 */
export function sha256CheckStream(expected: string): TransformStream<Uint8Array, Uint8Array> {
  const hash = createHash("sha256");
  return new TransformStream({
    transform(bytes, controller) {
      hash.update(bytes);
      controller.enqueue(bytes);
    },
    flush() {
      checkPayloadSha256(expected, new Uint8Array(hash.digest()));
    },
  });
}

/**
 * How to read a verified request's body: `request.body.pipeThrough(payloadStream(payload))`.
 * A signed SHA-256 is checked at the end, `aws-chunked` is decoded and checked, an unsigned body
 * passes as it is. Whatever the stream gives is to be committed only once it has closed without
 * error.
 */
export function payloadStream(payload: Payload): TransformStream<Uint8Array, Uint8Array> {
  if (payload.kind === "hash") return sha256CheckStream(payload.sha256);
  if (payload.kind === "unsigned") return new TransformStream();
  return awsChunkedStream(payload);
}

/** The signature of a chunk: HMAC of `AWS4-HMAC-SHA256-PAYLOAD` … its data's SHA-256. */
export function chunkSignature(
  signing: Omit<ChunkSigning, "seedSignature">,
  previousSignature: string,
  dataSha256: string,
): Uint8Array {
  return hmac(
    signing.signingKey,
    `AWS4-HMAC-SHA256-PAYLOAD\n${signing.amzDate}\n${signing.scope}\n${previousSignature}\n` +
      `${EMPTY_SHA256}\n${dataSha256}`,
  );
}

/** The signature of the trailers (`name:value\n` each), chained from the last chunk's. */
export function trailerSignature(
  signing: Omit<ChunkSigning, "seedSignature">,
  previousSignature: string,
  canonicalTrailers: string,
): Uint8Array {
  return hmac(
    signing.signingKey,
    `AWS4-HMAC-SHA256-TRAILER\n${signing.amzDate}\n${signing.scope}\n${previousSignature}\n` +
      sha256Hex(canonicalTrailers),
  );
}

/**
 * Encodes data as an `aws-chunked` body, one chunk per element of `chunks` and a last empty one:
 * signed if `signing` is given, with a checksum trailer if `trailer` is (its value computed, or
 * `trailerValue`). For tests and clients; the gateway only decodes.
 */
export function encodeAwsChunked(
  chunks: readonly Uint8Array[],
  options: { signing?: ChunkSigning; trailer?: ChecksumTrailer; trailerValue?: string } = {},
): Uint8Array {
  const parts: Uint8Array[] = [];
  const text = (s: string) => parts.push(new TextEncoder().encode(s));
  const checksum = options.trailer === undefined ? undefined : newChecksum(options.trailer);
  let previous = options.signing?.seedSignature ?? "";
  for (const chunk of [...chunks.filter((c) => c.length > 0), new Uint8Array(0)]) {
    checksum?.update(chunk);
    let header = chunk.length.toString(16);
    if (options.signing !== undefined) {
      previous = bytesToHex(chunkSignature(options.signing, previous, sha256Hex(chunk)));
      header += `;chunk-signature=${previous}`;
    }
    text(`${header}\r\n`);
    if (chunk.length > 0) {
      parts.push(chunk);
      text("\r\n");
    }
  }
  if (options.trailer !== undefined) {
    const line = `${options.trailer}:${options.trailerValue ?? checksum!.digestBase64()}`;
    text(`${line}\r\n`);
    if (options.signing !== undefined) {
      const signature = trailerSignature(options.signing, previous, `${line}\n`);
      text(`${TRAILER_SIGNATURE}:${bytesToHex(signature)}\r\n`);
    }
  }
  text("\r\n");
  return concatBytes(parts);
}

/** A running checksum of a trailer's kind, given as S3 gives it (base64, big-endian). */
interface Checksum {
  update(bytes: Uint8Array): void;
  digestBase64(): string;
}

const CHECKSUM_NAMES: Record<ChecksumTrailer, string> = {
  "x-amz-checksum-crc32": "CRC32",
  "x-amz-checksum-crc32c": "CRC32C",
  "x-amz-checksum-sha1": "SHA1",
  "x-amz-checksum-sha256": "SHA256",
};

function newChecksum(trailer: ChecksumTrailer): Checksum {
  if (trailer === "x-amz-checksum-sha1" || trailer === "x-amz-checksum-sha256") {
    const hash = createHash(trailer === "x-amz-checksum-sha1" ? "sha1" : "sha256");
    return {
      update: (bytes) => hash.update(bytes),
      digestBase64: () => hash.digest("base64"),
    };
  }
  const step = trailer === "x-amz-checksum-crc32" ? crc32 : crc32c;
  let value = 0;
  return {
    update: (bytes) => value = step(bytes, value),
    digestBase64: () => {
      const out = Buffer.alloc(4);
      out.writeUInt32BE(value >>> 0);
      return out.toString("base64");
    },
  };
}

const CRC32C_TABLES = crc32cTables();

function crc32cTables(): Uint32Array[] {
  const tables = Array.from({ length: 8 }, () => new Uint32Array(256));
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    tables[0][n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    for (let t = 1; t < 8; t++) {
      const prev = tables[t - 1][n];
      tables[t][n] = (prev >>> 8) ^ tables[0][prev & 0xff];
    }
  }
  return tables;
}

/**
 * CRC32C (Castagnoli) of `bytes`, continuing from `previous` (the CRC32C of the bytes before),
 * as `node:zlib`'s `crc32` does for CRC32.
 */
export function crc32c(bytes: Uint8Array, previous = 0): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = CRC32C_TABLES;
  let crc = ~previous >>> 0;
  let i = 0;
  const end8 = bytes.length - (bytes.length % 8);
  for (; i < end8; i += 8) {
    crc ^= bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    crc = t7[crc & 0xff] ^ t6[(crc >>> 8) & 0xff] ^ t5[(crc >>> 16) & 0xff] ^ t4[crc >>> 24] ^
      t3[bytes[i + 4]] ^ t2[bytes[i + 5]] ^ t1[bytes[i + 6]] ^ t0[bytes[i + 7]];
  }
  for (; i < bytes.length; i++) crc = (crc >>> 8) ^ t0[(crc ^ bytes[i]) & 0xff];
  return ~crc >>> 0;
}

function malformed(message: string): S3AuthError {
  return new S3AuthError("InvalidArgument", message);
}

function badTrailer(message: string): S3AuthError {
  return new S3AuthError("MalformedTrailerError", message);
}

function signatureMismatch(what: string): S3AuthError {
  return new S3AuthError(
    "SignatureDoesNotMatch",
    `The signature of ${what} of the aws-chunked body does not match what we calculated`,
  );
}
