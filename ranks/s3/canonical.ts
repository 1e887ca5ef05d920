/**
 * The canonical forms SigV4 signs and the crypto it signs with: the canonical request, URI and
 * query, header values, percent-encoding per RFC 3986, HMAC-SHA256 and the signing key (the last
 * `SIGNING_KEYS_CACHED_MAX` kept). Pure.
 *
 * @module
 */

import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { S3AuthError } from "./auth_error.ts";

/** Most query parameters a signed request may carry (each is decoded, sorted and hashed). */
export const QUERY_PARAMS_MAX = 256;
/** Derived signing keys kept, one per (secret, date, region, service): each costs four HMACs. */
export const SIGNING_KEYS_CACHED_MAX = 256;

/**
 * The signing key of a secret for a date (`YYYYMMDD`), region and service:
 * HMAC("AWS4" + secret, date) → region → service → "aws4_request". The last
 * `SIGNING_KEYS_CACHED_MAX` are kept.
 */
export function signingKey(
  secret: string,
  date: string,
  region: string,
  service: string,
): Uint8Array {
  const cacheKey = `${date}\n${region}\n${service}\n${secret}`;
  const cached = signingKeys.get(cacheKey);
  if (cached !== undefined) return cached.slice();
  let key: Uint8Array = new TextEncoder().encode(`AWS4${secret}`);
  for (const part of [date, region, service, "aws4_request"]) key = hmac(key, part);
  if (signingKeys.size >= SIGNING_KEYS_CACHED_MAX) {
    signingKeys.delete(signingKeys.keys().next().value!);
  }
  signingKeys.set(cacheKey, key);
  return key.slice();
}

const signingKeys = new Map<string, Uint8Array>();

/** HMAC-SHA256 of `data` (a string taken as UTF-8, or bytes) under `key`. */
export function hmac(key: Uint8Array, data: string | Uint8Array): Uint8Array {
  return new Uint8Array(createHmac("sha256", key).update(data).digest());
}

/** SHA-256 of `data` (a string taken as UTF-8, or bytes), as lower-case hex. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * Compares a signature received as hex with the expected bytes in constant time; false for
 * anything that is not 64 hex digits.
 */
export function signatureMatches(received: string, expected: Uint8Array): boolean {
  const bytes = hexToBytes(received.toLowerCase());
  return bytes !== undefined && bytes.length === expected.length &&
    timingSafeEqual(bytes, expected);
}

/**
 * The canonical request of S3 (one line each: method, URI, query, the signed headers as
 * `name:value`, an empty line, the signed header names joined by `;`, the payload hash).
 * Header values are byte strings (each char one byte), as `Headers` holds them.
 */
export function canonicalRequest(
  request: { method: string; path: string; query: [string, string][]; headers: Headers },
  signedHeaders: readonly string[],
  payloadHash: string,
): string {
  const headerLines = signedHeaders.map((name) =>
    `${name}:${trimHeaderValue(request.headers.get(name) ?? "")}\n`
  ).join("");
  return [
    request.method,
    canonicalUri(request.path),
    canonicalQuery(request.query),
    headerLines,
    signedHeaders.join(";"),
    payloadHash,
  ].join("\n");
}

/**
 * The canonical URI of a raw path: each `/`-separated segment percent-decoded (to bytes; a `%`
 * not followed by two hex digits is taken as itself) and encoded again per RFC 3986, leaving
 * only `A-Z a-z 0-9 - . _ ~` as they are. No `.`/`..` resolution, no doubled slashes removed.
 */
export function canonicalUri(path: string): string {
  if (path === "") return "/";
  return path.split("/").map((segment) => uriEncode(percentDecode(segment, false))).join("/");
}

/**
 * The canonical query string: parameters (decoded) sorted by encoded name, then encoded value,
 * each encoded per RFC 3986 and joined as `name=value` by `&`.
 */
export function canonicalQuery(params: readonly [string, string][]): string {
  const encoder = new TextEncoder();
  return params
    .map(([key, value]) => [uriEncode(encoder.encode(key)), uriEncode(encoder.encode(value))])
    .sort(([ak, av], [bk, bv]) => ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0)
    .map(([key, value]) => `${key}=${value}`)
    .join("&");
}

/** A header value as signed: runs of white space made one space, none at either end. */
export function trimHeaderValue(value: string): string {
  return value.replace(/[ \t\r\n]+/g, " ").replace(/^ | $/g, "");
}

/**
 * Parses a query as received (without `?`) into decoded `[name, value]` pairs in order; `+` is
 * a space, as in a form. A parsed `URLSearchParams` is taken as it is.
 *
 * @throws {S3AuthError} `InvalidArgument` over `QUERY_PARAMS_MAX` parameters.
 */
export function parseQuery(query: string | URLSearchParams): [string, string][] {
  const pairs: [string, string][] = [];
  if (typeof query !== "string") {
    for (const pair of query) {
      pairs.push(pair);
      if (pairs.length > QUERY_PARAMS_MAX) throw tooManyParams();
    }
    return pairs;
  }
  const decoder = new TextDecoder();
  for (const part of query.split("&")) {
    if (part === "") continue;
    const equals = part.indexOf("=");
    const key = equals < 0 ? part : part.slice(0, equals);
    const value = equals < 0 ? "" : part.slice(equals + 1);
    pairs.push([
      decoder.decode(percentDecode(key, true)),
      decoder.decode(percentDecode(value, true)),
    ]);
    if (pairs.length > QUERY_PARAMS_MAX) throw tooManyParams();
  }
  return pairs;
}

function tooManyParams(): S3AuthError {
  return new S3AuthError(
    "InvalidArgument",
    `The request has more than ${QUERY_PARAMS_MAX} query parameters`,
  );
}

const UNRESERVED = new Uint8Array(256);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") {
  UNRESERVED[c.charCodeAt(0)] = 1;
}
const HEX_UPPER = "0123456789ABCDEF";

/** Bytes encoded per RFC 3986: unreserved characters as they are, every other byte as `%XX`. */
export function uriEncode(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) {
    out += UNRESERVED[byte] === 1
      ? String.fromCharCode(byte)
      : `%${HEX_UPPER[byte >> 4]}${HEX_UPPER[byte & 15]}`;
  }
  return out;
}

/**
 * Percent-decodes to bytes: `%XX` is a byte, a `%` not followed by two hex digits is itself,
 * other characters are UTF-8, and `+` is a space if `plusIsSpace`.
 */
export function percentDecode(text: string, plusIsSpace: boolean): Uint8Array {
  const encoder = new TextEncoder();
  if (!text.includes("%") && !(plusIsSpace && text.includes("+"))) return encoder.encode(text);
  // A UTF-16 unit takes at most 3 bytes in UTF-8 (a surrogate pair, 4 for 2).
  const out = new Uint8Array(text.length * 3);
  let length = 0;
  let runStart = 0;
  const flush = (end: number) => {
    if (end > runStart) {
      length += encoder.encodeInto(text.slice(runStart, end), out.subarray(length)).written;
    }
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "%" && isHex(text[i + 1]) && isHex(text[i + 2])) {
      flush(i);
      out[length++] = parseInt(text.slice(i + 1, i + 3), 16);
      i += 2;
      runStart = i + 1;
    } else if (c === "+" && plusIsSpace) {
      flush(i);
      out[length++] = 0x20;
      runStart = i + 1;
    }
  }
  flush(text.length);
  return out.subarray(0, length);
}

export function isHex(c: string | undefined): boolean {
  return c !== undefined && /^[0-9A-Fa-f]$/.test(c);
}

export function hexToBytes(hex: string): Uint8Array | undefined {
  if (!/^([0-9a-f]{2})*$/.test(hex)) return undefined;
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/** Bytes as lower-case hex. */
export function bytesToHex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}
