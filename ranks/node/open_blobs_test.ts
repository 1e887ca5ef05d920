import assert from "node:assert/strict";
import type { DirectFile } from "../env/env.ts";
import { sleep } from "../../tests/_wait.ts";
import { BlobReaders, BlobWriters } from "./open_blobs.ts";

/** Files opened by name, each knowing whether it is closed, and I/O on a closed one counted. */
class Files {
  opened: string[] = [];
  open = new Map<string, number>();
  misuse = 0;
  /** Names removed behind the readers' back. */
  unlinked = new Set<string>();
  /** What the next opens give: a file (default), null (direct I/O refused) or an error. */
  next: "file" | "null" | "error" = "file";
  /** Resolves an open in progress when set (opens wait for it). */
  gate: Promise<void> | undefined;

  async openFile(name: string): Promise<DirectFile | null> {
    this.opened.push(name);
    await this.gate;
    if (this.next === "null") return null;
    if (this.next === "error") throw new Deno.errors.NotFound(name);
    this.open.set(name, (this.open.get(name) ?? 0) + 1);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      this.open.set(name, this.open.get(name)! - 1);
    };
    const io = () => {
      if (closed) this.misuse++;
      return Promise.resolve(0);
    };
    const linked = () => !this.unlinked.has(name);
    return {
      readAt: io,
      writeAt: async () => void await io(),
      linked,
      close,
      [Symbol.dispose]: close,
    };
  }

  openNow(): number {
    return [...this.open.values()].reduce((a, b) => a + b, 0);
  }
}

/** A read of `blob` that reads nothing. */
function read(readers: BlobReaders, blob: string): Promise<number | undefined> {
  return readers.use(blob, (file) => file.readAt(new Uint8Array(0), 0));
}

/** A read that holds its file (opened by the time this resolves) until `release` is called. */
async function held(readers: BlobReaders, blob: string) {
  const { promise, resolve } = Promise.withResolvers<void>();
  const done = readers.use(blob, async (file) => {
    await promise;
    await file.readAt(new Uint8Array(0), 0);
    return blob;
  });
  await sleep(0);
  return { done, release: () => resolve() };
}

Deno.test("BlobReaders: reads of a blob share one file, kept up to the limit, least recently used closed first", async () => {
  const files = new Files();
  const readers = new BlobReaders((blob) => files.openFile(blob), 2);
  await Promise.all([read(readers, "a"), read(readers, "a"), read(readers, "a")]);
  assert.deepEqual(files.opened, ["a"], "reads at once wait for the one open");
  await read(readers, "b");
  await read(readers, "a"); // a is now the most recently used
  await read(readers, "c");
  assert.deepEqual(files.opened, ["a", "b", "c"]);
  assert.equal(files.open.get("b"), 0, "the least recently used closes");
  assert.equal(files.openNow(), 2);
  assert.equal(readers.size, 2);
  await read(readers, "a");
  assert.deepEqual(files.opened, ["a", "b", "c"], "a was kept");
  readers.dropAll();
  assert.equal(files.openNow(), 0);
  assert.equal(files.misuse, 0);
});

Deno.test("BlobReaders: a file dropped or pushed out while a read uses it closes once the read is done", async () => {
  const files = new Files();
  const readers = new BlobReaders((blob) => files.openFile(blob), 1);
  const a = await held(readers, "a");
  readers.drop("a");
  assert.equal(files.open.get("a"), 1, "still in use");
  a.release();
  assert.equal(await a.done, "a");
  assert.equal(files.open.get("a"), 0);

  const b = await held(readers, "b");
  await readers.use("c", () => Promise.resolve()); // pushes b out
  assert.equal(files.open.get("b"), 1, "still in use");
  b.release();
  await b.done;
  assert.equal(files.open.get("b"), 0);
  assert.equal(files.misuse, 0);
});

Deno.test("BlobReaders: a file opened across a drop serves its read and is not kept; a refusal or an error keeps nothing", async () => {
  const files = new Files();
  const readers = new BlobReaders((blob) => files.openFile(blob));
  const gate = Promise.withResolvers<void>();
  files.gate = gate.promise;
  const reading = readers.use("a", () => Promise.resolve("read"));
  await sleep(0);
  readers.drop("a"); // deleted while it opened: the file may be of the blob before
  gate.resolve();
  files.gate = undefined;
  assert.equal(await reading, "read");
  assert.equal(readers.size, 0);
  assert.equal(files.openNow(), 0);

  files.next = "null";
  assert.equal(await readers.use("b", () => Promise.resolve("read")), undefined);
  files.next = "error";
  await assert.rejects(readers.use("c", () => Promise.resolve()), Deno.errors.NotFound);
  assert.equal(readers.size, 0);
  files.next = "file";
  await readers.use("c", () => Promise.resolve());
  assert.equal(readers.size, 1);
});

Deno.test("BlobReaders: a blob removed behind their back is opened again, and its old file closes after the read using it", async () => {
  const files = new Files();
  const readers = new BlobReaders((blob) => files.openFile(blob));
  await read(readers, "a");
  const a = await held(readers, "a");
  files.unlinked.add("a"); // removed, then a new "a" made
  await read(readers, "a");
  assert.deepEqual(files.opened, ["a", "a"]);
  assert.equal(files.open.get("a"), 2, "the old file is still in use");
  a.release();
  await a.done;
  assert.equal(files.open.get("a"), 1);
  assert.equal(files.misuse, 0);
});

Deno.test("BlobWriters: a blob opened once, the oldest closed past the limit, take and takeAll hand files over unclosed", async () => {
  const files = new Files();
  const writers = new BlobWriters((blob) => files.openFile(blob), 2);
  const a = await writers.get("a");
  assert.equal(await writers.get("a"), a);
  await writers.get("b");
  await writers.get("c");
  assert.deepEqual(files.opened, ["a", "b", "c"]);
  assert.equal(files.open.get("a"), 0, "the oldest closes");
  assert.equal(writers.size, 2);
  const b = writers.take("b");
  assert.equal(files.open.get("b"), 1, "handed over, not closed");
  assert.equal(writers.take("b"), undefined);
  b!.close();
  assert.equal(writers.takeAll().length, 1);
  assert.equal(writers.size, 0);
  files.next = "null";
  assert.equal(await writers.get("d"), null);
  assert.equal(writers.size, 0);
});

Deno.test("BlobReaders: a drop just after an open resolves never closes the file under its read", async () => {
  // The read is counted in the same step its file is kept: a drop queued any number of turns
  // after the open resolves finds it in use.
  for (let turns = 0; turns < 8; turns++) {
    const files = new Files();
    const gate = Promise.withResolvers<void>();
    files.gate = gate.promise;
    const readers = new BlobReaders((blob) => files.openFile(blob));
    const reads = [0, 1].map(() => read(readers, "b"));
    await sleep(0);
    gate.resolve();
    let later = Promise.resolve();
    for (let i = 0; i < turns; i++) later = later.then(() => {});
    const dropped = later.then(() => readers.drop("b"));
    await Promise.all([...reads, dropped]);
    assert.equal(files.misuse, 0, `a drop ${turns} turns after the open`);
    readers.dropAll(); // a read that opened the blob again after the drop may keep it
    assert.equal(files.openNow(), 0);
  }
});
