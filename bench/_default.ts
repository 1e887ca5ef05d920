/**
 * The default suite: a large file through the library and the CLI with the machine's bare limits,
 * many small files from concurrent clients, `list` of a large store, and the server's start-up
 * time on an empty store and on that large one.
 *
 * @module
 */

import type { DfsClient } from "../client.ts";
import { DENO, type TestServer } from "../tests/_server.ts";
import { sleep, withTimeout } from "../tests/_wait.ts";
import {
  bareGet,
  bareSmallGet,
  bareSmallPut,
  bareTcp,
  bareTwoCopies,
  ddTwoCopies,
} from "./bare.ts";
import type { BenchConfig, BenchContext } from "./_config.ts";
import {
  cli,
  getConcurrently,
  putConcurrently,
  settled,
  TRANSFER_TIMEOUT_MS,
  writeSourceFile,
} from "./_large_file.ts";
import {
  connectClients,
  type PhaseResult,
  runPhase,
  SMALL_FILE_SIZE_BYTES,
  type SmallOp,
} from "./_small_files.ts";
import { type Figure, figureOf, percentile, sliceRate } from "./_stats.ts";
import { progress, timed } from "./_timing.ts";
import { withServer } from "./_with_server.ts";

const MiB = 1024 * 1024;
/** Size of each file put to fill the store that `list` and the start-up are measured on. */
export const TINY_FILE_SIZE_BYTES = 64;
/** Longest filling that store may take; `list` and the start-up are then measured on fewer files. */
export const FILL_TIMEOUT_MS = 600_000;
/**
 * Part of the fill whose put rate is set against the rest: its first tenth (a store from empty to
 * a tenth full) and its last (a store nine tenths to all full), in one run with the same server and
 * clients, minutes apart.
 */
export const FILL_SLICE_FRACTION = 0.1;
/**
 * `meta`s per round of the latency comparison (`metaFigures`), whatever the store's size: with
 * 10,000 (0.2 s at ~60,000/s) a round's p99 was its 100 slowest, and whichever collection or
 * scheduling pause landed in its window set it: the ratio of two stores' p99s swung from 64% to
 * 191% within one run.
 */
export const META_LATENCY_SAMPLES = 60_000;
/** Longest one `list` may take. */
export const LIST_TIMEOUT_MS = 120_000;
/** Longest a bare `deno` process may take to start and exit. */
export const BARE_START_TIMEOUT_MS = 60_000;
/**
 * How long the million-file server is left idle before its memory is read again: V8 collects an
 * idle isolate's garbage (its memory reducer) within about this long, so the reading after it is
 * what the structures hold, the one right after the operation what a busy server holds. Read
 * after the lists and after the last restart, once nothing is measured on that server after it.
 */
export const SETTLE_MS = 30_000;

/** Runs the default suite; `bench.notes` receives what the reader of the figures must know. */
export async function runDefault(bench: BenchContext): Promise<Figure[]> {
  const { config } = bench;
  const figures: Figure[] = [];
  await withServer({ ranks: config.ranks }, async (server) => {
    progress(`large file (${config.sizeBytes / MiB} MiB) and the bare limits`);
    figures.push(...await largeFiles(server, config));
    figures.push(await peakMemory(server, "server peak resident memory, large files"));
    progress("bare small-file put limit");
    figures.push(await bareSmallPutFigure(config));
    progress(`${config.files} small files, ${config.clients} clients`);
    figures.push(...await smallFiles(server, bench));
    figures.push(await peakMemory(server, "server peak resident memory, then small files"));
  });
  progress(`${config.files} small files again, rank 0's cache off`);
  figures.push(...await uncachedGets(bench));
  figures.push(...await manyFiles(bench));
  return figures;
}

async function peakMemory(server: TestServer, name: string): Promise<Figure> {
  return figureOf(name, [await server.peakRssBytes() / MiB], { unit: "MiB" });
}

/** Repeats `measure` `runs` times, collecting one sample per run for each figure it returns. */
async function repeat(
  runs: number,
  measure: (run: number) => Promise<Record<string, number>>,
): Promise<Map<string, number[]>> {
  const samples = new Map<string, number[]>();
  for (let run = 0; run < runs; run++) {
    for (const [key, value] of Object.entries(await measure(run))) {
      samples.set(key, [...(samples.get(key) ?? []), value]);
    }
  }
  return samples;
}

/**
 * The large file through the library and the CLI, and the machine's bare limits, interleaved run by
 * run: the disk's speed drifts by 2x within minutes here, so each run's figures are set against
 * the bare limits measured right beside them, and the ratios are the medians of those pairs.
 */
async function largeFiles(server: TestServer, config: BenchConfig): Promise<Figure[]> {
  const clients = await connectClients(server.address, 1);
  const dir = await Deno.makeTempDir({ prefix: "dfs-bench-" });
  try {
    const files = { prefix: "bench/lib-", sizeBytes: config.sizeBytes };
    const local = `${dir}/file.bin`;
    await writeSourceFile(local, config.sizeBytes);
    const mbps = (seconds: number) => config.sizeBytes / 1e6 / seconds;
    // Each transfer starts on a settled disk, so none pays for the one before.
    const limit = (work: () => Promise<number>) =>
      settled(() => withTimeout(work(), { timeoutMs: TRANSFER_TIMEOUT_MS, what: "bare limit" }));
    const samples = await repeat(config.runs, async (run) => {
      progress(`large file, run ${run + 1}: library, bare limits, CLI`);
      const put = await settled(() => putConcurrently(clients, files));
      const twoCopies = await limit(() => bareTwoCopies(config.sizeBytes, dir));
      const twoDirect = await limit(() => bareTwoCopies(config.sizeBytes, dir, { direct: true }));
      const dd = await limit(() => ddTwoCopies(config.sizeBytes, dir).then((mbps) => mbps ?? 0));
      // The disk's limit is the most any of the three measures got out of it.
      const barePutMbps = Math.max(twoCopies, twoDirect, dd);
      const tcp = await limit(() => bareTcp(config.sizeBytes));
      const get = await settled(() => getConcurrently(clients, files));
      const bareGetMbps = await limit(() => bareGet(config.sizeBytes, local, dir));
      const bareGetToFile = await limit(() =>
        bareGet(config.sizeBytes, local, dir, { toFile: true })
      );
      const dfs = (args: string[]) => settled(() => cli(server.address, args)).then(mbps);
      const cliPut = await dfs(["put", local, "bench/cli.bin"]);
      // `-` writes stdout, which the bench sends to /dev/null: the same work as the library's get.
      const cliGet = await dfs(["get", "bench/cli.bin", "-"]);
      const cliGetFile = await dfs(["get", "bench/cli.bin", `${dir}/back.bin`]);
      await Deno.remove(`${dir}/back.bin`);
      return {
        put,
        get,
        cliPut,
        cliGet,
        cliGetFile,
        twoCopies,
        twoDirect,
        ...(dd > 0 ? { dd } : {}),
        barePut: barePutMbps,
        tcp,
        bareGet: bareGetMbps,
        bareGetToFile,
        putRatio: 100 * put / barePutMbps,
        getRatio: 100 * get / bareGetMbps,
        cliPutRatio: 100 * cliPut / put,
        cliGetRatio: 100 * cliGet / get,
        cliGetFileRatio: 100 * cliGetFile / bareGetToFile,
      };
    });
    const mb = { unit: "MB/s" };
    const pct = { unit: "%" };
    const of = (key: string) => samples.get(key)!;
    return [
      figureOf("put, client library", of("put"), mb),
      figureOf("get, client library", of("get"), mb),
      figureOf("put, CLI (file to server)", of("cliPut"), mb),
      figureOf("get, CLI (server to stdout, /dev/null)", of("cliGet"), mb),
      figureOf("get, CLI (server to a file)", of("cliGetFile"), mb),
      figureOf("2 copies at once, fdatasynced, Deno, page cache (each)", of("twoCopies"), mb),
      figureOf("2 copies at once, fdatasynced, Deno, direct I/O (each)", of("twoDirect"), mb),
      ...(samples.has("dd")
        ? [figureOf("2 copies at once, dd bs=1M conv=fsync (each)", of("dd"), mb)]
        : []),
      figureOf("bare put limit: the best of the above", of("barePut"), mb),
      figureOf("loopback TCP (memory to memory)", of("tcp"), mb),
      figureOf("bare get limit (disk, direct I/O, TCP, to memory)", of("bareGet"), mb),
      figureOf("bare get limit to a file (disk, TCP, to a file)", of("bareGetToFile"), mb),
      figureOf("put, library / bare put limit of the same run", of("putRatio"), pct),
      figureOf("get, library / bare get limit of the same run", of("getRatio"), pct),
      figureOf("put, CLI / library of the same run", of("cliPutRatio"), pct),
      figureOf("get, CLI to /dev/null / library of the same run", of("cliGetRatio"), pct),
      figureOf("get, CLI to a file / bare get limit to a file", of("cliGetFileRatio"), pct),
    ];
  } finally {
    closeAll(clients);
    await Deno.remove(dir, { recursive: true });
  }
}

/** Small files put without dfs: two fsynced copies each, as many lanes as clients. */
async function bareSmallPutFigure(config: BenchConfig): Promise<Figure> {
  const dir = await Deno.makeTempDir({ prefix: "dfs-bare-" });
  try {
    const samples: number[] = [];
    for (let run = 0; run < config.runs; run++) {
      const options = { lanes: config.clients, sizeBytes: SMALL_FILE_SIZE_BYTES };
      samples.push(await bareSmallPut(config.files, dir, options));
    }
    const name = `bare 4 KiB put limit (create + fdatasync 2 files, ${config.clients} lanes)`;
    return figureOf(name, samples, { unit: "files/s" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `files` small files put, then read, then their metadata asked, by `clients` clients. */
async function smallFiles(server: TestServer, bench: BenchContext): Promise<Figure[]> {
  const { config, notes } = bench;
  const clients = await connectClients(server.address, config.clients);
  const ops: SmallOp[] = ["put", "get", "meta"];
  try {
    const samples = await repeat(config.runs, async (run) => {
      const out: Record<string, number> = {};
      for (const op of ops) {
        const result = await runPhase(clients, op, {
          nameOf: (i) => `small/r${run}/d${i % 100}/f${i}`,
          files: config.files,
          serverPid: server.process.pid,
        });
        if (result.files < config.files) notes.push(incomplete(result, config.files));
        Object.assign(out, phaseFigures(result));
      }
      // The plain file server's gets in the same run, over as many connections.
      const dir = await Deno.makeTempDir({ prefix: "dfs-bare-" });
      try {
        const options = { connections: config.clients, sizeBytes: SMALL_FILE_SIZE_BYTES };
        const bare = await bareSmallGet(config.files, dir, options);
        out["bare get rate"] = bare.rate;
        out["bare get cpu"] = bare.serverMicrosPerGet;
        out["get ratio"] = 100 * out["get rate"] / bare.rate;
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
      return out;
    });
    const figure = (name: string, key: string, unit: string) =>
      figureOf(name, samples.get(key)!, { unit });
    return [
      ...ops.flatMap((op) => [
        figure(`4 KiB ${op}, ${config.clients} clients`, `${op} rate`, "files/s"),
        figure(`4 KiB ${op} latency p50`, `${op} p50`, "ms"),
        figure(`4 KiB ${op} latency p99`, `${op} p99`, "ms"),
        figure(`4 KiB ${op}, server CPU`, `${op} server cpu`, "% of a core"),
        figure(`4 KiB ${op}, server CPU per op`, `${op} server us`, "µs"),
        figure(`4 KiB ${op}, bench (clients) CPU`, `${op} bench cpu`, "% of a core"),
      ]),
      figure(
        `bare 4 KiB get limit (a plain Deno file server, ${config.clients} connections)`,
        "bare get rate",
        "files/s",
      ),
      figure("bare 4 KiB get limit, server CPU per get", "bare get cpu", "µs"),
      figure("4 KiB get / bare 4 KiB get limit of the same run", "get ratio", "%"),
    ];
  } finally {
    closeAll(clients);
  }
}

/**
 * Small gets answered by the data nodes: a server whose rank 0 keeps no small files
 * (`--cache-mib 0`), so every get makes the round trip to a node that a file not read or written
 * lately makes.
 */
async function uncachedGets(bench: BenchContext): Promise<Figure[]> {
  const { config, notes } = bench;
  const extraArgs = ["--cache-mib", "0"];
  return await withServer({ ranks: config.ranks, extraArgs }, async (server) => {
    const clients = await connectClients(server.address, config.clients);
    try {
      const samples = await repeat(config.runs, async (run) => {
        const options = {
          nameOf: (i: number) => `small/r${run}/d${i % 100}/f${i}`,
          files: config.files,
          serverPid: server.process.pid,
        };
        await runPhase(clients, "put", options);
        const result = await runPhase(clients, "get", options);
        if (result.files < config.files) notes.push(incomplete(result, config.files));
        return phaseFigures(result);
      });
      const figure = (name: string, key: string, unit: string) =>
        figureOf(name, samples.get(key)!, { unit });
      return [
        figure(`4 KiB get, cache off, ${config.clients} clients`, "get rate", "files/s"),
        figure("4 KiB get, cache off, server CPU per op", "get server us", "µs"),
      ];
    } finally {
      closeAll(clients);
    }
  });
}

function phaseFigures(result: PhaseResult): Record<string, number> {
  const { op, files, seconds, latenciesMs } = result;
  return {
    [`${op} rate`]: files / seconds,
    [`${op} p50`]: percentile(latenciesMs, 50),
    [`${op} p99`]: percentile(latenciesMs, 99),
    [`${op} server cpu`]: 100 * result.serverCpuSeconds / seconds,
    [`${op} server us`]: 1e6 * result.serverCpuSeconds / files,
    [`${op} bench cpu`]: 100 * result.benchCpuSeconds / seconds,
  };
}

function incomplete(result: PhaseResult, asked: number): string {
  return `${result.op}: only ${result.files} of ${asked} files within the time limit`;
}

/**
 * A store of `listFiles` tiny files: the rate they were put at (over the whole fill, and its first
 * tenth against its last: `fillSliceFigures`), `meta` latency on it beside a small store's in the
 * same window (`metaFigures`), `list` of all of them, and the start-up time on it and on an empty
 * store, with a bare Deno start-up for comparison.
 */
export async function manyFiles(bench: BenchContext): Promise<Figure[]> {
  const { config, notes } = bench;
  const figures: Figure[] = [];
  const dataDir = await Deno.makeTempDir({ prefix: "dfs-bench-many-" });
  try {
    let emptyRss = 0;
    const perFile = (rss: number, files: number) => [(rss - emptyRss) / files];
    const bytesPerFile = { unit: "B/file" };
    const names = await withServer({ ranks: config.ranks, dataDir }, async (server) => {
      emptyRss = await server.rssBytes();
      progress(`filling a store with ${config.listFiles} tiny files`);
      const fill = await fillStore(server, config);
      if (fill.files < config.listFiles) notes.push(incomplete(fill, config.listFiles));
      const { files, seconds } = fill;
      const rate = `put of ${files} tiny files, ${config.fillClients} clients`;
      const core = { unit: "% of a core" };
      figures.push(
        figureOf(rate, [files / seconds], { unit: "files/s" }),
        ...fillSliceFigures(fill),
        figureOf("tiny-file put, server CPU", [100 * fill.serverCpuSeconds / seconds], core),
        figureOf(
          "tiny-file put, bench (clients) CPU",
          [100 * fill.benchCpuSeconds / seconds],
          core,
        ),
      );
      // Memory is read idle only once meta and list are measured: a heap that V8 has just shrunk
      // grows back under load, which a latency measured right after would show.
      const afterPuts = await server.rssBytes();
      progress("meta");
      figures.push(...await metaFigures(server, config, files));
      progress("list");
      figures.push(await listFigure(server, { runs: config.runs, names: files }));
      figures.push(await peakMemory(server, `server peak resident memory, ${files} files`));
      const rss = "server resident memory above the empty server's";
      const idle = `idle ${SETTLE_MS / 1000} s`;
      figures.push(
        figureOf(`${rss}, after the puts`, perFile(afterPuts, files), bytesPerFile),
        figureOf(`${rss}, after the lists`, perFile(await server.rssBytes(), files), bytesPerFile),
        figureOf(
          `${rss}, after the lists, ${idle}`,
          perFile(await settledRss(server), files),
          bytesPerFile,
        ),
      );
      return files;
    });
    progress("start-up");
    const restartedRss: number[] = [];
    const restartedSettledRss: number[] = [];
    figures.push(
      await startFigure(config, { name: "start-up, empty store", dirOf: emptyDir }),
      await startFigure(config, {
        name: `start-up, ${names} files`,
        dirOf: () => dataDir,
        names,
        rss: restartedRss,
        settledRss: restartedSettledRss,
      }),
      figureOf(
        "server resident memory above the empty server's, after a restart",
        restartedRss.flatMap((rss) => perFile(rss, names)),
        bytesPerFile,
      ),
      figureOf(
        `server resident memory above the empty server's, after a restart, idle ${
          SETTLE_MS / 1000
        } s`,
        restartedSettledRss.flatMap((rss) => perFile(rss, names)),
        bytesPerFile,
      ),
      await bareStartFigure(config.runs),
    );
  } finally {
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
  return figures;
}

async function fillStore(server: TestServer, config: BenchConfig): Promise<PhaseResult> {
  const clients = await connectClients(server.address, config.fillClients);
  try {
    return await runPhase(clients, "put", {
      nameOf: manyName,
      files: config.listFiles,
      sizeBytes: TINY_FILE_SIZE_BYTES,
      serverPid: server.process.pid,
      timeoutMs: FILL_TIMEOUT_MS,
    });
  } finally {
    closeAll(clients);
  }
}

function manyName(i: number): string {
  return `many/d${i % 100}/f${i}`;
}

/**
 * The put rate of the fill's first and last `FILL_SLICE_FRACTION`: puts into a store nearly empty
 * against puts into one nearly full, and their ratio.
 */
function fillSliceFigures(fill: PhaseResult): Figure[] {
  const count = Math.max(1, Math.floor(FILL_SLICE_FRACTION * fill.doneAtMs.length));
  if (fill.doneAtMs.length === 0) return [];
  const first = sliceRate(fill.doneAtMs, { which: "first", count });
  const last = sliceRate(fill.doneAtMs, { which: "last", count });
  const files = fill.doneAtMs.length;
  const rate = { unit: "files/s" };
  return [
    figureOf(`tiny-file put, the fill's first ${count} (store of 0 to ${count})`, [first], rate),
    figureOf(
      `tiny-file put, the fill's last ${count} (store of ${files - count} to ${files})`,
      [last],
      rate,
    ),
    figureOf("tiny-file put, the fill's last / first of the same run", [100 * last / first], {
      unit: "%",
    }),
  ];
}

/**
 * `meta` latency in a store of `names` tiny files, set beside a store of `config.files` tiny
 * files (the small-file runs' size) measured in the same window the same way: both servers up,
 * `config.clients` clients connected to each once, one round on each to warm up (not counted),
 * then `config.runs` rounds of `META_LATENCY_SAMPLES` metas on each (`small` with `--quick`),
 * taking turns, over the names of the small store and as many spread over all of the large one.
 */
async function metaFigures(
  server: TestServer,
  config: BenchConfig,
  names: number,
): Promise<Figure[]> {
  const small = Math.min(config.files, names);
  return await withServer({ ranks: config.ranks }, async (reference) => {
    const filling = await connectClients(reference.address, config.fillClients);
    try {
      await runPhase(filling, "put", {
        nameOf: manyName,
        files: small,
        sizeBytes: TINY_FILE_SIZE_BYTES,
        serverPid: reference.process.pid,
      });
    } finally {
      closeAll(filling);
    }
    const stores = [
      { server: reference, names: small, key: "small" },
      { server, names, key: "large" },
    ];
    const clients = await Promise.all(
      stores.map((s) => connectClients(s.server.address, config.clients)),
    );
    try {
      const round = (i: number) => {
        const { server, names } = stores[i];
        const stride = Math.max(1, Math.floor(names / small));
        return runPhase(clients[i], "meta", {
          nameOf: (k) => manyName((k % small) * stride),
          files: config.quick ? small : META_LATENCY_SAMPLES,
          sizeBytes: TINY_FILE_SIZE_BYTES,
          serverPid: server.process.pid,
        });
      };
      for (let i = 0; i < stores.length; i++) await round(i); // warm-up, not counted
      const samples = await repeat(config.runs, async () => {
        const out: Record<string, number> = {};
        for (let i = 0; i < stores.length; i++) {
          const { latenciesMs } = await round(i);
          out[`${stores[i].key} p50`] = percentile(latenciesMs, 50);
          out[`${stores[i].key} p99`] = percentile(latenciesMs, 99);
        }
        out["p99 ratio"] = 100 * out["large p99"] / out["small p99"];
        return out;
      });
      const ms = { unit: "ms" };
      const of = (key: string) => samples.get(key)!;
      const where = (n: number) => `in a store of ${n} files, ${config.clients} clients`;
      return [
        figureOf(`meta latency p50, ${where(names)}`, of("large p50"), ms),
        figureOf(`meta latency p99, ${where(names)}`, of("large p99"), ms),
        figureOf(`meta latency p50, ${where(small)}, same window`, of("small p50"), ms),
        figureOf(`meta latency p99, ${where(small)}, same window`, of("small p99"), ms),
        figureOf(
          `meta latency p99, ${names} files / ${small} files of the same run`,
          of("p99 ratio"),
          { unit: "%" },
        ),
      ];
    } finally {
      for (const c of clients) closeAll(c);
    }
  });
}

/**
 * Seconds to list the whole store, which holds `names` names, a page at a time as `dfs list` does
 * (`listPages`): the client counts each page and lets it go.
 */
async function listFigure(
  server: TestServer,
  options: { runs: number; names: number },
): Promise<Figure> {
  const { runs, names } = options;
  const [client] = await connectClients(server.address, 1);
  const count = async () => {
    let listed = 0;
    for await (const page of client.listPages("")) listed += page.length;
    return listed;
  };
  try {
    const samples: number[] = [];
    for (let run = 0; run < runs; run++) {
      const { seconds, value } = await timed(() =>
        withTimeout(count(), { timeoutMs: LIST_TIMEOUT_MS, what: "list" })
      );
      if (value !== names) throw new Error(`list returned ${value} of ${names} names`);
      samples.push(seconds);
    }
    return figureOf(`list of ${names} names, a page at a time`, samples, { unit: "s" });
  } finally {
    client.close();
  }
}

/**
 * Seconds from spawning `dfs serve` to its `listening on` line, on the data directory `dirOf`
 * gives for each run (stopped with SIGTERM after each). With `names`, the directory is the many
 * files' store (kept), and the first and last of its files are checked after the start; without,
 * each run's directory is removed.
 */
async function startFigure(
  config: BenchConfig,
  options: {
    name: string;
    dirOf: () => string | Promise<string>;
    names?: number;
    /** Receives the server's resident memory once started, per run. */
    rss?: number[];
    /** Receives it once more after the last run's server was idle `SETTLE_MS`. */
    settledRss?: number[];
  },
): Promise<Figure> {
  const { name, dirOf, names } = options;
  const samples: number[] = [];
  for (let run = 0; run < config.runs; run++) {
    const dataDir = await dirOf();
    const started = performance.now();
    try {
      await withServer({ ranks: config.ranks, dataDir }, async (server) => {
        samples.push((performance.now() - started) / 1000);
        if (names !== undefined && names > 0) {
          await checkFiles(server, [0, names - 1].map(manyName));
        }
        options.rss?.push(await server.rssBytes());
        if (run === config.runs - 1) options.settledRss?.push(await settledRss(server));
      });
    } finally {
      if (names === undefined) await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  }
  return figureOf(name, samples, { unit: "s" });
}

/** The server's resident memory once it has been idle `SETTLE_MS`. */
async function settledRss(server: TestServer): Promise<number> {
  await sleep(SETTLE_MS);
  return await server.rssBytes();
}

function emptyDir(): Promise<string> {
  return Deno.makeTempDir({ prefix: "dfs-bench-empty-" });
}

async function checkFiles(server: TestServer, names: string[]): Promise<void> {
  const [client] = await connectClients(server.address, 1);
  try {
    for (const name of names) await client.meta(name);
  } finally {
    client.close();
  }
}

/** Seconds for `deno` to start, print a line and exit: the floor under any start-up. */
async function bareStartFigure(runs: number): Promise<Figure> {
  const samples: number[] = [];
  for (let run = 0; run < runs; run++) {
    const { seconds, value: out } = await timed(() =>
      new Deno.Command(DENO, {
        args: ["eval", "--quiet", "console.log('listening on')"],
        stdout: "null",
        stderr: "null",
        signal: AbortSignal.timeout(BARE_START_TIMEOUT_MS),
      }).output()
    );
    if (!out.success) throw new Error("deno eval failed");
    samples.push(seconds);
  }
  return figureOf("bare start-up limit (deno prints a line)", samples, { unit: "s" });
}

function closeAll(clients: readonly DfsClient[]): void {
  for (const client of clients) client.close();
}
