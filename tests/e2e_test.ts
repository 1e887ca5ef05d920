/**
 * End-to-end behaviour through the client library against a real server process (4 ranks: rank 0
 * and 3 data nodes, 2 replicas) on 127.0.0.1 with a temp data directory.
 */

import assert from "node:assert/strict";
import { DfsClient } from "../client.ts";
import { CHUNK_SIZE_BYTES, LIST_PAGE_ENTRIES_MAX } from "../protocol/limits.ts";
import { pseudoRandomBytes, sha256 } from "./_bytes.ts";
import { rawConnection } from "./_frames.ts";
import { assertNoStrayChunks, TestServer } from "./_server.ts";
import { assertDfsError } from "./_assert.ts";
import { sleep } from "./_wait.ts";

const MiB = 1024 * 1024;

Deno.test("dfs end to end through the client library", async (t) => {
  await using server = await TestServer.start();
  await using client = await DfsClient.connect(server.address);

  await t.step("put then get returns every size byte for byte", async () => {
    for (
      const size of [
        0,
        1,
        4096,
        CHUNK_SIZE_BYTES - 1,
        CHUNK_SIZE_BYTES,
        CHUNK_SIZE_BYTES + 1,
        5 * MiB + 17,
      ]
    ) {
      const data = pseudoRandomBytes(size, size + 1);
      const meta = await client.put(`sizes/${size}`, data);
      assert.equal(meta.size, size);
      assert.equal(meta.sha256, sha256(data));
      assert.deepEqual(await client.getBytes(`sizes/${size}`), data);
    }
  });

  await t.step(
    "meta reports size, SHA-256, version, modified time and each chunk's ranks",
    async () => {
      const data = pseudoRandomBytes(3 * MiB + 5, 7);
      const before = Date.now();
      const put = await client.put("meta/file.bin", data);
      const meta = await client.meta("meta/file.bin");
      assert.deepEqual(meta, put);
      assert.equal(meta.name, "meta/file.bin");
      assert.equal(meta.sha256, sha256(data));
      assert.ok(meta.modified >= before - 1000 && meta.modified <= Date.now() + 1000);
      assert.deepEqual(meta.chunks.map((c) => c.size), [MiB, MiB, MiB, 5]);
      for (const chunk of meta.chunks) {
        assert.equal(new Set(chunk.ranks).size, 2, "two distinct replicas");
        for (const rank of chunk.ranks) {
          assert.ok(
            rank >= 1 && rank <= 3,
            `rank ${rank} is a data node`,
          );
        }
      }
    },
  );

  await t.step("a large file spreads its chunks over every data node", async () => {
    const meta = await client.put("spread.bin", pseudoRandomBytes(12 * MiB, 3));
    const ranks = new Set(meta.chunks.flatMap((c) => c.ranks));
    assert.deepEqual([...ranks].sort(), [1, 2, 3]);
  });

  await t.step(
    "uploading an existing name replaces it, bumps the version and frees the old chunks",
    async () => {
      const first = await client.put("over/x", pseudoRandomBytes(3 * MiB, 1));
      const data = pseudoRandomBytes(2 * MiB + 3, 2);
      const second = await client.put("over/x", data);
      assert.ok(second.version > first.version);
      assert.deepEqual(await client.getBytes("over/x"), data);
      assert.equal((await client.meta("over/x")).sha256, sha256(data));
      await assertNoStrayChunks(server, client);
    },
  );

  await t.step(
    "list gathers every name sorted, filters by prefix, with size and modified",
    async () => {
      await client.put("l/b", pseudoRandomBytes(10, 1));
      await client.put("l/a", pseudoRandomBytes(20, 2));
      await client.put("l/sub/c", pseudoRandomBytes(30, 3));
      await client.put("lz", pseudoRandomBytes(1, 4));
      const entries = await client.list("l/");
      assert.deepEqual(entries.map((e) => [e.name, e.size]), [["l/a", 20], ["l/b", 10], [
        "l/sub/c",
        30,
      ]]);
      for (const e of entries) assert.equal(e.modified, (await client.meta(e.name)).modified);
      const all = (await client.list()).map((e) => e.name);
      assert.ok(all.includes("lz") && all.includes("spread.bin"));
      assert.deepEqual(all, [...all].sort());
      assert.deepEqual(await client.list("nothing/"), []);
    },
  );

  await t.step("errors come back as DfsError with a code and a message", async () => {
    await assertDfsError(
      client.meta("missing"),
      "NOT_FOUND",
      /Cannot find "missing": file does not exist/,
    );
    await assertDfsError(client.getBytes("missing"), "NOT_FOUND", /does not exist/);
    await assertDfsError(
      client.put("../etc/passwd", Uint8Array.of(1)),
      "INVALID_REQUEST",
      /"\.\." segment/,
    );
    await assertDfsError(
      client.put("/abs", Uint8Array.of(1)),
      "INVALID_REQUEST",
      /starts with "\/"/,
    );
    await assertDfsError(
      client.put("a\0b", Uint8Array.of(1)),
      "INVALID_REQUEST",
      /control character \(U\+0000\)/,
    );
    await assertDfsError(
      client.put("x".repeat(1025), Uint8Array.of(1)),
      "INVALID_REQUEST",
      /1025 bytes/,
    );
    // The connection is still good after refusals.
    assert.equal((await client.meta("l/a")).size, 20);
  });

  await t.step("a refused large upload stops early and leaves nothing", async () => {
    await assertDfsError(
      client.put("a//bad", pseudoRandomBytes(8 * MiB, 9)),
      "INVALID_REQUEST",
      /empty segment/,
    );
    await assertNoStrayChunks(server, client);
  });

  await t.step(
    "put streams from a ReadableStream of odd-sized pieces with no declared size",
    async () => {
      const data = pseudoRandomBytes(3 * MiB + 123, 11);
      const pieces = [7, 100_000, 1, MiB + 3, 2 * MiB];
      let at = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (at >= data.length) return controller.close();
          const n = pieces[at % pieces.length] ?? 4096;
          controller.enqueue(data.slice(at, at + n));
          at += n;
        },
      });
      const meta = await client.put("stream.bin", stream);
      assert.equal(meta.size, data.length);
      const got = await client.get("stream.bin");
      const parts: Uint8Array[] = [];
      for await (const part of got) parts.push(part);
      assert.deepEqual(new Uint8Array(await new Blob(parts as BlobPart[]).arrayBuffer()), data);
    },
  );

  await t.step("more data than the declared size is refused and nothing is committed", async () => {
    const source = [pseudoRandomBytes(MiB, 1), pseudoRandomBytes(MiB, 2)];
    await assertDfsError(
      client.put("declared", source, { size: MiB + 10 }),
      "INVALID_REQUEST",
      /more than its declared/,
    );
    await assertDfsError(
      client.put("declared", [Uint8Array.of(1)], { size: 2 }),
      "INVALID_REQUEST",
      /ended after 1 of/,
    );
    await assertDfsError(client.meta("declared"), "NOT_FOUND", /does not exist/);
    await assertNoStrayChunks(server, client);
  });

  await t.step("a reader keeps the version it opened while the name is overwritten", async () => {
    const oldData = pseudoRandomBytes(20 * MiB, 21);
    const newData = pseudoRandomBytes(5 * MiB, 22);
    await client.put("pinned", oldData);
    const { stream } = await client.open("pinned");
    const reader = stream.getReader();
    const parts: Uint8Array[] = [(await reader.read()).value!];
    await using writer = await DfsClient.connect(server.address);
    await writer.put("pinned", newData);
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      parts.push(value);
    }
    assert.deepEqual(new Uint8Array(await new Blob(parts as BlobPart[]).arrayBuffer()), oldData);
    assert.deepEqual(await client.getBytes("pinned"), newData);
    await assertNoStrayChunks(server, client);
  });

  await t.step("many clients at once each read back exactly what they wrote", async () => {
    const clients = await Promise.all(
      Array.from({ length: 24 }, () => DfsClient.connect(server.address)),
    );
    try {
      await Promise.all(clients.map(async (c, i) => {
        for (let j = 0; j < 3; j++) {
          const data = pseudoRandomBytes(((i * 3 + j) % 5) * 300_000 + 1, i * 100 + j);
          await c.put(`many/${i}/${j}`, data);
          assert.deepEqual(await c.getBytes(`many/${i}/${j}`), data);
        }
      }));
      assert.equal((await client.list("many/")).length, 72);
    } finally {
      for (const c of clients) c.close();
    }
  });

  await t.step("a stalled upload does not hold up operations on other names", async () => {
    await using slow = await DfsClient.connect(server.address);
    const stalled = Promise.withResolvers<void>();
    let sent = 0;
    const upload = slow.put(
      "stalled",
      new ReadableStream<Uint8Array>({
        async pull(controller) {
          if (sent === 2) await stalled.promise; // hold the upload open mid-stream
          if (sent === 3) return controller.close();
          controller.enqueue(pseudoRandomBytes(MiB, 900 + sent++));
        },
      }),
    );
    await using other = await DfsClient.connect(server.address);
    const data = pseudoRandomBytes(2 * MiB, 901);
    await other.put("not-stalled", data);
    assert.deepEqual(await other.getBytes("not-stalled"), data);
    assert.equal((await other.meta("l/a")).size, 20);
    await assertDfsError(other.meta("stalled"), "NOT_FOUND", /does not exist/);
    stalled.resolve();
    assert.equal((await upload).size, 3 * MiB);
  });

  await t.step("concurrent uploads of one name leave exactly one of them, whole", async () => {
    const contents = Array.from({ length: 8 }, (_, i) => pseudoRandomBytes(2 * MiB + i, 500 + i));
    const clients = await Promise.all(contents.map(() => DfsClient.connect(server.address)));
    try {
      const results = await Promise.all(clients.map((c, i) => c.put("race", contents[i])));
      const final = await client.getBytes("race");
      const winner = contents.findIndex((c) => sha256(c) === sha256(final));
      assert.ok(winner >= 0, "the stored content is one of the uploads, not a mix");
      const meta = await client.meta("race");
      assert.equal(meta.sha256, sha256(final));
      assert.equal(
        meta.version,
        Math.max(...results.map((r) => r.version)),
        "the last commit wins",
      );
      await assertNoStrayChunks(server, client);
    } finally {
      for (const c of clients) c.close();
    }
  });

  await t.step("an oversized data frame fails its upload, which then commits nothing", async () => {
    using raw = await rawConnection(server.address, { hello: true });
    await raw.send({ op: "put", id: 4, name: "holey" });
    await raw.send({ op: "data", id: 4, bytes: pseudoRandomBytes(1000, 1) });
    await raw.send({ op: "data", id: 4, bytes: new Uint8Array(CHUNK_SIZE_BYTES + 1) });
    const refused = await raw.next();
    assert.deepEqual([refused.op, refused.id, refused.code], ["error", 4, "TOO_LARGE"]);
    await raw.send({ op: "data", id: 4, bytes: pseudoRandomBytes(1000, 2) });
    await raw.send({ op: "end", id: 4 });
    await raw.send({ op: "meta", id: 5, name: "holey" });
    const meta = await raw.next();
    assert.deepEqual([meta.op, meta.id, meta.code], ["error", 5, "NOT_FOUND"]);
    raw.close();
    await assertNoStrayChunks(server, client);
  });

  await t.step("a client that vanishes mid-upload leaves nothing behind", async () => {
    const raw = await rawConnection(server.address, { hello: true });
    await raw.send({ op: "put", id: 1, name: "vanished" });
    for (let i = 0; i < 3; i++) {
      await raw.send({ op: "data", id: 1, bytes: pseudoRandomBytes(MiB, i) });
    }
    raw.close();
    await sleep(300);
    await assertDfsError(client.meta("vanished"), "NOT_FOUND", /does not exist/);
    await assertNoStrayChunks(server, client);
  });

  await t.step("a malformed frame gets an error and the connection keeps serving", async () => {
    using raw = await rawConnection(server.address, { hello: true });
    await raw.sendBytes(Uint8Array.of(0, 0, 0, 3, 0xff, 0xff, 0xff)); // not CBOR
    const error = await raw.next();
    assert.equal(error.op, "error");
    assert.equal(error.code, "INVALID_REQUEST");
    await raw.send({ op: "meta", id: 9, name: "l/a" });
    const ok = await raw.next();
    assert.equal(ok.op, "ok");
    assert.equal(ok.id, 9);
  });
});

Deno.test("a server with a small --frame-size-bytes-max gets smaller data frames and lists long names", async () => {
  await using server = await TestServer.start({ extraArgs: ["--frame-size-bytes-max", "65536"] });
  await using client = await DfsClient.connect(server.address);
  const data = pseudoRandomBytes(3 * MiB + 11, 8);
  const meta = await client.put("small-frames.bin", data);
  // The client sent pieces that fit 64 KiB frames; the server joined them into whole chunks.
  assert.deepEqual(meta.chunks.map((c) => c.size), [MiB, MiB, MiB, 11]);
  assert.deepEqual(await client.getBytes("small-frames.bin"), data);
  using raw = await rawConnection(server.address, { hello: true });
  await raw.send({ op: "data", id: 1, bytes: new Uint8Array(70_000) });
  const refused = await raw.next();
  assert.deepEqual([refused.op, refused.code], ["error", "TOO_LARGE"]);
  // 300 names of the longest length fit no single 64 KiB frame: the listing comes in pages.
  const long = (i: number) => `${String(i).padStart(4, "0")}/${"n".repeat(1019)}`;
  await Promise.all(Array.from({ length: 4 }, async (_, w) => {
    await using c = await DfsClient.connect(server.address);
    for (let i = w; i < 300; i += 4) await c.put(long(i), Uint8Array.of(i & 0xff));
  }));
  const names = (await client.list("0")).map((e) => e.name);
  assert.equal(names.length, 300);
  assert.deepEqual(names, Array.from({ length: 300 }, (_, i) => long(i)));
});

Deno.test("listPages streams a long listing a page at a time; stopping early leaves the client usable", async () => {
  await using server = await TestServer.start();
  await using client = await DfsClient.connect(server.address);
  const count = 2 * LIST_PAGE_ENTRIES_MAX + 7;
  const nameOf = (i: number) => `pages/${String(i).padStart(5, "0")}`;
  await Promise.all(Array.from({ length: 8 }, async (_, w) => {
    await using c = await DfsClient.connect(server.address);
    for (let i = w; i < count; i += 8) await c.put(nameOf(i), Uint8Array.of(i & 0xff));
  }));
  await client.put("pagesz", Uint8Array.of(1)); // sorts after the prefix: not listed
  const pages: string[][] = [];
  for await (const page of client.listPages("pages/")) pages.push(page.map((e) => e.name));
  assert.ok(pages.length >= 3, `${pages.length} pages`);
  for (const page of pages) assert.ok(page.length <= LIST_PAGE_ENTRIES_MAX, `${page.length}`);
  assert.deepEqual(pages.flat(), Array.from({ length: count }, (_, i) => nameOf(i)));
  // Stopping after the first page drops the connection (the rest is in flight); the next
  // request opens another and gets its own answer, not the listing's leftovers.
  for await (const page of client.listPages("pages/")) {
    assert.equal(page[0].name, nameOf(0));
    break;
  }
  assert.equal((await client.meta(nameOf(5))).size, 1);
  assert.deepEqual(
    (await client.list("pages/", { after: nameOf(count - 3) })).map((e) => e.name),
    [nameOf(count - 2), nameOf(count - 1)],
  );
  // An error the server sends leaves the connection in step.
  await assertDfsError(
    (async () => {
      for await (const _ of client.listPages("pages/", { limit: 0 })) { /* none */ }
    })(),
    "INVALID_REQUEST",
    /limit/,
  );
  assert.equal((await client.list("pagesz")).length, 1);
});
