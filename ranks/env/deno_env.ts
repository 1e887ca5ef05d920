/**
 * The real environment: the system's clock, randomness and stderr (`system.ts`), and Deno's file
 * system.
 *
 * @module
 */

import { statfs } from "node:fs/promises";
import type { Env, FileSystem } from "./env.ts";
import { stderrLog, systemClock, systemRandom } from "./system.ts";

/** The real file system (Deno's own calls, passed through). */
export const denoFileSystem: FileSystem = {
  open: (path, options) => Deno.open(path, options),
  openSync: (path, options) => Deno.openSync(path, options),
  readFile: (path) => Deno.readFile(path),
  readTextFile: (path) => Deno.readTextFile(path),
  statSync: (path) => {
    const info = Deno.statSync(path);
    return { size: info.size, isFile: info.isFile, isDirectory: info.isDirectory, dev: info.dev };
  },
  mkdir: (path, options) => Deno.mkdir(path, options),
  readDir: (path) => Deno.readDir(path),
  remove: (path, options) => Deno.remove(path, options),
  rename: (from, to) => Deno.rename(from, to),
  statfs: async (path) => {
    const fs = await statfs(path);
    const { dev } = await Deno.stat(path);
    return { totalBytes: fs.blocks * fs.bsize, availableBytes: fs.bavail * fs.bsize, device: dev };
  },
};

/** The environment of a real server: system clock, crypto randomness, the disk, stderr. */
export function denoEnv(overrides: Partial<Env> = {}): Env {
  return {
    clock: systemClock,
    random: systemRandom,
    fs: denoFileSystem,
    log: stderrLog,
    ...overrides,
  };
}
