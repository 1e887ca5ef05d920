/**
 * Reads on the in-process cluster: ranges, failover to another replica when a node crashes or
 * hangs, and read repair of a damaged or missing replica.
 */

import assert from "node:assert/strict";
import { manifestsIn } from "../testing/manifests.ts";
import { HEARTBEAT_TIMEOUT_MS } from "./supervisor.ts";
import { MemoryCluster } from "../testing/memory_cluster.ts";
import { blobPath, bytesOf, flipByte, MiB, readAll, settle } from "../testing/cluster_helpers.ts";

/** The chunk ids of `name`, from a node's scan. */
async function chunksOf(cluster: MemoryCluster, name: string) {
  for (const rank of cluster.store.nodes.dataRanks) {
    const m = manifestsIn(await (await cluster.node(rank)).scan()).find((m) => m.name === name);
    if (m) return m.chunks;
  }
  throw new Error(`no node holds ${name}`);
}

Deno.test("a ranged read reads only the chunks that hold the range", async () => {
  await using cluster = await MemoryCluster.start();
  const data = bytesOf(5 * MiB + 3, 1);
  await cluster.store.put("f", data);
  let reads = 0;
  cluster.network.drop((p) => {
    if ((p.body as { call?: { op?: string } }).call?.op === "read") reads++;
    return false;
  });
  const range = { start: 2 * MiB - 10, end: 3 * MiB + 10 };
  assert.deepEqual(await readAll(cluster.store, "f", range), data.slice(range.start, range.end));
  assert.equal(reads, 3, "chunks 1 to 3, one replica each");
  assert.deepEqual(await readAll(cluster.store, "f", { start: 5 * MiB }), data.slice(5 * MiB));
});

Deno.test("a read fails over to another replica when a node crashes, and the node comes back", async () => {
  await using cluster = await MemoryCluster.start();
  const data = bytesOf(6 * MiB, 2);
  await cluster.store.put("f", data);
  cluster.keepDown(1);
  cluster.crash(1);
  assert.deepEqual(await readAll(cluster.store, "f"), data);
  const rank1 = (await cluster.store.status()).ranks[0];
  assert.equal(rank1.state, "down", "its restart failed");
  assert.match(rank1.reason ?? "", /kept down/);
  assert.ok((await cluster.store.status()).underReplicatedChunks > 0);
  cluster.allowStart(1);
  await cluster.until(() => !cluster.store.nodes.membership.isDown(1));
  assert.match(cluster.logged.join("\n"), /rank 1 is down .*restarting it[\s\S]*rank 1 is back/);
  assert.deepEqual(await readAll(cluster.store, "f"), data);
  assert.equal((await cluster.store.status()).underReplicatedChunks, 0);
});

Deno.test("a read waiting on a hung node fails over once the heartbeat finds it", async () => {
  await using cluster = await MemoryCluster.start();
  const data = bytesOf(4 * MiB, 3);
  await cluster.store.put("f", data);
  cluster.hang(2);
  let read: Uint8Array | undefined;
  const reading = readAll(cluster.store, "f").then((bytes) => read = bytes);
  await cluster.until(() => read !== undefined, { timeoutMs: 3 * HEARTBEAT_TIMEOUT_MS });
  await reading;
  assert.deepEqual(read, data);
  assert.match(cluster.logged.join("\n"), /rank 2 is down \(no answer to a heartbeat/);
});

Deno.test("read repair: a replica with a flipped byte is rewritten from the good one", async () => {
  await using cluster = await MemoryCluster.start();
  const data = bytesOf(2 * MiB, 4);
  await cluster.store.put("f", data);
  const [first] = await chunksOf(cluster, "f");
  // Chunk 0 is read from its first replica first: damage that one.
  const damaged = first.ranks[0];
  await flipByte(cluster.disk(damaged), blobPath(damaged, first.id), 1234);
  assert.deepEqual(await readAll(cluster.store, "f"), data);
  await settle(cluster);
  const status = await cluster.store.status();
  assert.equal(status.corruptReplicasFound, 1);
  assert.equal(status.repairs, 1);
  assert.match(
    cluster.logged.join("\n"),
    new RegExp(`repaired chunk ${first.id} on ranks ${damaged}`),
  );
  const fsck = await cluster.store.fsck();
  assert.equal(fsck.healthy, 1, "the repair stuck");
});

Deno.test("read repair: a missing blob is written back", async () => {
  await using cluster = await MemoryCluster.start();
  const data = bytesOf(300_000, 5); // one chunk, in a blob (not in the log)
  await cluster.store.put("f", data);
  const [first] = await chunksOf(cluster, "f");
  const rank = first.ranks[0];
  await cluster.disk(rank).remove(blobPath(rank, first.id));
  assert.deepEqual(await readAll(cluster.store, "f"), data);
  await settle(cluster);
  assert.equal((await cluster.store.status()).repairs, 1);
  assert.equal((await cluster.store.fsck()).healthy, 1);
});

Deno.test("a chunk with no good replica fails the read with CORRUPTED", async () => {
  await using cluster = await MemoryCluster.start();
  await cluster.store.put("f", bytesOf(MiB, 6));
  const [chunk] = await chunksOf(cluster, "f");
  for (const rank of chunk.ranks) await flipByte(cluster.disk(rank), blobPath(rank, chunk.id), 7);
  await assert.rejects(readAll(cluster.store, "f"), (e: unknown) => {
    assert.match(String(e), /CRC32 does not match/);
    return true;
  });
});

Deno.test("a small file written or read lately is read from rank 0's cache, not a node", async () => {
  await using cluster = await MemoryCluster.start();
  const data = bytesOf(4096, 4);
  await cluster.store.put("small", data);
  let reads = 0;
  cluster.network.drop((p) => {
    if ((p.body as { call?: { op?: string } }).call?.op === "read") reads++;
    return false;
  });
  assert.deepEqual(await readAll(cluster.store, "small"), data);
  assert.deepEqual(
    await readAll(cluster.store, "small", { start: 10, end: 20 }),
    data.slice(10, 20),
  );
  assert.equal(reads, 0, "written lately: cached at its commit");
  const big = bytesOf(MiB, 5);
  await cluster.store.put("big", big);
  assert.deepEqual(await readAll(cluster.store, "big"), big);
  assert.deepEqual(await readAll(cluster.store, "big"), big);
  assert.equal(reads, 2, "a large chunk is read from a node each time");
});
