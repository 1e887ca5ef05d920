import assert from "node:assert/strict";
import { CommitPipeline, LOG_COMMITS_IN_FLIGHT_MAX } from "./_commit_pipeline.ts";

const EIO = new Error("EIO");

Deno.test("CommitPipeline settles batches in log order, once their fdatasyncs are done", () => {
  const pipeline = new CommitPipeline<string>(3);
  const a = pipeline.start("a");
  pipeline.synced(a);
  assert.deepEqual(pipeline.next(), { batch: "a", error: undefined }, "nothing ran alongside");
  const b = pipeline.start("b");
  const c = pipeline.start("c");
  pipeline.synced(c);
  assert.equal(pipeline.next(), undefined, "b is not done");
  pipeline.synced(b);
  assert.deepEqual(pipeline.next(), { batch: "b", error: undefined });
  assert.deepEqual(pipeline.next(), { batch: "c", error: undefined });
  assert.equal(pipeline.next(), undefined);
  assert.equal(pipeline.size, 0);
});

Deno.test("CommitPipeline holds at most its limit of batches, LOG_COMMITS_IN_FLIGHT_MAX by default", () => {
  const pipeline = new CommitPipeline<number>();
  for (let i = 0; i < LOG_COMMITS_IN_FLIGHT_MAX; i++) {
    assert.ok(pipeline.open);
    pipeline.start(i);
  }
  assert.equal(pipeline.open, false);
  assert.throws(() => pipeline.start(LOG_COMMITS_IN_FLIGHT_MAX), /the pipeline is open/);
  assert.throws(() => new CommitPipeline(0), /at least one batch/);
});

Deno.test("CommitPipeline gives batches in flight places of their own, under its limit", () => {
  const pipeline = new CommitPipeline<string>(2);
  const a = pipeline.start("a");
  const b = pipeline.start("b");
  assert.deepEqual([a.place, b.place], [0, 1]);
  pipeline.synced(a);
  pipeline.next();
  assert.equal(pipeline.start("c").place, 0, "a's place is free");
});

Deno.test("CommitPipeline settles a batch without waiting for one synced through another handle", () => {
  const pipeline = new CommitPipeline<string>(2);
  const a = pipeline.start("a");
  const b = pipeline.start("b");
  pipeline.synced(a);
  assert.deepEqual(pipeline.next(), { batch: "a", error: undefined });
  pipeline.synced(b, EIO);
  assert.deepEqual(pipeline.next(), { batch: "b", error: EIO });
});

Deno.test("CommitPipeline waits for the fdatasyncs through a shared handle started while a batch's ran, and takes their error", () => {
  const pipeline = new CommitPipeline<string>(2);
  const a = pipeline.start("a");
  const b = pipeline.start("b");
  b.shared = true; // through a's handle
  pipeline.synced(a);
  assert.equal(pipeline.next(), undefined, "b's fdatasync may have taken a's error");
  pipeline.synced(b, EIO);
  assert.deepEqual(pipeline.next(), { batch: "a", error: EIO });
  assert.deepEqual(pipeline.next(), { batch: "b", error: EIO });
});

Deno.test("CommitPipeline does not wait for a batch started after a batch's fdatasync was done", () => {
  const pipeline = new CommitPipeline<string>(2);
  const a = pipeline.start("a");
  pipeline.synced(a);
  const b = pipeline.start("b");
  assert.deepEqual(pipeline.next(), { batch: "a", error: undefined });
  pipeline.synced(b, EIO);
  assert.deepEqual(pipeline.next(), { batch: "b", error: EIO });
});

Deno.test("CommitPipeline: a batch that could not be written fails no batch before it", () => {
  const pipeline = new CommitPipeline<string>(2);
  const a = pipeline.start("a");
  const b = pipeline.start("b");
  b.shared = true;
  pipeline.unwritten(b, EIO);
  pipeline.synced(a);
  assert.deepEqual(pipeline.next(), { batch: "a", error: undefined });
  assert.deepEqual(pipeline.next(), { batch: "b", error: EIO });
});

Deno.test("CommitPipeline closes after a failure until resume() once empty", () => {
  const pipeline = new CommitPipeline<string>(3);
  const a = pipeline.start("a");
  const b = pipeline.start("b");
  pipeline.synced(a, EIO);
  assert.equal(pipeline.open, false, "no batch starts before the file is cut back");
  pipeline.synced(b);
  assert.deepEqual(pipeline.next(), { batch: "a", error: EIO });
  assert.throws(() => pipeline.resume(), /resumes empty/);
  assert.deepEqual(pipeline.next(), { batch: "b", error: undefined }, "b's own outcome");
  pipeline.resume();
  assert.ok(pipeline.open);
  assert.throws(() => pipeline.synced(a), /done once/);
});
