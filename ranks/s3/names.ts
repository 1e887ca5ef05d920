/**
 * S3 bucket names and object keys, and the dfs names they are stored under. Pure: no I/O.
 *
 * Object `k` of bucket `b` is the dfs file `b/k`, so the CLI and S3 see the same files. S3 allows
 * almost any key; dfs names are stricter (`protocol/names.ts`). The rule:
 *
 * - A key ending in `/` (a folder marker, as the AWS console, s3fs, Hadoop's S3A and rclone
 *   create) is stored with a space after that slash: key `photos/` of bucket `b` is the dfs name
 *   `b/photos/ `, and `list` turns it back into `photos/`. The space is the smallest character a
 *   dfs name may hold, so names sort exactly as their keys do and listings page in key order. A
 *   key ending in `/ ` would collide with it and is refused.
 * - Keys dfs cannot hold are refused with `InvalidArgument` naming the rule, never changed: an
 *   empty key, a key with an empty segment (`a//b`, a leading `/`), a `.` or `..` segment, a
 *   control character (U+0000 to U+001F, U+007F to U+009F), U+FFFD, or text not in Unicode NFC
 *   (normalizing would make two keys one file). A key over 1024 bytes is `KeyTooLongError`, and
 *   so is one that fits S3's 1024 bytes but not with its bucket in front (the dfs name `b/k` is
 *   at most 1024 bytes too).
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";
import { NAME_BYTES_MAX } from "../../protocol/limits.ts";
import { utf8ByteLength, validateName } from "../../protocol/names.ts";
import { S3Error } from "./s3_error.ts";

/** Shortest bucket name, in characters (S3's rule). */
export const BUCKET_NAME_CHARS_MIN = 3;
/** Longest bucket name, in characters (S3's rule). */
export const BUCKET_NAME_CHARS_MAX = 63;
/** Longest object key S3 allows, in UTF-8 bytes. */
export const KEY_BYTES_MAX = 1024;

/** What follows the slash of a folder marker in its dfs name. */
const FOLDER_MARKER_SUFFIX = " ";

/** Prefixes and suffixes S3 reserves for its own kinds of bucket names. */
const RESERVED_PREFIXES = ["xn--", "sthree-", "amzn-s3-demo-"];
const RESERVED_SUFFIXES = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];

/**
 * Checks a bucket name against S3's rules for general purpose buckets and returns it: 3 to 63
 * characters of lower-case letters, digits, `.` and `-`; a letter or digit first and last; no
 * `..`; not an IPv4 address; none of the prefixes (`xn--`, `sthree-`, `amzn-s3-demo-`) or
 * suffixes (`-s3alias`, `--ol-s3`, `.mrap`, `--x-s3`, `--table-s3`) S3 reserves. Such a name is
 * also a valid top-level dfs name segment.
 *
 * @throws {S3Error} `InvalidBucketName` saying which rule the name breaks.
 */
export function validateBucketName(name: string): string {
  const why = bucketNameProblem(name);
  if (why !== undefined) {
    throw new S3Error("InvalidBucketName", `The bucket name ${JSON.stringify(name)} ${why}`, {
      resource: `/${name}`,
    });
  }
  return name;
}

function bucketNameProblem(name: string): string | undefined {
  if (name.length < BUCKET_NAME_CHARS_MIN || name.length > BUCKET_NAME_CHARS_MAX) {
    return `is ${name.length} characters long, not ${BUCKET_NAME_CHARS_MIN} to ${BUCKET_NAME_CHARS_MAX}`;
  }
  if (!/^[a-z0-9.-]+$/.test(name)) {
    return "has a character other than lower-case letters, digits, dots and hyphens";
  }
  if (!/^[a-z0-9]/.test(name) || !/[a-z0-9]$/.test(name)) {
    return "does not begin and end with a letter or digit";
  }
  if (name.includes("..")) return "has two adjacent dots";
  if (/^\d+\.\d+\.\d+\.\d+$/.test(name)) return "is formatted as an IP address";
  const prefix = RESERVED_PREFIXES.find((p) => name.startsWith(p));
  if (prefix !== undefined) return `starts with the reserved prefix ${prefix}`;
  const suffix = RESERVED_SUFFIXES.find((s) => name.endsWith(s));
  if (suffix !== undefined) return `ends with the reserved suffix ${suffix}`;
  return undefined;
}

/** A `.` or `..` segment: at the start or after a `/`, and at the end or before one. */
const DOT_SEGMENT = /(?:^|\/)(\.\.?)(?:\/|$)/;
// deno-lint-ignore no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** A character no dfs name holds: a control character or U+FFFD. */
// deno-lint-ignore no-control-regex -- finding control characters is the point
const NOT_IN_NAMES = /[\u0000-\u001f\u007f-\u009f\ufffd]/;
/** Any character outside ASCII: only such a key can be outside NFC. */
const NON_ASCII = /[\u0080-\uffff]/;

/**
 * The dfs name object `key` of `bucket` is stored under: `bucket/key`, or `bucket/key ` for a
 * folder marker (a key ending in `/`). See the module comment for the keys refused.
 *
 * @throws {S3Error} `InvalidBucketName` for a bad bucket; `KeyTooLongError` for a key over
 *   `KEY_BYTES_MAX` bytes or too long for a dfs name with its bucket; `InvalidArgument` naming
 *   the rule for any other key dfs cannot store.
 */
export function dfsNameOf(bucket: string, key: string): string {
  validateBucketName(bucket);
  const resource = `/${bucket}/${key}`;
  const refuse = (why: string) =>
    new S3Error("InvalidArgument", `Cannot store key ${JSON.stringify(key)}: ${why}`, {
      resource,
    });
  if (key.length === 0) throw refuse("the key is empty");
  if (!key.isWellFormed() || key.includes("\uFFFD")) {
    throw refuse("the key is not valid UTF-8 (or contains U+FFFD)");
  }
  const bytes = utf8ByteLength(key);
  if (bytes > KEY_BYTES_MAX) {
    throw new S3Error(
      "KeyTooLongError",
      `The key is ${bytes} bytes, over the limit of ${KEY_BYTES_MAX}`,
      { resource },
    );
  }
  const marker = key.endsWith("/");
  const name = `${bucket}/${key}${marker ? FOLDER_MARKER_SUFFIX : ""}`;
  const room = keyBytesMax(bucket, marker);
  if (bytes > room) {
    throw new S3Error(
      "KeyTooLongError",
      `The key is ${bytes} bytes; in bucket ${bucket} a key ${
        marker ? "ending in / " : ""
      }may have at most ${room} (dfs names, bucket/key, are at most ${NAME_BYTES_MAX} bytes)`,
      { resource },
    );
  }
  const control = CONTROL.exec(key);
  if (control) {
    throw refuse(
      `it contains the control character ${codePoint(control[0])}, which dfs names cannot hold`,
    );
  }
  if (NON_ASCII.test(key) && key.normalize("NFC") !== key) {
    throw refuse(
      "it is not in Unicode NFC, which dfs names must be (normalize it to NFC; two spellings of one text would be one file)",
    );
  }
  const body = marker ? key.slice(0, -1) : key;
  if (body.startsWith("/") || body.includes("//") || (marker && body === "")) {
    throw refuse(
      'it has an empty segment (a leading "/" or "//"), which dfs names cannot have (only a final "/", a folder marker, is stored)',
    );
  }
  const dots = DOT_SEGMENT.exec(body);
  if (dots) throw refuse(`it has a "${dots[1]}" segment, which dfs names cannot have`);
  if (key.endsWith(`/${FOLDER_MARKER_SUFFIX}`)) {
    throw refuse(
      'it ends in "/ ", the dfs name of the folder marker that ends in "/" (the same key without the space)',
    );
  }
  try {
    return validateName(name);
  } catch (error) {
    // Unreachable if the checks above mirror validateName; refuse rather than store.
    if (error instanceof DfsError) throw refuse(error.message);
    throw error;
  }
}

/** Most UTF-8 bytes of a key of `bucket` that fit a dfs name (one fewer for a folder marker). */
export function keyBytesMax(bucket: string, folderMarker = false): number {
  const room = NAME_BYTES_MAX - utf8ByteLength(bucket) - 1 -
    (folderMarker ? FOLDER_MARKER_SUFFIX.length : 0);
  return Math.min(KEY_BYTES_MAX, room);
}

/**
 * The S3 key of dfs file `name` in `bucket`: the name without `bucket/`, and a folder marker's
 * trailing space dropped. Undefined for a name outside the bucket. The inverse of `dfsNameOf`,
 * and total on names under `bucket/` (a name the CLI stored that `dfsNameOf` would refuse still
 * lists under the key it spells).
 */
export function keyOf(bucket: string, name: string): string | undefined {
  const head = `${bucket}/`;
  if (!name.startsWith(head) || name.length === head.length) return undefined;
  const rest = name.slice(head.length);
  return rest.endsWith(`/${FOLDER_MARKER_SUFFIX}`) ? rest.slice(0, -1) : rest;
}

/**
 * The dfs `list` prefix for S3 `prefix` in `bucket`: `bucket/prefix`, or undefined when no dfs
 * name can start with it (a control character, U+FFFD, invalid UTF-16, too long), so the listing
 * is empty. The names it lists may include one folder marker whose key does not start with
 * `prefix` (prefix `a/ ` lists `b/a/ `, key `a/`): filter keys again (`listing.ts` does).
 */
export function dfsPrefixOf(bucket: string, prefix: string): string | undefined {
  const dfsPrefix = `${validateBucketName(bucket)}/${prefix}`;
  if (!prefix.isWellFormed() || prefix.includes("\uFFFD") || CONTROL.test(prefix)) {
    return undefined;
  }
  return utf8ByteLength(dfsPrefix) > NAME_BYTES_MAX ? undefined : dfsPrefix;
}

/**
 * The dfs `list` cursor (`after`) that lists the names of `bucket` whose keys come after key
 * `after` (any string: a start-after, marker or token need not be a key). `after` is cut before
 * its first character no dfs name holds, then to fit `NAME_BYTES_MAX` bytes, and a folder
 * marker's space added. Cutting only moves the cursor back, so the listing may start with keys
 * at or before `after`, never skip one after it: drop keys up to `after` (`listing.ts` does).
 */
export function dfsCursorOf(bucket: string, after: string): string {
  const head = `${validateBucketName(bucket)}/`;
  // toWellFormed() turns a lone surrogate into U+FFFD in place, so indexes stay the same.
  const unusable = NOT_IN_NAMES.exec(after.toWellFormed());
  let key = unusable ? after.slice(0, unusable.index) : after;
  const room = NAME_BYTES_MAX - utf8ByteLength(head) - FOLDER_MARKER_SUFFIX.length;
  while (utf8ByteLength(key) > room) key = dropLastCharacter(key);
  return head + key + (key.endsWith("/") ? FOLDER_MARKER_SUFFIX : "");
}

function dropLastCharacter(text: string): string {
  const last = text.charCodeAt(text.length - 1);
  return text.slice(0, last >= 0xdc00 && last <= 0xdfff ? -2 : -1);
}

function codePoint(character: string): string {
  return `U+${character.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
}
