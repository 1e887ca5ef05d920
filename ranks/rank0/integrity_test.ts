import assert from "node:assert/strict";
import { manifestsIn } from "../testing/manifests.ts";
import {
  SCRUB_BUSY_OPS_PER_SEC_MAX,
  SCRUB_BUSY_WAIT_MS,
  SCRUB_DEFER_MS_MAX,
  SCRUB_READ_COST_BYTES_MIN,
  scrubCostBytes,
  waitWhileBusy,
} from "./integrity.ts";
import { FakeClock } from "../env/fake_clock.ts";
import type { Manifest } from "../common/manifest.ts";
import { MemoryCluster } from "../testing/memory_cluster.ts";
import { blobPath, bytesOf, flipByte } from "../testing/cluster_helpers.ts";

const MiB = 1024 * 1024;

function manifestOf(chunks: { size: number; ranks: number[] }[]): Manifest {
  return {
    name: "f",
    size: chunks.reduce((sum, c) => sum + c.size, 0),
    version: 1,
    sha256: "",
    modified: 0,
    chunks: chunks.map((c, i) => ({ id: `c${i}`, size: c.size, crc32: 0, ranks: c.ranks })),
  };
}

Deno.test("scrubCostBytes charges every replica, small chunks at SCRUB_READ_COST_BYTES_MIN", () => {
  assert.equal(
    scrubCostBytes(manifestOf([{ size: 4096, ranks: [1, 2] }])),
    2 * SCRUB_READ_COST_BYTES_MIN,
  );
  assert.equal(scrubCostBytes(manifestOf([{ size: 4 * MiB, ranks: [1, 2] }])), 8 * MiB);
  assert.equal(
    scrubCostBytes(manifestOf([{ size: 4 * MiB, ranks: [1, 2, 3] }, { size: 10, ranks: [3] }])),
    12 * MiB + SCRUB_READ_COST_BYTES_MIN,
  );
  assert.equal(scrubCostBytes(manifestOf([])), 0);
});

/** `waitWhileBusy` on a fake clock, with a load that says `ops()`; `done` once it has resolved. */
function waiting(ops: () => number, options: { signal?: AbortSignal } = {}) {
  const clock = new FakeClock();
  const state = { done: false, waitedMs: -1 };
  const opsPerSecMax = SCRUB_BUSY_OPS_PER_SEC_MAX;
  const signal = options.signal ?? new AbortController().signal;
  const promise = waitWhileBusy({ opsLastSecond: ops }, { clock, opsPerSecMax, signal })
    .then((ms) => Object.assign(state, { done: true, waitedMs: ms }));
  return { clock, state, promise };
}

Deno.test("waitWhileBusy() goes at once when the last second saw at most SCRUB_BUSY_OPS_PER_SEC_MAX", async () => {
  const { clock, state, promise } = waiting(() => SCRUB_BUSY_OPS_PER_SEC_MAX);
  await promise;
  assert.deepEqual(state, { done: true, waitedMs: 0 });
  assert.equal(clock.monotonic(), 0, "no time passed");
});

Deno.test("waitWhileBusy() waits while the server is busy and goes within SCRUB_BUSY_WAIT_MS of it calming", async () => {
  let ops = SCRUB_BUSY_OPS_PER_SEC_MAX + 1;
  let asked = 0;
  const { clock, state, promise } = waiting(() => (asked++, ops));
  await clock.advance(2 * SCRUB_BUSY_WAIT_MS);
  assert.equal(state.done, false, "busy: still waiting");
  assert.equal(asked, 3, "asked at once and every SCRUB_BUSY_WAIT_MS");
  ops = 0;
  await clock.advance(SCRUB_BUSY_WAIT_MS);
  await promise;
  assert.deepEqual(state, { done: true, waitedMs: 3 * SCRUB_BUSY_WAIT_MS });
});

Deno.test("waitWhileBusy() on a server busy all the time goes after SCRUB_DEFER_MS_MAX", async () => {
  const { clock, state, promise } = waiting(() => 1e9);
  await clock.advance(SCRUB_DEFER_MS_MAX - 1);
  assert.equal(state.done, false);
  await clock.advance(1);
  await promise;
  assert.deepEqual(state, { done: true, waitedMs: SCRUB_DEFER_MS_MAX });
});

Deno.test("waitWhileBusy() returns at once when aborted", async () => {
  const stop = new AbortController();
  const { clock, state, promise } = waiting(() => 1e9, { signal: stop.signal });
  await clock.advance(SCRUB_BUSY_WAIT_MS / 2);
  stop.abort();
  await promise;
  assert.deepEqual(state, { done: true, waitedMs: SCRUB_BUSY_WAIT_MS / 2 });
});

Deno.test("fsck repairs damaged and missing replicas, the repair sticks, and a lost chunk is reported", async () => {
  await using cluster = await MemoryCluster.start();
  await cluster.store.put("healthy", bytesOf(2 * MiB, 1));
  await cluster.store.put("flipped", bytesOf(2 * MiB, 2));
  await cluster.store.put("missing", bytesOf(2 * MiB, 3));
  await cluster.store.put("lost", bytesOf(MiB, 4));
  await cluster.store.put("small", bytesOf(100, 5));
  const chunks = async (name: string) => {
    for (const rank of cluster.store.nodes.dataRanks) {
      const scan = await (await cluster.node(rank)).scan();
      const m = manifestsIn(scan).find((m) => m.name === name);
      if (m) return m.chunks;
    }
    throw new Error(name);
  };
  const [flipped] = await chunks("flipped");
  await flipByte(cluster.disk(flipped.ranks[1]), blobPath(flipped.ranks[1], flipped.id), 99);
  const [, missing] = await chunks("missing");
  await cluster.disk(missing.ranks[0]).remove(blobPath(missing.ranks[0], missing.id));
  const [lost] = await chunks("lost");
  for (const rank of lost.ranks) await flipByte(cluster.disk(rank), blobPath(rank, lost.id), 0);

  const first = await cluster.store.fsck();
  assert.deepEqual(
    [first.files, first.healthy, first.repaired, first.underReplicated, first.lost],
    [5, 2, ["flipped", "missing"], [], ["lost"]],
  );
  assert.equal(first.chunks, 2 + 2 + 2 + 1 + 1);
  const again = await cluster.store.fsck();
  assert.deepEqual([again.healthy, again.repaired, again.lost], [4, [], ["lost"]]);
  const status = await cluster.store.status();
  assert.equal(status.repairs, 2);
  assert.equal(status.corruptReplicasFound, 2 + 2 + 2, "each bad replica, each time it was read");
});

Deno.test("the scrubber finds and repairs damage at its byte rate, and reports lost files", async () => {
  await using cluster = await MemoryCluster.start();
  await cluster.store.put("a", bytesOf(2 * MiB, 1));
  await cluster.store.put("b", bytesOf(100, 2));
  const scan = await (await cluster.node(1)).scan();
  const chunk = manifestsIn(scan).find((m) => m.name === "a")?.chunks.find((c) =>
    c.ranks.includes(1)
  );
  assert.ok(chunk, "rank 1 holds a chunk of a");
  await flipByte(cluster.disk(1), blobPath(1, chunk.id), 5);
  const stop = new AbortController();
  const scrubbing = cluster.store.integrity.scrub({
    bytesPerSec: 4 * MiB,
    pauseMs: 10_000,
    signal: stop.signal,
  });
  await cluster.until(() => cluster.store.integrity.scrubbed.passes === 1);
  // One pass charges a (2 chunks x 2 replicas x 1 MiB) and b (2 x 64 KiB) at 4 MiB/s: ~1 s.
  assert.ok(cluster.clock.monotonic() >= 1000, `${cluster.clock.monotonic()} ms`);
  stop.abort();
  await scrubbing;
  const status = await cluster.store.status();
  assert.equal(status.scrub.passes, 1);
  assert.equal(status.scrub.bytes, 3 * MiB + 200, "every replica read but the damaged one");
  assert.equal(cluster.store.integrity.scrubbed.deferredMs, 0, "two puts: not busy");
  assert.equal(status.repairs, 1);
  assert.equal(status.lostFiles, 0);
  assert.equal((await cluster.store.fsck()).healthy, 2);
});

Deno.test("the scrubber gives way to a store busy with clients, yet finishes its pass", async () => {
  await using cluster = await MemoryCluster.start();
  for (const name of ["a", "b", "c"]) await cluster.store.put(name, bytesOf(100, 1));
  const { clock, store } = cluster;
  // Clients at 1,000 operations a second, all the time.
  let load: unknown;
  const tick = () => {
    for (let i = 0; i < 100; i++) store.throughput.op("meta");
    load = clock.setTimeout(tick, 100);
  };
  tick();
  const stop = new AbortController();
  const scrubbing = store.integrity.scrub({
    bytesPerSec: 1024 * MiB,
    pauseMs: 60_000,
    signal: stop.signal,
  });
  const start = clock.monotonic();
  await cluster.until(() => store.integrity.scrubbed.passes === 1, { stepMs: 10 });
  // After the log checks and after each of the three files.
  assert.equal(store.integrity.scrubbed.deferredMs, 4 * SCRUB_DEFER_MS_MAX);
  assert.ok(clock.monotonic() - start >= 4 * SCRUB_DEFER_MS_MAX);
  assert.equal(store.integrity.scrubbed.bytes, 3 * 2 * 100, "every replica checked");
  clock.clearTimeout(load);
  stop.abort();
  await scrubbing;
});

Deno.test("the scrubber stops at once when aborted while it checks the logs, not after its pause", async () => {
  await using cluster = await MemoryCluster.start();
  const stop = new AbortController();
  let done = false;
  const scrub = cluster.store.integrity.scrub({
    bytesPerSec: 1024 * MiB,
    pauseMs: 60_000,
    signal: stop.signal,
  }).then(() => done = true);
  stop.abort(); // the log checks are on their way to the nodes
  await cluster.clock.advance(1_000);
  assert.ok(done, "the scrubber has returned");
  await scrub;
});

Deno.test("fsck checks each file once, a page of names at a time, while files are put and removed during it", async () => {
  await using cluster = await MemoryCluster.start();
  const { store } = cluster;
  const names = Array.from({ length: 30 }, (_, i) => `f/${String(i).padStart(2, "0")}`);
  for (const name of names) await store.put(name, bytesOf(100, 1));
  // The files put last come last in the index's order: not yet checked when the fifth file is.
  const removed = ["f/27", "f/28"];
  const putBack = "f/29";
  const added = ["g/0", "g/1"];
  const checked: string[] = [];
  let changed = false;
  const { integrity } = store;
  const checkFile = integrity.checkFile.bind(integrity);
  integrity.checkFile = async (m, counts, options) => {
    checked.push(m.name);
    if (checked.length === 5) {
      for (const name of [...removed, putBack]) await store.remove(name);
      await store.put(putBack, bytesOf(50, 2));
      for (const name of added) await store.put(name, bytesOf(10, 3));
      changed = true;
    }
    return await checkFile(m, counts, options);
  };
  const report = await integrity.fsck({ pageFiles: 4 });
  assert.ok(changed, "files were removed and put during fsck");
  assert.equal(new Set(checked).size, checked.length, "no file checked twice");
  const throughout = names.filter((name) => !removed.includes(name));
  assert.deepEqual(throughout.filter((name) => !checked.includes(name)), [], "none skipped");
  assert.deepEqual(removed.filter((name) => checked.includes(name)), [], "removed ones skipped");
  assert.deepEqual(
    [report.files, report.healthy, report.chunks],
    [checked.length, checked.length, checked.length],
    "the counts are of the files checked (one chunk each)",
  );
  assert.deepEqual([report.repaired, report.underReplicated, report.lost], [[], [], []]);
});
