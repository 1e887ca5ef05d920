import { newSigner } from "../../tests/_s3_signer.ts";
import { Prng } from "../../tests/_bytes.ts";
import { concatBytes } from "../../protocol/bytes.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import {
  AwsChunkedDecoder,
  awsChunkedStream,
  CHUNK_HEADER_BYTES_MAX,
  CHUNK_SIZE_BYTES_MAX,
  chunkSignature,
  crc32c,
  encodeAwsChunked,
  payloadStream,
  type StreamingPayload,
  TRAILER_BYTES_MAX,
} from "./aws_chunked.ts";
import { S3AuthError, type S3AuthErrorCode } from "./auth_error.ts";
import { bytesToHex, signingKey } from "./canonical.ts";
import { CHECKSUM_TRAILERS, type ChecksumTrailer, type ChunkSigning } from "./payload.ts";
import { verifyRequest } from "./sigv4.ts";

// ---- helpers -------------------------------------------------------------------------------

const encoder = new TextEncoder();
const SECRET = "chunked/secret+key=0123456789";
const SIGNING: ChunkSigning = {
  seedSignature: "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
  signingKey: signingKey(SECRET, "20260115", "us-east-1", "s3"),
  scope: "20260115/us-east-1/s3/aws4_request",
  amzDate: "20260115T123000Z",
};

type SignedPayload = Extract<StreamingPayload, { kind: "streaming-signed" }>;

function signed(trailer?: ChecksumTrailer, decodedContentLength?: number): SignedPayload {
  return {
    kind: "streaming-signed",
    ...SIGNING,
    ...(trailer === undefined ? {} : { trailer }),
    ...(decodedContentLength === undefined ? {} : { decodedContentLength }),
  };
}

function unsigned(
  trailer: ChecksumTrailer = "x-amz-checksum-crc32",
  decodedContentLength?: number,
): StreamingPayload {
  return {
    kind: "streaming-unsigned-trailer",
    trailer,
    ...(decodedContentLength === undefined ? {} : { decodedContentLength }),
  };
}

function randomBytes(r: Prng, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = r.int(256);
  return bytes;
}

/** Cuts `bytes` into pieces: all of 1 byte, or of random sizes. */
function pieces(r: Prng, bytes: Uint8Array, mode: "bytes" | "random"): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length;) {
    const size = mode === "bytes" ? 1 : 1 + r.int(r.float() < 0.5 ? 7 : 70_000);
    out.push(bytes.subarray(at, at + size));
    at += size;
  }
  return out;
}

/** Decodes `body` fed as `parts`, returning the data, or throwing what the decoder throws. */
function decode(payload: StreamingPayload, parts: readonly Uint8Array[]): Uint8Array {
  const decoder = new AwsChunkedDecoder(payload);
  const out: Uint8Array[] = [];
  for (const part of parts) out.push(...decoder.push(part));
  decoder.end();
  assert.equal(decoder.decodedBytes, out.reduce((sum, p) => sum + p.length, 0));
  return concatBytes(out);
}

function assertS3Error(run: () => unknown, code: S3AuthErrorCode, message?: RegExp): S3AuthError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof S3AuthError, `expected an S3AuthError, got ${error}`);
    assert.equal(error.code, code, error.message);
    assert.equal(error.status, code === "SignatureDoesNotMatch" ? 403 : 400);
    assert.doesNotMatch(error.message, /\.$/);
    if (message !== undefined) assert.match(error.message, message);
    return error;
  }
  assert.fail(`expected ${code}`);
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const part of stream) parts.push(part);
  return concatBytes(parts);
}

async function assertRejectsS3(promise: Promise<unknown>, code: S3AuthErrorCode) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof S3AuthError, `expected an S3AuthError, got ${error}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

function text(value: string): Uint8Array {
  return encoder.encode(value);
}

// ---- the AWS documentation's examples -------------------------------------------------------

const DOC_KEY_ID = "AKIAIOSFODNN7EXAMPLE";
const DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const DOC_NOW = Date.UTC(2013, 4, 24);

/** The request of "Example: PUT Object" in the AWS docs on chunked uploads, with its body. */
function docRequest(trailer: boolean) {
  const sigs = trailer
    ? [
      "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
      "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
      "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
      "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
    ]
    : [
      "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
      "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
      "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
      "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ];
  const signedHeaders = trailer
    ? "content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;" +
      "x-amz-storage-class;x-amz-trailer"
    : "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;" +
      "x-amz-decoded-content-length;x-amz-storage-class";
  const body = concatBytes([
    text(`10000;chunk-signature=${sigs[1]}\r\n`),
    new Uint8Array(65536).fill(0x61),
    text(`\r\n400;chunk-signature=${sigs[2]}\r\n`),
    new Uint8Array(1024).fill(0x61),
    text(`\r\n0;chunk-signature=${sigs[3]}\r\n`),
    text(
      trailer
        ? "x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:" +
          "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n"
        : "\r\n",
    ),
  ]);
  const headers = new Headers({
    host: "s3.amazonaws.com",
    "x-amz-date": "20130524T000000Z",
    "x-amz-storage-class": "REDUCED_REDUNDANCY",
    "x-amz-content-sha256": trailer
      ? "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
      : "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "content-encoding": "aws-chunked",
    "x-amz-decoded-content-length": "66560",
    authorization: `AWS4-HMAC-SHA256 Credential=${DOC_KEY_ID}/20130524/us-east-1/s3/aws4_request,` +
      `SignedHeaders=${signedHeaders},Signature=${sigs[0]}`,
  });
  if (trailer) headers.set("x-amz-trailer", "x-amz-checksum-crc32c");
  else headers.set("content-length", "66824");
  return { method: "PUT", path: "/examplebucket/chunkObject.txt", query: "", headers, body };
}

const docOptions = {
  now: DOC_NOW,
  credentials: (id: string) => id === DOC_KEY_ID ? DOC_SECRET : undefined,
};

Deno.test("AwsChunkedDecoder decodes the signed chunked upload example of the AWS documentation", async () => {
  const request = docRequest(false);
  assert.equal(request.body.length, 66824);
  const verified = verifyRequest(request, docOptions);
  const payload = verified.payload as StreamingPayload;
  assert.equal(payload.kind, "streaming-signed");
  assert.equal(payload.decodedContentLength, 66560);
  const data = await readAll(
    ReadableStream.from([request.body]).pipeThrough(awsChunkedStream(payload)),
  );
  assert.deepEqual(data, new Uint8Array(66560).fill(0x61));
  // The encoder writes the same bytes.
  assert.deepEqual(
    encodeAwsChunked(
      [new Uint8Array(65536).fill(0x61), new Uint8Array(1024).fill(0x61)],
      { signing: payload as ChunkSigning },
    ),
    request.body,
  );
});

Deno.test("AwsChunkedDecoder decodes the signed chunked upload with a trailer of the AWS documentation", () => {
  const request = docRequest(true);
  const verified = verifyRequest(request, docOptions);
  const payload = verified.payload as StreamingPayload;
  assert.deepEqual(
    { kind: payload.kind, trailer: payload.trailer },
    { kind: "streaming-signed", trailer: "x-amz-checksum-crc32c" },
  );
  const decoder = new AwsChunkedDecoder(payload);
  const data = concatBytes(decoder.push(request.body));
  decoder.end();
  assert.deepEqual(data, new Uint8Array(66560).fill(0x61));
  assert.equal(decoder.trailers.get("x-amz-checksum-crc32c"), "sOO8/Q==");
  assert.deepEqual(
    encodeAwsChunked(
      [new Uint8Array(65536).fill(0x61), new Uint8Array(1024).fill(0x61)],
      { signing: payload as ChunkSigning, trailer: "x-amz-checksum-crc32c" },
    ),
    request.body,
  );
});

Deno.test("chunkSignature() agrees with @smithy/signature-v4's chained payload signatures", async () => {
  const signer = newSigner("AKID", SECRET);
  const r = new Prng(11);
  let previous = SIGNING.seedSignature;
  for (let i = 0; i < 50; i++) {
    const chunk = randomBytes(r, i === 49 ? 0 : r.int(5000));
    const expected = await signer.sign(
      { headers: new Uint8Array(0), payload: chunk },
      { signingDate: new Date(Date.UTC(2026, 0, 15, 12, 30)), priorSignature: previous },
    );
    const mine = bytesToHex(
      chunkSignature(SIGNING, previous, createHash("sha256").update(chunk).digest("hex")),
    );
    assert.equal(mine, expected);
    previous = mine;
  }
});

// ---- round trips --------------------------------------------------------------------------

function randomBody(r: Prng, payload: StreamingPayload) {
  const chunks: Uint8Array[] = [];
  for (let n = r.int(6); n > 0; n--) {
    chunks.push(randomBytes(r, r.pick([1, 2, 17, 8192, 65536, r.int(200_000)])));
  }
  const signing = payload.kind === "streaming-signed" ? payload : undefined;
  const body = encodeAwsChunked(chunks, { signing, trailer: payload.trailer });
  return { data: concatBytes(chunks), body };
}

Deno.test("AwsChunkedDecoder decodes 240 generated bodies of every mode fed in pieces of any size", () => {
  const payloads: StreamingPayload[] = [
    signed(),
    ...CHECKSUM_TRAILERS.map((t) => signed(t)),
    ...CHECKSUM_TRAILERS.map((t) => unsigned(t)),
  ];
  for (let seed = 1; seed <= 240; seed++) {
    const r = new Prng(seed);
    const payload = payloads[seed % payloads.length];
    const { data, body } = randomBody(r, payload);
    const withLength = r.float() < 0.5
      ? { ...payload, decodedContentLength: data.length }
      : payload;
    const mode = body.length < 3000 && r.float() < 0.5 ? "bytes" : "random";
    try {
      assert.deepEqual(decode(withLength, pieces(r, body, mode)), data);
    } catch (error) {
      throw new Error(`seed ${seed}, ${payload.kind} ${payload.trailer}, ${mode}`, {
        cause: error,
      });
    }
  }
});

Deno.test("AwsChunkedDecoder accepts hex sizes in either case and ignores unsigned chunk extensions", () => {
  const body = text(
    "A;ext=1\r\n0123456789\r\n0\r\nx-amz-checksum-crc32:" +
      Buffer64(crc32(text("0123456789"))) + "\r\n\r\n",
  );
  assert.deepEqual(decode(unsigned(), [body]), text("0123456789"));
  const trailerOnly = text(`0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n`);
  assert.deepEqual(decode(unsigned(), [trailerOnly]), new Uint8Array(0));
});

function Buffer64(value: number): string {
  return btoa(
    String.fromCharCode(value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255),
  );
}

// ---- tampering ---------------------------------------------------------------------------

Deno.test("AwsChunkedDecoder refuses any changed data byte: SignatureDoesNotMatch signed, BadDigest unsigned", () => {
  const r = new Prng(5);
  const chunks = [randomBytes(r, 8192), randomBytes(r, 100), randomBytes(r, 3000)];
  for (
    const payload of [
      signed(),
      signed("x-amz-checksum-crc32"),
      unsigned(),
      unsigned("x-amz-checksum-sha256"),
    ]
  ) {
    const signing = payload.kind === "streaming-signed" ? payload : undefined;
    const body = encodeAwsChunked(chunks, { signing, trailer: payload.trailer });
    decode(payload, [body]);
    const starts = splitChunks(body).slice(0, -1).map((chunk, i) =>
      chunk.byteOffset - body.byteOffset + chunk.indexOf(0x0a) + 1 + r.int(chunks[i].length)
    );
    for (const at of starts) {
      const changed = body.slice();
      changed[at] ^= 0x01;
      try {
        assertS3Error(
          () => decode(payload, pieces(r, changed, "random")),
          payload.kind === "streaming-signed" ? "SignatureDoesNotMatch" : "BadDigest",
        );
      } catch (error) {
        throw new Error(`${payload.kind} ${payload.trailer} at ${at}`, { cause: error });
      }
    }
  }
});

Deno.test("AwsChunkedDecoder refuses a changed, reordered or dropped signed chunk with SignatureDoesNotMatch", () => {
  const r = new Prng(6);
  const chunks = [randomBytes(r, 100), randomBytes(r, 200), randomBytes(r, 300)];
  const body = encodeAwsChunked(chunks, { signing: SIGNING });
  // A signature digit.
  const changed = body.slice();
  changed[30] = changed[30] === 0x30 ? 0x31 : 0x30;
  assertS3Error(() => decode(signed(), [changed]), "SignatureDoesNotMatch", /chunk 1/);
  // Chunks swapped, or one dropped, each chunk keeping its own signature.
  const split = splitChunks(body);
  assertS3Error(
    () => decode(signed(), [concatBytes([split[1], split[0], ...split.slice(2)])]),
    "SignatureDoesNotMatch",
  );
  assertS3Error(
    () => decode(signed(), [concatBytes([split[0], ...split.slice(2)])]),
    "SignatureDoesNotMatch",
  );
  // The right chunks under another seed signature or key.
  assertS3Error(
    () => decode({ ...signed(), seedSignature: "0".repeat(64) }, [body]),
    "SignatureDoesNotMatch",
  );
  assertS3Error(
    () =>
      decode({ ...signed(), signingKey: signingKey("other", "20260115", "us-east-1", "s3") }, [
        body,
      ]),
    "SignatureDoesNotMatch",
  );
  // The last, empty chunk's signature.
  const last = body.slice();
  last[last.length - 5] = last[last.length - 5] === 0x30 ? 0x31 : 0x30;
  assertS3Error(() => decode(signed(), [last]), "SignatureDoesNotMatch");
});

/** An encoded body cut into its chunks (each from its header to its CRLF). */
function splitChunks(body: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < body.length) {
    const lf = body.indexOf(0x0a, at);
    const size = parseInt(new TextDecoder().decode(body.subarray(at, lf)).split(";")[0], 16);
    const end = size === 0 ? body.length : lf + 1 + size + 2;
    out.push(body.subarray(at, end));
    at = end;
  }
  return out;
}

Deno.test("AwsChunkedDecoder refuses a body cut anywhere with IncompleteBody", () => {
  const r = new Prng(7);
  const chunks = [randomBytes(r, 40), randomBytes(r, 3)];
  for (const payload of [signed(), signed("x-amz-checksum-crc32c"), unsigned()]) {
    const signing = payload.kind === "streaming-signed" ? payload : undefined;
    const body = encodeAwsChunked(chunks, { signing, trailer: payload.trailer });
    for (let end = 0; end < body.length; end++) {
      try {
        assertS3Error(
          () => decode(payload, pieces(r, body.subarray(0, end), "random")),
          "IncompleteBody",
          /ended/,
        );
      } catch (error) {
        throw new Error(`${payload.kind} ${payload.trailer} cut at ${end}`, { cause: error });
      }
    }
    assert.deepEqual(decode(payload, [body]), concatBytes(chunks));
  }
});

Deno.test("AwsChunkedDecoder checks the checksum trailer: BadDigest if it differs, MalformedTrailerError if absent or unknown", () => {
  const data = text("hello, trailer");
  const good = crc32(data);
  for (const payload of [unsigned(), signed("x-amz-checksum-crc32")]) {
    const signing = payload.kind === "streaming-signed" ? payload : undefined;
    const encode = (trailerValue?: string) =>
      encodeAwsChunked([data], { signing, trailer: "x-amz-checksum-crc32", trailerValue });
    assert.deepEqual(decode(payload, [encode(Buffer64(good))]), data);
    const error = assertS3Error(
      () => decode(payload, [encode(Buffer64(good ^ 1))]),
      "BadDigest",
      /^The CRC32 you specified did not match the calculated checksum$/,
    );
    assert.equal(error.details.CalculatedChecksum, Buffer64(good));
    assertS3Error(() => decode(payload, [encode("not base64")]), "BadDigest");
  }
  const body = (trailers: string) =>
    concatBytes([text("3\r\nabc\r\n0\r\n"), text(trailers), text("\r\n")]);
  const abc = "x-amz-checksum-crc32:NSRBwg==\r\n";
  assert.deepEqual(decode(unsigned(), [body(abc)]), text("abc"));
  assertS3Error(() => decode(unsigned(), [body("")]), "MalformedTrailerError", /missing/);
  assertS3Error(
    () => decode(unsigned(), [body(abc + "x-other:1\r\n")]),
    "MalformedTrailerError",
    /not declared/,
  );
  assertS3Error(() => decode(unsigned(), [body(abc + abc)]), "MalformedTrailerError", /twice/);
  assertS3Error(() => decode(unsigned(), [body("garbage\r\n")]), "MalformedTrailerError");
  assertS3Error(
    () => decode(unsigned("x-amz-checksum-crc32c"), [body(abc)]),
    "MalformedTrailerError",
  );
  // A signed body declaring no trailer takes none.
  const signedBody = encodeAwsChunked([text("abc")], { signing: SIGNING });
  const withTrailer = concatBytes([
    signedBody.subarray(0, signedBody.length - 2),
    text(abc),
    text("\r\n"),
  ]);
  assertS3Error(() => decode(signed(), [withTrailer]), "MalformedTrailerError");
});

Deno.test("AwsChunkedDecoder refuses a trailer whose signature does not match with SignatureDoesNotMatch", () => {
  const body = encodeAwsChunked([text("abc")], {
    signing: SIGNING,
    trailer: "x-amz-checksum-sha1",
  });
  assert.deepEqual(decode(signed("x-amz-checksum-sha1"), [body]), text("abc"));
  const changed = body.slice();
  changed[changed.length - 5] = changed[changed.length - 5] === 0x30 ? 0x31 : 0x30;
  assertS3Error(
    () => decode(signed("x-amz-checksum-sha1"), [changed]),
    "SignatureDoesNotMatch",
    /trailers/,
  );
  const unsignedTrailer = encodeAwsChunked([text("abc")], { trailer: "x-amz-checksum-sha1" });
  const resigned = concatBytes([
    encodeAwsChunked([text("abc")], { signing: SIGNING }).subarray(0, -2),
    unsignedTrailer.subarray(unsignedTrailer.indexOf(0x78)),
  ]);
  assertS3Error(
    () => decode(signed("x-amz-checksum-sha1"), [resigned]),
    "MalformedTrailerError",
    /x-amz-trailer-signature is missing/,
  );
});

// ---- limits and malformed framing ---------------------------------------------------------

Deno.test("AwsChunkedDecoder refuses a header line over CHUNK_HEADER_BYTES_MAX before buffering more", () => {
  const decoder = new AwsChunkedDecoder(signed());
  assertS3Error(
    () => decoder.push(new Uint8Array(1024 * 1024).fill(0x31)),
    "InvalidArgument",
    /longer than 4096 bytes/,
  );
  // Fed 100 bytes at a time, it fails on the piece that crosses the limit.
  const slow = new AwsChunkedDecoder(unsigned());
  let pushed = 0;
  assertS3Error(() => {
    for (;;) {
      slow.push(new Uint8Array(100).fill(0x31));
      pushed++;
    }
  }, "InvalidArgument");
  assert.equal(pushed, Math.floor(CHUNK_HEADER_BYTES_MAX / 100));
  // A trailer line too.
  const trailer = new AwsChunkedDecoder(unsigned());
  trailer.push(text("0\r\nx-amz-checksum-crc32:"));
  assertS3Error(
    () => trailer.push(new Uint8Array(CHUNK_HEADER_BYTES_MAX).fill(0x41)),
    "InvalidArgument",
  );
});

Deno.test("AwsChunkedDecoder refuses a chunk over CHUNK_SIZE_BYTES_MAX and trailers over TRAILER_BYTES_MAX", () => {
  const decoder = new AwsChunkedDecoder(unsigned());
  assertS3Error(
    () => decoder.push(text(`${(CHUNK_SIZE_BYTES_MAX + 1).toString(16)}\r\n`)),
    "InvalidArgument",
    /over the 16777216 allowed/,
  );
  assert.deepEqual(
    new AwsChunkedDecoder(unsigned()).push(text(`${CHUNK_SIZE_BYTES_MAX.toString(16)}\r\n`)),
    [],
  );
  assertS3Error(
    () => new AwsChunkedDecoder(unsigned()).push(text("fffffffffffffffff\r\n")),
    "InvalidArgument",
  );
  const trailers = new AwsChunkedDecoder(unsigned());
  trailers.push(text("0\r\n"));
  assertS3Error(
    () => {
      for (let i = 0; i * 20 <= TRAILER_BYTES_MAX; i++) {
        trailers.push(
          text(`x-amz-meta-${String(i).padStart(6, "0")}:1\r\n`),
        );
      }
    },
    "InvalidArgument",
    /trailers are longer than 4096 bytes/,
  );
});

Deno.test("AwsChunkedDecoder holds the data to x-amz-decoded-content-length", () => {
  const body = encodeAwsChunked([text("0123456789"), text("abc")], { signing: SIGNING });
  assert.deepEqual(decode(signed(undefined, 13), [body]), text("0123456789abc"));
  assertS3Error(
    () => decode(signed(undefined, 14), [body]),
    "IncompleteBody",
    /holds 13 bytes where x-amz-decoded-content-length declares 14/,
  );
  // More than declared fails at the chunk header, before its data is given out.
  const decoder = new AwsChunkedDecoder(signed(undefined, 12));
  const split = splitChunks(body);
  assert.deepEqual(concatBytes(decoder.push(split[0])), text("0123456789"));
  assertS3Error(() => decoder.push(split[1]), "InvalidArgument", /more than the 12 bytes/);
});

Deno.test("AwsChunkedDecoder refuses malformed framing with InvalidArgument", () => {
  const sig = "0".repeat(64);
  const cases: [StreamingPayload, string][] = [
    [unsigned(), "x\r\n"],
    [unsigned(), "\r\n"],
    [unsigned(), "-1\r\n"],
    [unsigned(), " 3\r\nabc\r\n"],
    [unsigned(), "3\nabc\r\n"],
    [unsigned(), "3\r\nabcX\n"],
    [unsigned(), "3\r\nabc\rX"],
    [signed(), "3\r\nabc\r\n"],
    [signed(), "3;chunk-signature=abc\r\nabc\r\n"],
    [signed(), `3;chunk-signature=${sig};x=1\r\nabc\r\n`],
    [signed(), `3;signature=${sig}\r\nabc\r\n`],
  ];
  for (const [payload, body] of cases) {
    try {
      assertS3Error(() => decode(payload, [text(body)]), "InvalidArgument");
    } catch (error) {
      throw new Error(JSON.stringify(body), { cause: error });
    }
  }
  // Bytes after the end.
  const complete = encodeAwsChunked([text("abc")], { trailer: "x-amz-checksum-crc32" });
  assertS3Error(
    () => decode(unsigned(), [complete, text("0\r\n")]),
    "InvalidArgument",
    /after its trailers/,
  );
});

// ---- as streams --------------------------------------------------------------------------

Deno.test("awsChunkedStream() decodes a request body and fails its reader with the decoder's error", async () => {
  const r = new Prng(9);
  const data = randomBytes(r, 100_000);
  const body = encodeAwsChunked([data.subarray(0, 65536), data.subarray(65536)], {
    signing: SIGNING,
  });
  const decoded = await readAll(
    new Request("http://h/", { method: "PUT", body: body as Uint8Array<ArrayBuffer> }).body!
      .pipeThrough(awsChunkedStream(signed())),
  );
  assert.deepEqual(decoded, data);
  const changed = body.slice();
  changed[200] ^= 1;
  await assertRejectsS3(
    readAll(
      ReadableStream.from(pieces(r, changed, "random")).pipeThrough(awsChunkedStream(signed())),
    ),
    "SignatureDoesNotMatch",
  );
});

Deno.test("awsChunkedStream() fails a body that stops short of a 10 GiB declared length with IncompleteBody", async () => {
  const payload = unsigned("x-amz-checksum-crc32", 10 * 1024 * 1024 * 1024);
  const body = ReadableStream.from([text("1000000\r\n"), new Uint8Array(4096)]);
  await assertRejectsS3(readAll(body.pipeThrough(awsChunkedStream(payload))), "IncompleteBody");
  // A complete body that decodes to less is refused too.
  const short = encodeAwsChunked([text("abc")], { trailer: "x-amz-checksum-crc32" });
  await assertRejectsS3(
    readAll(ReadableStream.from([short]).pipeThrough(awsChunkedStream(payload))),
    "IncompleteBody",
  );
});

Deno.test("awsChunkedStream() decodes a slow body that arrives a byte at a time", async () => {
  const body = encodeAwsChunked([text("slow"), text(" body")], {
    signing: SIGNING,
    trailer: "x-amz-checksum-crc32",
  });
  let at = 0;
  const slow = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (at % 16 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
      if (at === body.length) controller.close();
      else controller.enqueue(body.slice(at, ++at));
    },
  });
  assert.deepEqual(
    await readAll(slow.pipeThrough(awsChunkedStream(signed("x-amz-checksum-crc32")))),
    text("slow body"),
  );
});

Deno.test("payloadStream() checks a signed SHA-256, passes an unsigned body and decodes aws-chunked", async () => {
  const data = text("the body");
  const sha256 = createHash("sha256").update(data).digest("hex");
  const run = (payload: Parameters<typeof payloadStream>[0], body: Uint8Array) =>
    readAll(
      ReadableStream.from(pieces(new Prng(1), body, "bytes")).pipeThrough(payloadStream(payload)),
    );
  assert.deepEqual(await run({ kind: "hash", sha256 }, data), data);
  await assertRejectsS3(
    run({ kind: "hash", sha256 }, text("the bodY")),
    "XAmzContentSHA256Mismatch",
  );
  await assertRejectsS3(
    run({ kind: "hash", sha256 }, text("the bod")),
    "XAmzContentSHA256Mismatch",
  );
  assert.deepEqual(await run({ kind: "unsigned" }, data), data);
  const chunked = encodeAwsChunked([data], { trailer: "x-amz-checksum-crc32" });
  assert.deepEqual(await run(unsigned(), chunked), data);
});

// ---- CRC32C --------------------------------------------------------------------------------

Deno.test("crc32c() gives the Castagnoli check values and continues from a previous value", () => {
  assert.equal(crc32c(text("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  const r = new Prng(3);
  const bytes = randomBytes(r, 10_000);
  const whole = crc32c(bytes);
  for (let i = 0; i < 50; i++) {
    const cut = r.int(bytes.length + 1);
    assert.equal(crc32c(bytes.subarray(cut), crc32c(bytes.subarray(0, cut))), whole);
  }
});
