/**
 * Fault injection on the disks of a running server: bit rot, a truncated chunk file and a missing
 * chunk file on one replica never reach a client, and the bad replica is rewritten from the good
 * one (read repair). With every replica of a chunk bad, the client gets CORRUPTED, never bad bytes.
 */

import assert from "node:assert/strict";
import { DfsClient, DfsError, type FileMeta } from "../client.ts";
import { pseudoRandomBytes, ROOT, TestServer } from "./_server.ts";

const MiB = 1024 * 1024;

/** The chunk files holding each chunk of `data` on each of its ranks (found by content). */
async function chunkFiles(dataDir: string, data: Uint8Array, meta: FileMeta): Promise<string[][]> {
  const contents = new Map<string, string>(); // "rank:bytes-hash" lookups by content
  const key = (bytes: Uint8Array) =>
    `${bytes.length}:${bytes.slice(0, 64).join(",")}:${bytes.slice(-64).join(",")}`;
  for (const rank of [1, 2, 3]) {
    const dir = `${dataDir}/rank-${rank}/chunks`;
    for await (const entry of Deno.readDir(dir)) {
      contents.set(
        `${rank}:${key(await Deno.readFile(`${dir}/${entry.name}`))}`,
        `${dir}/${entry.name}`,
      );
    }
  }
  let offset = 0;
  return meta.chunks.map((chunk) => {
    const bytes = data.subarray(offset, offset + chunk.size);
    offset += chunk.size;
    return chunk.ranks.map((rank) => {
      const path = contents.get(`${rank}:${key(bytes)}`);
      assert.ok(path, `chunk on rank ${rank} found`);
      return path;
    });
  });
}

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting until ${what}`);
}

async function holds(path: string, bytes: Uint8Array): Promise<boolean> {
  try {
    const onDisk = await Deno.readFile(path);
    return onDisk.length === bytes.length && onDisk.every((b, i) => b === bytes[i]);
  } catch {
    return false;
  }
}

Deno.test("damaged replicas never reach a client and are repaired from a good one", async (t) => {
  await using server = await TestServer.start();
  await using client = await DfsClient.connect(server.address);
  const data = pseudoRandomBytes(4 * MiB, 42);
  const meta = await client.put("victim.bin", data);
  const files = await chunkFiles(server.dataDir, data, meta);
  const chunk = (i: number) => data.subarray(i * MiB, (i + 1) * MiB);
  // Reads of chunk i start at replica i % 2, so damage that one to be sure it is read.
  const firstRead = (i: number) => files[i][i % files[i].length];

  await t.step("a flipped byte is caught by the CRC32 and repaired", async () => {
    const file = await Deno.open(firstRead(0), { read: true, write: true });
    await file.seek(12345, Deno.SeekMode.Start);
    await file.write(Uint8Array.of(chunk(0)[12345] ^ 0x40));
    file.close();
    assert.deepEqual(await client.getBytes("victim.bin"), data);
    await eventually(() => holds(firstRead(0), chunk(0)), "the flipped replica is rewritten");
  });

  await t.step("a truncated chunk file is caught and repaired", async () => {
    await Deno.truncate(firstRead(1), 1000);
    assert.deepEqual(await client.getBytes("victim.bin"), data);
    await eventually(() => holds(firstRead(1), chunk(1)), "the truncated replica is rewritten");
  });

  await t.step("a missing chunk file is recreated", async () => {
    await Deno.remove(firstRead(2));
    assert.deepEqual(await client.getBytes("victim.bin"), data);
    await eventually(() => holds(firstRead(2), chunk(2)), "the missing replica is recreated");
  });

  await t.step("a ranged read is checked and repaired too", async () => {
    const file = await Deno.open(firstRead(3), { read: true, write: true });
    await file.write(Uint8Array.of(chunk(3)[0] ^ 1));
    file.close();
    assert.deepEqual(
      await client.getBytes("victim.bin", { start: 3 * MiB + 5, end: 3 * MiB + 9 }),
      data.slice(3 * MiB + 5, 3 * MiB + 9),
    );
    await eventually(() => holds(firstRead(3), chunk(3)), "the replica is rewritten");
  });

  await t.step(
    "with every replica of a chunk bad the client gets CORRUPTED, not bad bytes",
    async () => {
      for (const path of files[1]) {
        const file = await Deno.open(path, { read: true, write: true });
        await file.seek(7, Deno.SeekMode.Start);
        await file.write(Uint8Array.of(chunk(1)[7] ^ 0xff));
        file.close();
      }
      const received: Uint8Array[] = [];
      await assert.rejects(
        async () => {
          for await (const piece of await client.get("victim.bin")) received.push(piece.slice());
        },
        (e: unknown) =>
          e instanceof DfsError && e.code === "CORRUPTED" && /CRC32 does not match/.test(e.message),
      );
      // What arrived before the error is the good first chunk only.
      const got = new Uint8Array(await new Blob(received as BlobPart[]).arrayBuffer());
      assert.ok(got.length <= MiB, `received ${got.length} bytes`);
      assert.deepEqual(got, data.subarray(0, got.length));
      // Other files are unaffected.
      const other = pseudoRandomBytes(100_000, 7);
      await client.put("other.bin", other);
      assert.deepEqual(await client.getBytes("other.bin"), other);
    },
  );
});

async function dfs(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(`${ROOT}dfs`, { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

async function flipByte(path: string, at: number): Promise<void> {
  const file = await Deno.open(path, { read: true, write: true });
  const one = new Uint8Array(1);
  await file.seek(at, Deno.SeekMode.Start);
  await file.read(one);
  await file.seek(at, Deno.SeekMode.Start);
  await file.write(Uint8Array.of(one[0] ^ 0x10));
  file.close();
}

Deno.test("dfs fsck finds and repairs bad replicas reads never touch, and reports lost files", async () => {
  await using server = await TestServer.start({ extraArgs: ["--scrub-bytes-per-sec", "0"] });
  await using client = await DfsClient.connect(server.address);
  const good = pseudoRandomBytes(2 * MiB, 1);
  const doomed = pseudoRandomBytes(MiB, 2);
  const goodFiles = await chunkFiles(server.dataDir, good, await client.put("good.bin", good));
  const doomedFiles = await chunkFiles(
    server.dataDir,
    doomed,
    await client.put("doomed.bin", doomed),
  );
  const at = ["--server", server.address];

  const healthy = JSON.parse((await dfs(["fsck", "--json", ...at])).stdout);
  assert.deepEqual(healthy, {
    files: 2,
    chunks: 3,
    bytesChecked: 2 * (3 * MiB),
    healthy: 2,
    repaired: [],
    underReplicated: [],
    lost: [],
  });

  // The replica a read of chunk 0 would not start from.
  await flipByte(goodFiles[0][1], 100);
  await Deno.remove(goodFiles[1][0]);
  for (const path of doomedFiles[0]) await flipByte(path, 5);
  const out = await dfs(["fsck", ...at]);
  assert.equal(out.code, 1);
  assert.match(
    out.stdout,
    /^2 files, 3 chunks, [\d.]+ MiB checked: 0 healthy, 1 repaired, 0 under-replicated, 1 lost\n/,
  );
  assert.match(out.stdout, /\nrepaired {10}good\.bin\n/);
  assert.match(out.stdout, /\nLOST {14}doomed\.bin \(no good replica of some chunk\)\n/);
  assert.match(out.stderr, /^dfs: 1 file\(s\) lost: no good replica of a chunk\n$/);
  assert.ok(await holds(goodFiles[0][1], good.subarray(0, MiB)), "flipped replica repaired");
  assert.ok(await holds(goodFiles[1][0], good.subarray(MiB)), "missing replica recreated");
  const again = JSON.parse((await dfs(["fsck", "--json", ...at])).stdout);
  assert.equal(again.healthy, 1);
  assert.deepEqual(again.lost, ["doomed.bin"]);
});

Deno.test("the background scrubber repairs a bad replica with no client reading it", async () => {
  await using server = await TestServer.start({
    extraArgs: ["--scrub-bytes-per-sec", String(256 * MiB), "--scrub-pause-ms", "200"],
  });
  await using client = await DfsClient.connect(server.address);
  const data = pseudoRandomBytes(MiB + 3, 3);
  const files = await chunkFiles(server.dataDir, data, await client.put("scrubbed.bin", data));
  await flipByte(files[0][1], 999);
  await eventually(() => holds(files[0][1], data.subarray(0, MiB)), "the scrubber repairs it");
  const status = JSON.parse((await dfs(["status", "--json", "--server", server.address])).stdout);
  assert.deepEqual(status.ranks.map((r: { rank: number; state: string }) => [r.rank, r.state]), [
    [1, "up"],
    [2, "up"],
    [3, "up"],
  ]);
  assert.ok(status.repairs >= 1, JSON.stringify(status));
  assert.ok(status.corruptReplicasFound >= 1, JSON.stringify(status));
  assert.equal(status.underReplicatedChunks, 0);
  assert.ok(status.scrub.passes >= 1 && status.scrub.bytes > 0, JSON.stringify(status));
  assert.equal(status.files, 1);
  const human = (await dfs(["status", "--server", server.address])).stdout;
  assert.match(human, /^rank\s+state\s+held\s+chunks\n1\s+up\s+/);
});
