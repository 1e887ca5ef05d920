/**
 * Test helpers: start a real `dfs serve` process on 127.0.0.1 with port 0 and a temp data
 * directory, stop it with a signal, start it again on the same directory.
 *
 * @module
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { DfsClient } from "../client.ts";
import { DfsError } from "../protocol/errors.ts";
import { FrameReader } from "../protocol/conn.ts";
import { decodeFrameBody, encodeFrame } from "../protocol/frame.ts";
import { PROTOCOL_VERSION } from "../protocol/limits.ts";
import { LOG_FILE_BYTES_MAX } from "../ranks/common/chunk_id.ts";

export const ROOT = fileURLToPath(new URL("../", import.meta.url));
export const DENO = Deno.execPath();
/** The V8 flags `./dfs serve` and `deno task serve` run the server with (young generation 2 MiB). */
export const SERVER_V8_FLAGS = "--v8-flags=--max-semi-space-size=2";
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
  readonly process: Deno.ChildProcess;
  readonly stderr: Promise<string>;
  #ownsDir: boolean;
  #stderrSeen = { text: "" };
  #status: Promise<Deno.CommandStatus>;

  private constructor(
    init: { dataDir: string; address: string; process: Deno.ChildProcess; stderr: Promise<string> },
    ownsDir: boolean,
  ) {
    this.dataDir = init.dataDir;
    this.address = init.address;
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
    const process = new Deno.Command(command, { args, stdout: "piped", stderr: "piped", cwd: ROOT })
      .spawn();
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
          const server = new TestServer(
            { dataDir, address: match[1], process, stderr },
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

/** Deterministic pseudo-random bytes (xorshift32), so content differs per seed and offset. */
export function pseudoRandomBytes(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  const words = new Uint32Array(out.buffer, 0, Math.floor(size / 4));
  let x = seed >>> 0 || 0x9e3779b9;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  for (let i = words.length * 4; i < size; i++) out[i] = (seed + i) & 0xff;
  return out;
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
export async function assertNoStrayChunks(server: TestServer, client: DfsClient): Promise<void> {
  let expected = -1;
  let actual = -2;
  for (let attempt = 0; attempt < 50; attempt++) {
    expected = await expectedChunkFiles(client);
    actual = (await chunkFilesOnDisk(server.dataDir)).length;
    if (actual === expected) return;
    await new Promise((r) => setTimeout(r, 100));
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

/** A bare protocol connection for tests that send what the client library never would. */
export interface RawConnection extends Disposable {
  /** Encodes and sends one message as a frame. */
  send(message: unknown): Promise<void>;
  /** Sends raw bytes. */
  sendBytes(bytes: Uint8Array): Promise<void>;
  /** The next frame from the server, decoded. Throws when the server closed the connection. */
  next(): Promise<Record<string, unknown>>;
  /** Ends the sending side only (TCP half-close): the server sees end of stream, replies still arrive. */
  closeWrite(): Promise<void>;
  close(): void;
}

/** Connects to a test server; with `hello`, completes the handshake first. */
export async function rawConnection(
  address: string,
  options: { hello?: boolean } = {},
): Promise<RawConnection> {
  const [hostname, port] = address.split(":");
  const conn = await Deno.connect({ hostname, port: Number(port) });
  const reader = new FrameReader(conn);
  let closed = false;
  const raw: RawConnection = {
    send: (message) => raw.sendBytes(encodeFrame(message)),
    async sendBytes(bytes) {
      let at = 0;
      while (at < bytes.length) at += await conn.write(bytes.subarray(at));
    },
    async next() {
      const body = await reader.read();
      if (body === null) throw new Error("Server closed the connection");
      return decodeFrameBody(body) as Record<string, unknown>;
    },
    closeWrite: () => conn.closeWrite(),
    close() {
      if (closed) return;
      closed = true;
      conn.close();
    },
    [Symbol.dispose]() {
      raw.close();
    },
  };
  if (options.hello) {
    await raw.send({ op: "hello", version: PROTOCOL_VERSION });
    const hello = await raw.next();
    if (hello.op !== "hello") throw new Error(`Handshake refused: ${JSON.stringify(hello)}`);
  }
  return raw;
}

/** Asserts that `promise` rejects with a `DfsError` of `code` whose message matches `pattern`. */
export async function assertDfsError(
  promise: Promise<unknown>,
  code: string,
  pattern: RegExp,
): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof DfsError, `expected a DfsError, got ${e}`);
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
}
