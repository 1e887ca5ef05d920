/**
 * File names. A name is an opaque key: it never becomes a path on disk (chunks are stored under random
 * ids). The rules keep names printable as paths for users and scripts.
 *
 * @module
 */

import { DfsError } from "./errors.ts";
import { NAME_BYTES_MAX } from "./limits.ts";

/** A `.` or `..` segment: at the start or after a `/`, and at the end or before one. */
const DOT_SEGMENT = /(?:^|\/)(\.\.?)(?:\/|$)/;

/**
 * Checks a file name and returns it unchanged. Names are UTF-8, 1 to `NAME_BYTES_MAX` bytes, with no
 * NUL, no U+FFFD (what invalid UTF-8 decodes to), no leading `/`, and no empty, `.` or `..`
 * segment between slashes.
 *
 * @throws {DfsError} `INVALID_REQUEST` saying which rule the name breaks.
 */
export function validateName(name: unknown): string {
  if (typeof name !== "string") throw invalid("name must be a string");
  if (name.length === 0) throw invalid("name is empty");
  // The decoder turns invalid UTF-8 into U+FFFD, so that character stands for it here.
  if (!name.isWellFormed() || name.includes("\uFFFD")) throw invalid("name is not valid UTF-8");
  const bytes = utf8ByteLength(name);
  if (bytes > NAME_BYTES_MAX) {
    throw invalid(`name is ${bytes} bytes, over the limit of ${NAME_BYTES_MAX}`);
  }
  if (name.includes("\0")) throw invalid("name contains a NUL character");
  if (name.startsWith("/")) throw invalid('name starts with "/"');
  if (name.includes("//") || name.endsWith("/")) throw invalid("name has an empty segment");
  const dots = DOT_SEGMENT.exec(name);
  if (dots) throw invalid(`name has a "${dots[1]}" segment`);
  return name;
}

/**
 * Checks a `list` prefix: any string a name could start with (empty lists everything), at most
 * `NAME_BYTES_MAX` bytes, no NUL.
 *
 * @throws {DfsError} `INVALID_REQUEST` for anything else.
 */
export function validatePrefix(prefix: unknown): string {
  if (prefix === undefined || prefix === null) return "";
  if (typeof prefix !== "string") throw invalid("prefix must be a string");
  if (!prefix.isWellFormed() || prefix.includes("\uFFFD")) {
    throw invalid("prefix is not valid UTF-8");
  }
  if (utf8ByteLength(prefix) > NAME_BYTES_MAX) {
    throw invalid(`prefix is over the limit of ${NAME_BYTES_MAX} bytes`);
  }
  if (prefix.includes("\0")) throw invalid("prefix contains a NUL character");
  return prefix;
}

/**
 * The length of a well-formed string in UTF-8, without encoding it (names are checked on every
 * request and measured for every `list` entry).
 */
export function utf8ByteLength(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      bytes += 4; // a surrogate pair: one code point above U+FFFF
      i++;
    } else bytes += 3;
  }
  return bytes;
}

function invalid(why: string): DfsError {
  return new DfsError("INVALID_REQUEST", `Invalid name: ${why}`);
}
