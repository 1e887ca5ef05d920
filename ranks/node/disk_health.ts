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
import type { FileSystem } from "../env/env.ts";

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
    if (typeof code === "string") codes.push(code);
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

/** The error every call to a failed node is answered with. */
export function nodeFailure(rank: number, reason: string): DfsError {
  return new DfsError("NODE_FAILED", `Disk of rank ${rank} failed: ${reason}`);
}
