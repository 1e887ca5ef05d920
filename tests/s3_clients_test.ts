/**
 * The S3 gateway driven by real tools from Debian: restic (init, backup, check, restore; it signs
 * every chunk of its uploads), rclone (copy, sync, check) and s3cmd (mb, put, ls, get). Each is
 * skipped, with a message, where it is not installed.
 */

import assert from "node:assert/strict";
import { DfsClient } from "../client.ts";
import { pseudoRandomBytes, sha256 } from "./_bytes.ts";
import { TestServer } from "./_server.ts";

const KEY_ID = "AKIADFSCLIENTS";
const SECRET = "clients-test-secret";
/** Names of the local files: spaces, `+`, `&`, `é` and quotes, as users name files. */
const FILES: [string, Uint8Array][] = [
  ["empty file", new Uint8Array()],
  ["two+k&é", pseudoRandomBytes(2048, 11)],
  [`five "m" it's`, pseudoRandomBytes(5 * 1024 * 1024, 12)],
  // Over s3cmd's 15 MiB part size, and rclone's once told to cut at 8 MiB: multipart uploads.
  ["twenty m", pseudoRandomBytes(20 * 1024 * 1024, 13)],
];

async function installed(tool: string): Promise<boolean> {
  const args = [tool === "restic" ? "version" : "--version"];
  // A missing program makes `output()` throw at once, not reject: hence `Promise.try`.
  const ok = await Promise.try(() =>
    new Deno.Command(tool, { args, stdout: "null", stderr: "null" }).output()
  ).then((out) => out.success, () => false);
  if (!ok) console.log(`Skipping the ${tool} test: ${tool} is not installed`);
  return ok;
}

const [restic, rclone, s3cmd] = await Promise.all(["restic", "rclone", "s3cmd"].map(installed));

/** A server with the S3 gateway, a folder of FILES, and a way to run a tool against both. */
async function setUp() {
  const dir = await Deno.makeTempDir({ prefix: "dfs-s3-clients-" });
  await Deno.writeTextFile(`${dir}/creds`, `${KEY_ID}:${SECRET}\n`);
  await Deno.mkdir(`${dir}/src/sub`, { recursive: true });
  for (const [name, data] of FILES) await Deno.writeFile(`${dir}/src/sub/${name}`, data);
  const server = await TestServer.start({
    extraArgs: ["--s3-port", "0", "--s3-credentials-file", `${dir}/creds`],
  });
  const s3 = /s3 on ([\d.]+:\d+)/.exec(server.readyLine)![1];
  const run = async (tool: string, args: string[], env: Record<string, string> = {}) => {
    const out = await new Deno.Command(tool, {
      args,
      cwd: dir,
      env: { AWS_ACCESS_KEY_ID: KEY_ID, AWS_SECRET_ACCESS_KEY: SECRET, ...env },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, `${tool} ${args.join(" ")}: ${text}`);
    return text;
  };
  return {
    dir,
    s3,
    server,
    run,
    async [Symbol.asyncDispose]() {
      await server[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function assertSameTree(from: string, to: string): Promise<void> {
  for (const [name, data] of FILES) {
    assert.equal(
      sha256(await Deno.readFile(`${to}/${name}`)),
      sha256(data),
      `${from} -> ${to}: ${name}`,
    );
  }
}

Deno.test({
  name: "restic inits a repository on the S3 gateway, backs up, checks and restores byte for byte",
  ignore: !restic,
  async fn() {
    await using t = await setUp();
    const repo = ["-r", `s3:http://${t.s3}/restic-repo`];
    const env = { RESTIC_PASSWORD: "restic-test-password", RESTIC_CACHE_DIR: `${t.dir}/cache` };
    await t.run("restic", [...repo, "init"], env);
    await t.run("restic", [...repo, "backup", "src"], env);
    assert.match(
      await t.run("restic", [...repo, "check", "--read-data"], env),
      /no errors were found/,
    );
    await t.run("restic", [...repo, "restore", "latest", "--target", "restored"], env);
    await assertSameTree("restic", `${t.dir}/restored/src/sub`);
    await using client = await DfsClient.connect(t.server.address);
    assert.ok((await client.list("restic-repo/")).some((e) => e.name === "restic-repo/config"));
  },
});

Deno.test({
  name: "rclone copies, checks and syncs through the S3 gateway",
  ignore: !rclone,
  async fn() {
    await using t = await setUp();
    await Deno.writeTextFile(
      `${t.dir}/rclone.conf`,
      `[dfs]\ntype = s3\nprovider = Other\naccess_key_id = ${KEY_ID}\n` +
        `secret_access_key = ${SECRET}\nendpoint = http://${t.s3}\nregion = us-east-1\n` +
        "force_path_style = true\n",
    );
    // AWS_CA_BUNDLE (set on some machines for other tools) makes rclone's SDK refuse its transport.
    const rclone = (...args: string[]) =>
      t.run("env", ["-u", "AWS_CA_BUNDLE", "rclone", "--config", "rclone.conf", ...args]);
    await rclone("mkdir", "dfs:rclone");
    // Parts of 5 MiB from 8 MiB up: the 20 MiB file goes as a multipart upload.
    await rclone(
      "copy",
      "--s3-upload-cutoff",
      "8M",
      "--s3-chunk-size",
      "5M",
      "src",
      "dfs:rclone/copy",
    );
    assert.match(await rclone("check", "src", "dfs:rclone/copy"), /0 differences found/);
    await rclone("sync", "src", "dfs:rclone/sync");
    await rclone("copy", "dfs:rclone/sync", "back");
    await assertSameTree("rclone", `${t.dir}/back/sub`);
    await using client = await DfsClient.connect(t.server.address);
    for (const [name, data] of FILES.slice(2)) {
      const stored = await client.getBytes(`rclone/copy/sub/${name}`);
      assert.equal(sha256(stored), sha256(data), `dfs sees what rclone stored: ${name}`);
    }
    const meta = await client.meta(`rclone/copy/sub/${FILES[3][0]}`);
    assert.match(meta.attrs?.etag ?? "", /-4$/, "rclone sent the 20 MiB file in four parts");
  },
});

Deno.test({
  name: "s3cmd makes a bucket, puts, lists and gets through the S3 gateway",
  ignore: !s3cmd,
  async fn() {
    await using t = await setUp();
    await Deno.writeTextFile(
      `${t.dir}/s3cfg`,
      `[default]\naccess_key = ${KEY_ID}\nsecret_key = ${SECRET}\nhost_base = ${t.s3}\n` +
        `host_bucket = ${t.s3}\nuse_https = False\nsignature_v2 = False\n` +
        "bucket_location = us-east-1\n",
    );
    const s3cmd = (...args: string[]) => t.run("s3cmd", ["-c", "s3cfg", ...args]);
    await s3cmd("mb", "s3://s3cmd-bucket");
    for (const [name] of FILES) await s3cmd("put", `src/sub/${name}`, `s3://s3cmd-bucket/${name}`);
    const listed = await s3cmd("ls", "s3://s3cmd-bucket");
    for (const [name] of FILES) assert.ok(listed.includes(`s3://s3cmd-bucket/${name}`), listed);
    await Deno.mkdir(`${t.dir}/got`);
    for (const [name] of FILES) await s3cmd("get", `s3://s3cmd-bucket/${name}`, `got/${name}`);
    await assertSameTree("s3cmd", `${t.dir}/got`);
    await using client = await DfsClient.connect(t.server.address);
    const meta = await client.meta(`s3cmd-bucket/${FILES[3][0]}`);
    assert.match(meta.attrs?.etag ?? "", /-2$/, "s3cmd sent the 20 MiB file in two parts");
  },
});
