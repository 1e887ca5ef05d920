/**
 * The store's knowledge of its own health, on the in-process cluster: what start-up finds in the
 * nodes' logs and disks is said, counted and repaired in the background; a failed disk is a
 * failed node; a rank that is gone has what it held re-replicated; repairs stick.
 */

import assert from "node:assert/strict";
import { manifestsIn } from "../testing/manifests.ts";
import { LOG_FILE } from "../node/data_node.ts";
import { RECORD_HEADER_SIZE_BYTES } from "../node/record_frame.ts";
import { blobPath, bytesOf, flipByte, MiB, readAll, settle } from "../testing/cluster_helpers.ts";
import { MemoryCluster } from "../testing/memory_cluster.ts";
import type { MemoryFileSystem } from "../env/memory_fs.ts";
import { HEARTBEAT_INTERVAL_MS, RESTART_BACKOFF_MS } from "./supervisor.ts";

const logOf = (rank: number) => `/rank-${rank}/${LOG_FILE}`;

/** Puts `count` small files (kept in the logs) and two of several chunks; returns them all. */
async function fill(cluster: MemoryCluster, count = 12): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for (let i = 0; i < count; i++) {
    files.set(`small-${String(i).padStart(2, "0")}`, bytesOf(300 + i, i));
  }
  files.set("big-a", bytesOf(3 * MiB, 100));
  files.set("big-b", bytesOf(2 * MiB + 5, 101));
  for (const [name, data] of files) await cluster.store.put(name, data);
  return files;
}

/** Checks every file reads back as it was put. */
async function assertFiles(cluster: MemoryCluster, files: Map<string, Uint8Array>) {
  assert.deepEqual((await cluster.store.list()).map((e) => e.name), [...files.keys()].sort());
  for (const [name, data] of files) assert.deepEqual(await readAll(cluster.store, name), data);
}

/** The file offsets of the records in a node's log (where each header starts). */
async function recordOffsets(disk: MemoryFileSystem, path: string): Promise<number[]> {
  const bytes = await disk.readFile(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const offsets: number[] = [];
  for (let at = 0; at + RECORD_HEADER_SIZE_BYTES <= bytes.length;) {
    const length = view.getUint32(at);
    if (length === 0) break; // the zeros the log keeps written after its records
    offsets.push(at);
    at += RECORD_HEADER_SIZE_BYTES + length;
  }
  return offsets;
}

/** Starts a new cluster on the disks of `cluster`, which is closed first. */
async function restart(cluster: MemoryCluster, options: { ranks?: number } = {}) {
  await cluster.close();
  const disks = new Map([...cluster.disks].filter(([rank]) => rank < (options.ranks ?? 4)));
  return await MemoryCluster.start({ disks, ranks: options.ranks });
}

/** Waits for the store's background repairs, then checks fsck finds nothing left to do. */
async function assertHealthy(cluster: MemoryCluster, files: number) {
  await cluster.store.health.settled();
  const status = await cluster.store.status();
  assert.equal(status.underReplicatedChunks, 0, "nothing is under-replicated");
  const fsck = await cluster.store.fsck();
  assert.deepEqual(
    [fsck.healthy, fsck.repaired, fsck.underReplicated, fsck.lost],
    [files, [], [], []],
    "fsck finds every file healthy, with nothing left to repair",
  );
}

Deno.test("a log deleted while the server is stopped is said at start, counted, and restored in the background", async () => {
  let cluster = await MemoryCluster.start();
  const files = await fill(cluster);
  await cluster.close();
  await cluster.disk(2).remove(logOf(2));
  cluster = await restart(cluster);
  try {
    const missing = cluster.recovery.missing.filter((m) => m.rank === 2).length;
    assert.ok(missing > 0, "the small files rank 2 kept in its log are missing there");
    const logged = cluster.logged.join("\n");
    assert.match(logged, /rank 2: its log was missing and was made anew/);
    assert.match(logged, new RegExp(`rank 2: ${missing} chunk replica\\(s\\) missing at start`));
    assert.equal((await cluster.store.status()).metadata?.logsMadeAnew, 1);
    await assertHealthy(cluster, files.size);
    assert.ok((await cluster.store.status()).repairs >= missing, "each missing replica restored");
    await assertFiles(cluster, files);
    cluster = await restart(cluster);
    assert.deepEqual(cluster.recovery.missing, [], "the repair stuck: nothing missing next start");
    await assertHealthy(cluster, files.size);
  } finally {
    await cluster.close();
  }
});

Deno.test("a damaged length field in the middle of a log loses only that record, which is restored", async () => {
  let cluster = await MemoryCluster.start();
  const files = await fill(cluster, 20);
  const before = manifestsIn(await (await cluster.node(1)).scan()).length;
  await cluster.close();
  const offsets = await recordOffsets(cluster.disk(1), logOf(1));
  const middle = offsets[Math.floor(offsets.length / 2)];
  await flipByte(cluster.disk(1), logOf(1), middle + 1); // the length field's second byte
  cluster.disk(1).syncAll();
  cluster = await restart(cluster);
  try {
    assert.match(cluster.logged.join("\n"), /rank 1: its log had 1 damaged region\(s\)/);
    const status = await cluster.store.status();
    assert.equal(status.metadata?.damagedRegions, 1);
    await assertHealthy(cluster, files.size);
    assert.equal(manifestsIn(await (await cluster.node(1)).scan()).length, before);
    await assertFiles(cluster, files);
    cluster = await restart(cluster);
    assert.doesNotMatch(cluster.logged.join("\n"), /damaged/, "the log was rewritten at start");
    assert.deepEqual(cluster.recovery.missing, []);
  } finally {
    await cluster.close();
  }
});

Deno.test("a rank that is gone has what it held counted under-replicated at once and re-replicated", async () => {
  let cluster = await MemoryCluster.start({ ranks: 5 });
  const files = await fill(cluster, 16);
  let onRank4 = 0;
  for (const name of files.keys()) {
    const meta = await cluster.store.meta(name);
    onRank4 += meta.chunks.filter((c) => c.ranks.includes(4)).length;
  }
  assert.ok(onRank4 > 0, "some chunks have a replica on rank 4");
  cluster = await restart(cluster, { ranks: 4 });
  try {
    assert.deepEqual([...cluster.recovery.goneRanks], [[4, onRank4]]);
    assert.match(
      cluster.logged.join("\n"),
      new RegExp(`rank 4 is gone .*: re-replicating the ${onRank4} chunk replicas it held`),
    );
    await assertHealthy(cluster, files.size);
    for (const name of files.keys()) {
      const meta = await cluster.store.meta(name);
      for (const chunk of meta.chunks) {
        assert.equal(chunk.ranks.length, 2, `${name} has its two replicas`);
        assert.ok(chunk.ranks.every((r) => r < 4), `${name} has no replica on the gone rank`);
      }
    }
    await assertFiles(cluster, files);
  } finally {
    await cluster.close();
  }
});

Deno.test("a node whose folder is removed under it is failed: down with the reason, puts go on, its replicas are re-replicated", async () => {
  await using cluster = await MemoryCluster.start({ rereplicateAfterMs: 10_000 });
  const files = await fill(cluster, 6);
  await cluster.disk(3).remove("/rank-3", { recursive: true });
  await cluster.until(() => cluster.store.nodes.membership.isDown(3), {
    stepMs: HEARTBEAT_INTERVAL_MS,
    timeoutMs: 3 * HEARTBEAT_INTERVAL_MS,
  });
  assert.match(cluster.logged.join("\n"), /rank 3: Disk of rank 3 failed: "\/rank-3" is gone/);
  for (let i = 0; i < 4; i++) {
    const data = bytesOf(MiB + i, 200 + i);
    files.set(`after-${i}`, data);
    const meta = await cluster.store.put(`after-${i}`, data);
    assert.ok(meta.chunks.every((c) => !c.ranks.includes(3)), "new chunks go elsewhere");
  }
  await cluster.until(() => cluster.store.nodes.membership.stateOf(3) === "down", {
    stepMs: RESTART_BACKOFF_MS,
  });
  const status = await cluster.store.status();
  const rank3 = status.ranks.find((r) => r.rank === 3)!;
  assert.equal(rank3.state, "down");
  assert.match(rank3.reason ?? "", /"\/rank-3" is gone/);
  assert.ok(status.underReplicatedChunks > 0);
  await cluster.until(
    () => /rank 3 stays down: \d+ chunk replicas copied/.test(cluster.logged.join("\n")),
    {
      stepMs: RESTART_BACKOFF_MS,
    },
  );
  assert.equal((await cluster.store.status()).underReplicatedChunks, 0);
  for (const name of files.keys()) {
    const meta = await cluster.store.meta(name);
    assert.ok(meta.chunks.every((c) => c.ranks.length === 2 && !c.ranks.includes(3)), name);
  }
  assert.doesNotMatch(cluster.logged.join("\n"), /could not/, "nothing is sent to the down node");
  await assertFiles(cluster, files);
});

Deno.test("an I/O error on a node's disk fails the node at once; puts succeed on the others, the one that met it too", async () => {
  await using cluster = await MemoryCluster.start();
  await fill(cluster, 2);
  // Fail every write of rank 1's chunks from now on (the disk is gone bad).
  for (let i = 0; i < 64; i++) cluster.disk(1).failNext("/rank-1/chunks", "write", "EIO");
  const puts = [];
  for (let i = 0; i < 6; i++) {
    puts.push(
      await cluster.store.put(`x${i}`, bytesOf(2 * MiB, i)).then(() => "ok", (e) => e.code),
    );
  }
  assert.ok(cluster.store.nodes.membership.isDown(1), "marked down by the failed call");
  assert.deepEqual(puts, Array(6).fill("ok"), "the put that met it too: its replica moved");
  for (let i = 0; i < 6; i++) {
    const meta = await cluster.store.meta(`x${i}`);
    assert.ok(meta.chunks.every((c) => c.ranks.length === 2 && !c.ranks.includes(1)));
    assert.deepEqual(await readAll(cluster.store, `x${i}`), bytesOf(2 * MiB, i));
  }
  assert.match(cluster.logged.join("\n"), /Disk of rank 1 failed: .*Input\/output error/);
});

Deno.test("a log cut while the node runs fails it at the next fsck; the restart is reconciled and a second fsck finds nothing", async () => {
  await using cluster = await MemoryCluster.start();
  const files = await fill(cluster, 16);
  {
    using log = await cluster.disk(2).open(logOf(2), { write: true });
    await log.truncate(100);
  }
  const fsck = cluster.store.fsck();
  let checked = false; // the fsck notices the node is back at a later step of the clock
  fsck.then(() => (checked = true), () => (checked = true));
  await cluster.until(
    () =>
      checked && !cluster.store.nodes.membership.isDown(2) &&
      cluster.logged.some((l) => /rank 2 is back/.test(l)),
    {
      stepMs: 100,
    },
  );
  const first = await fsck;
  assert.ok(first.logs?.some((l) => l.rank === 2 && l.missingBytes > 0), "the cut is found");
  assert.deepEqual([first.underReplicated, first.lost], [[], []]);
  const second = await cluster.store.fsck();
  assert.deepEqual(
    [second.healthy, second.repaired, second.underReplicated, second.lost],
    [files.size, [], [], []],
    "the repair stuck",
  );
  await assertFiles(cluster, files);
});

Deno.test("bytes flipped in a log while the node runs are found by fsck and rewritten; nothing is lost at the next start", async () => {
  let cluster = await MemoryCluster.start();
  const files = await fill(cluster, 16);
  const offsets = await recordOffsets(cluster.disk(2), logOf(2));
  for (const at of offsets.slice(2, 5)) await flipByte(cluster.disk(2), logOf(2), at + 12);
  await settle(cluster);
  try {
    const fsck = await cluster.store.fsck();
    const check = fsck.logs?.find((l) => l.rank === 2);
    assert.ok(check && check.damagedRegions > 0 && check.rewritten, JSON.stringify(check));
    assert.equal((await cluster.store.status()).metadata?.logsRewritten, 1);
    // The node holds only where each record is: those damaged are dropped, the other replicas
    // keep their files.
    assert.match(
      cluster.logged.join("\n"),
      /rank 2: the log record of .* is damaged; it is dropped/,
    );
    cluster = await restart(cluster);
    assert.doesNotMatch(cluster.logged.join("\n"), /damaged/);
    assert.deepEqual(cluster.recovery.missing, []);
    await assertHealthy(cluster, files.size);
    await assertFiles(cluster, files);
  } finally {
    await cluster.close();
  }
});

Deno.test("the scrubber checks the metadata too: a damaged log is found and rewritten in the background", async () => {
  await using cluster = await MemoryCluster.start();
  await fill(cluster, 8);
  const offsets = await recordOffsets(cluster.disk(3), logOf(3));
  await flipByte(cluster.disk(3), logOf(3), offsets[3] + 12);
  const stop = new AbortController();
  const scrub = cluster.store.integrity.scrub({
    bytesPerSec: 1024 * MiB,
    pauseMs: 60_000,
    signal: stop.signal,
  });
  await cluster.until(() => cluster.store.integrity.scrubbed.passes > 0, { stepMs: 10 });
  stop.abort();
  await scrub;
  const { metadata } = await cluster.store.status();
  assert.deepEqual([metadata?.damagedRegions, metadata?.logsRewritten], [1, 1]);
  assert.match(cluster.logged.join("\n"), /rank 3: a check of its log found 1 damaged region/);
  const check = await (await cluster.node(3)).handle({ op: "verifyLog" });
  assert.deepEqual((check as { damagedRegions: number }).damagedRegions, 0, "the rewrite stuck");
});

Deno.test("a file whose every replica is gone at start is said lost and counted in status", async () => {
  let cluster = await MemoryCluster.start();
  const files = await fill(cluster, 2);
  const holder = (await cluster.store.meta("big-a")).chunks[0].ranks[0];
  const manifests = manifestsIn(await (await cluster.node(holder)).scan());
  const doomed = manifests.find((m) => m.name === "big-a")!;
  await cluster.close();
  for (const rank of doomed.chunks[0].ranks) {
    await cluster.disk(rank).remove(blobPath(rank, doomed.chunks[0].id));
  }
  cluster = await restart(cluster);
  try {
    assert.match(
      cluster.logged.join("\n"),
      new RegExp(
        `"big-a" version ${doomed.version} has a chunk with no replica left; the file is lost`,
      ),
    );
    assert.equal((await cluster.store.status()).lostFiles, 1);
    files.delete("big-a");
    await assertHealthy(cluster, files.size);
    await assertFiles(cluster, files);
  } finally {
    await cluster.close();
  }
});
