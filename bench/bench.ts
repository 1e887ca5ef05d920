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
 * `--remote-nodes` compares Worker data nodes with `dfs node` processes over TCP (`_remote.ts`);
 * `--s3` sets the S3 gateway beside the CBOR protocol (`_s3.ts`, with the lean S3 client of
 * `_s3_client.ts`);
 * `--multi-host` measures aggregate throughput with 2, 4 and 8 node hosts in network namespaces,
 * each node host's link limited to 1 Gbit/s (`_multi_host.ts`; needs root and `tc`, else skipped).
 * `--json` prints the results as JSON; `--quick` is a short smoke run (1 run, small sizes).
 * Progress goes to stderr.
 *
 * @module
 */

import { type BenchConfig, parseConfig, USAGE } from "./_config.ts";
import { runDefault } from "./_default.ts";
import {
  CLIENT_HOSTS_MAX,
  NODE_HOST_LIMIT_MB_PER_S,
  NODE_HOST_RATE_MBIT,
  runMultiHost,
} from "./_multi_host.ts";
import { figureTable, gridTable } from "./_report.ts";
import { runRemote } from "./_remote.ts";
import { MULTIPART_PART_BYTES, PARTS_IN_FLIGHT, runS3 } from "./_s3.ts";
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
const suite = config.scaling
  ? "scaling"
  : config.remoteNodes
  ? "remote-nodes"
  : config.multiHost
  ? "multi-host"
  : config.s3
  ? "s3"
  : "default";
progress(`${suite} suite, ${config.runs} run(s) each`);
const bench = { config, notes };
const figures = config.scaling
  ? await runScaling(bench)
  : config.remoteNodes
  ? await runRemote(bench)
  : config.multiHost
  ? await runMultiHost(bench)
  : config.s3
  ? await runS3(bench)
  : await runDefault(bench);
const ratios = suite === "default" ? ratiosOf(figures, config) : {};

if (config.json) {
  console.log(JSON.stringify({ mode: suite, config, figures, ratios, notes }, null, 2));
} else {
  console.log(heading(config));
  if (figures.length > 0) {
    console.log(config.scaling || config.multiHost ? gridTable(figures) : figureTable(figures));
  }
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
  if (c.s3) {
    return `dfs bench --s3: one server (${c.ranks} ranks, 2 replicas) with its S3 gateway; each ` +
      `run puts and gets a ${c.sizeBytes / MiB} MiB object and ${c.files} objects of 4 KiB with ` +
      `${c.clients} clients, through the CBOR protocol then through S3. The S3 client is the ` +
      `bench's own (bench/_s3_client.ts: HTTP/1.1 on Deno.connect, kept alive, one connection ` +
      `per client, every request signed with SigV4, UNSIGNED-PAYLOAD); the large object goes up ` +
      `as a multipart upload (parts of ${MULTIPART_PART_BYTES / MiB} MiB, ${PARTS_IN_FLIGHT} at ` +
      `once, a connection each) and comes back in one GET; CPU in % of one core (this machine ` +
      `has ${navigator.hardwareConcurrency}); ${runs}\n`;
  }
  if (c.multiHost) {
    return `dfs bench --multi-host: rank 0, ${c.hosts.join(", ")} node hosts (a dfs node process ` +
      `each, a zone each) and ${c.clients} client connections in ` +
      `${Math.min(CLIENT_HOSTS_MAX, c.clients)} client hosts, each host a network namespace on ` +
      `one bridge; every node host's link limited to ${NODE_HOST_RATE_MBIT} Mbit/s ` +
      `(${NODE_HOST_LIMIT_MB_PER_S} MB/s) each way with tc, rank 0's and the clients' not ` +
      `limited; 2 replicas; ${c.sizeBytes / MiB} MiB put then got per phase, split over the ` +
      `clients; ideal = N x ${NODE_HOST_LIMIT_MB_PER_S} MB/s for a get, half that for a put ` +
      `(each byte crosses two node links); CPU over the phase, in % of one core (machine CPU: ` +
      `every core busy, kernel included; this machine has ${navigator.hardwareConcurrency}); ` +
      `${runs}\n`;
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
