/**
 * AWS Signature V4 for the bench's lean S3 client (`_s3_client.ts`): `UNSIGNED-PAYLOAD`, headers
 * `host;x-amz-content-sha256;x-amz-date`, with `node:crypto`, the signing key cached per date.
 * Checked against `@smithy/signature-v4` in `_s3_client_test.ts`.
 *
 * @module
 */

import { createHash, createHmac } from "node:crypto";

/** The region signed for unless told. */
export const DEFAULT_REGION = "us-east-1";

/** The payload hash every request of the bench signs. */
export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
const SIGNED_HEADERS = "host;x-amz-content-sha256;x-amz-date";
const ALGORITHM = "AWS4-HMAC-SHA256";

/** An access key and the scope it signs for. */
export interface S3Credentials {
  accessKeyId: string;
  secret: string;
  /** `DEFAULT_REGION` unless given. */
  region?: string;
}

/** What `S3Signer.sign` signs. */
export interface SignInput {
  method: string;
  /** The path on the wire, each segment already encoded (see `encodePath`). */
  path: string;
  /** The canonical query (see `canonicalQuery`); the wire query is the same string. */
  query: string;
  /** The `Host` header as sent (`host:port`). */
  host: string;
  /** `YYYYMMDDTHHMMSSZ`. */
  amzDate: string;
}

/**
 * SigV4 for S3 with an unsigned payload. The signing key is derived once per date (four HMACs)
 * and kept; each request then costs one SHA-256 and one HMAC.
 */
export class S3Signer {
  readonly accessKeyId: string;
  readonly region: string;
  #secret: string;
  #keyDate = "";
  #key: Uint8Array = new Uint8Array();

  constructor(credentials: S3Credentials) {
    this.accessKeyId = credentials.accessKeyId;
    this.#secret = credentials.secret;
    this.region = credentials.region ?? DEFAULT_REGION;
  }

  /** The `Authorization` header of a request. */
  sign(input: SignInput): string {
    const date = input.amzDate.slice(0, 8);
    const scope = `${date}/${this.region}/s3/aws4_request`;
    const canonical = `${input.method}\n${input.path}\n${input.query}\n` +
      `host:${input.host}\nx-amz-content-sha256:${UNSIGNED_PAYLOAD}\nx-amz-date:${input.amzDate}\n` +
      `\n${SIGNED_HEADERS}\n${UNSIGNED_PAYLOAD}`;
    const hash = createHash("sha256").update(canonical).digest("hex");
    const toSign = `${ALGORITHM}\n${input.amzDate}\n${scope}\n${hash}`;
    const signature = createHmac("sha256", this.#keyFor(date)).update(toSign).digest("hex");
    return `${ALGORITHM} Credential=${this.accessKeyId}/${scope}, ` +
      `SignedHeaders=${SIGNED_HEADERS}, Signature=${signature}`;
  }

  #keyFor(date: string): Uint8Array {
    if (date !== this.#keyDate) {
      let key: Uint8Array = new TextEncoder().encode(`AWS4${this.#secret}`);
      for (const part of [date, this.region, "s3", "aws4_request"]) {
        key = new Uint8Array(createHmac("sha256", key).update(part).digest());
      }
      this.#key = key;
      this.#keyDate = date;
    }
    return this.#key;
  }
}

const UNRESERVED = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") {
  UNRESERVED[c.charCodeAt(0)] = 1;
}
const HEX = "0123456789ABCDEF";
const encoder = new TextEncoder();

/** UTF-8 text percent-encoded per RFC 3986 (only `A-Z a-z 0-9 - . _ ~` left as they are). */
export function uriEncode(text: string): string {
  let plain = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 128 || UNRESERVED[c] === 0) {
      plain = false;
      break;
    }
  }
  if (plain) return text;
  let out = "";
  for (const byte of encoder.encode(text)) {
    out += byte < 128 && UNRESERVED[byte] === 1
      ? String.fromCharCode(byte)
      : `%${HEX[byte >> 4]}${HEX[byte & 15]}`;
  }
  return out;
}

/** A path as S3 clients send and sign it: every `/`-separated segment `uriEncode`d once. */
export function encodePath(path: string): string {
  return path.split("/").map(uriEncode).join("/");
}

/** The canonical query of SigV4: names and values `uriEncode`d, sorted by name then value. */
export function canonicalQuery(query: Readonly<Record<string, string>>): string {
  return Object.entries(query)
    .map(([name, value]) => [uriEncode(name), uriEncode(value)])
    .sort(([an, av], [bn, bv]) => an < bn ? -1 : an > bn ? 1 : av < bv ? -1 : av > bv ? 1 : 0)
    .map(([name, value]) => `${name}=${value}`)
    .join("&");
}

/** `YYYYMMDDTHHMMSSZ` of a time. */
export function amzDateOf(date: Date): string {
  return date.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}
