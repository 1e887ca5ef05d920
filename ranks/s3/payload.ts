/**
 * How a verified request's body is to be read, as its signed payload hash says: its SHA-256 given,
 * unsigned, or `aws-chunked` with chunk signatures or a checksum trailer (for `aws_chunked.ts`).
 * Pure.
 *
 * @module
 */

import { S3AuthError } from "./auth_error.ts";

const STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
const STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
const STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";

/** The trailers carrying a checksum of the decoded body that this gateway checks. */
export const CHECKSUM_TRAILERS = [
  "x-amz-checksum-crc32",
  "x-amz-checksum-crc32c",
  "x-amz-checksum-sha1",
  "x-amz-checksum-sha256",
] as const;

/** The name of a checksum trailer. */
export type ChecksumTrailer = typeof CHECKSUM_TRAILERS[number];

/** What chunk signatures of a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` body are checked with. */
export interface ChunkSigning {
  /** The request's signature, which the first chunk's signature chains from. */
  seedSignature: string;
  /** The derived signing key (HMAC-SHA256 key of the credential scope). */
  signingKey: Uint8Array;
  /** The credential scope, `DATE/REGION/SERVICE/aws4_request`. */
  scope: string;
  /** The request's `X-Amz-Date`. */
  amzDate: string;
}

/** How the gateway must read the body of a verified request. */
export type Payload =
  /** The body's SHA-256 was signed: check it at the end (`checkPayloadSha256`). */
  | { kind: "hash"; sha256: string }
  /** `UNSIGNED-PAYLOAD`: the body is taken as it comes. */
  | { kind: "unsigned" }
  /** `aws-chunked` with a signature per chunk, and a signed checksum trailer if `trailer` is set. */
  | {
    kind: "streaming-signed";
    seedSignature: string;
    signingKey: Uint8Array;
    scope: string;
    amzDate: string;
    trailer?: ChecksumTrailer;
    /** `x-amz-decoded-content-length`, if given. */
    decodedContentLength?: number;
  }
  /** `aws-chunked` without signatures, ended by a checksum trailer. */
  | {
    kind: "streaming-unsigned-trailer";
    trailer: ChecksumTrailer;
    /** `x-amz-decoded-content-length`, if given. */
    decodedContentLength?: number;
  };

/** How to read the body, from the signed payload hash (and, when streaming, the headers). */
export function payloadOf(payloadHash: string, headers?: Headers, signing?: ChunkSigning): Payload {
  if (/^[0-9a-fA-F]{64}$/.test(payloadHash)) {
    return { kind: "hash", sha256: payloadHash.toLowerCase() };
  }
  if (payloadHash === UNSIGNED_PAYLOAD) return { kind: "unsigned" };
  if (
    headers !== undefined && signing !== undefined &&
    [STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER].includes(payloadHash)
  ) {
    const decodedContentLength = parseDecodedContentLength(headers);
    const withLength = decodedContentLength === undefined ? {} : { decodedContentLength };
    if (payloadHash === STREAMING_SIGNED) {
      if (headers.has("x-amz-trailer")) {
        throw new S3AuthError(
          "InvalidArgument",
          `x-amz-trailer needs x-amz-content-sha256 ${STREAMING_SIGNED_TRAILER}`,
        );
      }
      return { kind: "streaming-signed", ...signing, ...withLength };
    }
    const trailer = parseTrailer(headers);
    if (payloadHash === STREAMING_SIGNED_TRAILER) {
      return { kind: "streaming-signed", ...signing, trailer, ...withLength };
    }
    return { kind: "streaming-unsigned-trailer", trailer, ...withLength };
  }
  if (payloadHash.startsWith("STREAMING-")) {
    throw new S3AuthError("InvalidRequest", `x-amz-content-sha256 ${payloadHash} is not supported`);
  }
  throw new S3AuthError(
    "InvalidArgument",
    "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, " +
      "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, STREAMING-UNSIGNED-PAYLOAD-TRAILER or a " +
      "valid sha256 value",
    { ArgumentName: "x-amz-content-sha256", ArgumentValue: payloadHash.slice(0, 80) },
  );
}

function parseDecodedContentLength(headers: Headers): number | undefined {
  const text = headers.get("x-amz-decoded-content-length");
  if (text === null) return undefined;
  const value = text.trim();
  if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new S3AuthError(
      "InvalidArgument",
      "x-amz-decoded-content-length must be a number of bytes",
      { ArgumentName: "x-amz-decoded-content-length", ArgumentValue: value.slice(0, 80) },
    );
  }
  return Number(value);
}

function parseTrailer(headers: Headers): ChecksumTrailer {
  const text = headers.get("x-amz-trailer");
  const name = text?.trim().toLowerCase();
  if (name === undefined || name === "") {
    throw new S3AuthError(
      "InvalidRequest",
      "A STREAMING-*-TRAILER body needs the x-amz-trailer header naming its checksum trailer",
    );
  }
  if (!(CHECKSUM_TRAILERS as readonly string[]).includes(name)) {
    throw new S3AuthError(
      "InvalidArgument",
      `The trailer ${name.slice(0, 80)} is not supported; send one of ` +
        CHECKSUM_TRAILERS.join(", "),
      { ArgumentName: "x-amz-trailer", ArgumentValue: name.slice(0, 80) },
    );
  }
  return name as ChecksumTrailer;
}
