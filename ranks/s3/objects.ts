/**
 * What the S3 gateway keeps of an object beside its bytes, and reads back: its attributes (the
 * `FileAttrs` of its dfs file: content headers, ETag, `x-amz-meta-*`), its ETag, byte ranges and
 * conditional requests. Pure: no I/O.
 *
 * @module
 */

import type { FileMeta } from "../../protocol/messages.ts";
import { S3Error } from "./s3_error.ts";

/** Bytes of `x-amz-meta-*` names and values together (S3's limit). */
export const USER_METADATA_BYTES_MAX = 2048;

/** Content headers an object keeps and gives back, as S3 does. */
export const CONTENT_HEADERS = [
  "content-type",
  "content-encoding",
  "content-disposition",
  "content-language",
  "cache-control",
  "expires",
] as const;

/** The attribute holding an object's ETag (the MD5 of its bytes, in hex). */
export const ETAG_ATTR = "etag";
/** User metadata `x-amz-meta-NAME` is kept as attribute `meta-NAME`. */
const META_ATTR_PREFIX = "meta-";
const USER_META_HEADER = "x-amz-meta-";
const META_NAME_PATTERN = /^[a-z0-9._-]{1,120}$/;

/**
 * The attributes an object is stored with: its content headers and `x-amz-meta-*` from the request
 * headers, and its ETag.
 *
 * @throws {S3Error} `MetadataTooLarge` past `USER_METADATA_BYTES_MAX`; `InvalidArgument` for a
 *   metadata name dfs cannot keep (letters, digits and `._-` only).
 */
export function attrsOf(headers: Headers, etag: string): Record<string, string> {
  const attrs: Record<string, string> = { [ETAG_ATTR]: etag };
  for (const name of CONTENT_HEADERS) {
    const value = headers.get(name);
    if (value !== null) attrs[name] = value;
  }
  Object.assign(attrs, userMetadataOf(headers));
  return attrs;
}

/** The `x-amz-meta-*` headers as attributes (`meta-NAME`), checked. */
export function userMetadataOf(headers: Headers): Record<string, string> {
  const attrs: Record<string, string> = {};
  let bytes = 0;
  for (const [header, value] of headers) {
    if (!header.startsWith(USER_META_HEADER)) continue;
    const name = header.slice(USER_META_HEADER.length);
    if (!META_NAME_PATTERN.test(name)) {
      throw new S3Error(
        "InvalidArgument",
        `Metadata name ${JSON.stringify(name)} must be 1 to 120 of a-z 0-9 . _ -`,
      );
    }
    bytes += new TextEncoder().encode(name + value).length;
    attrs[META_ATTR_PREFIX + name] = value;
  }
  if (bytes > USER_METADATA_BYTES_MAX) {
    throw new S3Error(
      "MetadataTooLarge",
      `Metadata takes ${bytes} bytes, over the limit of ${USER_METADATA_BYTES_MAX}`,
    );
  }
  return attrs;
}

/** The content headers and `x-amz-meta-*` headers of an object's attributes. */
export function headersOfAttrs(attrs: Readonly<Record<string, string>> | undefined): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if ((CONTENT_HEADERS as readonly string[]).includes(name)) headers.set(name, value);
    else if (name.startsWith(META_ATTR_PREFIX)) {
      headers.set(USER_META_HEADER + name.slice(META_ATTR_PREFIX.length), value);
    }
  }
  if (!headers.has("content-type")) headers.set("content-type", "binary/octet-stream");
  return headers;
}

/**
 * An object's ETag, unquoted: the MD5 it was stored with through S3, else (a file stored through
 * dfs's own protocol, whose MD5 is unknown) the start of its SHA-256 with `-1`, which clients read
 * as "not an MD5", as they do a multipart upload's.
 */
export function etagOf(meta: FileMeta): string {
  return meta.attrs?.[ETAG_ATTR] ?? `${meta.sha256.slice(0, 32)}-1`;
}

/** A byte range of an object: `start` to `end`, end exclusive. */
export interface Range {
  start: number;
  end: number;
}

/**
 * The range a `Range` header asks of an object of `size` bytes: `bytes=A-B` (inclusive), `A-` or
 * `-N` (the last N). Undefined without one, or for a form S3 ignores (several ranges, another
 * unit): the whole object is sent then.
 *
 * @throws {S3Error} `InvalidRange` for a range that starts past the end (or an empty object).
 */
export function rangeOf(header: string | null, size: number): Range | undefined {
  if (header === null) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === "" && match[2] === "")) return undefined;
  const [first, last] = [match[1], match[2]];
  let range: Range;
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0) throw unsatisfiable(size);
    range = { start: Math.max(0, size - suffix), end: size };
  } else {
    const start = Number(first);
    const end = last === "" ? size : Math.min(size, Number(last) + 1);
    if (last !== "" && Number(last) < start) return undefined; // malformed: ignored, as S3 does
    range = { start, end };
  }
  if (range.start >= size) throw unsatisfiable(size);
  return range;
}

function unsatisfiable(size: number): S3Error {
  return new S3Error("InvalidRange", `The range is not satisfiable: the object has ${size} bytes`, {
    details: { ActualObjectSize: String(size) },
  });
}

/**
 * Checks a GET's or HEAD's preconditions against the object, in S3's order: `If-Match` (else
 * `If-Unmodified-Since`) fails with 412; `If-None-Match` (else `If-Modified-Since`) with 304.
 *
 * @throws {S3Error} `PreconditionFailed` or `NotModified`.
 */
export function checkPreconditions(headers: Headers, object: { etag: string; modified: number }) {
  const ifMatch = headers.get("if-match");
  const ifNoneMatch = headers.get("if-none-match");
  const modifiedSec = Math.floor(object.modified / 1000);
  if (ifMatch !== null) {
    if (!etagsMatch(ifMatch, object.etag)) throw new S3Error("PreconditionFailed");
  } else {
    const since = dateOf(headers.get("if-unmodified-since"));
    if (since !== undefined && modifiedSec > since) throw new S3Error("PreconditionFailed");
  }
  if (ifNoneMatch !== null) {
    if (etagsMatch(ifNoneMatch, object.etag)) throw new S3Error("NotModified");
  } else {
    const since = dateOf(headers.get("if-modified-since"));
    if (since !== undefined && modifiedSec <= since) throw new S3Error("NotModified");
  }
}

/** Whether an `If-Match`/`If-None-Match` list names `etag` (or is `*`). */
export function etagsMatch(list: string, etag: string): boolean {
  return list.split(",").map((t) => t.trim().replace(/^W\//, "").replace(/^"|"$/g, ""))
    .some((t) => t === "*" || t === etag);
}

/** An HTTP date in whole seconds since the epoch; undefined when absent or not a date. */
function dateOf(text: string | null): number | undefined {
  if (text === null) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000);
}

/** An HTTP date (RFC 7231 IMF-fixdate) of ms since the epoch. */
export function httpDate(ms: number): string {
  return new Date(ms).toUTCString();
}
