import assert from "node:assert/strict";
import type { FileSystem } from "../env/env.ts";
import { REWRITE_TAIL_PAUSE_BYTES } from "./_log_swap.ts";
import { RECORD_HEADER_SIZE_BYTES } from "./record_frame.ts";
import { type LogSwap, openRecordLog, type RecordLog } from "./record_log.ts";
import { MEMORY_TEST_FS, tempLogPath, TEST_FILE_SYSTEMS, texts } from "./_test_fs.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Records the test's rewrite yields: the first at once, the rest once `gate` opens. */
async function* gated(first: string[], gate: Promise<void>, rest: string[]) {
  for (const text of first) yield encoder.encode(text);
  await gate;
  for (const text of rest) yield encoder.encode(text);
}

/** Appends `texts` one after another; the offset of each body. */
async function appendAll(log: RecordLog, texts: string[]): Promise<number[]> {
  const offsets = [];
  for (const text of texts) offsets.push(await log.append(encoder.encode(text)));
  return offsets;
}

async function replayed(path: string, fs: FileSystem): Promise<string[]> {
  const { log, records } = await openRecordLog(path, { fs });
  await log.close();
  return texts(records);
}

/** Records of `size` bytes (a big tail, copied in rounds). */
const padded = (prefix: string, count: number, size: number) =>
  Array.from({ length: count }, (_, i) => `${prefix} ${i}`.padEnd(size, "."));

for (const testFs of TEST_FILE_SYSTEMS) {
  Deno.test(`rewrite() lets appends go on while it is built: they resolve first, and follow the rewritten records in the new log${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs, path } = temp;
    const { log } = await openRecordLog(path, { fs });
    await appendAll(log, ["old 0", "old 1", "old 2"]);
    const tailFrom = log.sizeBytes;
    const gate = Promise.withResolvers<void>();
    const events: string[] = [];
    let told: LogSwap | undefined;
    let after: Promise<number> | undefined;
    const rewrite = log.rewrite(gated(["new a"], gate.promise, ["new b"]), {
      swapped: (swap) => {
        events.push("swapped");
        told = swap;
        // Called at the swap: lands in the new file, after the tail.
        after = log.append(encoder.encode("after")).then((at) => {
          events.push("after appended");
          return at;
        });
      },
    });
    // More than a pause's worth, so the tail is copied in a round while appends go on, then its
    // last piece with them paused.
    const tail = [...padded("tail", 40, 32 * 1024), "tail last"];
    assert.ok(tail.length * 32 * 1024 > 1.2 * REWRITE_TAIL_PAUSE_BYTES);
    const tailAt = await appendAll(log, tail);
    events.push("tail appended");
    gate.resolve();
    const swap = await rewrite;
    const afterAt = await after!;
    assert.deepEqual(events, ["tail appended", "swapped", "after appended"]);
    assert.equal(told, swap);
    assert.equal(swap.tailFrom, tailFrom);
    assert.deepEqual(swap.offsets, [
      RECORD_HEADER_SIZE_BYTES,
      2 * RECORD_HEADER_SIZE_BYTES + "new a".length,
    ]);
    assert.equal(swap.shift, swap.offsets[1] + "new b".length - tailFrom);
    // Reads go to the new file: the tail where it moved to, the rewritten records where they went.
    for (const [i, text] of tail.entries()) {
      const bytes = await log.read(tailAt[i] + swap.shift, text.length);
      assert.equal(decoder.decode(bytes), text, `tail ${i}`);
    }
    assert.equal(decoder.decode(await log.read(swap.offsets[1], 5)), "new b");
    assert.equal(
      afterAt,
      tailAt.at(-1)! + swap.shift + "tail last".length + RECORD_HEADER_SIZE_BYTES,
    );
    await log.close();
    assert.deepEqual(await replayed(path, fs), ["new a", "new b", ...tail, "after"]);
    assert.throws(() => fs.statSync(`${path}.tmp`), Deno.errors.NotFound);
  });

  Deno.test(`rewrite() that fails while appends go on leaves the old log with every append${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs, path } = temp;
    const { log } = await openRecordLog(path, { fs });
    await appendAll(log, ["old"]);
    const gate = Promise.withResolvers<void>();
    async function* failing() {
      yield encoder.encode("new");
      await gate.promise;
      throw new Error("the records could not be made");
    }
    let told = false;
    const rewrite = log.rewrite(failing(), { swapped: () => void (told = true) });
    await appendAll(log, ["during 1", "during 2"]);
    gate.resolve();
    await assert.rejects(rewrite, /the records could not be made/);
    assert.equal(told, false);
    await appendAll(log, ["after"]);
    assert.throws(() => fs.statSync(`${path}.tmp`), Deno.errors.NotFound);
    await log.close();
    assert.deepEqual(await replayed(path, fs), ["old", "during 1", "during 2", "after"]);
  });

  Deno.test(`a second rewrite called while one runs starts once it is swapped in, and the appends called after it wait until then${testFs.suffix}`, async () => {
    await using temp = await tempLogPath(testFs);
    const { fs, path } = temp;
    const { log } = await openRecordLog(path, { fs });
    const gate = Promise.withResolvers<void>();
    const order: string[] = [];
    const first = log.rewrite(gated(["one"], gate.promise, [])).then(() => order.push("first"));
    const during = log.append(encoder.encode("during")).then(() => order.push("during"));
    const second = log.rewrite([encoder.encode("two")]).then(() => order.push("second"));
    const behind = log.append(encoder.encode("behind")).then(() => order.push("behind"));
    await during;
    gate.resolve();
    await Promise.all([first, second, behind]);
    assert.deepEqual(order, ["during", "first", "behind", "second"]);
    await log.close();
    assert.deepEqual(await replayed(path, fs), ["two", "behind"]);
  });
}

Deno.test("RecordLog: a crash while a rewrite is built keeps the old log and every append acknowledged", async () => {
  await using temp = await tempLogPath(MEMORY_TEST_FS);
  const fs = temp.memory!;
  const { log } = await openRecordLog(temp.path, { fs });
  await appendAll(log, ["old"]);
  const gate = Promise.withResolvers<void>();
  const rewrite = log.rewrite(gated(["new"], gate.promise, ["never"]));
  await appendAll(log, padded("during", 40, 32 * 1024));
  fs.crash();
  gate.resolve();
  await assert.rejects(rewrite);
  assert.deepEqual(await replayed(temp.path, fs), ["old", ...padded("during", 40, 32 * 1024)]);
});

Deno.test("RecordLog: a crash after a rewrite keeps the rewritten records, the tail and the appends after it", async () => {
  await using temp = await tempLogPath(MEMORY_TEST_FS);
  const fs = temp.memory!;
  const { log } = await openRecordLog(temp.path, { fs });
  await appendAll(log, ["old 1", "old 2"]);
  const gate = Promise.withResolvers<void>();
  const rewrite = log.rewrite(gated(["new"], gate.promise, []));
  await appendAll(log, ["during"]);
  gate.resolve();
  await rewrite;
  await appendAll(log, ["after"]);
  fs.crash();
  assert.deepEqual(await replayed(temp.path, fs), ["new", "during", "after"]);
});

Deno.test("RecordLog: a folder that cannot be fsynced after the swap fails the log for good", async () => {
  await using temp = await tempLogPath(MEMORY_TEST_FS);
  const fs = temp.memory!;
  const { log } = await openRecordLog(temp.path, { fs });
  await appendAll(log, ["old"]);
  // The next sync in the folder, once the new file is synced and renamed, is the folder's.
  const rewrite = log.rewrite([encoder.encode("new")], {
    swapped: () => fs.failNext(temp.dir, "sync", "EIO"),
  });
  const failed = {
    name: "DfsError",
    code: "UNAVAILABLE",
    message: new RegExp(`^Cannot rewrite log: the folder of ".*" could not be fsynced after the`),
  };
  await assert.rejects(rewrite, failed);
  assert.match(log.failure!.message, failed.message);
  await assert.rejects(log.append(encoder.encode("lost")), failed);
  await log.close();
});

Deno.test("RecordLog: a log that fails for good while a rewrite is built is not swapped, and the new file goes", async () => {
  await using temp = await tempLogPath(MEMORY_TEST_FS);
  const fs = temp.memory!;
  const { log } = await openRecordLog(temp.path, { fs });
  await appendAll(log, ["old"]);
  const gate = Promise.withResolvers<void>();
  let told = false;
  const rewrite = log.rewrite(gated(["new"], gate.promise, []), { swapped: () => (told = true) });
  await fs.remove(temp.path); // removed under the node
  const removed = { name: "DfsError", code: "UNAVAILABLE", message: /was removed under the node/ };
  await assert.rejects(log.append(encoder.encode("lost")), removed);
  gate.resolve();
  await assert.rejects(rewrite, removed);
  assert.equal(told, false);
  assert.throws(() => fs.statSync(`${temp.path}.tmp`), Deno.errors.NotFound);
  await log.close();
});
