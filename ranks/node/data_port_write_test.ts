/**
 * Direct writes on a data port (`data_port.ts`, `direct_writes.ts`) over a real data node in a
 * temp folder, on a real socket: a client writes the chunks of an upload the node expects through
 * `DataLinks.write()` with a write grant, and rank 0's seal and commit (sent here as node calls)
 * make them a file that reads back. Grants of the wrong mode, blobs not open, damaged bytes and
 * out-of-step connections are refused without touching the blob or disturbing anyone else.
 */

import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { BufferPool } from "../../protocol/buffer_pool.ts";
import { DIRECT_PROTOCOL_VERSION, type Grant, grantKey, signGrant } from "../../protocol/direct.ts";
import { DataLinks } from "../../protocol/direct_reader.ts";
import { CHUNK_SIZE_BYTES, FRAME_SIZE_BYTES_MAX } from "../../protocol/limits.ts";
import { chunkIdOf, newBlobId } from "../common/chunk_id.ts";
import { denoEnv } from "../env/deno_env.ts";
import type { Log } from "../env/env.ts";
import { systemClock } from "../env/system.ts";
import { manifest } from "../testing/manifests.ts";
import type { DataNode } from "./data_node.ts";
import { DATA_PORT_TRANSFERS_MAX, type DataPort, serveDataPort } from "./data_port.ts";
import { openDataNode } from "./open_node.ts";
import { fails } from "../testing/fails.ts";
import { bytesOf } from "../testing/cluster_helpers.ts";
import { type DataChunk, rawDataConn } from "./_data_port_conn.ts";

const MiB = CHUNK_SIZE_BYTES;
const RANK = 4;
const utf8 = new TextEncoder();
const key = grantKey(utf8.encode("the cluster's secret"));
/** An upload of two whole chunks and a tail. */
const SIZES = [MiB, MiB, 70_000];
const SIZE = SIZES.reduce((a, b) => a + b);

/** A chunk of an upload. */
type Piece = DataChunk;

/** The chunks of an upload of `SIZES` into `blob`, their bytes made from `seed`. */
function piecesOf(blob: string, seed: number): Piece[] {
  return SIZES.map((size, k) => {
    const bytes = bytesOf(size, seed + k);
    return { id: chunkIdOf(blob, k * MiB), bytes, crc32: crc32(bytes) };
  });
}

/** A data node of `RANK` in a temp folder, served on a data port on 127.0.0.1. */
async function startPort() {
  const dir = await Deno.makeTempDir({ prefix: "dfs-data-port-write-" });
  const log: Log = { error: () => {} };
  const node: DataNode = await openDataNode(RANK, dir, { env: denoEnv({ log }) });
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const pool = new BufferPool(FRAME_SIZE_BYTES_MAX, { buffersMax: 64 });
  const port: DataPort = serveDataPort(listener, {
    node: () => node,
    key,
    pool,
    clock: systemClock,
    log,
  });
  const links = new DataLinks({ connectTimeoutMs: 5_000 });
  return {
    node,
    port,
    pool,
    links,
    address: `127.0.0.1:${port.port}`,
    /** Opens a new upload of `SIZE` bytes on the node, as rank 0's `expect` does. */
    async expect(): Promise<{ blob: string; grant: Grant }> {
      const blob = newBlobId();
      assert.equal(await node.handle({ op: "expect", blob, bytes: SIZE }), true);
      return { blob, grant: signGrant(key, [blob], Date.now() + 60_000, "write") };
    },
    /** Writes `p` through the data port with `grant`. */
    write(p: Piece, grant: Grant, crc = p.crc32): Promise<void> {
      return links.write(`127.0.0.1:${port.port}`, { chunk: p.id, crc32: crc, grant }, p.bytes);
    },
    /** Chunk `p` as a client reads it through the data port. */
    read(p: Piece, size = p.bytes.length): Promise<Uint8Array> {
      const grant = signGrant(key, [p.id.slice(0, 32)], Date.now() + 60_000);
      return links.read(`127.0.0.1:${port.port}`, { chunk: p.id, size, grant });
    },
    /** Rank 0's seal of the upload of `pieces`, as a node call. */
    seal(blob: string, pieces: Piece[]): Promise<unknown> {
      const chunks = pieces.map((p) => ({ id: p.id, size: p.bytes.length, crc32: p.crc32 }));
      return node.handle({ op: "seal", blob, chunks });
    },
    /** Whether the node has a blob file for `blob`. */
    async hasBlob(blob: string): Promise<boolean> {
      return await Deno.stat(`${dir}/chunks/${blob}`).then(() => true, () => false);
    },
    async [Symbol.asyncDispose]() {
      links.close();
      await port.close();
      await node.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("a client writes an expected upload's chunks to a data port; sealed and committed, they read back", async () => {
  await using p = await startPort();
  const { blob, grant } = await p.expect();
  const pieces = piecesOf(blob, 3);
  // All at once, over the one connection.
  await Promise.all(pieces.map((piece) => p.write(piece, grant)));
  // Written (not yet committed): readable from the blob already, byte for byte.
  for (const piece of pieces) assert.deepEqual(await p.read(piece), piece.bytes);
  assert.equal(await p.seal(blob, pieces), true);
  assert.equal(p.node.direct.size, 0, "the seal closed the upload");
  const m = manifest("direct.bin", 1, pieces.map((c) => [c.id, c.bytes.length, [RANK]]));
  m.chunks.forEach((c, k) => c.crc32 = pieces[k].crc32);
  assert.equal(await p.node.handle({ op: "commit", manifest: m }), true);
  for (const piece of pieces) assert.deepEqual(await p.read(piece), piece.bytes);
  // The node checks the committed chunks against their CRC32s as it reads them, too.
  for (const piece of pieces) {
    const read = await p.node.handle({
      op: "read",
      id: piece.id,
      size: piece.bytes.length,
      crc32: piece.crc32,
    });
    assert.deepEqual(read, piece.bytes);
  }
  // Every pooled buffer a write's bytes came in went back to the pool.
  assert.ok(p.pool.allocated > 0, "the writes' bytes came in pooled buffers");
  assert.equal(p.pool.idle, p.pool.allocated);
});

Deno.test("a read grant does not write and a write grant does not read", async () => {
  await using p = await startPort();
  const { blob, grant } = await p.expect();
  const pieces = piecesOf(blob, 5);
  const [first, second] = pieces;
  const readGrant = signGrant(key, [blob], Date.now() + 60_000);
  await assert.rejects(
    p.write(first, readGrant),
    fails("UNAUTHORIZED", /not let its holder write/),
  );
  // A write grant with its mode taken off (read) or a read grant made a write one: not signed.
  await assert.rejects(p.write(first, { ...grant, mode: undefined }), fails("UNAUTHORIZED"));
  await assert.rejects(p.write(first, { ...readGrant, mode: "write" }), fails("UNAUTHORIZED"));
  const forged = signGrant(grantKey(utf8.encode("a guess")), [blob], Date.now() + 60_000, "write");
  await assert.rejects(p.write(first, forged), fails("UNAUTHORIZED", /not signed/));
  const expired = signGrant(key, [blob], Date.now() - 3_600_000, "write");
  await assert.rejects(p.write(first, expired), fails("UNAUTHORIZED", /expired/));
  const otherBlob = signGrant(key, [newBlobId()], Date.now() + 60_000, "write");
  await assert.rejects(p.write(first, otherBlob), fails("UNAUTHORIZED", /does not cover/));
  assert.equal(await p.hasBlob(blob), false, "nothing refused was written");

  await p.write(first, grant);
  const link = p.address;
  const readWith = (g: Grant) =>
    p.links.read(link, { chunk: first.id, size: first.bytes.length, grant: g });
  await assert.rejects(readWith(grant), fails("UNAUTHORIZED", /not let its holder read/));
  assert.deepEqual(await readWith(readGrant), first.bytes);
  // None of it broke the link or the upload: it writes on and seals.
  await p.write(second, grant);
  await assert.rejects(p.seal(blob, pieces), fails("CORRUPTED"), "chunk 2 is missing");
  assert.equal(await p.seal(blob, [first, second]), true);
});

Deno.test("a write to a blob the node does not expect, or has sealed, is refused and leaves it as it was", async () => {
  await using p = await startPort();
  // Never expected: a valid write grant is not enough.
  const stranger = newBlobId();
  const strangerGrant = signGrant(key, [stranger], Date.now() + 60_000, "write");
  const [loose] = piecesOf(stranger, 7);
  await assert.rejects(p.write(loose, strangerGrant), fails("UNAUTHORIZED", /not open/));
  assert.equal(await p.hasBlob(stranger), false);

  // Sealed: the committed chunk's bytes may not be written over, even as the plan had them.
  const { blob, grant } = await p.expect();
  const pieces = piecesOf(blob, 9);
  for (const piece of pieces) await p.write(piece, grant);
  await p.seal(blob, pieces);
  const other = bytesOf(MiB, 99);
  const overwrite = { id: pieces[0].id, bytes: other, crc32: crc32(other) };
  await assert.rejects(p.write(overwrite, grant), fails("UNAUTHORIZED", /not open/));
  await assert.rejects(p.write(pieces[1], grant), fails("UNAUTHORIZED", /not open/));
  for (const piece of pieces) assert.deepEqual(await p.read(piece), piece.bytes);

  // Discarded (an aborted upload): closed, and its blob gone.
  const dropped = await p.expect();
  const [d0, d1] = piecesOf(dropped.blob, 11);
  await p.write(d0, dropped.grant);
  assert.equal(await p.hasBlob(dropped.blob), true);
  assert.equal(await p.node.handle({ op: "discard", ids: [d0.id] }), true);
  assert.equal(await p.hasBlob(dropped.blob), false);
  await assert.rejects(p.write(d1, dropped.grant), fails("UNAUTHORIZED", /not open/));
  assert.equal(await p.hasBlob(dropped.blob), false, "no late write brought it back");
});

Deno.test("a data port refuses a write at an offset or of a size the expected upload cannot have", async () => {
  await using p = await startPort();
  const { blob, grant } = await p.expect();
  const pieces = piecesOf(blob, 13);
  const short = pieces[0].bytes.subarray(0, MiB - 1);
  const cases: [string, Piece][] = [
    ["a whole chunk short by a byte", { ...pieces[0], bytes: short, crc32: crc32(short) }],
    ["the tail as a whole chunk", { ...pieces[1], id: pieces[2].id }],
    ["mid-chunk", { ...pieces[2], id: chunkIdOf(blob, 4096) }],
    ["past the upload's end", { ...pieces[2], id: chunkIdOf(blob, 3 * MiB) }],
  ];
  for (const [why, piece] of cases) {
    await assert.rejects(p.write(piece, grant), fails("INVALID_REQUEST", /not a chunk/), why);
  }
  assert.equal(await p.hasBlob(blob), false, "nothing was written");
  for (const piece of pieces) await p.write(piece, grant);
  assert.equal(await p.seal(blob, pieces), true);
});

Deno.test("a write whose bytes do not match its CRC32 gets CORRUPTED and counts as not written", async () => {
  await using p = await startPort();
  const { blob, grant } = await p.expect();
  const pieces = piecesOf(blob, 17);
  await p.write(pieces[0], grant);
  await p.write(pieces[2], grant);
  await assert.rejects(p.write(pieces[1], grant, (pieces[1].crc32 ^ 1) >>> 0), fails("CORRUPTED"));
  // Bytes damaged on the way (as the node sees them) against the CRC32 the client computed.
  const damaged = pieces[1].bytes.slice();
  damaged[1000] ^= 0x10;
  await assert.rejects(p.write({ ...pieces[1], bytes: damaged }, grant), fails("CORRUPTED"));
  await assert.rejects(p.seal(blob, pieces), fails("CORRUPTED", new RegExp(pieces[1].id)));
  // The client tries again with the right bytes: the upload goes on.
  await p.write(pieces[1], grant);
  assert.equal(await p.seal(blob, pieces), true);
  for (const piece of pieces) assert.deepEqual(await p.read(piece), piece.bytes);
});

/** A bare connection to a data port that sends and reads frames as the test says. */
async function rawConn(port: number) {
  const { conn, writer, next } = await rawDataConn(port);
  await writer.send({ op: "hello", version: DIRECT_PROTOCOL_VERSION });
  assert.equal((await next())?.op, "hello");
  return {
    writer,
    next,
    close() {
      try {
        conn.close();
      } catch { /* closed already */ }
    },
  };
}

/** A write request for piece `p` with `grant`, as a data port reads it. */
const writeOf = (id: number, p: Piece, grant: Grant) => ({
  op: "write",
  id,
  chunk: p.id,
  crc32: p.crc32,
  grant,
});

Deno.test("a write not followed by a data frame of its id closes that connection only", async () => {
  await using p = await startPort();
  const { blob, grant } = await p.expect();
  const pieces = piecesOf(blob, 19);
  // A client writing the same upload meanwhile, on its own connection.
  await p.write(pieces[0], grant);
  const outOfStep: [string, (c: Awaited<ReturnType<typeof rawConn>>) => Promise<void>][] = [
    ["a request where the bytes should be", async (c) => {
      await c.writer.send(writeOf(1, pieces[1], grant));
      await c.writer.send(writeOf(2, pieces[2], grant));
    }],
    ["the bytes under another id", async (c) => {
      await c.writer.send(writeOf(1, pieces[1], grant));
      await c.writer.sendData(2, pieces[1].bytes);
    }],
    ["a data frame of no bytes", async (c) => {
      await c.writer.send(writeOf(1, pieces[1], grant));
      await c.writer.send({ op: "data", id: 1, bytes: "not bytes" });
    }],
  ];
  for (const [why, send] of outOfStep) {
    const c = await rawConn(p.port.port);
    try {
      await send(c);
      const reply = await c.next();
      assert.equal(reply?.op, "error", `${why}: ${JSON.stringify(reply)}`);
      assert.equal(reply?.id, 0, why);
      assert.equal(reply?.code, "INVALID_REQUEST", why);
      assert.equal(await c.next(), null, `${why}: the port closed the connection`);
    } finally {
      c.close();
    }
  }
  // A connection that ends between a write and its bytes.
  const cut = await rawConn(p.port.port);
  await cut.writer.send(writeOf(1, pieces[1], grant));
  cut.close();

  // None of them wrote anything or left a write in flight; the other client's link writes on.
  await assert.rejects(p.seal(blob, pieces), fails("CORRUPTED", new RegExp(pieces[1].id)));
  await p.write(pieces[1], grant);
  await p.write(pieces[2], grant);
  assert.equal(await p.seal(blob, pieces), true);
  for (const piece of pieces) assert.deepEqual(await p.read(piece), piece.bytes);
});

Deno.test("a raw write answers written with its id, after its data frame", async () => {
  await using p = await startPort();
  const { blob, grant } = await p.expect();
  const pieces = piecesOf(blob, 23);
  const c = await rawConn(p.port.port);
  try {
    // Two writes back to back, then a read of the first: each answered under its own id.
    await c.writer.send(writeOf(7, pieces[0], grant));
    await c.writer.sendData(7, pieces[0].bytes);
    await c.writer.send(writeOf(8, pieces[2], grant));
    await c.writer.sendData(8, pieces[2].bytes);
    const answers = [await c.next(), await c.next()];
    const ids = answers.map((a) => (assert.equal(a?.op, "written", JSON.stringify(a)), a?.id));
    assert.deepEqual(ids.sort(), [7, 8]);
  } finally {
    c.close();
  }
  await p.write(pieces[1], grant);
  assert.equal(await p.seal(blob, pieces), true);
});

Deno.test("a discard while writes are in flight leaves no blob behind, however they end", async () => {
  await using p = await startPort();
  const CHUNKS = 16;
  const bytes = bytesOf(MiB, 29);
  // Rounds enough that, were a late write to make the blob again, one of them would show it.
  for (let round = 0; round < 12; round++) {
    const blob = newBlobId();
    await p.node.handle({ op: "expect", blob, bytes: CHUNKS * MiB });
    const grant = signGrant(key, [blob], Date.now() + 60_000, "write");
    const c = await rawConn(p.port.port);
    try {
      const sent: Promise<void>[] = [];
      for (let k = 0; k < CHUNKS; k++) {
        const piece = { id: chunkIdOf(blob, k * MiB), bytes, crc32: crc32(bytes) };
        sent.push(c.writer.send(writeOf(k + 1, piece, grant)), c.writer.sendData(k + 1, bytes));
      }
      // Rank 0 discards the upload (its client vanished) as the first write lands; the others
      // are read, queued for the disk or written meanwhile.
      const replies = [await c.next()];
      assert.equal(await p.node.handle({ op: "discard", ids: [chunkIdOf(blob, 0)] }), true);
      while (replies.length < CHUNKS) replies.push(await c.next());
      await Promise.all(sent);
      const ids = replies.map((r) => r?.id as number).sort((a, b) => a - b);
      assert.deepEqual(ids, Array.from({ length: CHUNKS }, (_, k) => k + 1), "each answered once");
      for (const reply of replies) {
        if (reply?.op === "error") assert.equal(reply.code, "UNAUTHORIZED", String(reply.message));
        else assert.equal(reply?.op, "written");
      }
    } finally {
      c.close();
    }
    assert.equal(await p.hasBlob(blob), false, `round ${round}: no write made the blob again`);
    assert.equal(p.node.direct.size, 0);
  }
  assert.equal(p.pool.idle, p.pool.allocated, "every write's buffer went back to the pool");
});

Deno.test("writes without a valid grant hold no slot of the port's: a client with one is served", async () => {
  await using p = await startPort();
  const { blob, grant } = await p.expect();
  const pieces = piecesOf(blob, 7);
  const forged = signGrant(
    grantKey(utf8.encode("not the cluster's secret")),
    [blob],
    Date.now() + 60_000,
    "write",
  );
  // More writes with a forged grant than the port has slots, their bytes never sent: each gets
  // UNAUTHORIZED and its connection closed, without waiting for the bytes.
  const conns = await Promise.all(
    Array.from({ length: DATA_PORT_TRANSFERS_MAX + 8 }, () => rawConn(p.port.port)),
  );
  try {
    await Promise.all(conns.map(async (c, i) => {
      await c.writer.send(writeOf(i + 1, pieces[0], forged));
      const refused = await c.next();
      assert.deepEqual([refused?.op, refused?.code], ["error", "UNAUTHORIZED"]);
      assert.equal(await c.next(), null, "closed");
    }));
    // Meanwhile, and after, a client with a grant writes and reads at once.
    await p.write(pieces[0], grant);
    assert.deepEqual(await p.read(pieces[0]), pieces[0].bytes);
  } finally {
    for (const c of conns) c.close();
  }
});
