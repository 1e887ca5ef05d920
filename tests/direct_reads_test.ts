/**
 * Direct reads end to end (`protocol/direct.ts`): a server with `--ranks 1` and `dfs node`
 * processes with data ports (`--data-port 0`) on 127.0.0.1. A client reads large files from the
 * nodes, which is seen from outside: rank 0's count of bytes read (the dashboard's
 * `/api/throughput`) does not move, and the client holds connections to the data ports. A damaged
 * replica on the only node with a data port is failed over through rank 0; a version stays
 * pinned while a direct read is open; a client with `direct: false` reads through rank 0. A node
 * that hangs (stopped: its sockets open, nothing answered) under a read is failed over to the other
 * replica once its silence limit is up.
 */

import assert from "node:assert/strict";
import { firstReplica, idsOf } from "../protocol/direct.ts";
import { DATA_LINK_SILENCE_MS, DIRECT_CHUNKS_INFLIGHT_MAX } from "../protocol/direct_reader.ts";
import { FRAME_SIZE_BYTES_MAX } from "../protocol/limits.ts";
import { concatBytes } from "../protocol/bytes.ts";
import { pseudoRandomBytes, sha256 } from "./_bytes.ts";
import {
  connectionsTo,
  directCluster,
  noConnectionsTo,
  portOf,
  routeOf,
  STATE_TIMEOUT_MS,
  waitForStates,
} from "./_direct_cluster.ts";
import { sleep, withTimeout } from "./_wait.ts";

const MiB = 1024 * 1024;

Deno.test("a client reads a large file from the nodes' data ports, not through rank 0", async () => {
  await using cluster = await directCluster([true, true]);
  const data = pseudoRandomBytes(5 * MiB + 17, 11);
  const writer = await cluster.client();
  await writer.put("big.bin", data);
  writer.close(); // its links to the data ports (the put wrote there) close with it

  const route = await routeOf(cluster.server, "big.bin");
  assert.ok(route, "rank 0 offers a route");
  const ranks = cluster.nodes.map((n) => String(n.rank)).sort();
  assert.deepEqual(Object.keys(route.nodes).sort(), ranks, "both nodes serve it");
  for (const address of Object.values(route.nodes)) assert.match(address, /^127\.0\.0\.1:\d+$/);
  const ports = Object.values(route.nodes).map(portOf);
  assert.equal(new Set(ports).size, 2);
  assert.deepEqual(route.runs.map((run) => run.chunks), [6], "one run of the file's 6 chunks");

  const before = await cluster.readBytes();
  const reader = await cluster.client();
  for (const port of ports) await noConnectionsTo(port); // no client reads yet
  assert.equal(sha256(await reader.getBytes("big.bin")), sha256(data));
  const range = { start: MiB + MiB / 2 + 3, end: 4 * MiB + 11 };
  assert.equal(
    sha256(await reader.getBytes("big.bin", range)),
    sha256(data.subarray(range.start, range.end)),
  );
  const { stream } = await reader.open("big.bin", { start: 7, end: data.length });
  const streamed = new Uint8Array(await new Response(stream).arrayBuffer());
  assert.equal(sha256(streamed), sha256(data.subarray(7)));
  // Chunks are spread over the replicas: the client holds one connection to each data port (for
  // all its reads, several at once), and rank 0 handed none of the bytes to a reader.
  for (const port of ports) assert.equal(await connectionsTo(port), 1, `one link to :${port}`);
  assert.equal(await cluster.readBytes(), before, "no byte was read through rank 0");

  // A read below a chunk is answered by rank 0 itself.
  const small = await reader.getBytes("big.bin", { start: 10, end: 1000 });
  assert.deepEqual(small, data.subarray(10, 1000));
  assert.equal(await cluster.readBytes(), before + 990);
  // Closing the client closes its links to the data ports (they would hold a process open).
  reader.close();
  for (const port of ports) await noConnectionsTo(port);
});

Deno.test("a client with direct: false reads through rank 0, the same bytes", async () => {
  await using cluster = await directCluster([true, true]);
  const data = pseudoRandomBytes(5 * MiB + 17, 12);
  const writer = await cluster.client();
  await writer.put("big.bin", data);
  writer.close(); // its links to the data ports (the put wrote there) close with it
  const route = await routeOf(cluster.server, "big.bin");
  const ports = Object.values(route!.nodes).map(portOf);
  for (const port of ports) await noConnectionsTo(port);
  const before = await cluster.readBytes();
  const client = await cluster.client({ direct: false });
  assert.equal(sha256(await client.getBytes("big.bin")), sha256(data));
  const range = { start: 3 * MiB - 1, end: 5 * MiB };
  assert.equal(
    sha256(await client.getBytes("big.bin", range)),
    sha256(data.subarray(range.start, range.end)),
  );
  assert.equal(await cluster.readBytes(), before + data.length + (range.end - range.start));
  for (const port of ports) assert.equal(await connectionsTo(port), 0, "no data port was used");
});

Deno.test("getInto writes a file through the sink a piece at a time, reading into the same few buffers", async () => {
  await using cluster = await directCluster([true, true]);
  const data = pseudoRandomBytes(24 * MiB + 17, 14);
  const writer = await cluster.client();
  await writer.put("big.bin", data);
  await writer.put("small.bin", data.subarray(0, 100));
  writer.close();
  for (const direct of [true, false]) {
    const client = await cluster.client({ direct });
    const start = 5;
    const read = new Uint8Array(data.length - start);
    const buffers = new Set<ArrayBufferLike>();
    let at = 0;
    let told = -1;
    const sink = {
      write: async (bytes: Uint8Array) => {
        await sleep(0); // a write that resolves later, as a file's does
        const n = Math.min(bytes.length, 300_000); // and may take part of the bytes
        buffers.add(bytes.buffer);
        read.set(bytes.subarray(0, n), at);
        at += n;
        return n;
      },
    };
    const meta = await client.getInto("big.bin", sink, { start, opened: (m) => told = m.size });
    assert.equal(told, data.length, "told the metadata first");
    assert.equal(meta.size, data.length);
    assert.equal(at, read.length);
    assert.equal(sha256(read), sha256(data.subarray(start)), `direct: ${direct}`);
    // 25 chunks, read into the window's buffers and one being written, not 25 new ones.
    assert.ok(buffers.size <= DIRECT_CHUNKS_INFLIGHT_MAX + 3, `direct: ${direct}: ${buffers.size}`);

    // A range with an end, and a small file (its one frame under the pool's size).
    const parts: Uint8Array[] = [];
    const keep = {
      write: (bytes: Uint8Array) => (parts.push(bytes.slice()), Promise.resolve(bytes.length)),
    };
    await client.getInto("big.bin", keep, { start: MiB - 3, end: 3 * MiB + 7 });
    await client.getInto("small.bin", keep);
    const joined = concatBytes(parts);
    const want = [data.subarray(MiB - 3, 3 * MiB + 7), data.subarray(0, 100)];
    assert.equal(sha256(joined), sha256(concatBytes(want)));

    // Once a read is over, the connection's reader (not the data links') reads into buffers of
    // their own again.
    const { stream } = await client.open("big.bin");
    for await (const piece of stream) {
      if (!direct) assert.notEqual(piece.buffer.byteLength, FRAME_SIZE_BYTES_MAX);
    }

    // A sink that fails: its own error, not the server's connection's; the client goes on.
    const broken = new Deno.errors.BrokenPipe("Broken pipe (os error 32)");
    const failing = { write: () => Promise.reject(broken) };
    await assert.rejects(client.getInto("big.bin", failing), (error) => error === broken);
    // A sink that says it took nothing (or more than it was given) is an error, not a loop.
    for (const n of [0, undefined, MiB + 1]) {
      const odd = { write: () => Promise.resolve(n as number) };
      await assert.rejects(client.getInto("big.bin", odd), /A sink wrote/);
    }
    assert.equal(sha256(await client.getBytes("big.bin")), sha256(data));
    client.close();
  }
});

Deno.test("a direct read fails over through rank 0 when the only node with a data port has damaged chunks", async () => {
  await using cluster = await directCluster([true, false]);
  const data = pseudoRandomBytes(4 * MiB + 500, 13);
  await (await cluster.client()).put("big.bin", data);
  const route = await routeOf(cluster.server, "big.bin");
  assert.ok(route, "rank 0 offers a route");
  const served = cluster.nodes[0];
  assert.deepEqual(Object.keys(route.nodes), [String(served.rank)], "only node 1 has a port");

  // Damage every chunk of node 1's replica on disk (the file's one blob there).
  const chunks = `${served.dataDir}/store/chunks`;
  const blobs: string[] = [];
  for await (const entry of Deno.readDir(chunks)) {
    if (/^[0-9a-f]{32}$/.test(entry.name)) blobs.push(entry.name);
  }
  assert.deepEqual(blobs, [route.runs[0].blob], "node 1 holds the file's blob");
  const damage = async () => {
    using file = await Deno.open(`${chunks}/${blobs[0]}`, { read: true, write: true });
    for (let offset = 100; offset < data.length; offset += MiB) {
      await file.seek(offset, Deno.SeekMode.Start);
      await file.write(new Uint8Array([data[offset] ^ 0xff]));
    }
    await file.syncData();
  };

  // The client checks each chunk itself (verify) or has the node check it: either way every
  // chunk is fetched through rank 0, which reads node 2's good replica. (Damaged again for the
  // second client: rank 0 may have repaired node 1's replica meanwhile.)
  const port = portOf(route.nodes[String(served.rank)]);
  for (const verify of [true, false]) {
    await damage();
    const before = await cluster.readBytes();
    const client = await cluster.client({ verify });
    assert.equal(sha256(await client.getBytes("big.bin")), sha256(data), `verify: ${verify}`);
    assert.equal(await connectionsTo(port), 1, "the client went to the data port first");
    assert.equal(await cluster.readBytes(), before + data.length, "then through rank 0");
    client.close();
    await noConnectionsTo(port);
  }
});

Deno.test("a direct read keeps the version it opened while the name is overwritten", async () => {
  await using cluster = await directCluster([true, true]);
  // More chunks than a direct read has in flight, so most are read after the overwrite.
  const old = pseudoRandomBytes(24 * MiB + 3, 14);
  const writer = await cluster.client();
  await writer.put("f", old);
  const oldBlob = (await routeOf(cluster.server, "f"))!.runs[0].blob;
  const blobFiles = async () => {
    const names: string[] = [];
    for (const node of cluster.nodes) {
      for await (const e of Deno.readDir(`${node.dataDir}/store/chunks`)) names.push(e.name);
    }
    return names.filter((name) => name === oldBlob).length;
  };
  assert.equal(await blobFiles(), 2, "both nodes hold the old version's blob");

  const before = await cluster.readBytes();
  const reader = await cluster.client();
  const { meta, stream } = await reader.open("f");
  assert.equal(meta.size, old.length);
  const pieces = stream.getReader();
  const first = await pieces.read();
  assert.ok(!first.done && first.value.length > 0);
  const newer = pseudoRandomBytes(3 * MiB, 15);
  const overwritten = await writer.put("f", newer);
  assert.ok(overwritten.version > meta.version);
  assert.equal(sha256(await writer.getBytes("f")), sha256(newer), "the name is the new file");
  await sleep(500); // time for rank 0 to release the old version, were it not pinned
  assert.equal(await blobFiles(), 2, "the old version is kept while it is read");

  const parts = [first.value];
  while (true) {
    const { done, value } = await pieces.read();
    if (done) break;
    parts.push(value);
  }
  const got = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  parts.reduce((at, part) => (got.set(part, at), at + part.length), 0);
  assert.equal(got.length, old.length);
  assert.equal(sha256(got), sha256(old), "the old content, intact");
  assert.equal(await cluster.readBytes() - before, 0, "all of it from the nodes");
  // Done: rank 0 lets the old version go.
  const deadline = Date.now() + STATE_TIMEOUT_MS;
  while (await blobFiles() > 0) {
    assert.ok(Date.now() < deadline, "the old version was released once the read was done");
    await sleep(100);
  }
});

/**
 * How long a direct read may take with a node hung under it: one wait of the data link's silence
 * limit (or of the client's connect timeout, as long, for a link opened to the hung node), the
 * chunks that waited then read from their other replica, and a margin for a loaded test host.
 */
const HUNG_READ_MS_MAX = DATA_LINK_SILENCE_MS + 8_000;

Deno.test("getInto's sink failing says so at once, not after reads in flight to a hung node", async () => {
  await using cluster = await directCluster([true, true]);
  const data = pseudoRandomBytes(30 * MiB, 17);
  const reader = await cluster.client();
  // The victim: the node the first chunk is not read from (its piece comes, and the sink fails
  // on it), but some of the chunks read along with it are; a new version until that holds.
  let victim: (typeof cluster.nodes)[number] | undefined;
  for (let put = 0; victim === undefined; put++) {
    assert.ok(put < 8, "a version whose first chunks are read from both nodes");
    await reader.put("big.bin", data);
    const meta = await reader.meta("big.bin");
    const route = await routeOf(cluster.server, "big.bin");
    const ids = idsOf(route!.runs, meta.chunks.map((c) => c.size));
    const firstRank = (k: number) =>
      meta.chunks[k].ranks[firstReplica(ids[k], meta.chunks[k].ranks.length)];
    const other = cluster.nodes.find((n) => n.rank !== firstRank(0))!;
    const window = Array.from({ length: DIRECT_CHUNKS_INFLIGHT_MAX }, (_, k) => firstRank(k));
    if (window.includes(other.rank)) victim = other;
  }
  await reader.getBytes("big.bin", { start: 0, end: 2 * MiB + 5 }); // links to both data ports
  victim.process.kill("SIGSTOP");
  try {
    const broken = new Deno.errors.BrokenPipe("Broken pipe (os error 32)");
    const failing = { write: () => Promise.reject(broken) };
    const started = performance.now();
    await assert.rejects(reader.getInto("big.bin", failing), (error) => error === broken);
    const elapsed = performance.now() - started;
    // Its reads to the hung node are left to fail over on their own (they did hold it ~10 s).
    assert.ok(elapsed < DATA_LINK_SILENCE_MS / 2, `the sink's error after ${elapsed} ms`);
  } finally {
    victim.process.kill("SIGCONT");
  }
  assert.equal(sha256(await reader.getBytes("big.bin")), sha256(data), "read again");
});

for (const when of ["before the read", "after the first piece"]) {
  Deno.test(`a direct read with a node hung ${when} fails over to the other replicas`, async () => {
    await using cluster = await directCluster([true, true, true]);
    const data = pseudoRandomBytes(12 * MiB + 5, 16);
    const writer = await cluster.client();
    await writer.put("big.bin", data);
    writer.close();
    const meta = await (await cluster.client()).meta("big.bin");
    const route = await routeOf(cluster.server, "big.bin");
    assert.ok(route, "rank 0 offers a route");
    assert.equal(Object.keys(route.nodes).length, 3, "every node serves part of it");
    // The node a chunk is read from first (as `readDirect` picks it): the victim is the one of
    // the first chunk read after it hangs (before the read: the first; after the first piece:
    // the first the read asks for only then, once the first piece is taken).
    const ids = idsOf(route.runs, meta.chunks.map((c) => c.size));
    const firstRank = (k: number) =>
      meta.chunks[k].ranks[firstReplica(ids[k], meta.chunks[k].ranks.length)];
    const waiting = when === "before the read" ? 0 : DIRECT_CHUNKS_INFLIGHT_MAX;
    const victim = cluster.nodes.find((n) => n.rank === firstRank(waiting))!;

    const reader = await cluster.client();
    const before = await cluster.readBytes();
    let stoppedAt = 0;
    const stop = () => {
      victim.process.kill("SIGSTOP");
      stoppedAt = performance.now();
    };
    let got: Uint8Array;
    try {
      if (when === "before the read") stop(); // rank 0 takes a few seconds to notice
      const { stream } = await reader.open("big.bin");
      const pieces = stream.getReader();
      const parts: Uint8Array[] = [];
      const read = (async () => {
        while (true) {
          const { done, value } = await pieces.read();
          if (done) break;
          parts.push(value);
          if (stoppedAt === 0) stop();
        }
      })();
      await withTimeout(read, { timeoutMs: 2 * HUNG_READ_MS_MAX, what: "the read" });
      got = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
      parts.reduce((at, part) => (got.set(part, at), at + part.length), 0);
      await waitForStates(reader, { [victim.rank]: "down" }); // rank 0 noticed, meanwhile
    } finally {
      victim.process.kill("SIGCONT");
    }
    const elapsed = performance.now() - stoppedAt;
    assert.equal(sha256(got), sha256(data), "the whole file, intact");
    // The chunks the victim was to give waited out its silence (or its hello), then came from
    // their other replica: none through rank 0.
    assert.ok(elapsed >= DATA_LINK_SILENCE_MS - 1_000, `waited for the hung node: ${elapsed} ms`);
    assert.ok(elapsed < HUNG_READ_MS_MAX, `failed over in time: ${elapsed} ms`);
    assert.equal(await cluster.readBytes(), before, "no byte was read through rank 0");

    // Woken, the node is back and nothing was lost.
    await waitForStates(reader, { [victim.rank]: "up" });
    const fsck = await reader.fsck();
    assert.deepEqual([fsck.files, fsck.healthy, fsck.lost, fsck.underReplicated], [1, 1, [], []]);
    assert.equal(sha256(await reader.getBytes("big.bin")), sha256(data), "read again");
  });
}
