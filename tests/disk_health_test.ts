/**
 * A store that knows its own health, tried as an operator would on a real server: a data node's
 * folder removed under it, a node retired between two runs, a log damaged or cut. Each is said on
 * the server's log, shown by `status`, and repaired from good replicas without a client asking;
 * the repairs stick.
 */

import assert from "node:assert/strict";
import { DfsClient } from "../client.ts";
import { RECORD_HEADER_SIZE_BYTES } from "../ranks/node/record_frame.ts";
import { pseudoRandomBytes } from "./_bytes.ts";
import { TestServer } from "./_server.ts";
import { sleep } from "./_wait.ts";

const MiB = 1024 * 1024;

/** Polls `check` every 100 ms for at most `timeoutMs`. */
async function eventually(
  check: () => Promise<boolean>,
  what: string,
  timeoutMs = 15_000,
): Promise<void> {
  for (const start = Date.now(); Date.now() - start < timeoutMs;) {
    if (await check()) return;
    await sleep(100);
  }
  assert.fail(`timed out waiting until ${what}`);
}

/** Puts `small` files of a few hundred bytes (kept in the logs) and `big` of three chunks. */
async function fill(
  client: DfsClient,
  counts: { small: number; big: number },
): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for (let i = 0; i < counts.small; i++) {
    files.set(`small/${String(i).padStart(3, "0")}`, pseudoRandomBytes(200 + i, i));
  }
  for (let i = 0; i < counts.big; i++) {
    files.set(`big/${i}`, pseudoRandomBytes(2 * MiB + 17 * i, 1000 + i));
  }
  for (const [name, data] of files) await client.put(name, data);
  return files;
}

async function assertFiles(client: DfsClient, files: Map<string, Uint8Array>): Promise<void> {
  assert.deepEqual((await client.list()).map((e) => e.name), [...files.keys()].sort());
  for (const [name, data] of files) assert.deepEqual(await client.getBytes(name), data, name);
}

/** Waits until nothing is under-replicated, then checks fsck has nothing left to repair. */
async function assertHealed(client: DfsClient, files: number): Promise<void> {
  await eventually(
    async () => (await client.status()).underReplicatedChunks === 0,
    "nothing is under-replicated",
  );
  const fsck = await client.fsck();
  assert.deepEqual(
    [fsck.healthy, fsck.repaired, fsck.underReplicated, fsck.lost],
    [files, [], [], []],
    "fsck finds every file healthy with nothing left to repair",
  );
}

/**
 * Puts six files, large and small, while `rank` is down, each from `seed` on, checking that none
 * goes to it; adds them to `files`.
 */
async function putWhileDown(
  client: DfsClient,
  files: Map<string, Uint8Array>,
  { rank, seed }: { rank: number; seed: number },
): Promise<void> {
  for (let i = 0; i < 6; i++) {
    const data = pseudoRandomBytes(i % 2 === 0 ? 2 * MiB + i : 100 + i, seed + i);
    files.set(`after/${i}`, data);
    const meta = await client.put(`after/${i}`, data);
    assert.ok(meta.chunks.every((c) => !c.ranks.includes(rank)), `nothing new goes to ${rank}`);
  }
}

/** Waits until the server says what `rank` held was copied to live nodes. */
async function replicasCopied(server: TestServer, rank: number): Promise<void> {
  const copied = new RegExp(`rank ${rank} stays down: \\d+ chunk replicas copied`);
  await eventually(
    async () => copied.test(await server.stderrSoFar()),
    `rank ${rank}'s replicas are copied to live nodes`,
  );
}

/** The offsets of the records in a log file (where each header starts). */
async function recordOffsets(path: string): Promise<number[]> {
  const bytes = await Deno.readFile(path);
  const view = new DataView(bytes.buffer);
  const offsets: number[] = [];
  for (let at = 0; at + RECORD_HEADER_SIZE_BYTES <= bytes.length;) {
    const length = view.getUint32(at);
    if (length === 0) break; // the zeros the log keeps written after its records
    offsets.push(at);
    at += RECORD_HEADER_SIZE_BYTES + length;
  }
  return offsets;
}

/** Flips byte `offset` of the file at `path`. */
async function flipByte(path: string, offset: number): Promise<void> {
  const bytes = await Deno.readFile(path);
  bytes[offset] ^= 0xff;
  await Deno.writeFile(path, bytes);
}

Deno.test("a data node's folder removed under a running server fails the node: status says why, puts go on, its replicas are re-replicated", async () => {
  await using server = await TestServer.start({
    extraArgs: ["--rereplicate-after-ms", "2000"],
  });
  await using client = await DfsClient.connect(server.address);
  const files = await fill(client, { small: 20, big: 3 });
  await Deno.remove(`${server.dataDir}/rank-2`, { recursive: true });
  // Puts at once, before a heartbeat: none may be acknowledged into the deleted log alone.
  for (let i = 0; i < 6; i++) {
    const data = pseudoRandomBytes(300 + i, 700 + i);
    files.set(`during/${i}`, data);
    await client.put(`during/${i}`, data);
  }
  await eventually(
    async () => (await client.status()).ranks.find((r) => r.rank === 2)?.state !== "up",
    "rank 2 is taken for failed",
    5_000,
  );
  const status = await client.status();
  assert.match(
    status.ranks.find((r) => r.rank === 2)?.reason ?? "",
    /rank-2.*(is gone|was removed)/,
  );
  await putWhileDown(client, files, { rank: 2, seed: 500 });
  await replicasCopied(server, 2);
  await assertHealed(client, files.size);
  await assertFiles(client, files);
  for (const name of files.keys()) {
    const meta = await client.meta(name);
    assert.ok(meta.chunks.every((c) => c.ranks.length === 2 && !c.ranks.includes(2)), name);
  }
});

Deno.test("a byte flipped in a length field in the middle of a log loses nothing: the damage is said, the rest kept, the one record restored", async (t) => {
  for (const damaged of [1, 2]) {
    await t.step(`${damaged} damaged record(s)`, async () => {
      await using first = await TestServer.start();
      let files: Map<string, Uint8Array>;
      {
        await using client = await DfsClient.connect(first.address);
        files = await fill(client, { small: 72, big: 0 });
      }
      await first.stop();
      const log = `${first.dataDir}/rank-1/meta.log`;
      const offsets = await recordOffsets(log);
      const middle = Math.floor(offsets.length / 2);
      for (let i = 0; i < damaged; i++) await flipByte(log, offsets[middle + i] + 1);
      await using second = await first.restart();
      await using client = await DfsClient.connect(second.address);
      const stderr = await second.stderrSoFar();
      assert.match(stderr, /rank 1: its log had 1 damaged region\(s\)/);
      assert.equal((await client.status()).metadata?.damagedRegions, 1);
      await assertHealed(client, files.size);
      await assertFiles(client, files);
    });
  }
});

Deno.test("a node retired between two runs: what it held is under-replicated at once and copied from good replicas", async () => {
  await using first = await TestServer.start({ ranks: 5 });
  let files: Map<string, Uint8Array>;
  {
    await using client = await DfsClient.connect(first.address);
    files = await fill(client, { small: 90, big: 10 });
  }
  await first.stop();
  await Deno.remove(`${first.dataDir}/rank-4`, { recursive: true });
  await using second = await first.restart({ ranks: 4 });
  await using client = await DfsClient.connect(second.address);
  assert.match(await second.stderrSoFar(), /rank 4 is gone .*re-replicating the [1-9]\d* chunk/);
  await assertHealed(client, files.size);
  for (const name of files.keys()) {
    const meta = await client.meta(name);
    assert.ok(meta.chunks.every((c) => c.ranks.length === 2 && c.ranks.every((r) => r < 4)));
  }
  await assertFiles(client, files);
});

Deno.test("a log cut while the server runs: fsck finds it, the node is refilled, and a second fsck has nothing to repair", async () => {
  await using server = await TestServer.start();
  await using client = await DfsClient.connect(server.address);
  const files = await fill(client, { small: 40, big: 2 });
  const log = `${server.dataDir}/rank-2/meta.log`;
  await Deno.truncate(log, Math.floor((await Deno.stat(log)).size / 2));
  const first = await client.fsck();
  assert.ok(first.logs?.some((l) => l.rank === 2 && l.missingBytes > 0), JSON.stringify(first));
  await assertHealed(client, files.size);
  await assertFiles(client, files);
});

Deno.test("bytes flipped in a log while the server runs: fsck rewrites it, and nothing is missing after a restart", async () => {
  await using first = await TestServer.start();
  let files: Map<string, Uint8Array>;
  {
    await using client = await DfsClient.connect(first.address);
    files = await fill(client, { small: 40, big: 0 });
    const log = `${first.dataDir}/rank-3/meta.log`;
    for (const at of (await recordOffsets(log)).slice(5, 9)) await flipByte(log, at + 12);
    const fsck = await client.fsck();
    const check = fsck.logs?.find((l) => l.rank === 3);
    assert.ok(check && check.damagedRegions > 0 && check.rewritten, JSON.stringify(fsck.logs));
  }
  await first.stop();
  await using second = await first.restart();
  await using client = await DfsClient.connect(second.address);
  assert.doesNotMatch(await second.stderrSoFar(), /damaged|missing at start/);
  await assertHealed(client, files.size);
  await assertFiles(client, files);
});

/** Runs a command; true if it exits 0. */
function runs(command: string, args: string[]): boolean {
  try {
    return new Deno.Command(command, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

/** Whether this machine lets the tests mount a tmpfs (root with CAP_SYS_ADMIN). */
const CAN_MOUNT = (() => {
  const dir = Deno.makeTempDirSync({ prefix: "dfs-mount-probe-" });
  try {
    if (!runs("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir])) return false;
    runs("umount", [dir]);
    return true;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
})();

Deno.test({
  name:
    "one disk per node: an empty mount point is a new node, and a disk that falls off fails its node for good",
  ignore: !CAN_MOUNT,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "dfs-test-mounts-" });
    const disk = `${dataDir}/rank-2`;
    await Deno.mkdir(disk);
    assert.ok(runs("mount", ["-t", "tmpfs", "-o", "size=256m", "tmpfs", disk]), "mount");
    let mounted = true;
    try {
      await using server = await TestServer.start({
        dataDir,
        extraArgs: ["--rereplicate-after-ms", "2000"],
      });
      await using client = await DfsClient.connect(server.address);
      const files = await fill(client, { small: 20, big: 3 });
      // The disk falls off: its mount point is an empty folder on the parent's file system again.
      assert.ok(runs("umount", ["-l", disk]), "lazy unmount");
      mounted = false;
      await eventually(async () => {
        const rank2 = (await client.status()).ranks.find((r) => r.rank === 2);
        return rank2?.state === "down" && /not on device/.test(rank2.reason ?? "");
      }, "rank 2 is down: its folder is on another device now");
      await putWhileDown(client, files, { rank: 2, seed: 900 });
      await replicasCopied(server, 2);
      await assertHealed(client, files.size);
      await assertFiles(client, files);
      assert.deepEqual([...Deno.readDirSync(disk)], [], "nothing was written in the disk's place");
    } finally {
      if (mounted) runs("umount", [disk]);
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
