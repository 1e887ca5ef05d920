import { newSigner } from "../../tests/_s3_signer.ts";
import { Prng } from "../../tests/_bytes.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { S3AuthError, type S3AuthErrorCode } from "./auth_error.ts";
import {
  bytesToHex,
  canonicalQuery,
  canonicalUri,
  parseQuery,
  QUERY_PARAMS_MAX,
  SIGNING_KEYS_CACHED_MAX,
  signingKey,
  trimHeaderValue,
} from "./canonical.ts";
import {
  AUTHORIZATION_BYTES_MAX,
  checkPayloadSha256,
  CLOCK_SKEW_MS_MAX,
  EMPTY_SHA256,
  PRESIGNED_EXPIRY_SECONDS_MAX,
  type SignedRequest,
  splitRequestTarget,
  type VerifyOptions,
  verifyRequest,
} from "./sigv4.ts";

// ---- helpers -------------------------------------------------------------------------------

const KEY_ID = "AKIDGATEWAYTEST1";
const SECRET = "gateway/secret+key=0123456789";
const NOW = Date.UTC(2026, 0, 15, 12, 30, 0);
const credentials = (id: string) => id === KEY_ID ? SECRET : undefined;
const options: VerifyOptions = { now: NOW, credentials };

function signer(secret = SECRET, accessKeyId = KEY_ID, region = "us-east-1") {
  return newSigner(accessKeyId, secret, region);
}

/** What the AWS SDKs do to a path segment or query part (`@smithy/core` `escapeUri`). */
function escapeUri(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** A text as the bytes of its UTF-8, one char each: what `Headers` holds for a header received. */
function byteString(text: string): string {
  return String.fromCharCode(...new TextEncoder().encode(text));
}

const KEY_CHARS = [
  "a",
  "Z",
  "0",
  "9",
  " ",
  "+",
  "&",
  "é",
  '"',
  "'",
  "%",
  "~",
  "日本",
  "😀",
  "=",
  "?",
  "#",
  "$",
  "!",
  "(",
  ")",
  "*",
  ",",
  ";",
  ":",
  "@",
  "[",
  "]",
  "\\",
  "^",
  "`",
  "{",
  "}",
  "|",
  "<",
  ">",
  "-",
  "_",
  ".",
  "%2F",
  "%zz",
];

function randomText(r: Prng, lengthMax: number): string {
  let text = "";
  for (let n = r.int(lengthMax + 1); n > 0; n--) text += r.pick(KEY_CHARS);
  return text;
}

function randomKey(r: Prng): string {
  const segments = [];
  for (let n = 1 + r.int(4); n > 0; n--) {
    segments.push(r.float() < 0.1 ? r.pick(["", ".", ".."]) : randomText(r, 8));
  }
  return segments.join("/");
}

function randomQuery(r: Prng): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  for (let n = r.int(5); n > 0; n--) {
    const key = r.float() < 0.3
      ? r.pick(["prefix", "list-type", "uploadId", "a", "A", "a-"])
      : randomText(r, 5) || "k";
    if (key.toLowerCase().startsWith("x-amz-")) continue;
    const value = r.float() < 0.2 ? "" : randomText(r, 6);
    if (r.float() < 0.25) query[key] = [value, r.float() < 0.3 ? value : randomText(r, 4)];
    else query[key] = value;
  }
  return query;
}

const WHITE = [" ", "  ", "\t", " \t ", ""];

function randomHeaderValue(r: Prng): string {
  let value = r.pick(WHITE);
  for (let n = 1 + r.int(4); n > 0; n--) {
    value += randomText(r, 4).replace(/%/g, "p") + r.pick(WHITE);
  }
  return value.trim() === "" ? "v" : value;
}

function randomHeaders(r: Prng): Record<string, string> {
  const headers: Record<string, string> = {};
  for (let n = r.int(5); n > 0; n--) {
    const name = r.pick([
      `x-amz-meta-${r.pick(["a", "b", "long-name", "Mixed"])}`,
      "content-type",
      "content-md5",
      "x-custom",
      "cache-control",
      "x-amz-storage-class",
    ]);
    headers[name] = randomHeaderValue(r);
  }
  return headers;
}

interface SmithyRequest {
  method: string;
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  query: Record<string, string | string[] | null>;
  headers: Record<string, string>;
}

/** The request a server receives for what `@smithy/signature-v4` signed. */
function received(signed: SmithyRequest): SignedRequest {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(signed.query ?? {})) {
    if (value === null) continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      parts.push(`${escapeUri(key)}=${escapeUri(v)}`);
    }
  }
  const headers = new Headers();
  for (const [name, value] of Object.entries(signed.headers)) headers.set(name, byteString(value));
  return { method: signed.method, path: signed.path, query: parts.join("&"), headers };
}

function amzDate(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

async function generated(r: Prng, kind: "header" | "presigned", secret = SECRET) {
  const method = r.pick(["GET", "PUT", "HEAD", "DELETE", "POST"]);
  const key = randomKey(r);
  const path = "/" + ["bucket", ...key.split("/")].map(escapeUri).join("/");
  const host = r.pick(["localhost:7080", "s3.example.com", "127.0.0.1:9000", "bucket.s3.local"]);
  const headers: Record<string, string> = { host, ...randomHeaders(r) };
  const request: SmithyRequest = {
    method,
    protocol: "http:",
    hostname: host,
    path,
    query: randomQuery(r),
    headers,
  };
  const signingDate = new Date(NOW - r.int(CLOCK_SKEW_MS_MAX));
  if (kind === "presigned") {
    headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD";
    const presigned = await signer(secret).presign(request, {
      signingDate,
      expiresIn: 1 + r.int(PRESIGNED_EXPIRY_SECONDS_MAX),
    });
    return { request: received(presigned as SmithyRequest), key };
  }
  headers["x-amz-content-sha256"] = r.pick([
    EMPTY_SHA256,
    "UNSIGNED-PAYLOAD",
    bytesToHex(createHash("sha256").update(randomText(r, 20)).digest()),
  ]);
  const signed = await signer(secret).sign(request, { signingDate });
  return { request: received(signed as SmithyRequest), key };
}

function assertS3Error(
  run: () => unknown,
  code: S3AuthErrorCode,
  message?: RegExp,
): S3AuthError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof S3AuthError, `expected an S3AuthError, got ${error}`);
    assert.equal(error.code, code, error.message);
    assert.equal(
      error.status,
      code === "AccessDenied" || code === "InvalidAccessKeyId" ||
        code === "RequestTimeTooSkewed" || code === "SignatureDoesNotMatch"
        ? 403
        : 400,
    );
    assert.doesNotMatch(error.message, /\.$/);
    if (message !== undefined) assert.match(error.message, message);
    return error;
  }
  assert.fail(`expected ${code}`);
}

function withHeaders(request: SignedRequest, change: (h: Headers) => void): SignedRequest {
  const headers = new Headers(request.headers);
  change(headers);
  return { ...request, headers };
}

/** Another byte in place of the one at `at` (never changing the text's canonical meaning). */
function mutate(text: string, at: number): string {
  const c = text[at];
  const next = c === "a" ? "b" : "a";
  return text.slice(0, at) + next + text.slice(at + 1);
}

// ---- the AWS documentation's examples -------------------------------------------------------

const DOC_KEY_ID = "AKIAIOSFODNN7EXAMPLE";
const DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const DOC_NOW = Date.UTC(2013, 4, 24);
const docOptions: VerifyOptions = {
  now: DOC_NOW,
  credentials: (id) => id === DOC_KEY_ID ? DOC_SECRET : undefined,
};

function docAuthorization(signedHeaders: string, signature: string): string {
  return `AWS4-HMAC-SHA256 Credential=${DOC_KEY_ID}/20130524/us-east-1/s3/aws4_request,` +
    `SignedHeaders=${signedHeaders},Signature=${signature}`;
}

Deno.test("verifyRequest() accepts the header-signed examples of the AWS S3 documentation", () => {
  const host = "examplebucket.s3.amazonaws.com";
  const base = { "x-amz-date": "20130524T000000Z", host };
  const cases: [string, string, string, Record<string, string>, string][] = [
    [
      "GET",
      "/test.txt",
      "",
      {
        range: "bytes=0-9",
        "x-amz-content-sha256": EMPTY_SHA256,
      },
      "host;range;x-amz-content-sha256;x-amz-date:f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    ],
    [
      "PUT",
      "/test$file.text",
      "",
      {
        date: "Fri, 24 May 2013 00:00:00 GMT",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
      },
      "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class:98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    ],
    [
      "GET",
      "/",
      "lifecycle",
      {
        "x-amz-content-sha256": EMPTY_SHA256,
      },
      "host;x-amz-content-sha256;x-amz-date:fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
    ],
    [
      "GET",
      "/",
      "prefix=J&max-keys=2",
      {
        "x-amz-content-sha256": EMPTY_SHA256,
      },
      "host;x-amz-content-sha256;x-amz-date:34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
    ],
  ];
  for (const [method, path, query, extra, signed] of cases) {
    const [names, signature] = signed.split(":");
    const headers = new Headers({
      ...base,
      ...extra,
      authorization: docAuthorization(names, signature),
    });
    const verified = verifyRequest({ method, path, query, headers }, docOptions);
    assert.equal(verified.accessKeyId, DOC_KEY_ID);
    assert.equal(verified.auth, "header");
    assert.deepEqual(verified.payload, { kind: "hash", sha256: extra["x-amz-content-sha256"] });
  }
  // The same PUT with its path as an SDK encodes it.
  const headers = new Headers({
    ...base,
    date: "Fri, 24 May 2013 00:00:00 GMT",
    "x-amz-storage-class": "REDUCED_REDUNDANCY",
    "x-amz-content-sha256": "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
    authorization: docAuthorization(
      "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
      "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    ),
  });
  verifyRequest({ method: "PUT", path: "/test%24file.text", query: "", headers }, docOptions);
});

Deno.test("verifyRequest() accepts the presigned URL example of the AWS S3 documentation", () => {
  const query =
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
  const request = {
    method: "GET",
    path: "/test.txt",
    query,
    headers: new Headers({ host: "examplebucket.s3.amazonaws.com" }),
  };
  const verified = verifyRequest(request, docOptions);
  assert.deepEqual(verified, {
    accessKeyId: DOC_KEY_ID,
    auth: "presigned",
    payload: { kind: "unsigned" },
  });
  // Valid for its whole 86400 s, expired after.
  verifyRequest(request, { ...docOptions, now: DOC_NOW + 86400_000 });
  assertS3Error(
    () => verifyRequest(request, { ...docOptions, now: DOC_NOW + 86400_000 + 1 }),
    "AccessDenied",
    /^Request has expired$/,
  );
  // The query parsed already gives the same.
  verifyRequest({ ...request, query: new URLSearchParams(query) }, docOptions);
});

Deno.test("signingKey() derives the key of the AWS documentation and survives cache eviction", () => {
  const expected = "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d";
  const secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  assert.equal(bytesToHex(signingKey(secret, "20120215", "us-east-1", "iam")), expected);
  for (let day = 0; day < SIGNING_KEYS_CACHED_MAX + 10; day++) {
    signingKey(secret, String(20000101 + day), "us-east-1", "s3");
  }
  assert.equal(bytesToHex(signingKey(secret, "20120215", "us-east-1", "iam")), expected);
  assert.notEqual(bytesToHex(signingKey(secret + "x", "20120215", "us-east-1", "iam")), expected);
});

// ---- against @smithy/signature-v4 -----------------------------------------------------------

Deno.test("verifyRequest() accepts 400 requests signed in the header by @smithy/signature-v4", async () => {
  for (let seed = 1; seed <= 400; seed++) {
    const { request } = await generated(new Prng(seed), "header");
    try {
      const verified = verifyRequest(request, options);
      assert.equal(verified.accessKeyId, KEY_ID);
      assert.equal(verified.auth, "header");
      const sha = request.headers.get("x-amz-content-sha256");
      assert.deepEqual(
        verified.payload,
        sha === "UNSIGNED-PAYLOAD" ? { kind: "unsigned" } : { kind: "hash", sha256: sha },
      );
    } catch (error) {
      throw new Error(`seed ${seed}: ${JSON.stringify(request.path)}?${request.query}`, {
        cause: error,
      });
    }
  }
});

Deno.test("verifyRequest() accepts 400 URLs presigned by @smithy/signature-v4", async () => {
  for (let seed = 1; seed <= 400; seed++) {
    const { request } = await generated(new Prng(seed), "presigned");
    try {
      const verified = verifyRequest(request, options);
      assert.deepEqual(verified, {
        accessKeyId: KEY_ID,
        auth: "presigned",
        payload: { kind: "unsigned" },
      });
    } catch (error) {
      throw new Error(`seed ${seed}: ${JSON.stringify(request.path)}?${request.query}`, {
        cause: error,
      });
    }
  }
});

/** The same path and query as a client may put them on the wire, all meaning the same. */
function reencode(r: Prng, text: string, kind: "path" | "query"): string {
  return text.replace(/%([0-9A-F]{2})|([^%])/g, (all, hex: string | undefined) => {
    if (hex !== undefined) {
      const c = String.fromCharCode(parseInt(hex, 16));
      // A sub-delimiter sent as itself ('+' only in a path: in a query it is a space).
      if ("$!'()*,;:@".includes(c) && r.float() < 0.5) return c;
      if (c === "=" && kind === "path" && r.float() < 0.5) return c;
      if (c === "+" && kind === "path" && r.float() < 0.5) return c;
      if (c === " " && kind === "query" && r.float() < 0.5) return "+";
      return r.float() < 0.5 ? `%${hex.toLowerCase()}` : all;
    }
    // An unreserved character sent percent-encoded, in either case.
    if (/[A-Za-z0-9\-._~]/.test(all) && r.float() < 0.3) {
      const code = all.charCodeAt(0).toString(16);
      return `%${r.float() < 0.5 ? code : code.toUpperCase()}`;
    }
    return all;
  });
}

Deno.test("verifyRequest() accepts 200 signed paths and queries encoded otherwise on the wire", async () => {
  for (let seed = 1; seed <= 200; seed++) {
    const r = new Prng(seed);
    const { request } = await generated(r, seed % 2 === 0 ? "header" : "presigned");
    const path = reencode(r, request.path, "path");
    const query = (request.query as string).split("&").map((part) =>
      part.startsWith("X-Amz-") ? part : reencode(r, part, "query")
    ).join("&");
    try {
      verifyRequest({ ...request, path, query }, options);
    } catch (error) {
      throw new Error(`seed ${seed}: ${path}?${query}`, { cause: error });
    }
  }
});

Deno.test("verifyRequest() refuses 300 signed requests each changed in one place with SignatureDoesNotMatch", async () => {
  const changes: ((r: Prng, request: SignedRequest) => SignedRequest)[] = [
    // A byte of the path.
    (r, request) => ({
      ...request,
      path: mutate(request.path, 1 + r.int(request.path.length - 1)),
    }),
    // A path segment added.
    (_, request) => ({ ...request, path: request.path + "/x" }),
    // A query parameter added, or a value changed.
    (_, request) => ({ ...request, query: `${request.query}&extra=1` }),
    (_, request) => ({ ...request, query: `${request.query}&prefix` }),
    // The method.
    (_, request) => ({ ...request, method: request.method === "GET" ? "PUT" : "GET" }),
    // A signed header's value.
    (_, request) => withHeaders(request, (h) => h.set("host", h.get("host") + "x")),
    // A signed x-amz- header's value (or the host's, if none is signed).
    (_, request) =>
      withHeaders(request, (h) => {
        const name = [...h.keys()].find((n) => n.startsWith("x-amz-meta-")) ?? "host";
        h.set(name, "changed");
      }),
  ];
  let refused = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const r = new Prng(seed);
    const kind = seed % 2 === 0 ? "header" : "presigned";
    const { request } = await generated(r, kind);
    const change = changes[seed % changes.length];
    const changed = change(r, request);
    if (
      canonicalUri(changed.path) === canonicalUri(request.path) &&
      changed.query === request.query && changed.method === request.method &&
      [...changed.headers].join() === [...request.headers].join()
    ) continue;
    try {
      assertS3Error(() => verifyRequest(changed, options), "SignatureDoesNotMatch");
    } catch (error) {
      throw new Error(`seed ${seed} (${kind}, change ${seed % changes.length})`, { cause: error });
    }
    refused++;
  }
  assert.ok(refused >= 280, `only ${refused} changes made a difference`);
});

Deno.test("verifyRequest() refuses a request signed with another secret, date or region", async () => {
  for (let seed = 1; seed <= 40; seed++) {
    const r = new Prng(seed);
    const kind = seed % 2 === 0 ? "header" : "presigned";
    const { request } = await generated(r, kind, SECRET + "!");
    assertS3Error(() => verifyRequest(request, options), "SignatureDoesNotMatch");
  }
  // The date: one second later, still within the skew and the same day.
  const { request } = await generated(new Prng(7), "header");
  const date = request.headers.get("x-amz-date")!;
  const later = amzDate(
    Date.UTC(
      +date.slice(0, 4),
      +date.slice(4, 6) - 1,
      +date.slice(6, 8),
      +date.slice(9, 11),
      +date.slice(11, 13),
      +date.slice(13, 15),
    ) + 1000,
  );
  assertS3Error(
    () => verifyRequest(withHeaders(request, (h) => h.set("x-amz-date", later)), options),
    "SignatureDoesNotMatch",
  );
  // The region: named in the credential, refused before the signature.
  const elsewhere = await signer(SECRET, KEY_ID, "eu-west-1").sign({
    method: "GET",
    protocol: "http:",
    hostname: "h",
    path: "/b/k",
    query: {},
    headers: { host: "h", "x-amz-content-sha256": EMPTY_SHA256 },
  }, { signingDate: new Date(NOW) });
  const error = assertS3Error(
    () => verifyRequest(received(elsewhere as SmithyRequest), options),
    "AuthorizationHeaderMalformed",
    /region 'eu-west-1' is wrong; expecting 'us-east-1'/,
  );
  assert.equal(error.details.Region, "us-east-1");
  verifyRequest(received(elsewhere as SmithyRequest), { ...options, region: "eu-west-1" });
});

Deno.test("verifyRequest() takes header values with their white space collapsed as signed", async () => {
  const signed = await signer().sign({
    method: "PUT",
    protocol: "http:",
    hostname: "h",
    path: "/b/k",
    query: {},
    headers: {
      host: "h",
      "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
      "x-amz-meta-note": " a  \t b   c ",
    },
  }, { signingDate: new Date(NOW) });
  const request = received(signed as SmithyRequest);
  verifyRequest(request, options);
  verifyRequest(withHeaders(request, (h) => h.set("x-amz-meta-note", "a b\t\tc")), options);
  assertS3Error(
    () => verifyRequest(withHeaders(request, (h) => h.set("x-amz-meta-note", "a bc")), options),
    "SignatureDoesNotMatch",
  );
});

// ---- refusals --------------------------------------------------------------------------------

async function signedGet(headers: Record<string, string> = {}, signingDate = new Date(NOW)) {
  const signed = await signer().sign({
    method: "GET",
    protocol: "http:",
    hostname: "h",
    path: "/b/k",
    query: {},
    headers: { host: "h", "x-amz-content-sha256": EMPTY_SHA256, ...headers },
  }, { signingDate });
  return received(signed as SmithyRequest);
}

Deno.test("verifyRequest() refuses a date more than CLOCK_SKEW_MS_MAX away with RequestTimeTooSkewed", async () => {
  for (const offset of [-CLOCK_SKEW_MS_MAX, 0, CLOCK_SKEW_MS_MAX]) {
    verifyRequest(await signedGet({}, new Date(NOW + offset)), options);
  }
  for (const offset of [-CLOCK_SKEW_MS_MAX - 1000, CLOCK_SKEW_MS_MAX + 1000, -86400_000 * 3]) {
    const error = assertS3Error(
      () => verifyRequest(signedGetSync(offset), options),
      "RequestTimeTooSkewed",
      /^The difference between the request time and the current time is too large$/,
    );
    assert.equal(error.details.MaxAllowedSkewMilliseconds, String(CLOCK_SKEW_MS_MAX));
  }
});

/** A request dated `offset` ms from NOW (signed by hand, as its signature is not reached). */
function signedGetSync(offset: number): SignedRequest {
  const date = amzDate(NOW + offset);
  return {
    method: "GET",
    path: "/b/k",
    query: "",
    headers: new Headers({
      host: "h",
      "x-amz-date": date,
      "x-amz-content-sha256": EMPTY_SHA256,
      authorization: `AWS4-HMAC-SHA256 Credential=${KEY_ID}/${date.slice(0, 8)}/us-east-1/s3/` +
        `aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=${
          "0".repeat(64)
        }`,
    }),
  };
}

Deno.test("verifyRequest() refuses an unknown access key with InvalidAccessKeyId", async () => {
  const request = await signedGet();
  const error = assertS3Error(
    () => verifyRequest(request, { ...options, credentials: () => undefined }),
    "InvalidAccessKeyId",
    /does not exist in our records/,
  );
  assert.equal(error.details.AWSAccessKeyId, KEY_ID);
  const presigned = (await generated(new Prng(3), "presigned")).request;
  assertS3Error(
    () => verifyRequest(presigned, { ...options, credentials: () => undefined }),
    "InvalidAccessKeyId",
  );
});

Deno.test("verifyRequest() refuses a request without a signature with AccessDenied", () => {
  for (const query of ["", "prefix=a", "X-Amz-Foo=1"]) {
    assertS3Error(
      () =>
        verifyRequest({
          method: "GET",
          path: "/b/k",
          query,
          headers: new Headers({ host: "h" }),
        }, options),
      "AccessDenied",
      /^Access denied: the request is not signed$/,
    );
  }
});

Deno.test("verifyRequest() refuses malformed Authorization headers with the code S3 gives", () => {
  const date = amzDate(NOW);
  const scope = `${date.slice(0, 8)}/us-east-1/s3/aws4_request`;
  const sig = "0".repeat(64);
  const cases: [string, S3AuthErrorCode][] = [
    ["garbage", "InvalidArgument"],
    ["", "InvalidArgument"],
    ["\u00ff\u00fe\u0001", "InvalidArgument"],
    ["Bearer abc", "InvalidArgument"],
    [`AWS ${KEY_ID}:c2lnbmF0dXJl`, "InvalidRequest"],
    [`AWS4-ECDSA-P256-SHA256 Credential=${KEY_ID}/${scope}`, "InvalidRequest"],
    ["AWS4-HMAC-SHA256", "AuthorizationHeaderMalformed"],
    ["AWS4-HMAC-SHA256 ", "AuthorizationHeaderMalformed"],
    [`AWS4-HMAC-SHA256 Credential=${KEY_ID}/${scope}`, "AuthorizationHeaderMalformed"],
    [
      `AWS4-HMAC-SHA256 Credential=${KEY_ID}/${scope}, SignedHeaders=host`,
      "AuthorizationHeaderMalformed",
    ],
    [`AWS4-HMAC-SHA256 SignedHeaders=host, Signature=${sig}`, "AuthorizationHeaderMalformed"],
    [
      `AWS4-HMAC-SHA256 Credential=${KEY_ID}/${scope}, SignedHeaders=host, Signature=xyz`,
      "AuthorizationHeaderMalformed",
    ],
    [
      `AWS4-HMAC-SHA256 Credential=${KEY_ID}/${scope}, SignedHeaders=host, Signature=${sig}, Signature=${sig}`,
      "AuthorizationHeaderMalformed",
    ],
    [
      `AWS4-HMAC-SHA256 Credential=${KEY_ID}/${scope}, SignedHeaders=host, Signature=${sig}, Extra=1`,
      "AuthorizationHeaderMalformed",
    ],
    [
      `AWS4-HMAC-SHA256 Credential=${KEY_ID}, SignedHeaders=host, Signature=${sig}`,
      "AuthorizationHeaderMalformed",
    ],
    [
      `AWS4-HMAC-SHA256 Credential=/${scope}, SignedHeaders=host, Signature=${sig}`,
      "AuthorizationHeaderMalformed",
    ],
    [
      `AWS4-HMAC-SHA256 Credential=${KEY_ID}/2026-01-15/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=${sig}`,
      "AuthorizationHeaderMalformed",
    ],
    [
      `AWS4-HMAC-SHA256 Credential=${KEY_ID}/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=${sig}`,
      "AuthorizationHeaderMalformed",
    ],
    [
      `AWS4-HMAC-SHA256 Credential=${KEY_ID}/${
        date.slice(0, 8)
      }/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=${sig}`,
      "AuthorizationHeaderMalformed",
    ],
    [
      `AWS4-HMAC-SHA256 Credential=${KEY_ID}/${
        date.slice(0, 8)
      }/us-east-1/s3/aws5_request, SignedHeaders=host, Signature=${sig}`,
      "AuthorizationHeaderMalformed",
    ],
    [
      `AWS4-HMAC-SHA256 Credential=${KEY_ID}/${scope}, SignedHeaders=x-amz-date, Signature=${sig}`,
      "AuthorizationHeaderMalformed",
    ],
    [
      `AWS4-HMAC-SHA256 Credential=${KEY_ID}/${scope}, SignedHeaders=host;Host, Signature=${sig}`,
      "AuthorizationHeaderMalformed",
    ],
    [
      `AWS4-HMAC-SHA256 Credential=${KEY_ID}/${scope}, SignedHeaders=host;host, Signature=${sig}`,
      "AuthorizationHeaderMalformed",
    ],
    [
      `AWS4-HMAC-SHA256 Credential=${KEY_ID}/${scope}, SignedHeaders=host;;x, Signature=${sig}`,
      "AuthorizationHeaderMalformed",
    ],
    [
      `AWS4-HMAC-SHA256 Credential=${KEY_ID}/${scope}, SignedHeaders=${
        Array.from({ length: 65 }, (_, i) => `h${i}`).join(";")
      }, Signature=${sig}`,
      "AuthorizationHeaderMalformed",
    ],
    [
      `AWS4-HMAC-SHA256 Credential=${KEY_ID}/${scope}, SignedHeaders=host, Signature=${sig}${
        " ".repeat(AUTHORIZATION_BYTES_MAX)
      }x`,
      "AuthorizationHeaderMalformed",
    ],
    [
      `AWS4-HMAC-SHA256 Credential=${
        "A".repeat(AUTHORIZATION_BYTES_MAX)
      }/${scope}, SignedHeaders=host, Signature=${sig}`,
      "AuthorizationHeaderMalformed",
    ],
  ];
  for (const [authorization, code] of cases) {
    const request = {
      method: "GET",
      path: "/b/k",
      query: "",
      headers: new Headers({
        host: "h",
        "x-amz-date": date,
        "x-amz-content-sha256": EMPTY_SHA256,
        authorization,
      }),
    };
    try {
      assertS3Error(() => verifyRequest(request, options), code);
    } catch (error) {
      throw new Error(`Authorization: ${authorization.slice(0, 120)}`, { cause: error });
    }
  }
});

Deno.test("verifyRequest() refuses header auth without a valid x-amz-date with AccessDenied", async () => {
  const request = await signedGet();
  for (
    const date of [
      undefined,
      "",
      "2026-01-15T12:30:00Z",
      "20260115T123000",
      "20260230T123000Z",
      "20260115T246000Z",
    ]
  ) {
    assertS3Error(
      () =>
        verifyRequest(
          withHeaders(request, (h) =>
            date === undefined ? h.delete("x-amz-date") : h.set("x-amz-date", date)),
          options,
        ),
      "AccessDenied",
      /valid Date or x-amz-date header/,
    );
  }
});

Deno.test("verifyRequest() refuses header auth without x-amz-content-sha256 or with a bad one", async () => {
  assertS3Error(
    () => verifyRequest(signedGetSyncWithout("x-amz-content-sha256"), options),
    "InvalidRequest",
    /^Missing required header for this request: x-amz-content-sha256$/,
  );
  for (
    const value of [
      "abc",
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
      "STREAMING-AWS4-HMAC-SHA256-EVENTS",
      "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
    ]
  ) {
    const request = await signedGet({ "x-amz-content-sha256": value });
    assertS3Error(
      () => verifyRequest(request, options),
      value.startsWith("STREAMING-") ? "InvalidRequest" : "InvalidArgument",
    );
  }
});

function signedGetSyncWithout(name: string): SignedRequest {
  const request = signedGetSync(0);
  request.headers.delete(name);
  return request;
}

Deno.test("verifyRequest() refuses x-amz- headers the signature does not cover with AccessDenied", async () => {
  const request = await signedGet();
  const error = assertS3Error(
    () => verifyRequest(withHeaders(request, (h) => h.set("x-amz-meta-late", "1")), options),
    "AccessDenied",
    /headers present in the request which were not signed/,
  );
  assert.equal(error.details.HeadersNotSigned, "x-amz-meta-late");
  // Other headers need not be signed.
  verifyRequest(withHeaders(request, (h) => h.set("user-agent", "test")), options);
});

Deno.test("verifyRequest() refuses a header signature and a presigned query together with InvalidArgument", async () => {
  const presigned = (await generated(new Prng(5), "presigned")).request;
  const header = await signedGet();
  assertS3Error(
    () =>
      verifyRequest(
        withHeaders(presigned, (h) => h.set("authorization", header.headers.get("authorization")!)),
        options,
      ),
    "InvalidArgument",
    /^Only one auth mechanism allowed/,
  );
});

Deno.test("verifyRequest() refuses SigV2 presigned URLs with InvalidRequest", () => {
  assertS3Error(
    () =>
      verifyRequest({
        method: "GET",
        path: "/b/k",
        query: "AWSAccessKeyId=AKID&Expires=1700000000&Signature=abc%3D",
        headers: new Headers({ host: "h" }),
      }, options),
    "InvalidRequest",
    /not supported/,
  );
});

/** A presigned query, its parameters changed by `edit` (each `undefined` removes one). */
async function presignedWith(edit: Record<string, string | undefined>, expiresIn = 3600) {
  const presigned = await signer().presign({
    method: "GET",
    protocol: "http:",
    hostname: "h",
    path: "/b/k",
    query: {},
    headers: { host: "h", "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
  }, { signingDate: new Date(NOW), expiresIn });
  const request = received(presigned as SmithyRequest);
  const params = new URLSearchParams(request.query as string);
  for (const [key, value] of Object.entries(edit)) {
    if (value === undefined) params.delete(key);
    else params.set(key, value);
  }
  return { ...request, query: params.toString() };
}

Deno.test("verifyRequest() refuses presigned URLs expired, not yet valid or over seven days", async () => {
  const request = await presignedWith({}, 60);
  verifyRequest(request, { ...options, now: NOW + 60_000 });
  assertS3Error(
    () => verifyRequest(request, { ...options, now: NOW + 60_001 }),
    "AccessDenied",
    /^Request has expired$/,
  );
  verifyRequest(request, { ...options, now: NOW - CLOCK_SKEW_MS_MAX });
  assertS3Error(
    () => verifyRequest(request, { ...options, now: NOW - CLOCK_SKEW_MS_MAX - 1000 }),
    "AccessDenied",
    /^Request is not valid yet$/,
  );
  const week = await presignedWith({}, PRESIGNED_EXPIRY_SECONDS_MAX);
  verifyRequest(week, options);
  assertS3Error(
    () =>
      verifyRequest(
        {
          ...week,
          query: (week.query as string).replace(
            /X-Amz-Expires=\d+/,
            `X-Amz-Expires=${PRESIGNED_EXPIRY_SECONDS_MAX + 1}`,
          ),
        },
        options,
      ),
    "AuthorizationQueryParametersError",
    /less than a week/,
  );
});

Deno.test("verifyRequest() refuses malformed presigned queries with AuthorizationQueryParametersError", async () => {
  const edits: Record<string, string | undefined>[] = [
    { "X-Amz-Algorithm": undefined },
    { "X-Amz-Credential": undefined },
    { "X-Amz-Signature": undefined },
    { "X-Amz-Date": undefined },
    { "X-Amz-SignedHeaders": undefined },
    { "X-Amz-Expires": undefined },
    { "X-Amz-Algorithm": "AWS4-HMAC-SHA512" },
    { "X-Amz-Credential": "nonsense" },
    { "X-Amz-Date": "yesterday" },
    { "X-Amz-Expires": "-1" },
    { "X-Amz-Expires": "1e3" },
    { "X-Amz-SignedHeaders": "x-amz-date" },
    { "X-Amz-SignedHeaders": "Host" },
    { "X-Amz-Signature": "z".repeat(64) },
  ];
  for (const edit of edits) {
    const request = await presignedWith(edit);
    try {
      assertS3Error(() => verifyRequest(request, options), "AuthorizationQueryParametersError");
    } catch (error) {
      throw new Error(JSON.stringify(edit), { cause: error });
    }
  }
  const twice = await presignedWith({});
  assertS3Error(
    () => verifyRequest({ ...twice, query: `${twice.query}&X-Amz-Date=20260115T123000Z` }, options),
    "AuthorizationQueryParametersError",
  );
});

Deno.test("verifyRequest() refuses a presigned URL for a streaming body with InvalidRequest", async () => {
  const request = await presignedWith({
    "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
  });
  assertS3Error(() => verifyRequest(request, options), "InvalidRequest", /aws-chunked/);
});

Deno.test("verifyRequest() gives a presigned URL's signed X-Amz-Content-Sha256 as the payload hash", async () => {
  const sha256 = bytesToHex(createHash("sha256").update("body").digest());
  const presigned = await signer().presign({
    method: "PUT",
    protocol: "http:",
    hostname: "h",
    path: "/b/k",
    query: {},
    headers: { host: "h", "x-amz-content-sha256": sha256 },
  }, { signingDate: new Date(NOW), expiresIn: 600 });
  const verified = verifyRequest(received(presigned as SmithyRequest), options);
  assert.deepEqual(verified.payload, { kind: "hash", sha256 });
});

Deno.test("verifyRequest() says how to read streaming bodies, with their trailer and decoded length", async () => {
  const cases: [Record<string, string>, Record<string, unknown>][] = [
    [{
      "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
      "x-amz-decoded-content-length": "66560",
    }, { kind: "streaming-signed", decodedContentLength: 66560 }],
    [{
      "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
      "x-amz-trailer": "x-amz-checksum-crc32c",
    }, { kind: "streaming-signed", trailer: "x-amz-checksum-crc32c" }],
    [{
      "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
      "x-amz-trailer": "x-amz-checksum-crc32",
      "x-amz-decoded-content-length": "0",
    }, {
      kind: "streaming-unsigned-trailer",
      trailer: "x-amz-checksum-crc32",
      decodedContentLength: 0,
    }],
  ];
  for (const [headers, expected] of cases) {
    const request = await signedGet({ "content-encoding": "aws-chunked", ...headers });
    const verified = verifyRequest(request, options);
    const payload = verified.payload as Record<string, unknown>;
    for (const [key, value] of Object.entries(expected)) assert.deepEqual(payload[key], value, key);
    if (payload.kind === "streaming-signed") {
      const authorization = request.headers.get("authorization")!;
      assert.equal(payload.seedSignature, authorization.slice(-64));
      assert.equal(payload.amzDate, request.headers.get("x-amz-date"));
      assert.equal(payload.scope, `${amzDate(NOW).slice(0, 8)}/us-east-1/s3/aws4_request`);
      assert.deepEqual(
        payload.signingKey,
        signingKey(SECRET, amzDate(NOW).slice(0, 8), "us-east-1", "s3"),
      );
    }
  }
  const refused: [Record<string, string>, S3AuthErrorCode][] = [
    [{ "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER" }, "InvalidRequest"],
    [{
      "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
      "x-amz-trailer": "x-amz-checksum-crc64nvme",
    }, "InvalidArgument"],
    [{
      "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
      "x-amz-trailer": "x-amz-checksum-crc32",
    }, "InvalidArgument"],
    [{
      "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
      "x-amz-decoded-content-length": "-1",
    }, "InvalidArgument"],
    [{
      "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
      "x-amz-decoded-content-length": "99999999999999999",
    }, "InvalidArgument"],
  ];
  for (const [headers, code] of refused) {
    const request = await signedGet(headers);
    assertS3Error(() => verifyRequest(request, options), code);
  }
});

Deno.test("verifyRequest() refuses more than QUERY_PARAMS_MAX query parameters with InvalidArgument", async () => {
  const request = await signedGet();
  const query = Array.from({ length: QUERY_PARAMS_MAX + 1 }, (_, i) => `p${i}=1`).join("&");
  assertS3Error(
    () => verifyRequest({ ...request, query }, options),
    "InvalidArgument",
    /more than 256/,
  );
  assertS3Error(
    () => verifyRequest({ ...request, query: new URLSearchParams(query) }, options),
    "InvalidArgument",
  );
});

Deno.test("verifyRequest() survives 2000 random hostile requests with an S3AuthError each", () => {
  const r = new Prng(99);
  const junk = () => {
    let text = "";
    for (let n = r.int(200); n > 0; n--) text += String.fromCharCode(r.int(256));
    return text;
  };
  const pieces = [
    "AWS4-HMAC-SHA256 ",
    "Credential=",
    `${KEY_ID}/`,
    "20260115/",
    "us-east-1/",
    "s3/",
    "aws4_request",
    ", ",
    ",",
    "SignedHeaders=",
    "host",
    ";",
    "Signature=",
    "0".repeat(64),
    "=",
    " ",
    "/",
  ];
  for (let i = 0; i < 2000; i++) {
    let authorization = "";
    for (let n = r.int(14); n > 0; n--) authorization += r.float() < 0.9 ? r.pick(pieces) : junk();
    const headers = new Headers({ host: "h", "x-amz-content-sha256": EMPTY_SHA256 });
    if (r.float() < 0.7) {
      headers.set("x-amz-date", r.float() < 0.5 ? amzDate(NOW) : junk().replace(/[\0\r\n]/g, ""));
    }
    const query = r.float() < 0.3
      ? [
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        `X-Amz-Credential=${encodeURIComponent(authorization)}`,
        "X-Amz-Date=" + amzDate(NOW),
        "X-Amz-Expires=" + r.int(1e6),
        "X-Amz-SignedHeaders=host",
        "X-Amz-Signature=" + "0".repeat(64),
      ].filter(() => r.float() < 0.9).join("&") + "&" + junk()
      : junk();
    const safe = authorization.replace(/[\0\r\n]/g, "").trim();
    if (r.float() < 0.8 && !query.includes("X-Amz-")) headers.set("authorization", safe);
    const request = { method: r.pick(["GET", "PUT", junk()]), path: "/" + junk(), query, headers };
    try {
      verifyRequest(request, options);
      assert.fail("a hostile request was accepted");
    } catch (error) {
      assert.ok(error instanceof S3AuthError, `iteration ${i}: ${error}`);
    }
  }
});

// ---- the canonical request's parts ---------------------------------------------------------

Deno.test("canonicalUri() encodes each segment once per RFC 3986 and keeps the path as it is", () => {
  const cases: [string, string][] = [
    ["", "/"],
    ["/", "/"],
    ["/test.txt", "/test.txt"],
    ["/test$file.text", "/test%24file.text"],
    ["/a%7e%7E~b", "/a~~~b"],
    ["/a b/c+d", "/a%20b/c%2Bd"],
    ["/a%2Fb", "/a%2Fb"],
    ["/a%2fb", "/a%2Fb"],
    ["/%c3%a9/é", "/%C3%A9/%C3%A9"],
    ["/a//b/./../c/", "/a//b/./../c/"],
    ["/100%/%zz/%4", "/100%25/%25zz/%254"],
    ["/%FF%FE", "/%FF%FE"],
    ["/日本/😀", "/%E6%97%A5%E6%9C%AC/%F0%9F%98%80"],
    ["/!'()*", "/%21%27%28%29%2A"],
  ];
  for (const [path, expected] of cases) assert.equal(canonicalUri(path), expected, path);
});

Deno.test("canonicalQuery() sorts by encoded name then value and keeps empty values", () => {
  assert.equal(canonicalQuery(parseQuery("b=2&a=1&a=&c&a=0")), "a=&a=0&a=1&b=2&c=");
  assert.equal(
    canonicalQuery(parseQuery("prefix=a+b%2Bc&max-keys=2")),
    "max-keys=2&prefix=a%20b%2Bc",
  );
  assert.equal(
    canonicalQuery(parseQuery("a-=1&a=2&A=3&a_=4&a.=5&a~=6")),
    "A=3&a=2&a-=1&a.=5&a_=4&a~=6",
  );
  assert.equal(canonicalQuery(parseQuery("k=%E2%82%AC&%zz=1&&")), "%25zz=1&k=%E2%82%AC");
  assert.equal(canonicalQuery(parseQuery("")), "");
  assert.deepEqual(parseQuery(new URLSearchParams("a=1+2")), [["a", "1 2"]]);
});

Deno.test("trimHeaderValue() collapses runs of white space and trims both ends", () => {
  assert.equal(trimHeaderValue("  a \t\t b  c "), "a b c");
  assert.equal(trimHeaderValue("\ta"), "a");
  assert.equal(trimHeaderValue(""), "");
  assert.equal(trimHeaderValue("a\u00a0b"), "a\u00a0b");
});

Deno.test("splitRequestTarget() keeps the raw path of a request URL, dots and escapes included", () => {
  assert.deepEqual(splitRequestTarget("http://h:9000/a/../b/%7e?x=1+2&y"), {
    path: "/a/../b/%7e",
    query: "x=1+2&y",
  });
  assert.deepEqual(splitRequestTarget("http://h"), { path: "/", query: "" });
  assert.deepEqual(splitRequestTarget("https://h/b?"), { path: "/b", query: "" });
  assert.deepEqual(splitRequestTarget("http://h/b#frag?x"), { path: "/b", query: "" });
});

Deno.test("checkPayloadSha256() accepts the signed digest and refuses another with XAmzContentSHA256Mismatch", () => {
  const digest = new Uint8Array(createHash("sha256").update("data").digest());
  checkPayloadSha256(bytesToHex(digest), digest);
  checkPayloadSha256(bytesToHex(digest).toUpperCase(), digest);
  for (const expected of [EMPTY_SHA256, "zz", ""]) {
    assertS3Error(
      () => checkPayloadSha256(expected, digest),
      "XAmzContentSHA256Mismatch",
      /does not match what was computed/,
    );
  }
});

Deno.test("S3AuthError carries its code, HTTP status, message and details", () => {
  const error = new S3AuthError("SignatureDoesNotMatch", "No", { AWSAccessKeyId: "A" });
  assert.ok(error instanceof Error);
  assert.equal(error.name, "S3AuthError");
  assert.equal(error.code, "SignatureDoesNotMatch");
  assert.equal(error.status, 403);
  assert.equal(error.message, "No");
  assert.deepEqual(error.details, { AWSAccessKeyId: "A" });
  assert.equal(new S3AuthError("BadDigest", "x").status, 400);
  assert.deepEqual(new S3AuthError("IncompleteBody", "x").details, {});
});
