/**
 * A whole cluster in one thread, for tests and the simulator: rank 0's store and supervisor and N
 * data nodes, each with a disk of its own in memory (`MemoryFileSystem`), joined by a
 * `LoopbackNetwork`, on a `FakeClock` and seeded randomness. Nothing waits on real time or real
 * I/O, so a test of commits, failover or re-replication runs in milliseconds, and two runs from the
 * same seed make the same messages and results.
 *
 * Faults go in at the seams: `crash(rank)` (the node dies, its disk loses what was not synced,
 * rank 0 hears of it and restarts it), `hang(rank)` (its link is cut: only the heartbeat finds
 * out), `keepDown(rank)` (it cannot be started again until `allowStart(rank)`), and the disks'
 * and network's own fault switches (`disk(rank)`, `network`).
 *
 * @module
 */

import { assert, DfsError } from "../../protocol/errors.ts";
import { Comm } from "../comm/comm.ts";
import { LoopbackNetwork, type LoopbackTraceEntry } from "../comm/loopback_transport.ts";
import { READY_TAG } from "../common/node_protocol.ts";
import type { Env, FileHandle, FileSystem, Log } from "../env/env.ts";
import { FakeClock } from "../env/fake_clock.ts";
import { MemoryFileSystem } from "../env/memory_fs.ts";
import { SeededRandom } from "../env/seeded_random.ts";
import type { DataNode } from "../node/data_node.ts";
import { openDataNode } from "../node/open_node.ts";
import { serveNode } from "../node/serve.ts";
import type { LaunchedRank } from "../rank0/launch.ts";
import type { NodeInfo } from "../rank0/membership.ts";
import type { RecoveryPlan } from "../rank0/plans.ts";
import { DfsStore } from "../rank0/store.ts";
import { awaitReady, REREPLICATE_AFTER_MS, Supervisor } from "../rank0/supervisor.ts";

/** Options of `MemoryCluster.start()`. */
export interface MemoryClusterOptions {
  /** Ranks, rank 0 included (default 4). */
  ranks?: number;
  /** Copies of every chunk (default 2). */
  replicas?: number;
  /** Seed of every randomness in the cluster (default 1). */
  seed?: number;
  /** Whether the network moves buffers like postMessage (default) or copies them like a socket. */
  movesBuffers?: boolean;
  /** Told of every packet as it leaves the network's queue. */
  trace?: (entry: LoopbackTraceEntry) => void;
  /** A node down this long has its replicas copied elsewhere (default `REREPLICATE_AFTER_MS`). */
  rereplicateAfterMs?: number;
  /** What the fake clock's `now()` reads at the start (default `FAKE_CLOCK_EPOCH_MS`). */
  epochMs?: number;
  /** Reuse these disks (a restart of the whole cluster); fresh ones otherwise. */
  disks?: Map<number, MemoryFileSystem>;
  /** Entries a `list` asks of a data node at once (`StoreOptions.listFetchEntries`). */
  listFetchEntries?: number;
  /** Bytes of manifests in each piece of a node's scan (`DataNodeOptions.scanPageBytes`). */
  scanPageBytes?: number;
  /** What each data node is (`StoreOptions.info`): a data port's address, say. */
  info?: ReadonlyMap<number, NodeInfo>;
  /** The key rank 0 signs grants with (`StoreOptions.grantKey`): direct reads and writes. */
  grantKey?: Uint8Array;
}

/** One running incarnation of a data node. */
interface Incarnation extends LaunchedRank {
  node: Promise<DataNode | undefined>;
}

/** The cluster; see the module doc. */
export class MemoryCluster implements AsyncDisposable {
  readonly store: DfsStore;
  readonly network: LoopbackNetwork;
  readonly clock: FakeClock;
  readonly recovery: RecoveryPlan;
  /** Everything the cluster logged, one line per message. */
  readonly logged: string[];
  #disks: Map<number, MemoryFileSystem>;
  #running: Map<number, Incarnation>;
  #keptDown: Set<number>;
  #supervisor: Supervisor;
  #comm: Comm;

  private constructor(parts: {
    store: DfsStore;
    network: LoopbackNetwork;
    clock: FakeClock;
    recovery: RecoveryPlan;
    logged: string[];
    disks: Map<number, MemoryFileSystem>;
    running: Map<number, Incarnation>;
    keptDown: Set<number>;
    supervisor: Supervisor;
    comm: Comm;
  }) {
    this.store = parts.store;
    this.network = parts.network;
    this.clock = parts.clock;
    this.recovery = parts.recovery;
    this.logged = parts.logged;
    this.#disks = parts.disks;
    this.#running = parts.running;
    this.#keptDown = parts.keptDown;
    this.#supervisor = parts.supervisor;
    this.#comm = parts.comm;
  }

  /** Starts the data nodes on their disks, recovers the store and starts supervising. */
  static async start(options: MemoryClusterOptions = {}): Promise<MemoryCluster> {
    const ranks = options.ranks ?? 4;
    const seed = options.seed ?? 1;
    const clock = new FakeClock({ epochMs: options.epochMs });
    const logged: string[] = [];
    const log: Log = {
      error: (message, ...details) => void logged.push([message, ...details].join(" ")),
    };
    const network = new LoopbackNetwork(ranks, {
      movesBuffers: options.movesBuffers ?? true,
      trace: options.trace,
    });
    const disks = options.disks ?? new Map<number, MemoryFileSystem>();
    for (let rank = 1; rank < ranks; rank++) {
      if (!disks.has(rank)) disks.set(rank, new MemoryFileSystem({ device: rank }));
    }
    const running = new Map<number, Incarnation>();
    const keptDown = new Set<number>();
    /** The device each node's folder was on at start (a restart must find it there). */
    const devices = new Map<number, number>();
    const launch = (rank: number, create = true): Incarnation => {
      if (keptDown.has(rank)) {
        throw new DfsError("UNAVAILABLE", `Rank ${rank} is kept down (fault injected)`);
      }
      const env = { clock, random: new SeededRandom(seed * 1000 + rank), log };
      const device = create ? undefined : devices.get(rank);
      const { scanPageBytes } = options;
      const incarnation = startNode(rank, network, disks.get(rank)!, {
        env,
        create,
        device,
        scanPageBytes,
      });
      running.set(rank, incarnation);
      return incarnation;
    };
    const comm = new Comm(network.transport(0), {
      clock,
      log,
      onPeerError: (rank, error) => watch.supervisor?.lost(rank, String(error)),
    });
    const watch: { supervisor?: Supervisor } = {};
    for (let rank = 1; rank < ranks; rank++) launch(rank);
    for (let rank = 1; rank < ranks; rank++) await awaitReady(comm, rank);
    for (let rank = 1; rank < ranks; rank++) {
      devices.set(rank, disks.get(rank)!.statSync(`/rank-${rank}`).dev);
    }
    const dataRanks = [...running.keys()];
    const env = { clock, random: new SeededRandom(seed), log };
    const store = new DfsStore(comm, {
      dataRanks,
      replicas: options.replicas ?? 2,
      env,
      listFetchEntries: options.listFetchEntries,
      info: options.info,
      grantKey: options.grantKey,
    });
    const recovery = await store.recover();
    const supervisor = watch.supervisor = new Supervisor({
      comm,
      store,
      relaunch: (rank) => {
        running.get(rank)?.terminate();
        network.restart(rank);
        return launch(rank, false);
      },
      ranks: running,
      rereplicateAfterMs: options.rereplicateAfterMs ?? REREPLICATE_AFTER_MS,
      clock,
      log,
    });
    return new MemoryCluster({
      store,
      network,
      clock,
      recovery,
      logged,
      disks,
      running,
      keptDown,
      supervisor,
      comm,
    });
  }

  /** The disk of a data node (its faults, its crash image). */
  disk(rank: number): MemoryFileSystem {
    const disk = this.#disks.get(rank);
    assert(disk !== undefined, `rank ${rank} is a data node`);
    return disk;
  }

  /** The disks, to start a new cluster on them (`MemoryClusterOptions.disks`). */
  get disks(): Map<number, MemoryFileSystem> {
    return this.#disks;
  }

  /** The running data node of `rank` (once it has opened its storage). */
  async node(rank: number): Promise<DataNode> {
    const node = await this.#running.get(rank)?.node;
    assert(node !== undefined, `rank ${rank} is running`);
    return node;
  }

  /**
   * The node dies now: its disk keeps only what was synced, its pending work is lost, and rank 0
   * hears of it as of a crashed Worker (and restarts it, unless it is kept down).
   */
  crash(rank: number): void {
    this.#running.get(rank)?.terminate();
    this.#running.delete(rank);
    this.disk(rank).crash();
    this.network.fail(rank, new Error(`rank ${rank} crashed (fault injected)`));
  }

  /** The node stops answering and hears nothing (its link is cut); the heartbeat finds out. */
  hang(rank: number): void {
    this.network.cut(rank);
  }

  /** The node cannot be started until `allowStart(rank)`. */
  keepDown(rank: number): void {
    this.#keptDown.add(rank);
  }

  allowStart(rank: number): void {
    this.#keptDown.delete(rank);
  }

  /** Runs fake time forward until `done()` holds, `stepMs` at a time, at most `timeoutMs`. */
  async until(done: () => boolean, options: { stepMs?: number; timeoutMs?: number } = {}) {
    const { stepMs = 100, timeoutMs = 600_000 } = options;
    for (let waited = 0; !done(); waited += stepMs) {
      assert(waited < timeoutMs, `condition not met within ${timeoutMs} ms of fake time`);
      await this.clock.advance(stepMs);
    }
  }

  /** Stops supervising, the store and every node. */
  async close(): Promise<void> {
    this.#supervisor.close();
    this.store.close();
    this.#comm.close();
    for (const incarnation of this.#running.values()) incarnation.terminate();
    this.#running.clear();
    await this.clock.runUntilIdle().catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Starts one incarnation of a data node over the network on `disk`, as a Worker would: it opens
 * its storage (creating its folder only if `create`: at cluster start), says it is ready, and
 * serves. `terminate()` stops it the way a Worker dies: its
 * transport closes and every later touch of the disk by its pending work fails.
 */
function startNode(
  rank: number,
  network: LoopbackNetwork,
  disk: MemoryFileSystem,
  options: { env: Omit<Env, "fs">; create: boolean; device?: number; scanPageBytes?: number },
): Incarnation {
  const { env, create, device, scanPageBytes } = options;
  const comm = new Comm(network.transport(rank), { clock: env.clock, log: env.log });
  const fs = new MortalFileSystem(disk);
  const node = (async () => {
    try {
      const node = await openDataNode(rank, `/rank-${rank}`, {
        env: { ...env, fs },
        create,
        device,
        scanPageBytes,
      });
      comm.send(0, READY_TAG, { ok: true });
      void serveNode(comm, node, { log: env.log });
      return node;
    } catch (error) {
      if (!fs.dead) {
        comm.send(0, READY_TAG, { error: DfsError.wireOf(error), detail: String(error) });
      }
      return undefined;
    }
  })();
  return {
    node,
    terminate() {
      fs.kill();
      comm.close();
    },
  };
}

/** A file system that fails every call once killed: what a dead Worker's pending work sees. */
class MortalFileSystem implements FileSystem {
  dead = false;
  #fs: FileSystem;

  constructor(fs: FileSystem) {
    this.#fs = fs;
  }

  kill(): void {
    this.dead = true;
  }

  #check(): void {
    if (this.dead) throw new Error("this incarnation of the node is dead");
  }

  #handle(handle: FileHandle): FileHandle {
    const check = () => this.#check();
    const live = <A extends unknown[], R>(f: (...args: A) => R) => (...args: A): R => {
      check();
      return f(...args);
    };
    return {
      read: live((into: Uint8Array) => handle.read(into)),
      readSync: live((into: Uint8Array) => handle.readSync(into)),
      write: live((bytes: Uint8Array) => handle.write(bytes)),
      writeSync: live((bytes: Uint8Array) => handle.writeSync(bytes)),
      seek: live((offset: number, whence: Deno.SeekMode) => handle.seek(offset, whence)),
      seekSync: live((offset: number, whence: Deno.SeekMode) => handle.seekSync(offset, whence)),
      truncate: live((length?: number) => handle.truncate(length)),
      sync: live(() => handle.sync()),
      syncData: live(() => handle.syncData()),
      statSync: live(() => handle.statSync()),
      lock: live((exclusive?: boolean) => handle.lock(exclusive)),
      close: () => handle.close(),
      [Symbol.dispose]: () => handle.close(),
    };
  }

  open: FileSystem["open"] = async (path, options) => {
    this.#check();
    return this.#handle(await this.#fs.open(path, options));
  };
  openSync: FileSystem["openSync"] = (path, options) => {
    this.#check();
    return this.#handle(this.#fs.openSync(path, options));
  };
  readFile: FileSystem["readFile"] = (path) => (this.#check(), this.#fs.readFile(path));
  readTextFile: FileSystem["readTextFile"] = (path) => (this.#check(), this.#fs.readTextFile(path));
  statSync: FileSystem["statSync"] = (path) => (this.#check(), this.#fs.statSync(path));
  mkdir: FileSystem["mkdir"] = (path, options) => (this.#check(), this.#fs.mkdir(path, options));
  readDir: FileSystem["readDir"] = (path) => (this.#check(), this.#fs.readDir(path));
  remove: FileSystem["remove"] = (path, options) => (this.#check(), this.#fs.remove(path, options));
  rename: FileSystem["rename"] = (from, to) => (this.#check(), this.#fs.rename(from, to));
  statfs: FileSystem["statfs"] = (path) => (this.#check(), this.#fs.statfs(path));
  openDirect: FileSystem["openDirect"] = async (path, options) => {
    this.#check();
    const file = await this.#fs.openDirect(path, options);
    if (file === null) return null;
    const check = () => this.#check();
    return {
      readAt: (into, position) => (check(), file.readAt(into, position)),
      writeAt: (bytes, position) => (check(), file.writeAt(bytes, position)),
      linked: () => (check(), file.linked()),
      close: () => file.close(),
      [Symbol.dispose]: () => file.close(),
    };
  };
}
