import assert from "node:assert/strict";
import { denoFileSystem } from "./deno_env.ts";
import type { FileSystem } from "./env.ts";
import { MEMORY_FS_BLOCK_SIZE_BYTES, MemoryFileSystem } from "./memory_fs.ts";

const encoder = new TextEncoder();
const bytes = (text: string) => encoder.encode(text);

/** Writes a whole file through `fs` (the interface has no writeFile). */
async function writeFile(fs: FileSystem, path: string, data: Uint8Array): Promise<void> {
  using file = await fs.open(path, { write: true, create: true, truncate: true });
  assert.equal(await file.write(data), data.length);
}

/** Names of the entries of a folder, sorted. */
async function namesIn(fs: FileSystem, path: string): Promise<string[]> {
  const names = [];
  for await (const entry of fs.readDir(path)) names.push(entry.name);
  return names.sort();
}

/** What a call gives: its value, or its error's class, code and message (`ROOT` for the root). */
async function outcomeOf(call: () => unknown, root: string): Promise<unknown> {
  try {
    return { value: await call() };
  } catch (error) {
    const { name, message, code } = error as Error & { code?: string };
    // Deno names the path in the message only with full read permission: compare without it.
    const withoutPath = message.replaceAll(root, "ROOT").replace(
      /: \w+ 'ROOT[^']*'( -> 'ROOT[^']*')?$/,
      "",
    );
    return { name, code, message: withoutPath };
  }
}

Deno.test("MemoryFileSystem raises the errors Deno raises, with their classes, codes and messages", async () => {
  const scenarios: [string, (fs: FileSystem, root: string) => unknown][] = [
    ["open missing", (fs, root) => fs.open(`${root}/missing`, { read: true })],
    ["open under missing", (fs, root) => fs.open(`${root}/no/file`, { read: true })],
    ["open under a file", (fs, root) => fs.open(`${root}/file/x`, { read: true })],
    ["open a folder to write", (fs, root) => fs.open(`${root}/dir`, { write: true })],
    ["createNew existing", (fs, root) => fs.open(`${root}/file`, { write: true, createNew: true })],
    ["create without write", (fs, root) => fs.open(`${root}/new`, { read: true, create: true })],
    [
      "truncate without write",
      (fs, root) => fs.open(`${root}/file`, { read: true, truncate: true }),
    ],
    ["no option", (fs, root) => fs.open(`${root}/file`, {})],
    ["readFile a folder", (fs, root) => fs.readFile(`${root}/dir`)],
    ["readFile missing", (fs, root) => fs.readFile(`${root}/missing`)],
    ["stat missing", (fs, root) => fs.statSync(`${root}/missing`)],
    ["mkdir existing", (fs, root) => fs.mkdir(`${root}/dir`)],
    ["mkdir under missing", (fs, root) => fs.mkdir(`${root}/no/dir`)],
    ["mkdir -p over a file", (fs, root) => fs.mkdir(`${root}/file`, { recursive: true })],
    ["mkdir -p under a file", (fs, root) => fs.mkdir(`${root}/file/x`, { recursive: true })],
    ["mkdir -p existing", (fs, root) => fs.mkdir(`${root}/dir`, { recursive: true })],
    ["remove missing", (fs, root) => fs.remove(`${root}/missing`)],
    ["remove a full folder", (fs, root) => fs.remove(`${root}/dir`)],
    ["rename missing", (fs, root) => fs.rename(`${root}/missing`, `${root}/x`)],
    ["rename into missing", (fs, root) => fs.rename(`${root}/file`, `${root}/no/x`)],
    ["rename a folder over a file", (fs, root) => fs.rename(`${root}/dir`, `${root}/file`)],
    ["rename a file over a folder", (fs, root) => fs.rename(`${root}/file`, `${root}/empty`)],
    ["rename a folder over a full one", (fs, root) => fs.rename(`${root}/empty`, `${root}/dir`)],
    ["readDir a file", async (fs, root) => await namesIn(fs, `${root}/file`)],
    ["truncate a read-only file", async (fs, root) => {
      using file = await fs.open(`${root}/file`, { read: true });
      return await file.truncate(1);
    }],
    ["close twice", async (fs, root) => {
      const file = await fs.open(`${root}/file`, { read: true });
      file.close();
      file.close();
    }],
    ["read a write-only file", async (fs, root) => {
      using file = await fs.open(`${root}/file`, { write: true });
      return await file.read(new Uint8Array(1));
    }],
    ["write a read-only file", async (fs, root) => {
      using file = await fs.open(`${root}/file`, { read: true });
      return await file.write(new Uint8Array(1));
    }],
    ["read a folder handle", async (fs, root) => {
      using dir = await fs.open(`${root}/dir`, { read: true });
      return await dir.read(new Uint8Array(1));
    }],
    ["read a closed file", async (fs, root) => {
      const file = await fs.open(`${root}/file`, { read: true });
      file.close();
      return await file.read(new Uint8Array(1));
    }],
    ["seek before the start", async (fs, root) => {
      using file = await fs.open(`${root}/file`, { read: true });
      return await file.seek(-1, Deno.SeekMode.Start);
    }],
    ["read, seek and read", async (fs, root) => {
      using file = await fs.open(`${root}/file`, { read: true });
      const into = new Uint8Array(3);
      const first = [await file.read(into), [...into]];
      const end = await file.seek(-2, Deno.SeekMode.End);
      return [first, end, await file.read(into), await file.read(into), await file.read(into)];
    }],
  ];
  const disk = await Deno.makeTempDir();
  const memory = new MemoryFileSystem();
  for (const [fs, root] of [[denoFileSystem, disk], [memory, "/root"]] as const) {
    await fs.mkdir(`${root}/dir/sub`, { recursive: true });
    await fs.mkdir(`${root}/empty`);
    await writeFile(fs, `${root}/file`, bytes("hello"));
  }
  for (const [what, call] of scenarios) {
    const expected = await outcomeOf(() => call(denoFileSystem, disk), disk);
    assert.deepEqual(await outcomeOf(() => call(memory, "/root"), "/root"), expected, what);
  }
  await Deno.remove(disk, { recursive: true });
});

Deno.test("MemoryFileSystem files: positions, append, truncate, sparse holes read as zeros", async () => {
  const fs = new MemoryFileSystem();
  {
    using file = await fs.open("/f", { read: true, write: true, create: true });
    assert.equal(await file.write(bytes("abcdef")), 6);
    assert.equal(await file.seek(2, Deno.SeekMode.Start), 2);
    assert.equal(await file.write(bytes("XY")), 2);
    assert.equal(file.seekSync(0, Deno.SeekMode.Current), 4);
    const into = new Uint8Array(10);
    assert.equal(file.readSync(into), 2);
    assert.deepEqual(into.subarray(0, 2), bytes("ef"));
    assert.equal(file.readSync(into), null, "end of file");
    assert.equal(file.readSync(new Uint8Array(0)), 0);
    await file.truncate(3);
    assert.equal(fs.statSync("/f").size, 3);
    await file.truncate(5);
    await file.seek(10_000, Deno.SeekMode.Start);
    await file.write(bytes("z"));
  }
  const whole = await fs.readFile("/f");
  assert.equal(whole.length, 10_001);
  assert.deepEqual(whole.subarray(0, 5), Uint8Array.of(97, 98, 88, 0, 0), "cut, then a hole");
  assert.ok(whole.subarray(3, 10_000).every((byte) => byte === 0));
  assert.equal(whole[10_000], 122);
  {
    using file = await fs.open("/f", { append: true });
    await file.seek(0, Deno.SeekMode.Start);
    await file.write(bytes("!"));
  }
  assert.equal(await fs.readTextFile("/f").then((text) => text.at(-2)), "z", "appended at the end");
  {
    using _ = await fs.open("/f", { write: true, truncate: true });
  }
  assert.equal(fs.statSync("/f").size, 0);
  assert.deepEqual(fs.statSync("/"), { size: 0, isFile: false, isDirectory: true, dev: 1 });
});

Deno.test("MemoryFileSystem folders: mkdir, readDir, remove and rename that replaces", async () => {
  const fs = new MemoryFileSystem();
  await fs.mkdir("/a/b/c", { recursive: true });
  await writeFile(fs, "/a/one", bytes("1"));
  await writeFile(fs, "/a/two", bytes("2"));
  const entries = [];
  for await (const entry of fs.readDir("/a")) entries.push(entry);
  assert.deepEqual(entries, [
    { name: "b", isFile: false, isDirectory: true, isSymlink: false },
    { name: "one", isFile: true, isDirectory: false, isSymlink: false },
    { name: "two", isFile: true, isDirectory: false, isSymlink: false },
  ]);
  // An open handle follows its file through a rename that replaces another.
  using reader = await fs.open("/a/one", { read: true });
  await fs.rename("/a/one", "/a/two");
  assert.deepEqual(await namesIn(fs, "/a"), ["b", "two"]);
  assert.equal(await fs.readTextFile("/a/two"), "1");
  const into = new Uint8Array(1);
  assert.equal(await reader.read(into), 1);
  assert.deepEqual(into, bytes("1"));
  await fs.rename("/a/b", "/x");
  assert.deepEqual(await namesIn(fs, "/x"), ["c"]);
  await assert.rejects(fs.rename("/x", "/x/c/y"), { name: "TypeError", code: "EINVAL" });
  await fs.remove("/x", { recursive: true });
  await fs.remove("/a/two");
  assert.deepEqual(await namesIn(fs, "/"), ["a"]);
});

Deno.test("MemoryFileSystem crash() keeps only what was synced: file bytes and folder entries", async () => {
  const fs = new MemoryFileSystem();
  await fs.mkdir("/d");
  const syncDir = async (path: string) => {
    using dir = await fs.open(path, { read: true });
    await dir.sync();
  };
  await syncDir("/");
  const file = await fs.open("/d/log", { write: true, create: true });
  await file.write(bytes("durable"));
  await file.syncData();
  await file.write(bytes(" lost"));
  await writeFile(fs, "/d/unsynced-entry", bytes("x"));
  fs.crash();
  await assert.rejects(fs.readFile("/d/log"), Deno.errors.NotFound, "its entry was never synced");
  await assert.rejects(file.write(bytes("dead")), Deno.errors.BadResource);
  file.close(); // a handle the crash closed closes quietly

  const log = await fs.open("/d/log", { write: true, create: true });
  await log.write(bytes("durable"));
  await log.syncData();
  await syncDir("/d");
  await log.write(bytes(" lost"));
  await writeFile(fs, "/d/unsynced-entry", bytes("x"));
  await fs.rename("/d/log", "/d/renamed");
  fs.crash();
  assert.deepEqual(await namesIn(fs, "/d"), ["log"]);
  assert.equal(await fs.readTextFile("/d/log"), "durable");

  await fs.rename("/d/log", "/d/renamed");
  await fs.mkdir("/d/sub");
  await syncDir("/d");
  await fs.remove("/d/renamed");
  fs.crash();
  assert.deepEqual(await namesIn(fs, "/d"), ["renamed", "sub"], "the remove was not synced");
  assert.equal(await fs.readTextFile("/d/renamed"), "durable");

  await writeFile(fs, "/d/sub/new", bytes("created, synced, entry synced"));
  {
    using created = await fs.open("/d/sub/new", { write: true });
    await created.sync();
  }
  await syncDir("/d/sub");
  fs.crash();
  assert.equal(await fs.readTextFile("/d/sub/new"), "created, synced, entry synced");
  fs.syncAll();
  await fs.remove("/d", { recursive: true });
  fs.crash();
  assert.deepEqual(await namesIn(fs, "/d"), ["renamed", "sub"], "syncAll() made all durable");
});

Deno.test("MemoryFileSystem statfs() counts written blocks against capacity; a full disk fails with ENOSPC", async () => {
  const BLOCK = MEMORY_FS_BLOCK_SIZE_BYTES;
  const fs = new MemoryFileSystem({ capacityBytes: 4 * BLOCK, device: 7 });
  assert.deepEqual(await fs.statfs("/"), {
    totalBytes: 4 * BLOCK,
    availableBytes: 4 * BLOCK,
    device: 7,
  });
  const file = await fs.open("/big", { write: true, create: true });
  await file.write(new Uint8Array(10)); // one block
  await file.seek(100 * BLOCK, Deno.SeekMode.Start); // a hole takes no room
  assert.equal(await file.write(new Uint8Array(5 * BLOCK).fill(1)), 3 * BLOCK, "what fits");
  await assert.rejects(file.write(new Uint8Array(1)), {
    name: "Error",
    code: "ENOSPC",
    message: "No space left on device (os error 28)",
  });
  assert.equal((await fs.statfs("/")).availableBytes, 0);
  await file.truncate(BLOCK + 1); // keeps block 0; block 1 is a hole
  assert.equal((await fs.statfs("/")).availableBytes, 3 * BLOCK);
  await fs.remove("/big");
  assert.equal(fs.usedBytes, BLOCK, "an open file keeps its blocks after its removal");
  file.close();
  assert.equal(fs.usedBytes, 0);
  await assert.rejects(fs.statfs("/missing"), Deno.errors.NotFound);
});

Deno.test("MemoryFileSystem failNext() fails the next matching call under a path, once", async () => {
  const fs = new MemoryFileSystem();
  await fs.mkdir("/data/a", { recursive: true });
  await fs.mkdir("/data/ab");
  fs.failNext("/data/a", "write", "EIO");
  fs.failNext("/data/a", "sync", "ENOSPC");
  fs.failNext("/data", "rename", new Error("injected"));
  using other = await fs.open("/data/ab/f", { write: true, create: true });
  assert.equal(await other.write(bytes("x")), 1, "/data/ab is not under /data/a");
  using file = await fs.open("/data/a/f", { write: true, create: true });
  await assert.rejects(file.write(bytes("x")), {
    name: "Error",
    code: "EIO",
    message: "Input/output error (os error 5)",
  });
  assert.equal(fs.statSync("/data/a/f").size, 0, "the failed write changed nothing");
  assert.equal(await file.write(bytes("x")), 1, "only once");
  await assert.rejects(file.syncData(), { code: "ENOSPC" });
  await file.syncData();
  await assert.rejects(fs.rename("/data/a/f", "/data/a/g"), { message: "injected" });
  await fs.rename("/data/a/f", "/data/a/g");
});

Deno.test("MemoryFileSystem lock(): a second exclusive lock waits until the first handle closes", async () => {
  const fs = new MemoryFileSystem();
  const first = await fs.open("/LOCK", { write: true, create: true });
  await first.lock(true);
  using second = await fs.open("/LOCK", { write: true });
  let granted = false;
  const waiting = second.lock(true).then(() => granted = true);
  for (let turn = 0; turn < 10; turn++) await null;
  assert.equal(granted, false);
  first.close();
  await waiting;
  assert.equal(granted, true);
  // Shared locks coexist; an exclusive one waits for them; a crash drops every lock.
  second.close();
  const readers = await Promise.all([1, 2].map(() => fs.open("/LOCK", { read: true })));
  await Promise.all(readers.map((reader) => reader.lock(false)));
  const writer = await fs.open("/LOCK", { write: true });
  const excluded = writer.lock(true);
  fs.crash();
  await assert.rejects(excluded, Deno.errors.BadResource);
  using again = await fs.open("/LOCK", { write: true, create: true });
  await again.lock(true);
});

Deno.test("MemoryFileSystem settles every call in microtasks, never waiting for the event loop", async () => {
  const fs = new MemoryFileSystem();
  let timerRan = false;
  const timer = setTimeout(() => timerRan = true, 0);
  await fs.mkdir("/a/b", { recursive: true });
  await writeFile(fs, "/a/b/f", new Uint8Array(100_000));
  using file = await fs.open("/a/b/f", { read: true, write: true });
  await file.read(new Uint8Array(10));
  await file.syncData();
  await fs.rename("/a/b/f", "/a/g");
  await namesIn(fs, "/a");
  await fs.statfs("/a");
  await fs.remove("/a", { recursive: true });
  assert.equal(timerRan, false);
  clearTimeout(timer);
});

Deno.test("MemoryFileSystem writeSync() writes at the position, as write() does, and fails as it does", async () => {
  const refusals: unknown[] = [];
  for (const fs of [new MemoryFileSystem(), denoFileSystem]) {
    const dir = fs === denoFileSystem ? await Deno.makeTempDir() : "/data";
    if (fs !== denoFileSystem) await fs.mkdir(dir);
    try {
      using file = await fs.open(`${dir}/f`, { write: true, read: true, create: true });
      assert.equal(file.writeSync(bytes("abcd")), 4);
      file.seekSync(1, Deno.SeekMode.Start);
      assert.equal(file.writeSync(bytes("XY")), 2);
      assert.equal(await fs.readTextFile(`${dir}/f`), "aXYd");
      using reader = await fs.open(`${dir}/f`, { read: true });
      refusals.push(await outcomeOf(() => reader.writeSync(bytes("x")), dir));
    } finally {
      if (fs === denoFileSystem) await Deno.remove(dir, { recursive: true });
    }
  }
  assert.equal((refusals[1] as { code?: string }).code, "EBADF", "a handle opened to read only");
  assert.deepEqual(refusals[0], refusals[1]);
  const memory = new MemoryFileSystem();
  await memory.mkdir("/data");
  memory.failNext("/data", "write", "EIO");
  using file = await memory.open("/data/f", { write: true, create: true });
  assert.throws(() => file.writeSync(bytes("x")), { name: "Error", code: "EIO" });
  assert.equal(file.writeSync(bytes("x")), 1, "only once");
});
