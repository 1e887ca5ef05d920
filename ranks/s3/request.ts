/**
 * Reading an S3 request, apart from answering it: which bucket and key it names, its subresource,
 * its declared size, its digests, and its body, pieced with a stall timeout and bounded when
 * small.
 *
 * @module
 */

import { concatBytes } from "../../protocol/bytes.ts";
import type { payloadStream } from "./aws_chunked.ts";
import { S3Error } from "./s3_error.ts";
import { XML_BODY_BYTES_MAX } from "./xml_parser.ts";

/** Largest object one PutObject or CopyObject stores (S3's limit; larger ones go multipart). */
export const PUT_OBJECT_BYTES_MAX = 5 * 1024 ** 3;
/** A request body that brings no bytes for this long is failed (`RequestTimeout`), storing nothing. */
export const BODY_STALL_TIMEOUT_MS = 60_000;

/** A parsed request: which bucket and key it names, and its query. */
export interface Target {
  method: string;
  bucket?: string;
  key?: string;
  query: URLSearchParams;
  headers: Headers;
  resource: string;
}

/** The bucket and key a path names (`/bucket/key`, percent-decoded), with the query. */
export function targetOf(request: Request, path: string, query: URLSearchParams): Target {
  const decoded = safeDecode(path);
  const slash = decoded.indexOf("/", 1);
  const bucket = slash < 0 ? decoded.slice(1) : decoded.slice(1, slash);
  const key = slash < 0 ? undefined : decoded.slice(slash + 1);
  return {
    method: request.method.toUpperCase(),
    bucket: bucket === "" ? undefined : bucket,
    key: key === "" ? undefined : key,
    query,
    headers: request.headers,
    resource: decoded,
  };
}

export function safeDecode(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    throw new S3Error("InvalidURI", "The path is not valid percent-encoded UTF-8");
  }
}

/** The subresource a query names (`?location`, `?delete`...), among those `known` or any other. */
export function subresourceOf(query: URLSearchParams, known: string[]): string | undefined {
  const SUBRESOURCES = [
    "acl",
    "cors",
    "delete",
    "encryption",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "object-lock",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "legal-hold",
    "select",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versioning",
    "versions",
    "website",
    "partNumber",
    "attributes",
    "ownershipControls",
    "accelerate",
    "analytics",
    "intelligent-tiering",
    "inventory",
    "metrics",
    "list-type",
  ];
  for (const name of query.keys()) {
    if (known.includes(name) || SUBRESOURCES.includes(name)) return name;
  }
  return undefined;
}

export function notImplemented(method: string, query: URLSearchParams): S3Error {
  const what = [...query.keys()].join(", ");
  return new S3Error(
    "NotImplemented",
    `${method}${what ? ` with ${what}` : ""} is not implemented by this dfs S3 gateway`,
  );
}

/** The object size a PUT declares: the decoded length of an aws-chunked body, else its length. */
export function declaredSizeOf(
  headers: Headers,
  payload: Parameters<typeof payloadStream>[0],
): number {
  const declared = "decodedContentLength" in payload && payload.decodedContentLength !== undefined
    ? payload.decodedContentLength
    : headers.get("x-amz-decoded-content-length") ?? headers.get("content-length");
  if (declared === null || declared === undefined) throw new S3Error("MissingContentLength");
  const size = Number(declared);
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new S3Error("InvalidArgument", `Content length ${declared} is not a size`);
  }
  if (size > PUT_OBJECT_BYTES_MAX) {
    throw new S3Error(
      "EntityTooLarge",
      `${size} bytes is over the ${PUT_OBJECT_BYTES_MAX} of one PUT`,
    );
  }
  return size;
}

/** Checks `Content-MD5`, `x-amz-checksum-crc32` and `x-amz-checksum-sha256` against the body. */
export function checkDigests(
  headers: Headers,
  got: { md5: string; crc32: number; sha256?: string },
): void {
  const md5 = headers.get("content-md5");
  if (md5 !== null) {
    const expected = base64Bytes(md5);
    if (expected === undefined || expected.length !== 16) throw new S3Error("InvalidDigest");
    if (hex(expected) !== got.md5) throw new S3Error("BadDigest");
  }
  const crc = headers.get("x-amz-checksum-crc32");
  if (crc !== null) {
    const expected = base64Bytes(crc);
    if (expected === undefined || expected.length !== 4) {
      throw new S3Error("InvalidArgument", "x-amz-checksum-crc32 is not a base64 CRC32");
    }
    if (new DataView(expected.buffer).getUint32(0) !== got.crc32 >>> 0) {
      throw new S3Error("BadDigest", "The CRC32 you specified did not match what was received");
    }
  }
  const sha = headers.get("x-amz-checksum-sha256");
  if (sha !== null && sha !== got.sha256) {
    throw new S3Error("BadDigest", "The SHA-256 you specified did not match what was received");
  }
}

export function base64Bytes(text: string): Uint8Array | undefined {
  try {
    return Uint8Array.from(atob(text.trim()), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The request's headers without `aws-chunked` in `Content-Encoding` (a transfer detail). */
export function withoutChunkedEncoding(headers: Headers): Headers {
  const encoding = headers.get("content-encoding");
  if (encoding === null) return headers;
  const kept = encoding.split(",").map((e) => e.trim()).filter((e) => e && e !== "aws-chunked");
  const copy = new Headers(headers);
  if (kept.length === 0) copy.delete("content-encoding");
  else copy.set("content-encoding", kept.join(", "));
  return copy;
}

/** `x-amz-copy-source`: `/bucket/key` or `bucket/key`, percent-encoded. */
export function copySourceOf(header: string): { bucket: string; key: string } {
  const [path, query] = header.split("?", 2);
  if (query !== undefined && query !== "") {
    throw new S3Error("NotImplemented", "Copying a version of an object is not implemented");
  }
  const decoded = safeDecode(path).replace(/^\//, "");
  const slash = decoded.indexOf("/");
  if (slash <= 0 || slash === decoded.length - 1) {
    throw new S3Error("InvalidArgument", `x-amz-copy-source ${header} is not /bucket/key`);
  }
  return { bucket: decoded.slice(0, slash), key: decoded.slice(slash + 1) };
}

/** A small request body (a bucket configuration, a delete list), at most `XML_BODY_BYTES_MAX`. */
export async function readSmallBody(request: Request, stallMs: number): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? 0);
  if (declared > XML_BODY_BYTES_MAX) {
    throw new S3Error(
      "MalformedXML",
      `The body of ${declared} bytes is over ${XML_BODY_BYTES_MAX}`,
    );
  }
  const parts: Uint8Array[] = [];
  let bytes = 0;
  for await (const piece of withStallTimeout(request.body ?? emptyBody(), stallMs)) {
    bytes += piece.length;
    if (bytes > XML_BODY_BYTES_MAX) {
      throw new S3Error("MalformedXML", `The body is over ${XML_BODY_BYTES_MAX} bytes`);
    }
    parts.push(piece);
  }
  return concatBytes(parts, bytes);
}

/** The pieces of `stream`, failing with `RequestTimeout` when none comes for `timeoutMs`. */
export async function* withStallTimeout(
  stream: ReadableStream<Uint8Array>,
  timeoutMs: number,
): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  try {
    while (true) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stalled = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new S3Error("RequestTimeout", `No body bytes came for ${timeoutMs} ms`)),
          timeoutMs,
        );
      });
      try {
        const { done, value } = await Promise.race([reader.read(), stalled]);
        if (done) return;
        yield value;
      } finally {
        clearTimeout(timer);
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** A body with no bytes, for a request that has none. */
export function emptyBody(): ReadableStream<Uint8Array> {
  return new ReadableStream({ start: (controller) => controller.close() });
}

/** A piece whose buffer is its own (an upload takes ownership, and may move the buffer). */
export function owned(piece: Uint8Array): Uint8Array {
  return piece.byteOffset === 0 && piece.byteLength === piece.buffer.byteLength
    ? piece
    : piece.slice();
}
