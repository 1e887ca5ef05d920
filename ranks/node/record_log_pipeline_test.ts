/**
 * Tests of `RecordLog`'s overlapping group commits: up to `LOG_COMMITS_IN_FLIGHT_MAX` batches
 * written with their fdatasync in flight, on a memory file system whose fdatasyncs of the log
 * are held until the test lets each one run.
 */

import assert from "node:assert/strict";
import type { FileHandle, FileSystem } from "../env/env.ts";
import type { MemoryFileSystem } from "../env/memory_fs.ts";
import { RECORD_HEADER_SIZE_BYTES } from "./record_frame.ts";
import { LOG_COMMITS_IN_FLIGHT_MAX, openRecordLog, type RecordLog } from "./record_log.ts";
import { MEMORY_TEST_FS, tempLogPath, texts } from "./_test_fs.ts";

const encoder = new TextEncoder();

/** `fs`, whose fdatasyncs of handles on `path` wait, while `holding`, until a test releases them. */
function holdSyncs(fs: FileSystem, path: string) {
  const held = {
    fs,
    holding: false,
    /** The fdatasyncs held, in the order they were called: `release()` runs one. */
    syncs: [] as { file: FileHandle; release: () => void }[],
  };
  const holdHandle = (file: FileHandle): FileHandle =>
    new Proxy(file, {
      get(target, key) {
        if (key === "syncData" && held.holding) {
          return () =>
            new Promise<void>((resolve, reject) => {
              held.syncs.push({
                file: target,
                release: () => target.syncData().then(resolve, reject),
              });
            });
        }
        const value = Reflect.get(target, key, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  held.fs = new Proxy(fs, {
    get(target, key) {
      if (key === "open") {
        return async (at: string, options: Parameters<FileSystem["open"]>[1]) => {
          const file = await target.open(at, options);
          return at === path ? holdHandle(file) : file;
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return held;
}

/** Lets the memory file system's calls and the log's writer run (they settle in microtasks). */
async function settle(): Promise<void> {
  for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setTimeout(resolve, 0));
}

/** Appends `text`; the returned list says which appends resolved or rejected, in order. */
function tracker(log: RecordLog) {
  const outcomes: string[] = [];
  const append = (text: string) =>
    log.append(encoder.encode(text)).then(
      () => void outcomes.push(`${text} ok`),
      (error) => void outcomes.push(`${text} ${error.code}`),
    );
  return { outcomes, append };
}

async function openHeld() {
  const temp = await tempLogPath(MEMORY_TEST_FS);
  const memory = temp.memory!;
  const held = holdSyncs(memory, temp.path);
  const { log } = await openRecordLog(temp.path, { fs: held.fs });
  await log.append(encoder.encode("kept"));
  held.holding = true;
  return { temp, memory, held, log, ...tracker(log) };
}

/** Reopens the log after a crash and returns its records as text. */
async function replayAfterCrash(memory: MemoryFileSystem, path: string): Promise<string[]> {
  memory.crash();
  const { log, records } = await openRecordLog(path, { fs: memory });
  await log.close();
  return texts(records);
}

Deno.test("append() writes the next batch while one's fdatasync runs, and resolves in log order", async () => {
  const { temp, memory, held, log, outcomes, append } = await openHeld();
  const appends = [append("a")];
  await settle();
  appends.push(append("b"));
  await settle();
  assert.equal(held.syncs.length, 2, "b was written and its fdatasync started");
  appends.push(append("c"));
  await settle();
  assert.equal(held.syncs.length, LOG_COMMITS_IN_FLIGHT_MAX, "c waits for a place");
  assert.notEqual(held.syncs[0].file, held.syncs[1].file, "a handle per place");
  held.syncs[1].release();
  await settle();
  assert.deepEqual(outcomes, [], "b waits for a");
  held.syncs[0].release();
  await settle();
  assert.deepEqual(outcomes, ["a ok", "b ok"]);
  assert.equal(held.syncs[2].file, held.syncs[0].file, "c took a's place");
  held.syncs[2].release();
  await Promise.all(appends);
  assert.deepEqual(outcomes, ["a ok", "b ok", "c ok"]);
  assert.equal(memory.statSync(temp.path).size, log.zeroedBytes);
  await log.close();
  assert.deepEqual(await replayAfterCrash(memory, temp.path), ["kept", "a", "b", "c"]);
});

Deno.test("append(): a failed fdatasync rejects its batch and keeps the one before, synced through another handle", async () => {
  const { temp, memory, held, log, outcomes, append } = await openHeld();
  const appends = [append("a")];
  await settle();
  const durable = log.sizeBytes + RECORD_HEADER_SIZE_BYTES + 1;
  appends.push(append("b"));
  await settle();
  memory.failNext(temp.path, "sync", "EIO");
  held.syncs[1].release(); // b's fdatasync fails: its handle reports its own pages' error
  held.syncs[0].release();
  await Promise.all(appends);
  assert.deepEqual(outcomes, ["a ok", "b UNAVAILABLE"]);
  assert.equal(log.sizeBytes, durable);
  assert.equal(memory.statSync(temp.path).size, durable, "b and the zeros are cut off");
  held.holding = false;
  await append("after");
  await log.close();
  assert.deepEqual(await replayAfterCrash(memory, temp.path), ["kept", "a", "after"]);
});

Deno.test("append(): without a handle of its own, a failed fdatasync rejects the batch whose fdatasync it overlapped", async () => {
  const { temp, memory, held, log, outcomes, append } = await openHeld();
  const durable = log.sizeBytes;
  memory.failNext(temp.path, "open", "EIO"); // a is synced through the log's handle, as b is
  const appends = [append("a")];
  await settle();
  appends.push(append("b"));
  await settle();
  assert.equal(held.syncs[1].file, held.syncs[0].file);
  memory.failNext(temp.path, "sync", "EIO");
  held.syncs[1].release(); // b's fdatasync fails: it may have taken the error of a's pages
  held.syncs[0].release();
  await Promise.all(appends);
  assert.deepEqual(outcomes, ["a UNAVAILABLE", "b UNAVAILABLE"]);
  assert.equal(log.sizeBytes, durable);
  assert.equal(log.zeroedBytes, durable, "the zeros are cut with them");
  assert.equal(memory.statSync(temp.path).size, durable);
  held.holding = false;
  await append("after");
  await log.close();
  assert.deepEqual(await replayAfterCrash(memory, temp.path), ["kept", "after"]);
});

Deno.test("append(): a failed fdatasync rejects every later batch in flight and keeps the ones before", async () => {
  const { temp, memory, held, log, outcomes, append } = await openHeld();
  const appends = [append("a")];
  await settle();
  held.syncs[0].release();
  await settle();
  assert.deepEqual(outcomes, ["a ok"], "no batch started while a's fdatasync ran");
  const durable = log.sizeBytes;
  appends.push(append("b"));
  await settle();
  appends.push(append("c"));
  await settle();
  held.syncs[2].release(); // c's own fdatasync succeeds, but b's fails
  memory.failNext(temp.path, "sync", "EIO");
  held.syncs[1].release();
  await Promise.all(appends);
  assert.deepEqual(outcomes, ["a ok", "b UNAVAILABLE", "c UNAVAILABLE"]);
  assert.equal(log.sizeBytes, durable);
  assert.equal(memory.statSync(temp.path).size, durable);
  held.holding = false;
  await append("after");
  await log.close();
  assert.deepEqual(await replayAfterCrash(memory, temp.path), ["kept", "a", "after"]);
});

Deno.test("append(): a batch that cannot be written is rejected with every later one, not the one before", async () => {
  const { temp, memory, held, log, outcomes, append } = await openHeld();
  const appends = [append("a")];
  await settle();
  memory.failNext(temp.path, "write", "EIO");
  appends.push(append("b"));
  await settle();
  appends.push(append("c"));
  await settle();
  assert.equal(held.syncs.length, 1, "no batch starts after a failed write");
  held.syncs[0].release();
  await settle();
  assert.deepEqual(outcomes, ["a ok", "b UNAVAILABLE"]);
  assert.equal(held.syncs.length, 2, "c was written once b was cut off");
  held.holding = false; // c grows the file: then zeros are written ahead of it again
  held.syncs[1].release();
  await Promise.all(appends);
  assert.deepEqual(outcomes, ["a ok", "b UNAVAILABLE", "c ok"], "c waited for the cut back");
  await log.close();
  assert.deepEqual(await replayAfterCrash(memory, temp.path), ["kept", "a", "c"]);
});

Deno.test("rewrite() and close() wait for the batches in flight", async () => {
  const { temp, memory, held, log, outcomes, append } = await openHeld();
  const appends = [append("a")];
  await settle();
  appends.push(append("b"));
  await settle();
  const rewrite = log.rewrite([encoder.encode("x")]).then(() => void outcomes.push("rewrite"));
  const after = append("y");
  const closed = log.close().then(() => void outcomes.push("closed"));
  await settle();
  assert.throws(() => memory.statSync(`${temp.path}.tmp`), Deno.errors.NotFound);
  held.holding = false;
  for (const sync of held.syncs) sync.release();
  await Promise.all([...appends, rewrite, after, closed]);
  assert.deepEqual(outcomes, ["a ok", "b ok", "rewrite", "y ok", "closed"]);
  assert.deepEqual(await replayAfterCrash(memory, temp.path), ["x", "y"]);
});
