/**
 * The real environment: Deno's clock, timers, random numbers, file system and stderr.
 *
 * @module
 */

import { statfs } from "node:fs/promises";
import type { Clock, Env, FileSystem, Log, Random, TimerHandle } from "./env.ts";

/** The system clock and timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle: TimerHandle) => clearTimeout(handle as number | undefined),
};

/** Cryptographically strong random bytes. */
export const systemRandom: Random = {
  fill: (bytes) => crypto.getRandomValues(bytes),
};

/** Lines on stderr. */
export const stderrLog: Log = {
  error: (message, ...details) => console.error(message, ...details),
};

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
