/**
 * Starts the ranks: one Web Worker per data node, each with its own folder under the data
 * directory, connected to rank 0 (this thread) through a `PortTransport`; then runs start-up
 * recovery. The data directory is locked so that two servers never share it.
 *
 * @module
 */

import { join } from "node:path";
import { DfsError } from "../protocol/errors.ts";
import { Comm } from "./comm.ts";
import { Coordinator } from "./coordinator.ts";
import type { RecoveryPlan } from "./metadata.ts";
import { type NodeInit, READY_TAG } from "./node_protocol.ts";
import { PortTransport } from "./port_transport.ts";

/** How long a data node may take to open its storage. */
export const NODE_START_TIMEOUT_MS = 60_000;
/** How long to wait for the data directory's lock before saying another server holds it. */
export const LOCK_TIMEOUT_MS = 1_000;
/** Most ranks one server runs. */
export const RANKS_MAX = 64;

export interface ClusterOptions {
  /** Total ranks, rank 0 included (`mpiexec -n`). */
  ranks: number;
  replicas: number;
  dataDir: string;
}

export interface Cluster {
  readonly coordinator: Coordinator;
  readonly comm: Comm;
  readonly recovery: RecoveryPlan;
  close(): Promise<void>;
}

/**
 * Starts `ranks - 1` data node Workers on `dataDir` and recovers the store.
 *
 * @throws {DfsError} `INVALID_REQUEST` for impossible options or a data directory written with more
 *   ranks; `UNAVAILABLE` if another server holds the directory or a node cannot start.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const { ranks, replicas, dataDir } = options;
  checkOptions(ranks, replicas);
  await Deno.mkdir(dataDir, { recursive: true });
  const lock = await lockDataDir(dataDir);
  const workers: Worker[] = [];
  let comm: Comm | undefined;
  try {
    await checkRankFolders(dataDir, ranks);
    const ports = new Map<number, Worker>();
    for (let rank = 1; rank < ranks; rank++) {
      const worker = new Worker(new URL("./data_worker.ts", import.meta.url).href, {
        type: "module",
        name: `rank-${rank}`,
      });
      workers.push(worker);
      ports.set(rank, worker);
    }
    comm = new Comm(new PortTransport(0, ranks, ports));
    for (const [rank, worker] of ports) {
      const init: NodeInit = { init: { rank, size: ranks, dir: join(dataDir, `rank-${rank}`) } };
      worker.postMessage(init);
    }
    for (let rank = 1; rank < ranks; rank++) {
      const { body } = await comm.recv<{ ok?: true; detail?: string }>(rank, READY_TAG, {
        timeoutMs: NODE_START_TIMEOUT_MS,
      });
      if (!body.ok) throw new DfsError("UNAVAILABLE", `Rank ${rank} cannot start: ${body.detail}`);
    }
    const dataRanks = [...ports.keys()];
    const coordinator = new Coordinator(comm, { dataRanks, replicas });
    const recovery = await coordinator.recover();
    const c = comm;
    return {
      coordinator,
      comm: c,
      recovery,
      close() {
        // Every acknowledged write is already durable: the Workers can simply stop.
        c.close();
        for (const worker of workers) worker.terminate();
        lock.close();
        return Promise.resolve();
      },
    };
  } catch (error) {
    comm?.close();
    for (const worker of workers) worker.terminate();
    lock.close();
    throw error;
  }
}

function checkOptions(ranks: number, replicas: number): void {
  if (!Number.isInteger(ranks) || ranks < 2 || ranks > RANKS_MAX) {
    throw new DfsError(
      "INVALID_REQUEST",
      `--ranks must be an integer from 2 to ${RANKS_MAX}, got ${ranks}`,
    );
  }
  if (!Number.isInteger(replicas) || replicas < 1) {
    throw new DfsError("INVALID_REQUEST", `--replicas must be a positive integer, got ${replicas}`);
  }
  if (ranks - 1 < replicas) {
    throw new DfsError(
      "INVALID_REQUEST",
      `--replicas ${replicas} needs at least ${replicas} data nodes, but --ranks ${ranks} gives ${
        ranks - 1
      }`,
    );
  }
}

/** Takes an exclusive lock on `DIR/LOCK` so two servers never share a data directory. */
async function lockDataDir(dataDir: string): Promise<Deno.FsFile> {
  const file = await Deno.open(join(dataDir, "LOCK"), { create: true, write: true });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new DfsError("UNAVAILABLE", `Data directory ${dataDir} is in use by another dfs server`),
        ),
      LOCK_TIMEOUT_MS,
    );
  });
  try {
    await Promise.race([file.lock(true), timeout]);
    return file;
  } catch (error) {
    file.close();
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** Refuses to start with fewer ranks than the data directory holds: their files would vanish. */
async function checkRankFolders(dataDir: string, ranks: number): Promise<void> {
  for await (const entry of Deno.readDir(dataDir)) {
    const match = /^rank-(\d+)$/.exec(entry.name);
    if (match && Number(match[1]) >= ranks) {
      throw new DfsError(
        "INVALID_REQUEST",
        `Data directory ${dataDir} holds ${entry.name}: start with --ranks ${
          Number(match[1]) + 1
        } or more`,
      );
    }
  }
}
