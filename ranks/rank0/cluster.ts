/**
 * Starts the ranks: one Worker data node per rank 1..N-1, each on its own folder under the data
 * directory, launched through a `Launcher` and reached through a `PortTransport`; and, with a node
 * port, remote data nodes (`dfs node`) that join over TCP (`node_port.ts`) and are reached through
 * a `TcpTransport`. One `RoutedTransport` joins both under rank 0's `Comm`. Start-up waits for
 * every remote node the cluster knows (`node_table.ts`) before it rebuilds the index from all of
 * them; then it supervises the nodes. The data directory is locked so that two servers never share
 * it.
 *
 * @module
 */

import { grantKey } from "../../protocol/direct.ts";
import { join } from "node:path";
import { DfsError } from "../../protocol/errors.ts";
import { Comm } from "../comm/comm.ts";
import { PortTransport } from "../comm/port_transport.ts";
import { RoutedTransport } from "../comm/routed_transport.ts";
import { TcpTransport } from "../comm/tcp_transport.ts";
import type { KnownNode } from "../common/join.ts";
import { RANKS_MAX } from "../common/node_protocol.ts";
import { checkReplicas } from "../common/replication.ts";
import { denoEnv } from "../env/deno_env.ts";
import type { Env } from "../env/env.ts";
import { checkRankFolders, openDataDir } from "../node/mod.ts";
import { type Launcher, type PortRank, WorkerLauncher } from "./launch.ts";
import { DEFAULT_ZONE, type NodeInfo } from "./membership.ts";
import { listenForNodes, type NodePort } from "./node_port.ts";
import { Remotes } from "./remotes.ts";
import { NodeTable } from "./node_table.ts";
import type { RecoveryPlan } from "./plans.ts";
import { DfsStore } from "./store.ts";
import { awaitReady, REREPLICATE_AFTER_MS, Supervisor } from "./supervisor.ts";

export { RANKS_MAX };

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
  /** Bytes of small chunks rank 0 keeps (`CHUNK_CACHE_BYTES_MAX` unless told; 0: none). */
  cacheBytes?: number;
  /**
   * Accept remote data nodes on this address, authenticated with the cluster secret, over TLS
   * when `tls` is given. Without it, no node port is opened.
   */
  nodePort?: {
    hostname: string;
    port: number;
    secret: Uint8Array;
    tls?: { cert: string; key: string };
  };
  /** The zone of the Worker data nodes (default: this host's name). */
  zone?: string;
  /**
   * Offer clients routes and plans to read and write large files on the remote nodes that have a
   * data port (`protocol/direct.ts`; default: whenever there is a node port).
   */
  directReads?: boolean;
  /** Clients speak TLS: only data ports that do too are offered. */
  directTls?: boolean;
  /**
   * Remote nodes to forget before start-up (`--forget-node`): a host that is gone for good, which
   * start-up would otherwise wait for. What only it held is lost; the rest is re-replicated.
   */
  forgetNodes?: readonly number[];
}

export interface Cluster {
  readonly store: DfsStore;
  readonly comm: Comm;
  readonly recovery: RecoveryPlan;
  /** The node port's address, when one is open. */
  readonly nodePort?: { hostname: string; port: number };
  /** The cluster's id (in its data directory). */
  readonly clusterId: string;
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
  checkOptions(ranks, replicas, options.nodePort !== undefined);
  const lock = await openDataDir(dataDir, env);
  const launched = new Map<number, PortRank>();
  const zone = options.zone ?? hostZone();
  let comm: Comm | undefined;
  let store: DfsStore | undefined;
  let supervisor: Supervisor | undefined;
  let nodePort: NodePort | undefined;
  /** The device each rank's folder was on at start: a restarted rank must find it there. */
  const devices = new Map<number, number>();
  const init = (rank: number, create = true) => ({
    rank,
    size: RANKS_MAX,
    dir: join(dataDir, `rank-${rank}`),
    create,
    device: create ? undefined : devices.get(rank),
  });
  const stop = () => {
    nodePort?.close();
    supervisor?.close();
    store?.close();
    comm?.close();
    for (const rank of launched.values()) rank.terminate();
    lock.close();
  };
  try {
    await checkRankFolders(dataDir, ranks, env);
    const table = await NodeTable.open(dataDir, env.fs);
    for (const rank of options.forgetNodes ?? []) {
      const nodeId = await table.forget(rank);
      env.log.error(
        `dfs: forgot remote data node ${nodeId} (rank ${rank}): its replicas count as gone and ` +
          "are re-replicated from others; it is refused if it comes back",
      );
    }
    checkRemoteRanks([...table.nodes, ...table.forgotten], ranks);
    for (let rank = 1; rank < ranks; rank++) launched.set(rank, launcher.launch(init(rank)));
    const ports = new Map([...launched].map(([rank, l]) => [rank, l.port]));
    const portTransport = new PortTransport(0, RANKS_MAX, ports);
    const tcp = new TcpTransport(0, RANKS_MAX);
    const transport = new RoutedTransport(0, RANKS_MAX, [portTransport, tcp]);
    for (const rank of launched.keys()) transport.route(rank, portTransport);
    const remotes = new Remotes({ table, tcp, transport, log: env.log });
    comm = new Comm(transport, {
      clock: env.clock,
      log: env.log,
      onPeerError: (rank, error) => {
        if (supervisor) {
          supervisor.lost(rank, error instanceof Error ? error.message : String(error));
        } else remotes.lostBeforeStart(rank, error);
      },
    });
    remotes.comm = comm;
    for (let rank = 1; rank < ranks; rank++) await awaitReady(comm, rank);
    for (let rank = 1; rank < ranks; rank++) {
      devices.set(rank, env.fs.statSync(init(rank).dir).dev);
    }
    const info = new Map<number, NodeInfo>();
    for (const rank of launched.keys()) info.set(rank, { kind: "worker", zone });
    for (const node of table.nodes) info.set(node.rank, { kind: "remote", zone: node.zone });
    store = new DfsStore(comm, {
      dataRanks: [...info.keys()],
      info,
      replicas,
      env,
      dataNodesMax: options.nodePort ? RANKS_MAX - 1 : undefined,
      cacheBytes: options.cacheBytes,
      grantKey: options.nodePort && options.directReads !== false
        ? grantKey(options.nodePort.secret)
        : undefined,
      directTls: options.directTls,
    });
    remotes.store = store;
    tcp.pool = store.pool; // a chunk read from a remote node arrives in one of rank 0's buffers
    for (const node of table.nodes) {
      store.nodes.membership.markJoining(node.rank, "not connected since the server started");
    }
    if (options.nodePort) {
      nodePort = listenForNodes({
        ...options.nodePort,
        cluster: () => ({
          clusterId: table.clusterId,
          nodes: table.nodes,
          forgotten: table.forgotten,
          firstRank: ranks,
          ranksMax: RANKS_MAX,
        }),
        isConnected: (nodeId) => remotes.isConnected(nodeId),
        reserve: (node) => remotes.reserve(node),
        admit: (node) => remotes.admit(node),
        log: env.log,
      });
    }
    // Like a NameNode's safe mode: the index is rebuilt only once every node that holds data has
    // reported, or a file kept only on a node still away would be taken for lost.
    await remotes.allPresent(env);
    const recovery = await store.recover();
    remotes.started();
    const relaunch = (rank: number) => {
      const started = launcher.launch(init(rank, false));
      portTransport.setPort(rank, started.port);
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
      isRemote: (rank) => store!.nodes.membership.infoOf(rank)?.kind === "remote",
      disconnect: (rank) => tcp.detach(rank),
      onDrained: async (rank) => {
        await table.setDrained(rank, true);
        env.log.error(
          `dfs: rank ${rank} holds nothing the store needs any more: a restart of rank 0 will ` +
            "not wait for it",
        );
      },
    });
    return {
      store,
      comm,
      recovery,
      clusterId: table.clusterId,
      ...(nodePort ? { nodePort: { hostname: nodePort.hostname, port: nodePort.port } } : {}),
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

/** This host's name, the Worker nodes' zone; `DEFAULT_ZONE` if it cannot be read. */
function hostZone(): string {
  try {
    const name = Deno.hostname();
    return /^[A-Za-z0-9._:-]{1,128}$/.test(name) ? name : DEFAULT_ZONE;
  } catch {
    return DEFAULT_ZONE;
  }
}

/** A remote node's rank must not be one `--ranks` gives a Worker. */
function checkRemoteRanks(nodes: readonly KnownNode[], ranks: number): void {
  const clash = nodes.find((n) => n.rank < ranks);
  if (clash) {
    throw new DfsError(
      "INVALID_REQUEST",
      `--ranks ${ranks} would start a Worker as rank ${clash.rank}, which is remote node ` +
        `${clash.nodeId}'s: start with --ranks ${clash.rank} or fewer`,
    );
  }
}

function checkOptions(ranks: number, replicas: number, nodesMayJoin: boolean): void {
  const least = nodesMayJoin ? 1 : 2;
  if (!Number.isInteger(ranks) || ranks < least || ranks > RANKS_MAX) {
    const why = nodesMayJoin ? "" : " (1 only with a node port, for remote data nodes)";
    throw new DfsError(
      "INVALID_REQUEST",
      `--ranks must be an integer from ${least} to ${RANKS_MAX}${why}, got ${ranks}`,
    );
  }
  checkReplicas(replicas, nodesMayJoin ? RANKS_MAX - 1 : ranks - 1, { ranks });
}
