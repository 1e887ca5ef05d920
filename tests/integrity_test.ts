/**
 * Fault injection on the disks of a running server: bit rot, a truncated blob file and a missing
 * blob file on one replica never reach a client, and the bad replica is rewritten from the good
 * one (read repair). With every replica of a chunk bad, the client gets CORRUPTED, never bad bytes.
 */

import { basename } from "node:path";
import { firstReplica } from "../protocol/direct.ts";
import assert from "node:assert/strict";
import { DfsClient, type FileMeta } from "../client.ts";
import { pseudoRandomBytes } from "./_bytes.ts";
import { dfs } from "./_cli.ts";
import { TestServer } from "./_server.ts";
import { assertDfsError } from "./_assert.ts";
import { sleep } from "./_wait.ts";

const MiB = 1024 * 1024;

/** Where one replica of a chunk sits: its blob file, and the chunk's offset in it. */
interface Replica {
  path: string;
  offset: number;
}

/**
 * The replicas of each chunk of `data` on each of its ranks, found by content: a chunk sits at its
 * offset in the file, in the blob of the upload on each rank holding it.
 */
async function chunkFiles(dataDir: string, data: Uint8Array, meta: FileMeta): Promise<Replica[][]> {
  const blobs: { rank: number; path: string; bytes: Uint8Array }[] = [];
  for (const rank of [1, 2, 3]) {
    const dir = `${dataDir}/rank-${rank}/chunks`;
    for await (const entry of Deno.readDir(dir)) {
      const path = `${dir}/${entry.name}`;
      blobs.push({ rank, path, bytes: await Deno.readFile(path) });
    }
  }
  let offset = 0;
  return meta.chunks.map((chunk) => {
    const start = offset;
    const bytes = data.subarray(start, start + chunk.size);
    offset += chunk.size;
    return chunk.ranks.map((rank) => {
      const blob = blobs.find((b) =>
        b.rank === rank && b.bytes.length >= start + bytes.length &&
        equal(b.bytes.subarray(start, start + bytes.length), bytes)
      );
      assert.ok(blob, `chunk on rank ${rank} found`);
      return { path: blob.path, offset: start };
    });
  });
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (await check()) return;
    await sleep(100);
  }
  assert.fail(`timed out waiting until ${what}`);
}

/** True if `replica` holds exactly `bytes`. */
async function holds(replica: Replica, bytes: Uint8Array): Promise<boolean> {
  try {
    const onDisk = await Deno.readFile(replica.path);
    return equal(onDisk.subarray(replica.offset, replica.offset + bytes.length), bytes);
  } catch {
    return false;
  }
}

/** Flips bits of the byte at `at` in `replica`. */
async function flipByte(replica: Replica, at: number, bits = 0x10): Promise<void> {
  const file = await Deno.open(replica.path, { read: true, write: true });
  const one = new Uint8Array(1);
  await file.seek(replica.offset + at, Deno.SeekMode.Start);
  await file.read(one);
  await file.seek(replica.offset + at, Deno.SeekMode.Start);
  await file.write(Uint8Array.of(one[0] ^ bits));
  file.close();
}

Deno.test("damaged replicas never reach a client and are repaired from a good one", async (t) => {
  await using server = await TestServer.start();
  await using client = await DfsClient.connect(server.address);
  const data = pseudoRandomBytes(4 * MiB, 42);
  const meta = await client.put("victim.bin", data);
  const files = await chunkFiles(server.dataDir, data, meta);
  const chunk = (i: number) => data.subarray(i * MiB, (i + 1) * MiB);
  // Reads of a chunk start at the replica a hash of its id picks (`firstReplica`), so damage that
  // one to be sure it is read. The id is the blob's (its file's name) and the chunk's offset.
  const firstRead = (i: number) => {
    const id = `${basename(files[i][0].path)}-${files[i][0].offset.toString(16)}`;
    return files[i][firstReplica(id, files[i].length)];
  };
  /** Has fsck restore every replica, and checks that nothing was lost. */
  const healed = async () => {
    const report = await client.fsck();
    assert.deepEqual(report.lost, []);
    assert.equal((await client.fsck()).healthy, 1);
  };

  await t.step("a flipped byte is caught by the CRC32 and repaired", async () => {
    await flipByte(firstRead(0), 12345, 0x40);
    assert.deepEqual(await client.getBytes("victim.bin"), data);
    await eventually(() => holds(firstRead(0), chunk(0)), "the flipped replica is rewritten");
  });

  await t.step("a truncated blob is caught and repaired", async () => {
    await Deno.truncate(firstRead(1).path, firstRead(1).offset + 1000);
    assert.deepEqual(await client.getBytes("victim.bin"), data);
    await eventually(() => holds(firstRead(1), chunk(1)), "the truncated replica is rewritten");
    // The cut also took the blob's later chunks, which reads did not touch: fsck restores them.
    await healed();
  });

  await t.step("a missing blob is recreated", async () => {
    await Deno.remove(firstRead(2).path);
    assert.deepEqual(await client.getBytes("victim.bin"), data);
    await eventually(() => holds(firstRead(2), chunk(2)), "the missing replica is recreated");
    await healed();
  });

  await t.step("a ranged read is checked and repaired too", async () => {
    await flipByte(firstRead(3), 0, 1);
    assert.deepEqual(
      await client.getBytes("victim.bin", { start: 3 * MiB + 5, end: 3 * MiB + 9 }),
      data.slice(3 * MiB + 5, 3 * MiB + 9),
    );
    await eventually(() => holds(firstRead(3), chunk(3)), "the replica is rewritten");
  });

  await t.step(
    "with every replica of a chunk bad the client gets CORRUPTED, not bad bytes",
    async () => {
      for (const replica of files[1]) await flipByte(replica, 7, 0xff);
      const received: Uint8Array[] = [];
      await assertDfsError(
        (async () => {
          for await (const piece of await client.get("victim.bin")) received.push(piece.slice());
        })(),
        "CORRUPTED",
        /CRC32 does not match/,
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

  const { logs, ...healthy } = JSON.parse((await dfs(["fsck", "--json", ...at])).stdout);
  assert.deepEqual(
    logs.map((l: { rank: number; damagedRegions: number; missingBytes: number }) => [
      l.rank,
      l.damagedRegions,
      l.missingBytes,
    ]),
    [[1, 0, 0], [2, 0, 0], [3, 0, 0]],
    "every node's log is checked and clean",
  );
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
  await Deno.remove(goodFiles[1][0].path);
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
  assert.match(
    human,
    /^rank\s+kind\s+zone\s+address\s+state\s+held\s+chunks\s+missing\s+heard\n1\s+worker\s+\S+\s+-\s+up\s+/,
  );
});
