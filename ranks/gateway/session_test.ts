/**
 * A gateway session over an in-memory byte pipe and the in-process cluster's store: the CBOR
 * protocol end to end with no socket (the socket tests live under `tests/`).
 */

import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { createHash } from "node:crypto";
import { clientProof, newNonce } from "../../protocol/auth.ts";
import { type ByteStream, FrameReader, FrameWriter } from "../../protocol/conn.ts";
import { decodeFrameBody } from "../../protocol/frame.ts";
import { PROTOCOL_VERSION } from "../../protocol/limits.ts";
import { DEFAULT_LIMITS } from "../config.ts";
import { MemoryCluster } from "../testing/memory_cluster.ts";
import { bytesOf, MiB, readAll } from "../testing/cluster_helpers.ts";
import { Session } from "./session.ts";

/** Bytes stored until the other end reads them: one direction of an in-memory pipe. */
class Channel {
  #chunks: Uint8Array[] = [];
  #waiting: (() => void) | null = null;
  closed = false;

  push(bytes: Uint8Array): void {
    this.#chunks.push(bytes.slice());
    this.#wake();
  }

  close(): void {
    this.closed = true;
    this.#wake();
  }

  async read(into: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.closed) return null;
      await new Promise<void>((resolve) => this.#waiting = resolve);
    }
    const head = this.#chunks[0];
    const n = Math.min(into.length, head.length);
    into.set(head.subarray(0, n));
    if (n === head.length) this.#chunks.shift();
    else this.#chunks[0] = head.subarray(n);
    return n;
  }

  #wake(): void {
    const waiting = this.#waiting;
    this.#waiting = null;
    waiting?.();
  }
}

/** Two ends of a duplex pipe. */
function pipe(): [ByteStream & { close(): void }, ByteStream & { close(): void }] {
  const [ab, ba] = [new Channel(), new Channel()];
  const end = (incoming: Channel, outgoing: Channel) => ({
    read: (into: Uint8Array) => incoming.read(into),
    write: (bytes: Uint8Array) => {
      if (outgoing.closed) return Promise.reject(new Deno.errors.BrokenPipe("closed"));
      outgoing.push(bytes);
      return Promise.resolve(bytes.length);
    },
    close: () => {
      ab.close();
      ba.close();
    },
  });
  return [end(ba, ab), end(ab, ba)];
}

/** A client end speaking frames, and the session serving the other end. */
async function connect(cluster: MemoryCluster, options: { secret?: Uint8Array } = {}) {
  const [client, server] = pipe();
  const session = new Session(server, cluster.store, {
    limits: DEFAULT_LIMITS,
    secret: options.secret,
    clock: cluster.clock,
  });
  const running = session.run();
  const reader = new FrameReader(client);
  const writer = new FrameWriter(client);
  const next = async () => {
    const body = await reader.read();
    return body === null ? null : decodeFrameBody(body) as Record<string, unknown>;
  };
  await writer.send({ op: "hello", version: PROTOCOL_VERSION });
  const hello = await next();
  assert.equal(hello?.op, "hello");
  return { session, running, reader, writer, next, hello: hello!, client };
}

Deno.test("a session serves put, get, meta, list, mv and rm over the store", async () => {
  await using cluster = await MemoryCluster.start();
  const c = await connect(cluster);
  const data = bytesOf(2 * MiB + 7, 1);
  await c.writer.send({ op: "put", id: 1, name: "a/b", size: data.length, checksums: true });
  for (let at = 0; at < data.length; at += MiB) {
    const piece = data.subarray(at, at + MiB);
    await c.writer.sendData(1, piece, crc32(piece));
  }
  const sha256 = createHash("sha256").update(data).digest("hex");
  await c.writer.send({ op: "end", id: 1, sha256 });
  const put = await c.next();
  assert.equal(put?.op, "ok");
  assert.equal((put?.result as { sha256: string }).sha256, sha256);
  assert.deepEqual(await readAll(cluster.store, "a/b"), data);

  await c.writer.send({ op: "get", id: 2, name: "a/b", start: 10, end: MiB + 20 });
  assert.equal((await c.next())?.op, "ok");
  const parts: Uint8Array[] = [];
  for (let frame = await c.next(); frame?.op === "data"; frame = await c.next()) {
    parts.push(frame.bytes as Uint8Array);
  }
  assert.deepEqual(
    new Uint8Array(await new Blob(parts as BlobPart[]).arrayBuffer()),
    data.slice(10, MiB + 20),
  );

  await c.writer.send({ op: "meta", id: 3, name: "missing" });
  const missing = await c.next();
  assert.deepEqual([missing?.op, missing?.id, missing?.code], ["error", 3, "NOT_FOUND"]);
  assert.match(String(missing?.message), /Cannot find "missing"/);

  await c.writer.send({ op: "mv", id: 4, from: "a/b", to: "a/c", force: false });
  assert.equal(((await c.next())?.result as { name: string }).name, "a/c");
  await c.writer.send({ op: "list", id: 5, prefix: "a/" });
  const entries = await c.next();
  assert.deepEqual((entries?.entries as { name: string }[]).map((e) => e.name), ["a/c"]);
  assert.equal((await c.next())?.op, "end");
  await c.writer.send({ op: "rm", id: 6, name: "a/c" });
  assert.deepEqual((await c.next())?.result, { removed: 1 });
  c.client.close();
  await c.running;
  assert.deepEqual(await cluster.store.list(), []);
});

Deno.test("a session drops an upload whose client vanishes, and a bad CRC32 fails only that upload", async () => {
  await using cluster = await MemoryCluster.start();
  const c = await connect(cluster);
  await c.writer.send({ op: "put", id: 1, name: "bad", checksums: true });
  await c.writer.sendData(1, bytesOf(1000, 1), 12345);
  const refused = await c.next();
  assert.deepEqual([refused?.op, refused?.code], ["error", "CORRUPTED"]);
  await c.writer.send({ op: "put", id: 2, name: "half" });
  await c.writer.sendData(2, bytesOf(MiB, 2));
  c.client.close();
  await c.running;
  await cluster.clock.advance(0);
  assert.deepEqual(await cluster.store.list(), []);
  assert.deepEqual((await cluster.store.capacity()).map((r) => r.bytesHeld), [0, 0, 0]);
});

Deno.test("a session with a secret asks for proof, refuses a wrong one, and accepts the right one", async () => {
  await using cluster = await MemoryCluster.start();
  const secret = new TextEncoder().encode("0123456789abcdef0123");
  const wrong = await connect(cluster, { secret });
  const challenge = wrong.hello.challenge as Uint8Array;
  assert.ok(challenge instanceof Uint8Array);
  const nonce = newNonce();
  await wrong.writer.send({ op: "auth", nonce, proof: new Uint8Array(32) });
  const refused = await wrong.next();
  assert.deepEqual([refused?.op, refused?.code], ["error", "UNAUTHORIZED"]);
  assert.equal(await wrong.next(), null, "closed after the refusal");
  await wrong.running;

  const right = await connect(cluster, { secret });
  const proof = clientProof(secret, right.hello.challenge as Uint8Array, nonce);
  await right.writer.send({ op: "auth", nonce, proof });
  assert.equal((await right.next())?.op, "auth");
  await right.writer.send({ op: "status", id: 1 });
  assert.equal(((await right.next())?.result as { files: number }).files, 0);
  right.client.close();
  await right.running;
});

Deno.test("a quiet session is closed after the idle timeout of its clock", async () => {
  await using cluster = await MemoryCluster.start();
  const c = await connect(cluster);
  await cluster.clock.advance(DEFAULT_LIMITS.idleTimeoutMs - 1);
  await c.writer.send({ op: "du", id: 1, prefix: "" });
  assert.equal((await c.next())?.op, "ok");
  await cluster.clock.advance(DEFAULT_LIMITS.idleTimeoutMs + 1);
  assert.equal(await c.next(), null, "closed");
  await c.running;
});
