/**
 * A gateway session over an in-memory byte pipe and the in-process cluster's store: the CBOR
 * protocol end to end with no socket (the socket tests live under `tests/`).
 */

import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { createHash } from "node:crypto";
import { clientProof, newNonce } from "../../protocol/auth.ts";
import { DfsError } from "../../protocol/errors.ts";
import { type ByteStream, FrameReader, FrameWriter } from "../../protocol/conn.ts";
import { decodeFrameBody } from "../../protocol/frame.ts";
import { PROTOCOL_VERSION } from "../../protocol/limits.ts";
import type { StreamingFileStore, Upload } from "../common/file_store.ts";
import { Semaphore } from "../common/semaphore.ts";
import { DEFAULT_LIMITS, type ServerLimits } from "../config.ts";
import { MemoryCluster } from "../testing/memory_cluster.ts";
import { bytesOf, MiB, readAll } from "../testing/cluster_helpers.ts";
import { Session } from "./session.ts";

/**
 * Bytes stored until the other end reads them: one direction of an in-memory pipe. With
 * `bytesMax`, a write waits while more than that many bytes are unread (a socket's buffer).
 */
class Channel {
  #chunks: Uint8Array[] = [];
  #waiting: (() => void) | null = null;
  #bytes = 0;
  #bytesMax: number;
  #writers: (() => void)[] = [];
  closed = false;

  constructor(bytesMax = Infinity) {
    this.#bytesMax = bytesMax;
  }

  async push(bytes: Uint8Array): Promise<void> {
    this.#chunks.push(bytes.slice());
    this.#bytes += bytes.length;
    this.#wake();
    while (this.#bytes > this.#bytesMax && !this.closed) {
      await new Promise<void>((resolve) => this.#writers.push(resolve));
    }
    if (this.closed) throw new Deno.errors.BrokenPipe("closed");
  }

  close(): void {
    this.closed = true;
    this.#wake();
    this.#drained();
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
    this.#bytes -= n;
    if (this.#bytes <= this.#bytesMax) this.#drained();
    return n;
  }

  #drained(): void {
    for (const resume of this.#writers.splice(0)) resume();
  }

  #wake(): void {
    const waiting = this.#waiting;
    this.#waiting = null;
    waiting?.();
  }
}

/** Two ends of a duplex pipe; the server's writes wait while `bytesMax` are unread. */
function pipe(bytesMax?: number): [ByteStream & { close(): void }, ByteStream & { close(): void }] {
  const [ab, ba] = [new Channel(), new Channel(bytesMax)];
  const end = (incoming: Channel, outgoing: Channel) => ({
    read: (into: Uint8Array) => incoming.read(into),
    write: async (bytes: Uint8Array) => {
      if (outgoing.closed) throw new Deno.errors.BrokenPipe("closed");
      await outgoing.push(bytes);
      return bytes.length;
    },
    close: () => {
      ab.close();
      ba.close();
    },
  });
  return [end(ba, ab), end(ab, ba)];
}

/**
 * A client end speaking frames, and the session serving the other end (over `options.store`,
 * default the cluster's, with `DEFAULT_LIMITS` but for `options.limits`).
 */
async function connect(
  cluster: MemoryCluster,
  options: {
    secret?: Uint8Array;
    limits?: Partial<ServerLimits>;
    store?: StreamingFileStore;
    addressUploadShare?: Semaphore;
    /** Bytes the server may write ahead of the client's reads (default: any number). */
    bufferBytes?: number;
  } = {},
) {
  const [client, server] = pipe(options.bufferBytes);
  const session = new Session(server, options.store ?? cluster.store, {
    limits: { ...DEFAULT_LIMITS, ...options.limits },
    secret: options.secret,
    clock: cluster.clock,
    addressUploadShare: options.addressUploadShare,
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

/**
 * The cluster's store, counting its uploads in progress (begun, not yet committed or aborted) and
 * the most at once; `gate`, while set, holds every upload write until it resolves.
 */
function countingStore(cluster: MemoryCluster) {
  const counts = { now: 0, most: 0 };
  const hold: { gate: Promise<void> | null } = { gate: null };
  const target = cluster.store;
  const beginUpload = (...args: Parameters<StreamingFileStore["beginUpload"]>): Upload => {
    const upload = target.beginUpload(...args);
    counts.most = Math.max(counts.most, ++counts.now);
    let ended = false;
    const end = () => {
      if (!ended) counts.now--;
      ended = true;
    };
    return {
      get receivedBytes() {
        return upload.receivedBytes;
      },
      write: async (bytes, crc32) => {
        await hold.gate;
        return upload.write(bytes, crc32);
      },
      commit: (options) => upload.commit(options).finally(end),
      abort: () => upload.abort().finally(end),
    };
  };
  const store = new Proxy(target, {
    get: (_, key) => {
      if (key === "beginUpload") return beginUpload;
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  }) as StreamingFileStore;
  return { store, counts, hold };
}

/** The upload stall timeout of the tests that reach it. */
const STALL_MS = 60_000;

/** Sends a whole upload of `bytes` as `name` under `id` (put, one data frame, end). */
async function sendUpload(
  writer: FrameWriter,
  id: number,
  file: { name: string; bytes: Uint8Array },
): Promise<void> {
  await writer.send({ op: "put", id, name: file.name });
  await writer.sendData(id, file.bytes);
  await writer.send({ op: "end", id });
}

Deno.test("a session's puts over its upload share wait for one of its uploads to end", async () => {
  await using cluster = await MemoryCluster.start();
  const { store, counts } = countingStore(cluster);
  const c = await connect(cluster, { store, limits: { uploadsPerConnectionMax: 2 } });
  // Six whole uploads sent back to back, no answer awaited: each waits for a slot, none fails.
  for (let id = 1; id <= 6; id++) {
    await sendUpload(c.writer, id, { name: `f${id}`, bytes: bytesOf(1000 + id, id) });
  }
  const answers = [];
  for (let i = 0; i < 6; i++) answers.push(await c.next());
  assert.deepEqual(
    answers.map((a) => [a?.op, a?.id]).sort(),
    [1, 2, 3, 4, 5, 6].map((id) => ["ok", id]),
  );
  assert.equal(counts.most, 2, "at most 2 uploads in progress at once");
  assert.deepEqual(await readAll(cluster.store, "f6"), bytesOf(1006, 6));
  c.client.close();
  await c.running;
});

Deno.test("an upload with no data for the stall timeout is failed and gives its slot back", async () => {
  await using cluster = await MemoryCluster.start();
  const { store, counts } = countingStore(cluster);
  const c = await connect(cluster, {
    store,
    limits: { uploadsPerConnectionMax: 1, uploadStallTimeoutMs: STALL_MS },
  });
  await c.writer.send({ op: "put", id: 1, name: "stalled" });
  await c.writer.sendData(1, bytesOf(1000, 1));
  // The second put waits for the first's slot, which its client never finishes.
  await sendUpload(c.writer, 2, { name: "second", bytes: bytesOf(2000, 2) });
  await cluster.clock.advance(STALL_MS - 1);
  assert.equal(counts.now, 1, "the stalled upload still holds its slot");
  await cluster.clock.advance(1);
  const failed = await c.next();
  assert.deepEqual([failed?.op, failed?.id, failed?.code], ["error", 1, "UNAVAILABLE"]);
  assert.equal(failed?.message, 'Upload of "stalled" failed: no data arrived for 60000 ms');
  const second = await c.next();
  assert.deepEqual([second?.op, second?.id], ["ok", 2]);
  // The stalled upload's late frames are dropped without an answer.
  await c.writer.sendData(1, bytesOf(10, 3));
  await c.writer.send({ op: "end", id: 1 });
  await c.writer.send({ op: "meta", id: 3, name: "stalled" });
  const meta = await c.next();
  assert.deepEqual([meta?.op, meta?.id, meta?.code], ["error", 3, "NOT_FOUND"]);
  assert.deepEqual((await cluster.store.list()).map((e) => e.name), ["second"]);
  c.client.close();
  await c.running;
});

Deno.test("time the server holds a session's frames back is no upload's stall", async () => {
  await using cluster = await MemoryCluster.start();
  const { store, hold } = countingStore(cluster);
  const c = await connect(cluster, { store, limits: { uploadStallTimeoutMs: STALL_MS } });
  await c.writer.send({ op: "put", id: 1, name: "one" });
  await c.writer.sendData(1, bytesOf(100, 1));
  await c.writer.send({ op: "put", id: 2, name: "two" });
  await c.writer.send({ op: "meta", id: 9, name: "missing" });
  assert.equal((await c.next())?.id, 9, "both uploads have begun");
  // The server holds upload 2's write (as a full window would) far past the stall timeout:
  // upload 1's client could send nothing meanwhile.
  const gate = Promise.withResolvers<void>();
  hold.gate = gate.promise;
  await c.writer.sendData(2, bytesOf(100, 2));
  await cluster.clock.advance(2 * STALL_MS);
  hold.gate = null;
  gate.resolve();
  await c.writer.sendData(1, bytesOf(100, 3));
  await c.writer.send({ op: "end", id: 1 });
  await c.writer.send({ op: "end", id: 2 });
  const answers = [await c.next(), await c.next()];
  assert.deepEqual(answers.map((a) => [a?.op, a?.id]).sort(), [["ok", 1], ["ok", 2]]);
  c.client.close();
  await c.running;
});

Deno.test("sessions of one address share its upload slots: a put over them waits", async () => {
  await using cluster = await MemoryCluster.start();
  const { store, counts } = countingStore(cluster);
  const addressUploadShare = new Semaphore(1);
  const a = await connect(cluster, { store, addressUploadShare });
  const b = await connect(cluster, { store, addressUploadShare });
  await a.writer.send({ op: "put", id: 1, name: "from-a" });
  await a.writer.sendData(1, bytesOf(100, 1));
  await sendUpload(b.writer, 1, { name: "from-b", bytes: bytesOf(100, 2) });
  await a.writer.send({ op: "meta", id: 2, name: "from-b" });
  const notYet = await a.next();
  assert.deepEqual([notYet?.id, notYet?.code], [2, "NOT_FOUND"], "b's put waits for a's slot");
  assert.equal(counts.now, 1);
  await a.writer.send({ op: "end", id: 1 });
  assert.deepEqual([(await a.next())?.op, (await b.next())?.op], ["ok", "ok"]);
  assert.equal(counts.most, 1);
  for (const c of [a, b]) {
    c.client.close();
    await c.running;
  }
});

Deno.test("a session is busy while a request is in flight, and evict() tells its client why and closes it", async () => {
  await using cluster = await MemoryCluster.start();
  const c = await connect(cluster);
  assert.ok(c.session.greeted);
  assert.ok(!c.session.busy);
  await c.writer.send({ op: "put", id: 1, name: "a" });
  await c.writer.send({ op: "meta", id: 2, name: "a" });
  await c.next();
  assert.ok(c.session.busy, "an upload in progress");
  await c.writer.send({ op: "abort", id: 1 });
  assert.equal((await c.next())?.id, 1);
  await cluster.clock.advance(0);
  assert.ok(!c.session.busy);
  c.session.evict(new DfsError("UNAVAILABLE", "Connection closed to make room"));
  const farewell = await c.next();
  assert.deepEqual([farewell?.op, farewell?.id, farewell?.code, farewell?.message], [
    "error",
    0,
    "UNAVAILABLE",
    "Connection closed to make room",
  ]);
  assert.equal(await c.next(), null, "closed");
  await c.running;
});

Deno.test("a session streams a listing at the pace its client reads, and stops it when the client goes", async () => {
  await using cluster = await MemoryCluster.start();
  let pagesMade = 0;
  let stopped = false;
  /** A listing without end, a page of 1,000 names at a time. */
  async function* listPages() {
    try {
      for (let page = 0;; page++) {
        pagesMade++;
        yield Array.from({ length: 1000 }, (_, i) => ({
          name: `n/${String(page).padStart(6, "0")}/${String(i).padStart(4, "0")}`,
          size: 1,
          modified: 1,
          replicas: 2,
        }));
      }
    } finally {
      stopped = true;
    }
  }
  const store = new Proxy(cluster.store, {
    get: (target, key) => key === "listPages" ? listPages : Reflect.get(target, key, target),
  });
  const c = await connect(cluster, { store, bufferBytes: 64 * 1024 });
  await c.writer.send({ op: "list", id: 7, prefix: "n/" });
  const first = await c.next();
  assert.deepEqual([first?.op, first?.id], ["entries", 7]);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const held = pagesMade;
  assert.ok(held <= 4, `the server stopped making pages while the client read none (${held})`);
  let names = 0;
  for (let frame = 0; frame < 20; frame++) names += ((await c.next())?.entries as []).length;
  assert.equal(names, 20 * 1000, "frames of 1,000 names");
  assert.ok(pagesMade > held, "it goes on as the client reads");
  c.client.close(); // the client vanishes mid-listing
  await c.running;
  assert.ok(stopped, "the listing was stopped");
  const made = pagesMade;
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(pagesMade, made);
});
