import assert from "node:assert/strict";
import type { FileHandle, FileSystem, OpenOptions } from "../env/env.ts";
import { writeAll } from "./_fs.ts";
import { PREALLOCATE_WRITE_BYTES } from "./_log_file.ts";
import { frameRecord, RECORD_HEADER_SIZE_BYTES } from "./record_frame.ts";
import {
  LOG_PREALLOCATE_BYTES,
  LOG_PREALLOCATE_MARGIN_BYTES,
  openRecordLog,
  type Preallocation,
  type RecordLog,
} from "./record_log.ts";
import { MEMORY_TEST_FS, recordingLog, tempLogPath, TEST_FILE_SYSTEMS, texts } from "./_test_fs.ts";

const encoder = new TextEncoder();

/** Small zero space, so that a few hundred KiB of records cross several extensions. */
const SMALL: Preallocation = { bytes: 64 * 1024, marginBytes: 32 * 1024 };

/** Record `i`: its number, padded to 100 to 5,000 bytes. */
function recordText(i: number): string {
  return `record ${i} `.padEnd(100 + (i * 977) % 4900, String.fromCharCode(97 + i % 26));
}

/** Appends records `from` to `to - 1`, eight at a time (so they share batches); their offsets. */
async function appendRange(log: RecordLog, from: number, to: number): Promise<number[]> {
  const offsets = [];
  for (let i = from; i < to; i += 8) {
    const group = Array.from({ length: Math.min(8, to - i) }, (_, j) => recordText(i + j));
    offsets.push(...await Promise.all(group.map((text) => log.append(encoder.encode(text)))));
  }
  return offsets;
}

/**
 * `fs`, whose handles opened by `open()` while `armed` is set (a log's extensions; the log's own
 * handle is opened before) call `onWrite` with the handle's write count before each write.
 */
function watchingWrites(
  fs: FileSystem,
  onWrite: (count: number) => Promise<void> | void,
): { fs: FileSystem; armed: boolean } {
  const watched = { fs, armed: false };
  const bound = <T extends object>(target: T, key: string | symbol) => {
    const value = Reflect.get(target, key, target);
    return typeof value === "function" ? value.bind(target) : value;
  };
  watched.fs = new Proxy(fs, {
    get(target, key) {
      if (key !== "open") return bound(target, key);
      return async (path: string, options: OpenOptions) => {
        const file = await target.open(path, options);
        if (!watched.armed) return file;
        let count = 0;
        return new Proxy(file, {
          get(handle, name) {
            if (name !== "write") return bound(handle, name);
            return async (bytes: Uint8Array) => {
              await onWrite(++count);
              return await handle.write(bytes);
            };
          },
        }) as FileHandle;
      };
    },
  });
  return watched;
}

for (const testFs of TEST_FILE_SYSTEMS) {
  Deno.test(`RecordLog keeps LOG_PREALLOCATE_BYTES of zeros after its records, and a reopen keeps them${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs, path } = temp;
    const first = await openRecordLog(path, { fs });
    assert.equal(first.log.zeroedBytes, LOG_PREALLOCATE_BYTES, "written as the log is created");
    assert.equal(fs.statSync(path).size, LOG_PREALLOCATE_BYTES);
    const offsets = await appendRange(first.log, 0, 40);
    await first.log.close();
    assert.equal(first.log.zeroedBytes, LOG_PREALLOCATE_BYTES, "no extension above the margin");
    const messages = recordingLog();
    const second = await openRecordLog(path, { fs, log: messages });
    assert.deepEqual(texts(second.records), Array.from({ length: 40 }, (_, i) => recordText(i)));
    assert.deepEqual(second.offsets, offsets);
    assert.equal(second.log.sizeBytes, first.log.sizeBytes);
    assert.equal(second.log.replay.zeroTailBytes, LOG_PREALLOCATE_BYTES - first.log.sizeBytes);
    assert.equal(second.log.replay.tailCutBytes, 0);
    assert.equal(second.log.zeroedBytes, LOG_PREALLOCATE_BYTES, "the zeros are kept");
    assert.deepEqual(messages.messages, [], "a clean end is not reported");
    assert.deepEqual(
      await second.log.read(offsets[7], 20),
      encoder.encode(recordText(7)).slice(0, 20),
    );
    await second.log.close();
    assert.equal(fs.statSync(path).size, LOG_PREALLOCATE_BYTES);
  });

  Deno.test(`RecordLog extends its zeros ahead of the appends and replays every record after a restart${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs, path } = temp;
    const messages = recordingLog();
    const { log } = await openRecordLog(path, { fs, log: messages, preallocation: SMALL });
    const offsets = await appendRange(log, 0, 300); // ~750 KiB: about a dozen extensions
    await log.close();
    const zeros = log.zeroedBytes - log.sizeBytes;
    assert.ok(zeros > 0 && zeros <= SMALL.bytes, `${zeros} bytes of zeros: some, and bounded`);
    assert.equal(fs.statSync(path).size, log.zeroedBytes);
    const reopened = await openRecordLog(path, { fs, log: messages, preallocation: SMALL });
    assert.deepEqual(texts(reopened.records), Array.from({ length: 300 }, (_, i) => recordText(i)));
    assert.deepEqual(reopened.offsets, offsets);
    assert.equal(reopened.log.replay.zeroTailBytes, log.zeroedBytes - log.sizeBytes);
    assert.deepEqual(messages.messages, []);
    await appendRange(reopened.log, 300, 310);
    await reopened.log.close();
    const again = await openRecordLog(path, { fs, preallocation: SMALL });
    await again.log.close();
    assert.deepEqual(texts(again.records), Array.from({ length: 310 }, (_, i) => recordText(i)));
  });

  Deno.test(`RecordLog: a batch bigger than the zeros waits for the extension, then grows the file${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs, path } = temp;
    const { log } = await openRecordLog(path, { fs, preallocation: SMALL });
    const big = new Uint8Array(3 * SMALL.bytes).fill(7);
    const appends = [
      log.append(encoder.encode("small")),
      log.append(big),
      log.append(encoder.encode("after")),
    ];
    await Promise.all(appends);
    assert.equal(log.failure, undefined, "the file's size was one expected after each batch");
    await appendRange(log, 0, 20);
    await log.close();
    const reopened = await openRecordLog(path, { fs, preallocation: SMALL });
    await reopened.log.close();
    assert.equal(reopened.records.length, 23);
    assert.deepEqual(reopened.records[1], big);
    assert.equal(reopened.log.sizeBytes, log.sizeBytes);
  });

  Deno.test(`RecordLog: a torn record over the zeros is cut as a torn tail, at every length${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs, path } = temp;
    const { log } = await openRecordLog(path, { fs });
    await appendRange(log, 0, 5);
    await log.close();
    const logicalEnd = log.sizeBytes;
    const torn = frameRecord(encoder.encode("a record whose batch was torn by a crash"));
    for (let length = 1; length < torn.length; length++) {
      // The batch's first bytes reached the disk, over zeros that are still there after them.
      {
        using file = await fs.open(path, { write: true });
        await file.seek(logicalEnd, Deno.SeekMode.Start);
        await writeAll(file, torn.subarray(0, length));
      }
      const messages = recordingLog();
      const { log, records } = await openRecordLog(path, { fs, log: messages });
      assert.deepEqual(texts(records), Array.from({ length: 5 }, (_, i) => recordText(i)));
      const nonZero = torn.subarray(0, length).findLastIndex((byte) => byte !== 0) + 1;
      assert.equal(log.replay.tailCutBytes, nonZero, `torn after ${length} bytes`);
      assert.equal(log.replay.damagedRegions, 0);
      assert.equal(log.sizeBytes, logicalEnd);
      if (nonZero > 0) {
        assert.equal(log.zeroedBytes, logicalEnd + LOG_PREALLOCATE_BYTES, "zeros written anew");
      }
      assert.equal(messages.messages.length, nonZero > 0 ? 1 : 0);
      await log.close();
    }
    const { log: last, records } = await openRecordLog(path, { fs });
    await last.append(encoder.encode("after"));
    await last.close();
    const reopened = await openRecordLog(path, { fs });
    await reopened.log.close();
    assert.deepEqual(texts(reopened.records), [...texts(records), "after"]);
  });

  Deno.test(`verify() reports a log cut below its records or into its zeros as missing bytes${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs, path } = temp;
    const { log } = await openRecordLog(path, { fs });
    await appendRange(log, 0, 10);
    const clean = await log.verify();
    assert.deepEqual([clean.records, clean.missingBytes, clean.damagedRegions], [10, 0, 0]);
    const { sizeBytes, zeroedBytes } = log;
    for (const cut of [zeroedBytes - 1, sizeBytes + 1, sizeBytes, sizeBytes - 1]) {
      {
        using file = await fs.open(path, { write: true });
        await file.truncate(cut);
      }
      const found = await log.verify();
      assert.equal(found.missingBytes, zeroedBytes - cut, `cut at ${cut}`);
      assert.equal(found.records, cut < sizeBytes ? 9 : 10);
      assert.equal(found.damagedRegions, cut < sizeBytes ? 1 : 0, "the last record cut short");
    }
    await log.close();
  });

  Deno.test(`rewrite() writes zeros after the records it writes${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs, path } = temp;
    const { log } = await openRecordLog(path, { fs });
    await appendRange(log, 0, 10);
    const kept = ["a", "b"].map((text) => encoder.encode(text));
    await log.rewrite(kept);
    assert.equal(log.sizeBytes, 2 * (RECORD_HEADER_SIZE_BYTES + 1));
    assert.equal(log.zeroedBytes, log.sizeBytes + LOG_PREALLOCATE_BYTES);
    assert.equal(fs.statSync(path).size, log.zeroedBytes);
    await log.append(encoder.encode("c"));
    await log.close();
    const reopened = await openRecordLog(path, { fs });
    await reopened.log.close();
    assert.deepEqual(texts(reopened.records), ["a", "b", "c"]);
    assert.equal(reopened.log.replay.tailCutBytes, 0);
  });
}

Deno.test("RecordLog after a crash in the middle of an extension replays every acknowledged record", async () => {
  for (const commitsDuring of [0, 5]) {
    await using temp = await tempLogPath(MEMORY_TEST_FS);
    const { path } = temp;
    const memory = temp.memory!;
    const preallocation = {
      bytes: 3 * PREALLOCATE_WRITE_BYTES,
      marginBytes: PREALLOCATE_WRITE_BYTES,
    };
    const held = Promise.withResolvers<void>();
    const release = Promise.withResolvers<void>();
    const watched = watchingWrites(memory, async (count) => {
      if (count !== 2) return; // the extension's second MiB of zeros
      held.resolve();
      await release.promise;
    });
    const messages = recordingLog();
    const { log } = await openRecordLog(path, { fs: watched.fs, log: messages, preallocation });
    const zeroedAtOpen = log.zeroedBytes;
    watched.armed = true;
    let count = 0;
    while (log.zeroedBytes - log.sizeBytes >= preallocation.marginBytes) {
      count += 8;
      await appendRange(log, count - 8, count); // until an extension starts
    }
    await held.promise;
    // Appends go on in the zeros left while the extension is held half-way (their fdatasyncs make
    // the zeros it wrote so far durable too).
    count += commitsDuring * 8;
    await appendRange(log, count - commitsDuring * 8, count);
    assert.equal(log.failure, undefined, "the file's size was in the range expected meanwhile");
    assert.equal(log.zeroedBytes, zeroedAtOpen + PREALLOCATE_WRITE_BYTES, "one piece is synced");
    memory.crash();
    release.resolve();
    await log.close();
    const reopened = await openRecordLog(path, { fs: memory, log: recordingLog(), preallocation });
    await reopened.log.close();
    const expected = Array.from({ length: count }, (_, i) => recordText(i));
    assert.deepEqual(texts(reopened.records), expected, `${commitsDuring} commits during`);
    assert.equal(reopened.log.replay.tailCutBytes, 0);
    assert.equal(reopened.log.replay.damagedRegions, 0);
    assert.equal(reopened.log.sizeBytes, log.sizeBytes);
    const zeros = reopened.log.zeroedBytes - reopened.log.sizeBytes;
    assert.ok(zeros >= preallocation.marginBytes, `${zeros} bytes of zeros again`);
  }
});

Deno.test("RecordLog: a failed extension is said, cut back and tried again once the margin is appended", async () => {
  await using temp = await tempLogPath(MEMORY_TEST_FS);
  const { path } = temp;
  const memory = temp.memory!;
  const opened: { log?: RecordLog } = {};
  const attemptsAt: number[] = []; // where the records ended as each extension wrote first
  const watched = watchingWrites(memory, (count) => {
    if (count > 1) return;
    attemptsAt.push(opened.log!.sizeBytes);
    if (attemptsAt.length === 1) throw new Error("Input/output error (os error 5)");
  });
  const messages = recordingLog();
  const { log } = await openRecordLog(path, {
    fs: watched.fs,
    log: messages,
    preallocation: SMALL,
  });
  opened.log = log;
  watched.armed = true;
  const record = encoder.encode("r".repeat(1000));
  let count = 0;
  const appendOne = async () => void (await log.append(record), count++);
  while (messages.messages.length === 0) await appendOne();
  assert.deepEqual(messages.messages, [
    `dfs: log "${path}": cannot write zeros ahead of its records, appends grow the file meanwhile: Input/output error (os error 5)`,
  ]);
  assert.equal(memory.statSync(path).size, log.zeroedBytes, "the zeros written were cut back");
  // Appends go on: past the zeros they grow the file; after the margin, an extension succeeds.
  while (attemptsAt.length < 2) await appendOne();
  assert.ok(attemptsAt[1] - attemptsAt[0] >= SMALL.marginBytes - record.length, `${attemptsAt}`);
  await appendOne();
  assert.equal(log.failure, undefined);
  await log.close();
  assert.ok(log.zeroedBytes > log.sizeBytes, "extended again");
  assert.equal(memory.statSync(path).size, log.zeroedBytes);
  memory.crash();
  const reopened = await openRecordLog(path, { fs: memory, preallocation: SMALL });
  await reopened.log.close();
  assert.equal(reopened.records.length, count);
  assert.equal(reopened.log.sizeBytes, log.sizeBytes);
});

Deno.test("LOG_PREALLOCATE_MARGIN_BYTES is under LOG_PREALLOCATE_BYTES", () => {
  assert.ok(LOG_PREALLOCATE_MARGIN_BYTES < LOG_PREALLOCATE_BYTES);
});
