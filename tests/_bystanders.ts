/**
 * What a hostile client must not disturb: a stored file, a healthy second client, the chunk files
 * on disk and the server's memory. The hostile suites (input, connection limits, held requests,
 * fuzz) store the same file and check it after every step.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { DfsClient, FileMeta } from "../client.ts";
import { pseudoRandomBytes, sha256 } from "./_bytes.ts";
import { describeFrame, type RawConnection, REPLY_TIMEOUT_MS } from "./_frames.ts";
import { assertNoStrayChunks, type TestServer } from "./_server.ts";
import { assertDfsError } from "./_assert.ts";
import { withTimeout } from "./_wait.ts";

const MiB = 1024 * 1024;
/**
 * Resident memory the server may use at any check of these tests. It idles near 90 MiB; its pool
 * keeps up to 64 idle 1 MiB chunk buffers; V8 grows its heaps under load and frees dead buffers only
 * at its next collection (it lets up to 64 MiB of them pile up). 320 MiB covers all that, and is
 * far below what buffering a whole file, or a frame per connection, would cost.
 */
export const SERVER_RSS_BYTES_MAX = 320 * MiB;

/** The file every hostile test stores first and checks after each step. */
export const STORED_NAME = "keep/stored.bin";
export const STORED = pseudoRandomBytes(2 * MiB + 3, 0x5707ed);

/** `bytes` in MiB with one decimal, for messages. */
export function mib(bytes: number): string {
  return (bytes / MiB).toFixed(1);
}

/**
 * What every step must leave as it was: the stored file (same metadata, same bytes), a healthy
 * client that still works, no chunk file that metadata does not reference, memory under the bound.
 */
export async function checkBystanders(
  server: TestServer,
  healthy: DfsClient,
  stored: FileMeta,
): Promise<void> {
  await withTimeout(
    (async () => {
      assert.deepEqual(await healthy.meta(STORED_NAME), stored, "the stored file is unchanged");
      assert.equal(sha256(await healthy.getBytes(STORED_NAME)), stored.sha256);
      await assertNoStrayChunks(server, healthy);
      const rss = await server.rssBytes();
      assert.ok(rss < SERVER_RSS_BYTES_MAX, `server resident memory ${mib(rss)} MiB`);
    })(),
    { timeoutMs: 30_000, what: "the bystander checks" },
  );
}

/** The connection still serves: a `meta` of the stored file with `id` is answered. */
export async function expectServes(
  raw: RawConnection,
  id: number,
  stored: FileMeta,
): Promise<void> {
  await raw.send({ op: "meta", id, name: STORED_NAME });
  const reply = await withTimeout(raw.next(), {
    timeoutMs: REPLY_TIMEOUT_MS,
    what: "a meta reply",
  });
  assert.equal(reply.op, "ok", `expected ok, got ${describeFrame(reply)}`);
  assert.equal(reply.id, id);
  assert.deepEqual(reply.result, stored);
}

/** Nothing is stored under `name`. */
export async function assertNotStored(healthy: DfsClient, name: string): Promise<void> {
  await assertDfsError(healthy.meta(name), "NOT_FOUND", /file does not exist/);
}
