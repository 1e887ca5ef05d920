/**
 * A gateway session's side of direct uploads (`direct_uploads.ts`, `session.ts`) over a loopback
 * socket and the in-process cluster's store, whose nodes rank 0 knows to have data ports: the plan
 * a put asks for, `replace`, `progress` against the stall timeout, the end with its CRC32s, and a
 * plan that fails. A chunk "written directly" is written into the node here as its data port
 * would (`ranks/node/data_port_write_test.ts` covers the port itself).
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import { FrameReader, FrameWriter } from "../../protocol/conn.ts";
import { grantKey, parsePlan, type WritePlan } from "../../protocol/direct.ts";
import { decodeFrameBody } from "../../protocol/frame.ts";
import { PROTOCOL_VERSION } from "../../protocol/limits.ts";
import { chunkIdOf } from "../common/chunk_id.ts";
import { DEFAULT_LIMITS, type ServerLimits } from "../config.ts";
import { DEFAULT_ZONE, type NodeInfo } from "../rank0/membership.ts";
import { blobsOn, bytesOf, MiB, readAll, settle } from "../testing/cluster_helpers.ts";
import { MemoryCluster } from "../testing/memory_cluster.ts";
import { Session } from "./session.ts";
import { sessionOnSocket } from "./_session_socket.ts";
import { DfsClient } from "../../client.ts";

const STALL_MS = 60_000;
const key = grantKey(new TextEncoder().encode("the cluster secret"));

/** A cluster of `nodes` data nodes, each with a data port rank 0 knows of, keeping 2 replicas. */
function directCluster(nodes = 3): Promise<MemoryCluster> {
  const info = new Map<number, NodeInfo>();
  for (let rank = 1; rank <= nodes; rank++) {
    // Nothing listens there: a client that tried to write to them would get nowhere.
    info.set(rank, { kind: "worker", zone: DEFAULT_ZONE, dataAddress: `127.0.0.1:${rank}` });
  }
  return MemoryCluster.start({ ranks: nodes + 1, info, grantKey: key });
}

/** A session serving the cluster's store on one end of a loopback connection; the other end. */
function connect(cluster: MemoryCluster, limits: Partial<ServerLimits> = {}) {
  return sessionOnSocket(cluster.store, { clock: cluster.clock, limits });
}

/**
 * Asks something and waits for the answer: the session has then read every frame sent before
 * (it reads a connection's frames in order), which fake time alone does not wait for.
 */
async function roundTrip(c: Awaited<ReturnType<typeof connect>>): Promise<void> {
  await c.writer.send({ op: "meta", id: 999, name: "no such file" });
  const answer = await c.next();
  assert.deepEqual([answer?.id, answer?.code], [999, "NOT_FOUND"]);
}

/** Writes chunk `k` of `data` into each of `ranks` (default: its plan's) as their data ports do. */
async function writeChunk(
  cluster: MemoryCluster,
  plan: WritePlan,
  k: number,
  data: Uint8Array,
  ranks = plan.ranks[k],
): Promise<void> {
  const id = chunkIdOf(plan.blob, k * MiB);
  const bytes = data.subarray(k * MiB, (k + 1) * MiB);
  for (const rank of ranks) {
    const node = await cluster.node(rank);
    node.direct.admit(id, bytes.length);
    await node.handle({ op: "write", id, bytes: bytes.slice(), crc32: crc32(bytes) });
    node.direct.finish(id, { size: bytes.length, crc32: crc32(bytes) });
  }
}

/** The end of a direct upload of `data`: its SHA-256 and a CRC32 per chunk. */
function endOf(id: number, data: Uint8Array) {
  const crc32s: number[] = [];
  for (let at = 0; at < data.length; at += MiB) crc32s.push(crc32(data.subarray(at, at + MiB)));
  return { op: "end", id, sha256: createHash("sha256").update(data).digest("hex"), crc32s };
}

/** Open direct uploads on each node. */
async function opened(cluster: MemoryCluster, nodes = 3): Promise<number[]> {
  const open: number[] = [];
  for (let rank = 1; rank <= nodes; rank++) open.push((await cluster.node(rank)).direct.size);
  return open;
}

const put = (id: number, name: string, size: number) => ({
  op: "put",
  id,
  name,
  size,
  checksums: true,
  direct: true,
});

Deno.test("a put that asks for a plan is answered at once with it; replace and end follow", async () => {
  await using cluster = await directCluster();
  await using c = await connect(cluster);
  const data = bytesOf(3 * MiB + 10, 1);
  await c.writer.send(put(1, "big", data.length));
  const answer = await c.next();
  assert.deepEqual([answer?.op, answer?.id, answer?.result], ["ok", 1, undefined]);
  const plan = parsePlan(answer?.plan, 4);
  assert.deepEqual(await opened(cluster), [1, 1, 1], "opened on the nodes before the answer");
  // A node of chunk 2 failed its write: another is named, with its data port.
  const [failed, kept] = plan.ranks[2];
  await c.writer.send({ op: "replace", id: 1, index: 2, rank: failed });
  const replaced = await c.next();
  assert.deepEqual([replaced?.op, replaced?.id], ["ok", 1]);
  const { rank, address } = replaced?.result as { rank: number; address: string };
  assert.ok(rank !== failed && rank !== kept);
  assert.equal(address, `127.0.0.1:${rank}`);
  for (let k = 0; k < 4; k++) {
    await writeChunk(cluster, plan, k, data, k === 2 ? [kept, rank] : undefined);
  }
  await c.writer.send({ op: "progress", id: 1 }); // not answered
  await c.writer.send(endOf(1, data));
  const end = await c.next();
  assert.deepEqual([end?.op, end?.id], ["ok", 1], JSON.stringify(end));
  const meta = end?.result as { chunks: { ranks: number[] }[] };
  assert.deepEqual(meta.chunks[2].ranks.sort(), [kept, rank].sort());
  assert.deepEqual(await readAll(cluster.store, "big"), data);
  assert.deepEqual(await opened(cluster), [0, 0, 0], "sealed");
});

Deno.test("a direct end whose CRC32s a node did not see is an error of its id, and nothing stays", async () => {
  await using cluster = await directCluster();
  await using c = await connect(cluster);
  const data = bytesOf(2 * MiB, 2);
  await c.writer.send(put(5, "f", data.length));
  const plan = parsePlan((await c.next())?.plan, 2);
  for (let k = 0; k < 2; k++) await writeChunk(cluster, plan, k, data);
  const end = endOf(5, data);
  end.crc32s[1] = (end.crc32s[1] ^ 0x80) >>> 0;
  await c.writer.send(end);
  const refused = await c.next();
  assert.deepEqual([refused?.op, refused?.id, refused?.code], ["error", 5, "CORRUPTED"]);
  await settle(cluster);
  for (const rank of [1, 2, 3]) assert.deepEqual(await blobsOn(cluster, rank), []);
  assert.deepEqual(await opened(cluster), [0, 0, 0]);
  // The id is free again: a put through rank 0 under it works.
  await c.writer.send({ op: "put", id: 5, name: "f", size: 10 });
  await c.writer.sendData(5, bytesOf(10, 3));
  await c.writer.send({ op: "end", id: 5 });
  assert.deepEqual([(await c.next())?.op], ["ok"]);
  assert.deepEqual(await readAll(cluster.store, "f"), bytesOf(10, 3));
});

Deno.test("progress keeps a direct upload from the stall timeout; without it, it is failed and discarded", async () => {
  await using cluster = await directCluster();
  await using c = await connect(cluster, { uploadStallTimeoutMs: STALL_MS });
  const data = bytesOf(2 * MiB, 4);
  await c.writer.send(put(1, "slow", data.length));
  const plan = parsePlan((await c.next())?.plan, 2);
  await writeChunk(cluster, plan, 0, data);
  // Three stall timeouts pass, with word from the client within each.
  for (let i = 0; i < 3; i++) {
    await cluster.clock.advance(STALL_MS - 1_000);
    await c.writer.send({ op: "progress", id: 1 });
    await roundTrip(c); // the session has read the progress
  }
  await writeChunk(cluster, plan, 1, data);
  await c.writer.send(endOf(1, data));
  assert.deepEqual([(await c.next())?.op], ["ok"]);

  // Another, silent for a stall timeout: failed, and its chunks dropped from the nodes.
  await c.writer.send(put(2, "silent", data.length));
  const silent = parsePlan((await c.next())?.plan, 2);
  await writeChunk(cluster, silent, 0, data);
  assert.ok((await opened(cluster)).some((n) => n > 0));
  await cluster.clock.advance(STALL_MS);
  const failed = await c.next();
  assert.deepEqual([failed?.op, failed?.id, failed?.code], ["error", 2, "UNAVAILABLE"]);
  await settle(cluster);
  assert.deepEqual(await opened(cluster), [0, 0, 0]);
  const held = new Set<string>();
  for (const rank of [1, 2, 3]) for (const b of await blobsOn(cluster, rank)) held.add(b);
  assert.ok(!held.has(silent.blob), "the silent upload's blob is gone");
  assert.deepEqual((await cluster.store.list()).map((e) => e.name), ["slow"]);
});

Deno.test("a plan that fails is an error of the put's id, and the upload is dropped", async () => {
  await using cluster = await directCluster(2);
  await using c = await connect(cluster);
  cluster.hang(2); // node 2 answers nothing: it cannot open the upload
  await c.writer.send(put(3, "h", 2 * MiB));
  // The session has read the put: node 1 opened the upload, node 2 never answers.
  const node1 = await cluster.node(1);
  for (const deadline = Date.now() + 5_000; node1.direct.size === 0;) {
    assert.ok(Date.now() < deadline, "node 1 opened the upload");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await cluster.clock.advance(60_000 + 1);
  const failed = await c.next();
  assert.deepEqual([failed?.op, failed?.id, failed?.code], ["error", 3, "UNAVAILABLE"]);
  await settle(cluster);
  assert.equal((await cluster.node(1)).direct.size, 0, "closed on the node that opened it");
  // Its steps now name no upload.
  await c.writer.send({ op: "replace", id: 3, index: 0, rank: 1 });
  const replace = await c.next();
  assert.deepEqual([replace?.op, replace?.id], ["error", 3], JSON.stringify(replace));
});

Deno.test("replace of an upload through rank 0 is refused with its id", async () => {
  await using cluster = await directCluster();
  await using c = await connect(cluster);
  await c.writer.send({ op: "put", id: 4, name: "plain", size: 20, checksums: true });
  await c.writer.send({ op: "replace", id: 4, index: 0, rank: 1 });
  const refused = await c.next();
  assert.deepEqual([refused?.op, refused?.id, refused?.code], ["error", 4, "INVALID_REQUEST"]);
  assert.match(String(refused?.message), /not a direct one/);
});

Deno.test("a client whose plan fails UNAVAILABLE puts through rank 0 instead", async () => {
  await using cluster = await directCluster();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const sessions: Promise<void>[] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      const session = new Session(conn, cluster.store, {
        limits: DEFAULT_LIMITS,
        clock: cluster.clock,
      });
      sessions.push(session.run());
    }
  })();
  const client = await DfsClient.connect(`127.0.0.1:${listener.addr.port}`);
  try {
    // Node 3 never opens the upload, and a plan for 3 replicas cannot leave it out.
    cluster.hang(3);
    const data = bytesOf(3 * MiB + 1, 6);
    const putting = client.put("f", data, { replicas: 3 });
    const [node1, node2] = [await cluster.node(1), await cluster.node(2)];
    for (const deadline = Date.now() + 5_000; node1.direct.size + node2.direct.size === 0;) {
      assert.ok(Date.now() < deadline, "the plan is being opened");
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    // Node 3's expect times out (meanwhile rank 0 finds it down and restarts it).
    await cluster.clock.advance(60_000 + 1);
    // Put through rank 0: the nodes' data ports are nowhere to be reached.
    const meta = await putting;
    assert.equal(meta.size, data.length);
    for (const chunk of meta.chunks) assert.equal(new Set(chunk.ranks).size, 3);
    assert.deepEqual(await readAll(cluster.store, "f"), data);
    assert.deepEqual([node1.direct.size, node2.direct.size], [0, 0], "the plan's upload dropped");
  } finally {
    client.close();
    listener.close();
    await serving.catch(() => {});
    await Promise.allSettled(sessions);
  }
});

Deno.test("a client asks for a direct plan only of a server whose hello says it answers plans", async () => {
  // A server of before direct uploads: its hello has no `plans`, and it answers a put only at its
  // end. A client asking it for a plan would wait for an answer that never comes.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const puts: Record<string, unknown>[] = [];
  const serving = (async () => {
    const conn = await listener.accept();
    const reader = new FrameReader(conn);
    const writer = new FrameWriter(conn);
    await reader.read(); // the hello
    await writer.send({
      op: "hello",
      version: PROTOCOL_VERSION,
      server: "old",
      chunkSizeBytes: MiB,
    });
    while (true) {
      const body = await reader.read();
      if (body === null) break;
      const frame = decodeFrameBody(body) as Record<string, unknown>;
      if (frame.op === "put") puts.push(frame);
      if (frame.op === "end") {
        const result = { name: "f", size: 2 * MiB, sha256: frame.sha256, modified: 0, version: 1 };
        await writer.send({
          op: "ok",
          id: frame.id,
          result: { ...result, replicas: 1, chunks: [] },
        });
      }
    }
    conn.close();
  })();
  const client = await DfsClient.connect(`127.0.0.1:${listener.addr.port}`);
  try {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stuck = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("the put waits for a plan")), 10_000);
    });
    const meta = await Promise.race([client.put("f", bytesOf(2 * MiB, 7)), stuck])
      .finally(() => clearTimeout(timer));
    assert.equal(meta.version, 1);
    assert.equal(puts.length, 1);
    assert.equal(puts[0].direct, undefined, "no plan asked of it");
  } finally {
    client.close();
    listener.close();
    await serving.catch(() => {});
  }
});

Deno.test("a client that cannot reach the data ports its plan names puts bytes in memory through rank 0", async () => {
  // Every node's data port is unreachable from the client (nothing listens at its address): each
  // write fails, its replacements too, and the client sends the bytes through rank 0 instead.
  await using cluster = await directCluster(3);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const sessions: Promise<void>[] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      sessions.push(
        new Session(conn, cluster.store, { limits: DEFAULT_LIMITS, clock: cluster.clock }).run(),
      );
    }
  })();
  const client = await DfsClient.connect(`127.0.0.1:${listener.addr.port}`);
  try {
    const data = bytesOf(2 * MiB + 3, 8);
    const meta = await client.put("in-memory", data);
    assert.equal(meta.size, data.length);
    assert.deepEqual(await readAll(cluster.store, "in-memory"), data);
    for (const rank of [1, 2, 3]) {
      assert.equal((await cluster.node(rank)).direct.size, 0, "the plan's upload dropped");
    }
  } finally {
    client.close();
    listener.close();
    await serving.catch(() => {});
    await Promise.allSettled(sessions);
  }
});
