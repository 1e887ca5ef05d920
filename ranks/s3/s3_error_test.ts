import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { errorHasBody, errorXml, S3_ERRORS, S3Error, s3ErrorOf } from "./s3_error.ts";
import { parseXml } from "./xml_parser.ts";

Deno.test("S3Error takes its status and default message from S3_ERRORS", () => {
  const error = new S3Error("NoSuchBucket");
  assert.ok(error instanceof Error);
  assert.equal(error.name, "S3Error");
  assert.equal(error.code, "NoSuchBucket");
  assert.equal(error.status, 404);
  assert.equal(error.message, "The specified bucket does not exist");
  assert.equal(error.resource, undefined);

  const named = new S3Error("InvalidArgument", "max-keys must be a whole number", {
    resource: "/b",
  });
  assert.equal(named.status, 400);
  assert.equal(named.message, "max-keys must be a whole number");
  assert.equal(named.resource, "/b");
});

Deno.test("S3_ERRORS gives every code the gateway uses its S3 HTTP status", () => {
  const expected: Record<string, number> = {
    NoSuchBucket: 404,
    NoSuchKey: 404,
    NoSuchUpload: 404,
    BucketAlreadyOwnedByYou: 409,
    BucketAlreadyExists: 409,
    BucketNotEmpty: 409,
    InvalidBucketName: 400,
    KeyTooLongError: 400,
    InvalidArgument: 400,
    InvalidRange: 416,
    PreconditionFailed: 412,
    NotModified: 304,
    MalformedXML: 400,
    MaxMessageLengthExceeded: 400,
    InvalidDigest: 400,
    BadDigest: 400,
    EntityTooLarge: 400,
    EntityTooSmall: 400,
    InvalidPart: 400,
    InvalidPartOrder: 400,
    IncompleteBody: 400,
    MethodNotAllowed: 405,
    NotImplemented: 501,
    InternalError: 500,
    ServiceUnavailable: 503,
    SlowDown: 503,
    AccessDenied: 403,
    SignatureDoesNotMatch: 403,
    InvalidAccessKeyId: 403,
    RequestTimeTooSkewed: 403,
    XAmzContentSHA256Mismatch: 400,
    AuthorizationHeaderMalformed: 400,
    MissingContentLength: 411,
    RequestTimeout: 400,
  };
  for (const [code, status] of Object.entries(expected)) {
    assert.equal(S3_ERRORS[code as keyof typeof S3_ERRORS]?.[0], status, code);
  }
});

Deno.test("S3_ERRORS messages are sentence case without a final period", () => {
  for (const [code, [status, message]] of Object.entries(S3_ERRORS)) {
    assert.ok(status >= 300 && status <= 599, code);
    assert.match(message, /^[A-Z]/, code);
    assert.doesNotMatch(message, /\.$/, code);
  }
});

Deno.test("errorXml() renders S3's Error document", () => {
  const error = new S3Error("NoSuchKey", undefined, { resource: "/photos/2024/a.jpg" });
  assert.equal(
    errorXml(error, "4442587FB7D0A2F9"),
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
      "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist</Message>" +
      "<Resource>/photos/2024/a.jpg</Resource><RequestId>4442587FB7D0A2F9</RequestId></Error>",
  );
});

Deno.test("errorXml() leaves Resource out when unknown and escapes every text", () => {
  const xml = errorXml(new S3Error("InvalidArgument", 'Bad key "a<b>&c"\u0001'), "r&1");
  assert.doesNotMatch(xml, /<Resource>/);
  const doc = parseXml(xml);
  assert.deepEqual(doc.children.map((c) => [c.name, c.text]), [
    ["Code", "InvalidArgument"],
    ["Message", 'Bad key "a<b>&c"\uFFFD'],
    ["RequestId", "r&1"],
  ]);
});

Deno.test("errorXml() accepts any { code, status, message } and writes its details", () => {
  // The shape of sigv4.ts's S3AuthError: another class, with `details`.
  class AuthError extends Error {
    code = "SignatureDoesNotMatch";
    status = 403;
    details = { StringToSign: "AWS4-HMAC-SHA256\n20240101T000000Z", AWSAccessKeyId: "AKID" };
  }
  const doc = parseXml(errorXml(new AuthError("The signature does not match"), "id"));
  assert.deepEqual(doc.children.map((c) => [c.name, c.text]), [
    ["Code", "SignatureDoesNotMatch"],
    ["Message", "The signature does not match"],
    ["StringToSign", "AWS4-HMAC-SHA256\n20240101T000000Z"],
    ["AWSAccessKeyId", "AKID"],
    ["RequestId", "id"],
  ]);
  assert.deepEqual(s3ErrorOf(new AuthError("x")).code, "SignatureDoesNotMatch");
});

Deno.test("errorXml() refuses a details name that is not an XML name", () => {
  const error = { code: "AccessDenied", status: 403, message: "no", details: { "a b": "c" } };
  assert.throws(() => errorXml(error, "id"), /Not an XML element name/);
});

Deno.test("s3ErrorOf() keeps S3 errors and maps DfsError codes", () => {
  const s3 = new S3Error("BucketNotEmpty");
  assert.equal(s3ErrorOf(s3), s3);
  const cases: [DfsError["code"], string, number][] = [
    ["NOT_FOUND", "NoSuchKey", 404],
    ["INVALID_REQUEST", "InvalidArgument", 400],
    ["TOO_LARGE", "EntityTooLarge", 400],
    ["UNAVAILABLE", "ServiceUnavailable", 503],
    ["UNAUTHORIZED", "AccessDenied", 403],
  ];
  for (const [dfsCode, code, status] of cases) {
    const mapped = s3ErrorOf(new DfsError(dfsCode, `why ${dfsCode}`));
    assert.deepEqual([mapped.code, mapped.status, mapped.message], [
      code,
      status,
      `why ${dfsCode}`,
    ]);
  }
});

Deno.test("s3ErrorOf() answers anything else as InternalError without its details", () => {
  for (
    const error of [
      new DfsError("CORRUPTED", "chunk 7 of /secret/path is damaged"),
      new TypeError("x is undefined"),
      "a string",
      { code: "NoSuchKey", status: 404, message: "not an Error" },
    ]
  ) {
    const mapped = s3ErrorOf(error);
    assert.equal(mapped.code, "InternalError");
    assert.equal(mapped.status, 500);
    assert.equal(mapped.message, "We encountered an internal error, please try again");
  }
});

Deno.test("s3ErrorOf() adds the resource to an error that has none", () => {
  assert.equal(s3ErrorOf(new S3Error("NoSuchKey"), "/b/k").resource, "/b/k");
  assert.equal(
    s3ErrorOf(new S3Error("NoSuchKey", "x", { resource: "/b/j" }), "/b/k").resource,
    "/b/j",
  );
  assert.equal(s3ErrorOf(new Error("boom"), "/b/k").resource, "/b/k");
});

Deno.test("errorHasBody() is false for 304 Not Modified and for HEAD", () => {
  assert.equal(errorHasBody(new S3Error("NotModified"), "GET"), false);
  assert.equal(errorHasBody(new S3Error("NoSuchKey"), "HEAD"), false);
  assert.equal(errorHasBody(new S3Error("NoSuchKey"), "head"), false);
  assert.equal(errorHasBody(new S3Error("NoSuchKey"), "GET"), true);
});
