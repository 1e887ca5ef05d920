/**
 * Starts the ranks: one Web Worker per data node, each with its own folder under the data
 * directory, connected to rank 0 (this thread) through a `PortTransport`; then runs start-up
 * recovery. The data directory is locked so that two servers never share it.
 *
 * @module
 */

import { join } from "node:path";
import { DfsError } from "../../protocol/errors.ts";
import { syncDirectory, writeAll } from "../node/_fs.ts";
import { Comm } from "../comm/comm.ts";
import { Coordinator, POOL_BUFFERS_KEPT_IDLE, POOL_IDLE_TRIM_MS } from "./coordinator.ts";
import type { RecoveryPlan } from "./plans.ts";
import { type NodeInit, READY_TAG } from "../common/node_protocol.ts";
import { PortTransport } from "../comm/port_transport.ts";

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
  /** Lets clients crash or hang a data node (`--test-hooks`; tests only). */
  testHooks?: boolean;
  /** A data node down this long has its replicas copied to live nodes (default below). */
  rereplicateAfterMs?: number;
}

export interface Cluster {
  readonly coordinator: Coordinator;
  readonly comm: Comm;
  readonly recovery: RecoveryPlan;
  close(): Promise<void>;
}

/** How often rank 0 checks that every data node answers. */
export const HEARTBEAT_INTERVAL_MS = 1_000;
/** A data node that does not answer a heartbeat within this time is taken for hung. */
export const HEARTBEAT_TIMEOUT_MS = 5_000;
/** A data node down this long (its restarts failing) has its replicas copied to live nodes. */
export const REREPLICATE_AFTER_MS = 60_000;
/** Wait between two attempts to restart a data node. */
export const RESTART_BACKOFF_MS = 2_000;

/**
 * Starts `ranks - 1` data node Workers on `dataDir` and recovers the store. While it runs, a data
 * node that crashes or stops answering is marked down, restarted on its folder and reconciled.
 *
 * @throws {DfsError} `INVALID_REQUEST` for impossible options or a data directory written with more
 *   ranks; `UNAVAILABLE` if another server holds the directory or a node cannot start.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const { ranks, replicas, dataDir } = options;
  checkOptions(ranks, replicas);
  await Deno.mkdir(dataDir, { recursive: true });
  const lock = await lockDataDir(dataDir);
  const workers = new Map<number, Worker>();
  let comm: Comm | undefined;
  let supervisor: Supervisor | undefined;
  const init = (rank: number): NodeInit => ({
    init: { rank, size: ranks, dir: join(dataDir, `rank-${rank}`), testHooks: options.testHooks },
  });
  try {
    await checkRankFolders(dataDir, ranks);
    for (let rank = 1; rank < ranks; rank++) workers.set(rank, spawnWorker(rank));
    const transport = new PortTransport(0, ranks, new Map(workers));
    comm = new Comm(transport, {
      onPeerError: (rank, error) => supervisor?.lost(rank, String(error)),
    });
    for (const [rank, worker] of workers) worker.postMessage(init(rank));
    for (let rank = 1; rank < ranks; rank++) await awaitReady(comm, rank);
    const dataRanks = [...workers.keys()];
    const coordinator = new Coordinator(comm, { dataRanks, replicas });
    const recovery = await coordinator.recover();
    supervisor = new Supervisor({
      comm,
      transport,
      coordinator,
      workers,
      init,
      rereplicateAfterMs: options.rereplicateAfterMs ?? REREPLICATE_AFTER_MS,
    });
    const c = comm;
    const s = supervisor;
    return {
      coordinator,
      comm: c,
      recovery,
      close() {
        // Every acknowledged write is already durable: the Workers can simply stop.
        s.close();
        c.close();
        for (const worker of workers.values()) worker.terminate();
        lock.close();
        return Promise.resolve();
      },
    };
  } catch (error) {
    supervisor?.close();
    comm?.close();
    for (const worker of workers.values()) worker.terminate();
    lock.close();
    throw error;
  }
}

function spawnWorker(rank: number): Worker {
  return new Worker(new URL("../node/worker.ts", import.meta.url).href, {
    type: "module",
    name: `rank-${rank}`,
  });
}

async function awaitReady(comm: Comm, rank: number): Promise<void> {
  const { body } = await comm.recv<{ ok?: true; detail?: string }>(rank, READY_TAG, {
    timeoutMs: NODE_START_TIMEOUT_MS,
  });
  if (!body.ok) throw new DfsError("UNAVAILABLE", `Rank ${rank} cannot start: ${body.detail}`);
}

/** Watches the data nodes: heartbeats, and restart with reconciliation of any that fails. */
class Supervisor {
  #comm: Comm;
  #transport: PortTransport;
  #coordinator: Coordinator;
  #workers: Map<number, Worker>;
  #init: (rank: number) => NodeInit;
  #restarting = new Set<number>();
  #rereplicateAfterMs: number;
  #closed = false;
  #timer: ReturnType<typeof setInterval>;

  constructor(parts: {
    comm: Comm;
    transport: PortTransport;
    coordinator: Coordinator;
    workers: Map<number, Worker>;
    init: (rank: number) => NodeInit;
    rereplicateAfterMs: number;
  }) {
    this.#rereplicateAfterMs = parts.rereplicateAfterMs;
    this.#comm = parts.comm;
    this.#transport = parts.transport;
    this.#coordinator = parts.coordinator;
    this.#workers = parts.workers;
    this.#init = parts.init;
    this.#timer = setInterval(() => this.#heartbeat(), HEARTBEAT_INTERVAL_MS);
  }

  /** A data node crashed or stopped answering: restart it (once at a time per rank). */
  lost(rank: number, reason: string): void {
    if (this.#closed || this.#restarting.has(rank)) return;
    this.#restarting.add(rank);
    void this.#restart(rank, reason).finally(() => this.#restarting.delete(rank));
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
  }

  #heartbeat(): void {
    this.#coordinator.pool.trim({ keep: POOL_BUFFERS_KEPT_IDLE, idleMs: POOL_IDLE_TRIM_MS });
    for (const rank of this.#workers.keys()) {
      if (this.#restarting.has(rank)) continue;
      this.#comm.call(rank, { op: "ping" }, { timeoutMs: HEARTBEAT_TIMEOUT_MS }).catch((error) => {
        if (!this.#restarting.has(rank)) {
          this.lost(rank, `no answer to a heartbeat: ${error.message}`);
        }
      });
    }
  }

  async #restart(rank: number, reason: string): Promise<void> {
    this.#coordinator.markDown(rank);
    console.error(`dfs: rank ${rank} is down (${reason}); restarting it`);
    this.#comm.failPeer(rank, `rank ${rank} is down`);
    this.#workers.get(rank)?.terminate();
    const downSince = Date.now();
    let rereplicated = false;
    while (!this.#closed) {
      if (!rereplicated && Date.now() - downSince >= this.#rereplicateAfterMs) {
        rereplicated = true;
        await this.#coordinator.rereplicate(rank).then(
          (n) =>
            console.error(`dfs: rank ${rank} stays down: ${n} chunk replicas copied to live nodes`),
          (error) => console.error(`dfs: cannot re-replicate rank ${rank}: ${error.message}`),
        );
      }
      if (this.#coordinator.keptDown.has(rank)) {
        await new Promise((resolve) => setTimeout(resolve, RESTART_BACKOFF_MS / 4));
        continue;
      }
      const worker = spawnWorker(rank);
      this.#workers.set(rank, worker);
      this.#transport.setPort(rank, worker);
      try {
        worker.postMessage(this.#init(rank));
        await awaitReady(this.#comm, rank);
        const { dropped, restored } = await this.#coordinator.reconcile(rank);
        this.#coordinator.markUp(rank);
        console.error(
          `dfs: rank ${rank} is back (${dropped} stale chunks dropped, ${restored} restored)`,
        );
        return;
      } catch (error) {
        console.error(`dfs: cannot restart rank ${rank}: ${(error as Error).message}`);
        worker.terminate();
        await new Promise((resolve) => setTimeout(resolve, RESTART_BACKOFF_MS));
      }
    }
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
  let holdsRanks = false;
  for await (const entry of Deno.readDir(dataDir)) {
    const match = /^rank-(\d+)$/.exec(entry.name);
    if (!match) continue;
    holdsRanks = true;
    if (Number(match[1]) >= ranks) {
      throw new DfsError(
        "INVALID_REQUEST",
        `Data directory ${dataDir} holds ${entry.name}: start with --ranks ${
          Number(match[1]) + 1
        } or more`,
      );
    }
  }
  await checkFormat(dataDir, holdsRanks);
}

/**
 * The on-disk format this dfs reads and writes (blob files per upload, files up to 64 KiB in the
 * logs). A data directory records the one it was written in (`FORMAT_FILE`); a different one, or
 * rank folders without the file, make the start fail before anything is read or changed: an older
 * layout read as this one would look like lost chunks, which start-up would clean up.
 */
export const DATA_FORMAT_VERSION = 3;
/** The file in the data directory that names its on-disk format. */
export const FORMAT_FILE = "FORMAT";

async function checkFormat(dataDir: string, holdsRanks: boolean): Promise<void> {
  const path = join(dataDir, FORMAT_FILE);
  const expected = `dfs data format ${DATA_FORMAT_VERSION}\n`;
  let found: string | undefined;
  try {
    found = await Deno.readTextFile(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (found === expected) return;
  if (found !== undefined || holdsRanks) {
    const what = found === undefined
      ? `no ${FORMAT_FILE} file (an older dfs)`
      : `${JSON.stringify(found.trim().slice(0, 64))} in ${FORMAT_FILE}`;
    throw new DfsError(
      "INVALID_REQUEST",
      `Data directory ${dataDir} was written in another on-disk format (${what}); this dfs ` +
        `reads format ${DATA_FORMAT_VERSION}. Nothing was changed: use the dfs that wrote it, or ` +
        `copy the files out with it and into a new data directory.`,
    );
  }
  // A new data directory: record the format durably before any rank writes to it.
  const tmp = `${path}.tmp`;
  {
    using file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    await writeAll(file, new TextEncoder().encode(expected));
    await file.sync();
  }
  await Deno.rename(tmp, path);
  await syncDirectory(dataDir);
}
