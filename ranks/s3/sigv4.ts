/**
 * AWS Signature Version 4 for the S3 gateway: checks the `Authorization` header or a presigned
 * URL's query against the canonical request S3 defines, and says how the body must then be read
 * (its SHA-256 given, unsigned, or `aws-chunked` with chunk signatures or a checksum trailer, for
 * `aws_chunked.ts`). Pure: it takes a parsed request and a clock reading, never a socket, and
 * throws an `S3AuthError` whose code is the one S3 clients expect.
 *
 * The canonical request follows S3, not the other AWS services: the path is not normalised and
 * each segment is URI-encoded once (as `@smithy/signature-v4` signs with `uriEscapePath: false`);
 * the path and query are decoded as received and encoded again per RFC 3986, so `$` or `%7e` on
 * the wire sign as `%24` and `~`.
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import { S3AuthError } from "./auth_error.ts";
import { type Payload, payloadOf } from "./payload.ts";
import {
  bytesToHex,
  canonicalRequest,
  hexToBytes,
  hmac,
  parseQuery,
  signatureMatches,
  signingKey,
} from "./canonical.ts";

/** Largest difference between a header-signed request's `X-Amz-Date` and the clock (S3's). */
export const CLOCK_SKEW_MS_MAX = 15 * 60 * 1000;
/** Longest lifetime of a presigned URL, `X-Amz-Expires` (S3's: seven days). */
export const PRESIGNED_EXPIRY_SECONDS_MAX = 7 * 24 * 60 * 60;
/** Longest `Authorization` header read; S3 clients send about 250 bytes plus the header names. */
export const AUTHORIZATION_BYTES_MAX = 4096;
/** Most headers one signature may cover. */
export const SIGNED_HEADERS_MAX = 64;
/** The region signed for when the gateway names none. */
export const DEFAULT_REGION = "us-east-1";
/** The only algorithm accepted. */
export const ALGORITHM = "AWS4-HMAC-SHA256";
/** SHA-256 of nothing, as lower-case hex. */
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** What `verifyRequest` reads of a request. */
export interface SignedRequest {
  /** The method as received, e.g. `PUT`. */
  method: string;
  /** The path as received, still percent-encoded, without the query (see `splitRequestTarget`). */
  path: string;
  /** The query as received (without `?`), or already parsed. */
  query: string | URLSearchParams;
  /** The headers as received (values are byte strings, as `Deno.serve` gives them). */
  headers: Headers;
}

/** What `verifyRequest` checks a request against. */
export interface VerifyOptions {
  /** The clock, in ms since the epoch. */
  now: number;
  /** The secret of an access key id, or undefined if there is no such key. */
  credentials: (accessKeyId: string) => string | undefined;
  /** Region requests must be signed for; `DEFAULT_REGION` by default. */
  region?: string;
  /** Service requests must be signed for; `s3` by default. */
  service?: string;
}

/** A request whose signature holds. */
export interface VerifiedRequest {
  accessKeyId: string;
  /** Where the signature was: the `Authorization` header or the query of a presigned URL. */
  auth: "header" | "presigned";
  payload: Payload;
}

const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
const AMZ_DATE_PATTERN = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const SIGNATURE_PATTERN = /^[0-9a-f]{64}$/;
const HEADER_NAME_PATTERN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const PRESIGN_PARAMS = [
  "X-Amz-Algorithm",
  "X-Amz-Credential",
  "X-Amz-Signature",
  "X-Amz-Date",
  "X-Amz-SignedHeaders",
  "X-Amz-Expires",
] as const;

/**
 * Checks a request's AWS Signature V4, in its `Authorization` header or in the query of a
 * presigned URL, and says how its body must be read. Every request must be signed: the gateway
 * has no anonymous access. Header auth needs `x-amz-date` within `CLOCK_SKEW_MS_MAX` of `now`
 * and `x-amz-content-sha256`; a presigned URL lives `X-Amz-Expires` seconds (at most
 * `PRESIGNED_EXPIRY_SECONDS_MAX`) and its payload is unsigned unless `X-Amz-Content-Sha256` is
 * in its query. Every `x-amz-*` header present must be signed, and so must `host`. At most
 * `SIGNED_HEADERS_MAX` signed headers, `QUERY_PARAMS_MAX` query parameters and an `Authorization`
 * of `AUTHORIZATION_BYTES_MAX` bytes are read; the caller bounds the path and header sizes.
 *
 * @throws {S3AuthError} `AccessDenied` (no signature, an expired URL, no date, unsigned
 *   `x-amz-*` headers), `InvalidAccessKeyId`, `SignatureDoesNotMatch`, `RequestTimeTooSkewed`,
 *   `AuthorizationHeaderMalformed` or `AuthorizationQueryParametersError` (unparsable, or for
 *   another region, service or date), `InvalidRequest` (SigV2 or SigV4a, no
 *   `x-amz-content-sha256`, streaming in a presigned URL), `InvalidArgument` (both auth kinds at
 *   once, a bad `x-amz-content-sha256`, `x-amz-trailer` or `x-amz-decoded-content-length`).
 */
export function verifyRequest(request: SignedRequest, options: VerifyOptions): VerifiedRequest {
  const query = parseQuery(request.query);
  const authorization = request.headers.get("authorization");
  const presigned = query.some(([key]) => (PRESIGN_PARAMS as readonly string[]).includes(key));
  if (authorization !== null && presigned) {
    throw new S3AuthError(
      "InvalidArgument",
      "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature " +
        "query string parameter or the Authorization header should be specified",
    );
  }
  if (presigned) return verifyPresigned(request, query, options);
  if (authorization !== null) return verifyHeader(request, authorization, query, options);
  if (query.some(([key]) => key === "Signature" || key === "AWSAccessKeyId")) {
    throw unsupportedMechanism();
  }
  throw new S3AuthError("AccessDenied", "Access denied: the request is not signed");
}

/**
 * Splits a request URL as `Deno.serve` gives it (`req.url`) into its raw path and query, without
 * the normalisation `new URL()` applies (which would resolve `..` segments a client signed).
 */
export function splitRequestTarget(url: string): { path: string; query: string } {
  const scheme = url.indexOf("://");
  const slash = scheme < 0 ? 0 : url.indexOf("/", scheme + 3);
  const target = slash < 0 ? "/" : url.slice(slash);
  const hash = target.indexOf("#");
  const withoutHash = hash < 0 ? target : target.slice(0, hash);
  const mark = withoutHash.indexOf("?");
  if (mark < 0) return { path: withoutHash, query: "" };
  return { path: withoutHash.slice(0, mark), query: withoutHash.slice(mark + 1) };
}

/**
 * Checks the SHA-256 of a body read in full against the one its request signed.
 *
 * @throws {S3AuthError} `XAmzContentSHA256Mismatch` if they differ.
 */
export function checkPayloadSha256(expected: string, digest: Uint8Array): void {
  const want = hexToBytes(expected.toLowerCase());
  if (want === undefined || want.length !== digest.length || !timingSafeEqual(want, digest)) {
    throw new S3AuthError(
      "XAmzContentSHA256Mismatch",
      "The provided 'x-amz-content-sha256' header does not match what was computed",
      { ClientComputedContentSHA256: expected, S3ComputedContentSHA256: bytesToHex(digest) },
    );
  }
}

function verifyHeader(
  request: SignedRequest,
  authorization: string,
  query: [string, string][],
  options: VerifyOptions,
): VerifiedRequest {
  const parsed = parseAuthorization(authorization);
  const amzDate = request.headers.get("x-amz-date");
  const time = amzDate === null ? undefined : parseAmzDate(amzDate);
  if (amzDate === null || time === undefined) {
    throw new S3AuthError(
      "AccessDenied",
      "AWS authentication requires a valid Date or x-amz-date header",
    );
  }
  const malformed = (message: string, details?: Record<string, string>) =>
    new S3AuthError("AuthorizationHeaderMalformed", message, details);
  const scope = checkScope(parsed.credential, amzDate, options, malformed);
  const secret = lookUp(parsed.credential.accessKeyId, options);
  if (Math.abs(time - options.now) > CLOCK_SKEW_MS_MAX) {
    throw new S3AuthError(
      "RequestTimeTooSkewed",
      "The difference between the request time and the current time is too large",
      {
        RequestTime: amzDate,
        ServerTime: new Date(options.now).toISOString(),
        MaxAllowedSkewMilliseconds: String(CLOCK_SKEW_MS_MAX),
      },
    );
  }
  checkSignedHeaders(parsed.signedHeaders, request.headers);
  const contentSha256 = request.headers.get("x-amz-content-sha256");
  if (contentSha256 === null) {
    throw new S3AuthError(
      "InvalidRequest",
      "Missing required header for this request: x-amz-content-sha256",
    );
  }
  const payloadHash = contentSha256.trim();
  const key = signingKey(secret, scope.date, scope.region, scope.service);
  const payload = payloadOf(payloadHash, request.headers, {
    seedSignature: parsed.signature.toLowerCase(),
    signingKey: key,
    scope: scope.text,
    amzDate,
  });
  checkSignature(
    { ...request, query },
    { accessKeyId: parsed.credential.accessKeyId, amzDate, scope: scope.text, key },
    { signedHeaders: parsed.signedHeaders, payloadHash, signature: parsed.signature },
  );
  return { accessKeyId: parsed.credential.accessKeyId, auth: "header", payload };
}

function verifyPresigned(
  request: SignedRequest,
  query: [string, string][],
  options: VerifyOptions,
): VerifiedRequest {
  const malformed = (message: string, details?: Record<string, string>) =>
    new S3AuthError("AuthorizationQueryParametersError", message, details);
  const params = new Map<string, string>();
  for (const [key, value] of query) {
    if (!(PRESIGN_PARAMS as readonly string[]).includes(key)) continue;
    if (params.has(key)) throw malformed(`The query parameter ${key} is given more than once`);
    params.set(key, value);
  }
  if (params.size !== PRESIGN_PARAMS.length) {
    throw malformed(
      "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, " +
        "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters",
    );
  }
  if (params.get("X-Amz-Algorithm") !== ALGORITHM) {
    throw malformed(`X-Amz-Algorithm only supports "${ALGORITHM}"`);
  }
  const credential = parseCredential(params.get("X-Amz-Credential")!, malformed);
  const amzDate = params.get("X-Amz-Date")!;
  const time = parseAmzDate(amzDate);
  if (time === undefined) {
    throw malformed(`X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd'T'HHmmss'Z'"`);
  }
  const expiresText = params.get("X-Amz-Expires")!;
  if (!/^\d{1,10}$/.test(expiresText)) {
    throw malformed("X-Amz-Expires should be a number of seconds");
  }
  const expires = Number(expiresText);
  if (expires > PRESIGNED_EXPIRY_SECONDS_MAX) {
    throw malformed(
      "X-Amz-Expires must be less than a week (in seconds) that is " +
        PRESIGNED_EXPIRY_SECONDS_MAX,
    );
  }
  const signedHeaders = parseSignedHeaders(params.get("X-Amz-SignedHeaders")!, malformed);
  const signature = params.get("X-Amz-Signature")!;
  if (!SIGNATURE_PATTERN.test(signature.toLowerCase())) {
    throw malformed("X-Amz-Signature must be 64 hexadecimal digits");
  }
  const scope = checkScope(credential, amzDate, options, malformed);
  const secret = lookUp(credential.accessKeyId, options);
  if (options.now > time + expires * 1000) {
    throw new S3AuthError("AccessDenied", "Request has expired", {
      "X-Amz-Expires": expiresText,
      Expires: new Date(time + expires * 1000).toISOString(),
      ServerTime: new Date(options.now).toISOString(),
    });
  }
  if (time - options.now > CLOCK_SKEW_MS_MAX) {
    throw new S3AuthError("AccessDenied", "Request is not valid yet", {
      "X-Amz-Date": amzDate,
      ServerTime: new Date(options.now).toISOString(),
    });
  }
  checkSignedHeaders(signedHeaders, request.headers);
  // The S3 presigner hoists the header as `X-Amz-Content-Sha256`, smithy's as it was named.
  const contentSha256 = query.filter(([key]) => key.toLowerCase() === "x-amz-content-sha256");
  if (contentSha256.length > 1) {
    throw malformed("The query parameter X-Amz-Content-Sha256 is given more than once");
  }
  const payloadHash = contentSha256[0]?.[1] ?? UNSIGNED_PAYLOAD;
  if (payloadHash.startsWith("STREAMING-")) {
    throw new S3AuthError("InvalidRequest", "A presigned URL cannot carry an aws-chunked body");
  }
  const payload = payloadOf(payloadHash);
  const key = signingKey(secret, scope.date, scope.region, scope.service);
  checkSignature(
    { ...request, query: query.filter(([name]) => name !== "X-Amz-Signature") },
    { accessKeyId: credential.accessKeyId, amzDate, scope: scope.text, key },
    { signedHeaders, payloadHash, signature },
  );
  return { accessKeyId: credential.accessKeyId, auth: "presigned", payload };
}

interface Credential {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  terminator: string;
}

type Malformed = (message: string, details?: Record<string, string>) => S3AuthError;

/** Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`. */
function parseAuthorization(value: string) {
  const malformed: Malformed = (message, details) =>
    new S3AuthError("AuthorizationHeaderMalformed", message, details);
  if (value.length > AUTHORIZATION_BYTES_MAX) {
    throw malformed(
      `The authorization header is malformed; it is longer than ${AUTHORIZATION_BYTES_MAX} bytes`,
    );
  }
  const text = value.trim();
  const space = text.search(/[ \t]/);
  const algorithm = space < 0 ? text : text.slice(0, space);
  if (algorithm !== ALGORITHM) {
    if (algorithm === "AWS" || algorithm === "AWS4-ECDSA-P256-SHA256") {
      throw unsupportedMechanism();
    }
    throw new S3AuthError("InvalidArgument", "Unsupported Authorization Type", {
      ArgumentName: "Authorization",
      ArgumentValue: value.slice(0, 64),
    });
  }
  if (space < 0) {
    throw malformed("The authorization header is malformed; it has no Credential");
  }
  const fields = new Map<string, string>();
  for (const part of text.slice(space + 1).split(",")) {
    const field = part.trim();
    const equals = field.indexOf("=");
    const name = field.slice(0, equals);
    if (equals < 0 || !["Credential", "SignedHeaders", "Signature"].includes(name)) {
      throw malformed(
        `The authorization header is malformed; "${field.slice(0, 64)}" is not ` +
          "Credential=…, SignedHeaders=… or Signature=…",
      );
    }
    if (fields.has(name)) {
      throw malformed(`The authorization header is malformed; ${name} is given twice`);
    }
    fields.set(name, field.slice(equals + 1));
  }
  for (const name of ["Credential", "SignedHeaders", "Signature"]) {
    if (!fields.has(name)) {
      throw malformed(`The authorization header is malformed; it has no ${name}`);
    }
  }
  const signature = fields.get("Signature")!;
  if (!SIGNATURE_PATTERN.test(signature.toLowerCase())) {
    throw malformed(
      "The authorization header is malformed; the Signature must be 64 hexadecimal digits",
    );
  }
  return {
    credential: parseCredential(fields.get("Credential")!, malformed),
    signedHeaders: parseSignedHeaders(fields.get("SignedHeaders")!, malformed),
    signature,
  };
}

function parseCredential(text: string, malformed: Malformed): Credential {
  const parts = text.split("/");
  if (parts.length !== 5 || parts[0] === "" || !/^\d{8}$/.test(parts[1])) {
    throw malformed(
      `The credential "${text.slice(0, 160)}" is malformed; expecting ` +
        '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request"',
    );
  }
  const [accessKeyId, date, region, service, terminator] = parts;
  return { accessKeyId, date, region, service, terminator };
}

function parseSignedHeaders(text: string, malformed: Malformed): string[] {
  const names = text.split(";");
  if (names.length > SIGNED_HEADERS_MAX) {
    throw malformed(`More than ${SIGNED_HEADERS_MAX} headers are signed`);
  }
  const seen = new Set<string>();
  for (const name of names) {
    if (!HEADER_NAME_PATTERN.test(name) || seen.has(name)) {
      throw malformed(
        `SignedHeaders "${text.slice(0, 160)}" must be distinct lower-case header names ` +
          "separated by ;",
      );
    }
    seen.add(name);
  }
  if (!seen.has("host")) throw malformed("SignedHeaders must include host");
  return names;
}

/** Checks the credential scope against the request's date and the gateway's region and service. */
function checkScope(
  credential: Credential,
  amzDate: string,
  options: VerifyOptions,
  malformed: Malformed,
): { text: string; date: string; region: string; service: string } {
  const region = options.region ?? DEFAULT_REGION;
  const service = options.service ?? "s3";
  if (credential.date !== amzDate.slice(0, 8)) {
    throw malformed(
      `Invalid credential date "${credential.date}"; it is not the same as X-Amz-Date ` +
        `"${amzDate.slice(0, 8)}"`,
    );
  }
  if (credential.region !== region) {
    throw malformed(`The region '${credential.region}' is wrong; expecting '${region}'`, {
      Region: region,
    });
  }
  if (credential.service !== service) {
    throw malformed(
      `The service '${credential.service}' is wrong; this endpoint belongs to '${service}'`,
    );
  }
  if (credential.terminator !== "aws4_request") {
    throw malformed(
      `The credential terminator '${credential.terminator}' is wrong; expecting 'aws4_request'`,
    );
  }
  return {
    text: `${credential.date}/${region}/${service}/aws4_request`,
    date: credential.date,
    region,
    service,
  };
}

function lookUp(accessKeyId: string, options: VerifyOptions): string {
  const secret = options.credentials(accessKeyId);
  if (secret === undefined) {
    throw new S3AuthError(
      "InvalidAccessKeyId",
      "The AWS Access Key Id you provided does not exist in our records",
      { AWSAccessKeyId: accessKeyId },
    );
  }
  return secret;
}

/** Refuses a request with an `x-amz-*` header its signature does not cover. */
function checkSignedHeaders(signed: readonly string[], headers: Headers): void {
  const unsigned: string[] = [];
  for (const [name] of headers) {
    if (name.startsWith("x-amz-") && !signed.includes(name)) unsigned.push(name);
  }
  if (unsigned.length > 0) {
    throw new S3AuthError(
      "AccessDenied",
      "There were headers present in the request which were not signed",
      { HeadersNotSigned: unsigned.join(", ") },
    );
  }
}

function checkSignature(
  request: { method: string; path: string; query: [string, string][]; headers: Headers },
  context: { accessKeyId: string; amzDate: string; scope: string; key: Uint8Array },
  claim: { signedHeaders: readonly string[]; payloadHash: string; signature: string },
): void {
  const canonical = canonicalRequest(request, claim.signedHeaders, claim.payloadHash);
  // Header values are byte strings: hash the canonical request as one byte per char.
  const canonicalHash = createHash("sha256").update(canonical, "latin1").digest("hex");
  const stringToSign = `${ALGORITHM}\n${context.amzDate}\n${context.scope}\n${canonicalHash}`;
  if (!signatureMatches(claim.signature, hmac(context.key, stringToSign))) {
    throw new S3AuthError(
      "SignatureDoesNotMatch",
      "The request signature we calculated does not match the signature you provided. " +
        "Check your key and signing method",
      {
        AWSAccessKeyId: context.accessKeyId,
        StringToSign: stringToSign,
        CanonicalRequest: canonical,
      },
    );
  }
}

function unsupportedMechanism(): S3AuthError {
  return new S3AuthError(
    "InvalidRequest",
    "The authorization mechanism you have provided is not supported. Please use " + ALGORITHM,
  );
}

/** `YYYYMMDDTHHMMSSZ` as ms since the epoch, or undefined if it is not a valid one. */
function parseAmzDate(text: string): number | undefined {
  const match = AMZ_DATE_PATTERN.exec(text);
  if (match === null) return undefined;
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number);
  const time = Date.UTC(year, month - 1, day, hour, minute, second);
  const back = new Date(time);
  if (
    back.getUTCFullYear() !== year || back.getUTCMonth() !== month - 1 ||
    back.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59
  ) {
    return undefined;
  }
  return time;
}
