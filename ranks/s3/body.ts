/**
 * An object's bytes on their way in: a request body, decoded as its payload says, fed to a store
 * upload with its digests taken on the way and checked against the request's before it commits.
 * Shared by PutObject and UploadPart.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import type { FileMeta } from "../../protocol/messages.ts";
import type { StreamingFileStore, Upload } from "../common/file_store.ts";
import type { FileAttrs } from "../common/manifest.ts";
import { payloadStream } from "./aws_chunked.ts";
import { checkDigests, emptyBody, owned, withStallTimeout } from "./request.ts";
import { checkPayloadSha256 } from "./sigv4.ts";
import type { TimerHandle } from "../env/env.ts";
import { S3Error } from "./s3_error.ts";

/**
 * A body of at most this many bytes that is not `aws-chunked` is read in one go and handed to the
 * upload as one piece (memory: one such buffer per request being answered).
 */
export const SMALL_BODY_BYTES_MAX = 64 * 1024;

/** How a verified request's body is to be read (`sigv4.ts`'s verdict). */
export type BodyPayload = Parameters<typeof payloadStream>[0];

/** How a request's body is stored. */
export interface StoreBodyOptions {
  payload: BodyPayload;
  /** The size the request declared (`declaredSizeOf`). */
  size: number;
  stallMs: number;
  /** The S3 resource errors name. */
  resource: string;
  /** The attributes to commit with, given the body's MD5 in hex (its ETag). */
  attrs(etag: string): FileAttrs;
  /** Fail the commit if the name has a current version (`Upload.commit`'s `ifAbsent`). */
  ifAbsent?: boolean;
  /** Runs once the body is whole and checked, before the commit; may refuse it by throwing. */
  beforeCommit?(): Promise<void>;
}

/**
 * Stores a request's body as `name`: an upload fed with the body, committed once it is whole and
 * every digest the request declares holds, aborted (storing nothing) otherwise. Returns the
 * committed metadata and the body's MD5 in hex.
 *
 * @throws {S3Error} `BadDigest`, `InvalidDigest`, `XAmzContentSHA256Mismatch` for a digest that
 *   does not match; `IncompleteBody` for a body shorter than declared; `RequestTimeout` for one
 *   that stalls for `stallMs`; the upload's errors.
 */
export async function storeBody(
  store: StreamingFileStore,
  name: string,
  request: Request,
  options: StoreBodyOptions,
): Promise<{ meta: FileMeta; etag: string }> {
  const upload = store.beginUpload(name, { size: options.size });
  try {
    const etag = await receiveBody(upload, request, options);
    await options.beforeCommit?.();
    const meta = await upload.commit({ attrs: options.attrs(etag), ifAbsent: options.ifAbsent });
    return { meta, etag };
  } catch (error) {
    await upload.abort();
    throw error;
  }
}

/**
 * Reads the request's body into `upload` (without committing it) and checks every digest the
 * request declares; returns the MD5 of the bytes in hex.
 */
async function receiveBody(
  upload: Upload,
  request: Request,
  options: StoreBodyOptions,
): Promise<string> {
  const { payload } = options;
  const { headers } = request;
  const md5 = createHash("md5");
  const sha256 = headers.has("x-amz-checksum-sha256") ? createHash("sha256") : undefined;
  let crc = 0;
  const take = async (piece: Uint8Array) => {
    md5.update(piece);
    sha256?.update(piece);
    crc = crc32(piece, crc);
    await upload.write(owned(piece));
  };
  // A small plain body framed by its Content-Length (so no more can come) is read in one go:
  // streams cost more than the bytes here.
  const framed = headers.get("content-length") === String(options.size);
  if (
    framed && options.size <= SMALL_BODY_BYTES_MAX &&
    (payload.kind === "unsigned" || payload.kind === "hash")
  ) {
    const bytes = await wholeBody(request, options.stallMs);
    if (payload.kind === "hash") {
      checkPayloadSha256(
        payload.sha256,
        new Uint8Array(createHash("sha256").update(bytes).digest()),
      );
    }
    if (bytes.length > options.size) {
      throw new S3Error(
        "IncompleteBody",
        `The body is longer than its declared ${options.size} bytes`,
      );
    }
    await take(bytes);
  } else {
    const decoded = (request.body ?? emptyBody()).pipeThrough(payloadStream(payload));
    for await (const piece of withStallTimeout(decoded, options.stallMs)) await take(piece);
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

/** The whole body of a request, failing with `RequestTimeout` if it is not all there in `stallMs`. */
async function wholeBody(request: Request, stallMs: number): Promise<Uint8Array<ArrayBuffer>> {
  let timer: TimerHandle | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new S3Error("RequestTimeout", `The body did not come within ${stallMs} ms`)),
      stallMs,
    );
  });
  try {
    return new Uint8Array(await Promise.race([request.arrayBuffer(), stalled]));
  } finally {
    clearTimeout(timer as number);
  }
}
