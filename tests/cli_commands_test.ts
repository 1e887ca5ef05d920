/**
 * The everyday commands, driven through the `./dfs` launcher as a user would: rm, mv, get --range,
 * put --replicas, du, df, list -l, help, progress only on a terminal, and pipes through tar.
 */

import assert from "node:assert/strict";
import { DfsClient } from "../client.ts";
import { LIST_PAGE_ENTRIES_MAX } from "../protocol/limits.ts";
import { pseudoRandomBytes } from "./_bytes.ts";
import { dfs, type DfsRun } from "./_cli.ts";
import { assertNoStrayChunks, ROOT, TestServer } from "./_server.ts";

const MiB = 1024 * 1024;

function ok(result: DfsRun): DfsRun {
  assert.equal(result.code, 0, `exit ${result.code}: ${result.stderr}`);
  return result;
}

/** The chunk files on disk are exactly those of listed files (asked on a connection of its own). */
async function chunksMatchMetadata(server: TestServer): Promise<void> {
  await using client = await DfsClient.connect(server.address);
  await assertNoStrayChunks(server, client);
}

Deno.test("dfs everyday commands through the CLI", async (t) => {
  let server = await TestServer.start({ launcher: true });
  const cwd = await Deno.makeTempDir({ prefix: "dfs-cli-more-" });
  const at = () => ["--server", server.address];
  const data = pseudoRandomBytes(3 * MiB + 5, 1);
  await Deno.writeFile(`${cwd}/data.bin`, data);
  try {
    await t.step(
      "rm removes files, frees their chunks, and a restart does not bring them back",
      async () => {
        for (const name of ["rm/a", "rm/b", "rm/keep"]) {
          ok(await dfs(["put", "data.bin", name, ...at()], { cwd }));
        }
        const removed = ok(await dfs(["rm", "rm/a", "rm/b", ...at()]));
        assert.equal(removed.stdout, "removed rm/a\nremoved rm/b\n");
        assert.equal(ok(await dfs(["list", "rm/", ...at()])).stdout, "rm/keep\n");
        await chunksMatchMetadata(server);
        const missing = await dfs(["rm", "rm/a", ...at()]);
        assert.equal(missing.code, 1);
        assert.match(missing.stderr, /^dfs: Cannot find "rm\/a": file does not exist\n$/);
        await server.stop("SIGKILL");
        server = await server.restart({ launcher: true });
        assert.equal(ok(await dfs(["list", "rm/", ...at()])).stdout, "rm/keep\n");
        await chunksMatchMetadata(server);
      },
    );

    await t.step("rm --prefix removes everything under a prefix and says how many", async () => {
      for (const name of ["p/1", "p/2", "p/sub/3", "q/1"]) {
        ok(await dfs(["put", "data.bin", name, ...at()], { cwd }));
      }
      assert.equal(
        ok(await dfs(["rm", "--prefix", "p/", ...at()])).stdout,
        "removed 3 files under p/\n",
      );
      assert.equal(ok(await dfs(["list", ...at()])).stdout, "q/1\nrm/keep\n");
      assert.equal((await dfs(["rm", "--prefix", "", ...at()])).code, 2);
    });

    await t.step(
      "mv renames, refuses to overwrite without --force, and survives a restart",
      async () => {
        ok(await dfs(["put", "data.bin", "mv/old", ...at()], { cwd }));
        ok(await dfs(["put", "-", "mv/other", ...at()], { stdin: Uint8Array.of(1, 2, 3) }));
        assert.equal(
          ok(await dfs(["mv", "mv/old", "mv/new", ...at()])).stdout,
          "mv/old -> mv/new\n",
        );
        assert.equal(ok(await dfs(["list", "mv/", ...at()])).stdout, "mv/new\nmv/other\n");
        assert.deepEqual(ok(await dfs(["get", "mv/new", "-", ...at()])).bytes, data);
        const refused = await dfs(["mv", "mv/new", "mv/other", ...at()]);
        assert.equal(refused.code, 1);
        assert.match(
          refused.stderr,
          /^dfs: Cannot move "mv\/new" to "mv\/other": "mv\/other" exists \(--force replaces it\)\n$/,
        );
        ok(await dfs(["mv", "--force", "mv/new", "mv/other", ...at()]));
        await server.stop("SIGKILL");
        server = await server.restart({ launcher: true });
        assert.equal(ok(await dfs(["list", "mv/", ...at()])).stdout, "mv/other\n");
        assert.deepEqual(ok(await dfs(["get", "mv/other", "-", ...at()])).bytes, data);
        await chunksMatchMetadata(server);
      },
    );

    await t.step("during renames a reader always sees exactly one of the two names", async () => {
      await using mover = await DfsClient.connect(server.address);
      await using reader = await DfsClient.connect(server.address);
      await mover.put("swap/a", pseudoRandomBytes(1000, 5));
      let done = false;
      let looks = 0;
      const seen = new Set<string>();
      const looking = (async () => {
        while (!done) {
          const names = (await reader.list("swap/")).map((e) => e.name);
          assert.equal(names.length, 1, `saw ${JSON.stringify(names)}`);
          seen.add(names[0]);
          looks++;
        }
      })();
      // Rename back and forth until the reader has looked 40 times (at most 2000 renames).
      for (let i = 0; looks < 40 && i < 2000; i++) {
        await mover.rename(i % 2 === 0 ? "swap/a" : "swap/b", i % 2 === 0 ? "swap/b" : "swap/a");
      }
      done = true;
      await looking;
      assert.ok(looks >= 40, `the reader looked ${looks} times`);
      assert.deepEqual([...seen].sort(), ["swap/a", "swap/b"]);
    });

    await t.step("get --range reads only the bytes asked for", async () => {
      ok(await dfs(["put", "data.bin", "range.bin", ...at()], { cwd }));
      const middle = ok(
        await dfs(["get", "range.bin", "-", "--range", `${MiB - 10}-${MiB + 9}`, ...at()]),
      );
      assert.deepEqual(middle.bytes, data.slice(MiB - 10, MiB + 10));
      const tail = ok(await dfs(["get", "range.bin", "-", "--range", `${3 * MiB}-`, ...at()]));
      assert.deepEqual(tail.bytes, data.slice(3 * MiB));
      const beyond = await dfs(["get", "range.bin", "-", "--range", `0-${data.length}`, ...at()]);
      assert.equal(beyond.code, 1);
      assert.match(
        beyond.stderr,
        /^dfs: Cannot read bytes 0 to 3145734 of "range\.bin": it has 3145733 bytes\n$/,
      );
    });

    await t.step("list prints a listing of several pages as it comes, whole", async () => {
      const count = LIST_PAGE_ENTRIES_MAX + 5;
      const nameOf = (i: number) => `paged/${String(i).padStart(5, "0")}`;
      await Promise.all(Array.from({ length: 8 }, async (_, w) => {
        await using c = await DfsClient.connect(server.address);
        for (let i = w; i < count; i += 8) await c.put(nameOf(i), new Uint8Array(i % 3));
      }));
      const names = Array.from({ length: count }, (_, i) => nameOf(i));
      assert.equal(ok(await dfs(["list", "paged/", ...at()])).stdout, names.join("\n") + "\n");
      const json = JSON.parse(ok(await dfs(["list", "paged/", "--json", ...at()])).stdout);
      assert.deepEqual(json.map((e: { name: string }) => e.name), names);
      assert.deepEqual(json.map((e: { size: number }) => e.size), names.map((_, i) => i % 3));
      const long = ok(await dfs(["list", "-l", "paged/", ...at()])).stdout.split("\n");
      assert.equal(long.length, count + 1);
      assert.match(long[count - 1], /^2 B {2}\d{4}-\d\d-\d\d \d\d:\d\d {2}2 {2}paged\/01004$/);
      assert.equal(ok(await dfs(["list", "nothing/", "--json", ...at()])).stdout, "[]\n");
    });

    await t.step("put --replicas keeps that many copies, shown in meta and list -l", async () => {
      ok(await dfs(["put", "data.bin", "three.bin", "--replicas", "3", ...at()], { cwd }));
      const meta = JSON.parse(ok(await dfs(["meta", "three.bin", "--json", ...at()])).stdout);
      assert.equal(meta.replicas, 3);
      for (const c of meta.chunks) assert.deepEqual([...c.ranks].sort(), [1, 2, 3]);
      const tooMany = await dfs(["put", "data.bin", "four.bin", "--replicas", "4", ...at()], {
        cwd,
      });
      assert.equal(tooMany.code, 1);
      assert.match(tooMany.stderr, /Cannot keep 4 replicas: there are 3 data nodes/);
      const long = ok(await dfs(["list", "-l", "three", ...at()])).stdout;
      assert.match(long, /^3\.0 MiB {2}\d{4}-\d\d-\d\d \d\d:\d\d {2}3 {2}three\.bin\n$/);
    });

    await t.step("du and df report use per prefix and per rank, in bytes with --json", async () => {
      const du = JSON.parse(ok(await dfs(["du", "three", "--json", ...at()])).stdout);
      assert.deepEqual(du, { files: 1, bytes: data.length, storedBytes: 3 * data.length });
      assert.match(
        ok(await dfs(["du", "three", ...at()])).stdout,
        /^3\.0 MiB {2}9\.0 MiB stored {2}1 file {2}three\n$/,
      );
      const df = JSON.parse(ok(await dfs(["df", "--json", ...at()])).stdout);
      assert.deepEqual(df.map((r: { rank: number }) => r.rank), [1, 2, 3]);
      for (const r of df) {
        assert.ok(r.totalBytes > r.availableBytes && r.bytesHeld > 0, JSON.stringify(r));
      }
      const lines = ok(await dfs(["df", ...at()])).stdout.trimEnd().split("\n");
      assert.equal(lines.length, 5);
      assert.match(lines[0], /^rank\s+held\s+size\s+available\s+use%$/);
      assert.match(lines[4], /^total\s+/);
    });

    await t.step("every command's --help lists its options with defaults; --version", async () => {
      const put = ok(await dfs(["put", "--help"])).stdout;
      assert.match(put, /^Usage: dfs put LOCAL \[NAME\] \[OPTIONS\]/);
      assert.match(put, /--replicas K\s+.*\(default: the server's\)/);
      assert.match(
        put,
        /--server HOST:PORT\s+server address \(default: \$DFS_SERVER, else 127\.0\.0\.1:7070\)/,
      );
      const serve = ok(await dfs(["serve", "--help"])).stdout;
      for (
        const option of [
          "--ranks N",
          "--port PORT",
          "--data DIR",
          "--replicas K",
          "--write-timeout-ms N",
        ]
      ) {
        assert.ok(serve.includes(option), option);
      }
      assert.match(serve, /--ranks N\s+ranks, rank 0 included \(default: 4\)/);
      for (const command of ["rm", "mv", "du", "df", "list", "get", "meta", "completion"]) {
        ok(await dfs([command, "--help"]));
      }
      assert.match(ok(await dfs(["--version"])).stdout, /^dfs \d+\.\d+\.\d+\n$/);
      assert.match(ok(await dfs(["completion"])).stdout, /complete -F _dfs dfs/);
    });

    await t.step("progress shows on a terminal and stays off in pipes", async () => {
      const piped = ok(await dfs(["put", "data.bin", "quiet.bin", ...at()], { cwd }));
      assert.equal(piped.stderr, "");
      const got = ok(await dfs(["get", "quiet.bin", "copy.bin", ...at()], { cwd }));
      assert.equal(got.stderr, "");
      // `script` gives the command a terminal.
      const command = `${ROOT}dfs put data.bin tty.bin --server ${server.address}`;
      const tty = await new Deno.Command("script", {
        args: ["-qec", command, "/dev/null"],
        cwd,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(tty.code, 0);
      assert.match(
        new TextDecoder().decode(tty.stdout),
        /3\.0 MiB \/ 3\.0 MiB {2}100% {2}[\d.]+ [KMG]?i?B\/s/,
      );
      const quiet = await new Deno.Command("script", {
        args: ["-qec", `${command} --quiet`, "/dev/null"],
        cwd,
        stdout: "piped",
      }).output();
      assert.equal(new TextDecoder().decode(quiet.stdout), "");
    });

    await t.step("pipes both ways: tar c | dfs put - and dfs get - | tar t", async () => {
      await Deno.mkdir(`${cwd}/tree/sub`, { recursive: true });
      await Deno.writeTextFile(`${cwd}/tree/a.txt`, "alpha");
      await Deno.writeFile(`${cwd}/tree/sub/b.bin`, pseudoRandomBytes(200_000, 9));
      const sh = (script: string) =>
        new Deno.Command("bash", {
          args: ["-o", "pipefail", "-c", script],
          cwd,
          stdout: "piped",
          stderr: "piped",
        })
          .output();
      const up = await sh(`tar c tree | ${ROOT}dfs put - backup.tar --server ${server.address}`);
      assert.equal(up.code, 0, new TextDecoder().decode(up.stderr));
      const down = await sh(
        `${ROOT}dfs get backup.tar - --server ${server.address} | tar t | sort`,
      );
      assert.equal(down.code, 0, new TextDecoder().decode(down.stderr));
      assert.equal(
        new TextDecoder().decode(down.stdout),
        "tree/\ntree/a.txt\ntree/sub/\ntree/sub/b.bin\n",
      );
    });
  } finally {
    await server[Symbol.asyncDispose]();
    await Deno.remove(cwd, { recursive: true });
  }
});
