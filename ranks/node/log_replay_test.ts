import assert from "node:assert/strict";
import type { FileHandle, FileSystem } from "../env/env.ts";
import { MemoryFileSystem } from "../env/memory_fs.ts";
import { writeAll } from "./_fs.ts";
import { REPLAY_READ_BYTES, scanLogFile } from "./log_replay.ts";
import {
  frameRecord,
  parseRecords,
  RECORD_HEADER_SIZE_BYTES,
  SCAN_WINDOW_BYTES_MAX,
} from "./record_frame.ts";
import { LOG_PREALLOCATE_BYTES, openRecordLog } from "./record_log.ts";
import {
  MEMORY_TEST_FS,
  recordingLog,
  tempLogPath,
  TEST_FILE_SYSTEMS,
  texts,
  writeFileTo,
} from "./_test_fs.ts";

const encoder = new TextEncoder();

/** Deterministic bytes that look like garbage (xorshift32 from `seed`). */
function garbage(size: number, seed = 0x9e3779b9): Uint8Array {
  const bytes = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** Small records, then `damage`, then small records; with where the damage starts and ends. */
function logAround(damage: Uint8Array): { bytes: Uint8Array; texts: string[]; damageAt: number } {
  const texts = Array.from({ length: 100 }, (_, i) => `manifest ${i}`.padEnd(90, "."));
  const frames = texts.map((text) => frameRecord(encoder.encode(text)));
  const frameBytes = frames.reduce((sum, frame) => sum + frame.length, 0);
  const bytes = new Uint8Array(frameBytes + damage.length);
  let offset = 0;
  let damageAt = 0;
  frames.forEach((frame, i) => {
    if (i === 50) {
      damageAt = offset;
      bytes.set(damage, offset);
      offset += damage.length;
    }
    bytes.set(frame, offset);
    offset += frame.length;
  });
  return { bytes, texts, damageAt };
}

/** A memory file holding `bytes`, open for reading, wrapped to note the largest read asked for. */
async function openBytes(bytes: Uint8Array): Promise<FileHandle & { largestRead: number }> {
  const fs = new MemoryFileSystem();
  {
    using file = await fs.open("/log", { write: true, create: true });
    await writeAll(file, bytes);
  }
  const file = await fs.open("/log", { read: true });
  const wrapped = {
    largestRead: 0,
    read(into: Uint8Array) {
      wrapped.largestRead = Math.max(wrapped.largestRead, into.length);
      return file.read(into);
    },
    readSync: (into: Uint8Array) => file.readSync(into),
    write: (data: Uint8Array) => file.write(data),
    writeSync: (data: Uint8Array) => file.writeSync(data),
    seek: (offset: number, whence: Deno.SeekMode) => file.seek(offset, whence),
    seekSync: (offset: number, whence: Deno.SeekMode) => file.seekSync(offset, whence),
    truncate: (length?: number) => file.truncate(length),
    sync: () => file.sync(),
    syncData: () => file.syncData(),
    statSync: () => file.statSync(),
    lock: (exclusive?: boolean) => file.lock(exclusive),
    close: () => file.close(),
    [Symbol.dispose]: () => file[Symbol.dispose](),
  };
  return wrapped;
}

Deno.test("scanLogFile() keeps the records on both sides of a damaged region larger than its read buffer", async () => {
  const damage = garbage(100 * 1024);
  const { bytes, texts, damageAt } = logAround(damage);
  using file = await openBytes(bytes);
  const found: string[] = [];
  const { report, bytesRead } = await scanLogFile(file, (body) => {
    found.push(new TextDecoder().decode(body));
  }, { readBytes: 4096 });
  assert.deepEqual(found, texts);
  assert.equal(bytesRead, bytes.length);
  assert.deepEqual(report.regions, [{ offset: damageAt, bytes: damage.length }]);
  assert.equal(report.recordsAfterDamage, 50);
  assert.equal(report.tailBytes, 0);
  const { records: _, offsets: __, ...whole } = parseRecords(bytes);
  assert.deepEqual(report, { ...whole, records: 100 }, "as if parsed whole");
  assert.ok(file.largestRead <= SCAN_WINDOW_BYTES_MAX + 4096, "the buffer stays bounded");
});

Deno.test("scanLogFile() reads no further than limitBytes, and says when the file is shorter", async () => {
  const { bytes, texts, damageAt } = logAround(new Uint8Array(0));
  {
    using file = await openBytes(bytes);
    const found: string[] = [];
    const { report, bytesRead } = await scanLogFile(file, (body) => {
      found.push(new TextDecoder().decode(body));
    }, { limitBytes: damageAt, readBytes: 1000 });
    assert.deepEqual(found, texts.slice(0, 50));
    assert.equal(bytesRead, damageAt);
    assert.equal(report.tailBytes, 0);
  }
  using file = await openBytes(bytes);
  const { bytesRead } = await scanLogFile(file, () => {}, { limitBytes: bytes.length + 10 });
  assert.equal(bytesRead, bytes.length);
});

/** Appends `texts` to a new log at `path`; returns where each record's frame starts, and the end. */
async function appendAll(
  path: string,
  texts: readonly string[],
  fs: FileSystem,
): Promise<number[]> {
  const { log } = await openRecordLog(path, { fs });
  const starts = [];
  for (const text of texts) {
    starts.push(await log.append(encoder.encode(text)) - RECORD_HEADER_SIZE_BYTES);
  }
  starts.push(log.sizeBytes);
  await log.close();
  return starts;
}

/** Rewrites `bytes` of the file at `path` in place, at `offset`. */
async function overwrite(path: string, offset: number, bytes: Uint8Array, fs: FileSystem) {
  using file = await fs.open(path, { write: true });
  await file.seek(offset, Deno.SeekMode.Start);
  await writeAll(file, bytes);
}

const manifests = Array.from(
  { length: 72 },
  (_, i) => JSON.stringify({ name: `photos/2024/img-${i}.jpg`, version: 1, size: 1000 * i }),
);

for (const testFs of TEST_FILE_SYSTEMS) {
  Deno.test(`RecordLog.replay says a missing log was created, and what a reopen replayed${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs } = temp;
    const first = await openRecordLog(temp.path, { fs });
    assert.equal(first.log.replay.created, true);
    assert.equal(first.log.replay.records, 0);
    for (const text of ["a", "b", "c"]) await first.log.append(encoder.encode(text));
    await first.log.close();
    const second = await openRecordLog(temp.path, { fs });
    await second.log.close();
    assert.deepEqual(second.log.replay, {
      records: 3,
      recordsAfterDamage: 0,
      damagedRegions: 0,
      damagedBytes: 0,
      regions: [],
      tailCutBytes: 0,
      zeroTailBytes: first.log.zeroedBytes - first.log.sizeBytes,
      created: false,
      unsearchedFrom: undefined,
    });
    assert.equal(first.log.zeroedBytes, LOG_PREALLOCATE_BYTES);
  });

  Deno.test(`openRecordLog() keeps every record after a middle record with a flipped length byte, and reports it${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs, path } = temp;
    const starts = await appendAll(path, manifests, fs);
    const length = new Uint8Array(await fs.readFile(path)).subarray(starts[64], starts[64] + 4);
    await overwrite(path, starts[64] + 2, new Uint8Array([length[2] ^ 0x01]), fs);
    const damage = recordingLog();
    const { log, records } = await openRecordLog(path, { fs, log: damage });
    assert.deepEqual(texts(records), manifests.toSpliced(64, 1));
    const frameBytes = starts[65] - starts[64];
    assert.deepEqual(log.replay, {
      records: 71,
      recordsAfterDamage: 7,
      damagedRegions: 1,
      damagedBytes: frameBytes,
      regions: [{ offset: starts[64], bytes: frameBytes }],
      tailCutBytes: 0,
      zeroTailBytes: LOG_PREALLOCATE_BYTES - starts[72],
      created: false,
      unsearchedFrom: undefined,
    });
    assert.deepEqual(damage.messages, [
      `dfs: log "${path}": skipped 1 damaged region(s), ${frameBytes} bytes in all; kept 7 intact record(s) after the damage`,
    ]);
    assert.equal(log.sizeBytes, starts[72], "nothing cut off");
    await log.append(encoder.encode("after"));
    await log.close();
    const reopened = await openRecordLog(path, { fs, log: recordingLog() });
    await reopened.log.close();
    assert.deepEqual(texts(reopened.records), [...manifests.toSpliced(64, 1), "after"]);
  });

  Deno.test(`openRecordLog() cuts damage right before the end as a torn tail and reports its bytes${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs, path } = temp;
    const starts = await appendAll(path, manifests.slice(0, 10), fs);
    await overwrite(path, starts[9] + 1, new Uint8Array([0x40]), fs); // the last one's length
    const cuts = recordingLog();
    const { log, records } = await openRecordLog(path, { fs, log: cuts });
    assert.deepEqual(texts(records), manifests.slice(0, 9));
    assert.equal(log.replay.tailCutBytes, starts[10] - starts[9]);
    assert.equal(log.replay.damagedRegions, 0);
    assert.deepEqual(cuts.messages, [
      `dfs: log "${path}": cut a torn tail of ${starts[10] - starts[9]} bytes`,
    ]);
    assert.equal(log.replay.zeroTailBytes, LOG_PREALLOCATE_BYTES - starts[10], "cut with it");
    assert.equal(log.sizeBytes, starts[9]);
    await log.close();
    assert.equal(fs.statSync(path).size, starts[9] + LOG_PREALLOCATE_BYTES, "zeros written anew");
  });

  Deno.test(`openRecordLog() keeps a zero-filled tail as the clean end and never takes it for records${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs, path } = temp;
    const frames = manifests.slice(0, 5).map((text) => frameRecord(encoder.encode(text)));
    const recordsEnd = frames.reduce((sum, frame) => sum + frame.length, 0);
    const zeros = 3 * 1024 * 1024 + 5; // not a whole number of headers
    const bytes = new Uint8Array(recordsEnd + zeros);
    bytes.set(frames.flatMap((frame) => [...frame]));
    await writeFileTo(path, bytes, { fs });
    const messages = recordingLog();
    const { log, records } = await openRecordLog(path, { fs, log: messages });
    assert.deepEqual(texts(records), manifests.slice(0, 5));
    assert.equal(log.replay.tailCutBytes, 0);
    assert.equal(log.replay.zeroTailBytes, zeros);
    assert.equal(log.replay.damagedRegions, 0);
    assert.equal(log.sizeBytes, recordsEnd);
    assert.deepEqual(messages.messages, [], "a clean end is not reported");
    assert.equal(await log.append(encoder.encode("after")), recordsEnd + RECORD_HEADER_SIZE_BYTES);
    await log.close();
    const reopened = await openRecordLog(path, { fs, log: messages });
    await reopened.log.close();
    assert.deepEqual(texts(reopened.records), [...manifests.slice(0, 5), "after"]);
    assert.deepEqual(messages.messages, []);
  });

  Deno.test(`openRecordLog() skips a damaged region larger than REPLAY_READ_BYTES between small records${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs, path } = temp;
    const damage = garbage(REPLAY_READ_BYTES + 1024 * 1024, 7);
    const { bytes, texts: expected, damageAt } = logAround(damage);
    await writeFileTo(path, bytes, { fs });
    const { log, records, offsets } = await openRecordLog(path, { fs, log: recordingLog() });
    assert.deepEqual(texts(records), expected);
    assert.deepEqual(log.replay.regions, [{ offset: damageAt, bytes: damage.length }]);
    assert.deepEqual(offsets, parseRecords(bytes).offsets);
    assert.equal(log.sizeBytes, bytes.length);
    await log.close();
  });
}

Deno.test("openRecordLog() keeps damage it cannot search within RESYNC_CRC_BYTES_MAX, cuts nothing and refuses appends", async () => {
  await using temp = await tempLogPath(MEMORY_TEST_FS);
  const { fs, path } = temp;
  const kept = frameRecord(encoder.encode("kept"));
  // Candidates of 1 MiB whose followers look sane at every 4th byte (see record_frame_test.ts).
  const pattern = new Uint8Array(2 * 1024 * 1024).map((_, i) => [0x00, 0x10, 0x00, 0x00][i % 4]);
  const bytes = new Uint8Array([...kept, ...pattern, ...frameRecord(encoder.encode("after"))]);
  await writeFileTo(path, bytes, { fs });
  const messages = recordingLog();
  const { log, records } = await openRecordLog(path, { fs, log: messages });
  assert.deepEqual(texts(records), ["kept"]);
  const { unsearchedFrom } = log.replay;
  assert.ok(unsearchedFrom !== undefined && unsearchedFrom > kept.length);
  assert.deepEqual(log.replay.regions, [{
    offset: kept.length,
    bytes: bytes.length - kept.length,
  }]);
  assert.equal(log.replay.tailCutBytes, 0);
  assert.equal(fs.statSync(path).size, bytes.length, "nothing cut off");
  assert.equal(
    messages.messages[1],
    `dfs: log "${path}": the search through damage gave up at byte ${unsearchedFrom}; the rest of the log is kept but not replayed, and appends are refused`,
  );
  const refusal = {
    name: "DfsError",
    code: "UNAVAILABLE",
    message:
      `Cannot append record: log "${path}" has damage that could not be searched past byte ${unsearchedFrom}, so records appended after it would not be replayed`,
  };
  assert.equal(log.failure?.message, refusal.message);
  await assert.rejects(log.append(encoder.encode("refused")), refusal);
  await assert.rejects(log.rewrite([encoder.encode("refused")]), refusal);
  await log.close();
  assert.equal(fs.statSync(path).size, bytes.length);
});
