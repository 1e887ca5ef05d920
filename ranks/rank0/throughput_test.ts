import assert from "node:assert/strict";
import { Throughput, THROUGHPUT_WINDOW_SECONDS } from "./throughput.ts";
import { MemoryCluster } from "../testing/memory_cluster.ts";
import { bytesOf, MiB, readAll } from "../testing/cluster_helpers.ts";

/** A clock that moves only when told: `monotonic` ms, and `now` that many ms after an epoch. */
function manualClock(startMs = 5_000) {
  const clock = {
    ms: startMs,
    now: () => 1_700_000_000_000 + clock.ms,
    monotonic: () => clock.ms,
  };
  return clock;
}

const last = (series: number[], n = 1) => series.slice(-n);

Deno.test("Throughput counts operations and bytes into the second they happen in", () => {
  const clock = manualClock(10_000);
  const throughput = new Throughput(clock);
  throughput.op("put");
  throughput.op("get");
  throughput.written(100);
  clock.ms += 400;
  throughput.read(7); // still second 10
  clock.ms += 700; // second 11
  throughput.op("meta");
  throughput.read(5);
  clock.ms += 1000; // second 12: 10 and 11 are complete

  const snapshot = throughput.snapshot();
  assert.equal(snapshot.windowSeconds, THROUGHPUT_WINDOW_SECONDS);
  assert.equal(snapshot.ops.length, THROUGHPUT_WINDOW_SECONDS);
  assert.deepEqual(last(snapshot.ops, 3), [0, 2, 1]);
  assert.deepEqual(last(snapshot.readBytes, 2), [7, 5]);
  assert.deepEqual(last(snapshot.writtenBytes, 2), [100, 0]);
  assert.equal(snapshot.endsAtMs, clock.now() - 100, "the end of the last complete second");
  assert.deepEqual(snapshot.totals, {
    ops: { put: 1, get: 1, meta: 1, list: 0, remove: 0, rename: 0 },
    readBytes: 12,
    writtenBytes: 100,
  });
});

Deno.test("Throughput.snapshot() leaves out the second in progress", () => {
  const clock = manualClock(20_000);
  const throughput = new Throughput(clock);
  throughput.op("list");
  assert.equal(throughput.snapshot().ops.reduce((a, b) => a + b), 0);
  clock.ms += 1000;
  assert.deepEqual(last(throughput.snapshot().ops), [1]);
});

Deno.test("Throughput forgets what is older than the window, and reuses its slots", () => {
  const clock = manualClock(0);
  const throughput = new Throughput(clock);
  throughput.op("put");
  throughput.written(1);
  clock.ms += THROUGHPUT_WINDOW_SECONDS * 1000;
  assert.equal(throughput.snapshot().ops[0], 1, "second 0 is the oldest in the window");
  clock.ms += 1000;
  assert.equal(throughput.snapshot().ops.reduce((a, b) => a + b), 0, "second 0 has left it");
  // The slot second 0 had is counting a new second: it starts from nothing.
  clock.ms = (THROUGHPUT_WINDOW_SECONDS + 1) * 1000;
  throughput.op("get");
  clock.ms += 1000;
  const snapshot = throughput.snapshot();
  assert.deepEqual(last(snapshot.ops), [1]);
  assert.equal(snapshot.writtenBytes.reduce((a, b) => a + b), 0);
  assert.equal(snapshot.totals.writtenBytes, 1, "totals keep everything");
});

Deno.test("Throughput after a long quiet shows a window of zeros", () => {
  const clock = manualClock(0);
  const throughput = new Throughput(clock);
  for (let i = 0; i < 50; i++) throughput.op("meta");
  clock.ms += 10 * THROUGHPUT_WINDOW_SECONDS * 1000;
  const snapshot = throughput.snapshot();
  assert.equal(snapshot.ops.reduce((a, b) => a + b), 0);
  assert.equal(snapshot.totals.ops.meta, 50);
});

Deno.test("Throughput.opsLastSecond() counts the second in progress and the share of the one before within 1000 ms", () => {
  const clock = manualClock(10_000);
  const throughput = new Throughput(clock);
  assert.equal(throughput.opsLastSecond(), 0);
  for (let i = 0; i < 100; i++) throughput.op("meta"); // second 10
  assert.equal(throughput.opsLastSecond(), 100);
  clock.ms = 11_250; // 3/4 of second 10 is within the last 1000 ms
  throughput.op("get");
  assert.equal(throughput.opsLastSecond(), 75 + 1);
  clock.ms = 11_999;
  assert.ok(Math.abs(throughput.opsLastSecond() - (0.1 + 1)) < 1e-9);
  clock.ms = 12_500; // second 10 is over a second ago; half of second 11
  assert.equal(throughput.opsLastSecond(), 0.5);
  clock.ms = 14_000;
  assert.equal(throughput.opsLastSecond(), 0);
  assert.deepEqual(last(throughput.snapshot().ops, 4), [100, 1, 0, 0], "it counted nothing");
});

Deno.test("the store counts each upload's bytes and put, each read's get and bytes, but not a compose's own reads", async () => {
  await using cluster = await MemoryCluster.start();
  const { store } = cluster;
  const a = await store.put("a", bytesOf(MiB + 5, 1));
  const b = await store.put("b", bytesOf(300, 2));
  await readAll(store, "a");
  await readAll(store, "b", { start: 100, end: 200 });
  const upload = store.beginUpload("never", { size: 10 });
  await upload.write(new Uint8Array(4));
  await upload.abort(); // its bytes came, but no put
  await store.compose("ab", [a, b].map(({ name, version }) => ({ name, version })));
  await cluster.clock.advance(1000);
  const { totals } = store.throughput.snapshot();
  assert.equal(totals.writtenBytes, MiB + 5 + 300 + 4);
  assert.equal(totals.readBytes, MiB + 5 + 100);
  assert.equal(totals.ops.put, 2);
  assert.equal(totals.ops.get, 2);
});
