/**
 * Recovery on the in-process cluster: reconciling a node that was down while files changed,
 * re-replicating what a node that stays down held, and start-up after every node crashed in the
 * middle of an upload.
 */

import assert from "node:assert/strict";
import { manifestsIn } from "../testing/manifests.ts";
import { MemoryCluster } from "../testing/memory_cluster.ts";
import { blobsOn, bytesOf, MiB, readAll, settle } from "../testing/cluster_helpers.ts";
import { RESTART_BACKOFF_MS } from "./supervisor.ts";
import { readSummary } from "./recovery.ts";
import type { SummaryPage } from "../common/node_protocol.ts";

Deno.test("a node down while files are overwritten and removed is reconciled: nothing stale comes back", async () => {
  await using cluster = await MemoryCluster.start();
  const files = new Map<string, Uint8Array>();
  for (let i = 0; i < 4; i++) {
    files.set(`f${i}`, bytesOf(2 * MiB + i, i));
    await cluster.store.put(`f${i}`, files.get(`f${i}`)!);
  }
  await cluster.store.put("doomed", bytesOf(MiB, 9));
  cluster.keepDown(1);
  cluster.crash(1);
  files.set("f0", bytesOf(3 * MiB, 20));
  await cluster.store.put("f0", files.get("f0")!);
  await cluster.store.remove("doomed");
  await cluster.store.rename("f1", "f1-moved");
  files.set("f1-moved", files.get("f1")!);
  files.delete("f1");
  cluster.allowStart(1);
  await cluster.until(() => !cluster.store.nodes.membership.isDown(1), {
    stepMs: RESTART_BACKOFF_MS,
  });
  await settle(cluster);
  assert.match(cluster.logged.join("\n"), /rank 1 is back \(\d+ stale chunks dropped/);
  assert.deepEqual((await cluster.store.list()).map((e) => e.name), [...files.keys()].sort());
  for (const [name, data] of files) assert.deepEqual(await readAll(cluster.store, name), data);
  // Rank 1 holds exactly the manifests of current files it has chunks of, and their blobs only.
  const scan = await (await cluster.node(1)).scan();
  for (const m of manifestsIn(scan)) {
    const current = await cluster.store.meta(m.name);
    assert.equal(m.version, current.version, `${m.name} on rank 1 is current`);
  }
  const fsck = await cluster.store.fsck();
  assert.deepEqual([fsck.healthy, fsck.underReplicated, fsck.lost], [files.size, [], []]);
  const expectedBlobs = new Set(
    manifestsIn(scan).flatMap((m) => m.chunks.map((c) => c.id.slice(0, 32))),
  );
  assert.deepEqual(await blobsOn(cluster, 1), [...expectedBlobs].sort());
});

Deno.test("a node that missed only overwrites and removals is reconciled from its summary, then sent the releases it missed", async () => {
  await using cluster = await MemoryCluster.start();
  const files = new Map<string, Uint8Array>();
  for (let i = 0; i < 6; i++) {
    // Large files (blobs) and small ones (kept in the log).
    files.set(`f${i}`, i % 2 === 0 ? bytesOf(MiB + i, i) : bytesOf(100 + i, i));
    await cluster.store.put(`f${i}`, files.get(`f${i}`)!);
  }
  await cluster.store.put("doomed", bytesOf(MiB, 9));
  await cluster.store.put("doomed-small", bytesOf(10, 9));
  const heldBefore = (await blobsOn(cluster, 1)).length;
  assert.ok(heldBefore > 0, "rank 1 holds blobs to begin with");
  cluster.keepDown(1);
  cluster.crash(1);
  for (const name of ["f0", "f1"]) {
    files.set(name, bytesOf(MiB + 7, 30));
    await cluster.store.put(name, files.get(name)!);
  }
  await cluster.store.remove("doomed");
  await cluster.store.remove("doomed-small");
  cluster.allowStart(1);
  await cluster.until(() => !cluster.store.nodes.membership.isDown(1), {
    stepMs: RESTART_BACKOFF_MS,
  });
  await settle(cluster);
  assert.match(
    cluster.logged.join("\n"),
    /rank 1 is back \(0 stale chunks dropped, 0 restored, checked against its summary\)/,
  );
  for (const [name, data] of files) assert.deepEqual(await readAll(cluster.store, name), data);
  // Once the releases it missed are through, rank 1 holds the current files placed on it only.
  await cluster.clock.advance(100);
  const scan = await (await cluster.node(1)).scan();
  assert.ok(manifestsIn(scan).length > 0, "rank 1 holds files");
  for (const m of manifestsIn(scan)) {
    const current = await cluster.store.meta(m.name);
    assert.equal(m.version, current.version, `${m.name} on rank 1 is current`);
  }
  assert.ok((await blobsOn(cluster, 1)).length < heldBefore, "the stale blobs went");
  const fsck = await cluster.store.fsck();
  assert.deepEqual([fsck.healthy, fsck.underReplicated, fsck.lost], [files.size, [], []]);
});

Deno.test("a node whose disk was replaced while down gets every chunk back from the other replicas", async () => {
  await using cluster = await MemoryCluster.start();
  const data = bytesOf(4 * MiB, 1);
  await cluster.store.put("f", data);
  await cluster.store.put("small", bytesOf(500, 2));
  cluster.keepDown(2);
  cluster.crash(2);
  await cluster.disk(2).remove("/rank-2", { recursive: true });
  await cluster.disk(2).mkdir("/rank-2"); // the new disk, mounted where the old one was
  cluster.allowStart(2);
  await cluster.until(() => !cluster.store.nodes.membership.isDown(2), {
    stepMs: RESTART_BACKOFF_MS,
  });
  assert.match(
    cluster.logged.join("\n"),
    /rank 2 is back \(0 stale chunks dropped, [1-9]\d* restored\)/,
  );
  const fsck = await cluster.store.fsck();
  assert.deepEqual([fsck.healthy, fsck.repaired, fsck.lost], [2, [], []]);
  assert.deepEqual(await readAll(cluster.store, "f"), data);
});

Deno.test("a node that stays down has its replicas copied to live nodes", async () => {
  await using cluster = await MemoryCluster.start({ ranks: 5, rereplicateAfterMs: 5_000 });
  const files = new Map<string, Uint8Array>();
  for (let i = 0; i < 5; i++) {
    files.set(`r${i}`, bytesOf(3 * MiB + i, 40 + i));
    await cluster.store.put(`r${i}`, files.get(`r${i}`)!);
  }
  await cluster.store.put("tiny", bytesOf(10, 1));
  files.set("tiny", bytesOf(10, 1));
  cluster.keepDown(2);
  cluster.crash(2);
  await settle(cluster);
  assert.ok((await cluster.store.status()).underReplicatedChunks > 0);
  await cluster.until(() =>
    /rank 2 stays down: \d+ chunk replicas copied/.test(cluster.logged.join("\n"))
  );
  for (const [name, data] of files) {
    for (const c of (await cluster.store.meta(name)).chunks) {
      assert.equal(new Set(c.ranks).size, 2, `${name}: two replicas`);
      assert.ok(!c.ranks.includes(2), `${name}: nothing left on the lost rank`);
    }
    assert.deepEqual(await readAll(cluster.store, name), data);
  }
  const fsck = await cluster.store.fsck();
  assert.deepEqual([fsck.healthy, fsck.underReplicated, fsck.lost], [files.size, [], []]);
  assert.equal((await cluster.store.status()).underReplicatedChunks, 0);

  // When the node is back, its stale replicas are dropped.
  cluster.allowStart(2);
  await cluster.until(() => !cluster.store.nodes.membership.isDown(2), {
    stepMs: RESTART_BACKOFF_MS,
  });
  await settle(cluster);
  assert.deepEqual(await blobsOn(cluster, 2), []);
  assert.equal((await cluster.store.fsck()).healthy, files.size);
});

Deno.test("every node crashes in the middle of an upload: after the restart only committed files exist", async () => {
  const cluster = await MemoryCluster.start({ seed: 8 });
  const kept = bytesOf(2 * MiB, 1);
  const keptMeta = await cluster.store.put("kept", kept);
  const upload = cluster.store.beginUpload("half", { size: 4 * MiB });
  await upload.write(bytesOf(MiB, 2));
  await upload.write(bytesOf(MiB, 3));
  await settle(cluster);
  const disks = cluster.disks;
  await cluster.close();
  for (const disk of disks.values()) disk.crash();
  await using again = await MemoryCluster.start({ seed: 8, disks });
  assert.deepEqual((await again.store.list()).map((e) => e.name), ["kept"]);
  assert.deepEqual(await readAll(again.store, "kept"), kept);
  // The half upload's blobs were removed at start-up.
  const blobs = (await Promise.all([1, 2, 3].map((r) => blobsOn(again, r)))).flat();
  const holders = new Set(keptMeta.chunks.flatMap((c) => c.ranks));
  assert.equal(blobs.length, holders.size, "only the kept file's blob, on each node holding it");
});

Deno.test("a restart that reads every manifest joins scans sent in pieces", async () => {
  // Pieces of 100 bytes: each node's scan comes as dozens of them.
  const options = { seed: 9, scanPageBytes: 100 };
  const cluster = await MemoryCluster.start(options);
  const files = new Map<string, Uint8Array>();
  for (let i = 0; i < 30; i++) files.set(`pieces/${"n".repeat(40)}${i}`, bytesOf(100 + i, i));
  files.set("pieces/big", bytesOf(MiB, 99));
  for (const [name, data] of files) await cluster.store.put(name, data);
  const [lostOn] = (await cluster.store.meta("pieces/big")).chunks[0].ranks;
  await settle(cluster);
  const [blob] = await blobsOn(cluster, lostOn); // the small files are in the nodes' logs
  const disks = cluster.disks;
  await cluster.close();
  // A replica gone: the summaries disagree, and start-up reads every node's whole scan.
  await disks.get(lostOn)!.remove(`/rank-${lostOn}/chunks/${blob}`);
  await using again = await MemoryCluster.start({ ...options, disks });
  assert.deepEqual(again.recovery.missing.map((m) => [m.name, m.rank]), [["pieces/big", lostOn]]);
  assert.deepEqual(
    (await again.store.list("pieces/")).map((e) => e.name),
    [...files.keys()].sort(),
  );
  for (const [name, data] of files) assert.deepEqual(await readAll(again.store, name), data);
});

Deno.test("a summary's next page is asked for before the page in hand is read; reading stops where add() says", async () => {
  const totals = {
    count: 3,
    others: 0,
    othersSum: 0,
    allPresent: true,
    strayBlobs: [],
    bytesHeld: 0,
    opened: { damagedRegions: 0, damagedBytes: 0, tailCutBytes: 0, created: false },
  };
  // Pages read are freed (their buffers detached): each read gets pages of its own.
  let pages: SummaryPage[] = [];
  const newPages = () =>
    pages = [0, 1, 2].map((i) => ({
      rank: 1,
      manifests: new Uint8Array([i]),
      ...(i === 2 ? { totals } : {}),
    }));
  const events: string[] = [];
  let asked = 0;
  const next = () => {
    events.push(`ask ${++asked}`);
    return Promise.resolve(pages[asked]);
  };
  const add = (manifests: Uint8Array) => (events.push(`read ${manifests[0]}`), true);
  assert.deepEqual(await readSummary(newPages()[0], next, add), totals);
  assert.deepEqual(events, ["ask 1", "read 0", "ask 2", "read 1", "read 2"]);
  assert.deepEqual(pages.map((page) => page.manifests.length), [0, 0, 0]);

  // add() stops at the second page: its totals are not reached, the page asked for is left.
  events.length = asked = 0;
  const stopAt1 = (
    manifests: Uint8Array,
  ) => (events.push(`read ${manifests[0]}`), manifests[0] < 1);
  assert.equal(await readSummary(newPages()[0], next, stopAt1), undefined);
  assert.deepEqual(events, ["ask 1", "read 0", "ask 2", "read 1"]);

  // A page that fails to come fails the read; one left unread fails nothing.
  const failing = () => Promise.reject(new Error("node gone"));
  await assert.rejects(readSummary(newPages()[0], failing, () => true), /node gone/);
  assert.equal(await readSummary(newPages()[0], failing, () => false), undefined);
});
