/**
 * The scaling suite (`--scaling`): large-file put/get throughput and the 4 KiB put and get rates as the
 * number of ranks grows (one client for the large file, `--clients` for the small ones), then as
 * the number of concurrent clients grows on `--ranks` ranks (the large file's bytes split evenly
 * over the clients). Every setup gets a fresh server and store.
 *
 * @module
 */

import type { TestServer } from "../tests/_server.ts";
import type { BenchContext } from "./_config.ts";
import { getConcurrently, putConcurrently, settled } from "./_large_file.ts";
import { connectClients, runPhase } from "./_small_files.ts";
import { type Figure, figureOf, percentile } from "./_stats.ts";
import { progress } from "./_timing.ts";
import { withServer } from "./_with_server.ts";

const MiB = 1024 * 1024;
/**
 * Longest one run of small-file puts may take in this suite; the rate is then over the files done
 * (with one client, each put waits ~40 ms on TCP's delayed ACK, and 10,000 would take minutes).
 */
export const SCALING_PHASE_TIMEOUT_MS = 30_000;
/** Replicas of every chunk, as in the default suite; fewer when there are fewer data nodes. */
const REPLICAS = 2;

interface Setup {
  label: string;
  ranks: number;
  replicas: number;
  largeClients: number;
  smallClients: number;
}

/** Runs the scaling suite; figures are named `SETUP: MEASUREMENT`. */
export async function runScaling(bench: BenchContext): Promise<Figure[]> {
  const { config } = bench;
  const setups: Setup[] = [];
  for (const ranks of config.scalingRanks) {
    const replicas = Math.min(REPLICAS, ranks - 1);
    const label = `${ranks} ranks${replicas < REPLICAS ? ` (${replicas} replica)` : ""}, ` +
      `1/${config.clients} clients`;
    setups.push({ label, ranks, replicas, largeClients: 1, smallClients: config.clients });
  }
  for (const clients of config.scalingClients) {
    const label = `${config.ranks} ranks, ${clients} clients`;
    setups.push({
      label,
      ranks: config.ranks,
      replicas: REPLICAS,
      largeClients: clients,
      smallClients: clients,
    });
  }
  const figures: Figure[] = [];
  for (const setup of setups) {
    progress(setup.label);
    const options = { ranks: setup.ranks, replicas: setup.replicas };
    figures.push(...await withServer(options, (server) => measure(server, { setup, bench })));
  }
  return figures;
}

/** Runs the measurements of one setup `runs` times on its server. */
async function measure(
  server: TestServer,
  options: { setup: Setup; bench: BenchContext },
): Promise<Figure[]> {
  const { setup, bench: { config, notes } } = options;
  const large = await connectClients(server.address, setup.largeClients);
  const small = await connectClients(server.address, setup.smallClients);
  // The large file's bytes are split over the clients, in whole MiB.
  const eachBytes = Math.max(1, Math.floor(config.scalingSizeBytes / MiB / setup.largeClients)) *
    MiB;
  const put: number[] = [];
  const get: number[] = [];
  const rate: number[] = [];
  const p99: number[] = [];
  const getRate: number[] = [];
  const done: number[] = [];
  try {
    for (let run = 0; run < config.runs; run++) {
      const files = { prefix: `scale/r${run}/c`, sizeBytes: eachBytes };
      put.push(await settled(() => putConcurrently(large, files)));
      get.push(await settled(() => getConcurrently(large, files)));
      const nameOf = (i: number) => `small/r${run}/d${i % 100}/f${i}`;
      const phase = { nameOf, serverPid: server.process.pid, timeoutMs: SCALING_PHASE_TIMEOUT_MS };
      const result = await runPhase(small, "put", { ...phase, files: config.files });
      done.push(result.files);
      rate.push(result.files / result.seconds);
      p99.push(percentile(result.latenciesMs, 99));
      const got = await runPhase(small, "get", { ...phase, files: result.files });
      getRate.push(got.files / got.seconds);
    }
  } finally {
    for (const client of [...large, ...small]) client.close();
  }
  if (done.some((files) => files < config.files)) {
    notes.push(
      `${setup.label}: small files put within ${SCALING_PHASE_TIMEOUT_MS / 1000} s, ` +
        `run by run: ${done.join(", ")} of ${config.files}`,
    );
  }
  const peak = await server.peakRssBytes() / MiB;
  return [
    figureOf(`${setup.label}: put`, put, { unit: "MB/s" }),
    figureOf(`${setup.label}: get`, get, { unit: "MB/s" }),
    figureOf(`${setup.label}: 4 KiB put`, rate, { unit: "files/s" }),
    figureOf(`${setup.label}: 4 KiB put p99`, p99, { unit: "ms" }),
    figureOf(`${setup.label}: 4 KiB get`, getRate, { unit: "files/s" }),
    figureOf(`${setup.label}: server peak RSS`, [peak], { unit: "MiB" }),
  ];
}
