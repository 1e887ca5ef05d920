/**
 * Durability across restarts: acknowledged files survive SIGKILL and SIGTERM; a put cut off by a
 * crash leaves the previous version (or nothing) and start-up removes its leftovers.
 */

import assert from "node:assert/strict";
import { DfsClient, DfsError } from "../client.ts";
import { pseudoRandomBytes } from "./_bytes.ts";
import { chunkFilesOnDisk, DENO, expectedChunkFiles, ROOT, TestServer } from "./_server.ts";
import { sleep } from "./_wait.ts";

const MiB = 1024 * 1024;

Deno.test("acknowledged files survive SIGKILL and a restart byte for byte", async () => {
  await using first = await TestServer.start();
  const files = new Map<string, Uint8Array>();
  {
    await using client = await DfsClient.connect(first.address);
    for (let i = 0; i < 12; i++) {
      const data = pseudoRandomBytes((i % 4) * MiB + i * 1000, i);
      files.set(`k/${i}`, data);
      await client.put(`k/${i}`, data);
    }
    const replaced = pseudoRandomBytes(MiB + 1, 99);
    files.set("k/0", replaced);
    await client.put("k/0", replaced);
  }
  const status = await first.stop("SIGKILL");
  assert.equal(status.signal, "SIGKILL");

  await using second = await first.restart();
  await using client = await DfsClient.connect(second.address);
  assert.deepEqual((await client.list()).map((e) => e.name), [...files.keys()].sort());
  for (const [name, data] of files) assert.deepEqual(await client.getBytes(name), data, name);
  assert.equal((await chunkFilesOnDisk(second.dataDir)).length, await expectedChunkFiles(client));
});

Deno.test("SIGTERM stops the server cleanly and its files are there after a restart", async () => {
  await using first = await TestServer.start({ ranks: 3 });
  const data = pseudoRandomBytes(2 * MiB + 5, 5);
  {
    await using client = await DfsClient.connect(first.address);
    await client.put("t.bin", data);
  }
  const status = await first.stop("SIGTERM");
  assert.equal(status.code, 0);
  assert.match(await first.stderr, /stopped/);
  await using second = await first.restart({ ranks: 3 });
  await using client = await DfsClient.connect(second.address);
  assert.deepEqual(await client.getBytes("t.bin"), data);
  const meta = await client.meta("t.bin");
  assert.equal(meta.version, 1);
});

Deno.test("a put cut off by SIGKILL leaves the previous version and start-up removes its chunks", async () => {
  await using first = await TestServer.start();
  const previous = pseudoRandomBytes(MiB + 7, 1);
  const writer = await DfsClient.connect(first.address);
  await writer.put("doc", previous);
  await writer.put("other", pseudoRandomBytes(100, 2));
  const committed = await expectedChunkFiles(writer);

  // A slow upload of a new version: SIGKILL the server once several chunks are stored.
  let sent = 0;
  const killed = Promise.withResolvers<void>();
  const slow = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent === 6) {
        await sleep(300); // let the chunks reach the disks
        await first.stop("SIGKILL");
        killed.resolve();
      }
      controller.enqueue(pseudoRandomBytes(MiB, 100 + sent++));
    },
  });
  const cutOff = writer.put("doc", slow);
  await killed.promise;
  await assert.rejects(cutOff, (e: unknown) => e instanceof DfsError && e.code === "UNAVAILABLE");
  writer.close();
  assert.ok(
    (await chunkFilesOnDisk(first.dataDir)).length > committed,
    "the cut-off upload left chunks on disk",
  );

  await using second = await first.restart();
  await using client = await DfsClient.connect(second.address);
  assert.deepEqual(await client.getBytes("doc"), previous);
  assert.deepEqual((await client.list()).map((e) => e.name), ["doc", "other"]);
  assert.equal((await chunkFilesOnDisk(second.dataDir)).length, await expectedChunkFiles(client));
});

Deno.test("a new name cut off by SIGKILL does not exist after a restart", async () => {
  await using first = await TestServer.start({ ranks: 3 });
  const writer = await DfsClient.connect(first.address);
  const killed = Promise.withResolvers<void>();
  let sent = 0;
  const cutOff = writer.put(
    "never",
    new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent === 3) {
          await first.stop("SIGKILL");
          killed.resolve();
        }
        controller.enqueue(pseudoRandomBytes(MiB, sent++));
      },
    }),
  );
  await killed.promise;
  await cutOff.catch(() => {});
  writer.close();
  await using second = await first.restart({ ranks: 3 });
  await using client = await DfsClient.connect(second.address);
  assert.deepEqual(await client.list(), []);
  assert.deepEqual(await chunkFilesOnDisk(second.dataDir), []);
});

Deno.test("dfs serve refuses impossible options with a usage error", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "dfs-test-" });
  const serve = async (...args: string[]) => {
    const out = await new Deno.Command(DENO, {
      args: [
        "run",
        "-A",
        "--quiet",
        `${ROOT}main.ts`,
        "serve",
        "--port",
        "0",
        "--data",
        dataDir,
        ...args,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  };
  try {
    const few = await serve("--ranks", "2", "--replicas", "2");
    assert.equal(few.code, 2);
    assert.match(few.stderr, /--replicas 2 needs at least 2 data nodes, but --ranks 2 gives 1/);
    assert.equal((await serve("--ranks", "x")).code, 2);
    assert.equal((await serve("--bogus")).code, 2);
    const alone = await serve("--ranks", "1");
    assert.equal(alone.code, 2);
    assert.match(alone.stderr, /--ranks must be an integer from 2 to 64 \(1 only with a node port/);
    for (
      const option of [["--node-port", "0"], ["--node-host", "0.0.0.0"], ["--forget-node", "3"]]
    ) {
      const open = await serve(...option);
      assert.equal(open.code, 2, option[0]);
      assert.match(open.stderr, new RegExp(`${option[0]} needs --cluster-secret-file`));
    }
    await Deno.writeTextFile(`${dataDir}/secret`, "a cluster secret of some length");
    const bad = await serve("--cluster-secret-file", `${dataDir}/secret`, "--forget-node", "x");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--forget-node takes ranks such as 3 or 3,4, got "x"/);
    const short = `${dataDir}/short`;
    await Deno.writeTextFile(short, "short");
    const weak = await serve("--cluster-secret-file", short);
    assert.equal(weak.code, 2);
    assert.match(weak.stderr, /cluster secret file .* holds 5 bytes; a token needs at least 16/);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("dfs serve refuses a data directory in use or written with more ranks", async () => {
  await using server = await TestServer.start({ ranks: 5, replicas: 2 });
  await assert.rejects(
    TestServer.start({ dataDir: server.dataDir }),
    /in use by another dfs server/,
  );
  await server.stop("SIGTERM");
  await assert.rejects(
    TestServer.start({ dataDir: server.dataDir, ranks: 3 }),
    /holds rank-4: start with --ranks 5 or more/,
  );
});

Deno.test("dfs serve refuses a data directory in another on-disk format and changes nothing", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "dfs-test-" });
  try {
    // What an older dfs left: rank folders with a log and a chunk file, and no FORMAT file.
    await Deno.mkdir(`${dataDir}/rank-1/chunks`, { recursive: true });
    await Deno.writeTextFile(`${dataDir}/rank-1/meta.log`, "older log");
    await Deno.writeTextFile(`${dataDir}/rank-1/chunks/c0`, "older chunk");
    const before = await snapshot(dataDir);
    await assert.rejects(
      TestServer.start({ dataDir }),
      /another on-disk format \(no FORMAT file \(an older dfs\)\); this dfs reads format \d+/,
    );
    assert.deepEqual(await snapshot(dataDir), before);
    await Deno.writeTextFile(`${dataDir}/FORMAT`, "dfs data format 999\n");
    await assert.rejects(TestServer.start({ dataDir }), /"dfs data format 999" in FORMAT/);
    assert.equal(await Deno.readTextFile(`${dataDir}/rank-1/chunks/c0`), "older chunk");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a new data directory records its on-disk format and starts again on it", async () => {
  await using server = await TestServer.start({ ranks: 3 });
  const format = await Deno.readTextFile(`${server.dataDir}/FORMAT`);
  assert.match(format, /^dfs data format \d+\n$/);
  await server.stop("SIGTERM");
  await using again = await server.restart({ ranks: 3 });
  assert.equal(await Deno.readTextFile(`${again.dataDir}/FORMAT`), format);
});

/** Every file under `dir` (but the lock) with its content, to show nothing changed. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  const walk = async (at: string) => {
    for await (const entry of Deno.readDir(at)) {
      const path = `${at}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.name !== "LOCK") files[path] = await Deno.readTextFile(path);
    }
  };
  await walk(dir);
  return files;
}
