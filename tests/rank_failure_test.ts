/**
 * A data node that crashes or hangs: reads go to the other replica, new chunks go to live nodes,
 * rank 0 restarts the node on its folder and reconciles it, and nothing changed while it was down
 * (an overwrite, a removal) is undone when it comes back, or after a full restart. The server runs
 * in this process, so the faults come through its launch seam (`FaultyLauncher`).
 */

import assert from "node:assert/strict";
import { DfsClient, DfsError } from "../client.ts";
import { pseudoRandomBytes } from "./_bytes.ts";
import { InProcessServer } from "./_in_process.ts";
import { assertNoStrayChunks } from "./_server.ts";
import { sleep } from "./_wait.ts";

const MiB = 1024 * 1024;

async function waitForState(client: DfsClient, rank: number, state: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const status = await client.status();
    if (status.ranks.find((r) => r.rank === rank)?.state === state) return;
    await sleep(100);
  }
  assert.fail(`rank ${rank} did not become ${state} within ${timeoutMs} ms`);
}

Deno.test("a crashed data node: reads fail over, puts go elsewhere, it is restarted and reconciled", async () => {
  await using server = await InProcessServer.start();
  await using client = await DfsClient.connect(server.address);
  const files = new Map<string, Uint8Array>();
  for (let i = 0; i < 6; i++) {
    const data = pseudoRandomBytes(2 * MiB + i, i);
    files.set(`f${i}`, data);
    await client.put(`f${i}`, data);
  }
  const doomed = pseudoRandomBytes(MiB, 99);
  await client.put("removed-while-down", doomed);

  server.launcher.crash(1);
  // While rank 1 is down or restarting, every file still reads back.
  for (const [name, data] of files) assert.deepEqual(await client.getBytes(name), data, name);
  // Overwrite and remove while it may be down; then let it come back.
  const fresh = pseudoRandomBytes(3 * MiB, 7);
  files.set("f0", fresh);
  await client.put("f0", fresh);
  await client.remove("removed-while-down");
  await waitForState(client, 1, "up", 20_000);
  assert.match(server.log, /rank 1 is down .*restarting it[\s\S]*rank 1 is back/);

  for (const [name, data] of files) assert.deepEqual(await client.getBytes(name), data, name);
  await assert.rejects(
    client.meta("removed-while-down"),
    (e: unknown) => e instanceof DfsError && e.code === "NOT_FOUND",
  );
  await assertNoStrayChunks(server, client);
  const fsck = await client.fsck();
  assert.deepEqual([fsck.healthy, fsck.lost, fsck.underReplicated], [files.size, [], []]);

  // Nothing comes back after a full restart either.
  await server.stop();
  await using again = await server.restart();
  await using after = await DfsClient.connect(again.address);
  assert.deepEqual((await after.list()).map((e) => e.name), [...files.keys()].sort());
  for (const [name, data] of files) assert.deepEqual(await after.getBytes(name), data, name);
});

Deno.test("a data node that crashed while nothing changed is reconciled from its summary alone", async () => {
  await using server = await InProcessServer.start();
  await using client = await DfsClient.connect(server.address);
  const files = new Map<string, Uint8Array>();
  for (let i = 0; i < 40; i++) {
    const data = pseudoRandomBytes(i % 4 === 0 ? MiB + i : 100 + i, i);
    files.set(`g${i}`, data);
    await client.put(`g${i}`, data);
  }
  server.launcher.crash(2);
  await waitForState(client, 2, "up", 20_000);
  assert.match(
    server.log,
    /rank 2 is back \(0 stale chunks dropped, 0 restored, checked against its summary\)/,
  );
  for (const [name, data] of files) assert.deepEqual(await client.getBytes(name), data, name);
  await assertNoStrayChunks(server, client);
  const fsck = await client.fsck();
  assert.deepEqual([fsck.healthy, fsck.lost, fsck.underReplicated], [files.size, [], []]);
});

Deno.test("a hung data node is detected by the heartbeat and restarted; reads go on meanwhile", async () => {
  await using server = await InProcessServer.start();
  await using client = await DfsClient.connect(server.address);
  const data = pseudoRandomBytes(6 * MiB, 3);
  await client.put("hang.bin", data);
  server.launcher.hang(2);
  const started = Date.now();
  assert.deepEqual(await client.getBytes("hang.bin"), data);
  // A put while rank 2 hangs or restarts: it either lands on live nodes or fails clearly.
  const other = pseudoRandomBytes(2 * MiB, 4);
  try {
    const meta = await client.put("during.bin", other);
    for (const c of meta.chunks) assert.equal(c.ranks.length, 2);
  } catch (error) {
    assert.ok(error instanceof DfsError && error.code === "UNAVAILABLE", String(error));
  }
  await waitForState(client, 2, "up", 30_000);
  assert.ok(Date.now() - started < 30_000);
  assert.deepEqual(await client.getBytes("hang.bin"), data);
  const fsck = await client.fsck();
  assert.deepEqual([fsck.lost, fsck.underReplicated], [[], []]);
  await assertNoStrayChunks(server, client);
});

Deno.test("a data node crashing during a get and during a put loses nothing acknowledged", async () => {
  await using server = await InProcessServer.start();
  await using client = await DfsClient.connect(server.address);
  const data = pseudoRandomBytes(24 * MiB, 5);
  await client.put("stream.bin", data);

  // Crash rank 3 once the get is under way: the stream completes from the other replicas.
  const parts: Uint8Array[] = [];
  let crashed = false;
  for await (const piece of await client.get("stream.bin")) {
    parts.push(piece.slice());
    if (!crashed && parts.length === 3) {
      crashed = true;
      server.launcher.crash(3);
    }
  }
  assert.deepEqual(new Uint8Array(await new Blob(parts as BlobPart[]).arrayBuffer()), data);
  await waitForState(client, 3, "up", 20_000);

  // Crash rank 1 during a put: it completes on live nodes or fails with UNAVAILABLE, never half.
  let sent = 0;
  const upload = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent === 8 * MiB) return controller.close();
      if (sent === 2 * MiB) server.launcher.crash(1);
      controller.enqueue(data.slice(sent, sent + MiB));
      sent += MiB;
    },
  });
  let committed = false;
  try {
    await client.put("during-put.bin", upload);
    committed = true;
  } catch (error) {
    assert.ok(error instanceof DfsError && error.code === "UNAVAILABLE", String(error));
  }
  await waitForState(client, 1, "up", 20_000);
  if (committed) {
    assert.deepEqual(await client.getBytes("during-put.bin"), data.slice(0, 8 * MiB));
    for (const c of (await client.meta("during-put.bin")).chunks) assert.equal(c.ranks.length, 2);
  } else {
    await assert.rejects(client.meta("during-put.bin"), DfsError);
  }
  assert.deepEqual(await client.getBytes("stream.bin"), data);
  const fsck = await client.fsck();
  assert.deepEqual([fsck.lost, fsck.underReplicated], [[], []]);
  await assertNoStrayChunks(server, client);
});

Deno.test("a data node that stays down has its replicas copied to live nodes", async () => {
  await using server = await InProcessServer.start({ ranks: 5, rereplicateAfterMs: 500 });
  await using client = await DfsClient.connect(server.address);
  const files = new Map<string, Uint8Array>();
  for (let i = 0; i < 5; i++) {
    const data = pseudoRandomBytes(3 * MiB + i, 40 + i);
    files.set(`r${i}`, data);
    await client.put(`r${i}`, data);
  }
  server.launcher.kill(2);
  await waitForState(client, 2, "down", 10_000); // its restarts fail
  assert.ok((await client.status()).underReplicatedChunks > 0, "chunks on the dead rank count");
  const deadline = Date.now() + 20_000;
  while (!/rank 2 stays down: \d+ chunk replicas copied/.test(server.log)) {
    assert.ok(Date.now() < deadline, `no re-replication:\n${server.log}`);
    await sleep(100);
  }
  for (const [name, data] of files) {
    const meta = await client.meta(name);
    for (const c of meta.chunks) {
      assert.equal(new Set(c.ranks).size, 2, `${name}: two replicas`);
      assert.ok(!c.ranks.includes(2), `${name}: nothing left on the dead rank`);
    }
    assert.deepEqual(await client.getBytes(name), data);
  }
  const fsck = await client.fsck();
  assert.deepEqual([fsck.healthy, fsck.underReplicated, fsck.lost], [files.size, [], []]);
  assert.equal((await client.status()).underReplicatedChunks, 0);

  // After a full restart the old node is back with stale replicas: they are dropped.
  await server.stop();
  await using again = await server.restart({ ranks: 5 });
  await using after = await DfsClient.connect(again.address);
  for (const [name, data] of files) assert.deepEqual(await after.getBytes(name), data, name);
  await assertNoStrayChunks(again, after);
});
