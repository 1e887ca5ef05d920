import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { MemoryFileSystem } from "../env/memory_fs.ts";
import { LogReader, SYNC_READ_BYTES_MAX } from "./_log_reader.ts";

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
