/**
 * The machine's own limits for dfs's data path, measured with plain Deno code and no dfs:
 * - put limit: a TCP sender streams the file to a receiver that writes it to two files (the two
 *   replicas) and fsyncs both before answering;
 * - get limit: a sender reads the file from disk and streams it over TCP to a receiver that writes
 *   it to one file.
 * Both on 127.0.0.1 with 1 MiB writes, as dfs does.
 * - small-file put limit: what a data node's disk work costs per small file, without dfs: create a
 *   file in each of two folders (the two replicas), write it, fdatasync both, from several lanes
 *   at once.
 *
 * @module
 */

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

/** Put limit: memory -> TCP -> two files, both fsynced. Returns MB/s. */
export async function barePut(size: number, dir: string): Promise<number> {
  const a = await Deno.create(`${dir}/bare-a`);
  const b = await Deno.create(`${dir}/bare-b`);
  const block = crypto.getRandomValues(new Uint8Array(64 * 1024));
  const chunk = new Uint8Array(MiB).map((_, i) => block[i % block.length]);
  try {
    const seconds = await overTcp(
      size,
      async (send) => {
        for (let sent = 0; sent < size; sent += MiB) {
          await send(chunk.subarray(0, Math.min(MiB, size - sent)));
        }
      },
      async (bytes) => {
        await writeAll(a, bytes);
        await writeAll(b, bytes);
      },
      async () => {
        await Promise.all([a.syncData(), b.syncData()]);
      },
    );
    return size / 1e6 / seconds;
  } finally {
    a.close();
    b.close();
    await Deno.remove(`${dir}/bare-a`);
    await Deno.remove(`${dir}/bare-b`);
  }
}

/** Get limit: file -> TCP -> one file. `source` must hold `size` bytes. Returns MB/s. */
export async function bareGet(size: number, source: string, dir: string): Promise<number> {
  const out = await Deno.create(`${dir}/bare-out`);
  try {
    const seconds = await overTcp(
      size,
      async (send) => {
        using file = await Deno.open(source);
        const buffer = new Uint8Array(MiB);
        for (let sent = 0; sent < size;) {
          const n = await file.read(buffer);
          if (n === null) break;
          await send(buffer.subarray(0, n));
          sent += n;
        }
      },
      (bytes) => writeAll(out, bytes),
      () => Promise.resolve(),
    );
    return size / 1e6 / seconds;
  } finally {
    out.close();
    await Deno.remove(`${dir}/bare-out`);
  }
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

if (import.meta.main) {
  const dir = await Deno.makeTempDir({ prefix: "dfs-bare-" });
  try {
    const size = 1024 * MiB;
    for (let run = 0; run < 3; run++) {
      const put = await barePut(size, dir);
      const file = `${dir}/src`;
      const f = await Deno.create(file);
      const chunk = crypto.getRandomValues(new Uint8Array(64 * 1024));
      for (let i = 0; i < size / chunk.length; i++) await writeAll(f, chunk);
      f.close();
      const get = await bareGet(size, file, dir);
      await Deno.remove(file);
      console.log(`bare put limit ${put.toFixed(0)} MB/s, bare get limit ${get.toFixed(0)} MB/s`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
