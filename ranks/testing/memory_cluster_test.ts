/**
 * The in-process cluster replays: two runs from one seed on a fake clock send the same messages
 * and give the same results, even with crashes and concurrent clients.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { SeededRandom } from "../env/seeded_random.ts";
import { MemoryCluster } from "./memory_cluster.ts";
import { readAll } from "./cluster_helpers.ts";

const NAMES = ["a", "b", "c", "d/e", "d/f"];
const SIZES = [0, 10, 4096, 70_000, 1024 * 1024, 2 * 1024 * 1024 + 3];

/**
 * A random workload from `seed`: rounds of concurrent puts, overwrites, reads, renames, removes
 * and lists, with a node crashed and brought back midway. Returns the log of every result and a
 * digest of every packet the network carried (source, dest, tag, delivered), in order.
 */
async function run(seed: number): Promise<{ results: string[]; traffic: string; packets: number }> {
  const traffic = createHash("sha256");
  let packets = 0;
  await using cluster = await MemoryCluster.start({
    seed,
    trace: (e) => {
      packets++;
      traffic.update(`${e.source}>${e.dest}#${e.tag}${e.delivered ? "" : "x"};`);
    },
  });
  const random = new SeededRandom(seed);
  const pick = <T>(items: readonly T[]) => items[random.nextUint32() % items.length];
  const results: string[] = [];
  const record = async (what: string, work: () => Promise<unknown>) => {
    try {
      const value = await work();
      const digest = value instanceof Uint8Array
        ? createHash("sha256").update(value).digest("hex")
        : JSON.stringify(value);
      results.push(`${what} -> ${digest}`);
    } catch (error) {
      results.push(`${what} !! ${(error as Error).message}`);
    }
  };
  for (let round = 0; round < 12; round++) {
    if (round === 5) cluster.crash(1 + (seed % 3));
    const ops: Promise<void>[] = [];
    for (let i = 0; i < 6; i++) {
      const name = pick(NAMES);
      switch (random.nextUint32() % 5) {
        case 0:
        case 1: {
          const bytes = random.fill(new Uint8Array(pick(SIZES)));
          ops.push(record(`put ${name}`, () => cluster.store.put(name, bytes)));
          break;
        }
        case 2:
          ops.push(record(`get ${name}`, () => readAll(cluster.store, name)));
          break;
        case 3:
          ops.push(record(`mv ${name}`, () => cluster.store.rename(name, pick(NAMES))));
          break;
        case 4:
          ops.push(record(`rm ${name}`, () => cluster.store.remove(name)));
          break;
      }
    }
    await Promise.all(ops);
    await record("list", () => cluster.store.list());
    await cluster.clock.advance(1_000);
  }
  await record("fsck", () => cluster.store.fsck());
  await record("usage", () => cluster.store.usage());
  return { results, traffic: traffic.digest("hex"), packets };
}

Deno.test("two runs of the in-process cluster from one seed give the same messages and results", async () => {
  const first = await run(7);
  const second = await run(7);
  assert.ok(first.packets > 500, `${first.packets} packets`);
  assert.ok(first.results.some((r) => r.startsWith("put") && r.includes('"version"')));
  assert.ok(first.results.some((r) => r.includes("!!")), "some operations failed (NOT_FOUND)");
  assert.deepEqual(second.results, first.results);
  assert.equal(second.traffic, first.traffic);
  assert.equal(second.packets, first.packets);
  // A different seed is a different run: the comparison can fail.
  const other = await run(8);
  assert.notDeepEqual(other.results, first.results);
  assert.notEqual(other.traffic, first.traffic);
});
