/**
 * A session's direct reads (`direct_reads.ts`) on a real socket over the in-process cluster's
 * store, whose readers are given a route (the in-process nodes have no data port): the get's
 * answer, `fetch` of the pinned version's chunks, and the reader let go at `done`, when the
 * connection closes, or after `its grant's life; `done` and `fetch` of no direct read refused.
 */

import assert from "node:assert/strict";
import {
  type DirectRoute,
  GRANT_CLOCK_SKEW_MS,
  GRANT_TTL_MS,
  grantKey,
  signGrant,
} from "../../protocol/direct.ts";
import type { FileMeta } from "../../protocol/messages.ts";
import type { FileReader, StreamingFileStore } from "../common/file_store.ts";
import { bytesOf, MiB } from "../testing/cluster_helpers.ts";
import { MemoryCluster } from "../testing/memory_cluster.ts";
import { sessionOnSocket } from "./_session_socket.ts";

const REPLY_TIMEOUT_MS = 10_000;
const BLOB = "ab".repeat(16);
/** The route every direct reader is given (its contents are the client's business, not rank 0's). */
/** The route readers get: a grant for `GRANT_TTL_MS` from `nowMs`. */
const routeAt = (nowMs: number): DirectRoute => ({
  runs: [{ blob: BLOB, offset: 0, chunks: 3 }],
  nodes: { "1": "127.0.0.1:9", "2": "[::1]:9" },
  grant: signGrant(grantKey(new TextEncoder().encode("secret")), [BLOB], nowMs + GRANT_TTL_MS),
});

/**
 * The cluster's store, whose readers opened with `direct` have `routeAt()` now; counts the direct readers
 * opened and closed.
 */
function routedStore(cluster: MemoryCluster) {
  const readers = { opened: 0, closed: 0 };
  const target = cluster.store;
  const openRead = (...args: Parameters<StreamingFileStore["openRead"]>): FileReader => {
    const reader = target.openRead(...args);
    if (!args[2]?.direct) return reader;
    readers.opened++;
    let open = true;
    const close = () => {
      if (open) readers.closed++;
      open = false;
      reader.close();
    };
    return { ...reader, route: routeAt(cluster.clock.now()), close };
  };
  const store = new Proxy(target, {
    get: (_, key) => {
      if (key === "openRead") return openRead;
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  }) as StreamingFileStore;
  return { store, readers };
}

/** A client on a real socket to a session over `store`, greeted. */
async function connect(cluster: MemoryCluster, store: StreamingFileStore) {
  const c = await sessionOnSocket(store, {
    clock: cluster.clock,
    replyTimeoutMs: REPLY_TIMEOUT_MS,
  });
  return {
    ...c,
    /** The next frame, which must be an error for `id` with code `code`. */
    async refused(id: number, code: string) {
      const reply = await c.next();
      assert.deepEqual(
        [reply?.op, reply?.id, reply?.code],
        ["error", id, code],
        `${reply?.message}`,
      );
    },
  };
}

/** Waits (in real time, letting the fake clock's work run) until `done()` holds. */
async function until(cluster: MemoryCluster, done: () => boolean | Promise<boolean>) {
  const deadline = Date.now() + REPLY_TIMEOUT_MS;
  while (!await done()) {
    assert.ok(Date.now() < deadline, "condition not met in time");
    await cluster.clock.advance(0);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Bytes the data nodes hold, all together. */
async function bytesHeld(cluster: MemoryCluster): Promise<number> {
  return (await cluster.store.capacity()).reduce((n, r) => n + r.bytesHeld, 0);
}

/** `v1` of "f" (3 chunks) stored, opened by a direct get with `id`, then overwritten by `v2`. */
async function heldThenOverwritten(
  cluster: MemoryCluster,
  c: Awaited<ReturnType<typeof connect>>,
  id: number,
) {
  const v1 = bytesOf(3 * MiB - 100, 1);
  const v2 = bytesOf(MiB / 2 + 3, 2);
  await cluster.store.put("f", v1);
  await c.writer.send({ op: "get", id, name: "f", direct: true });
  const ok = await c.next();
  assert.equal(ok?.op, "ok");
  assert.equal(ok?.id, id);
  assert.deepEqual(
    ok?.direct,
    routeAt(cluster.clock.now()),
    "the answer carries the reader's route",
  );
  const meta = ok?.result as FileMeta;
  assert.equal(meta.size, v1.length);
  assert.deepEqual(meta.chunks.map((chunk) => chunk.size), [MiB, MiB, MiB - 100]);
  await cluster.store.put("f", v2);
  await cluster.clock.advance(0);
  // Both versions are held: v1 is pinned by the direct read.
  assert.equal(await bytesHeld(cluster), 2 * (v1.length + v2.length));
  /** Once v1 is let go only v2's replicas are left. */
  const released = async () => await bytesHeld(cluster) === 2 * v2.length;
  return { v1, v2, released };
}

Deno.test("done and fetch of an id that is no open direct read are refused; the connection goes on", async () => {
  await using cluster = await MemoryCluster.start();
  const { store, readers } = routedStore(cluster);
  const c = await connect(cluster, store);
  try {
    await c.writer.send({ op: "done", id: 5 });
    await c.refused(5, "INVALID_REQUEST");
    await c.writer.send({ op: "fetch", id: 6, index: 0 });
    await c.refused(6, "INVALID_REQUEST");
    // A get without `direct` is read through the session: no direct read to end or fetch from.
    const small = bytesOf(1000, 3);
    await cluster.store.put("small", small);
    await c.writer.send({ op: "get", id: 7, name: "small" });
    const ok = await c.next();
    assert.deepEqual([ok?.op, ok?.id, ok?.direct], ["ok", 7, undefined]);
    assert.deepEqual((await c.next())?.bytes, small);
    assert.equal((await c.next())?.op, "end");
    await c.writer.send({ op: "fetch", id: 7, index: 0 });
    await c.refused(7, "INVALID_REQUEST");
    await c.writer.send({ op: "done", id: 7 });
    await c.refused(7, "INVALID_REQUEST");
    assert.equal(readers.opened, 0);
    await c.writer.send({ op: "meta", id: 8, name: "small" });
    assert.equal(((await c.next())?.result as FileMeta).size, 1000);
  } finally {
    await c.close();
  }
});

Deno.test("a direct get holds its version until done, and fetch serves the version held", async () => {
  await using cluster = await MemoryCluster.start();
  const { store, readers } = routedStore(cluster);
  const c = await connect(cluster, store);
  try {
    const { v1, released } = await heldThenOverwritten(cluster, c, 1);
    // Chunks of the version the get opened, though the name is v2's now.
    await c.writer.send({ op: "fetch", id: 1, index: 2 });
    const last = await c.next();
    assert.deepEqual([last?.op, last?.id], ["data", 1]);
    assert.deepEqual(last?.bytes, v1.subarray(2 * MiB));
    // A fetch of no chunk is refused, and the read stays open.
    await c.writer.send({ op: "fetch", id: 1, index: 3 });
    await c.refused(1, "INVALID_REQUEST");
    await c.writer.send({ op: "fetch", id: 1, index: 0 });
    assert.deepEqual((await c.next())?.bytes, v1.subarray(0, MiB));
    assert.equal(readers.closed, 0);
    assert.ok(!await released(), "v1 is still held");

    await c.writer.send({ op: "done", id: 1 });
    await until(cluster, () => readers.closed === 1);
    await until(cluster, released);
    await c.writer.send({ op: "fetch", id: 1, index: 0 });
    await c.refused(1, "INVALID_REQUEST");
    await c.writer.send({ op: "done", id: 1 });
    await c.refused(1, "INVALID_REQUEST");
    assert.equal(readers.opened, 1);
  } finally {
    await c.close();
  }
});

Deno.test("a connection closing lets go of the direct reads it held", async () => {
  await using cluster = await MemoryCluster.start();
  const { store, readers } = routedStore(cluster);
  const c = await connect(cluster, store);
  const { released } = await heldThenOverwritten(cluster, c, 4);
  assert.ok(!await released());
  await c.close();
  await until(cluster, () => readers.closed === 1);
  await until(cluster, released);
  assert.equal(readers.opened, 1);
});

Deno.test("a direct read not done is let go once its grant has expired", async () => {
  await using cluster = await MemoryCluster.start();
  const { store, readers } = routedStore(cluster);
  const c = await connect(cluster, store);
  try {
    const { v1, released } = await heldThenOverwritten(cluster, c, 2);
    // The grant holds GRANT_TTL_MS from the get, and a node allows GRANT_CLOCK_SKEW_MS more.
    await cluster.clock.advance(GRANT_TTL_MS + GRANT_CLOCK_SKEW_MS - 1);
    await c.writer.send({ op: "fetch", id: 2, index: 1 });
    assert.deepEqual((await c.next())?.bytes, v1.subarray(MiB, 2 * MiB), "held until then");
    assert.equal(readers.closed, 0);
    await cluster.clock.advance(1);
    await until(cluster, () => readers.closed === 1);
    await until(cluster, released);
    await c.writer.send({ op: "fetch", id: 2, index: 1 });
    await c.refused(2, "INVALID_REQUEST");
  } finally {
    await c.close();
  }
});
