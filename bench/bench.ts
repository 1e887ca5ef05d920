/**
 * `deno task bench`: starts real `dfs serve` processes (4 ranks, 2 replicas) in temp folders on
 * 127.0.0.1 and prints a table of figures, each the median of `--runs` runs with min and max:
 * - a large file (1 GiB) put and got through the client library and through the CLI, the machine's
 *   bare limits measured in the same run, and the server's peak resident memory;
 * - 10,000 files of 4 KiB put, then got, then their metadata asked, by 16 concurrent clients:
 *   files/s, p50/p99 latency, CPU of the server and of the clients;
 * - `list` of 100,000 names, and the start-up time on an empty store and on those 100,000 files.
 *
 * `--scaling` runs the scaling suite instead (ranks 2 to 16, clients 1 to 64; see `_scaling.ts`);
 * `--remote-nodes` compares Worker data nodes with `dfs node` processes over TCP (`_remote.ts`).
 * `--json` prints the results as JSON; `--quick` is a short smoke run (1 run, small sizes).
 * Progress goes to stderr.
 *
 * @module
 */

import { type BenchConfig, parseConfig, USAGE } from "./_config.ts";
import { runDefault } from "./_default.ts";
import { figureTable, gridTable } from "./_report.ts";
import { runRemote } from "./_remote.ts";
import { runScaling } from "./_scaling.ts";
import type { Figure } from "./_stats.ts";
import { progress } from "./_timing.ts";

const MiB = 1024 * 1024;

let config: BenchConfig;
try {
  config = parseConfig(Deno.args);
} catch (error) {
  console.error(`bench: ${(error as Error).message}\nusage: ${USAGE}`);
  Deno.exit(2);
}

const notes: string[] = [];
const suite = config.scaling ? "scaling" : config.remoteNodes ? "remote-nodes" : "default";
progress(`${suite} suite, ${config.runs} run(s) each`);
const bench = { config, notes };
const figures = config.scaling
  ? await runScaling(bench)
  : config.remoteNodes
  ? await runRemote(bench)
  : await runDefault(bench);
const ratios = suite === "default" ? ratiosOf(figures, config) : {};

if (config.json) {
  console.log(JSON.stringify({ mode: suite, config, figures, ratios, notes }, null, 2));
} else {
  console.log(heading(config));
  console.log(config.scaling ? gridTable(figures) : figureTable(figures));
  for (const [what, ratio] of Object.entries(ratios)) {
    console.log(`${what}: ${ratio >= 2 ? `${ratio.toFixed(1)}x` : `${(100 * ratio).toFixed(0)}%`}`);
  }
  for (const note of notes) console.log(`note: ${note}`);
}

function heading(c: BenchConfig): string {
  const runs = `median of ${c.runs} run${c.runs === 1 ? "" : "s"} (min-max)`;
  if (c.remoteNodes) {
    return `dfs bench --remote-nodes: ${c.ranks - 1} data nodes as Workers, then as dfs node ` +
      `processes over TCP on 127.0.0.1, 2 replicas, turn by turn in each run; ` +
      `${c.sizeBytes / MiB} MiB file; ${c.files} files of 4 KiB; ${runs}\n`;
  }
  if (c.scaling) {
    const size = c.scalingSizeBytes / MiB;
    return `dfs bench --scaling: ${size} MiB put/get (split over the clients), ${c.files} files ` +
      `of 4 KiB put then got; "1/${c.clients} clients" means 1 client for the large file and ` +
      `${c.clients} for the small ones; 2 replicas unless noted; ${runs}\n`;
  }
  return `dfs bench: ${c.ranks} ranks, 2 replicas; ${c.sizeBytes / MiB} MiB file; ${c.files} ` +
    `files of 4 KiB; list and start-up on ${c.listFiles} tiny files; ${runs}\n`;
}

/**
 * Our figures over the machine's bare limits measured in the same run (medians); the large file's
 * are figures of their own, paired run by run.
 */
function ratiosOf(all: readonly Figure[], c: BenchConfig): Record<string, number> {
  const median = (prefix: string) => all.find((f) => f.name.startsWith(prefix))?.median;
  const ratios: Record<string, number> = {};
  const add = (what: string, ours: string, bare: string) => {
    const [a, b] = [median(ours), median(bare)];
    if (a !== undefined && b !== undefined) ratios[what] = a / b;
  };
  add("4 KiB put / bare 4 KiB put limit", `4 KiB put, ${c.clients} clients`, "bare 4 KiB put");
  add("start-up, empty store / bare start-up limit", "start-up, empty", "bare start-up");
  return ratios;
}
