/**
 * `compose`: files joined into one by their chunks, without a byte copied (an S3 multipart
 * upload's completion), on the in-process cluster: the bytes, the sources, the blobs, and what
 * survives a crash of every node and a later overwrite.
 */

import { concatBytes } from "../../protocol/bytes.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { assertDfsError } from "../../tests/_assert.ts";
import { MemoryCluster } from "../testing/memory_cluster.ts";
import { blobsOn, bytesOf, MiB, readAll, settle } from "../testing/cluster_helpers.ts";

/** Every node's blob files, by rank. */
async function allBlobs(cluster: MemoryCluster): Promise<Map<number, string[]>> {
  const blobs = new Map<number, string[]>();
  for (const rank of cluster.store.nodes.dataRanks) blobs.set(rank, await blobsOn(cluster, rank));
  return blobs;
}

// Sources of every kind: several chunks, exactly one chunk, small ones kept in the nodes' logs,
// an empty one, and one just past the size kept in a log.
const SIZES = [2 * MiB + 5, MiB, 100, 0, 70 * 1024, 1];

Deno.test("compose joins files without copying: the bytes read back whole, the sources are gone, and a crash of every node keeps it", async () => {
  const cluster = await MemoryCluster.start({ seed: 7 });
  const parts = SIZES.map((size, i) => bytesOf(size, 100 + i));
  const sources = [];
  for (const [i, part] of parts.entries()) {
    const meta = await cluster.store.put(`.up/part-${i}`, part);
    sources.push({ name: meta.name, version: meta.version });
  }
  const blobsBefore = await allBlobs(cluster);
  const whole = concatBytes(parts);
  const attrs = { etag: "abc-6", "content-type": "text/plain" };
  const meta = await cluster.store.compose("bucket/whole", sources, { attrs });

  assert.equal(meta.size, whole.length);
  assert.equal(meta.sha256, createHash("sha256").update(whole).digest("hex"));
  assert.deepEqual(meta.attrs, attrs);
  assert.deepEqual(await readAll(cluster.store, "bucket/whole"), whole);
  assert.deepEqual(
    await readAll(cluster.store, "bucket/whole", { start: 2 * MiB, end: 3 * MiB + 50 }),
    whole.subarray(2 * MiB, 3 * MiB + 50),
  );
  for (const { name } of sources) {
    await assertDfsError(cluster.store.meta(name), "NOT_FOUND", /does not exist/);
  }
  assert.deepEqual((await cluster.store.list()).map((e) => e.name), ["bucket/whole"]);
  await settle(cluster);
  // No byte moved: every blob is where it was, none made, none deleted.
  assert.deepEqual(await allBlobs(cluster), blobsBefore);
  const usage = await cluster.store.usage();
  assert.deepEqual(usage, { files: 1, bytes: whole.length, storedBytes: 2 * whole.length });

  const disks = cluster.disks;
  await cluster.close();
  for (const disk of disks.values()) disk.crash();
  // The restart rewrites each node's log (the sources' tombstones go): the small sources' bytes,
  // kept in the logs, travel with the composed file.
  {
    await using again = await MemoryCluster.start({ seed: 7, disks });
    assert.deepEqual(again.recovery.damaged, []);
    assert.deepEqual(again.recovery.missing, []);
    assert.deepEqual(await readAll(again.store, "bucket/whole"), whole);
    assert.deepEqual((await again.store.list()).map((e) => e.name), ["bucket/whole"]);
    // Overwritten, the composed file's chunks (every source's) are released.
    await again.store.put("bucket/whole", bytesOf(10, 1));
    await settle(again);
    for (const [rank, blobs] of await allBlobs(again)) assert.deepEqual(blobs, [], `rank ${rank}`);
  }
  // And once more: the log as rewritten replays to the same state.
  await using third = await MemoryCluster.start({ seed: 7, disks });
  assert.deepEqual(await readAll(third.store, "bucket/whole"), bytesOf(10, 1));
});

Deno.test("a composed file's chunks kept in a log survive the log's compaction and a restart", async () => {
  const disks = await (async () => {
    await using cluster = await MemoryCluster.start({ seed: 8 });
    const a = await cluster.store.put("a", bytesOf(300, 1));
    const b = await cluster.store.put("b", bytesOf(MiB + 3, 2));
    const c = await cluster.store.put("c", bytesOf(5, 3));
    await cluster.store.compose("abc", [a, b, c].map(({ name, version }) => ({ name, version })));
    return cluster.disks;
  })();
  await using again = await MemoryCluster.start({ seed: 8, disks });
  const whole = concatBytes([bytesOf(300, 1), bytesOf(MiB + 3, 2), bytesOf(5, 3)]);
  assert.deepEqual(await readAll(again.store, "abc"), whole);
  const report = await again.store.fsck();
  assert.deepEqual(report.lost, []);
  assert.deepEqual(report.repaired, []);
  assert.equal(report.healthy, 1);
});

Deno.test("a compose whose source changed or is named twice fails and changes nothing", async () => {
  await using cluster = await MemoryCluster.start();
  const a = await cluster.store.put("a", bytesOf(MiB + 1, 1));
  const b = await cluster.store.put("b", bytesOf(200, 2));
  const stale = { name: "b", version: b.version };
  await cluster.store.put("b", bytesOf(300, 3)); // overwritten: `stale` is no longer current
  const sources = [{ name: "a", version: a.version }, stale];
  await assertDfsError(cluster.store.compose("ab", sources), "VERSION_MISMATCH", /"b"/);
  const current = await cluster.store.meta("b");
  await assertDfsError(
    cluster.store.compose("a", [{ name: "a", version: a.version }]),
    "INVALID_REQUEST",
    /named twice, or as its own source/,
  );
  await assertDfsError(
    cluster.store.compose("x", [{ name: "a", version: a.version }, {
      name: "a",
      version: a.version,
    }]),
    "INVALID_REQUEST",
    /named twice, or as its own source/,
  );
  await assertDfsError(
    cluster.store.compose("x", [{ name: "nope", version: 1 }]),
    "NOT_FOUND",
    /does not exist/,
  );
  await assertDfsError(cluster.store.meta("ab"), "NOT_FOUND", /does not exist/);
  assert.deepEqual(await readAll(cluster.store, "a"), bytesOf(MiB + 1, 1));
  assert.deepEqual(await readAll(cluster.store, "b"), bytesOf(300, 3));
  assert.equal((await cluster.store.meta("b")).version, current.version);
});
