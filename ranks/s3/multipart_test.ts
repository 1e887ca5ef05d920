/**
 * Multipart uploads through the S3 gateway in-process: parts in any order and replaced, listed,
 * completed into one object without a byte copied, aborted; and every way a client can get it
 * wrong, answered with S3's error and storing nothing.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { blobsOn, bytesOf, MiB } from "../testing/cluster_helpers.ts";
import type { MemoryCluster } from "../testing/memory_cluster.ts";
import { errorOf, gatewayOver, signed } from "./_test_gateway.ts";
import { Multipart, PART_BYTES_MIN, UPLOAD_IDLE_EXPIRY_MS } from "./multipart.ts";

type Gateway = Awaited<ReturnType<typeof gatewayOver>>;

const md5 = (bytes: Uint8Array) => createHash("md5").update(bytes).digest("hex");

async function create(s3: Gateway, key: string, headers: Record<string, string> = {}) {
  const response = await s3.gateway.handle(
    await signed("POST", `/bucket/${key}`, { query: { uploads: "" }, headers }),
  );
  const xml = await response.text();
  assert.equal(response.status, 200, xml);
  return /<UploadId>([^<]+)<\/UploadId>/.exec(xml)![1];
}

async function uploadPart(
  s3: Gateway,
  key: string,
  uploadId: string,
  partNumber: number,
  body: Uint8Array,
  headers: Record<string, string> = {},
) {
  return await s3.gateway.handle(
    await signed("PUT", `/bucket/${key}`, {
      body,
      headers,
      query: { partNumber: String(partNumber), uploadId },
    }),
  );
}

function completeXml(parts: [number, string][]): Uint8Array {
  return new TextEncoder().encode(
    `<CompleteMultipartUpload>${
      parts.map(([n, etag]) => `<Part><PartNumber>${n}</PartNumber><ETag>"${etag}"</ETag></Part>`)
        .join("")
    }</CompleteMultipartUpload>`,
  );
}

async function complete(s3: Gateway, key: string, uploadId: string, parts: [number, string][]) {
  return await s3.gateway.handle(
    await signed("POST", `/bucket/${key}`, { body: completeXml(parts), query: { uploadId } }),
  );
}

async function allBlobs(cluster: MemoryCluster): Promise<string[]> {
  const blobs = [];
  for (const rank of cluster.store.nodes.dataRanks) blobs.push(...await blobsOn(cluster, rank));
  return blobs.sort();
}

Deno.test("a multipart upload: parts in any order, one replaced, listed, completed into one object without a byte copied", async () => {
  await using s3 = await gatewayOver();
  const key = "dir/big file";
  const path = "dir/big%20file";
  const uploadId = await create(s3, path, {
    "content-type": "video/mp4",
    "x-amz-meta-camera": "front",
  });
  const parts = [bytesOf(PART_BYTES_MIN + 1, 1), bytesOf(PART_BYTES_MIN, 2), bytesOf(100, 3)];
  for (const n of [3, 1]) {
    const put = await uploadPart(s3, path, uploadId, n, parts[n - 1]);
    assert.equal(put.status, 200, await put.text());
    assert.equal(put.headers.get("etag"), `"${md5(parts[n - 1])}"`);
  }
  assert.equal((await uploadPart(s3, path, uploadId, 2, bytesOf(10, 9))).status, 200);
  assert.equal((await uploadPart(s3, path, uploadId, 2, parts[1])).status, 200); // replaces it

  const listed = await (await s3.gateway.handle(
    await signed("GET", `/bucket/${path}`, { query: { uploadId } }),
  )).text();
  assert.deepEqual([...listed.matchAll(/<PartNumber>(\d+)<\/PartNumber>/g)].map((m) => m[1]), [
    "1",
    "2",
    "3",
  ]);
  assert.ok(listed.includes(`${md5(parts[1])}`), listed);
  assert.match(listed, new RegExp(`<Size>${PART_BYTES_MIN}</Size>`));
  const page = await (await s3.gateway.handle(
    await signed("GET", `/bucket/${path}`, {
      query: { uploadId, "max-parts": "1", "part-number-marker": "1" },
    }),
  )).text();
  assert.match(page, /<PartNumber>2<\/PartNumber>/);
  assert.match(page, /<IsTruncated>true<\/IsTruncated>/);
  assert.match(page, /<NextPartNumberMarker>2<\/NextPartNumberMarker>/);

  const uploads = await (await s3.gateway.handle(
    await signed("GET", "/bucket", { query: { uploads: "" } }),
  )).text();
  assert.match(uploads, new RegExp(`<Key>${key}</Key><UploadId>${uploadId}</UploadId>`));

  const blobsBefore = await allBlobs(s3.cluster);
  const done = await complete(s3, path, uploadId, parts.map((p, i) => [i + 1, md5(p)]));
  const xml = await done.text();
  assert.equal(done.status, 200, xml);
  const expected = `${
    createHash("md5").update(Buffer.concat(parts.map((p) => Buffer.from(md5(p), "hex"))))
      .digest("hex")
  }-3`;
  assert.ok(xml.includes(expected), xml);
  const whole = Buffer.concat(parts);
  const got = await s3.gateway.handle(await signed("GET", `/bucket/${path}`));
  assert.equal(got.headers.get("etag"), `"${expected}"`);
  assert.equal(got.headers.get("content-type"), "video/mp4");
  assert.equal(got.headers.get("x-amz-meta-camera"), "front");
  assert.deepEqual(new Uint8Array(await got.arrayBuffer()), new Uint8Array(whole));
  const meta = await s3.cluster.store.meta(`bucket/${key}`);
  assert.equal(meta.sha256, createHash("sha256").update(whole).digest("hex"));
  // The replaced part 2 was released; the parts' blobs now hold the object, none was made.
  const blobsAfter = await allBlobs(s3.cluster);
  assert.ok(blobsAfter.every((b) => blobsBefore.includes(b)), "no blob made by the complete");
  assert.deepEqual((await s3.cluster.store.list()).map((e) => e.name), [`bucket/${key}`]);
  const usage = await s3.cluster.store.usage();
  assert.equal(usage.storedBytes, 2 * whole.length);
  // The upload is gone.
  assert.deepEqual(
    await errorOf(await uploadPart(s3, path, uploadId, 4, bytesOf(1, 1))),
    { status: 404, code: "NoSuchUpload" },
  );
});

Deno.test("a multipart upload refuses a wrong ETag, a small part, a missing part and a bad part number, and stores nothing", async () => {
  await using s3 = await gatewayOver();
  const uploadId = await create(s3, "k");
  const small = bytesOf(MiB, 1);
  const last = bytesOf(10, 2);
  assert.equal((await uploadPart(s3, "k", uploadId, 1, small)).status, 200);
  assert.equal((await uploadPart(s3, "k", uploadId, 2, last)).status, 200);
  const cases: [[number, string][], string][] = [
    [[[1, md5(small)], [2, "0".repeat(32)]], "InvalidPart"],
    [[[1, md5(small)], [3, md5(last)]], "InvalidPart"],
    [[[1, md5(small)], [2, md5(last)]], "EntityTooSmall"],
    [[[2, md5(last)], [1, md5(small)]], "InvalidPartOrder"],
  ];
  for (const [parts, code] of cases) {
    assert.deepEqual(await errorOf(await complete(s3, "k", uploadId, parts)), {
      status: 400,
      code,
    });
  }
  const malformed = await s3.gateway.handle(
    await signed("POST", "/bucket/k", {
      body: new TextEncoder().encode("<CompleteMultipartUpload><Part>"),
      query: { uploadId },
    }),
  );
  assert.equal((await errorOf(malformed)).code, "MalformedXML");
  for (const n of [0, 10_001]) {
    assert.equal(
      (await errorOf(await uploadPart(s3, "k", uploadId, n, last))).code,
      "InvalidArgument",
    );
  }
  const badMd5 = await uploadPart(s3, "k", uploadId, 3, last, {
    "content-md5": createHash("md5").update("other").digest("base64"),
  });
  assert.equal((await errorOf(badMd5)).code, "BadDigest");
  assert.equal(
    (await errorOf(await uploadPart(s3, "k", "f".repeat(32), 1, last))).code,
    "NoSuchUpload",
  );
  assert.equal(
    (await errorOf(await uploadPart(s3, "other", uploadId, 1, last))).code,
    "NoSuchUpload",
  );
  await assert.rejects(s3.cluster.store.meta("bucket/k"));
  // The two good parts are all that is kept, until the abort removes them.
  const names = (await s3.cluster.store.list()).map((e) => e.name);
  assert.deepEqual(names.filter((n) => n.startsWith(".s3-parts/")).length, 2);
  const aborted = await s3.gateway.handle(
    await signed("DELETE", "/bucket/k", { query: { uploadId } }),
  );
  assert.equal(aborted.status, 204);
  assert.deepEqual(await s3.cluster.store.list(), []);
  assert.equal(
    (await errorOf(
      await s3.gateway.handle(await signed("DELETE", "/bucket/k", { query: { uploadId } })),
    )).code,
    "NoSuchUpload",
  );
});

Deno.test("ListMultipartUploads pages by key and upload, with a prefix and a delimiter", async () => {
  await using s3 = await gatewayOver();
  const ids = new Map<string, string>();
  for (const key of ["a/1", "a/2", "b", "c"]) ids.set(key, await create(s3, key));
  const list = async (query: Record<string, string>) =>
    await (await s3.gateway.handle(
      await signed("GET", "/bucket", { query: { uploads: "", ...query } }),
    )).text();
  const keys = (xml: string) => [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]);
  assert.deepEqual(keys(await list({})), ["a/1", "a/2", "b", "c"]);
  const first = await list({ "max-uploads": "2" });
  assert.deepEqual(keys(first), ["a/1", "a/2"]);
  assert.match(first, /<IsTruncated>true<\/IsTruncated>/);
  assert.match(first, new RegExp(`<NextUploadIdMarker>${ids.get("a/2")}</NextUploadIdMarker>`));
  const next = await list({ "key-marker": "a/2", "upload-id-marker": ids.get("a/2")! });
  assert.deepEqual(keys(next), ["b", "c"]);
  const folded = await list({ delimiter: "/" });
  assert.deepEqual(keys(folded), ["b", "c"]);
  assert.match(folded, /<CommonPrefixes><Prefix>a\/<\/Prefix><\/CommonPrefixes>/);
  assert.deepEqual(keys(await list({ prefix: "a/" })), ["a/1", "a/2"]);
  // Deleting the bucket drops its uploads.
  assert.equal((await s3.gateway.handle(await signed("DELETE", "/bucket"))).status, 204);
  assert.deepEqual(await s3.cluster.store.list(), []);
});

Deno.test("an upload left idle for a day is dropped with its parts; a recent one is kept", async () => {
  await using s3 = await gatewayOver();
  const idle = await create(s3, "idle");
  assert.equal((await uploadPart(s3, "idle", idle, 1, bytesOf(100, 1))).status, 200);
  const multipart = new Multipart({ store: s3.cluster.store, owner: { id: "dfs" }, stallMs: 1000 });
  const started = (await s3.cluster.store.meta(`.s3-uploads/bucket/${idle}`)).modified;
  assert.equal(await multipart.sweep(started + UPLOAD_IDLE_EXPIRY_MS - 1), 0);
  assert.equal((await s3.cluster.store.list()).length, 2, "the upload and its part are kept");
  assert.equal(await multipart.sweep(started + UPLOAD_IDLE_EXPIRY_MS), 1);
  assert.deepEqual(await s3.cluster.store.list(), []);
  assert.equal(
    (await errorOf(await uploadPart(s3, "idle", idle, 2, bytesOf(1, 1)))).code,
    "NoSuchUpload",
  );
});
