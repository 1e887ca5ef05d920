/**
 * Fair limits: what one client holds (uploads, connections, reads) slows only that client. A
 * connection gets a share of the server's upload slots and waits over it; an upload that receives
 * nothing gives its slot back after `--upload-stall-timeout-ms`; at `--connections-max` (or one
 * address's `--connections-per-address-max`) a new connection closes the idlest one, one that has
 * not said hello first, and is refused only when every connection has a request in flight.
 */

import assert from "node:assert/strict";
import { concatBytes } from "../protocol/bytes.ts";
import { DfsClient } from "../client.ts";
import { encodeFrame } from "../protocol/frame.ts";
import { pseudoRandomBytes } from "./_bytes.ts";
import { checkBystanders, expectServes, STORED, STORED_NAME } from "./_bystanders.ts";
import {
  describeFrame,
  expectClosed,
  expectError,
  type RawConnection,
  rawConnection,
  REPLY_TIMEOUT_MS,
} from "./_frames.ts";
import { TestServer } from "./_server.ts";
import { withTimeout } from "./_wait.ts";

const MiB = 1024 * 1024;

/** The defaults of `ranks/config.ts` these tests lean on, as a user reads them in the help. */
const CONNECTIONS_DEFAULT = 1024;
const CONNECTIONS_PER_ADDRESS_DEFAULT = 256;
/** The server-wide `UPLOADS_INFLIGHT_MAX` (`ranks/rank0/uploads.ts`). */
const UPLOADS_SERVER_MAX = 64;

/** Opens `count` bare connections one after another (with `hello`, each completes it first). */
async function openMany(
  address: string,
  count: number,
  options: { hello?: boolean } = {},
): Promise<RawConnection[]> {
  const raws: RawConnection[] = [];
  for (let i = 0; i < count; i++) raws.push(await rawConnection(address, options));
  return raws;
}

/** The server closes `raw` to make room, telling it so with an id-0 `UNAVAILABLE` first. */
async function expectEvicted(raw: RawConnection, limit: RegExp): Promise<void> {
  await expectError(raw, { id: 0, code: "UNAVAILABLE", message: limit });
  await expectClosed(raw);
}

/** Starts a put on `raw` that sends no data: a request in flight that keeps it busy. */
async function holdUpload(raw: RawConnection, id: number): Promise<void> {
  await raw.send({ op: "put", id, name: `held/${id}` });
}

function closeAll(raws: RawConnection[]): void {
  for (const raw of raws) raw.close();
}

Deno.test("one connection's silent puts take only its share: other clients keep putting", async () => {
  // One more request in flight than puts, for the status request that tells when they arrived.
  const requestsMax = UPLOADS_SERVER_MAX + 1;
  await using server = await TestServer.start({
    extraArgs: ["--requests-inflight-max", String(requestsMax)],
  });
  await using healthy = await DfsClient.connect(server.address);
  const stored = await healthy.put(STORED_NAME, STORED);
  using hog = await rawConnection(server.address, { hello: true });
  // A status request, then the puts, in one write: the server reads and takes them in together,
  // and the status answer (which needs the data nodes) comes after it has taken them all.
  const frames: Record<string, unknown>[] = [{ op: "status", id: 1000 }];
  for (let id = 1; id <= UPLOADS_SERVER_MAX; id++) {
    frames.push({ op: "put", id, name: `held/${id}` });
  }
  await hog.sendBytes(concatBytes(frames.map(encodeFrame)));
  const status = await withTimeout(hog.next(), { timeoutMs: REPLY_TIMEOUT_MS, what: "a status" });
  assert.deepEqual([status.op, status.id], ["ok", 1000], describeFrame(status));
  // The hog's first puts hold its share of the upload slots; the rest wait their turn.
  await using other = await DfsClient.connect(server.address);
  for (let i = 0; i < 2 * UPLOADS_SERVER_MAX; i++) {
    const data = pseudoRandomBytes(1000 + i, i);
    assert.equal((await other.put(`other/${i}`, data)).size, data.length);
  }
  assert.equal((await healthy.put("big.bin", pseudoRandomBytes(3 * MiB, 7))).size, 3 * MiB);
  hog.close();
  await checkBystanders(server, healthy, stored);
});

Deno.test("an upload with no data for --upload-stall-timeout-ms gives its slot to the next put", async () => {
  const STALL_MS = 500;
  await using server = await TestServer.start({
    extraArgs: ["--upload-stall-timeout-ms", String(STALL_MS), "--uploads-per-connection-max", "2"],
  });
  await using healthy = await DfsClient.connect(server.address);
  const stored = await healthy.put(STORED_NAME, STORED);
  using raw = await rawConnection(server.address, { hello: true });
  // Two puts hold the connection's share; the third waits for a slot, then sends its file.
  await holdUpload(raw, 1);
  await raw.send({ op: "data", id: 1, bytes: pseudoRandomBytes(100, 1) });
  await holdUpload(raw, 2);
  await raw.send({ op: "put", id: 3, name: "after-stall" });
  await raw.send({ op: "data", id: 3, bytes: pseudoRandomBytes(100, 3) });
  await raw.send({ op: "end", id: 3 });
  const stalled = /^Upload of "held\/[12]" failed: no data arrived for 500 ms$/;
  const replies = [];
  for (let i = 0; i < 3; i++) {
    replies.push(await withTimeout(raw.next(), { timeoutMs: REPLY_TIMEOUT_MS, what: "a reply" }));
  }
  const byId = new Map(replies.map((r) => [r.id, r]));
  for (const id of [1, 2]) {
    const reply = byId.get(id)!;
    assert.deepEqual([reply.op, reply.code], ["error", "UNAVAILABLE"], describeFrame(reply));
    assert.match(String(reply.message), stalled);
  }
  assert.equal(byId.get(3)?.op, "ok", describeFrame(replies[2]));
  // The failed uploads' late frames are dropped; the connection serves on.
  await raw.send({ op: "data", id: 1, bytes: pseudoRandomBytes(100, 4) });
  await raw.send({ op: "end", id: 1 });
  await raw.send({ op: "abort", id: 2 });
  await expectServes(raw, 4, stored);
  assert.equal((await healthy.meta("after-stall")).size, 100);
  raw.close();
  await checkBystanders(server, healthy, stored);
});

Deno.test("idle connections, with or without a hello, make room for a new client", async (t) => {
  await using server = await TestServer.start();
  await using healthy = await DfsClient.connect(server.address);
  const stored = await healthy.put(STORED_NAME, STORED);
  const perAddress = new RegExp(
    "^Connection closed to make room for a new one: client address 127\\.0\\.0\\.1 is at its " +
      `limit of ${CONNECTIONS_PER_ADDRESS_DEFAULT} connections and this one was the idlest$`,
  );
  for (const hello of [true, false]) {
    await t.step(
      `${CONNECTIONS_DEFAULT} connections ${hello ? "after a hello" : "that said nothing"}`,
      async () => {
        const raws = await openMany(server.address, CONNECTIONS_DEFAULT, { hello });
        try {
          await using late = await withTimeout(DfsClient.connect(server.address), {
            timeoutMs: REPLY_TIMEOUT_MS,
            what: "a new client's connection",
          });
          assert.deepEqual(await late.meta(STORED_NAME), stored);
          // One address holds at most its share; the oldest were closed for the newer ones.
          await expectEvicted(raws[0], perAddress);
          if (hello) await expectServes(raws.at(-1)!, 1, stored);
        } finally {
          closeAll(raws);
        }
      },
    );
  }
  // The healthy client was among the idlest: its connection was closed, and it reconnects.
  await healthy.meta(STORED_NAME).catch(() => {});
  await checkBystanders(server, healthy, stored);
});

Deno.test("at --connections-max a new connection closes one without a hello first, then the idlest", async () => {
  await using server = await TestServer.start({ extraArgs: ["--connections-max", "6"] });
  const full = new RegExp(
    "^Connection closed to make room for a new one: server is at its limit of 6 connections " +
      "and this one was the idlest$",
  );
  const greeted = await openMany(server.address, 3, { hello: true });
  const silent = await openMany(server.address, 3);
  const newcomers: RawConnection[] = [];
  try {
    for (const expected of [...silent, greeted[0], greeted[1]]) {
      newcomers.push(await rawConnection(server.address, { hello: true }));
      await expectEvicted(expected, full);
    }
    // A connection that has just read a frame is no longer the idlest: the oldest newcomer is.
    await greeted[2].send({ op: "status", id: 1 });
    assert.equal((await greeted[2].next()).op, "ok");
    newcomers.push(await rawConnection(server.address, { hello: true }));
    await expectEvicted(newcomers[0], full);
    await greeted[2].send({ op: "status", id: 2 });
    assert.equal((await greeted[2].next()).op, "ok");
  } finally {
    closeAll([...greeted, ...silent, ...newcomers]);
  }
});

Deno.test("a new connection is refused only when every candidate has a request in flight", async () => {
  await using server = await TestServer.start({
    extraArgs: ["--connections-per-address-max", "3"],
  });
  const raws = await openMany(server.address, 3, { hello: true });
  try {
    for (const [i, raw] of raws.entries()) await holdUpload(raw, i + 1);
    // The puts are in progress once a later request on the same connection is answered.
    for (const raw of raws) {
      await raw.send({ op: "status", id: 100 });
      assert.equal((await raw.next()).op, "ok");
    }
    using refused = await rawConnection(server.address);
    await expectError(refused, {
      id: 0,
      code: "UNAVAILABLE",
      message: new RegExp(
        "^Client address 127\\.0\\.0\\.1 is at its limit of 3 connections, each with a " +
          "request in flight$",
      ),
    });
    await expectClosed(refused);
    // A connection whose requests are all answered is a candidate again.
    await raws[1].send({ op: "abort", id: 2 });
    assert.equal((await raws[1].next()).id, 2);
    using admitted = await rawConnection(server.address, { hello: true });
    await expectEvicted(raws[1], /client address 127\.0\.0\.1 is at its limit of 3/);
    await admitted.send({ op: "status", id: 1 });
    assert.equal((await admitted.next()).op, "ok");
  } finally {
    closeAll(raws);
  }
});

Deno.test("a connection holding unread gets and lists leaves other clients reading", async () => {
  await using server = await TestServer.start();
  await using healthy = await DfsClient.connect(server.address);
  const stored = await healthy.put(STORED_NAME, STORED);
  const big = pseudoRandomBytes(24 * MiB, 9);
  await healthy.put("big.bin", big);
  for (let i = 0; i < 50; i++) await healthy.put(`many/${i}`, pseudoRandomBytes(10, i));
  const hogs = await openMany(server.address, 4, { hello: true });
  try {
    for (const hog of hogs) {
      for (let id = 1; id <= 32; id++) await hog.send({ op: "get", id, name: "big.bin" });
      for (let id = 33; id <= 64; id++) await hog.send({ op: "list", id, prefix: "" });
    }
    await using reader = await DfsClient.connect(server.address);
    assert.deepEqual(await reader.getBytes("big.bin"), big);
    assert.equal((await reader.list("many/")).length, 50);
    assert.equal((await reader.put("during-hogs", pseudoRandomBytes(MiB, 2))).size, MiB);
  } finally {
    closeAll(hogs);
  }
  await checkBystanders(server, healthy, stored);
});
