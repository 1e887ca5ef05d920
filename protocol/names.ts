/**
 * File names. A name is an opaque key: it never becomes a path on disk (chunks are stored under random
 * ids). The rules keep names printable as paths for users and scripts, and give each text one
 * spelling: a name is in Unicode NFC (so two names that look alike are the same name, or one is
 * refused) and holds no control character (so plain `list` output is one name per line).
 *
 * @module
 */

import { DfsError } from "./errors.ts";
import { NAME_BYTES_MAX } from "./limits.ts";

/** A `.` or `..` segment: at the start or after a `/`, and at the end or before one. */
const DOT_SEGMENT = /(?:^|\/)(\.\.?)(?:\/|$)/;
/** A control character: C0 (U+0000 to U+001F, NUL, tab and newline among them), DEL, or C1. */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** Any character outside ASCII: only such a name can be outside NFC. */
const NON_ASCII = /[\u0080-\uffff]/;

/**
 * Checks a file name and returns it unchanged. Names are UTF-8, 1 to `NAME_BYTES_MAX` bytes, in
 * Unicode NFC, with no control character (U+0000 to U+001F, U+007F to U+009F), no U+FFFD (what
 * invalid UTF-8 decodes to), no leading `/`, and no empty, `.` or `..` segment between slashes.
 * Nothing is normalized here: a name in another form is refused, never silently changed.
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
  const control = CONTROL.exec(name);
  if (control) throw invalid(`name contains a control character (${codePoint(control[0])})`);
  if (NON_ASCII.test(name) && name.normalize("NFC") !== name) {
    throw invalid(
      'name is not in Unicode NFC (normalize it with String.prototype.normalize("NFC"))',
    );
  }
  if (name.startsWith("/")) throw invalid('name starts with "/"');
  if (name.includes("//") || name.endsWith("/")) throw invalid("name has an empty segment");
  const dots = DOT_SEGMENT.exec(name);
  if (dots) throw invalid(`name has a "${dots[1]}" segment`);
  return name;
}

/**
 * Checks a `list` prefix: any string a name could start with (empty lists everything), at most
 * `NAME_BYTES_MAX` bytes, no control character. A prefix outside NFC is allowed: it matches no name
 * stored under the NFC rule, but still reaches one a server stored before that rule.
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
  const control = CONTROL.exec(prefix);
  if (control) throw invalid(`prefix contains a control character (${codePoint(control[0])})`);
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

/** `U+000A` for a newline. */
function codePoint(character: string): string {
  return `U+${character.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
}

function invalid(why: string): DfsError {
  return new DfsError("INVALID_REQUEST", `Invalid name: ${why}`);
}
