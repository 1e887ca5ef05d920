import assert from "node:assert/strict";
import type { FileMeta, FileReader, Upload } from "../common/file_store.ts";
import { meterReader, meterUpload, Throughput, THROUGHPUT_WINDOW_SECONDS } from "./throughput.ts";

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

const META: FileMeta = {
  name: "f",
  size: 3,
  sha256: "",
  modified: 0,
  version: 1,
  replicas: 1,
  chunks: [],
};

Deno.test("meterUpload() counts the bytes of each write, and a put once the commit succeeds", async () => {
  const clock = manualClock(1_000);
  const throughput = new Throughput(clock);
  const written: number[] = [];
  let fail = false;
  const upload: Upload = {
    receivedBytes: 0,
    write: (bytes) => Promise.resolve(void written.push(bytes.length)),
    commit: () => fail ? Promise.reject(new Error("no")) : Promise.resolve(META),
    abort: () => Promise.resolve(),
  };
  assert.equal(meterUpload(upload, throughput), upload, "the same object");
  await upload.write(new Uint8Array(2));
  await upload.write(new Uint8Array(1));
  assert.deepEqual(written, [2, 1], "the writes reach the upload");
  assert.equal(await upload.commit(), META);
  fail = true;
  await assert.rejects(() => upload.commit(), /no/);
  clock.ms += 1000;
  const snapshot = throughput.snapshot();
  assert.deepEqual(last(snapshot.writtenBytes), [3]);
  assert.deepEqual(last(snapshot.ops), [1], "only the commit that succeeded");
  assert.equal(snapshot.totals.ops.put, 1);
});

Deno.test("meterReader() counts a get as the read opens, and each chunk's bytes as handed out", async () => {
  const clock = manualClock(1_000);
  const throughput = new Throughput(clock);
  const reader: FileReader = {
    meta: META,
    start: 0,
    end: 3,
    async *chunks() {
      yield new Uint8Array(2);
      yield new Uint8Array(1);
    },
    recycle: () => {},
    close: () => {},
  };
  meterReader(reader, throughput);
  const sizes: number[] = [];
  for await (const chunk of reader.chunks()) sizes.push(chunk.length);
  assert.deepEqual(sizes, [2, 1]);
  clock.ms += 1000;
  const snapshot = throughput.snapshot();
  assert.deepEqual(last(snapshot.readBytes), [3]);
  assert.equal(snapshot.totals.ops.get, 1);
});
