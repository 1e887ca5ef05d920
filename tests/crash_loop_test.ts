/**
 * Crash consistency: SIGKILL the whole server at random moments during a stream of puts,
 * overwrites and reads, restart it, and check that every acknowledged file reads back identical,
 * that nothing half-written is visible, and that no orphan chunk survives start-up. At least 20
 * cycles, with a fixed seed so a failure can be replayed.
 */

import assert from "node:assert/strict";
import { DfsClient } from "../client.ts";
import { Prng, pseudoRandomBytes, sha256 } from "./_bytes.ts";
import { blobFilesOf, chunkFilesOnDisk, TestServer } from "./_server.ts";
import { sleep } from "./_wait.ts";

const CYCLES = 20;
const CLIENTS = 3;
const NAMES = 12;
const SEED = 20261124;
const FILE_BYTES_MAX = 2.5 * 1024 * 1024;
const RUN_MS_MAX = 600;

Deno.test(`${CYCLES} SIGKILL cycles during puts, overwrites and reads lose no acknowledged byte`, async () => {
  const rng = new Prng(SEED);
  /**
   * Per name, what it may legitimately hold after a crash: the acknowledged put with the highest
   * version (last commit wins) or any put still in flight (it may have committed after that).
   */
  const acked = new Map<string, { version: number; hash: string }>();
  const inflight = new Map<string, Set<string>>();
  const allowedOf = (name: string) =>
    new Set([...(acked.has(name) ? [acked.get(name)!.hash] : []), ...(inflight.get(name) ?? [])]);
  /** Names with at least one acknowledged put: they must exist after every restart. */
  const everAcknowledged = new Set<string>();
  let server = await TestServer.start();
  let acknowledged = 0;
  let cutOff = 0;
  try {
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const stop = Date.now() + 100 + rng.float() * RUN_MS_MAX;
      const workers = Array.from({ length: CLIENTS }, async (_, w) => {
        const client = await DfsClient.connect(server.address);
        try {
          while (Date.now() < stop) {
            const name = `f${rng.int(NAMES)}`;
            if (rng.chance(0.7)) {
              const data = pseudoRandomBytes(
                Math.floor(rng.float() ** 2 * FILE_BYTES_MAX),
                cycle * 1000 + w * 100 + acknowledged,
              );
              const hash = sha256(data);
              // In flight, the new content may or may not survive a crash (a cut-off put stays
              // "in flight" until the restart shows what happened)...
              if (!inflight.has(name)) inflight.set(name, new Set());
              inflight.get(name)!.add(hash);
              const { version } = await client.put(name, data);
              // ...once acknowledged, it wins over every put of a lower version.
              inflight.get(name)!.delete(hash);
              if (!acked.has(name) || acked.get(name)!.version < version) {
                acked.set(name, { version, hash });
              }
              everAcknowledged.add(name);
              acknowledged++;
            } else if (acked.has(name)) {
              const got = sha256(await client.getBytes(name).catch(() => new Uint8Array(0)));
              assert.ok(
                allowedOf(name).has(got) || got === sha256(new Uint8Array(0)),
                `read of ${name}`,
              );
            }
          }
        } catch {
          cutOff++; // the kill below cut this worker's operation off
        } finally {
          client.close();
        }
      });
      await sleep(Math.max(0, stop - Date.now() - rng.float() * 100));
      await server.stop("SIGKILL");
      await Promise.all(workers);
      server = await server.restart();

      await using client = await DfsClient.connect(server.address);
      const listed = await client.list();
      for (const entry of listed) {
        assert.ok(allowedOf(entry.name).size > 0, `${entry.name} was written`);
      }
      let referenced = 0;
      for (const name of new Set([...acked.keys(), ...inflight.keys()])) {
        const hashes = allowedOf(name);
        let content: Uint8Array | undefined;
        try {
          content = await client.getBytes(name);
        } catch {
          content = undefined; // never acknowledged and cut off: absent is allowed then
        }
        if (content === undefined) {
          assert.ok(!listed.some((e) => e.name === name), `${name} listed but unreadable`);
          assert.ok(!everAcknowledged.has(name), `cycle ${cycle}: acknowledged ${name} is gone`);
          inflight.delete(name);
          continue;
        }
        const hash = sha256(content);
        assert.ok(
          hashes.has(hash),
          `cycle ${cycle}: ${name} holds content that was never put whole`,
        );
        const meta = await client.meta(name);
        acked.set(name, { version: meta.version, hash });
        inflight.delete(name);
        referenced += blobFilesOf(meta);
      }
      assert.equal(
        (await chunkFilesOnDisk(server.dataDir)).length,
        referenced,
        `cycle ${cycle}: no orphan chunks`,
      );
    }
    console.log(
      `${CYCLES} cycles, ${acknowledged} acknowledged puts, ${cutOff} operations cut off by SIGKILL`,
    );
    assert.ok(acknowledged >= CYCLES, "the workload did work");
  } finally {
    await server[Symbol.asyncDispose]();
  }
});
