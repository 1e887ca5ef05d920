/**
 * The machine's own limits for dfs's data path, measured with plain Deno code (and `dd`) and no
 * dfs, each the most the machine gives, so that a ratio to it is honest:
 * - two-copy disk limit: two files written at once, 1 MiB at a time, each fdatasynced, as a put's
 *   two replicas are; beside it, two `dd conv=fsync` processes at once, the same measure by a tool
 *   outside Deno;
 * - loopback TCP: bytes streamed from memory to memory over 127.0.0.1;
 * - get limit: a sender reads the file from disk (direct I/O) and streams it over TCP to a receiver
 *   that drops it, or writes it to a file;
 * - small-file put limit: what a data node's disk work costs per small file, without dfs: create a
 *   file in each of two folders (the two replicas), write it, fdatasync both, from several lanes
 *   at once;
 * - small-file get limit: a plain Deno file server in a process of its own, answering each request
 *   (a file's number) with the file's 4 KiB read from disk, over as many connections as dfs's
 *   clients.
 *
 * @module
 */

import { alignedBuffers } from "../ranks/env/env.ts";
import { denoFileSystem } from "../ranks/env/deno_env.ts";
import { cpuSeconds } from "./_timing.ts";

const MiB = 1024 * 1024;

async function writeAll(w: { write(p: Uint8Array): Promise<number> }, bytes: Uint8Array) {
  let at = 0;
  while (at < bytes.length) at += await w.write(bytes.subarray(at));
}

/** Seconds to stream `size` bytes from `produce` over TCP into `consume`. */
async function overTcp(
  size: number,
  produce: (send: (bytes: Uint8Array) => Promise<void>) => Promise<void>,
  consume: (bytes: Uint8Array) => Promise<void>,
  finish: () => Promise<void>,
): Promise<number> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const start = performance.now();
  const receiving = (async () => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(MiB);
    let received = 0;
    while (received < size) {
      let filled = 0;
      while (filled < Math.min(MiB, size - received)) {
        const n = await conn.read(buffer.subarray(filled, Math.min(MiB, size - received)));
        if (n === null) throw new Error("sender closed early");
        filled += n;
      }
      await consume(buffer.subarray(0, filled));
      received += filled;
    }
    await finish();
    await writeAll(conn, Uint8Array.of(1));
    conn.close();
  })();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await produce((bytes) => writeAll(conn, bytes));
  await conn.read(new Uint8Array(1));
  conn.close();
  await receiving;
  listener.close();
  return (performance.now() - start) / 1000;
}

/**
 * Two-copy disk limit: two files of `size` bytes written at once, 1 MiB a write, each
 * fdatasynced at its end; MB/s of one copy (as a put of `size` bytes). The two writers run
 * concurrently, as a put's replicas go to two data nodes. With `direct`, the writes bypass the
 * page cache (as data nodes write chunks), else they go through it.
 */
export async function bareTwoCopies(
  size: number,
  dir: string,
  options: { direct?: boolean } = {},
): Promise<number> {
  const paths = [`${dir}/bare-a`, `${dir}/bare-b`];
  const block = crypto.getRandomValues(new Uint8Array(64 * 1024));
  const [chunk] = alignedBuffers(1, MiB);
  chunk.forEach((_, i) => chunk[i] = block[i % block.length]);
  try {
    const start = performance.now();
    await Promise.all(paths.map(async (path) => {
      using file = await Deno.create(path);
      using direct = options.direct ? await denoFileSystem.openDirect(path, { write: true }) : null;
      for (let written = 0; written < size; written += MiB) {
        const piece = chunk.subarray(0, Math.min(MiB, size - written));
        if (direct && piece.length === MiB) {
          await direct.writeAt(piece, written);
        } else {
          await file.seek(written, Deno.SeekMode.Start);
          await writeAll(file, piece);
        }
      }
      await file.syncData();
    }));
    return size / 1e6 / ((performance.now() - start) / 1000);
  } finally {
    for (const path of paths) await Deno.remove(path).catch(() => {});
  }
}

/**
 * The same by `dd`: two `dd bs=1M conv=fsync` at once, each writing `size` bytes (of zeros) to
 * its own file; MB/s of one copy. Undefined where `dd` cannot run.
 */
export async function ddTwoCopies(size: number, dir: string): Promise<number | undefined> {
  const paths = [`${dir}/dd-a`, `${dir}/dd-b`];
  try {
    const start = performance.now();
    const outs = await Promise.all(paths.map((path) =>
      new Deno.Command("dd", {
        args: [
          "if=/dev/zero",
          `of=${path}`,
          "bs=1M",
          `count=${Math.ceil(size / MiB)}`,
          "conv=fsync",
        ],
        stdout: "null",
        stderr: "null",
      }).output()
    ));
    if (!outs.every((out) => out.success)) return undefined;
    return size / 1e6 / ((performance.now() - start) / 1000);
  } catch {
    return undefined;
  } finally {
    for (const path of paths) await Deno.remove(path).catch(() => {});
  }
}

/** Loopback TCP: `size` bytes from memory to memory over 127.0.0.1, 1 MiB writes. MB/s. */
export async function bareTcp(size: number): Promise<number> {
  const chunk = crypto.getRandomValues(new Uint8Array(64 * 1024));
  const block = new Uint8Array(MiB).map((_, i) => chunk[i % chunk.length]);
  const seconds = await overTcp(
    size,
    async (send) => {
      for (let sent = 0; sent < size; sent += MiB) {
        await send(block.subarray(0, Math.min(MiB, size - sent)));
      }
    },
    () => Promise.resolve(),
    () => Promise.resolve(),
  );
  return size / 1e6 / seconds;
}

/**
 * Get limit: a sender reads `source` from disk (direct I/O, 1 MiB at a time, as data nodes read
 * chunks, so a copy in the page cache does not flatter it) and streams it over loopback TCP to a
 * receiver that drops the bytes (as the library's get is measured) or, with `toFile`, writes them
 * to a new file in `dir` (as `dfs get` does); MB/s.
 */
export async function bareGet(
  size: number,
  source: string,
  dir: string,
  options: { toFile?: boolean } = {},
): Promise<number> {
  const out = options.toFile ? await Deno.create(`${dir}/bare-out`) : undefined;
  const buffers = alignedBuffers(BARE_GET_READS_AHEAD, MiB);
  try {
    const seconds = await overTcp(
      size,
      async (send) => {
        using file = await denoFileSystem.openDirect(source, {});
        const read = async (position: number, buffer: Uint8Array<ArrayBuffer>) => {
          const piece = buffer.subarray(0, Math.min(MiB, size - position));
          const n = file
            ? await file.readAt(buffer, position)
            : await readAt(source, piece, position);
          return buffer.subarray(0, Math.min(n, size - position));
        };
        // Reads run ahead of the sends, as a server's would.
        const reads: Promise<Uint8Array>[] = [];
        let next = 0;
        const readNext = () => {
          if (next < size) reads.push(read(next, buffers[(next / MiB) % buffers.length]));
          next += MiB;
        };
        for (let i = 0; i < buffers.length - 1; i++) readNext();
        for (let sent = 0; sent < size;) {
          readNext();
          const piece = await reads.shift()!;
          if (piece.length === 0) break;
          await send(piece);
          sent += piece.length;
        }
      },
      (bytes) => out ? writeAll(out, bytes) : Promise.resolve(),
      () => Promise.resolve(),
    );
    return size / 1e6 / seconds;
  } finally {
    if (out) {
      out.close();
      await Deno.remove(`${dir}/bare-out`);
    }
  }
}

/** Reads the bare get limit's sender keeps in flight ahead of its sends. */
const BARE_GET_READS_AHEAD = 4;

/** Reads into `bytes` at `position` through the page cache (where direct I/O is refused). */
async function readAt(path: string, bytes: Uint8Array, position: number): Promise<number> {
  using file = await Deno.open(path);
  await file.seek(position, Deno.SeekMode.Start);
  return await file.read(bytes) ?? 0;
}

/** Longest the small-file put limit may run before it reports what it did. */
export const BARE_SMALL_PUT_TIMEOUT_MS = 120_000;

/**
 * Small-file put limit: `lanes` loops at once, each creating the next file in two folders under
 * `dir`, writing `sizeBytes` and fdatasyncing both copies, until `files` files or
 * `BARE_SMALL_PUT_TIMEOUT_MS`. Returns files (pairs of copies) per second.
 */
export async function bareSmallPut(
  files: number,
  dir: string,
  options: { lanes: number; sizeBytes: number },
): Promise<number> {
  const folders = [`${dir}/bare-small-a`, `${dir}/bare-small-b`];
  for (const folder of folders) await Deno.mkdir(folder);
  const bytes = crypto.getRandomValues(new Uint8Array(options.sizeBytes));
  const deadline = performance.now() + BARE_SMALL_PUT_TIMEOUT_MS;
  let next = 0;
  let done = 0;
  const lane = async () => {
    while (next < files && performance.now() < deadline) {
      const i = next++;
      await Promise.all(folders.map(async (folder) => {
        using file = await Deno.open(`${folder}/${i}`, { createNew: true, write: true });
        await writeAll(file, bytes);
        await file.syncData();
      }));
      done++;
    }
  };
  try {
    const start = performance.now();
    await Promise.all(Array.from({ length: options.lanes }, lane));
    return done / ((performance.now() - start) / 1000);
  } finally {
    for (const folder of folders) await Deno.remove(folder, { recursive: true });
  }
}

/** Longest the small-file get limit may run before it reports what it did. */
export const BARE_SMALL_GET_TIMEOUT_MS = 120_000;

/** What the small-file get limit measured. */
export interface SmallGetLimit {
  /** Gets answered per second. */
  rate: number;
  /** CPU the file server used per get (µs). */
  serverMicrosPerGet: number;
}

/**
 * Small-file get limit: `files` files of `sizeBytes` written under `dir`, then served by a plain
 * Deno file server in a process of its own (this module run as `serve-small DIR SIZE`: per
 * request a file's number, 4 bytes; per answer the file read from disk) and read by
 * `connections` connections at once, each asking for the next file in turn, until all were read
 * or `BARE_SMALL_GET_TIMEOUT_MS`.
 */
export async function bareSmallGet(
  files: number,
  dir: string,
  options: { connections: number; sizeBytes: number },
): Promise<SmallGetLimit> {
  const folder = `${dir}/bare-small-get`;
  await Deno.mkdir(folder);
  const bytes = crypto.getRandomValues(new Uint8Array(options.sizeBytes));
  for (let i = 0; i < files; i++) await Deno.writeFile(`${folder}/${i}`, bytes);
  const server = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-net", import.meta.filename!, "serve-small", folder],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let line = "";
    while (!line.includes("\n")) {
      const next = await reader.read();
      if (next.done) throw new Error("the bare file server did not start");
      line += next.value;
    }
    const port = Number(line.trim());
    const conns = await Promise.all(
      Array.from(
        { length: options.connections },
        () => Deno.connect({ hostname: "127.0.0.1", port }),
      ),
    );
    const deadline = performance.now() + BARE_SMALL_GET_TIMEOUT_MS;
    let next = 0;
    let done = 0;
    const cpuBefore = await cpuSeconds(server.pid);
    const start = performance.now();
    await Promise.all(conns.map(async (conn) => {
      const request = new Uint8Array(4);
      const answer = new Uint8Array(options.sizeBytes);
      while (next < files && performance.now() < deadline) {
        new DataView(request.buffer).setUint32(0, next++);
        await writeAll(conn, request);
        let got = 0;
        while (got < answer.length) {
          const n = await conn.read(answer.subarray(got));
          if (n === null) throw new Error("the bare file server closed a connection");
          got += n;
        }
        done++;
      }
      conn.close();
    }));
    const seconds = (performance.now() - start) / 1000;
    const cpu = await cpuSeconds(server.pid) - cpuBefore;
    return { rate: done / seconds, serverMicrosPerGet: 1e6 * cpu / done };
  } finally {
    server.kill();
    await server.status;
    await Deno.remove(folder, { recursive: true });
  }
}

/** The bare file server of `bareSmallGet`: prints its port, then answers until killed. */
async function serveSmall(folder: string): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  console.log((listener.addr as Deno.NetAddr).port);
  for await (const conn of listener) {
    (async () => {
      const request = new Uint8Array(4);
      while (true) {
        let got = 0;
        while (got < 4) {
          const n = await conn.read(request.subarray(got));
          if (n === null) return conn.close();
          got += n;
        }
        const i = new DataView(request.buffer).getUint32(0);
        await writeAll(conn, await Deno.readFile(`${folder}/${i}`));
      }
    })().catch(() => {});
  }
}

if (import.meta.main && Deno.args[0] === "serve-small") {
  await serveSmall(Deno.args[1]);
} else if (import.meta.main) {
  const dir = await Deno.makeTempDir({ prefix: "dfs-bare-" });
  try {
    const size = 1024 * MiB;
    for (let run = 0; run < 3; run++) {
      const twoCopies = await bareTwoCopies(size, dir);
      const direct = await bareTwoCopies(size, dir, { direct: true });
      const dd = await ddTwoCopies(size, dir);
      const tcp = await bareTcp(size);
      const file = `${dir}/src`;
      const f = await Deno.create(file);
      const chunk = crypto.getRandomValues(new Uint8Array(64 * 1024));
      for (let i = 0; i < size / chunk.length; i++) await writeAll(f, chunk);
      f.close();
      const get = await bareGet(size, file, dir);
      await Deno.remove(file);
      const small = await bareSmallGet(10_000, dir, { connections: 16, sizeBytes: 4096 });
      console.log(
        `two copies ${twoCopies.toFixed(0)} MB/s (direct ${direct.toFixed(0)}, dd ${
          dd?.toFixed(0) ?? "-"
        }), ` +
          `loopback TCP ${tcp.toFixed(0)} MB/s, get ${get.toFixed(0)} MB/s, ` +
          `4 KiB gets ${small.rate.toFixed(0)}/s (${small.serverMicrosPerGet.toFixed(0)} µs each)`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
