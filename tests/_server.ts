/**
 * Test helpers: start a real `dfs serve` process on 127.0.0.1 with port 0 and a temp data
 * directory, stop it with a signal, start it again on the same directory.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { DfsClient } from "../client.ts";
import { LOG_FILE_BYTES_MAX } from "../ranks/common/chunk_id.ts";
import { sleep } from "./_wait.ts";

export const ROOT = fileURLToPath(new URL("../", import.meta.url));
export const DENO = Deno.execPath();
/**
 * The V8 flags `./dfs`, `deno task serve` and `deno task compile` run the server with (see the
 * README, Measured): a young generation of 2 MiB, and an old generation collected once it has
 * grown by half since the last collection (V8 lets a small heap grow up to 4 times).
 */
export const SERVER_V8_FLAGS = "--v8-flags=--max-semi-space-size=2,--heap-growing-percent=50";
/**
 * The malloc settings `./dfs`, `deno task serve` and the deployment files run the server with
 * (see the README, Measured): blocks of 128 KiB and more mapped apart and given back when freed,
 * and two arenas for all of the process's threads, not eight per core.
 */
export const SERVER_MALLOC_ENV = {
  MALLOC_MMAP_THRESHOLD_: "131072",
  MALLOC_TRIM_THRESHOLD_: "1048576",
  MALLOC_ARENA_MAX: "2",
};
/** How long a server may take to print its ready line. */
export const SERVER_START_TIMEOUT_MS = 60_000;

export interface ServerOptions {
  ranks?: number;
  replicas?: number;
  /** Reuse a data directory (for restarts); a fresh temp one otherwise. */
  dataDir?: string;
  /** Start through the `./dfs` launcher (narrowed permissions) instead of `deno run -A`. */
  launcher?: boolean;
  extraArgs?: string[];
}

export class TestServer implements AsyncDisposable {
  readonly dataDir: string;
  readonly address: string;
  /** `HOST:PORT` of the node port, when the server opened one. */
  readonly nodeAddress: string | undefined;
  /** What the server printed on stdout up to and with its ready line. */
  readonly readyLine: string;
  readonly process: Deno.ChildProcess;
  readonly stderr: Promise<string>;
  #ownsDir: boolean;
  #stderrSeen = { text: "" };
  #status: Promise<Deno.CommandStatus>;

  private constructor(
    init: {
      dataDir: string;
      address: string;
      nodeAddress?: string;
      readyLine: string;
      process: Deno.ChildProcess;
      stderr: Promise<string>;
    },
    ownsDir: boolean,
  ) {
    this.dataDir = init.dataDir;
    this.address = init.address;
    this.nodeAddress = init.nodeAddress;
    this.readyLine = init.readyLine;
    this.process = init.process;
    this.stderr = init.stderr;
    this.#ownsDir = ownsDir;
    this.#status = init.process.status;
  }

  /** Starts `dfs serve` and waits for its `listening on` line. */
  static async start(options: ServerOptions = {}): Promise<TestServer> {
    const dataDir = options.dataDir ?? await Deno.makeTempDir({ prefix: "dfs-test-" });
    const command = options.launcher ? `${ROOT}dfs` : DENO;
    const args = [
      ...(options.launcher ? [] : ["run", "-A", "--quiet", SERVER_V8_FLAGS, `${ROOT}main.ts`]),
      "serve",
      "--port",
      "0",
      "--data",
      dataDir,
      "--ranks",
      String(options.ranks ?? 4),
      "--replicas",
      String(options.replicas ?? 2),
      ...(options.extraArgs ?? []),
    ];
    const process = new Deno.Command(command, {
      args,
      stdout: "piped",
      stderr: "piped",
      cwd: ROOT,
      env: SERVER_MALLOC_ENV,
    }).spawn();
    const stderrSeen = { text: "" };
    const stderr = (async () => {
      for await (const piece of process.stderr.pipeThrough(new TextDecoderStream())) {
        stderrSeen.text += piece;
      }
      return stderrSeen.text;
    })();
    const lines = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    const timer = setTimeout(() => process.kill("SIGKILL"), SERVER_START_TIMEOUT_MS);
    try {
      while (true) {
        const { value, done } = await lines.read();
        if (done) throw new Error(`Server exited before it was ready: ${seen}${await stderr}`);
        seen += value;
        const match = /listening on ([\d.]+:\d+)/.exec(seen);
        if (match) {
          // Keep draining stdout so the server never blocks on a full pipe.
          void (async () => {
            while (!(await lines.read()).done) { /* drain */ }
          })().catch(() => {});
          const nodeAddress = /nodes on ([\d.]+:\d+)/.exec(seen)?.[1];
          const server = new TestServer(
            { dataDir, address: match[1], nodeAddress, readyLine: seen, process, stderr },
            options.dataDir === undefined,
          );
          server.#stderrSeen = stderrSeen;
          return server;
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** What the server has written to stderr so far. */
  stderrSoFar(): Promise<string> {
    return Promise.resolve(this.#stderrSeen.text);
  }

  /** Sends a signal and waits for the process to exit. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    try {
      this.process.kill(signal);
    } catch { /* already exited */ }
    const status = await this.#status;
    await this.stderr.catch(() => "");
    return status;
  }

  /** Starts a new server on the same data directory (after `stop`). */
  restart(options: Omit<ServerOptions, "dataDir"> = {}): Promise<TestServer> {
    this.#ownsDir = false;
    return TestServer.start({ ...options, dataDir: this.dataDir }).then((s) => {
      s.#ownsDir = true;
      return s;
    });
  }

  /** Peak resident memory of the server process so far, in bytes (Linux VmHWM). */
  async peakRssBytes(): Promise<number> {
    const status = await Deno.readTextFile(`/proc/${this.process.pid}/status`);
    return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
  }

  /** Resident memory of the server process now, in bytes (Linux VmRSS). */
  async rssBytes(): Promise<number> {
    const status = await Deno.readTextFile(`/proc/${this.process.pid}/status`);
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop("SIGKILL");
    if (this.#ownsDir) await Deno.remove(this.dataDir, { recursive: true }).catch(() => {});
  }
}

/** Blob files on disk under a data directory, across all ranks (one per upload and rank). */
export async function chunkFilesOnDisk(dataDir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const rank of Deno.readDir(dataDir)) {
    if (!rank.isDirectory) continue;
    try {
      for await (const f of Deno.readDir(`${dataDir}/${rank.name}/chunks`)) {
        files.push(`${rank.name}/${f.name}`);
      }
    } catch { /* no chunks folder yet */ }
  }
  return files.sort();
}

/**
 * Blob files the store should hold: one for every listed file on each rank holding any of its
 * chunks (a file's chunks on one rank share the blob of its upload).
 */
export async function expectedChunkFiles(client: DfsClient): Promise<number> {
  let total = 0;
  for (const entry of await client.list()) total += blobFilesOf(await client.meta(entry.name));
  return total;
}

/**
 * Blob files a file has on disk: one on each rank holding any of its chunks, or none for a small
 * file, which its data nodes keep in their logs.
 */
export function blobFilesOf(meta: { size: number; chunks: { ranks: number[] }[] }): number {
  if (meta.size <= LOG_FILE_BYTES_MAX) return 0;
  return new Set(meta.chunks.flatMap((chunk) => chunk.ranks)).size;
}

/**
 * Polls (for up to 5 s: releases and discards are asynchronous) until the chunk files on disk are
 * exactly the chunks the metadata references; fails with both counts otherwise.
 */
export async function assertNoStrayChunks(
  server: { dataDir: string },
  client: DfsClient,
): Promise<void> {
  let expected = -1;
  let actual = -2;
  for (let attempt = 0; attempt < 50; attempt++) {
    expected = await expectedChunkFiles(client);
    actual = (await chunkFilesOnDisk(server.dataDir)).length;
    if (actual === expected) return;
    await sleep(100);
  }
  assert.equal(actual, expected, "chunk files on disk match the chunks in metadata");
}

/**
 * Copies `from` into `to` until either side closes, then closes `to`: one direction of a test
 * proxy. `inspect` sees each piece (and may change it) before it goes on, with its offset in the
 * stream.
 */
export async function relay(
  from: Deno.Conn,
  to: Deno.Conn,
  inspect?: (piece: Uint8Array, offset: number) => void,
): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  let passed = 0;
  try {
    for (let n; (n = await from.read(buffer)) !== null;) {
      inspect?.(buffer.subarray(0, n), passed);
      passed += n;
      await to.write(buffer.subarray(0, n));
    }
  } catch { /* one side closed */ }
  try {
    to.close();
  } catch { /* already closed */ }
}
