/**
 * An object's bytes on their way in: a request body, decoded as its payload says, fed to a store
 * upload with its digests taken on the way and checked against the request's before the caller
 * commits. Shared by PutObject and UploadPart.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import type { Upload } from "../common/file_store.ts";
import { payloadStream } from "./aws_chunked.ts";
import { checkDigests, emptyBody, owned, withStallTimeout } from "./request.ts";
import { S3Error } from "./s3_error.ts";

/** How a verified request's body is to be read (`sigv4.ts`'s verdict). */
export type BodyPayload = Parameters<typeof payloadStream>[0];

/**
 * Reads `body` into `upload` (without committing it) and checks every digest the request
 * declares; returns the MD5 of the bytes in hex (an S3 ETag). A body that stalls for `stallMs`
 * fails.
 *
 * @throws {S3Error} `BadDigest`, `InvalidDigest`, `XAmzContentSHA256Mismatch` for a digest that
 *   does not match; `IncompleteBody` for a body shorter than declared; the upload's errors.
 */
export async function receiveBody(
  upload: Upload,
  body: ReadableStream<Uint8Array> | null,
  options: {
    payload: BodyPayload;
    headers: Headers;
    /** The size the request declared. */
    size: number;
    stallMs: number;
    resource: string;
  },
): Promise<string> {
  const { headers } = options;
  const md5 = createHash("md5");
  const sha256 = headers.has("x-amz-checksum-sha256") ? createHash("sha256") : undefined;
  let crc = 0;
  const decoded = (body ?? emptyBody()).pipeThrough(payloadStream(options.payload));
  for await (const piece of withStallTimeout(decoded, options.stallMs)) {
    md5.update(piece);
    sha256?.update(piece);
    crc = crc32(piece, crc);
    await upload.write(owned(piece));
  }
  if (upload.receivedBytes !== options.size) {
    throw new S3Error(
      "IncompleteBody",
      `The body ended after ${upload.receivedBytes} of its declared ${options.size} bytes`,
      { resource: options.resource },
    );
  }
  const etag = md5.digest("hex");
  checkDigests(headers, { md5: etag, crc32: crc, sha256: sha256?.digest("base64") });
  return etag;
}
