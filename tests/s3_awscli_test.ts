/**
 * The S3 gateway driven by a real client: the AWS CLI (`aws s3`, `aws s3api`), over a real
 * server. Skipped, with a message, where `aws` is not installed.
 */

import assert from "node:assert/strict";
import { DfsClient } from "../client.ts";
import { pseudoRandomBytes, sha256 } from "./_bytes.ts";
import { TestServer } from "./_server.ts";

const MiB = 1024 * 1024;
const KEY_ID = "AKIADFSTESTKEY";
const SECRET = "dfs-test-secret-of-some-length";

// (A missing program makes `output()` throw at once, not reject: hence `Promise.try`.)
const aws = await Promise.try(() =>
  new Deno.Command("aws", { args: ["--version"], stdout: "null", stderr: "null" }).output()
).then((out) => out.success, () => false);
if (!aws) console.log("Skipping the AWS CLI tests: `aws` is not installed");

/** Runs `aws ARGS` against the gateway; returns its exit code and output. */
async function run(endpoint: string, dir: string, args: string[]) {
  const out = await new Deno.Command("aws", {
    args: ["--endpoint-url", endpoint, ...args],
    cwd: dir,
    env: {
      AWS_ACCESS_KEY_ID: KEY_ID,
      AWS_SECRET_ACCESS_KEY: SECRET,
      AWS_DEFAULT_REGION: "us-east-1",
      AWS_CONFIG_FILE: `${dir}/aws-config`,
      AWS_SHARED_CREDENTIALS_FILE: `${dir}/aws-credentials`,
      AWS_EC2_METADATA_DISABLED: "true",
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test({
  name: "the AWS CLI puts, lists, gets, copies, presigns, syncs and removes through the S3 gateway",
  ignore: !aws,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dfs-s3-aws-" });
    try {
      await Deno.writeTextFile(`${dir}/creds`, `${KEY_ID}:${SECRET}\n`);
      // SigV4 for presigned URLs too (AWS CLI v1 presigns with SigV2 unless told).
      await Deno.writeTextFile(
        `${dir}/aws-config`,
        "[default]\ns3 =\n    signature_version = s3v4\n",
      );
      await Deno.writeTextFile(`${dir}/aws-credentials`, "");
      await using server = await TestServer.start({
        extraArgs: ["--s3-port", "0", "--s3-credentials-file", `${dir}/creds`],
      });
      const s3 = /s3 on ([\d.]+:\d+)/.exec(server.readyLine)?.[1];
      assert.ok(s3, "the ready line names the S3 port");
      const endpoint = `http://${s3}`;
      const ok = async (...args: string[]) => {
        const result = await run(endpoint, dir, args);
        assert.equal(result.code, 0, `aws ${args.join(" ")}: ${result.stderr}`);
        return result.stdout;
      };

      await ok("s3", "mb", "s3://photos");
      const files: [string, Uint8Array][] = [
        ["empty", new Uint8Array()],
        ["two-k", pseudoRandomBytes(2048, 1)],
        ["five-m", pseudoRandomBytes(5 * MiB, 2)],
        // Over the CLI's 8 MiB threshold: uploaded in parts, downloaded in ranges.
        ["twenty-m", pseudoRandomBytes(20 * MiB, 3)],
      ];
      const keys = ["dir/with space", "plus+and&amp", "café", `quote"and'`];
      for (const [name, data] of files) await Deno.writeFile(`${dir}/${name}`, data);
      for (const [name] of files) await ok("s3", "cp", name, `s3://photos/${name}`);
      for (const key of keys) await ok("s3", "cp", "two-k", `s3://photos/${key}`);

      const listed = await ok("s3", "ls", "--recursive", "s3://photos");
      for (const key of [...files.map(([n]) => n), ...keys]) {
        assert.ok(listed.includes(` ${key}\n`), `${key} listed in:\n${listed}`);
      }
      await using client = await DfsClient.connect(server.address);
      for (const [name, data] of files) {
        await ok("s3", "cp", `s3://photos/${name}`, `back-${name}`);
        assert.equal(sha256(await Deno.readFile(`${dir}/back-${name}`)), sha256(data), name);
        // The CLI and S3 see the same file: bucket/key.
        assert.equal(sha256(await client.getBytes(`photos/${name}`)), sha256(data));
      }
      for (const key of keys) {
        assert.equal(sha256(await client.getBytes(`photos/${key}`)), sha256(files[1][1]), key);
      }

      const head = JSON.parse(
        await ok("s3api", "head-object", "--bucket", "photos", "--key", "five-m"),
      );
      const md5 = await md5Hex(files[2][1]);
      assert.equal(head.ETag, `"${md5}"`, "the ETag is the MD5 of the content");
      assert.equal(head.ContentLength, 5 * MiB);

      const multipart = JSON.parse(
        await ok("s3api", "head-object", "--bucket", "photos", "--key", "twenty-m"),
      );
      assert.match(multipart.ETag, /^"[0-9a-f]{32}-3"$/, "8 + 8 + 4 MiB parts");

      // Multipart by hand: create, parts out of order, list, complete; and an abort.
      const s3api = async (...args: string[]) => JSON.parse(await ok("s3api", ...args) || "{}");
      const target = ["--bucket", "photos", "--key", "by hand/é+&"];
      const { UploadId } = await s3api("create-multipart-upload", ...target);
      const pieces = [pseudoRandomBytes(5 * MiB, 4), pseudoRandomBytes(1000, 5)];
      const etags: string[] = [];
      for (const n of [2, 1]) {
        await Deno.writeFile(`${dir}/piece-${n}`, pieces[n - 1]);
        const part = await s3api(
          "upload-part",
          ...target,
          "--upload-id",
          UploadId,
          "--part-number",
          String(n),
          "--body",
          `piece-${n}`,
        );
        etags[n - 1] = part.ETag;
      }
      const parts = await s3api("list-parts", ...target, "--upload-id", UploadId);
      assert.deepEqual(parts.Parts.map((p: { PartNumber: number }) => p.PartNumber), [1, 2]);
      const uploads = await s3api("list-multipart-uploads", "--bucket", "photos");
      assert.deepEqual(uploads.Uploads.map((u: { Key: string }) => u.Key), ["by hand/é+&"]);
      await Deno.writeTextFile(
        `${dir}/parts.json`,
        JSON.stringify({ Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) }),
      );
      const completed = await s3api(
        "complete-multipart-upload",
        ...target,
        "--upload-id",
        UploadId,
        "--multipart-upload",
        "file://parts.json",
      );
      assert.match(completed.ETag, /-2"$/);
      const joined = await client.getBytes("photos/by hand/é+&");
      assert.equal(sha256(joined), sha256(new Uint8Array([...pieces[0], ...pieces[1]])));
      const second = await s3api("create-multipart-upload", ...target);
      await s3api("abort-multipart-upload", ...target, "--upload-id", second.UploadId);
      const none = await s3api("list-multipart-uploads", "--bucket", "photos");
      assert.equal(none.Uploads, undefined, "no upload left in progress");
      assert.deepEqual(await client.list(".s3-parts/"), []);

      await ok(
        "s3api",
        "put-object",
        "--bucket",
        "photos",
        "--key",
        "meta.txt",
        "--body",
        "two-k",
        "--metadata",
        "color=blue",
        "--content-type",
        "text/plain",
      );
      await ok("s3", "cp", "s3://photos/meta.txt", "s3://photos/copy.txt");
      const copied = JSON.parse(
        await ok("s3api", "head-object", "--bucket", "photos", "--key", "copy.txt"),
      );
      assert.deepEqual(copied.Metadata, { color: "blue" });
      assert.equal(copied.ContentType, "text/plain");

      await ok(
        "s3api",
        "get-object",
        "--bucket",
        "photos",
        "--key",
        "five-m",
        "--range",
        "bytes=100-199",
        "part",
      );
      assert.deepEqual(await Deno.readFile(`${dir}/part`), files[2][1].subarray(100, 200));

      const url = (await ok("s3", "presign", "s3://photos/two-k")).trim();
      const fetched = new Uint8Array(await (await fetch(url)).arrayBuffer());
      assert.equal(sha256(fetched), sha256(files[1][1]), "a presigned GET");

      await Deno.mkdir(`${dir}/tree/sub`, { recursive: true });
      await Deno.writeTextFile(`${dir}/tree/a.txt`, "a");
      await Deno.writeTextFile(`${dir}/tree/sub/b.txt`, "b");
      await ok("s3", "sync", "tree", "s3://photos/tree/");
      const synced = await ok("s3", "ls", "--recursive", "s3://photos/tree/");
      assert.match(synced, /tree\/a\.txt\n/);
      assert.match(synced, /tree\/sub\/b\.txt\n/);

      const refused = await run(endpoint, dir, ["s3", "rb", "s3://photos"]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /BucketNotEmpty/);
      await ok("s3", "rm", "--recursive", "s3://photos");
      await ok("s3", "rb", "s3://photos");
      const gone = await run(endpoint, dir, ["s3", "ls", "s3://photos"]);
      assert.match(gone.stderr, /NoSuchBucket/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "the AWS CLI is refused with the S3 error it expects for a wrong key or secret",
  ignore: !aws,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dfs-s3-aws-" });
    try {
      await Deno.writeTextFile(
        `${dir}/creds`,
        `OTHERKEY:${SECRET}\n${KEY_ID}:another-secret-value\n`,
      );
      await Deno.writeTextFile(`${dir}/aws-config`, "");
      await Deno.writeTextFile(`${dir}/aws-credentials`, "");
      await using server = await TestServer.start({
        extraArgs: ["--s3-port", "0", "--s3-credentials-file", `${dir}/creds`],
      });
      const s3 = /s3 on ([\d.]+:\d+)/.exec(server.readyLine)![1];
      const wrongSecret = await run(`http://${s3}`, dir, ["s3", "ls"]);
      assert.notEqual(wrongSecret.code, 0);
      assert.match(wrongSecret.stderr, /SignatureDoesNotMatch/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

async function md5Hex(bytes: Uint8Array): Promise<string> {
  const { createHash } = await import("node:crypto");
  return createHash("md5").update(bytes).digest("hex");
}
