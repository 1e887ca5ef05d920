import assert from "node:assert/strict";
import type { FileHandle, FileSystem, Log, OpenOptions } from "../env/env.ts";
import {
  frameRecord,
  parseRecords,
  RECORD_HEADER_SIZE_BYTES,
  RECORD_SIZE_BYTES_MAX,
} from "./record_frame.ts";
import {
  LOG_PREALLOCATE_BYTES,
  openRecordLog,
  RECORD_BATCH_BYTES_MAX,
  RECORD_QUEUE_BYTES_MAX,
  RECORD_QUEUE_RECORDS_MAX,
  type RecordLog,
  type ReplayReport,
} from "./record_log.ts";
import {
  MEMORY_TEST_FS,
  recordingLog,
  tempLogPath,
  TEST_FILE_SYSTEMS,
  texts,
  writeFileTo,
} from "./_test_fs.ts";

const encoder = new TextEncoder();

/**
 * Opens the log at `path` on `fs`, checks it replays `expected`, and closes it; returns what the
 * replay found and where the records end.
 */
async function assertReplays(
  path: string,
  expected: readonly string[],
  options: { fs: FileSystem; log?: Log },
): Promise<{ replay: ReplayReport; sizeBytes: number }> {
  const { log, records } = await openRecordLog(path, options);
  await log.close();
  assert.deepEqual(texts(records), expected);
  return { replay: log.replay, sizeBytes: log.sizeBytes };
}

/** The bytes of the log file at `path` up to `sizeBytes` (its records, without the zeros). */
async function recordBytes(path: string, sizeBytes: number, fs: FileSystem): Promise<Uint8Array> {
  return (await fs.readFile(path)).subarray(0, sizeBytes);
}

for (const testFs of TEST_FILE_SYSTEMS) {
  Deno.test(`openRecordLog() creates a missing log and replays appended records in order${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs } = temp;
    const first = await openRecordLog(temp.path, { fs });
    assert.deepEqual(first.records, []);
    assert.equal(first.log.sizeBytes, 0);
    for (const text of ["one", "two", "three"]) await first.log.append(encoder.encode(text));
    assert.equal(first.log.sizeBytes, 3 * RECORD_HEADER_SIZE_BYTES + 11);
    await first.log.close();
    assert.equal(first.log.zeroedBytes, LOG_PREALLOCATE_BYTES);
    assert.equal(fs.statSync(temp.path).size, LOG_PREALLOCATE_BYTES, "records, then zeros");
    const second = await openRecordLog(temp.path, { fs });
    assert.deepEqual(texts(second.records), ["one", "two", "three"]);
    assert.equal(second.log.sizeBytes, first.log.sizeBytes);
    await second.log.append(encoder.encode("four"));
    await second.log.close();
    await assertReplays(temp.path, ["one", "two", "three", "four"], { fs });
  });

  Deno.test(`openRecordLog() truncates a torn tail at every byte offset and keeps intact records${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs } = temp;
    const { log } = await openRecordLog(temp.path, { fs });
    for (const text of ["first", "second", "the last record"]) {
      await log.append(encoder.encode(text));
    }
    await log.close();
    const whole = await recordBytes(temp.path, log.sizeBytes, fs);
    const lastStart = whole.length - RECORD_HEADER_SIZE_BYTES - "the last record".length;
    for (let cut = lastStart; cut < whole.length; cut++) {
      await writeFileTo(temp.path, whole.subarray(0, cut), { fs });
      const { log, records } = await openRecordLog(temp.path, { fs });
      assert.deepEqual(texts(records), ["first", "second"], `cut at ${cut}`);
      // The length's first bytes are zero: cut there, the tail is zeros, not a torn record.
      const torn = whole.subarray(lastStart, cut).findLastIndex((byte) => byte !== 0) + 1;
      assert.equal(log.replay.tailCutBytes, torn);
      assert.equal(log.replay.zeroTailBytes, cut - lastStart - torn);
      assert.equal(log.sizeBytes, lastStart);
      await log.append(encoder.encode("after"));
      await log.close();
      await assertReplays(temp.path, ["first", "second", "after"], { fs });
    }
  });

  Deno.test(`openRecordLog() detects a flipped bit anywhere in the last record${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs } = temp;
    const { log } = await openRecordLog(temp.path, { fs });
    for (const text of ["kept", "flipped"]) await log.append(encoder.encode(text));
    await log.close();
    const whole = await recordBytes(temp.path, log.sizeBytes, fs);
    const lastStart = whole.length - RECORD_HEADER_SIZE_BYTES - "flipped".length;
    for (let offset = lastStart; offset < whole.length; offset++) {
      for (const zeros of [0, 4096]) {
        const corrupt = new Uint8Array(whole.length + zeros);
        corrupt.set(whole);
        corrupt[offset] ^= 0x10;
        await writeFileTo(temp.path, corrupt, { fs });
        const { replay, sizeBytes } = await assertReplays(temp.path, ["kept"], { fs });
        assert.equal(sizeBytes, lastStart);
        assert.ok(replay.tailCutBytes > 0, `flip at ${offset}, ${zeros} zeros after`);
      }
    }
  });

  Deno.test(`openRecordLog() skips a damaged record that intact ones follow (bit rot)${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs } = temp;
    const { log } = await openRecordLog(temp.path, { fs });
    for (const text of ["first", "rotten", "third", "fourth"]) {
      await log.append(encoder.encode(text));
    }
    await log.close();
    const whole = await recordBytes(temp.path, log.sizeBytes, fs);
    const rottenStart = RECORD_HEADER_SIZE_BYTES + "first".length;
    for (let at = rottenStart + 4; at < rottenStart + RECORD_HEADER_SIZE_BYTES + 6; at++) {
      const corrupt = whole.slice();
      corrupt[at] ^= 0x01; // its CRC32 or its body
      const parsed = parseRecords(corrupt);
      assert.deepEqual(texts(parsed.records), ["first", "third", "fourth"], `flip at ${at}`);
      assert.equal(parsed.damagedRegions, 1);
      assert.deepEqual(parsed.regions, [{
        offset: rottenStart,
        bytes: RECORD_HEADER_SIZE_BYTES + 6,
      }]);
      assert.equal(parsed.intactBytes, whole.length);
      await writeFileTo(temp.path, corrupt, { fs });
      const damage = recordingLog();
      const { replay, sizeBytes } = await assertReplays(temp.path, ["first", "third", "fourth"], {
        fs,
        log: damage,
      });
      assert.deepEqual(damage.messages, [
        `dfs: log "${temp.path}": skipped 1 damaged region(s), 14 bytes in all; kept 2 intact record(s) after the damage`,
      ]);
      assert.equal(replay.tailCutBytes, 0, "nothing cut off");
      assert.equal(sizeBytes, whole.length);
    }
  });

  Deno.test(`openRecordLog() stops at a length over RECORD_SIZE_BYTES_MAX${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs } = temp;
    const header = new Uint8Array(RECORD_HEADER_SIZE_BYTES + 4);
    new DataView(header.buffer).setUint32(0, RECORD_SIZE_BYTES_MAX + 1);
    const kept = frameRecord(encoder.encode("kept"));
    await writeFileTo(temp.path, new Uint8Array([...kept, ...header]), { fs });
    const { replay, sizeBytes } = await assertReplays(temp.path, ["kept"], { fs });
    assert.equal(sizeBytes, kept.length);
    assert.equal(replay.tailCutBytes, 4, "the bad length, up to its last byte that is not zero");
    assert.equal(replay.zeroTailBytes, RECORD_HEADER_SIZE_BYTES, "cut with it");
  });

  Deno.test(`openRecordLog() removes a stale .tmp file${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs } = temp;
    await writeFileTo(`${temp.path}.tmp`, encoder.encode("half a rewrite"), { fs });
    await assertReplays(temp.path, [], { fs });
    assert.throws(() => fs.statSync(`${temp.path}.tmp`), Deno.errors.NotFound);
  });

  Deno.test(`append() batches 1000 appends called in one turn into one fdatasync, in call order${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs } = temp;
    const { log } = await openRecordLog(temp.path, { fs });
    const expected = Array.from({ length: 1000 }, (_, i) => `record ${i}`);
    await Promise.all(expected.map((text) => log.append(encoder.encode(text))));
    // Called in one turn, they share one batch.
    assert.equal(log.syncCount, 1);
    await log.close();
    await assertReplays(temp.path, expected, { fs });
  });

  Deno.test(`append() waits while the queue is full and keeps call order${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs } = temp;
    const { log } = await openRecordLog(temp.path, { fs });
    const big = Math.ceil(RECORD_QUEUE_BYTES_MAX / 8);
    const expected = [
      ...Array.from({ length: 12 }, (_, i) => `${i}`.padEnd(big, ".")),
      ...Array.from({ length: RECORD_QUEUE_RECORDS_MAX + 100 }, (_, i) => `small ${i}`),
    ];
    await Promise.all(expected.map((text) => log.append(encoder.encode(text))));
    await log.close();
    await assertReplays(temp.path, expected, { fs });
  });

  Deno.test(`append() copies the record, so the caller may reuse its buffer at once${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs } = temp;
    const { log } = await openRecordLog(temp.path, { fs });
    const reused = new Uint8Array(1);
    const appends = [];
    for (const byte of [1, 2, 3]) {
      reused[0] = byte;
      appends.push(log.append(reused));
    }
    await Promise.all(appends);
    await log.close();
    const { log: reopened, records } = await openRecordLog(temp.path, { fs });
    await reopened.close();
    assert.deepEqual(records.map((record) => record[0]), [1, 2, 3]);
  });

  Deno.test(`append() rejects a record over RECORD_SIZE_BYTES_MAX with TOO_LARGE${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs } = temp;
    const { log } = await openRecordLog(temp.path, { fs });
    await assert.rejects(log.append(new Uint8Array(RECORD_SIZE_BYTES_MAX + 1)), {
      name: "DfsError",
      code: "TOO_LARGE",
      message: `Cannot append record: ${
        RECORD_SIZE_BYTES_MAX + 1
      } bytes is over the limit of ${RECORD_SIZE_BYTES_MAX}`,
    });
    await assert.rejects(log.rewrite([new Uint8Array(RECORD_SIZE_BYTES_MAX + 1)]), {
      name: "DfsError",
      code: "TOO_LARGE",
    });
    await log.append(new Uint8Array(RECORD_SIZE_BYTES_MAX).fill(7));
    await log.close();
    const { log: reopened, records } = await openRecordLog(temp.path, { fs });
    await reopened.close();
    assert.equal(records.length, 1);
    assert.equal(records[0].length, RECORD_SIZE_BYTES_MAX);
  });

  Deno.test(`rewrite() replaces the log, then appends follow it and replay after reopen${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs } = temp;
    const { log } = await openRecordLog(temp.path, { fs });
    const compacted = Array.from({ length: 3000 }, (_, i) => `compacted ${i}`.padEnd(1000, "."));
    const before = ["a", "b", "c"].map((text) => log.append(encoder.encode(text)));
    const rewrite = log.rewrite(compacted.map((text) => encoder.encode(text)));
    const after = ["d", "e"].map((text) => log.append(encoder.encode(text)));
    await Promise.all([...before, rewrite, ...after]);
    const sizeBytes = compacted.length * (RECORD_HEADER_SIZE_BYTES + 1000) +
      2 * (RECORD_HEADER_SIZE_BYTES + 1);
    assert.equal(log.sizeBytes, sizeBytes);
    await log.append(encoder.encode("f"));
    await log.close();
    await assertReplays(temp.path, [...compacted, "d", "e", "f"], { fs });
    assert.throws(() => fs.statSync(`${temp.path}.tmp`), Deno.errors.NotFound);
  });

  Deno.test({
    name:
      `append() on a full disk rejects its whole batch with UNAVAILABLE and cuts the file back${testFs.suffix}`,
    ignore: testFs.newSmallRoot === undefined,
    async fn() {
      await using disk = await testFs.newSmallRoot!(1024 * 1024);
      const { fs } = disk;
      const path = `${disk.dir}/node.log`;
      await writeFileTo(`${disk.dir}/filler`, new Uint8Array(512 * 1024), { fs });
      const messages = recordingLog();
      const { log } = await openRecordLog(path, { fs, log: messages });
      // "first" is written alone; "small" and the big record fill the next batch, which does not fit
      // on the disk; "after" goes in the batch after that.
      const big = new Uint8Array(RECORD_BATCH_BYTES_MAX - 2 * RECORD_HEADER_SIZE_BYTES - 5).fill(1);
      const first = log.append(encoder.encode("first"));
      await null; // the writer takes its batch: "first" alone
      const outcomes = await Promise.allSettled([
        first,
        log.append(encoder.encode("small")),
        log.append(big),
        log.append(encoder.encode("after")),
      ]);
      assert.deepEqual(outcomes.map((outcome) => outcome.status), [
        "fulfilled",
        "rejected",
        "rejected",
        "fulfilled",
      ]);
      for (const outcome of outcomes.slice(1, 3)) {
        const { reason } = outcome as PromiseRejectedResult;
        assert.equal(reason.name, "DfsError");
        assert.equal(reason.code, "UNAVAILABLE");
        assert.match(reason.message, /^Cannot append record: No space left on device/);
      }
      assert.equal(log.syncCount, 3);
      assert.equal(fs.statSync(path).size, log.sizeBytes, "no zeros: they did not fit");
      assert.match(
        messages.messages[0],
        /^dfs: log ".*": cannot write zeros ahead of its records, appends grow the file meanwhile: No space left on device/,
      );
      // A rewrite that does not fit fails and leaves the old log in use.
      await assert.rejects(log.rewrite([big, big]), {
        name: "DfsError",
        code: "UNAVAILABLE",
        message: /^Cannot rewrite log: No space left on device/,
      });
      assert.throws(() => fs.statSync(`${path}.tmp`), Deno.errors.NotFound);
      await log.append(encoder.encode("last"));
      await log.close();
      await assertReplays(path, ["first", "after", "last"], { fs });
    },
  });

  Deno.test(`openRecordLog() replays records across read boundaries, bigger ones too, with offsets${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs } = temp;
    const { log } = await openRecordLog(temp.path, { fs });
    const sizes = [1_500_000, 1_500_000, 1_500_000, 5_000_000, 10, 3_000_000];
    const bodies = sizes.map((size, i) => new Uint8Array(size).fill(i + 1));
    const appended = [];
    for (const body of bodies) appended.push(await log.append(body));
    for (const [i, offset] of appended.entries()) {
      assert.deepEqual(await log.read(offset, 10), bodies[i].subarray(0, 10));
    }
    await log.close();
    const replayed = await openRecordLog(temp.path, { fs });
    assert.deepEqual(replayed.offsets, appended);
    assert.deepEqual(
      replayed.records.map((r) => [r.length, r[0], r[r.length - 1]]),
      bodies.map((b) => [b.length, b[0], b[b.length - 1]]),
    );
    await replayed.log.close();
  });
}

Deno.test("RecordLog after a crash replays every append that resolved, and no other", async () => {
  await using temp = await tempLogPath(MEMORY_TEST_FS);
  const fs = temp.memory!;
  const { log } = await openRecordLog(temp.path, { fs });
  for (const text of ["one", "two"]) await log.append(encoder.encode(text));
  const lost = log.append(encoder.encode("in flight"));
  fs.crash();
  await assert.rejects(lost, { name: "DfsError", code: "UNAVAILABLE" });
  await assertReplays(temp.path, ["one", "two"], { fs });
  // A crash after a rewrite keeps the rewritten log, and the appends after it.
  const reopened = await openRecordLog(temp.path, { fs });
  await reopened.log.rewrite(["a", "b"].map((text) => encoder.encode(text)));
  await reopened.log.append(encoder.encode("c"));
  fs.crash();
  await assertReplays(temp.path, ["a", "b", "c"], { fs });
});

Deno.test("RecordLog: an append whose fdatasync fails is rejected and cut off the file", async () => {
  await using temp = await tempLogPath(MEMORY_TEST_FS);
  const fs = temp.memory!;
  const { log } = await openRecordLog(temp.path, { fs });
  await log.append(encoder.encode("kept"));
  fs.failNext(temp.path, "sync", "EIO");
  await assert.rejects(log.append(encoder.encode("failed")), {
    name: "DfsError",
    code: "UNAVAILABLE",
    message: "Cannot append record: Input/output error (os error 5)",
  });
  assert.equal(fs.statSync(temp.path).size, log.sizeBytes);
  await log.append(encoder.encode("after"));
  fs.crash();
  await assertReplays(temp.path, ["kept", "after"], { fs });
});

Deno.test("RecordLog: a rewrite whose rename fails keeps the old log in use", async () => {
  await using temp = await tempLogPath(MEMORY_TEST_FS);
  const fs = temp.memory!;
  const { log } = await openRecordLog(temp.path, { fs });
  await log.append(encoder.encode("old"));
  fs.failNext(temp.path, "rename", "EIO");
  await assert.rejects(log.rewrite([encoder.encode("new")]), {
    name: "DfsError",
    code: "UNAVAILABLE",
    message: "Cannot rewrite log: Input/output error (os error 5)",
  });
  assert.throws(() => fs.statSync(`${temp.path}.tmp`), Deno.errors.NotFound);
  await log.append(encoder.encode("appended"));
  await log.close();
  await assertReplays(temp.path, ["old", "appended"], { fs });
});

/** Opens the file at `path` on `fs` for writing and runs `change` on it (someone else's edit). */
async function changeFile(
  path: string,
  fs: FileSystem,
  change: (file: FileHandle) => Promise<unknown>,
): Promise<void> {
  using file = await fs.open(path, { write: true });
  await change(file);
}

/** `fs`, whose opens of `path` for reading wait for `opening` while `holding` is set. */
function holdOpening(
  fs: FileSystem,
  path: string,
  opening: Promise<void>,
): { fs: FileSystem; holding: boolean } {
  const gated = { fs, holding: false };
  gated.fs = new Proxy(fs, {
    get(target, key) {
      if (key === "open") {
        return async (at: string, options: OpenOptions) => {
          if (gated.holding && at === path && options.read) await opening;
          return await target.open(at, options);
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return gated;
}

/** Appends `count` records `record 0`, `record 1`... to `log`; returns where each frame starts. */
async function appendRecords(log: RecordLog, count: number): Promise<number[]> {
  const starts = [];
  for (let i = 0; i < count; i++) {
    starts.push(await log.append(encoder.encode(`record ${i}`)) - RECORD_HEADER_SIZE_BYTES);
  }
  return starts;
}

const CLEAN = {
  damagedRegions: 0,
  damagedBytes: 0,
  regions: [],
  missingBytes: 0,
  superseded: false,
};

for (const testFs of TEST_FILE_SYSTEMS) {
  Deno.test(`verify() finds every record of a clean log while appends go on${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { log } = await openRecordLog(temp.path, { fs: temp.fs });
    await appendRecords(log, 50);
    const [report] = await Promise.all([
      log.verify(),
      ...Array.from({ length: 20 }, (_, i) => log.append(encoder.encode(`meanwhile ${i}`))),
    ]);
    assert.deepEqual(report, { records: 50, ...CLEAN });
    assert.deepEqual(await log.verify(), { records: 70, ...CLEAN });
    await log.close();
  });

  Deno.test(`verify() reports bytes flipped in the log while it is open${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs } = temp;
    const { log } = await openRecordLog(temp.path, { fs });
    const starts = await appendRecords(log, 20);
    await changeFile(temp.path, fs, async (file) => {
      await file.seek(starts[7] + 2, Deno.SeekMode.Start);
      await file.write(new Uint8Array([0x7f])); // a length
      await file.seek(starts[12] + 10, Deno.SeekMode.Start);
      await file.write(new Uint8Array([0x00])); // a body
    });
    assert.deepEqual(await log.verify(), {
      ...CLEAN,
      records: 18,
      damagedRegions: 2,
      damagedBytes: starts[8] - starts[7] + starts[13] - starts[12],
      regions: [
        { offset: starts[7], bytes: starts[8] - starts[7] },
        { offset: starts[12], bytes: starts[13] - starts[12] },
      ],
    });
    await log.close();
  });

  Deno.test(`verify() reports the bytes missing from a log truncated while open${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs } = temp;
    const { log } = await openRecordLog(temp.path, { fs });
    const starts = await appendRecords(log, 20);
    await changeFile(temp.path, fs, (file) => file.truncate(starts[15]));
    assert.deepEqual(await log.verify(), {
      ...CLEAN,
      records: 15,
      missingBytes: log.zeroedBytes - starts[15], // the records cut, and the zeros after them
    });
    await changeFile(temp.path, fs, (file) => file.truncate(starts[10] + 3));
    assert.deepEqual(await log.verify(), {
      ...CLEAN,
      records: 10,
      damagedRegions: 1, // the record cut short
      damagedBytes: 3,
      regions: [{ offset: starts[10], bytes: 3 }],
      missingBytes: log.zeroedBytes - starts[10] - 3,
    });
    await log.close();
  });

  Deno.test(`verify() is superseded by a rewrite that runs meanwhile${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const opening = Promise.withResolvers<void>();
    const gated = holdOpening(temp.fs, temp.path, opening.promise);
    const { log } = await openRecordLog(temp.path, { fs: gated.fs });
    await appendRecords(log, 20);
    gated.holding = true;
    const check = log.verify(); // waits to open the file...
    await log.rewrite([encoder.encode("only")]); // ...while the log is rewritten
    opening.resolve();
    assert.equal((await check).superseded, true);
    gated.holding = false;
    assert.deepEqual(await log.verify(), { records: 1, ...CLEAN });
    await log.close();
  });

  Deno.test(`append() after the log's folder was removed rejects, and so does every later append${testFs.suffix}`, async () => {
    await using temp = await testFs.newRoot();
    const { fs } = temp;
    const dir = `${temp.dir}/rank-1`;
    await fs.mkdir(dir);
    const path = `${dir}/meta.log`;
    const { log } = await openRecordLog(path, { fs });
    await appendRecords(log, 3);
    const failure = log.failure;
    assert.equal(failure, undefined);
    await fs.remove(dir, { recursive: true });
    const removed = {
      name: "DfsError",
      code: "UNAVAILABLE",
      message: `Cannot append record: the log file "${path}" was removed under the node`,
    };
    await assert.rejects(log.append(encoder.encode("lost")), removed);
    assert.equal(log.failure?.message, removed.message);
    const later = ["a", "b", "c"].map((text) => log.append(encoder.encode(text)));
    for (const append of later) await assert.rejects(append, removed);
    await assert.rejects(log.rewrite([encoder.encode("new")]), removed);
    await assert.rejects(log.verify(), {
      name: "DfsError",
      code: "UNAVAILABLE",
      message: new RegExp(`^Cannot verify log "${path}": No such file or directory`),
    });
    await log.close();
  });

  Deno.test(`append() after the log was truncated under the node rejects, and so does every later append${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs } = temp;
    const { log } = await openRecordLog(temp.path, { fs });
    await appendRecords(log, 3);
    const durable = log.sizeBytes;
    await changeFile(temp.path, fs, (file) => file.truncate(5));
    const frame = RECORD_HEADER_SIZE_BYTES + "lost".length;
    const changed = {
      name: "DfsError",
      code: "UNAVAILABLE",
      message: `Cannot append record: the log file "${temp.path}" changed size under the node: ${
        durable + frame // the record lands at its place, past a hole
      } bytes, ${log.zeroedBytes} expected`,
    };
    await assert.rejects(log.append(encoder.encode("lost")), changed);
    await assert.rejects(log.append(encoder.encode("also lost")), changed);
    assert.equal(log.failure?.message, changed.message);
    assert.equal(log.sizeBytes, durable, "nothing more was acknowledged");
    await log.close();
  });
}
