/**
 * The benchmark's command line: `deno task bench [--scaling] [--quick] [--json] [--runs N] ...`.
 *
 * @module
 */

import { parseArgs } from "node:util";

const MiB = 1024 * 1024;
/** Most runs of each measurement. */
export const RUNS_MAX = 100;
/** Largest file the benchmark moves, in MiB. */
export const SIZE_MIB_MAX = 64 * 1024;
/** Most small files of one measurement. */
export const FILES_MAX = 10_000_000;
/** Most clients one measurement opens. */
export const CLIENTS_MAX = 256;
/** Most ranks a server may have (`RANKS_MAX` of the server). */
export const BENCH_RANKS_MAX = 64;
/** Most node hosts of one `--multi-host` setup (each a namespace and a `dfs node` process). */
export const MULTI_HOST_NODES_MAX = 32;

export interface BenchConfig {
  /** `--scaling`: the scaling suite instead of the default one. */
  scaling: boolean;
  /** Compare Worker data nodes with `dfs node` processes over TCP (`_remote.ts`). */
  remoteNodes: boolean;
  /** Aggregate throughput across namespace hosts with 1 Gbit/s links (`_multi_host.ts`). */
  multiHost: boolean;
  /** The S3 gateway beside the CBOR protocol on one server (`_s3.ts`). */
  s3: boolean;
  quick: boolean;
  json: boolean;
  runs: number;
  ranks: number;
  /** Large file of the default suite. */
  sizeBytes: number;
  /** Small files per run and the clients that share them. */
  files: number;
  clients: number;
  /** Names in the store that `list` and the start-up are measured on, and the clients that put them. */
  listFiles: number;
  fillClients: number;
  /** Large file of the scaling suite (split over the clients when there are several). */
  scalingSizeBytes: number;
  scalingRanks: number[];
  scalingClients: number[];
  /** Node hosts of each `--multi-host` setup. */
  hosts: number[];
  /** `--multi-host` with nodes that have no data port: every read goes through rank 0. */
  throughRank0: boolean;
}

export const USAGE =
  `deno task bench [--scaling | --remote-nodes | --multi-host | --s3] [--quick] [--json] [--runs N]
       [--ranks N] [--size-mib N] [--files N] [--clients N] [--list-files N] [--fill-clients N]
       [--scaling-size-mib N] [--scaling-ranks 2,4,8,16] [--scaling-clients 1,4,16,64]
       [--hosts 2,4,8] [--through-rank0]`;

/** What every measurement gets: the configuration, and notes for the reader of the figures. */
export interface BenchContext {
  config: BenchConfig;
  notes: string[];
}

/**
 * Parses the benchmark's arguments. `--quick` lowers every default (1 run, small sizes) for a
 * smoke run; options given explicitly win over it. With `--multi-host`, `--size-mib` is what each
 * phase moves in all, split over the clients, and `--clients` defaults to 8.
 *
 * @throws {RangeError} for a value that is not a whole number within its limit.
 */
export function parseConfig(args: string[]): BenchConfig {
  const { values } = parseArgs({
    args,
    options: {
      scaling: { type: "boolean", default: false },
      "remote-nodes": { type: "boolean", default: false },
      "multi-host": { type: "boolean", default: false },
      s3: { type: "boolean", default: false },
      quick: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      runs: { type: "string" },
      ranks: { type: "string" },
      "size-mib": { type: "string" },
      files: { type: "string" },
      clients: { type: "string" },
      "list-files": { type: "string" },
      "fill-clients": { type: "string" },
      "scaling-size-mib": { type: "string" },
      "scaling-ranks": { type: "string" },
      "scaling-clients": { type: "string" },
      hosts: { type: "string" },
      "through-rank0": { type: "boolean", default: false },
    },
  });
  const quick = values.quick;
  const multiHost = values["multi-host"];
  if ([values.scaling, values["remote-nodes"], multiHost, values.s3].filter(Boolean).length > 1) {
    throw new RangeError(
      "--scaling, --remote-nodes, --multi-host and --s3 each run a suite of their own",
    );
  }
  const int = (name: keyof typeof values, normal: number, fast: number, max: number) =>
    wholeNumber(name, values[name] as string | undefined, { fallback: quick ? fast : normal, max });
  const list = (name: keyof typeof values, normal: string, max: number) =>
    ((values[name] as string | undefined) ?? normal).split(",").map((v) =>
      wholeNumber(name, v, { fallback: 0, max })
    );
  return {
    scaling: values.scaling,
    remoteNodes: values["remote-nodes"],
    multiHost,
    s3: values.s3,
    quick,
    json: values.json,
    runs: int("runs", 3, 1, RUNS_MAX),
    ranks: int("ranks", 4, 4, BENCH_RANKS_MAX),
    sizeBytes: int("size-mib", 1024, 64, SIZE_MIB_MAX) * MiB,
    files: int("files", 10_000, 1_000, FILES_MAX),
    clients: int("clients", multiHost ? 8 : 16, multiHost ? 8 : 16, CLIENTS_MAX),
    listFiles: int("list-files", 100_000, 5_000, FILES_MAX),
    fillClients: int("fill-clients", 64, 64, CLIENTS_MAX),
    scalingSizeBytes: int("scaling-size-mib", 256, 32, SIZE_MIB_MAX) * MiB,
    scalingRanks: list("scaling-ranks", "2,4,8,16", BENCH_RANKS_MAX),
    scalingClients: list("scaling-clients", "1,4,16,64", CLIENTS_MAX),
    hosts: list("hosts", "2,4,8", MULTI_HOST_NODES_MAX),
    throughRank0: values["through-rank0"],
  };
}

function wholeNumber(
  name: string,
  text: string | undefined,
  options: { fallback: number; max: number },
): number {
  const { fallback, max } = options;
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new RangeError(`--${name} must be a whole number from 1 to ${max}, got "${text}"`);
  }
  return value;
}
