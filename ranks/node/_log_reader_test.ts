import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { MemoryFileSystem } from "../env/memory_fs.ts";
import {
  LogReader,
  RECORD_READ_AHEAD_BYTES,
  RecordReader,
  SYNC_READ_BYTES_MAX,
} from "./_log_reader.ts";
import { frameRecord, RECORD_HEADER_SIZE_BYTES } from "./record_frame.ts";
import { concatBytes } from "../../protocol/bytes.ts";

async function writeFile(fs: MemoryFileSystem, path: string, bytes: Uint8Array): Promise<void> {
  using file = await fs.open(path, { write: true, create: true, truncate: true });
  for (let at = 0; at < bytes.length;) at += await file.write(bytes.subarray(at));
}

Deno.test("LogReader reads by offset, small reads and large, and sees a file replaced at its path", async () => {
  const fs = new MemoryFileSystem();
  await fs.mkdir("/d", { recursive: true });
  const bytes = Uint8Array.from({ length: 2 * SYNC_READ_BYTES_MAX }, (_, i) => i % 251);
  await writeFile(fs, "/d/log", bytes);
  const reader = new LogReader("/d/log", fs);
  assert.deepEqual(await reader.read(10, 5), bytes.subarray(10, 15));
  assert.deepEqual(
    await reader.read(1, SYNC_READ_BYTES_MAX + 1),
    bytes.subarray(1, SYNC_READ_BYTES_MAX + 2),
  );
  await writeFile(fs, "/d/log.new", Uint8Array.of(7, 8, 9));
  await fs.rename("/d/log.new", "/d/log");
  reader.close(); // the kept handle reads the old file
  assert.deepEqual(await reader.read(1, 2), Uint8Array.of(8, 9));
  await assert.rejects(
    reader.read(2, 5),
    (error: unknown) =>
      error instanceof DfsError && error.code === "CORRUPTED" &&
      error.message === 'Log "/d/log" ends before byte 7',
  );
});

Deno.test("RecordReader reads whole records by their body's offset, in and past its window, keeps the file it pinned, and finds damage", async () => {
  const fs = new MemoryFileSystem();
  await fs.mkdir("/d", { recursive: true });
  // Records of 1 to 100 KB: several per window, and some longer than one.
  const bodies = Array.from(
    { length: 40 },
    (_, i) => Uint8Array.from({ length: 1 + (i * 2741) % 100_000 }, (_, j) => (i + j) % 256),
  );
  const frames = bodies.map(frameRecord);
  const offsets: number[] = [];
  let at = 0;
  for (const frame of frames) {
    offsets.push(at + RECORD_HEADER_SIZE_BYTES);
    at += frame.length;
  }
  const log = concatBytes(frames);
  assert.ok(log.length > 4 * RECORD_READ_AHEAD_BYTES);
  await writeFile(fs, "/d/log", log);
  const reader = new RecordReader("/d/log", fs);
  for (const i of [0, 1, 2, 39, 5, 3, 20, 21, 22]) {
    assert.deepEqual(reader.readSync(offsets[i]), bodies[i], `record ${i}`);
  }
  reader.pin();
  await writeFile(fs, "/d/log.new", frameRecord(Uint8Array.of(1)));
  await fs.rename("/d/log.new", "/d/log");
  assert.deepEqual(reader.readSync(offsets[30]), bodies[30], "the pinned file is read");
  reader.close();
  assert.deepEqual(reader.readSync(RECORD_HEADER_SIZE_BYTES), Uint8Array.of(1), "then the new one");
  const damaged = (error: unknown) => error instanceof DfsError && error.code === "CORRUPTED";
  assert.throws(() => reader.readSync(RECORD_HEADER_SIZE_BYTES + 1), damaged, "not a record");
  assert.throws(() => reader.readSync(offsets[30]), damaged, "past the end");
  // Bytes that change under the window are seen once it is forgotten.
  const flipped = log.slice();
  flipped[offsets[3] + 2] ^= 1;
  await writeFile(fs, "/d/log", flipped);
  reader.close();
  assert.deepEqual(reader.readSync(offsets[2]), bodies[2]);
  await writeFile(fs, "/d/log", log);
  assert.throws(() => reader.readSync(offsets[3]), damaged, "the window holds the flipped byte");
  reader.forget();
  assert.deepEqual(reader.readSync(offsets[3]), bodies[3]);
});
