/**
 * When a data node's disk has failed. A node whose folder is gone, whose file system answers with
 * an I/O error or turned read-only, or whose log was removed or cut under it can no longer keep
 * what it acknowledges: it stops serving (every call is answered `NODE_FAILED`) and rank 0 treats
 * it as a crashed rank. A full disk is not a failure (puts fail with a clear error until space is
 * freed), and neither is one missing chunk in a folder that is there (read repair restores it).
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";
import type { FileSystem, Log } from "../env/env.ts";
import { reasonOf, writeAll } from "./_fs.ts";

/**
 * OS error codes that mean the disk under a node is failing or gone rather than one request being
 * wrong: I/O errors, a file system remounted read-only, a device removed, a stale handle, a file
 * system that found itself corrupt.
 */
export const DISK_FAILURE_CODES: ReadonlySet<string> = new Set([
  "EIO",
  "EROFS",
  "ENODEV",
  "ENXIO",
  "ESTALE",
  "EUCLEAN",
]);

/** The OS error codes in `error` and its causes, outermost first. */
export function osCodesOf(error: unknown): string[] {
  const codes: string[] = [];
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && !(e instanceof DfsError)) codes.push(code);
    e = e.cause;
  }
  return codes;
}

/** True if `error` (or its cause) is an I/O error of the disk itself (`DISK_FAILURE_CODES`). */
export function isDiskError(error: unknown): boolean {
  return osCodesOf(error).some((code) => DISK_FAILURE_CODES.has(code));
}

/** True if `error` (or its cause) says a file or folder is not there. */
export function isNotFound(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 8; depth++) {
    if (e instanceof Deno.errors.NotFound) return true;
    e = e.cause;
  }
  return osCodesOf(error).includes("ENOENT");
}

/**
 * Checks that the paths a node lives in are all there, each a folder or a file as expected;
 * returns what is wrong, or undefined. Synchronous stats: cheap enough for every heartbeat.
 */
export function missingPath(
  fs: FileSystem,
  paths: { folders: readonly string[]; files: readonly string[] },
): string | undefined {
  const check = (path: string, folder: boolean): string | undefined => {
    try {
      const stat = fs.statSync(path);
      if (folder ? !stat.isDirectory : !stat.isFile) {
        return `"${path}" is not a ${folder ? "folder" : "file"}`;
      }
      return undefined;
    } catch (error) {
      if (isNotFound(error)) return `"${path}" is gone`;
      return `cannot stat "${path}": ${error instanceof Error ? error.message : String(error)}`;
    }
  };
  for (const folder of paths.folders) {
    const wrong = check(folder, true);
    if (wrong) return wrong;
  }
  for (const file of paths.files) {
    const wrong = check(file, false);
    if (wrong) return wrong;
  }
  return undefined;
}

/**
 * Says what is wrong if the folder at `path` is not on `device` (when one is given), or
 * undefined.
 */
export function otherDevice(
  fs: FileSystem,
  path: string,
  device: number | undefined,
): string | undefined {
  if (device === undefined) return undefined;
  const found = fs.statSync(path).dev;
  if (found === device) return undefined;
  return `"${path}" is on device ${found}, not on device ${device} where it was when the ` +
    `server started (was its disk unmounted?)`;
}

/**
 * Whether a data node's disk has failed, and why: set once, by an error a call met or by a check
 * of the node's paths, and said once on the node's log.
 */
export class DiskWatch {
  #rank: number;
  #fs: FileSystem;
  #log: Log;
  #paths: { folders: readonly string[]; files: readonly string[] };
  #logFailure: () => DfsError | undefined;
  #failure: DfsError | undefined;

  /**
   * `folders` and `files` must stay there while the node runs; `logFailure` says whether the
   * node's record log can no longer be appended to (removed or cut under it).
   */
  constructor(rank: number, parts: {
    fs: FileSystem;
    log: Log;
    folders: readonly string[];
    files: readonly string[];
    logFailure: () => DfsError | undefined;
  }) {
    this.#rank = rank;
    this.#fs = parts.fs;
    this.#log = parts.log;
    this.#paths = { folders: parts.folders, files: parts.files };
    this.#logFailure = parts.logFailure;
  }

  /** The `NODE_FAILED` error every call is answered with, once the disk has failed. */
  get failure(): DfsError | undefined {
    return this.#failure;
  }

  /** @throws {DfsError} `NODE_FAILED` once the disk has failed. */
  throwIfFailed(): void {
    if (this.#failure) throw this.#failure;
  }

  /** Takes the disk for failed, for `reason`, if it is not already; says so once. */
  fail(reason: string): void {
    if (this.#failure) return;
    this.#failure = nodeFailure(this.#rank, reason);
    this.#log.error(`dfs: rank ${this.#rank}: ${this.#failure.message}; it stops serving`);
  }

  /**
   * Looks at an error a call met and returns what to answer with: the failure, if the error shows
   * the disk failed (an I/O error, a log that cannot be appended to, a missing file in a folder
   * that is itself gone), else the error itself.
   */
  failedBy(error: unknown): unknown {
    const logFailure = this.#logFailure();
    if (logFailure) this.fail(logFailure.message);
    else if (isDiskError(error)) this.fail(reasonOf(error));
    else if (isNotFound(error)) this.check();
    return this.#failure ?? error;
  }

  /** Fails the disk if a path the node lives in is gone or its log cannot be appended to. */
  check(): void {
    if (this.#failure) return;
    const logFailure = this.#logFailure();
    if (logFailure) return this.fail(logFailure.message);
    const missing = missingPath(this.#fs, this.#paths);
    if (missing !== undefined) this.fail(missing);
  }
}

/** The error every call to a failed node is answered with. */
export function nodeFailure(rank: number, reason: string): DfsError {
  return new DfsError("NODE_FAILED", `Disk of rank ${rank} failed: ${reason}`);
}

/**
 * Writes, fdatasyncs and removes a small file at `path`.
 *
 * @throws {DfsError} UNAVAILABLE saying the disk does not take writes.
 */
export async function probeWrite(fs: FileSystem, path: string): Promise<void> {
  try {
    {
      using file = await fs.open(path, { write: true, create: true, truncate: true });
      await writeAll(file, new TextEncoder().encode("dfs\n"));
      await file.syncData();
    }
    await fs.remove(path);
  } catch (error) {
    throw new DfsError(
      "UNAVAILABLE",
      `Disk does not take a write at "${path}": ${reasonOf(error)}`,
      {
        cause: error,
      },
    );
  }
}
