/**
 * Direct uploads (`direct_uploads.ts`) in one process: rank 0's store and its data nodes in a
 * `MemoryCluster`, each node that has one serving a real data port on 127.0.0.1, and the client's
 * own writer (`writeDirect` over `DataLinks`) writing the chunks there along the plan. Checked:
 * which puts get a plan and what it says; that a planned upload commits into a file that reads
 * back whole; that the commit holds the client to the CRC32s the nodes saw; that an abort or a
 * refused commit leaves nothing behind; `replace()`; and a node that dies under an upload.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import { BufferPool } from "../../protocol/buffer_pool.ts";
import {
  checkGrant,
  GRANT_TTL_MS,
  grantKey,
  grantLifeMs,
  parsePlan,
  type WritePlan,
} from "../../protocol/direct.ts";
import { DataLinks } from "../../protocol/direct_reader.ts";
import { writeDirect } from "../../protocol/direct_writer.ts";
import { DfsError } from "../../protocol/errors.ts";
import { FRAME_SIZE_BYTES_MAX } from "../../protocol/limits.ts";
import { chunkIdOf } from "../common/chunk_id.ts";
import type { ByteSource, Upload } from "../common/file_store.ts";
import { systemClock } from "../env/system.ts";
import { type DataPort, serveDataPort } from "../node/data_port.ts";
import { blobsOn, bytesOf, MiB, readAll, settle } from "../testing/cluster_helpers.ts";
import { MemoryCluster } from "../testing/memory_cluster.ts";
import {
  DIRECT_EXPECT_TIMEOUT_MS,
  DIRECT_WRITE_BYTES_MAX,
  DIRECT_WRITE_BYTES_MIN,
} from "./direct_uploads.ts";
import { DEFAULT_ZONE, type NodeInfo } from "./membership.ts";
import { fails } from "../testing/fails.ts";

const key = grantKey(new TextEncoder().encode("the cluster secret"));

/**
 * A memory cluster of `nodes` data nodes (ranks 1 to `nodes`) keeping `replicas` copies, with a
 * grant key; the ranks of `ports` (default: all) serve a data port, which rank 0 knows of.
 */
async function directCluster(options: { nodes?: number; ports?: number[]; replicas?: number }) {
  const count = options.nodes ?? 3;
  const ranks = Array.from({ length: count }, (_, i) => i + 1);
  const listeners = new Map<number, Deno.Listener>();
  for (const rank of options.ports ?? ranks) {
    listeners.set(rank, Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  }
  const info = new Map<number, NodeInfo>();
  for (const rank of ranks) {
    const listener = listeners.get(rank);
    const node: NodeInfo = { kind: "worker", zone: DEFAULT_ZONE };
    if (listener) node.dataAddress = `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
    info.set(rank, node);
  }
  const cluster = await MemoryCluster.start({
    ranks: count + 1,
    replicas: options.replicas ?? 2,
    info,
    grantKey: key,
    epochMs: Date.now(), // the data ports check grants by the real clock
  });
  const pool = new BufferPool(FRAME_SIZE_BYTES_MAX, { buffersMax: 16 });
  const ports = new Map<number, DataPort>();
  for (const [rank, listener] of listeners) {
    const node = await cluster.node(rank);
    const log = { error: () => {} };
    ports.set(
      rank,
      serveDataPort(listener, { node: () => node, key, pool, clock: systemClock, log }),
    );
  }
  const links = new DataLinks({ connectTimeoutMs: 5_000 });
  const killed = new Set<number>();
  return {
    cluster,
    store: cluster.store,
    links,
    /** The data nodes' open uploads, by rank. */
    async opened(): Promise<Record<number, number>> {
      const open: Record<number, number> = {};
      for (const rank of ranks) {
        if (!ports.has(rank) || killed.has(rank)) continue;
        open[rank] = (await cluster.node(rank)).direct.size;
      }
      return open;
    },
    /** Blob files on every live node. */
    async blobs(): Promise<string[]> {
      const all: string[] = [];
      for (const rank of ranks) if (!killed.has(rank)) all.push(...await blobsOn(cluster, rank));
      return all;
    },
    /** Kills data node `rank`: its port closes and it stays down. */
    async kill(rank: number): Promise<void> {
      killed.add(rank);
      cluster.keepDown(rank);
      cluster.crash(rank);
      await ports.get(rank)?.close();
      ports.delete(rank);
      await settle(cluster);
    },
    async [Symbol.asyncDispose]() {
      links.close();
      for (const port of ports.values()) await port.close();
      await cluster.close();
    },
  };
}

type Cluster = Awaited<ReturnType<typeof directCluster>>;

/** Starts a direct upload of `size` bytes of `name`. */
function begin(d: Cluster, name: string, size: number, replicas?: number): Upload {
  return d.store.beginUpload(name, { size, checksums: true, direct: true, replicas });
}

/** Writes `source` along `upload`'s plan as a client does; returns what the commit names. */
async function writeAlong(d: Cluster, upload: Upload, source: ByteSource, size: number) {
  assert.ok(upload.plan, "the upload has a plan");
  const plan = parsePlan(await upload.plan, Math.ceil(size / MiB));
  return await writeDirect(source, size, plan, d.links, {
    replace: (index, rank) => upload.replace!(index, rank),
    progress: () => Promise.resolve(),
  });
}

/** Writes chunk `k` of `data` to each of `ranks` (default: all its plan's) as a client does. */
async function writeChunk(
  d: Cluster,
  plan: WritePlan,
  k: number,
  data: Uint8Array,
  ranks = plan.ranks[k],
): Promise<number> {
  const bytes = data.subarray(k * MiB, (k + 1) * MiB);
  const request = { chunk: chunkIdOf(plan.blob, k * MiB), crc32: crc32(bytes), grant: plan.grant };
  for (const rank of ranks) await d.links.write(plan.nodes[rank], request, bytes);
  return request.crc32;
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

Deno.test("a direct upload is planned on nodes with a data port, written there and committed", async () => {
  await using d = await directCluster({ nodes: 3 });
  const data = bytesOf(5 * MiB + 100, 1);
  const upload = begin(d, "big.bin", data.length);
  assert.ok(upload.plan, "a plan is offered");
  const plan: WritePlan = await upload.plan;
  assert.deepEqual(parsePlan(plan, 6), plan, "what a client accepts");
  for (const ranks of plan.ranks) {
    assert.equal(ranks.length, 2, "each chunk on 2 nodes");
    assert.equal(new Set(ranks).size, 2, "on 2 different nodes");
  }
  const used = [...new Set(plan.ranks.flat())].sort();
  assert.deepEqual(Object.keys(plan.nodes).map(Number).sort(), used, "the address of each");
  for (const rank of used) assert.match(plan.nodes[rank], /^127\.0\.0\.1:\d+$/);
  // The grant writes the upload's blob and nothing else, until it expires: the grant's life and
  // the time the upload takes at the slowest pace allowed for.
  assert.deepEqual(plan.grant.blobs, [plan.blob]);
  assert.equal(plan.grant.mode, "write");
  assert.equal(plan.grant.expires, d.cluster.clock.now() + grantLifeMs(data.length));
  assert.ok(grantLifeMs(data.length) > GRANT_TTL_MS);
  checkGrant(key, plan.grant, chunkIdOf(plan.blob, 5 * MiB), d.cluster.clock.now(), "write");
  assert.throws(() => checkGrant(key, plan.grant, chunkIdOf(plan.blob, 0), 0), DfsError);
  // The blob was opened on every node of the plan before the plan was given.
  const opened = await d.opened();
  for (const rank of [1, 2, 3]) assert.equal(opened[rank], used.includes(rank) ? 1 : 0);

  const end = await writeAlong(d, upload, data, data.length);
  assert.equal(end.sha256, sha256(data));
  const written = d.store.throughput.snapshot().totals.writtenBytes;
  const meta = await upload.commit(end);
  assert.equal(meta.size, data.length);
  assert.equal(meta.sha256, sha256(data));
  assert.deepEqual(meta.chunks.map((c) => c.ranks), plan.ranks, "placed as planned");
  assert.deepEqual(meta.chunks.map((c) => c.crc32), end.crc32s);
  assert.deepEqual(await readAll(d.store, "big.bin"), data);
  assert.deepEqual(await d.opened(), { 1: 0, 2: 0, 3: 0 }, "sealed on every node");
  assert.equal(d.store.throughput.snapshot().totals.writtenBytes, written + data.length);
  const fsck = await d.store.fsck();
  assert.deepEqual([fsck.healthy, fsck.lost, fsck.underReplicated], [1, [], []]);
});

Deno.test("a put gets no plan below DIRECT_WRITE_BYTES_MIN or above DIRECT_WRITE_BYTES_MAX, without checksums, a size or the ask", async () => {
  await using d = await directCluster({ nodes: 3 });
  assert.equal(DIRECT_WRITE_BYTES_MIN, MiB);
  const uploads: [string, Upload][] = [
    ["below the minimum", begin(d, "a", DIRECT_WRITE_BYTES_MIN - 1)],
    ["above the most one plan takes", begin(d, "z", DIRECT_WRITE_BYTES_MAX + 1)],
    ["no checksums", d.store.beginUpload("b", { size: 4 * MiB, direct: true })],
    ["no size", d.store.beginUpload("c", { checksums: true, direct: true })],
    ["not asked", d.store.beginUpload("d", { size: 4 * MiB, checksums: true })],
  ];
  for (const [why, upload] of uploads) {
    assert.equal(upload.plan, undefined, why);
    await upload.abort();
  }
  const exactly = begin(d, "e", DIRECT_WRITE_BYTES_MIN);
  assert.ok(exactly.plan, "a chunk's worth is enough");
  assert.equal((await exactly.plan).ranks.length, 1);
  await exactly.abort();
  assert.deepEqual(await d.opened(), { 1: 0, 2: 0, 3: 0 });
});

Deno.test("a put gets no plan unless `replicas` live nodes have a data port", async () => {
  await using d = await directCluster({ nodes: 3, ports: [1, 2] });
  // 3 replicas: node 3 has no data port, so the bytes go through rank 0.
  const three = begin(d, "three", 3 * MiB, 3);
  assert.equal(three.plan, undefined);
  await three.abort();
  // 2 replicas: nodes 1 and 2 take every chunk.
  const two = begin(d, "two", 3 * MiB, 2);
  const sorted = (plan: WritePlan) => plan.ranks.map((r) => [...r].sort());
  assert.deepEqual(sorted(await two.plan!), [[1, 2], [1, 2], [1, 2]]);
  await two.abort();
  // One of them down: no plan for 2 replicas.
  await d.kill(2);
  const down = begin(d, "down", 3 * MiB, 2);
  assert.equal(down.plan, undefined);
  await down.abort();
  const one = begin(d, "one", 3 * MiB, 1);
  assert.deepEqual((await one.plan!).ranks, [[1], [1], [1]]);
  await one.abort();
});

Deno.test("a direct commit whose CRC32s the nodes did not see fails and leaves nothing", async () => {
  await using d = await directCluster({ nodes: 3 });
  const data = bytesOf(3 * MiB + 5, 2);
  for (const wrong of ["crc32", "count", "sha256"] as const) {
    const upload = begin(d, "f", data.length);
    const end = await writeAlong(d, upload, data, data.length);
    assert.ok((await d.blobs()).length > 0, "the chunks are on the nodes");
    const crc32s = [...end.crc32s];
    if (wrong === "crc32") crc32s[2] = (crc32s[2] ^ 1) >>> 0;
    if (wrong === "count") crc32s.pop();
    const sha = wrong === "sha256" ? undefined : end.sha256;
    const code = wrong === "crc32" ? "CORRUPTED" : "INVALID_REQUEST";
    await assert.rejects(upload.commit({ sha256: sha, crc32s }), fails(code), wrong);
    await settle(d.cluster);
    await assert.rejects(d.store.meta("f"), fails("NOT_FOUND"), wrong);
    assert.deepEqual(await d.blobs(), [], `${wrong}: the upload's blob is gone from every node`);
    assert.deepEqual(await d.opened(), { 1: 0, 2: 0, 3: 0 }, `${wrong}: and closed`);
    await assert.rejects(upload.commit(end), fails("INVALID_REQUEST", /over/), "it is over");
  }
});

Deno.test("a direct commit of a chunk some node never got fails, and the old version stays", async () => {
  await using d = await directCluster({ nodes: 3 });
  const old = bytesOf(2 * MiB, 3);
  const first = begin(d, "f", old.length);
  const v1 = await first.commit(await writeAlong(d, first, old, old.length));
  const blobsBefore = await d.blobs();

  const data = bytesOf(3 * MiB, 4);
  const upload = begin(d, "f", data.length);
  const plan = await upload.plan!;
  // Every chunk to every node of its plan but chunk 1 to the second of its nodes.
  const crc32s: number[] = [];
  for (let k = 0; k < 3; k++) {
    crc32s.push(
      await writeChunk(d, plan, k, data, k === 1 ? plan.ranks[k].slice(0, 1) : undefined),
    );
  }
  await assert.rejects(
    upload.commit({ sha256: sha256(data), crc32s }),
    fails("CORRUPTED", new RegExp(chunkIdOf(plan.blob, MiB))),
  );
  await settle(d.cluster);
  assert.equal((await d.store.meta("f")).version, v1.version, "the old version is current");
  assert.deepEqual(await readAll(d.store, "f"), old);
  assert.deepEqual((await d.blobs()).sort(), blobsBefore.sort(), "the new blob is gone");
});

Deno.test("an aborted direct upload is discarded on every node and takes no more writes", async () => {
  await using d = await directCluster({ nodes: 3 });
  const data = bytesOf(4 * MiB, 5);
  const upload = begin(d, "gone", data.length);
  const plan = await upload.plan!;
  for (let k = 0; k < 2; k++) await writeChunk(d, plan, k, data); // half of it
  assert.ok((await d.blobs()).length > 0);
  await upload.abort();
  await settle(d.cluster);
  assert.deepEqual(await d.blobs(), []);
  assert.deepEqual(await d.opened(), { 1: 0, 2: 0, 3: 0 });
  await assert.rejects(writeChunk(d, plan, 3, data), fails("UNAUTHORIZED", /not open/));
  assert.deepEqual(await d.blobs(), [], "the late write made no blob");
  await assert.rejects(d.store.meta("gone"), fails("NOT_FOUND"));
  await upload.abort(); // twice is fine
});

Deno.test("replace() names another node for one chunk; the replaced node's other chunks stay", async () => {
  await using d = await directCluster({ nodes: 3 });
  const data = bytesOf(6 * MiB + 1, 6);
  const upload = begin(d, "r", data.length);
  const plan = await upload.plan!;
  const end = await writeAlong(d, upload, data, data.length);
  // Chunk 0's first node: say its write failed. It holds other chunks of the upload too.
  const [from, kept] = plan.ranks[0];
  assert.ok(plan.ranks.slice(1).some((r) => r.includes(from)), "a node with several chunks");
  const { rank, address } = await upload.replace!(0, from);
  assert.ok(rank !== from && rank !== kept, `another node than ${from} and ${kept}: ${rank}`);
  assert.equal(address, plan.nodes[rank]);
  await writeChunk(d, { ...plan, nodes: { [rank]: address } }, 0, data, [rank]);
  const meta = await upload.commit(end);
  assert.deepEqual(meta.chunks[0].ranks.sort(), [kept, rank].sort());
  assert.deepEqual(meta.chunks.slice(1).map((c) => c.ranks), plan.ranks.slice(1));
  assert.deepEqual(await readAll(d.store, "r"), data);
  const fsck = await d.store.fsck();
  assert.deepEqual([fsck.healthy, fsck.lost, fsck.underReplicated], [1, [], []]);
});

for (const ending of ["commit", "abort"] as const) {
  Deno.test(`a node replaced out of the plan keeps nothing of the upload after its ${ending}`, async () => {
    await using d = await directCluster({ nodes: 3 });
    const data = bytesOf(2 * MiB, 8);
    const upload = begin(d, "out", data.length);
    const plan = await upload.plan!;
    // 4 replicas on 3 nodes: one node holds a single chunk. Its write "failed" after it landed.
    const single = [1, 2, 3].find((rank) =>
      plan.ranks.flat().filter((r) => r === rank).length === 1
    );
    assert.ok(single !== undefined, JSON.stringify(plan.ranks));
    const k = plan.ranks.findIndex((r) => r.includes(single));
    const crc32s = [0, 1].map((i) => crc32(data.subarray(i * MiB, (i + 1) * MiB)));
    for (const i of [0, 1]) await writeChunk(d, plan, i, data);
    assert.ok((await blobsOn(d.cluster, single)).includes(plan.blob));
    const { rank, address } = await upload.replace!(k, single);
    await writeChunk(d, { ...plan, nodes: { [rank]: address } }, k, data, [rank]);
    if (ending === "commit") {
      const meta = await upload.commit({ sha256: sha256(data), crc32s });
      assert.ok(meta.chunks.every((c) => !c.ranks.includes(single)));
      assert.deepEqual(await readAll(d.store, "out"), data);
    } else {
      await upload.abort();
    }
    await settle(d.cluster);
    assert.deepEqual(await blobsOn(d.cluster, single), [], `rank ${single} holds no blob`);
    assert.equal((await d.cluster.node(single)).direct.size, 0, "nor keeps it open");
    if (ending === "abort") assert.deepEqual(await d.blobs(), []);
  });
}

Deno.test("replace() refuses a chunk or rank not in the plan, and when no node is left", async () => {
  await using d = await directCluster({ nodes: 2 });
  const upload = begin(d, "x", 2 * MiB);
  const plan = await upload.plan!;
  assert.deepEqual(plan.ranks.map((r) => [...r].sort()), [[1, 2], [1, 2]]);
  await assert.rejects(upload.replace!(2, 1), fails("INVALID_REQUEST"), "no chunk 2");
  await assert.rejects(upload.replace!(0, 3), fails("INVALID_REQUEST"), "not on rank 3");
  await assert.rejects(upload.replace!(0, 2), fails("UNAVAILABLE", /No other data node/));
  await upload.abort();
  await assert.rejects(upload.replace!(0, 1), fails("INVALID_REQUEST"), "over");
});

/** `DataLinks` that count the writes each node acknowledged. */
class CountingLinks extends DataLinks {
  acked = 0;

  override async write(
    address: string,
    request: Record<string, unknown>,
    bytes: Uint8Array,
  ): Promise<void> {
    await super.write(address, request, bytes);
    this.acked++;
  }
}

for (const when of ["before it writes", "once half the file is written"]) {
  Deno.test(`a direct upload whose node dies ${when} still commits, every chunk on live nodes`, async () => {
    await using d = await directCluster({ nodes: 3 });
    const data = bytesOf(12 * MiB + 7, 7);
    const upload = begin(d, "survivor", data.length);
    const plan = await upload.plan!;
    // The node with the most chunks dies.
    const counts = [1, 2, 3].map((rank) => plan.ranks.filter((r) => r.includes(rank)).length);
    const victim = counts.indexOf(Math.max(...counts)) + 1;
    const half = when === "before it writes" ? 0 : 6;
    const links = new CountingLinks({ connectTimeoutMs: 5_000 });
    async function* source() {
      for (let k = 0; k < 13; k++) {
        if (k === half) {
          // Every replica of the chunks so far acknowledged (some of them by the victim).
          while (links.acked < 2 * half) await new Promise((resolve) => setTimeout(resolve, 5));
          await d.kill(victim);
        }
        yield data.subarray(k * MiB, Math.min((k + 1) * MiB, data.length));
      }
    }
    try {
      assert.ok(plan.ranks.slice(0, Math.max(half, 1)).some((r) => r.includes(victim)));
      const end = await writeDirect(source(), data.length, plan, links, {
        replace: (index, rank) => upload.replace!(index, rank),
        progress: () => Promise.resolve(),
      });
      const meta = await upload.commit(end);
      for (const [k, chunk] of meta.chunks.entries()) {
        assert.ok(!chunk.ranks.includes(victim), `chunk ${k} is not on dead rank ${victim}`);
        assert.equal(new Set(chunk.ranks).size, 2, "2 replicas still");
      }
    } finally {
      links.close();
    }
    assert.deepEqual(await readAll(d.store, "survivor"), data);
    await d.store.health.settled();
    const fsck = await d.store.fsck();
    assert.deepEqual([fsck.healthy, fsck.lost, fsck.underReplicated], [1, [], []]);
  });
}

Deno.test("a plan whose node does not answer fails UNAVAILABLE, and the upload is dropped", async () => {
  await using d = await directCluster({ nodes: 2 });
  d.cluster.hang(2);
  const upload = begin(d, "h", 2 * MiB);
  const failed = assert.rejects(upload.plan!, fails("UNAVAILABLE"));
  await d.cluster.clock.advance(60_000 + 1);
  await failed;
  await upload.abort();
  await settle(d.cluster);
  assert.deepEqual(await blobsOn(d.cluster, 1), []);
  assert.equal((await d.cluster.node(1)).direct.size, 0, "closed on the node that answered");
});

Deno.test("a node that does not open the upload in time is left out of the plan, its chunks placed on the others", async () => {
  await using d = await directCluster({ nodes: 3 });
  d.cluster.hang(3);
  const data = bytesOf(6 * MiB, 9);
  const upload = begin(d, "around", data.length);
  let planned: WritePlan | undefined;
  void upload.plan!.then((plan) => planned = plan);
  await d.cluster.clock.advance(DIRECT_EXPECT_TIMEOUT_MS - 1);
  assert.equal(planned, undefined, "still waiting for node 3");
  await d.cluster.clock.advance(2);
  const plan = await upload.plan!;
  for (const ranks of plan.ranks) {
    assert.deepEqual([...ranks].sort(), [1, 2], "every chunk on the two nodes that answered");
  }
  assert.deepEqual(Object.keys(plan.nodes).sort(), ["1", "2"]);
  // The abort removes the upload from node 3 too (it was asked): that call waits for its timeout.
  const aborted = upload.abort();
  await d.cluster.clock.advance(60_000 + 1);
  await aborted;
  await settle(d.cluster);
  for (const rank of [1, 2]) assert.deepEqual(await blobsOn(d.cluster, rank), []);
});

Deno.test("replace() never hands back a node a client could not write to, and stops at one per chunk replica", async () => {
  await using d = await directCluster({ nodes: 6 });
  // Chunk 0 of an upload of one chunk, 2 replicas: its first node replaced, then each node
  // named instead, until the cap of one replace per chunk replica.
  const upload = begin(d, "r", MiB);
  const [[first, other]] = (await upload.plan!).ranks;
  const refused = [first];
  const next = await upload.replace!(0, first);
  assert.ok(![...refused, other].includes(next.rank), `rank ${next.rank} is new`);
  refused.push(next.rank);
  const again = await upload.replace!(0, next.rank);
  assert.ok(![...refused, other].includes(again.rank), `rank ${again.rank} is new`);
  await assert.rejects(upload.replace!(0, again.rank), fails("UNAVAILABLE", /once per replica/));
  await upload.abort();
});
