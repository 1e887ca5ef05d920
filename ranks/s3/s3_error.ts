/**
 * S3 errors: the codes the gateway answers with, each with its HTTP status and the message S3
 * gives by default, and the XML document S3 clients parse them from. Pure: no I/O.
 *
 * Any error shaped `{ code, status, message }` renders the same way, so `sigv4.ts`'s
 * `S3AuthError` (which adds `details`) needs no conversion.
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";
import { element, xmlDocument } from "./xml.ts";

/** Every S3 error code the gateway uses, with its HTTP status and S3's default message. */
export const S3_ERRORS = {
  AccessDenied: [403, "Access denied"],
  AuthorizationHeaderMalformed: [400, "The authorization header is malformed"],
  AuthorizationQueryParametersError: [
    400,
    "The query parameters of the presigned URL are malformed",
  ],
  BadDigest: [400, "The Content-MD5 or checksum you specified did not match what was received"],
  BucketAlreadyExists: [409, "The requested bucket name is not available"],
  BucketAlreadyOwnedByYou: [
    409,
    "Your previous request to create the named bucket succeeded and you already own it",
  ],
  BucketNotEmpty: [409, "The bucket you tried to delete is not empty"],
  EntityTooLarge: [400, "Your proposed upload exceeds the maximum allowed object size"],
  EntityTooSmall: [400, "Your proposed upload is smaller than the minimum allowed object size"],
  IllegalLocationConstraintException: [400, "The specified location constraint is not valid"],
  IncompleteBody: [
    400,
    "You did not provide the number of bytes specified by the Content-Length HTTP header",
  ],
  InternalError: [500, "We encountered an internal error, please try again"],
  InvalidAccessKeyId: [403, "The access key ID you provided does not exist in our records"],
  InvalidArgument: [400, "Invalid argument"],
  InvalidBucketName: [400, "The specified bucket is not valid"],
  InvalidDigest: [400, "The Content-MD5 you specified is not valid"],
  InvalidLocationConstraint: [400, "The specified location constraint is not valid"],
  InvalidPart: [
    400,
    "One or more of the specified parts could not be found, or its entity tag did not match",
  ],
  InvalidPartOrder: [400, "The list of parts was not in ascending order of part number"],
  InvalidRange: [416, "The requested range is not satisfiable"],
  InvalidRequest: [400, "Invalid request"],
  InvalidStorageClass: [400, "The storage class you specified is not valid"],
  InvalidURI: [400, "Could not parse the specified URI"],
  KeyTooLongError: [400, "Your key is too long"],
  MalformedTrailerError: [400, "The request contained trailing data that was not well-formed"],
  MalformedXML: [
    400,
    "The XML you provided was not well-formed or did not validate against our published schema",
  ],
  MaxMessageLengthExceeded: [400, "Your request was too big"],
  MetadataTooLarge: [400, "Your metadata headers exceed the maximum allowed metadata size"],
  MethodNotAllowed: [405, "The specified method is not allowed against this resource"],
  MissingContentLength: [411, "You must provide the Content-Length HTTP header"],
  MissingRequestBodyError: [400, "Request body is empty"],
  MissingSecurityHeader: [400, "Your request is missing a required header"],
  NoSuchBucket: [404, "The specified bucket does not exist"],
  NoSuchKey: [404, "The specified key does not exist"],
  NoSuchUpload: [
    404,
    "The specified multipart upload does not exist: the upload ID might be invalid, or the upload was aborted or completed",
  ],
  NoSuchVersion: [404, "The specified version does not exist"],
  NotImplemented: [501, "A header or operation you requested is not implemented"],
  NotModified: [304, "Not modified"],
  OperationAborted: [
    409,
    "A conflicting operation is currently in progress against this resource, try again",
  ],
  PreconditionFailed: [412, "At least one of the preconditions you specified did not hold"],
  RequestTimeout: [
    400,
    "Your socket connection to the server was not read from or written to within the timeout period",
  ],
  RequestTimeTooSkewed: [
    403,
    "The difference between the request time and the server's time is too large",
  ],
  ServiceUnavailable: [503, "Service unavailable, please reduce your request rate"],
  SignatureDoesNotMatch: [
    403,
    "The request signature we calculated does not match the signature you provided",
  ],
  SlowDown: [503, "Please reduce your request rate"],
  TooManyBuckets: [400, "You have attempted to create more buckets than allowed"],
  XAmzContentSHA256Mismatch: [
    400,
    "The provided x-amz-content-sha256 header does not match what was computed",
  ],
} as const satisfies Record<string, readonly [number, string]>;

/** An S3 error code of `S3_ERRORS`. */
export type S3ErrorCode = keyof typeof S3_ERRORS;

/** The `Content-Type` of every S3 error body. */
export const ERROR_CONTENT_TYPE = "application/xml";

/**
 * What `errorXml` renders: an `S3Error`, or any error with an S3 `code`, its HTTP `status` and a
 * `message` (`sigv4.ts`'s `S3AuthError`). `details` become extra elements after `Message`, as S3
 * adds `StringToSign` or `ServerTime`; `resource` becomes `Resource`.
 */
export interface S3ErrorLike {
  readonly code: string;
  readonly status: number;
  readonly message: string;
  readonly resource?: string;
  readonly details?: Readonly<Record<string, string>>;
}

/** A request the gateway refuses or failed, with the S3 code and status clients expect. */
export class S3Error extends Error implements S3ErrorLike {
  readonly code: S3ErrorCode;
  readonly status: number;
  readonly resource?: string;
  readonly details?: Readonly<Record<string, string>>;

  /**
   * An error of `code`; `message` defaults to S3's message for that code. `resource` is the
   * bucket or object path the request named (`/bucket/key`), `details` extra XML elements.
   */
  constructor(
    code: S3ErrorCode,
    message?: string,
    options: ErrorOptions & { resource?: string; details?: Record<string, string> } = {},
  ) {
    super(message ?? S3_ERRORS[code][1], options);
    this.name = "S3Error";
    this.code = code;
    this.status = S3_ERRORS[code][0];
    if (options.resource !== undefined) this.resource = options.resource;
    if (options.details !== undefined) this.details = options.details;
  }
}

/** What every non-S3 error becomes: no details, which stay in the log. */
const INTERNAL: S3ErrorLike = { code: "InternalError", ...statusAndMessage("InternalError") };

/**
 * Turns anything thrown into the S3 error to answer with. An `S3Error` or another
 * `S3ErrorLike` (an `S3AuthError`) is kept; a `DfsError` maps by code (`NOT_FOUND` to
 * `NoSuchKey`, `INVALID_REQUEST` to `InvalidArgument`, `TOO_LARGE` to `EntityTooLarge`,
 * `UNAVAILABLE` to `ServiceUnavailable`, `UNAUTHORIZED` to `AccessDenied`, keeping its message;
 * any other code to `InternalError` without it); anything else is a bug, answered as
 * `InternalError` with no details (the caller logs the original). `resource` is set when given
 * and the error has none.
 */
export function s3ErrorOf(error: unknown, resource?: string): S3ErrorLike {
  const s3 = isS3ErrorLike(error) ? error : error instanceof DfsError ? fromDfs(error) : INTERNAL;
  if (resource === undefined || s3.resource !== undefined) return s3;
  return { code: s3.code, status: s3.status, message: s3.message, details: s3.details, resource };
}

function isS3ErrorLike(error: unknown): error is S3ErrorLike {
  if (error instanceof S3Error) return true;
  const e = error as Partial<S3ErrorLike> | null;
  return error instanceof Error && typeof e?.code === "string" && /^[A-Za-z0-9]+$/.test(e.code) &&
    Number.isInteger(e.status) && e.status! >= 300 && e.status! <= 599 &&
    typeof e.message === "string";
}

function fromDfs(error: DfsError): S3ErrorLike {
  const code = DFS_CODES[error.code];
  if (code === undefined) return INTERNAL;
  return { code, status: S3_ERRORS[code][0], message: error.message };
}

const DFS_CODES: Partial<Record<DfsError["code"], S3ErrorCode>> = {
  NOT_FOUND: "NoSuchKey",
  INVALID_REQUEST: "InvalidArgument",
  TOO_LARGE: "EntityTooLarge",
  UNAVAILABLE: "ServiceUnavailable",
  UNAUTHORIZED: "AccessDenied",
};

function statusAndMessage(code: S3ErrorCode): { status: number; message: string } {
  return { status: S3_ERRORS[code][0], message: S3_ERRORS[code][1] };
}

/**
 * The XML body S3 answers an error with: `Code`, `Message`, each of `details` (names must be XML
 * names, values any text), `Resource` when known, and `RequestId`. Text is escaped; characters XML
 * cannot carry become U+FFFD (see `escapeXml`).
 *
 * @throws {Error} if a `details` name is not an XML element name (a programmer error).
 */
export function errorXml(error: S3ErrorLike, requestId: string): string {
  const details = Object.entries(error.details ?? {}).map(([name, value]) => element(name, value));
  return xmlDocument(element("Error", [
    element("Code", error.code),
    element("Message", error.message),
    ...details,
    error.resource !== undefined && element("Resource", error.resource),
    element("RequestId", requestId),
  ]));
}

/**
 * Whether an error answer carries the XML body: not for `304 Not Modified` (HTTP forbids a body)
 * nor for a `HEAD` request (S3 answers those with the status and headers only).
 */
export function errorHasBody(error: S3ErrorLike, method: string): boolean {
  return error.status !== 304 && method.toUpperCase() !== "HEAD";
}
