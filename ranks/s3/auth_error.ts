/**
 * The errors of S3 authentication (`sigv4.ts`, `aws_chunked.ts`), with the codes and statuses S3
 * clients expect.
 *
 * @module
 */

/** The error codes of S3 this layer (and the gateway around it) answers authentication with. */
export const S3_AUTH_ERROR_STATUS = {
  AccessDenied: 403,
  InvalidAccessKeyId: 403,
  RequestTimeTooSkewed: 403,
  SignatureDoesNotMatch: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  XAmzContentSHA256Mismatch: 400,
  IncompleteBody: 400,
  InvalidRequest: 400,
  InvalidArgument: 400,
  MissingSecurityHeader: 400,
  BadDigest: 400,
  MalformedTrailerError: 400,
} as const;

/** An S3 error code of `S3_AUTH_ERROR_STATUS`. */
export type S3AuthErrorCode = keyof typeof S3_AUTH_ERROR_STATUS;

/**
 * A request refused: `code` is the S3 error code, `status` its HTTP status, `message` what S3
 * would say (sentence case, no final period), and `details` extra elements S3 puts in its error
 * XML (`RequestTime`, `ServerTime`, `MaxAllowedSkewMilliseconds`, `Region`, `StringToSign`,
 * `CanonicalRequest`, `AWSAccessKeyId`, `HeadersNotSigned`), none of them secret.
 */
export class S3AuthError extends Error {
  readonly code: S3AuthErrorCode;
  readonly status: 400 | 403;
  readonly details: Readonly<Record<string, string>>;

  constructor(code: S3AuthErrorCode, message: string, details: Record<string, string> = {}) {
    super(message);
    this.name = "S3AuthError";
    this.code = code;
    this.status = S3_AUTH_ERROR_STATUS[code];
    this.details = details;
  }
}
