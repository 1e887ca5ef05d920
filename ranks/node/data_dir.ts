/**
 * The data directory that holds every rank's folder: its lock, so that two servers never share
 * it, and its on-disk format, checked (or recorded, in a new directory) before any rank reads or
 * writes its folder. Through the `FileSystem` and `Clock` it is given (Deno's by default).
 *
 * @module
 */

import { dirname, join, resolve } from "node:path";
import { DfsError } from "../../protocol/errors.ts";
import { denoFileSystem } from "../env/deno_env.ts";
import { systemClock } from "../env/system.ts";
import type { Clock, FileHandle, FileSystem, TimerHandle } from "../env/env.ts";
import { syncDirectory, writeAll } from "./_fs.ts";

/** How long to wait for the data directory's lock before saying another server holds it. */
export const LOCK_TIMEOUT_MS = 1_000;

/** The file in the data directory that servers lock. */
export const LOCK_FILE = "LOCK";

/**
 * The on-disk format this dfs reads and writes (blob files per upload, files up to 64 KiB in the
 * logs). A data directory records the one it was written in (`FORMAT_FILE`); a different one, or
 * rank folders without the file, make the start fail before anything is read or changed: an older
 * layout read as this one would look like lost chunks, which start-up would clean up.
 */
export const DATA_FORMAT_VERSION = 4;

/**
 * Older formats this dfs reads, and upgrades in place at start (its `FORMAT_FILE` rewritten before
 * any rank writes): format 3 is format 4 with every log record in CBOR, which format 4 still reads
 * (`log_record.ts`); a dfs that reads only 3 then refuses the folder up front rather than failing
 * on the first binary record.
 */
export const DATA_FORMATS_UPGRADED: readonly number[] = [3];

/** The file in the data directory that names its on-disk format. */
export const FORMAT_FILE = "FORMAT";

/** Where the data directory is: Deno's file system and the system clock unless told (an `Env` will do). */
export interface DataDirOptions {
  fs?: FileSystem;
  clock?: Clock;
}

/**
 * Creates the data directory if it is missing (and its parents), its entry made durable (unless
 * the server may not read its parent), and locks it (`lockDataDir`).
 *
 * @throws {DfsError} UNAVAILABLE as `lockDataDir` does; the file system's error if it cannot be
 *   created.
 */
export async function openDataDir(
  dataDir: string,
  options: DataDirOptions = {},
): Promise<FileHandle> {
  const { fs = denoFileSystem } = options;
  await fs.mkdir(dataDir, { recursive: true });
  try {
    await syncDirectory(fs, dirname(resolve(dataDir)));
  } catch (error) {
    // Run with permissions narrowed to the data folder (`./dfs serve`), the server may not open
    // its parent: the launcher created the folder and synced the parent before.
    if (!(error instanceof Deno.errors.NotCapable)) throw error;
  }
  return await lockDataDir(dataDir, options);
}

/**
 * Takes an exclusive lock on `LOCK_FILE` in `dataDir` (which must exist), so two servers never
 * share a data directory; closing the returned handle releases it.
 *
 * @throws {DfsError} UNAVAILABLE if the lock is not granted within `LOCK_TIMEOUT_MS` (another
 * server holds it).
 */
export async function lockDataDir(
  dataDir: string,
  options: DataDirOptions = {},
): Promise<FileHandle> {
  const { fs = denoFileSystem, clock = systemClock } = options;
  const file = await fs.open(join(dataDir, LOCK_FILE), { create: true, write: true });
  let timer: TimerHandle | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = clock.setTimeout(
      () =>
        reject(
          new DfsError("UNAVAILABLE", `Data directory ${dataDir} is in use by another dfs server`),
        ),
      LOCK_TIMEOUT_MS,
    );
  });
  const locked = file.lock(true);
  try {
    await Promise.race([locked, timeout]);
    return file;
  } catch (error) {
    locked.catch(() => {}); // a lock still waiting fails (or is dropped) as its handle closes
    file.close();
    throw error;
  } finally {
    clock.clearTimeout(timer);
  }
}

/**
 * What an empty file system holds at its root: a rank folder that is a fresh mount point (one disk
 * per node) holds nothing else.
 */
const FRESH_MOUNT_ENTRIES: ReadonlySet<string> = new Set(["lost+found"]);

/**
 * Refuses to start with fewer ranks than the data directory holds (their files would vanish),
 * then checks its format (`checkFormat()`). A `rank-N` folder that is empty (or holds only what a
 * new file system holds, `lost+found`) holds nothing: a pre-made mount point of a one-disk-per-node
 * set-up is a new node.
 *
 * @throws {DfsError} INVALID_REQUEST if it holds a `rank-N` folder with N >= `ranks` that is not
 * empty, or is in another format.
 */
export async function checkRankFolders(
  dataDir: string,
  ranks: number,
  options: DataDirOptions = {},
): Promise<void> {
  const { fs = denoFileSystem } = options;
  let holdsRanks = false;
  for await (const entry of fs.readDir(dataDir)) {
    const match = /^rank-(\d+)$/.exec(entry.name);
    if (!match || await isEmptyFolder(fs, join(dataDir, entry.name))) continue;
    holdsRanks = true;
    if (Number(match[1]) >= ranks) {
      throw new DfsError(
        "INVALID_REQUEST",
        `Data directory ${dataDir} holds ${entry.name}: start with --ranks ${
          Number(match[1]) + 1
        } or more`,
      );
    }
  }
  await checkFormat(dataDir, { fs, holdsRanks });
}

/** True if `path` is a folder holding nothing but `FRESH_MOUNT_ENTRIES`. */
async function isEmptyFolder(fs: FileSystem, path: string): Promise<boolean> {
  try {
    for await (const entry of fs.readDir(path)) {
      if (!FRESH_MOUNT_ENTRIES.has(entry.name)) return false;
    }
    return true;
  } catch {
    return false; // not a folder, or unreadable: taken as holding something
  }
}

/**
 * Checks that `dataDir` is in `DATA_FORMAT_VERSION`, by its `FORMAT_FILE`. A directory without
 * one that holds no rank folders (`holdsRanks` false) is new, and one in a format of
 * `DATA_FORMATS_UPGRADED` is upgraded: the file is written and made durable (written, fsynced,
 * renamed into place, the folder fsynced) before any rank writes to it.
 *
 * @throws {DfsError} INVALID_REQUEST if the file names another format, or is missing while rank
 * folders are there (an older dfs); nothing is changed then.
 */
export async function checkFormat(
  dataDir: string,
  options: { fs?: FileSystem; holdsRanks: boolean },
): Promise<void> {
  const { fs = denoFileSystem, holdsRanks } = options;
  const path = join(dataDir, FORMAT_FILE);
  const expected = `dfs data format ${DATA_FORMAT_VERSION}\n`;
  let found: string | undefined;
  try {
    found = await fs.readTextFile(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (found === expected) return;
  const upgraded = DATA_FORMATS_UPGRADED.some((v) => found === `dfs data format ${v}\n`);
  if (!upgraded && (found !== undefined || holdsRanks)) {
    const what = found === undefined
      ? `no ${FORMAT_FILE} file (an older dfs)`
      : `${JSON.stringify(found.trim().slice(0, 64))} in ${FORMAT_FILE}`;
    throw new DfsError(
      "INVALID_REQUEST",
      `Data directory ${dataDir} was written in another on-disk format (${what}); this dfs ` +
        `reads format ${DATA_FORMAT_VERSION}. Nothing was changed: use the dfs that wrote it, or ` +
        `copy the files out with it and into a new data directory.`,
    );
  }
  // A new data directory, or one of an older format this dfs reads: record the format durably
  // before any rank writes to it.
  const tmp = `${path}.tmp`;
  {
    using file = await fs.open(tmp, { write: true, create: true, truncate: true });
    await writeAll(file, new TextEncoder().encode(expected));
    await file.sync();
  }
  await fs.rename(tmp, path);
  await syncDirectory(fs, dataDir);
}
