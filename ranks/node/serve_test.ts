import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { chunkIdOf, newBlobId } from "../common/chunk_id.ts";
import type { ListAnswer, NodeCall, ScanAnswer, SummaryPage } from "../common/node_protocol.ts";
import { readManifests } from "../common/manifest_codec.ts";
import { Comm } from "../comm/comm.ts";
import { LoopbackNetwork } from "../comm/loopback_transport.ts";
import { denoEnv } from "../env/deno_env.ts";
import { MemoryFileSystem } from "../env/memory_fs.ts";
import { SMALL_READ_BYTES_MAX } from "../common/chunk_id.ts";
import { manifest, manifestsIn } from "../testing/manifests.ts";
import { openDataNode } from "./open_node.ts";
import { serveNode, type ServeNodeOptions } from "./serve.ts";

/** Rank 0's Comm and a served data node (rank 1) on a memory disk, over one loopback network. */
async function serveOne(movesBuffers: boolean, options: ServeNodeOptions = {}) {
  const network = new LoopbackNetwork(2, { movesBuffers });
  const rank0 = new Comm(network.transport(0));
  const comm = new Comm(network.transport(1));
  const env = denoEnv({ fs: new MemoryFileSystem() });
  const node = await openDataNode(1, "/data/rank-1", { env });
  const served = serveNode(comm, node, options);
  return {
    rank0,
    node,
    async [Symbol.asyncDispose]() {
      comm.close();
      rank0.close();
      await served;
      await node.close();
    },
  };
}

const SIZE = SMALL_READ_BYTES_MAX + 4096; // read into a lent buffer when one is lent
const bytesOf = (size: number) => new Uint8Array(size).map((_, i) => i % 251);

Deno.test("serveNode() over a transport that moves buffers hands them back", async () => {
  await using served = await serveOne(true);
  const { rank0 } = served;
  const id = chunkIdOf(newBlobId(), 0);
  const sent = bytesOf(SIZE);
  const answer = await rank0.call<ArrayBuffer>(1, { op: "write", id, bytes: sent } as NodeCall, {
    transfer: [sent.buffer],
  });
  assert.ok(answer instanceof ArrayBuffer, "the chunk's buffer comes back");
  assert.equal(answer.byteLength, SIZE);
  assert.equal(sent.byteLength, 0, "moved, not copied");
  const into = new ArrayBuffer(2 * SIZE);
  const read = await rank0.call<Uint8Array>(1, { op: "read", id, size: SIZE, into }, {
    transfer: [into],
  });
  assert.deepEqual(read, bytesOf(SIZE));
  assert.equal(read.buffer.byteLength, 2 * SIZE, "read into the lent buffer, which came back");
});

Deno.test("serveNode() over a transport that copies answers a write with true and ignores into", async () => {
  await using served = await serveOne(false);
  const { rank0 } = served;
  const id = chunkIdOf(newBlobId(), 0);
  assert.equal(await rank0.call(1, { op: "write", id, bytes: bytesOf(SIZE) }), true);
  const into = new ArrayBuffer(2 * SIZE);
  const read = await rank0.call<Uint8Array>(1, { op: "read", id, size: SIZE, into });
  assert.deepEqual(read, bytesOf(SIZE));
  assert.equal(read.buffer.byteLength, SIZE, "a buffer of its own, not the lent one");
});

Deno.test("serveNode() answers ping, scan, list and the scan collective", async () => {
  await using served = await serveOne(false);
  const { rank0 } = served;
  assert.equal(await rank0.call(1, { op: "ping" }), true);
  const id = chunkIdOf(newBlobId(), 0);
  await rank0.call(1, { op: "write", id, bytes: bytesOf(10) });
  const scan = await rank0.call<ScanAnswer>(1, { op: "scan" });
  assert.deepEqual([scan.rank, manifestsIn(scan), scan.blobs], [1, [], [[id.slice(0, 32), 10]]]);
  const scanTag = rank0.nextTag();
  await rank0.bcast(0, { op: "scan", tag: scanTag });
  const scans = await rank0.gather<ScanAnswer | undefined>(0, undefined, { tag: scanTag });
  assert.deepEqual(scans?.[1], scan);
  await rank0.call(1, { op: "commit", manifest: manifest("d/a", 1, [[id, 10, [1]]]) });
  const listed = await rank0.call<ListAnswer>(1, { op: "list", prefix: "d/", limit: 10 });
  assert.deepEqual(listed, await served.node.list("d/", { limit: 10 }));
  assert.equal(listed.listing.names, "d/a");
  const summaryTag = rank0.nextTag();
  await rank0.bcast(0, { op: "summary", seed: 7, tag: summaryTag });
  const [, summary] = (await rank0.gather<SummaryPage | undefined>(0, undefined, {
    tag: summaryTag,
  }))!;
  const totals = summary!.totals!;
  assert.deepEqual(
    [totals.count, totals.others, totals.allPresent, totals.strayBlobs],
    [1, 0, true, []],
  );
  assert.deepEqual([...readManifests(summary!.manifests)].map((m) => m.name), ["d/a"]);
  // The summary was whole in its first page: there is no next one.
  await assert.rejects(
    rank0.call(1, { op: "summaryPage" }),
    (error: unknown) =>
      error instanceof DfsError && error.code === "NOT_FOUND" &&
      /Rank 1 has no summary being made/.test(error.message),
  );
});
