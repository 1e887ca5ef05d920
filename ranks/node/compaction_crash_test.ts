import assert from "node:assert/strict";
import { Prng } from "../../tests/_bytes.ts";
import type { Manifest } from "../common/manifest.ts";
import { denoEnv } from "../env/deno_env.ts";
import { MemoryFileSystem } from "../env/memory_fs.ts";
import { manifestsIn, smallFile } from "../testing/manifests.ts";
import type { DataNode } from "./data_node.ts";
import { openDataNode } from "./open_node.ts";
import { parseRecords } from "./record_frame.ts";

const RANK = 1;
const DIR = "/data/rank-1";
/** Names overwritten again and again: dead records soon outnumber live ones. */
const NAMES = 60;
/** Log bytes from which the node compacts: a few rounds of overwrites. */
const COMPACT_BYTES_MIN = 48 * 1024;

/** A version of a small file kept in the log, and its bytes. */
interface Version {
  manifest: Manifest;
  bytes: Uint8Array;
}

function randomSmallFile(name: string, version: number, prng: Prng): Version {
  const bytes = new Uint8Array(100 + prng.int(900));
  for (let i = 0; i < bytes.length; i++) bytes[i] = prng.int(256);
  return { manifest: smallFile(name, version, bytes, [RANK, 2]), bytes };
}

async function open(fs: MemoryFileSystem): Promise<DataNode> {
  const env = denoEnv({ fs, log: { error: () => {} } });
  return await openDataNode(RANK, DIR, { env, compactBytesMin: COMPACT_BYTES_MIN });
}

const read = (node: DataNode, { manifest }: Version) => {
  const [{ id, size, crc32 }] = manifest.chunks;
  return node.handle({
    op: "read",
    id,
    size,
    crc32,
    name: manifest.name,
    version: manifest.version,
  });
};

/**
 * What the node acknowledged: the newest version of each name committed, and the versions whose
 * release was acknowledged.
 */
class Acknowledged {
  newest = new Map<string, Version>();
  released = new Set<string>();
  /** Releases called, acknowledged or not: the node stops serving the version at once. */
  releasing = new Set<string>();
  nextVersion = new Map<string, number>();
  /** Bytes of the small files committed, acknowledged or not. */
  bytesCommitted = 0;

  /** Overwrites `name` as rank 0 does: commits a new version, then releases the one before. */
  async overwrite(node: DataNode, name: string, prng: Prng): Promise<void> {
    const v = (this.nextVersion.get(name) ?? 0) + 1;
    this.nextVersion.set(name, v);
    const next = randomSmallFile(name, v, prng);
    this.bytesCommitted += next.bytes.length;
    await node.handle({ op: "commit", manifest: next.manifest, data: next.bytes.slice() });
    const before = this.newest.get(name);
    this.newest.set(name, next);
    if (before === undefined) return;
    const key = `${name}@${before.manifest.version}`;
    this.releasing.add(key);
    await node.handle({ op: "release", name, version: before.manifest.version });
    this.released.add(key);
  }

  /** Checks that `node` holds every version acknowledged and none whose release was, and reads. */
  async check(node: DataNode, what: string): Promise<void> {
    const held = new Set(manifestsIn(await node.scan()).map((m) => `${m.name}@${m.version}`));
    for (const [name, version] of this.newest) {
      const key = `${name}@${version.manifest.version}`;
      assert.ok(held.has(key), `${what}: ${key} was acknowledged`);
      assert.deepEqual(await read(node, version), version.bytes, `${what}: the bytes of ${key}`);
    }
    for (const key of this.released) assert.ok(!held.has(key), `${what}: ${key} was released`);
    const pages = [await node.summary(7)];
    while (!pages.at(-1)!.totals) pages.push(node.summaryPage());
    assert.equal(pages.at(-1)!.totals!.allPresent, true, `${what}: every chunk is present`);
  }
}

Deno.test("DataNode: overwrites and reads while its log compacts in the background, crashed at random points, keep every version acknowledged and its bytes", async () => {
  let midCompaction = 0;
  for (let seed = 1; seed <= 6; seed++) {
    const prng = new Prng(seed);
    const fs = new MemoryFileSystem();
    await fs.mkdir("/data");
    fs.syncAll();
    const acked = new Acknowledged();
    let node = await open(fs);
    for (let crash = 0; crash < 3; crash++) {
      const rounds = 4 + prng.int(8);
      for (let round = 0; round <= rounds; round++) {
        const calls: Promise<unknown>[] = [];
        // Each name at most once a round, as rank 0 puts one name at a time.
        for (let i = 0; i < NAMES; i++) {
          if (prng.chance(0.5)) calls.push(acked.overwrite(node, `f${i}`, prng));
          const known = acked.newest.get(`f${prng.int(NAMES)}`);
          const key = known && `${known.manifest.name}@${known.manifest.version}`;
          if (known && !acked.releasing.has(key!)) {
            // Read while it may be overwritten: readable until its release is called.
            calls.push(
              read(node, known).catch((error) => {
                if (!acked.releasing.has(key!)) throw error;
              }),
            );
          }
        }
        if (round < rounds) {
          const outcomes = await Promise.allSettled(calls);
          for (const outcome of outcomes) {
            if (outcome.status === "rejected") throw outcome.reason;
          }
          // On a memory disk the calls take only microtasks: a compaction's walk, many more a
          // record, goes on while rounds run; a turn of the event loop now and then lets it end, so
          // that crashes come both during one and after.
          if (prng.chance(0.3)) await new Promise((resolve) => setTimeout(resolve, 0));
          continue;
        }
        // The last round crashes partway: after a few turns, most of it in flight.
        for (let turn = prng.int(40); turn > 0; turn--) await null;
        if (exists(fs, `${DIR}/meta.log.tmp`)) midCompaction++;
        fs.crash();
        await Promise.allSettled(calls);
        await node.close().catch(() => {});
        node = await open(fs);
        await acked.check(node, `seed ${seed}, after crash ${crash + 1}`);
      }
    }
    await node.close();
    // The log was compacted along the way: it holds less than the bytes committed to it.
    const { intactBytes } = parseRecords(await fs.readFile(`${DIR}/meta.log`));
    assert.ok(intactBytes < acked.bytesCommitted / 2, `seed ${seed}: ${intactBytes} bytes`);
  }
  assert.ok(midCompaction > 0, "some crashes came while a new log was being written");
});

function exists(fs: MemoryFileSystem, path: string): boolean {
  try {
    fs.statSync(path);
    return true;
  } catch {
    return false;
  }
}
