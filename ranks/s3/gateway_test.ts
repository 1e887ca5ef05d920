/**
 * The S3 gateway in-process, over rank 0's store on the in-process cluster: requests signed with
 * `@smithy/signature-v4`, and hostile ones (a truncated chunked body, a wrong MD5 or CRC32, a body
 * that never comes, malformed XML) answered with the S3 error and storing nothing.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { bytesOf, readAll } from "../testing/cluster_helpers.ts";
import { encodeAwsChunked } from "./aws_chunked.ts";
import { errorOf, gatewayOver, HOST, signed } from "./_test_gateway.ts";

Deno.test("S3Gateway stores a signed PUT and gives it back, with its MD5 as ETag", async () => {
  await using s3 = await gatewayOver();
  const body = new TextEncoder().encode("hello, S3");
  const put = await s3.gateway.handle(await signed("PUT", "/bucket/a%20b/c", { body }));
  assert.equal(put.status, 200, await put.clone().text());
  const md5 = createHash("md5").update(body).digest("hex");
  assert.equal(put.headers.get("etag"), `"${md5}"`);
  const got = await s3.gateway.handle(await signed("GET", "/bucket/a%20b/c"));
  assert.equal(new TextDecoder().decode(await got.arrayBuffer()), "hello, S3");
  assert.equal((await s3.cluster.store.meta("bucket/a b/c")).attrs?.etag, md5);
  const listed = await s3.gateway.handle(
    await signed("GET", "/bucket", { query: { "list-type": "2" } }),
  );
  const xml = await listed.text();
  assert.match(xml, /<Key>a b\/c<\/Key>/);
  assert.ok(
    xml.includes(`<ETag>&quot;${md5}&quot;</ETag>`) || xml.includes(`<ETag>"${md5}"</ETag>`),
    xml,
  );
});

Deno.test("S3Gateway stores nothing for a wrong Content-MD5, CRC32 or SHA-256", async () => {
  await using s3 = await gatewayOver();
  const body = new TextEncoder().encode("some bytes");
  const cases: [Record<string, string>, string][] = [
    [{ "content-md5": createHash("md5").update("other").digest("base64") }, "BadDigest"],
    [{ "content-md5": "not-base64!" }, "InvalidDigest"],
    [{ "x-amz-checksum-crc32": "AAAAAA==" }, "BadDigest"],
  ];
  for (const [headers, code] of cases) {
    const response = await s3.gateway.handle(await signed("PUT", "/bucket/x", { body, headers }));
    assert.deepEqual(await errorOf(response), { status: 400, code }, JSON.stringify(headers));
  }
  const lying = await signed("PUT", "/bucket/x", { body, payloadHash: "0".repeat(64) });
  assert.deepEqual(await errorOf(await s3.gateway.handle(lying)), {
    status: 400,
    code: "XAmzContentSHA256Mismatch",
  });
  await assert.rejects(s3.cluster.store.meta("bucket/x"), /x/);
});

Deno.test("S3Gateway stores nothing for a truncated aws-chunked body, and takes a whole one", async () => {
  await using s3 = await gatewayOver();
  const data = new Uint8Array(100_000).map((_, i) => i % 251);
  const chunked = encodeAwsChunked([data.subarray(0, 65536), data.subarray(65536)], {
    trailer: "x-amz-checksum-crc32",
  });
  const headers = {
    "content-encoding": "aws-chunked",
    "x-amz-decoded-content-length": String(data.length),
    "x-amz-trailer": "x-amz-checksum-crc32",
  };
  const payloadHash = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
  const cut = await signed("PUT", "/bucket/chunked", {
    body: chunked.subarray(0, chunked.length - 40),
    headers,
    payloadHash,
  });
  const refused = await errorOf(await s3.gateway.handle(cut));
  assert.equal(refused.status, 400);
  assert.match(refused.code, /IncompleteBody|MalformedTrailerError/);
  await assert.rejects(s3.cluster.store.meta("bucket/chunked"));

  const whole = await signed("PUT", "/bucket/chunked", { body: chunked, headers, payloadHash });
  const response = await s3.gateway.handle(whole);
  assert.equal(response.status, 200, await response.clone().text());
  const meta = await s3.cluster.store.meta("bucket/chunked");
  assert.equal(meta.size, data.length);
  assert.equal(meta.attrs?.["content-encoding"], undefined, "aws-chunked is not kept");
});

Deno.test("S3Gateway fails a body that stops coming with RequestTimeout, storing nothing", async () => {
  await using s3 = await gatewayOver({ bodyStallTimeoutMs: 200 });
  // 5 GiB declared (streamed as it comes), and 3000 bytes (read in one go): 1000 come, then none.
  for (const declared of [5 * 1024 ** 3, 3000]) {
    const stalled = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new Uint8Array(1000));
      },
    });
    const request = await signed("PUT", "/bucket/never", {
      body: stalled,
      headers: { "content-length": String(declared) },
      payloadHash: "UNSIGNED-PAYLOAD",
    });
    const started = performance.now();
    assert.deepEqual(await errorOf(await s3.gateway.handle(request)), {
      status: 400,
      code: "RequestTimeout",
    });
    assert.ok(performance.now() - started < 5_000);
    await assert.rejects(s3.cluster.store.meta("bucket/never"));
  }
});

Deno.test("S3Gateway checks a small body against its signed SHA-256 and its declared length", async () => {
  await using s3 = await gatewayOver();
  const body = new Uint8Array(3000).fill(7);
  const wrongHash = await signed("PUT", "/bucket/small", { body, payloadHash: "ab".repeat(32) });
  assert.equal(
    (await errorOf(await s3.gateway.handle(wrongHash))).code,
    "XAmzContentSHA256Mismatch",
  );
  const short = await signed("PUT", "/bucket/small", {
    body,
    headers: { "content-length": "4000" },
    payloadHash: "UNSIGNED-PAYLOAD",
  });
  assert.equal((await errorOf(await s3.gateway.handle(short))).code, "IncompleteBody");
  await assert.rejects(s3.cluster.store.meta("bucket/small"));
  const good = await signed("PUT", "/bucket/small", { body });
  assert.equal((await s3.gateway.handle(good)).status, 200);
  assert.deepEqual(await readAll(s3.cluster.store, "bucket/small"), body);
});

Deno.test("S3Gateway answers malformed XML and unknown operations with their S3 errors", async () => {
  await using s3 = await gatewayOver();
  await s3.gateway.handle(await signed("PUT", "/bucket/keep", { body: new Uint8Array(3) }));
  const body = new TextEncoder().encode("<Delete><Object><Key>keep</Key></Object>");
  const malformed = await signed("POST", "/bucket", { body, query: { delete: "" } });
  assert.deepEqual(await errorOf(await s3.gateway.handle(malformed)), {
    status: 400,
    code: "MalformedXML",
  });
  assert.equal((await s3.cluster.store.meta("bucket/keep")).size, 3, "nothing was deleted");
  const tagging = await signed("GET", "/bucket/keep", { query: { tagging: "" } });
  assert.deepEqual(await errorOf(await s3.gateway.handle(tagging)), {
    status: 501,
    code: "NotImplemented",
  });
  const garbage = new Request(`http://${HOST}/bucket/keep`, {
    headers: { authorization: "AWS4-HMAC-SHA256 garbage" },
  });
  assert.equal((await errorOf(await s3.gateway.handle(garbage))).status, 400);
  const unsigned = new Request(`http://${HOST}/bucket/keep`);
  assert.deepEqual(await errorOf(await s3.gateway.handle(unsigned)), {
    status: 403,
    code: "AccessDenied",
  });
});

Deno.test("S3Gateway: of two conditional creates (If-None-Match: *) at once, exactly one wins", async () => {
  await using s3 = await gatewayOver();
  const bodies = [bytesOf(3 * 1024 * 1024, 1), bytesOf(3 * 1024 * 1024, 2)];
  const answers = await Promise.all(bodies.map(async (body) =>
    await s3.gateway.handle(
      await signed("PUT", "/bucket/once", { body, headers: { "if-none-match": "*" } }),
    )
  ));
  assert.deepEqual(answers.map((a) => a.status).sort(), [200, 412]);
  const winner = answers.findIndex((a) => a.status === 200);
  const got = await s3.gateway.handle(await signed("GET", "/bucket/once"));
  assert.deepEqual(new Uint8Array(await got.arrayBuffer()), bodies[winner]);
  assert.equal((await errorOf(answers[1 - winner])).code, "PreconditionFailed");
  // The loser stored nothing: only the winner's bytes are held, twice.
  assert.equal((await s3.cluster.store.usage()).storedBytes, 2 * bodies[winner].length);
  const again = await s3.gateway.handle(
    await signed("PUT", "/bucket/once", { body: bodies[0], headers: { "if-none-match": "*" } }),
  );
  assert.equal(again.status, 412);
});
