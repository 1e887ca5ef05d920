/**
 * Starts the ranks: one data node per rank 1..N-1, each on its own folder under the data
 * directory, launched through a `Launcher` (Web Workers by default) and connected to rank 0 (this
 * thread) through a `PortTransport`; then runs start-up recovery and supervises the nodes. The data
 * directory is locked so that two servers never share it.
 *
 * @module
 */

import { join } from "node:path";
import { DfsError } from "../../protocol/errors.ts";
import { Comm } from "../comm/comm.ts";
import { PortTransport } from "../comm/port_transport.ts";
import { checkReplicas } from "../common/replication.ts";
import { denoEnv } from "../env/deno_env.ts";
import type { Env } from "../env/env.ts";
import { checkRankFolders, openDataDir } from "../node/mod.ts";
import { type Launcher, type PortRank, WorkerLauncher } from "./launch.ts";
import type { RecoveryPlan } from "./plans.ts";
import { DfsStore } from "./store.ts";
import { awaitReady, REREPLICATE_AFTER_MS, Supervisor } from "./supervisor.ts";

/** Most ranks one server runs. */
export const RANKS_MAX = 64;

export interface ClusterOptions {
  /** Total ranks, rank 0 included (`mpiexec -n`). */
  ranks: number;
  replicas: number;
  dataDir: string;
  /** How data node ranks are started (default: Web Workers). */
  launcher?: Launcher;
  /** Clock, randomness and log of rank 0 (default: Deno's). */
  env?: Env;
  /** A data node down this long has its replicas copied to live nodes (default below). */
  rereplicateAfterMs?: number;
}

export interface Cluster {
  readonly store: DfsStore;
  readonly comm: Comm;
  readonly recovery: RecoveryPlan;
  close(): Promise<void>;
}

/**
 * Starts `ranks - 1` data nodes on `dataDir` and recovers the store. While it runs, a data node
 * that crashes or stops answering is marked down, restarted on its folder and reconciled.
 *
 * @throws {DfsError} `INVALID_REQUEST` for impossible options or a data directory written with more
 *   ranks; `UNAVAILABLE` if another server holds the directory or a node cannot start.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const { ranks, replicas, dataDir } = options;
  const env = options.env ?? denoEnv();
  const launcher = options.launcher ?? new WorkerLauncher();
  checkOptions(ranks, replicas);
  const lock = await openDataDir(dataDir, env);
  const launched = new Map<number, PortRank>();
  let comm: Comm | undefined;
  let store: DfsStore | undefined;
  let supervisor: Supervisor | undefined;
  /** The device each rank's folder was on at start: a restarted rank must find it there. */
  const devices = new Map<number, number>();
  const init = (rank: number, create = true) => ({
    rank,
    size: ranks,
    dir: join(dataDir, `rank-${rank}`),
    create,
    device: create ? undefined : devices.get(rank),
  });
  const stop = () => {
    supervisor?.close();
    store?.close();
    comm?.close();
    for (const rank of launched.values()) rank.terminate();
    lock.close();
  };
  try {
    await checkRankFolders(dataDir, ranks, env);
    for (let rank = 1; rank < ranks; rank++) launched.set(rank, launcher.launch(init(rank)));
    const ports = new Map([...launched].map(([rank, l]) => [rank, l.port]));
    const transport = new PortTransport(0, ranks, ports);
    comm = new Comm(transport, {
      clock: env.clock,
      log: env.log,
      onPeerError: (rank, error) => supervisor?.lost(rank, String(error)),
    });
    for (let rank = 1; rank < ranks; rank++) await awaitReady(comm, rank);
    for (let rank = 1; rank < ranks; rank++) {
      devices.set(rank, env.fs.statSync(init(rank).dir).dev);
    }
    store = new DfsStore(comm, { dataRanks: [...launched.keys()], replicas, env });
    const recovery = await store.recover();
    const relaunch = (rank: number) => {
      const started = launcher.launch(init(rank, false));
      transport.setPort(rank, started.port);
      return started;
    };
    supervisor = new Supervisor({
      comm,
      store,
      relaunch,
      ranks: launched,
      rereplicateAfterMs: options.rereplicateAfterMs ?? REREPLICATE_AFTER_MS,
      clock: env.clock,
      log: env.log,
    });
    return {
      store,
      comm,
      recovery,
      close() {
        // Every acknowledged write is already durable: the nodes can simply stop.
        stop();
        return Promise.resolve();
      },
    };
  } catch (error) {
    stop();
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
  checkReplicas(replicas, ranks - 1, { ranks });
}
