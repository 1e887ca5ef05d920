/**
 * Requests that clients hold open without reading or writing (unread gets, uploads stalled one
 * byte short of a chunk, puts waiting for their connection's share of the upload slots) cost the
 * server bounded memory, and leave no stray chunk once closed.
 */

import assert from "node:assert/strict";
import { DfsClient } from "../client.ts";
import { encodeDataHeader } from "../protocol/frame.ts";
import { CHUNK_SIZE_BYTES } from "../protocol/limits.ts";
import { pseudoRandomBytes } from "./_bytes.ts";
import { mib, SERVER_RSS_BYTES_MAX, STORED, STORED_NAME } from "./_bystanders.ts";
import { type RawConnection, rawConnection } from "./_frames.ts";
import { assertNoStrayChunks, TestServer } from "./_server.ts";
import { sleep } from "./_wait.ts";

const MiB = 1024 * 1024;

/** The default `--requests-inflight-max`: how many requests one connection may hold open. */
const REQUESTS_INFLIGHT_DEFAULT = 64;
/** The default `--uploads-per-connection-max`: uploads one connection may have in progress. */
const UPLOADS_PER_CONNECTION_DEFAULT = 8;
/** The server-wide `UPLOADS_INFLIGHT_MAX` (`ranks/rank0/uploads.ts`). */
const UPLOADS_SERVER_MAX = 64;
/** Connections that hold stalled uploads: together they take every upload slot of the server. */
const STALLING_CONNECTIONS = UPLOADS_SERVER_MAX / UPLOADS_PER_CONNECTION_DEFAULT;

/**
 * The highest resident memory of the server seen over `ms` (sampled every 100 ms) while clients
 * hold their requests, logged against `rssBefore`, is under SERVER_RSS_BYTES_MAX.
 */
async function assertRssBoundedOver(
  server: TestServer,
  options: { ms: number; rssBefore: number; label: string; clients: string },
): Promise<void> {
  let peak = await server.rssBytes();
  for (const end = Date.now() + options.ms; Date.now() < end;) {
    await sleep(100);
    peak = Math.max(peak, await server.rssBytes());
  }
  console.log(
    `${options.label}: server RSS ${mib(options.rssBefore)} MiB before, ${mib(peak)} MiB peak`,
  );
  assert.ok(
    peak < SERVER_RSS_BYTES_MAX,
    `server RSS reached ${mib(peak)} MiB for ${options.clients}`,
  );
}

Deno.test("requests that clients hold open without reading or writing cost bounded memory", async (t) => {
  await t.step(
    `${REQUESTS_INFLIGHT_DEFAULT} unread gets on each of 2 connections stay under the memory bound`,
    async () => {
      await using server = await TestServer.start();
      await using healthy = await DfsClient.connect(server.address);
      const stored = await healthy.put(STORED_NAME, STORED);
      await healthy.put("big.bin", pseudoRandomBytes(16 * MiB, 3));
      const rssBefore = await server.rssBytes();
      const raws: RawConnection[] = [];
      try {
        for (let c = 0; c < 2; c++) {
          const raw = await rawConnection(server.address, { hello: true });
          raws.push(raw);
          for (let id = 1; id <= REQUESTS_INFLIGHT_DEFAULT; id++) {
            await raw.send({ op: "get", id, name: "big.bin" });
          }
        }
        await assertRssBoundedOver(server, {
          ms: 3000,
          rssBefore,
          label: "unread gets",
          clients: "2 clients that read nothing",
        });
        assert.deepEqual(await healthy.meta(STORED_NAME), stored);
      } finally {
        for (const raw of raws) raw.close();
      }
    },
  );

  await t.step(
    `${UPLOADS_PER_CONNECTION_DEFAULT} stalled uploads and ` +
      `${REQUESTS_INFLIGHT_DEFAULT - UPLOADS_PER_CONNECTION_DEFAULT} waiting puts on each of ` +
      `${STALLING_CONNECTIONS} connections stay under the memory bound`,
    async () => {
      // One address may hold every upload slot here, as the connections of many addresses could.
      await using server = await TestServer.start({
        extraArgs: ["--uploads-per-address-max", String(UPLOADS_SERVER_MAX)],
      });
      await using healthy = await DfsClient.connect(server.address);
      const stored = await healthy.put(STORED_NAME, STORED);
      const rssBefore = await server.rssBytes();
      const raws: RawConnection[] = [];
      // Each upload sends one byte short of a chunk, so its chunk buffer is never sent on; the
      // puts over the connection's share wait for a slot (and hold its frame loop: they send
      // nothing more).
      const almostChunk = pseudoRandomBytes(CHUNK_SIZE_BYTES - 1, 4);
      try {
        for (let c = 0; c < STALLING_CONNECTIONS; c++) {
          const raw = await rawConnection(server.address, { hello: true });
          raws.push(raw);
          for (let id = 1; id <= REQUESTS_INFLIGHT_DEFAULT; id++) {
            await raw.send({ op: "put", id, name: `stalled/${c}/${id}` });
            if (id > UPLOADS_PER_CONNECTION_DEFAULT) continue;
            await raw.sendBytes(encodeDataHeader(id, almostChunk.length));
            await raw.sendBytes(almostChunk);
          }
        }
        await assertRssBoundedOver(server, {
          ms: 1000,
          rssBefore,
          label: "stalled uploads",
          clients: `${STALLING_CONNECTIONS} clients that stopped mid-upload`,
        });
        assert.deepEqual(await healthy.meta(STORED_NAME), stored);
      } finally {
        for (const raw of raws) raw.close();
      }
      await sleep(300);
      await assertNoStrayChunks(server, healthy);
    },
  );
});
