/**
 * Rank 0's namespace and data path on the in-process cluster (`ranks/testing/`): commits,
 * overwrites, renames, removals, pins and releases, and what survives a crash of every node.
 */

import assert from "node:assert/strict";
import { manifestsIn } from "../testing/manifests.ts";
import { assertDfsError } from "../../tests/_assert.ts";
import { MemoryCluster } from "../testing/memory_cluster.ts";
import { blobsOn, bytesOf, MiB, readAll, settle } from "../testing/cluster_helpers.ts";

/** The manifests every data node holds for `name`, by rank. */
async function manifestsOf(cluster: MemoryCluster, name: string) {
  const held = new Map<number, number[]>();
  for (const rank of cluster.store.nodes.dataRanks) {
    const scan = await (await cluster.node(rank)).scan();
    const versions = manifestsIn(scan).filter((m) => m.name === name).map((m) => m.version);
    if (versions.length > 0) held.set(rank, versions);
  }
  return held;
}

Deno.test("a put is durable on every replica when it is acknowledged: all disks crash, nothing acknowledged is lost", async () => {
  const cluster = await MemoryCluster.start({ seed: 3 });
  const big = bytesOf(3 * MiB + 17, 1);
  const small = bytesOf(1000, 2);
  const bigMeta = await cluster.store.put("big", big);
  await cluster.store.put("small", small);
  assert.deepEqual(bigMeta.chunks.map((c) => c.ranks.length), [2, 2, 2, 2]);
  const disks = cluster.disks;
  await cluster.close();
  for (const disk of disks.values()) disk.crash(); // whatever was not synced is gone
  await using again = await MemoryCluster.start({ seed: 3, disks });
  assert.deepEqual(await readAll(again.store, "big"), big);
  assert.deepEqual(await readAll(again.store, "small"), small);
  assert.equal((await again.store.meta("big")).version, bigMeta.version);
  assert.deepEqual(again.recovery.damaged, []);
});

Deno.test("concurrent overwrites of one name: the highest version wins and the others are released", async () => {
  await using cluster = await MemoryCluster.start();
  const contents = [0, 1, 2, 3, 4, 5].map((i) => bytesOf(MiB + 1000 * i, 10 + i));
  const metas = await Promise.all(contents.map((data) => cluster.store.put("same", data)));
  const winner = metas.reduce((a, b) => (a.version > b.version ? a : b));
  const current = await cluster.store.meta("same");
  assert.equal(current.version, winner.version);
  const read = await readAll(cluster.store, "same");
  assert.equal(read.length, winner.size);
  assert.deepEqual(read, contents[metas.indexOf(winner)]);
  await settle(cluster);
  // Every node holding the file keeps only the winning version, and one blob for it.
  const held = await manifestsOf(cluster, "same");
  assert.ok(held.size >= 2);
  for (const [rank, versions] of held) {
    assert.deepEqual(versions, [winner.version], `rank ${rank}`);
    assert.equal((await blobsOn(cluster, rank)).length, 1, `rank ${rank} blobs`);
  }
  const usage = await cluster.store.usage();
  assert.deepEqual(usage, { files: 1, bytes: winner.size, storedBytes: 2 * winner.size });
});

Deno.test("rename moves the bytes at once, refuses an existing target without force, and releases a replaced one", async () => {
  await using cluster = await MemoryCluster.start();
  const a = bytesOf(2 * MiB, 1);
  const b = bytesOf(5000, 2);
  await cluster.store.put("a", a);
  await cluster.store.put("b", b);
  const moved = await cluster.store.rename("a", "c");
  assert.equal(moved.name, "c");
  assert.deepEqual(await readAll(cluster.store, "c"), a);
  await assertDfsError(cluster.store.meta("a"), "NOT_FOUND", /Cannot find "a"/);
  await assertDfsError(
    cluster.store.rename("c", "b"),
    "ALREADY_EXISTS",
    /Cannot move "c" to "b": "b" exists/,
  );
  await cluster.store.rename("c", "b", { force: true });
  assert.deepEqual(await readAll(cluster.store, "b"), a);
  assert.deepEqual((await cluster.store.list()).map((e) => e.name), ["b"]);
  await settle(cluster);
  const held = await manifestsOf(cluster, "b");
  for (const versions of held.values()) assert.equal(versions.length, 1, "old b is released");
  assert.deepEqual(await cluster.store.usage(), {
    files: 1,
    bytes: a.length,
    storedBytes: 2 * a.length,
  });
});

Deno.test("remove writes a tombstone everywhere: the file stays gone after every node restarts", async () => {
  const cluster = await MemoryCluster.start({ seed: 5 });
  await cluster.store.put("keep", bytesOf(100, 1));
  await cluster.store.put("gone", bytesOf(2 * MiB, 2));
  await cluster.store.remove("gone");
  await assertDfsError(cluster.store.remove("gone"), "NOT_FOUND", /"gone"/);
  await settle(cluster);
  for (const rank of cluster.store.nodes.dataRanks) {
    assert.deepEqual(await blobsOn(cluster, rank), [], `rank ${rank} keeps no blob of it`);
  }
  const disks = cluster.disks;
  await cluster.close();
  await using again = await MemoryCluster.start({ seed: 5, disks });
  assert.deepEqual((await again.store.list()).map((e) => e.name), ["keep"]);
  await assertDfsError(again.store.meta("gone"), "NOT_FOUND", /"gone"/);
});

Deno.test("removePrefix removes every name under the prefix and counts them", async () => {
  await using cluster = await MemoryCluster.start();
  for (const name of ["p/1", "p/2", "p/3", "q/1"]) await cluster.store.put(name, bytesOf(10, 1));
  assert.equal(await cluster.store.removePrefix("p/"), 3);
  assert.deepEqual((await cluster.store.list()).map((e) => e.name), ["q/1"]);
});

Deno.test("a reader keeps the version it opened through an overwrite; it is released when the reader closes", async () => {
  await using cluster = await MemoryCluster.start();
  const old = bytesOf(3 * MiB, 1);
  const fresh = bytesOf(MiB, 2);
  const first = await cluster.store.put("f", old);
  const reader = cluster.store.openRead("f");
  await cluster.store.put("f", fresh);
  await settle(cluster);
  // Both versions are held while the reader is open.
  const during = await manifestsOf(cluster, "f");
  assert.ok([...during.values()].some((v) => v.includes(first.version)), "old version pinned");
  const parts: Uint8Array[] = [];
  for await (const chunk of reader.chunks()) {
    parts.push(chunk.slice());
    reader.recycle(chunk);
  }
  reader.close();
  assert.deepEqual(new Uint8Array(await new Blob(parts as BlobPart[]).arrayBuffer()), old);
  await settle(cluster);
  const after = await manifestsOf(cluster, "f");
  for (const versions of after.values()) assert.ok(!versions.includes(first.version), "released");
  assert.deepEqual(await readAll(cluster.store, "f"), fresh);
});

Deno.test("an upload that is aborted or fails leaves no chunk behind", async () => {
  await using cluster = await MemoryCluster.start();
  const upload = cluster.store.beginUpload("x", { size: 3 * MiB });
  await upload.write(bytesOf(MiB, 1));
  await upload.write(bytesOf(MiB, 2));
  await upload.abort();
  await assertDfsError(
    cluster.store.put("y", [bytesOf(10, 1)], { size: 11 }),
    "INVALID_REQUEST",
    /ended after 10 of its declared 11 bytes/,
  );
  await settle(cluster);
  for (const rank of cluster.store.nodes.dataRanks) {
    assert.deepEqual(await blobsOn(cluster, rank), [], `rank ${rank}`);
  }
  assert.deepEqual(await cluster.store.list(), []);
  assert.deepEqual((await cluster.store.capacity()).map((c) => c.bytesHeld), [0, 0, 0]);
});

Deno.test("a put asks for 1 to the number of data nodes replicas", async () => {
  await using cluster = await MemoryCluster.start();
  const three = await cluster.store.put("three", bytesOf(2 * MiB, 1), { replicas: 3 });
  assert.deepEqual(three.chunks.map((c) => [...c.ranks].sort()), [[1, 2, 3], [1, 2, 3]]);
  await assertDfsError(
    cluster.store.put("four", bytesOf(10, 1), { replicas: 4 }),
    "INVALID_REQUEST",
    /Cannot keep 4 replicas: there are 3 data nodes/,
  );
});

Deno.test("chunks go to the data nodes holding the least", async () => {
  await using cluster = await MemoryCluster.start({ ranks: 5 });
  await cluster.store.put("a", bytesOf(4 * MiB, 1));
  const held = (await cluster.store.capacity()).map((c) => c.bytesHeld);
  assert.deepEqual(held, [2 * MiB, 2 * MiB, 2 * MiB, 2 * MiB]);
});

Deno.test("over a transport that serializes, no chunk is echoed back and no buffer is lent", async () => {
  await using cluster = await MemoryCluster.start({ movesBuffers: false });
  const seen = { writeAnswers: [] as unknown[], lent: 0 };
  cluster.network.drop((packet) => {
    const body = packet.body as { call?: { op?: string; into?: unknown }; ok?: unknown };
    if (body.call?.op === "read" && body.call.into !== undefined) seen.lent++;
    if (packet.source !== 0 && "ok" in body) seen.writeAnswers.push(body.ok);
    return false; // only watching
  });
  const data = bytesOf(3 * MiB, 9);
  await cluster.store.put("f", data);
  assert.deepEqual(await readAll(cluster.store, "f"), data);
  assert.equal(seen.lent, 0);
  assert.ok(!seen.writeAnswers.some((a) => a instanceof ArrayBuffer), "no buffer came back");
});

Deno.test("over a transport that moves buffers, written chunks come back to the pool", async () => {
  await using cluster = await MemoryCluster.start({ movesBuffers: true });
  const pool = cluster.store.pool;
  for (let i = 0; i < 4; i++) await cluster.store.put(`f${i}`, bytesOf(4 * MiB, i));
  assert.ok(pool.idle > 0, "buffers came back");
  assert.ok(pool.allocated <= 16, `allocated ${pool.allocated}`);
});

Deno.test("a file's attributes are committed with it, kept by rename and by a restart, and checked", async () => {
  const cluster = await MemoryCluster.start({ seed: 5 });
  const attrs = {
    "content-type": "text/plain; charset=utf-8",
    etag: "0123abcd",
    "x-amz-meta-é": "no",
  };
  const upload = cluster.store.beginUpload("with-attrs");
  await upload.write(bytesOf(100, 1));
  await assertDfsError(
    upload.commit({ attrs }),
    "INVALID_REQUEST",
    /Attribute name "x-amz-meta-é"/,
  );
  await assertDfsError(cluster.store.meta("with-attrs"), "NOT_FOUND", /with-attrs/);

  const good = {
    "content-type": "text/plain; charset=utf-8",
    etag: "0123abcd",
    "meta-note": "a\tb",
  };
  const again = cluster.store.beginUpload("with-attrs");
  await again.write(bytesOf(100, 1));
  assert.deepEqual((await again.commit({ attrs: good })).attrs, good);
  assert.deepEqual((await cluster.store.meta("with-attrs")).attrs, good);
  await cluster.store.rename("with-attrs", "moved");
  assert.deepEqual((await cluster.store.meta("moved")).attrs, good);
  await cluster.store.put("plain", bytesOf(10, 2));
  assert.equal((await cluster.store.meta("plain")).attrs, undefined);

  const big = cluster.store.beginUpload("too-big");
  await big.write(bytesOf(10, 3));
  await assertDfsError(
    big.commit({ attrs: { a: "x".repeat(9000) } }),
    "INVALID_REQUEST",
    /over the limit of 8192/,
  );

  const disks = cluster.disks;
  await cluster.close();
  await using restarted = await MemoryCluster.start({ seed: 5, disks });
  assert.deepEqual((await restarted.store.meta("moved")).attrs, good);
});

/** Names `n` of `prefix` numbered from 0, padded so that they sort by number. */
const numbered = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(4, "0")}`);

Deno.test("list merges the nodes' pages with a cursor and stays consistent while puts and removes go on", async () => {
  await using cluster = await MemoryCluster.start({ listFetchEntries: 3 });
  const names = numbered("l/", 120);
  for (const name of names) await cluster.store.put(name, bytesOf(10, 1));
  await cluster.store.put("l/0007", bytesOf(20, 2)); // a newer version on other nodes, maybe
  await cluster.store.remove("l/0011");
  const stays = names.filter((_, i) => i % 4 !== 0 && i !== 11); // present throughout
  let listed: string[] | undefined;
  const listing = (async () => {
    const pages: string[] = [];
    for await (const page of cluster.store.listPages("l/")) pages.push(...page.map((e) => e.name));
    listed = pages;
  })();
  const changed: string[] = [];
  for (let i = 0; listed === undefined; i++) {
    if (i % 2 === 0) await cluster.store.put(`l/${String(i).padStart(4, "0")}+`, bytesOf(5, 3));
    else await cluster.store.remove(names[4 * (i % 30)]);
    changed.push(String(i));
  }
  await listing;
  assert.ok(changed.length >= 3, `puts and removes ran during the listing (${changed.length})`);
  for (let i = 1; i < listed!.length; i++) assert.ok(listed![i - 1] < listed![i], "sorted, once");
  assert.deepEqual(stays.filter((name) => !listed!.includes(name)), [], "nothing skipped");
  assert.ok(!listed!.includes("l/0011"), "a name removed before the listing is not listed");
  const now = await cluster.store.list("l/");
  assert.deepEqual(now.find((e) => e.name === "l/0007")?.size, 20, "the newest version wins");
  // Paging with after and limit gives the same names as one listing.
  const paged: string[] = [];
  let after: string | undefined;
  while (true) {
    const page = await cluster.store.list("l/", { after, limit: 7 });
    paged.push(...page.map((e) => e.name));
    if (page.length < 7) break;
    after = page[6].name;
  }
  assert.deepEqual(paged, now.map((e) => e.name));
});

Deno.test("list answers from rank 0's index while a node is down, and from it too once one goes down mid-listing", async () => {
  await using cluster = await MemoryCluster.start({ listFetchEntries: 2 });
  // One replica each: a name is on one node only, which a listing of the live nodes would miss.
  const names = numbered("o/", 40);
  for (const name of names) await cluster.store.put(name, bytesOf(10, 1), { replicas: 1 });
  const node = await cluster.node(2);
  let asked = 0;
  const list = node.list.bind(node);
  node.list = (prefix, options) => {
    if (++asked === 4) {
      cluster.keepDown(2);
      cluster.crash(2); // its answer to this call is lost with it
    }
    return list(prefix, options);
  };
  assert.deepEqual((await cluster.store.list("o/")).map((e) => e.name), names);
  assert.ok(asked >= 4, "the node was asked until it crashed");
  assert.ok(cluster.store.nodes.membership.isDown(2));
  assert.deepEqual((await cluster.store.list("o/")).map((e) => e.name), names, "from the index");
  assert.deepEqual(
    (await cluster.store.list("o/", { after: "o/0009", limit: 3 })).map((e) => e.name),
    ["o/0010", "o/0011", "o/0012"],
  );
});
