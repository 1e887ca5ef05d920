/**
 * Direct writes end to end (`protocol/direct.ts`): a server with `--ranks 1` and `dfs node`
 * processes with data ports (`--data-port 0`) on 127.0.0.1. A client puts large files by writing
 * their chunks to the nodes itself, which is seen from outside: rank 0's sockets carry next to none
 * of the file's bytes (the kernel's count of each TCP connection's bytes, from `ss`, against a put
 * through rank 0 that carries them all), the client holds connections to the data ports, and rank
 * 0 still counts the bytes written (the dashboard's `/api/throughput`). A node killed under a put, a source that breaks its declared
 * size and a client that vanishes mid-upload leave either a whole file or nothing, not even blob
 * files on the nodes; a cluster without `replicas` data ports, or a client with `direct: false`,
 * puts through rank 0.
 */

import { DIRECT_EXPECT_TIMEOUT_MS } from "../ranks/rank0/direct_uploads.ts";
import assert from "node:assert/strict";
import { DfsClient } from "../client.ts";
import { type DirectRoute, parsePlan } from "../protocol/direct.ts";
import { DATA_LINK_SILENCE_MS, DataLinks } from "../protocol/direct_reader.ts";
import { DfsError } from "../protocol/errors.ts";
import { CHUNK_SIZE_BYTES } from "../protocol/limits.ts";
import { pseudoRandomBytes, sha256 } from "./_bytes.ts";
import { rawConnection } from "./_frames.ts";
import { TestNode } from "./_nodes.ts";
import { DENO, ROOT, type TestServer } from "./_server.ts";
import {
  connectionsTo,
  directCluster,
  portOf,
  STATE_TIMEOUT_MS,
  waitForBlobs,
  waitForStates,
} from "./_direct_cluster.ts";
import { sleep, withTimeout } from "./_wait.ts";
import { crc32 } from "node:zlib";

const MiB = CHUNK_SIZE_BYTES;
/**
 * Bytes rank 0's sockets may carry around a direct put: requests and answers, heartbeats, calls to
 * the nodes. A put through rank 0 carries the file's bytes from the client once and to each node.
 */
const RANK0_TRAFFIC_BYTES_MAX = 256 * 1024;

/** The data ports rank 0 routes a direct get of `name` to, by rank (asked on a bare connection). */
async function dataPortsOf(server: TestServer, name: string): Promise<Record<string, number>> {
  using raw = await rawConnection(server.address, { hello: true });
  await raw.send({ op: "get", id: 1, name, direct: true });
  const ok = await withTimeout(raw.next(), { timeoutMs: 10_000, what: "the get's answer" });
  assert.equal(ok.op, "ok", JSON.stringify(ok));
  assert.ok(ok.direct, "rank 0 offers a route");
  await raw.send({ op: "done", id: 1 });
  const nodes = (ok.direct as DirectRoute).nodes;
  return Object.fromEntries(Object.entries(nodes).map(([rank, a]) => [rank, portOf(a)]));
}

/** Bytes of disk the files in folder `dir` take (a blob written in part takes that part). */
async function allocatedBytes(dir: string): Promise<number> {
  let total = 0;
  for await (const entry of Deno.readDir(dir)) {
    total += ((await Deno.stat(`${dir}/${entry.name}`)).blocks ?? 0) * 512;
  }
  return total;
}

/** `data` as a stream of pieces of odd sizes (none a whole chunk). */
async function* piecesOf(data: Uint8Array, pieceBytes = 300_007): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < data.length; at += pieceBytes) {
    yield data.slice(at, at + pieceBytes);
  }
}

/** Checks that fsck finds `files` healthy files and nothing else to say. */
async function assertHealthy(client: DfsClient, files: number): Promise<void> {
  const fsck = await client.fsck();
  assert.deepEqual(
    [fsck.files, fsck.healthy, fsck.repaired, fsck.underReplicated, fsck.lost],
    [files, files, [], [], []],
  );
}

Deno.test("a put of a buffer and of a stream of a declared size write to the data ports, not through rank 0", async () => {
  await using cluster = await directCluster([true, true]);
  const client = await cluster.client();
  const buffer = pseudoRandomBytes(5 * MiB + 13, 21);
  const streamed = pseudoRandomBytes(7 * MiB + 1, 22);
  const writtenBefore = await cluster.writtenBytes();
  const trafficBefore = await cluster.rank0Traffic();
  const a = await client.put("buffer.bin", buffer);
  const b = await client.put("stream.bin", piecesOf(streamed), { size: streamed.length });
  const direct = await cluster.rank0Traffic() - trafficBefore;
  assert.ok(direct < RANK0_TRAFFIC_BYTES_MAX, `rank 0 moved ${direct} bytes for 12 MiB of puts`);
  assert.deepEqual([a.size, a.sha256], [buffer.length, sha256(buffer)]);
  assert.deepEqual([b.size, b.sha256], [streamed.length, sha256(streamed)]);
  assert.equal(b.chunks.length, 8);
  for (const chunk of [...a.chunks, ...b.chunks]) assert.equal(new Set(chunk.ranks).size, 2);
  // Rank 0 counts a direct upload's bytes as written at its commit, as it counts its own.
  assert.equal(await cluster.writtenBytes() - writtenBefore, buffer.length + streamed.length);
  // The client wrote to each data port, over one connection it keeps.
  const ports = await dataPortsOf(cluster.server, "stream.bin");
  assert.equal(Object.keys(ports).length, 2);
  for (const port of Object.values(ports)) assert.equal(await connectionsTo(port), 1);

  // The same bytes come back, to this client and to one reading through rank 0.
  assert.equal(sha256(await client.getBytes("buffer.bin")), sha256(buffer));
  assert.equal(sha256(await client.getBytes("stream.bin")), sha256(streamed));
  const viaRank0 = await cluster.client({ direct: false });
  assert.equal(sha256(await viaRank0.getBytes("stream.bin")), sha256(streamed));
  assert.deepEqual(
    await viaRank0.getBytes("buffer.bin", { start: MiB - 5, end: 2 * MiB + 5 }),
    buffer.subarray(MiB - 5, 2 * MiB + 5),
  );
  await assertHealthy(client, 2);

  // The same puts through rank 0 move every byte through its process.
  const trafficThrough = await cluster.rank0Traffic();
  await viaRank0.put("buffer2.bin", buffer);
  await viaRank0.put("stream2.bin", piecesOf(streamed), { size: streamed.length });
  const through = await cluster.rank0Traffic() - trafficThrough;
  assert.ok(through > 2.5 * (buffer.length + streamed.length), `through rank 0: ${through} bytes`);
  assert.equal(sha256(await client.getBytes("stream2.bin")), sha256(streamed));
});

Deno.test("a client with direct: false puts through rank 0, the same bytes", async () => {
  await using cluster = await directCluster([true, true]);
  const data = pseudoRandomBytes(4 * MiB + 99, 23);
  const client = await cluster.client({ direct: false });
  const trafficBefore = await cluster.rank0Traffic();
  const meta = await client.put("f.bin", data);
  const moved = await cluster.rank0Traffic() - trafficBefore;
  assert.ok(moved > 2.5 * data.length, `rank 0 carried the bytes: ${moved}`);
  const ports = await dataPortsOf(cluster.server, "f.bin");
  for (const port of Object.values(ports)) assert.equal(await connectionsTo(port), 0);
  assert.equal(meta.sha256, sha256(data));
  assert.equal(sha256(await client.getBytes("f.bin")), sha256(data));
  await assertHealthy(client, 1);
});

Deno.test("with one node of two with a data port and 2 replicas, a put goes through rank 0 and works", async () => {
  await using cluster = await directCluster([true, false]);
  // Asked for a plan, rank 0 answers without one: the bytes are to come to it.
  using raw = await rawConnection(cluster.server.address, { hello: true });
  await raw.send({ op: "put", id: 1, name: "x", size: 4 * MiB, checksums: true, direct: true });
  const ok = await withTimeout(raw.next(), { timeoutMs: 10_000, what: "the put's answer" });
  assert.deepEqual(ok, { op: "ok", id: 1 });
  await raw.send({ op: "abort", id: 1 });

  const client = await cluster.client();
  const data = pseudoRandomBytes(6 * MiB + 1, 24);
  const trafficBefore = await cluster.rank0Traffic();
  const meta = await client.put("f.bin", piecesOf(data), { size: data.length });
  assert.ok(await cluster.rank0Traffic() - trafficBefore > 2.5 * data.length, "through rank 0");
  for (const chunk of meta.chunks) assert.equal(new Set(chunk.ranks).size, 2);
  assert.equal(sha256(await client.getBytes("f.bin")), sha256(data));
  await assertHealthy(client, 1);
  await assert.rejects(client.meta("x"), (e) => e instanceof DfsError && e.code === "NOT_FOUND");
});

Deno.test("a put whose source gives fewer or more bytes than declared fails and leaves nothing", async () => {
  await using cluster = await directCluster([true, true]);
  const client = await cluster.client();
  const old = pseudoRandomBytes(3 * MiB, 25);
  const v1 = await client.put("f", old);
  const blobs = await cluster.blobs();
  assert.equal(blobs.length, 2, "the old version's blob on each node");
  const data = pseudoRandomBytes(9 * MiB, 26);
  const cases: [string, string, Uint8Array, number][] = [
    ["fewer bytes, over an old version", "f", data.subarray(0, 6 * MiB + 1), 7 * MiB],
    ["more bytes, over an old version", "f", data, 8 * MiB + 2],
    ["fewer bytes, a new name", "g", data.subarray(0, 2 * MiB - 1), 2 * MiB],
    ["more bytes, a new name", "g", data, 2 * MiB],
  ];
  for (const [why, name, bytes, size] of cases) {
    // Its pieces, until the source breaks its word, once what came before is on both nodes.
    const breaking = async function* () {
      let at = 0;
      for (; at < Math.min(bytes.length, size); at += 300_007) yield bytes.slice(at, at + 300_007);
      const deadline = Date.now() + STATE_TIMEOUT_MS;
      while ((await cluster.blobs()).length < blobs.length + 2) {
        assert.ok(Date.now() < deadline, `${why}: the upload wrote to both nodes`);
        await sleep(10);
      }
      yield* piecesOf(bytes.subarray(at));
    };
    await assert.rejects(
      client.put(name, breaking(), { size }),
      (e) => e instanceof DfsError && e.code === "INVALID_REQUEST" && /declared/.test(e.message),
      why,
    );
    assert.equal((await client.meta("f")).version, v1.version, `${why}: f is the old version`);
    await assert.rejects(client.meta("g"), (e) => e instanceof DfsError, why);
    await waitForBlobs(cluster, blobs, `${why}: the upload's blobs were discarded`);
  }
  assert.equal(sha256(await client.getBytes("f")), sha256(old));
  // The client puts on as usual.
  await client.put("g", data, { size: data.length });
  assert.equal(sha256(await client.getBytes("g")), sha256(data));
  await assertHealthy(client, 2);
});

/** Writes chunk `k` of `data` along `plan` to each of its nodes (or starts to). */
function writeChunk(
  links: DataLinks,
  plan: ReturnType<typeof parsePlan>,
  k: number,
  data: Uint8Array,
): Promise<void>[] {
  const bytes = data.subarray(k * MiB, (k + 1) * MiB);
  const request = {
    chunk: `${plan.blob}-${(k * MiB).toString(16)}`,
    crc32: crc32(bytes),
    grant: plan.grant,
  };
  return plan.ranks[k].map((rank) => links.write(plan.nodes[rank], request, bytes));
}

Deno.test("a client that vanishes mid direct upload leaves no file, and its blob is discarded", async () => {
  await using cluster = await directCluster([true, true]);
  const client = await cluster.client();
  await client.put("kept", pseudoRandomBytes(2 * MiB, 27));
  const blobs = await cluster.blobs();
  const data = pseudoRandomBytes(16 * MiB, 28);
  for (const vanish of ["after its writes landed", "with writes in flight"]) {
    const raw = await rawConnection(cluster.server.address, { hello: true });
    await raw.send({
      op: "put",
      id: 7,
      name: "gone",
      size: data.length,
      checksums: true,
      direct: true,
    });
    const ok = await withTimeout(raw.next(), { timeoutMs: 10_000, what: "the plan" });
    assert.equal(ok.op, "ok", JSON.stringify(ok));
    const plan = parsePlan(ok.plan, 16);
    const links = new DataLinks({ connectTimeoutMs: 5_000 });
    try {
      for (let k = 0; k < 4; k++) await Promise.all(writeChunk(links, plan, k, data));
      assert.equal((await cluster.blobs()).length, blobs.length + 2, "written on both nodes");
      const inflight = [];
      if (vanish === "with writes in flight") {
        for (let k = 4; k < 16; k++) inflight.push(...writeChunk(links, plan, k, data));
      }
      raw.close(); // gone, without an abort
      await Promise.allSettled(inflight);
      await waitForBlobs(cluster, blobs, `${vanish}: the upload's blob is gone from the nodes`);
      // The nodes closed the upload: the grant, still valid, writes nothing more.
      await assert.rejects(
        Promise.all(writeChunk(links, plan, 4, data)),
        (e) => e instanceof DfsError && e.code === "UNAUTHORIZED",
      );
      await sleep(300);
      assert.deepEqual(await cluster.blobs(), blobs, `${vanish}: no late write made a blob`);
    } finally {
      links.close();
      raw.close();
    }
    await assert.rejects(
      client.meta("gone"),
      (e) => e instanceof DfsError && e.code === "NOT_FOUND",
    );
  }
  await assertHealthy(client, 1);
});

Deno.test("a client process killed mid direct upload leaves no file, and its blob is discarded", async () => {
  await using cluster = await directCluster([true, true]);
  const client = await cluster.client();
  const blobs = await cluster.blobs();
  // A put of 200 MiB that makes a MiB every 20 ms: it is still writing when killed.
  const script = `
    import { DfsClient } from "${ROOT}client.ts";
    const client = await DfsClient.connect("${cluster.server.address}");
    async function* slow() {
      for (let i = 0; i < 200; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        yield new Uint8Array(${MiB}).fill(i);
      }
    }
    await client.put("gone", slow(), { size: ${200 * MiB} });
  `;
  const trafficBefore = await cluster.rank0Traffic();
  const child = new Deno.Command(DENO, {
    args: ["eval", "--quiet", script],
    stdout: "null",
    stderr: "piped",
    cwd: ROOT,
  }).spawn();
  try {
    // Its chunks reach both nodes' blobs (8 MiB of them, say), and not through rank 0.
    const deadline = Date.now() + STATE_TIMEOUT_MS;
    const stored = async () => {
      let bytes = 0;
      for (const n of cluster.nodes) bytes += await allocatedBytes(`${n.dataDir}/store/chunks`);
      return bytes;
    };
    while ((await cluster.blobs()).length < blobs.length + 2 || await stored() < 8 * MiB) {
      assert.ok(Date.now() < deadline, "the killed client's upload reached both nodes");
      await sleep(20);
    }
    const carried = await cluster.rank0Traffic() - trafficBefore;
    assert.ok(carried < RANK0_TRAFFIC_BYTES_MAX, `rank 0 carried ${carried} bytes of it`);
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await child.stderr.cancel();
  }
  await waitForBlobs(cluster, blobs, "the killed client's blob is gone from the nodes");
  await assert.rejects(client.meta("gone"), (e) => e instanceof DfsError && e.code === "NOT_FOUND");
  await sleep(300);
  assert.deepEqual(await cluster.blobs(), blobs, "no late write made a blob");
});

for (const when of ["before", "while"]) {
  Deno.test(`with 3 data ports and 2 replicas, a node killed ${when} a large put writes: the put succeeds`, async () => {
    await using cluster = await directCluster([true, true, true]);
    const client = await cluster.client();
    const data = pseudoRandomBytes(40 * MiB + 3, 29);
    const [victim, ...alive] = cluster.nodes;
    if (when === "before") {
      await victim.stop("SIGKILL");
      await waitForStates(client, { [victim.rank]: "down" });
    }
    async function* source() {
      for (let at = 0; at < data.length; at += MiB) {
        if (when === "while" && at === 10 * MiB) {
          // A quarter of the file written: once 3 chunks are in the victim's blob (and answered
          // written, most likely), it dies.
          const deadline = Date.now() + STATE_TIMEOUT_MS;
          while (await allocatedBytes(`${victim.dataDir}/store/chunks`) < 3 * MiB) {
            assert.ok(Date.now() < deadline, "the put wrote to the victim");
            await sleep(10);
          }
          await sleep(100);
          await victim.stop("SIGKILL");
        }
        yield data.slice(at, at + MiB);
      }
    }
    const trafficBefore = await cluster.rank0Traffic();
    const meta = await client.put("big.bin", source(), { size: data.length });
    assert.equal(meta.sha256, sha256(data));
    for (const chunk of meta.chunks) {
      assert.equal(new Set(chunk.ranks).size, 2, "2 replicas of every chunk");
      assert.ok(!chunk.ranks.includes(victim.rank), "none on the dead node");
    }
    // Written directly: rank 0 carried only the replicas the victim had confirmed, which it
    // copied from their other node to the third at the commit (the victim's own seal failing).
    const moved = await cluster.rank0Traffic() - trafficBefore;
    if (when === "before") assert.ok(moved < RANK0_TRAFFIC_BYTES_MAX, `rank 0 moved ${moved}`);
    else assert.ok(moved > 2 * MiB && moved < 10 * MiB + RANK0_TRAFFIC_BYTES_MAX, `${moved}`);
    assert.equal(sha256(await client.getBytes("big.bin")), sha256(data));
    // Read by another client from the two live nodes alone.
    const reader = await cluster.client();
    assert.equal(sha256(await reader.getBytes("big.bin")), sha256(data));
    const fsck = await client.fsck();
    assert.deepEqual([fsck.healthy, fsck.lost, fsck.underReplicated], [1, [], []]);
    const ports = await dataPortsOf(cluster.server, "big.bin");
    assert.deepEqual(Object.keys(ports).sort(), alive.map((n) => String(n.rank)).sort());
    if (when === "before") return;
    // The victim comes back: the part of the blob it had is no file's, and goes.
    const kept = (await cluster.blobs()).filter((b) => !b.startsWith(`${victim.rank}/`));
    assert.ok((await cluster.blobs()).length > kept.length, "the victim held part of the blob");
    await using again = await TestNode.start(cluster.server.nodeAddress!, {
      dataDir: victim.dataDir,
      secretFile: `${cluster.dir}/cluster-secret`,
      args: ["--data-port", "0"],
    });
    assert.equal(again.rank, victim.rank);
    await waitForStates(client, { [victim.rank]: "up" });
    await waitForBlobs(cluster, kept, "the restarted node dropped its part of the blob");
    assert.equal(sha256(await reader.getBytes("big.bin")), sha256(data));
  });
}

/**
 * How long a direct put may take with a node hung under it: one wait of the data link's silence
 * limit (or of the client's connect timeout, as long, for a link opened to the hung node), the
 * chunks that waited then written to the nodes rank 0 names instead, and a margin for a loaded
 * test host.
 */
const HUNG_PUT_MS_MAX = DATA_LINK_SILENCE_MS + 8_000;

for (
  const when of ["before rank 0 plans the put", "as the put starts writing", "while the put writes"]
) {
  Deno.test(`with 3 data ports and 2 replicas, a node hung ${when}: the put succeeds`, async () => {
    await using cluster = await directCluster([true, true, true]);
    const client = await cluster.client();
    const data = pseudoRandomBytes(12 * MiB + 7, 30);
    const [victim, ...alive] = cluster.nodes;
    let stoppedAt = 0;
    const stop = () => {
      victim.process.kill("SIGSTOP");
      stoppedAt = performance.now();
    };
    // The source is read once rank 0's plan is in hand: a node hung then is in the plan.
    async function* source() {
      for (let at = 0; at < data.length; at += MiB) {
        if (when === "as the put starts writing" && at === 0) stop();
        if (when === "while the put writes" && at === 4 * MiB) {
          // A third of the file written: once 2 chunks are in the victim's blob (and answered
          // written, most likely), it hangs.
          const deadline = Date.now() + STATE_TIMEOUT_MS;
          while (await allocatedBytes(`${victim.dataDir}/store/chunks`) < 2 * MiB) {
            assert.ok(Date.now() < deadline, "the put wrote to the victim");
            await sleep(10);
          }
          await sleep(100);
          stop();
        }
        yield data.slice(at, at + MiB);
      }
    }
    assert.deepEqual(await cluster.blobs(), [], "no blob yet");
    const trafficBefore = await cluster.rank0Traffic();
    let meta;
    try {
      // Hung just before the put: rank 0 has not noticed yet (its heartbeat waits 5 s).
      if (when === "before rank 0 plans the put") stop();
      meta = await withTimeout(client.put("big.bin", source(), { size: data.length }), {
        timeoutMs: 2 * HUNG_PUT_MS_MAX,
        what: "the put",
      });
      if (when === "while the put writes") {
        const victimBlobs = (await cluster.blobs()).filter((b) => b.startsWith(`${victim.rank}/`));
        assert.equal(victimBlobs.length, 1, "the victim held part of the upload's blob");
      }
      await waitForStates(client, { [victim.rank]: "down" }); // rank 0 noticed, meanwhile
    } finally {
      victim.process.kill("SIGCONT");
    }
    const elapsed = performance.now() - stoppedAt;
    assert.ok(elapsed < HUNG_PUT_MS_MAX, `the put got past the hung node in ${elapsed} ms`);
    assert.equal(meta.sha256, sha256(data));
    for (const chunk of meta.chunks) {
      assert.equal(new Set(chunk.ranks).size, 2, "2 replicas of every chunk");
      assert.ok(!chunk.ranks.includes(victim.rank), "none on the hung node");
    }
    const moved = await cluster.rank0Traffic() - trafficBefore;
    if (when === "before rank 0 plans the put") {
      // Rank 0 could not open the upload on the victim within DIRECT_EXPECT_TIMEOUT_MS: it placed
      // the victim's chunks on the two others, and the client wrote them there directly.
      assert.ok(elapsed >= DIRECT_EXPECT_TIMEOUT_MS - 100, `waited for the victim: ${elapsed} ms`);
      assert.ok(moved < RANK0_TRAFFIC_BYTES_MAX, `rank 0 moved ${moved}`);
    } else {
      // Written directly: the victim's writes waited out its silence and went to the nodes rank 0
      // named instead; rank 0 carried only the replicas the victim had confirmed before it hung,
      // copied at the commit from their other node to the third (the victim's seal failing).
      assert.ok(elapsed >= DATA_LINK_SILENCE_MS - 1_000, `waited for the victim: ${elapsed} ms`);
      if (when === "as the put starts writing") {
        assert.ok(moved < RANK0_TRAFFIC_BYTES_MAX, `rank 0 moved ${moved}`);
      } else assert.ok(moved > MiB && moved < 4 * MiB + RANK0_TRAFFIC_BYTES_MAX, `${moved}`);
    }
    assert.equal(sha256(await client.getBytes("big.bin")), sha256(data));

    // Woken, the victim is back; what it holds of the upload is no file's, and goes; nothing is
    // lost.
    await waitForStates(client, { [victim.rank]: "up" });
    const ports = await dataPortsOf(cluster.server, "big.bin");
    assert.deepEqual(Object.keys(ports).sort(), alive.map((n) => String(n.rank)).sort());
    const ours = (b: string) => b.startsWith(`${victim.rank}/`);
    const others = (await cluster.blobs()).filter((b) => !ours(b));
    assert.equal(others.length, 2, "the file's blob on each of the other nodes");
    await waitForBlobs(cluster, others, "the victim dropped its part of the upload");
    await assertHealthy(client, 1);
    const reader = await cluster.client();
    assert.equal(sha256(await reader.getBytes("big.bin")), sha256(data), "read by another client");
  });
}
