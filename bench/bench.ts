/**
 * `deno task bench`: starts a real 4-rank server in a temp folder and measures 1 GiB put and get
 * through the client library and through the CLI, each the median of `--runs` runs (min and max
 * shown), and the server's peak resident memory. `--json` prints the results as JSON.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { DfsClient } from "../client.ts";
import { bareGet, barePut } from "./bare.ts";
import { DENO, pseudoRandomBytes, ROOT, TestServer } from "../tests/_server.ts";

const MiB = 1024 * 1024;
const { values } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "3" },
    "size-mib": { type: "string", default: "1024" },
    ranks: { type: "string", default: "4" },
    json: { type: "boolean", default: false },
  },
});
const RUNS = Number(values.runs);
const SIZE = Number(values["size-mib"]) * MiB;

interface Figure {
  name: string;
  unit: string;
  median: number;
  min: number;
  max: number;
}

function figure(name: string, unit: string, samples: number[]): Figure {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    name,
    unit,
    median: sorted[Math.floor(sorted.length / 2)],
    min: sorted[0],
    max: sorted.at(-1)!,
  };
}

/** A stream of `size` bytes made from a few random blocks, each MiB stamped with its offset. */
function source(size: number): ReadableStream<Uint8Array> {
  const blocks = Array.from({ length: 8 }, (_, i) => pseudoRandomBytes(MiB, i + 1));
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= size) return controller.close();
      const block = blocks[(sent / MiB) % blocks.length].slice(0, Math.min(MiB, size - sent));
      new DataView(block.buffer).setFloat64(0, sent);
      controller.enqueue(block);
      sent += block.length;
    },
  }, { highWaterMark: 0 });
}

async function sourceFile(path: string): Promise<void> {
  await source(SIZE).pipeTo((await Deno.create(path)).writable);
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await work();
  return (performance.now() - start) / 1000;
}

const mbps = (seconds: number) => SIZE / 1e6 / seconds;

await using server = await TestServer.start({ ranks: Number(values.ranks) });
const figures: Figure[] = [];
{
  await using client = await DfsClient.connect(server.address);
  const put: number[] = [];
  const get: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    put.push(mbps(await timed(() => client.put("bench/lib.bin", source(SIZE)))));
    get.push(mbps(
      await timed(async () => {
        const hash = createHash("sha256");
        for await (const piece of await client.get("bench/lib.bin")) hash.update(piece);
      }),
    ));
  }
  figures.push(figure("put, client library", "MB/s", put));
  figures.push(figure("get, client library", "MB/s", get));
}
{
  const dir = await Deno.makeTempDir({ prefix: "dfs-bench-" });
  try {
    const local = `${dir}/file.bin`;
    await sourceFile(local);
    const cli = async (...args: string[]) => {
      const out = await new Deno.Command(DENO, {
        args: ["run", "-A", "--quiet", `${ROOT}main.ts`, ...args, "--server", server.address],
        stdout: "null",
        stderr: "piped",
      }).output();
      if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
    };
    const put: number[] = [];
    const get: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      put.push(mbps(await timed(() => cli("put", local, "bench/cli.bin"))));
      get.push(mbps(await timed(() => cli("get", "bench/cli.bin", `${dir}/back.bin`))));
    }
    figures.push(figure("put, CLI (file to server)", "MB/s", put));
    figures.push(figure("get, CLI (server to file)", "MB/s", get));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
{
  // The machine's own limits in the same run: plain TCP into two fsynced files (put), and a file
  // read and sent over TCP into one file (get).
  const dir = await Deno.makeTempDir({ prefix: "dfs-bare-" });
  try {
    const source = `${dir}/source.bin`;
    await sourceFile(source);
    const put: number[] = [];
    const get: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      put.push(await barePut(SIZE, dir));
      get.push(await bareGet(SIZE, source, dir));
    }
    figures.push(figure("bare put limit (TCP into 2 fsynced files)", "MB/s", put));
    figures.push(figure("bare get limit (file, TCP, 1 file)", "MB/s", get));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
const peak = await server.peakRssBytes() / MiB;
figures.push({
  name: "server peak resident memory",
  unit: "MiB",
  median: peak,
  min: peak,
  max: peak,
});

if (values.json) {
  console.log(
    JSON.stringify({ sizeBytes: SIZE, runs: RUNS, ranks: Number(values.ranks), figures }, null, 2),
  );
} else {
  console.log(
    `dfs bench: ${SIZE / MiB} MiB file, ${values.ranks} ranks, 2 replicas, ${RUNS} runs each`,
  );
  console.log("| what | median | min | max |\n| --- | --- | --- | --- |");
  for (const f of figures) {
    const n = (x: number) => x.toFixed(0);
    console.log(`| ${f.name} (${f.unit}) | ${n(f.median)} | ${n(f.min)} | ${n(f.max)} |`);
  }
  const median = (name: string) => figures.find((f) => f.name.startsWith(name))!.median;
  const ratio = (a: string, b: string) => `${(100 * median(a) / median(b)).toFixed(0)}%`;
  console.log(
    `\nput / bare put limit: ${ratio("put, client", "bare put")} (library), ` +
      `${ratio("put, CLI", "bare put")} (CLI)`,
  );
  console.log(
    `get / bare get limit: ${ratio("get, client", "bare get")} (library), ` +
      `${ratio("get, CLI", "bare get")} (CLI)`,
  );
}
