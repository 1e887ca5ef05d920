/**
 * The real environment: the system's clock, randomness and stderr (`system.ts`), and Deno's file
 * system.
 *
 * @module
 */

import * as nodeFs from "node:fs";
import { statfs } from "node:fs/promises";
import type { DirectFile, DirectOpenOptions, Env, FileSystem } from "./env.ts";
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
  openDirect,
};

/**
 * `O_DIRECT` through `node:fs`, whose calls take flags and positions that Deno's own file API
 * does not, and read and write the caller's buffer in place (so its alignment holds).
 */
async function openDirect(path: string, options: DirectOpenOptions): Promise<DirectFile | null> {
  const { O_CREAT, O_DIRECT, O_RDONLY, O_WRONLY } = nodeFs.constants;
  const flags = O_DIRECT | (options.write ? O_WRONLY | (options.create ? O_CREAT : 0) : O_RDONLY);
  let fd: number;
  try {
    fd = await new Promise<number>((resolve, reject) =>
      nodeFs.open(path, flags, 0o644, (error, fd) => error ? reject(error) : resolve(fd))
    );
  } catch (error) {
    if (codeOf(error) === "EINVAL") return null;
    throw denoError(error);
  }
  let closed = false;
  const close = () => {
    if (!closed) nodeFs.closeSync(fd);
    closed = true;
  };
  return {
    readAt: (into, position) =>
      new Promise<number>((resolve, reject) =>
        nodeFs.read(
          fd,
          into,
          0,
          into.length,
          position,
          (error, read) => error ? reject(denoError(error)) : resolve(read),
        )
      ),
    writeAt: async (bytes, position) => {
      for (let done = 0; done < bytes.length;) {
        const written = await new Promise<number>((resolve, reject) =>
          nodeFs.write(
            fd,
            bytes,
            done,
            bytes.length - done,
            position + done,
            (error, n) => error ? reject(denoError(error)) : resolve(n),
          )
        );
        if (written <= 0) throw new Deno.errors.WriteZero(`write to ${path} made no progress`);
        done += written;
      }
    },
    linked: () => {
      try {
        return nodeFs.fstatSync(fd).nlink > 0;
      } catch {
        return false; // closed: no name to read by either
      }
    },
    close,
    [Symbol.dispose]: close,
  };
}

function codeOf(error: unknown): unknown {
  return (error as { code?: unknown } | null)?.code;
}

/** `node:fs`'s error as the Deno error the callers tell apart (missing file, full disk). */
function denoError(error: unknown): unknown {
  const message = error instanceof Error ? error.message : String(error);
  switch (codeOf(error)) {
    case "ENOENT":
      return new Deno.errors.NotFound(message, { cause: error });
    case "EINVAL":
      return new Deno.errors.InvalidData(message, { cause: error });
    default:
      return error;
  }
}

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
