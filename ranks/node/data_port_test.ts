/**
 * A data port (`data_port.ts`) over a real data node in a temp folder, on a real socket: reads
 * with a grant through the client's `DataLinks`, and hostile connections (forged grants,
 * malformed and oversized frames) that are refused without disturbing anyone else.
 */

import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { BufferPool } from "../../protocol/buffer_pool.ts";
import { FrameReader, FrameWriter } from "../../protocol/conn.ts";
import {
  DATA_REQUEST_BYTES_MAX,
  DIRECT_PROTOCOL_VERSION,
  type Grant,
  grantKey,
  signGrant,
} from "../../protocol/direct.ts";
import { DataLinks } from "../../protocol/direct_reader.ts";
import type { ErrorCode } from "../../protocol/errors.ts";
import { CHUNK_SIZE_BYTES, FRAME_SIZE_BYTES_MAX } from "../../protocol/limits.ts";
import { chunkIdOf, newBlobId } from "../common/chunk_id.ts";
import { denoEnv } from "../env/deno_env.ts";
import type { Log } from "../env/env.ts";
import { systemClock } from "../env/system.ts";
import { manifest } from "../testing/manifests.ts";
import type { DataNode } from "./data_node.ts";
import { type DataPort, serveDataPort } from "./data_port.ts";
import { openDataNode } from "./open_node.ts";
import { fails } from "../testing/fails.ts";
import { bytesOf } from "../testing/cluster_helpers.ts";
import { type DataChunk, rawDataConn } from "./_data_port_conn.ts";

const MiB = CHUNK_SIZE_BYTES;
const RANK = 3;
const utf8 = new TextEncoder();
const secret = utf8.encode("the cluster's secret");
const key = grantKey(secret);

/** A chunk the node holds. */
type Held = DataChunk;

/**
 * A data node of `RANK` in a temp folder holding one committed blob of a 1 MiB chunk and a
 * 100,000-byte one after it, served on a data port on 127.0.0.1. `node` can be taken away.
 */
async function startPort() {
  const dir = await Deno.makeTempDir({ prefix: "dfs-data-port-" });
  const logged: string[] = [];
  const log: Log = { error: (message) => void logged.push(message) };
  let node: DataNode | undefined = await openDataNode(RANK, dir, { env: denoEnv({ log }) });
  const blob = newBlobId();
  const big = bytesOf(MiB, 7);
  const small = bytesOf(100_000, 13);
  const chunks: Held[] = [
    { id: chunkIdOf(blob, 0), bytes: big, crc32: crc32(big) },
    { id: chunkIdOf(blob, MiB), bytes: small, crc32: crc32(small) },
  ];
  for (const c of chunks) {
    assert.equal(
      await node.handle({ op: "write", id: c.id, bytes: c.bytes.slice(), crc32: c.crc32 }),
      true,
    );
  }
  const m = manifest("file", 1, chunks.map((c) => [c.id, c.bytes.length, [RANK]]));
  assert.equal(await node.handle({ op: "commit", manifest: m }), true);
  const opened = node;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const pool = new BufferPool(FRAME_SIZE_BYTES_MAX, { buffersMax: 4 });
  const port: DataPort = serveDataPort(listener, {
    node: () => node,
    key,
    pool,
    clock: systemClock,
    log,
  });
  return {
    port,
    address: `127.0.0.1:${port.port}`,
    blob,
    chunks,
    logged,
    grant: signGrant(key, [blob], Date.now() + 60_000),
    takeNode: () => node = undefined,
    giveNode: () => node = opened,
    async [Symbol.asyncDispose]() {
      await port.close();
      await opened.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A bare connection to a data port that sends and reads frames as the test says. */
async function rawConn(port: number) {
  const { conn, writer, next } = await rawDataConn(port);
  return {
    conn,
    writer,
    next,
    /** Sends a hello and checks the answer. */
    async hello() {
      await writer.send({ op: "hello", version: DIRECT_PROTOCOL_VERSION });
      assert.deepEqual(await next(), { op: "hello", version: DIRECT_PROTOCOL_VERSION, rank: RANK });
    },
    /** The next reply, which must be an error with `id` and `code`. */
    async error(id: number, code: ErrorCode) {
      const reply = await next();
      assert.equal(reply?.op, "error", JSON.stringify(reply));
      assert.equal(reply?.id, id);
      assert.equal(reply?.code, code, String(reply?.message));
      return String(reply?.message);
    },
    /** The next reply, which must be chunk `c`'s bytes for `id`. */
    async data(id: number, c: Held) {
      const reply = await next();
      assert.equal(reply?.op, "data", JSON.stringify(reply));
      assert.equal(reply?.id, id);
      assert.deepEqual(reply?.bytes, c.bytes);
    },
    /** Waits for the port to close this connection (nothing more arrives). */
    async closed() {
      assert.equal(await next(), null, "the data port closed the connection");
    },
    close() {
      try {
        conn.close();
      } catch { /* closed already */ }
    },
  };
}

/** A read request of chunk `c` with `grant`. */
const readOf = (c: Held, grant: Grant, id?: number) => ({
  ...(id === undefined ? {} : { op: "read", id }),
  chunk: c.id,
  size: c.bytes.length,
  crc32: c.crc32,
  grant,
});

Deno.test("a data port serves a node's chunks to DataLinks with a grant, and nothing without", async () => {
  await using p = await startPort();
  const links = new DataLinks({ connectTimeoutMs: 5_000 });
  try {
    const [big, small] = p.chunks;
    assert.deepEqual(await links.read(p.address, readOf(big, p.grant)), big.bytes);
    assert.deepEqual(await links.read(p.address, readOf(small, p.grant)), small.bytes);
    // Several at once on the one connection, answered each to its own request.
    const many = await Promise.all(
      Array.from({ length: 12 }, (_, i) => links.read(p.address, readOf(p.chunks[i % 2], p.grant))),
    );
    many.forEach((bytes, i) => assert.deepEqual(bytes, p.chunks[i % 2].bytes));

    const forged = signGrant(grantKey(utf8.encode("a guess")), [p.blob], Date.now() + 60_000);
    await assert.rejects(links.read(p.address, readOf(big, forged)), fails("UNAUTHORIZED"));
    const expired = signGrant(key, [p.blob], Date.now() - 3_600_000);
    await assert.rejects(links.read(p.address, readOf(big, expired)), fails("UNAUTHORIZED"));
    const otherBlob = signGrant(key, [newBlobId()], Date.now() + 60_000);
    await assert.rejects(links.read(p.address, readOf(big, otherBlob)), fails("UNAUTHORIZED"));
    // The chunk's CRC32 is checked on the node: a read expecting other bytes is refused.
    await assert.rejects(
      links.read(p.address, { ...readOf(big, p.grant), crc32: (big.crc32 ^ 1) >>> 0 }),
      fails("CORRUPTED"),
    );
    // A chunk past the end of the node's blob reads short; a blob the node lacks is not found.
    const past = { ...readOf(big, p.grant), chunk: chunkIdOf(p.blob, 8 * MiB) };
    await assert.rejects(links.read(p.address, past), fails("CORRUPTED"));
    const elsewhere = newBlobId();
    const lacking = {
      ...readOf(big, signGrant(key, [elsewhere], Date.now() + 60_000)),
      chunk: chunkIdOf(elsewhere, 0),
    };
    await assert.rejects(links.read(p.address, lacking), fails("NOT_FOUND"));
    // A node that is not open (its disk failed, say) sends clients to another replica.
    p.takeNode();
    await assert.rejects(links.read(p.address, readOf(big, p.grant)), fails("UNAVAILABLE"));
    p.giveNode();
    // None of it broke the link: it reads on.
    assert.deepEqual(await links.read(p.address, readOf(big, p.grant)), big.bytes);
  } finally {
    links.close();
  }
});

/** Established TCP connections to port `port` on this host from a client (from `ss`). */
async function connectionsTo(port: number): Promise<number> {
  const { stdout, success } = await new Deno.Command("ss", {
    args: ["-Htn", "state", "established", "dport", "=", `:${port}`],
  }).output();
  assert.ok(success, "ss runs");
  return new TextDecoder().decode(stdout).split("\n").filter((line) => line.trim()).length;
}

Deno.test("DataLinks reads many chunks at once over one connection per data port, closed with it", async () => {
  await using p = await startPort();
  const links = new DataLinks({ connectTimeoutMs: 5_000 });
  try {
    // Every read starts before the first link is open, then again once it is.
    for (let round = 0; round < 2; round++) {
      const reads = Array.from({ length: 16 }, (_, i) => p.chunks[i % 2]);
      const got = await Promise.all(reads.map((c) => links.read(p.address, readOf(c, p.grant))));
      got.forEach((bytes, i) => assert.deepEqual(bytes, reads[i].bytes));
      assert.equal(await connectionsTo(p.port.port), 1, `one connection (round ${round})`);
    }
  } finally {
    links.close();
  }
  const deadline = Date.now() + 5_000;
  while (await connectionsTo(p.port.port) > 0) {
    assert.ok(Date.now() < deadline, "close() closed every connection it opened");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
});

Deno.test("a data port answers a forged grant with an error and serves the same connection on", async () => {
  await using p = await startPort();
  const c = await rawConn(p.port.port);
  try {
    await c.hello();
    const [big, small] = p.chunks;
    const forged: Grant = { ...p.grant, mac: p.grant.mac.map((b) => b ^ 0xff) };
    await c.writer.send(readOf(big, forged, 1));
    assert.match(await c.error(1, "UNAUTHORIZED"), /not signed/);
    // A grant for this blob with its expiry pushed back, under the old mac: refused too.
    await c.writer.send(readOf(big, { ...p.grant, expires: p.grant.expires + 86_400_000 }, 2));
    await c.error(2, "UNAUTHORIZED");
    await c.writer.send(readOf(small, p.grant, 3));
    await c.data(3, small);
    await c.writer.send(readOf(big, p.grant, 4));
    await c.data(4, big);
  } finally {
    c.close();
  }
});

Deno.test("a data port closes a connection that sends a malformed frame; others keep reading", async () => {
  await using p = await startPort();
  const [big] = p.chunks;
  const bystander = await rawConn(p.port.port);
  const links = new DataLinks({ connectTimeoutMs: 5_000 });
  const hostile: Awaited<ReturnType<typeof rawConn>>[] = [];
  try {
    await bystander.hello();
    assert.deepEqual(await links.read(p.address, readOf(big, p.grant)), big.bytes);

    // Bytes that are no CBOR after the hello.
    const garbage = await rawConn(p.port.port);
    hostile.push(garbage);
    await garbage.hello();
    const body = utf8.encode("\xff\xff not cbor");
    const frame = new Uint8Array(4 + body.length);
    new DataView(frame.buffer).setUint32(0, body.length);
    frame.set(body, 4);
    await garbage.writer.sendFrame(frame);
    await garbage.error(0, "INVALID_REQUEST");
    await garbage.closed();

    // A read before any hello; a hello of another version; a second hello; a read of a bad shape.
    const noHello = await rawConn(p.port.port);
    hostile.push(noHello);
    await noHello.writer.send(readOf(big, p.grant, 1));
    await noHello.error(0, "INVALID_REQUEST");
    await noHello.closed();
    const newer = await rawConn(p.port.port);
    hostile.push(newer);
    await newer.writer.send({ op: "hello", version: DIRECT_PROTOCOL_VERSION + 1 });
    await newer.error(0, "VERSION_MISMATCH");
    await newer.closed();
    const twice = await rawConn(p.port.port);
    hostile.push(twice);
    await twice.hello();
    await twice.writer.send({ op: "hello", version: DIRECT_PROTOCOL_VERSION });
    await twice.error(0, "INVALID_REQUEST");
    await twice.closed();
    const badShape = await rawConn(p.port.port);
    hostile.push(badShape);
    await badShape.hello();
    await badShape.writer.send({ ...readOf(big, p.grant, 9), chunk: "../../etc/passwd" });
    await badShape.error(0, "INVALID_REQUEST");
    await badShape.closed();

    // The others never noticed: the same connections still read.
    await bystander.writer.send(readOf(big, p.grant, 7));
    await bystander.data(7, big);
    assert.deepEqual(await links.read(p.address, readOf(big, p.grant)), big.bytes);
  } finally {
    for (const c of hostile) c.close();
    bystander.close();
    links.close();
  }
});

Deno.test("a data port refuses a request frame over DATA_REQUEST_BYTES_MAX; others keep reading", async () => {
  await using p = await startPort();
  const [big, small] = p.chunks;
  const bystander = await rawConn(p.port.port);
  const hostile = await rawConn(p.port.port);
  try {
    await bystander.hello();
    await hostile.hello();
    // A read whose grant is padded past the limit: refused by its length, before it is read.
    const padded = { ...readOf(small, p.grant, 1), pad: "x".repeat(DATA_REQUEST_BYTES_MAX) };
    await hostile.writer.send(padded).catch(() => {}); // the port may close before all is written
    await hostile.error(0, "TOO_LARGE");
    await hostile.closed();
    // A length prefix alone claiming a huge frame: refused as soon as it is seen.
    const prefix = await rawConn(p.port.port);
    try {
      await prefix.hello();
      const claim = new Uint8Array(4);
      new DataView(claim.buffer).setUint32(0, 0xffff_ff00);
      await prefix.writer.sendFrame(claim);
      await prefix.error(0, "TOO_LARGE");
      await prefix.closed();
    } finally {
      prefix.close();
    }
    await bystander.writer.send(readOf(big, p.grant, 2));
    await bystander.data(2, big);
  } finally {
    hostile.close();
    bystander.close();
  }
});

Deno.test("a data port refuses a read larger than a chunk: no client makes a node read a blob at once", async () => {
  await using p = await startPort();
  const [big] = p.chunks;
  const c = await rawConn(p.port.port);
  try {
    await c.hello();
    // A read of chunk 0 sized to the whole blob would have the node read both chunks at once
    // (and one of 4 GiB have it allocate that much): no read is larger than a chunk can be.
    const blobBytes = p.chunks.reduce((n, c) => n + c.bytes.length, 0);
    await c.writer.send({ ...readOf(big, p.grant, 1), size: blobBytes, crc32: undefined });
    await c.error(0, "INVALID_REQUEST");
    await c.closed();
  } finally {
    c.close();
  }
  const again = await rawConn(p.port.port);
  try {
    await again.hello();
    await again.writer.send(readOf(big, p.grant, 1));
    await again.data(1, big);
  } finally {
    again.close();
  }
});

Deno.test("DataLinks fails a request over a link silent for its limit: a hung node is failed over", async () => {
  // A "data port" that greets and then never answers: a node that hangs, or a host cut off.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      accepted.push(conn);
      const reader = new FrameReader(conn);
      await reader.read(); // the hello
      await new FrameWriter(conn).send({ op: "hello", version: DIRECT_PROTOCOL_VERSION, rank: 1 });
      void (async () => { // reads every request and answers none
        try {
          while (await reader.read() !== null) { /* silence */ }
        } catch { /* closed */ }
      })();
    }
  })();
  const links = new DataLinks({ connectTimeoutMs: 5_000, silenceMs: 300 });
  try {
    const address = `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
    const grant = signGrant(new Uint8Array(32), ["0".repeat(32)], Date.now() + 60_000);
    const started = performance.now();
    const read = links.read(address, { chunk: `${"0".repeat(32)}-0`, size: 10, grant });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const hung = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("the read hangs on the silent link")), 5_000);
    });
    await assert.rejects(Promise.race([read, hung]), fails("UNAVAILABLE")).finally(() =>
      clearTimeout(timer)
    );
    const waited = performance.now() - started;
    assert.ok(waited >= 300 && waited < 5_000, `failed after ${waited} ms of silence`);
  } finally {
    links.close();
    listener.close();
    for (const conn of accepted) conn.close();
    await serving.catch(() => {});
  }
});

for (const greets of [false, true]) {
  const how = greets ? "greets and then answers nothing" : "accepts and never greets";
  Deno.test(`DataLinks gives up on a data port that ${how}, and skips it for a while`, async () => {
    // A hung node: its kernel accepts the connection, and nothing more comes (or only a hello).
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepted: Deno.Conn[] = [];
    const serving = (async () => {
      for await (const conn of listener) {
        accepted.push(conn);
        if (!greets) continue;
        const reader = new FrameReader(conn);
        await reader.read(); // the hello
        await new FrameWriter(conn).send({ op: "hello", version: DIRECT_PROTOCOL_VERSION });
        void (async () => { // reads every request and answers none
          try {
            while (await reader.read() !== null) { /* silence */ }
          } catch { /* closed */ }
        })();
      }
    })();
    const limitMs = 300;
    const retryMs = 1_500;
    const links = new DataLinks({ connectTimeoutMs: limitMs, silenceMs: limitMs, retryMs });
    const address = `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
    const grant = signGrant(new Uint8Array(32), ["0".repeat(32)], Date.now() + 60_000);
    const read = () => {
      const started = performance.now();
      const reading = links.read(address, { chunk: `${"0".repeat(32)}-0`, size: 10, grant });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const hung = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("the read hangs")), 5_000);
      });
      return assert.rejects(Promise.race([reading, hung]), fails("UNAVAILABLE"))
        .then(() => performance.now() - started)
        .finally(() => clearTimeout(timer));
    };
    try {
      // Several reads at once wait out one limit together, on one connection.
      const waited = await Promise.all([read(), read(), read()]);
      for (const ms of waited) assert.ok(ms >= limitMs - 10 && ms < 5_000, `waited ${ms} ms`);
      assert.equal(accepted.length, 1);
      // Then the port is skipped: a read fails at once, without a connection.
      const started = performance.now();
      const skipped = await read();
      assert.ok(skipped < limitMs, `failed at once: ${skipped} ms`);
      assert.equal(accepted.length, 1, "no new connection to the silent port");
      // Its time up, the port is tried again (and still silent).
      // (With a margin: a timer may fire a little before its time by the monotonic clock.)
      const wait = retryMs + 100 - (performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, wait));
      assert.ok(await read() >= limitMs - 10, "tried again");
      assert.equal(accepted.length, 2, "a new connection");
    } finally {
      links.close();
      listener.close();
      for (const conn of accepted) conn.close();
      await serving.catch(() => {});
    }
  });
}
