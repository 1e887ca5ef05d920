import assert from "node:assert/strict";
import { FakeClock } from "../env/fake_clock.ts";
import { MemoryFileSystem } from "../env/memory_fs.ts";
import {
  checkFormat,
  checkRankFolders,
  DATA_FORMAT_VERSION,
  FORMAT_FILE,
  LOCK_TIMEOUT_MS,
  lockDataDir,
  openDataDir,
} from "./data_dir.ts";
import { writeFileTo } from "./_test_fs.ts";

const DATA_DIR = "/srv/dfs";
const FORMAT = `dfs data format ${DATA_FORMAT_VERSION}\n`;

/** A memory file system holding an empty data directory, made durable. */
async function newDataDir(): Promise<MemoryFileSystem> {
  const fs = new MemoryFileSystem();
  await fs.mkdir(DATA_DIR, { recursive: true });
  fs.syncAll();
  return fs;
}

/** The names in the data directory, sorted. */
async function namesIn(fs: MemoryFileSystem): Promise<string[]> {
  const names = [];
  for await (const entry of fs.readDir(DATA_DIR)) names.push(entry.name);
  return names.sort();
}

Deno.test("checkRankFolders() writes FORMAT durably into a new data directory, then accepts it", async () => {
  const fs = await newDataDir();
  await checkRankFolders(DATA_DIR, 3, { fs });
  fs.crash();
  assert.equal(await fs.readTextFile(`${DATA_DIR}/${FORMAT_FILE}`), FORMAT);
  assert.deepEqual(await namesIn(fs), [FORMAT_FILE], "no FORMAT.tmp is left");
  await fs.mkdir(`${DATA_DIR}/rank-1`);
  await fs.mkdir(`${DATA_DIR}/rank-2`);
  await checkRankFolders(DATA_DIR, 3, { fs });
});

Deno.test("checkRankFolders() refuses fewer ranks than the data directory holds", async () => {
  const fs = await newDataDir();
  await checkRankFolders(DATA_DIR, 5, { fs });
  await fs.mkdir(`${DATA_DIR}/rank-4`);
  await writeFileTo(`${DATA_DIR}/rank-4/meta.log`, new Uint8Array([1]), { fs });
  await assert.rejects(checkRankFolders(DATA_DIR, 4, { fs }), {
    name: "DfsError",
    code: "INVALID_REQUEST",
    message: `Data directory ${DATA_DIR} holds rank-4: start with --ranks 5 or more`,
  });
});

Deno.test("checkFormat() refuses another format and changes nothing", async () => {
  const fs = await newDataDir();
  await writeFileTo(
    `${DATA_DIR}/${FORMAT_FILE}`,
    new TextEncoder().encode("dfs data format 999\n"),
    {
      fs,
    },
  );
  await assert.rejects(checkFormat(DATA_DIR, { fs, holdsRanks: false }), {
    name: "DfsError",
    code: "INVALID_REQUEST",
    message: `Data directory ${DATA_DIR} was written in another on-disk format ` +
      `("dfs data format 999" in FORMAT); this dfs reads format ${DATA_FORMAT_VERSION}. Nothing ` +
      `was changed: use the dfs that wrote it, or copy the files out with it and into a new data ` +
      `directory.`,
  });
  assert.equal(await fs.readTextFile(`${DATA_DIR}/${FORMAT_FILE}`), "dfs data format 999\n");
});

Deno.test("checkFormat() upgrades format 3 (its logs in CBOR, which 4 still reads) in place", async () => {
  const fs = await newDataDir();
  await writeFileTo(`${DATA_DIR}/${FORMAT_FILE}`, new TextEncoder().encode("dfs data format 3\n"), {
    fs,
  });
  await checkFormat(DATA_DIR, { fs, holdsRanks: true });
  assert.equal(await fs.readTextFile(`${DATA_DIR}/${FORMAT_FILE}`), FORMAT);
  assert.equal(FORMAT, "dfs data format 4\n");
});

Deno.test("checkRankFolders() refuses an older layout: rank folders and no FORMAT", async () => {
  const fs = await newDataDir();
  await fs.mkdir(`${DATA_DIR}/rank-1/chunks`, { recursive: true });
  await assert.rejects(checkRankFolders(DATA_DIR, 3, { fs }), {
    name: "DfsError",
    code: "INVALID_REQUEST",
    message: new RegExp(
      `^Data directory ${DATA_DIR} was written in another on-disk format \\(no FORMAT file ` +
        `\\(an older dfs\\)\\); this dfs reads format ${DATA_FORMAT_VERSION}\\. Nothing was changed`,
    ),
  });
  assert.deepEqual(await namesIn(fs), ["rank-1"], "no FORMAT was written");
});

Deno.test("checkRankFolders() takes empty rank folders (fresh mount points) for a new store", async () => {
  const fs = await newDataDir();
  await fs.mkdir(`${DATA_DIR}/rank-1/lost+found`, { recursive: true });
  await fs.mkdir(`${DATA_DIR}/rank-2`);
  await fs.mkdir(`${DATA_DIR}/rank-5`);
  await checkRankFolders(DATA_DIR, 3, { fs });
  assert.equal(await fs.readTextFile(`${DATA_DIR}/${FORMAT_FILE}`), FORMAT);
});

Deno.test("lockDataDir() times out on a data directory another server holds", async () => {
  const fs = await newDataDir();
  const clock = new FakeClock();
  const held = await lockDataDir(DATA_DIR, { fs, clock });
  let settled = false;
  const second = lockDataDir(DATA_DIR, { fs, clock }).finally(() => settled = true);
  await clock.advance(LOCK_TIMEOUT_MS - 1);
  assert.equal(settled, false, "waits LOCK_TIMEOUT_MS");
  await clock.advance(1);
  await assert.rejects(second, {
    name: "DfsError",
    code: "UNAVAILABLE",
    message: `Data directory ${DATA_DIR} is in use by another dfs server`,
  });
  held.close();
  const third = await lockDataDir(DATA_DIR, { fs, clock });
  assert.equal(clock.pending, 0, "the timeout of a granted lock is cleared");
  third.close();
});

Deno.test("openDataDir() creates the folder durably and locks it", async () => {
  const fs = new MemoryFileSystem();
  await fs.mkdir("/srv", { recursive: true });
  fs.syncAll();
  const lock = await openDataDir("/srv/data", { fs });
  fs.crash();
  assert.ok(fs.statSync("/srv/data").isDirectory, "the new folder survives a crash");
  lock.close();
});
