/**
 * The bench's lean S3 client: its signatures against `@smithy/signature-v4`'s, its HTTP/1.1
 * parsing against canned responses split at every byte, and a round trip through a real gateway.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { pseudoRandomBytes } from "../tests/_bytes.ts";
import { newSigner } from "../tests/_s3_signer.ts";
import { TestServer } from "../tests/_server.ts";
import { putMultipart, S3Connection, S3HttpError } from "./_s3_client.ts";
import { amzDateOf, canonicalQuery, encodePath, S3Signer } from "./_s3_sign.ts";

const KEY_ID = "AKIADFSCLIENTTEST";
const SECRET = "dfs-client-test-secret/with+odd=chars";
const MiB = 1024 * 1024;

Deno.test("the lean signer's Authorization equals @smithy/signature-v4's", async () => {
  const date = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
  const cases: { method: string; path: string; query: Record<string, string> }[] = [
    { method: "PUT", path: "/bench", query: {} },
    { method: "GET", path: "/bench/r0/s17", query: {} },
    { method: "PUT", path: "/photos/dir/with space+plus&amp=é~x", query: {} },
    { method: "POST", path: "/b/big object", query: { uploads: "" } },
    {
      method: "PUT",
      path: "/b/big object",
      query: { uploadId: "0123456789abcdef0123456789abcdef", partNumber: "12" },
    },
    {
      method: "GET",
      path: "/b",
      query: { "list-type": "2", prefix: "a b/é+", delimiter: "/", "start-after": "x=y&z" },
    },
  ];
  const smithy = newSigner(KEY_ID, SECRET, "eu-west-3");
  const lean = new S3Signer({ accessKeyId: KEY_ID, secret: SECRET, region: "eu-west-3" });
  const host = "127.0.0.1:9000";
  for (const { method, path, query } of cases) {
    const signed = await smithy.sign({
      method,
      protocol: "http:",
      hostname: "127.0.0.1",
      port: 9000,
      path: encodePath(path),
      query,
      headers: { host, "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
    }, { signingDate: date });
    const ours = lean.sign({
      method,
      path: encodePath(path),
      query: canonicalQuery(query),
      host,
      amzDate: amzDateOf(date),
    });
    assert.equal(
      ours,
      signed.headers["authorization"],
      `${method} ${path} ${JSON.stringify(query)}`,
    );
  }
  assert.equal(encodePath("/b/with space+é"), "/b/with%20space%2B%C3%A9");
  assert.equal(amzDateOf(date), "20260102T030405Z");
});

/**
 * A server that answers each request with the next canned response, written a few bytes at a
 * time, and closes the connection after one whose `close` is set.
 */
function cannedServer(responses: { text: string | Uint8Array; close?: boolean }[]) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const requests: string[] = [];
  const served = (async () => {
    for await (const conn of listener) {
      const buffer = new Uint8Array(64 * 1024);
      let pending = "";
      let closed = false;
      while (!closed && responses.length > 0) {
        const n = await conn.read(buffer);
        if (n === null) break;
        pending += new TextDecoder().decode(buffer.subarray(0, n));
        while (pending.includes("\r\n\r\n")) {
          const end = pending.indexOf("\r\n\r\n") + 4;
          const head = pending.slice(0, end);
          const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
          if (pending.length < end + length) break;
          requests.push(pending.slice(0, end + length));
          pending = pending.slice(end + length);
          const response = responses.shift()!;
          const bytes = typeof response.text === "string"
            ? new TextEncoder().encode(response.text)
            : response.text;
          for (let i = 0; i < bytes.length; i += 3) await conn.write(bytes.subarray(i, i + 3));
          if (response.close) {
            conn.close();
            closed = true;
            break;
          }
        }
      }
      if (!closed) conn.close();
      if (responses.length === 0) break;
    }
  })();
  const address = `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
  return {
    address,
    requests,
    async close() {
      try {
        listener.close();
      } catch {
        // closed when the last response went
      }
      await served.catch(() => {});
    },
  };
}

Deno.test("the lean client parses lengths, chunks, trailers, 100s, closes and errors", async () => {
  const server = cannedServer([
    {
      text:
        'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: "a"\r\n\r\nhello',
    },
    {
      text: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Two: 1\r\nx-two: 2\r\n\r\n" +
        "4;ext=1\r\nwiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: t\r\n\r\n",
    },
    { text: "HTTP/1.1 204 No Content\r\n\r\n" },
    { text: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye", close: true },
    { text: "HTTP/1.1 200 OK\r\n\r\nto the end", close: true },
    { text: "HTTP/1.1 403 Forbidden\r\nContent-Length: 21\r\n\r\n<Error>Denied</Error>" },
    { text: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", close: true },
  ]);
  try {
    const s3 = await S3Connection.open(server.address, { accessKeyId: KEY_ID, secret: SECRET }, {
      readBufferBytes: 5,
    });
    const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
    const first = await s3.send({ method: "PUT", path: "/b/k", body: new Uint8Array([1, 2, 3]) });
    assert.equal(first.status, 200);
    assert.equal(text(first.body), "hello");
    assert.equal(first.headers.get("etag"), '"a"');
    const pieces: string[] = [];
    const second = await s3.send({
      method: "GET",
      path: "/b/k",
      onBody: (piece) => pieces.push(text(piece)),
    });
    assert.equal(pieces.join(""), "wikipedia in\r\n\r\nchunks.");
    assert.equal(second.bodyBytes, 23);
    assert.equal(second.headers.get("x-two"), "1, 2");
    assert.equal((await s3.send({ method: "DELETE", path: "/b/k" })).status, 204);
    assert.equal(text((await s3.send({ method: "GET", path: "/b/k" })).body), "bye");
    // The server closed: the next request opens a new connection.
    assert.equal(text((await s3.send({ method: "GET", path: "/b/k" })).body), "to the end");
    await assert.rejects(
      () => s3.send({ method: "GET", path: "/b/k" }),
      (error) => error instanceof S3HttpError && error.status === 403,
    );
    await assert.rejects(() => s3.send({ method: "GET", path: "/b/k" }), /closed 5 bytes early/);
    s3.close();
    assert.match(server.requests[0], /^PUT \/b\/k HTTP\/1\.1\r\n/);
    assert.ok(server.requests[0].endsWith("content-length: 3\r\n\r\n\x01\x02\x03"));
    assert.match(server.requests[0], /authorization: AWS4-HMAC-SHA256 Credential=AKIA/);
  } finally {
    await server.close();
  }
});

Deno.test("the lean client reads a chunked stream from Deno.serve", async () => {
  const piece = pseudoRandomBytes(100_000, 5);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    let sent = 0;
    return new Response(
      new ReadableStream({
        pull(controller) {
          if (sent++ === 3) controller.close();
          else controller.enqueue(piece.slice());
        },
      }),
    );
  });
  try {
    const address = `127.0.0.1:${server.addr.port}`;
    for (const readBufferBytes of [7, 256 * 1024]) {
      const s3 = await S3Connection.open(address, { accessKeyId: KEY_ID, secret: SECRET }, {
        readBufferBytes,
      });
      for (let i = 0; i < 2; i++) { // twice on one connection: the body ended where it should
        const streamed = await s3.send({ method: "GET", path: "/b/k", onBody: () => {} });
        assert.equal(streamed.headers.get("transfer-encoding"), "chunked");
        assert.equal(streamed.bodyBytes, 300_000);
        const gathered = await s3.send({ method: "GET", path: "/b/k" });
        assert.equal(gathered.body.length, 300_000);
        assert.deepEqual(gathered.body.subarray(100_000, 200_000), piece);
      }
      s3.close();
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test({
  name: "the lean client round-trips through a real S3 gateway, signed for real",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dfs-s3-client-" });
    try {
      await Deno.writeTextFile(`${dir}/creds`, `${KEY_ID}:${SECRET}\n`);
      await using server = await TestServer.start({
        extraArgs: ["--s3-port", "0", "--s3-credentials-file", `${dir}/creds`],
      });
      const address = /s3 on ([\d.]+:\d+)/.exec(server.readyLine)![1];
      const credentials = { accessKeyId: KEY_ID, secret: SECRET };
      const s3 = await S3Connection.open(address, credentials);
      await s3.send({ method: "PUT", path: "/bench" });
      const small = pseudoRandomBytes(4096, 1);
      const key = "/bench/dir/with space+plus&é";
      const put = await s3.send({ method: "PUT", path: key, body: small });
      const md5 = createHash("md5").update(small).digest("hex");
      assert.equal(put.headers.get("etag"), `"${md5}"`);
      for (let i = 0; i < 3; i++) { // kept alive
        assert.deepEqual((await s3.send({ method: "GET", path: key })).body, small);
      }
      const listed = await s3.send({
        method: "GET",
        path: "/bench",
        query: { "list-type": "2", prefix: "dir/with space+" },
      });
      assert.match(
        new TextDecoder().decode(listed.body),
        /<Key>dir\/with space\+plus&amp;é<\/Key>/,
      );

      // Over 64 KiB, the gateway streams the GET (with a Content-Length: the chunked framing is
      // the Deno.serve test above).
      const big = pseudoRandomBytes(300 * 1024 + 7, 2);
      await s3.send({ method: "PUT", path: "/bench/big", body: big });
      let counted = 0;
      const hash = createHash("sha256");
      const got = await s3.send({
        method: "GET",
        path: "/bench/big",
        onBody: (piece) => {
          counted += piece.length;
          hash.update(piece);
        },
      });
      assert.equal(counted, big.length);
      assert.equal(got.bodyBytes, big.length);
      assert.equal(hash.digest("hex"), createHash("sha256").update(big).digest("hex"));
      const head = await s3.send({ method: "HEAD", path: "/bench/big" });
      assert.equal(head.headers.get("content-length"), String(big.length));

      // Multipart: two parts of 5 MiB and a short one, two at a time.
      const whole = pseudoRandomBytes(10 * MiB + 123, 3);
      const lanes = [s3, await S3Connection.open(address, credentials)];
      const result = await putMultipart(lanes, "/bench/multi part", whole, 5 * MiB);
      assert.equal(result.parts, 3);
      assert.match(result.etag, /^[0-9a-f]{32}-3$/);
      let received = 0;
      const multi = await lanes[1].send({
        method: "GET",
        path: "/bench/multi part",
        onBody: (piece) => received += piece.length,
      });
      assert.equal(received, whole.length);
      assert.equal(multi.headers.get("etag"), `"${result.etag}"`);
      lanes[1].close();

      // A wrong secret fails loudly, and the connection stays usable.
      const wrong = await S3Connection.open(address, { ...credentials, secret: "not it" });
      await assert.rejects(
        () => wrong.send({ method: "GET", path: key }),
        (error) =>
          error instanceof S3HttpError && error.status === 403 &&
          error.message.includes("SignatureDoesNotMatch"),
      );
      await assert.rejects(
        () => wrong.send({ method: "GET", path: key }),
        (error) => error instanceof S3HttpError && error.status === 403,
      );
      wrong.close();
      await assert.rejects(
        () => s3.send({ method: "GET", path: "/bench/none" }),
        (error) => error instanceof S3HttpError && error.status === 404,
      );
      s3.close();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
