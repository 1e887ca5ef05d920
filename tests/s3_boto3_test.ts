/**
 * The S3 gateway driven by boto3 (the AWS SDK for Python), whose current versions send CRC32
 * checksums in aws-chunked trailers by default. Skipped, with a message, without boto3.
 */

import assert from "node:assert/strict";
import { DfsClient } from "../client.ts";
import { pseudoRandomBytes, sha256 } from "./_bytes.ts";
import { TestServer } from "./_server.ts";

const KEY_ID = "AKIADFSBOTO3";
const SECRET = "boto3-test-secret-value";

// (A missing program makes `output()` throw at once, not reject: hence `Promise.try`.)
const boto3 = await Promise.try(() =>
  new Deno.Command("python3", { args: ["-c", "import boto3"], stdout: "null", stderr: "null" })
    .output()
).then((out) => out.success, () => false);
if (!boto3) console.log("Skipping the boto3 tests: python3 with boto3 is not installed");

/** Puts every file of `dir` as its name, reads each back, and prints what it saw as JSON. */
const SCRIPT = `
import boto3, hashlib, json, os, sys
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
    aws_access_key_id=os.environ["KEY_ID"], aws_secret_access_key=os.environ["SECRET"],
    config=Config(s3={"addressing_style": "path"}))
s3.create_bucket(Bucket="boto")
seen = {}
for name in sorted(os.listdir(sys.argv[2])):
    body = open(os.path.join(sys.argv[2], name), "rb").read()
    key = "k/" + name + " +&é'q"
    put = s3.put_object(Bucket="boto", Key=key, Body=body, Metadata={"origin": "boto3"})
    got = s3.get_object(Bucket="boto", Key=key)
    seen[name] = {"etag": put["ETag"], "sha256": hashlib.sha256(got["Body"].read()).hexdigest(),
                  "meta": got["Metadata"], "length": got["ContentLength"]}
    if len(body) > 8 * 1024 * 1024:
        # The transfer manager: a multipart upload in 8 MiB parts, ranged gets.
        s3.upload_file(os.path.join(sys.argv[2], name), "boto", "mp/" + name)
        back = os.path.join(sys.argv[3], name)
        s3.download_file("boto", "mp/" + name, back)
        seen["mp/" + name] = {"sha256": hashlib.sha256(open(back, "rb").read()).hexdigest(),
                              "etag": s3.head_object(Bucket="boto", Key="mp/" + name)["ETag"]}
listed = s3.list_objects_v2(Bucket="boto", Prefix="k/")
seen["listed"] = [o["Key"] for o in listed.get("Contents", [])]
s3.delete_objects(Bucket="boto", Delete={"Objects": [{"Key": k} for k in seen["listed"][:1]]})
seen["after"] = [o["Key"] for o in s3.list_objects_v2(Bucket="boto").get("Contents", [])]
print(json.dumps(seen))
`;

Deno.test({
  name: "boto3 puts with its default checksums, gets, lists and deletes through the S3 gateway",
  ignore: !boto3,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dfs-s3-boto3-" });
    try {
      await Deno.writeTextFile(`${dir}/creds`, `${KEY_ID}:${SECRET}\n`);
      await Deno.mkdir(`${dir}/files`);
      const files = new Map([
        ["empty", new Uint8Array()],
        ["two-k", pseudoRandomBytes(2048, 7)],
        ["five-m", pseudoRandomBytes(5 * 1024 * 1024, 8)],
        ["twenty-m", pseudoRandomBytes(20 * 1024 * 1024, 9)],
      ]);
      await Deno.mkdir(`${dir}/back`);
      for (const [name, data] of files) await Deno.writeFile(`${dir}/files/${name}`, data);
      await using server = await TestServer.start({
        extraArgs: ["--s3-port", "0", "--s3-credentials-file", `${dir}/creds`],
      });
      const s3 = /s3 on ([\d.]+:\d+)/.exec(server.readyLine)![1];
      const out = await new Deno.Command("python3", {
        args: ["-c", SCRIPT, `http://${s3}`, `${dir}/files`, `${dir}/back`],
        env: { KEY_ID, SECRET, AWS_EC2_METADATA_DISABLED: "true", AWS_CONFIG_FILE: "/dev/null" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const seen = JSON.parse(new TextDecoder().decode(out.stdout));
      await using client = await DfsClient.connect(server.address);
      for (const [name, data] of files) {
        assert.equal(seen[name].sha256, sha256(data), name);
        assert.equal(seen[name].length, data.length);
        assert.deepEqual(seen[name].meta, { origin: "boto3" });
        if (name === "empty") continue; // deleted by delete_objects, below
        const stored = await client.getBytes(`boto/k/${name} +&é'q`);
        assert.equal(sha256(stored), sha256(data), `dfs get of ${name}`);
      }
      assert.deepEqual(seen.listed, [
        "k/empty +&é'q",
        "k/five-m +&é'q",
        "k/twenty-m +&é'q",
        "k/two-k +&é'q",
      ]);
      assert.deepEqual(seen.after, [
        "k/five-m +&é'q",
        "k/twenty-m +&é'q",
        "k/two-k +&é'q",
        "mp/twenty-m",
      ]);
      assert.equal(seen["mp/twenty-m"].sha256, sha256(files.get("twenty-m")!));
      assert.match(seen["mp/twenty-m"].etag, /-3"$/, "8 + 8 + 4 MiB parts");
      assert.equal(
        sha256(await client.getBytes("boto/mp/twenty-m")),
        sha256(files.get("twenty-m")!),
      );
      await assert.rejects(client.meta("boto/k/empty +&é'q"), /does not exist/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
