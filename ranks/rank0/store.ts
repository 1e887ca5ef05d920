/**
 * Rank 0's store: the `FileStore` every gateway serves, put together from rank 0's parts, each of
 * one concern: the node client and membership (`node_client.ts`, `membership.ts`), placement, the
 * file index, pins and releases, the namespace (commits, removals, renames), uploads, reads with
 * failover and read repair, integrity work (fsck, scrub) and recovery (start-up, reconcile,
 * re-replication). It talks to the data nodes only through a `Comm`; it owns no socket.
 *
 * @module
 */

import type {
  ByteRange,
  ByteSource,
  DoctorReport,
  FileMeta,
  FileReader,
  FsckReport,
  ListEntry,
  ListOptions,
  RankCapacity,
  StatusReport,
  StreamingFileStore,
  Upload,
  Usage,
} from "../common/file_store.ts";
import { createHash } from "node:crypto";
import type { BufferPool } from "../../protocol/buffer_pool.ts";
import { DfsError } from "../../protocol/errors.ts";
import { validateName } from "../../protocol/names.ts";
import type { Comm } from "../comm/comm.ts";
import { BlobIds } from "../common/chunk_id.ts";
import { checkAttrs, type FileAttrs, fileMetaOf } from "../common/manifest.ts";
import { readerStream } from "../common/reader_stream.ts";
import { NODE_LIST_ENTRIES_MAX } from "../common/node_protocol.ts";
import { checkReplicas } from "../common/replication.ts";
import type { Semaphore } from "../common/semaphore.ts";
import type { Env } from "../env/env.ts";
import { ChunkCache } from "./chunk_cache.ts";
import { FileIndex } from "./file_index.ts";
import { forEachInSteps, giveWayOn } from "./give_way.ts";
import { Health } from "./health.ts";
import { Integrity } from "./integrity.ts";
import { type ListSource, mergePages } from "./list_merge.ts";
import { LossPlanner, resolveTarget } from "./loss.ts";
import { Membership, type NodeInfo } from "./membership.ts";
import { Namespace } from "./namespace.ts";
import { NodeClient } from "./node_client.ts";
import { LoadTracker } from "./placement.ts";
import type { RecoveryPlan } from "./plans.ts";
import { Reads } from "./reads.ts";
import { DirectRoutes } from "./direct_routes.ts";
import { Recovery } from "./recovery.ts";
import { Releases } from "./releases.ts";
import { Replicas } from "./replicas.ts";
import { Throughput } from "./throughput.ts";
import { Uploads } from "./uploads.ts";

/** How long `status` waits for a data node before calling it down. */
export const STATUS_TIMEOUT_MS = 2_000;

export interface StoreOptions {
  /** Ranks of the data nodes (1..N-1). */
  dataRanks: number[];
  /** Copies of every chunk, unless a put asks for another number. */
  replicas: number;
  /** Clock, randomness and log (the disk is the data nodes'). */
  env: Pick<Env, "clock" | "random" | "log">;
  nodeCallTimeoutMs?: number;
  /** Uploads in progress at once, server-wide (default `UPLOADS_INFLIGHT_MAX`). */
  uploadsMax?: number;
  /** Bytes of small chunks kept for gets (`CHUNK_CACHE_BYTES_MAX` unless told; 0: none). */
  cacheBytes?: number;
  /** What each data node is (kind, zone); default: Workers in zone `DEFAULT_ZONE`. */
  info?: ReadonlyMap<number, NodeInfo>;
  /**
   * Entries a `list` asks of a data node at once (default `NODE_LIST_ENTRIES_MAX`, at most that);
   * tests make it small to cross many page boundaries.
   */
  listFetchEntries?: number;
  /**
   * Remote data nodes may join, up to this many data nodes in all: `replicas` may exceed the
   * nodes there are now (puts answer `UNAVAILABLE` until enough are up). Default: none may.
   */
  dataNodesMax?: number;
  /**
   * The key to sign read grants with (`grantKey` of the cluster secret): reads of large files
   * whose chunks are on nodes with a data port are then offered a direct route. Default: none.
   */
  grantKey?: Uint8Array;
  /** Clients speak TLS: direct routes and plans take only data ports that do too. */
  directTls?: boolean;
}

/** The store rank 0 serves. Call `recover()` once before serving. */
export class DfsStore implements StreamingFileStore {
  readonly nodes: NodeClient;
  readonly integrity: Integrity;
  readonly recovery: Recovery;
  readonly health: Health;
  /** Operations and bytes per second, through every gateway (see `throughput.ts`). */
  readonly throughput: Throughput;
  #index = new FileIndex();
  #loads: LoadTracker;
  #namespace: Namespace;
  #uploads: Uploads;
  #reads: Reads;
  #replicas: Replicas;
  #env: StoreOptions["env"];
  /** Lets other work run between the steps of a walk over the index (`give_way.ts`). */
  #giveWay: () => Promise<void>;
  #listFetchEntries: number;

  /** @throws {DfsError} `INVALID_REQUEST` for more replicas than data nodes. */
  constructor(comm: Comm, options: StoreOptions) {
    const { dataRanks, replicas, env } = options;
    checkReplicas(replicas, Math.max(dataRanks.length, options.dataNodesMax ?? 0));
    this.#env = env;
    this.#giveWay = giveWayOn(env.clock);
    this.#listFetchEntries = Math.min(
      options.listFetchEntries ?? NODE_LIST_ENTRIES_MAX,
      NODE_LIST_ENTRIES_MAX,
    );
    const { clock, log } = env;
    this.throughput = new Throughput(clock);
    const membership = new Membership(dataRanks, { info: options.info });
    membership.dataTls = options.directTls === true;
    const nodes = new NodeClient(comm, { membership, clock, timeoutMs: options.nodeCallTimeoutMs });
    const loads = new LoadTracker(dataRanks, { zoneOf: (rank) => membership.zoneOf(rank) });
    const releases = new Releases({ nodes, loads, log });
    const namespace = new Namespace({ index: this.#index, nodes, releases, clock, log });
    const replicaCopies = new Replicas(nodes, log);
    const cache = new ChunkCache({ bytesMax: options.cacheBytes });
    this.nodes = nodes;
    this.#loads = loads;
    this.#namespace = namespace;
    this.#replicas = replicaCopies;
    this.#uploads = new Uploads({
      nodes,
      loads,
      namespace,
      copies: replicaCopies,
      blobIds: new BlobIds(env.random),
      replicas,
      uploadsMax: options.uploadsMax,
      dataNodesMax: options.dataNodesMax,
      throughput: this.throughput,
      cache,
      direct: options.grantKey === undefined ? undefined : { key: options.grantKey, clock },
    });
    this.#reads = new Reads({
      nodes,
      namespace,
      releases,
      replicas: replicaCopies,
      throughput: this.throughput,
      cache,
      routes: options.grantKey === undefined
        ? undefined
        : new DirectRoutes({ membership, key: options.grantKey, clock }),
    });
    this.health = new Health({
      index: this.#index,
      nodes,
      releases,
      replicas: replicaCopies,
      rereplicate: (rank) => this.recovery.rereplicate(rank),
      log,
    });
    this.recovery = new Recovery({
      nodes,
      giveWay: this.#giveWay,
      loads,
      namespace,
      releases,
      replicas: replicaCopies,
      health: this.health,
      log,
      random: env.random,
    });
    this.integrity = new Integrity({
      index: this.#index,
      nodes,
      releases,
      replicas: replicaCopies,
      health: this.health,
      rereplicateFile: (name, rank) => this.recovery.rereplicateFile(name, rank),
      clock,
      load: this.throughput,
    });
  }

  get pool(): BufferPool {
    return this.nodes.pool;
  }

  /** Files present now. */
  get fileCount(): number {
    return this.#index.size;
  }

  /**
   * Takes in a data node that was not known (a remote node joining for the first time): it is
   * `joining` (down) until reconciled and marked up.
   */
  addNode(rank: number, info: NodeInfo): void {
    this.nodes.membership.add(rank, info, this.#env.clock.monotonic());
    this.#loads.addRank(rank);
  }

  /** Start-up recovery (see `Recovery.recover`). */
  recover(): Promise<RecoveryPlan> {
    return this.recovery.recover();
  }

  beginUpload(
    name: string,
    options: { size?: number; replicas?: number; checksums?: boolean; direct?: boolean } = {},
  ): Upload {
    return this.#uploads.begin(name, options);
  }

  /**
   * Makes `name` a file of the `sources`' bytes in order, each the given version of a file,
   * without copying a byte (see `Namespace.compose`): the sources are gone
   * after. The whole file's SHA-256 is taken by reading the sources first (their chunks' CRC32s
   * checked on the way), so a composed file is verified end to end like any other.
   *
   * @throws {DfsError} `VERSION_MISMATCH` if a source changed meanwhile; `NOT_FOUND` for a
   *   missing one; a read's error.
   */
  async compose(
    name: string,
    sources: readonly { name: string; version: number }[],
    options: { attrs?: FileAttrs } = {},
  ): Promise<FileMeta> {
    validateName(name);
    if (options.attrs !== undefined) checkAttrs(options.attrs);
    const hash = createHash("sha256");
    for (const source of sources) {
      // Not counted in the throughput: the client's bytes were counted as its parts came.
      const reader = this.#reads.open(source.name, {}, { counted: false });
      try {
        if (reader.meta.version !== source.version) {
          throw new DfsError(
            "VERSION_MISMATCH",
            `Cannot compose "${name}": "${source.name}" is at version ${reader.meta.version}, ` +
              `not ${source.version}`,
          );
        }
        for await (const chunk of reader.chunks()) {
          hash.update(chunk);
          reader.recycle(chunk);
        }
      } finally {
        reader.close();
      }
    }
    const sha256 = hash.digest("hex");
    const attrs = options.attrs === undefined ? {} : { attrs: { ...options.attrs } };
    return await this.#namespace.compose({ name, sha256, ...attrs }, sources);
  }

  openRead(
    name: string,
    range?: ByteRange,
    options?: { budget?: Semaphore; direct?: boolean },
  ): FileReader {
    return this.#reads.open(name, range, options);
  }

  /** Stores `data` as `name` through an upload. */
  async put(
    name: string,
    data: ByteSource,
    options: { size?: number; replicas?: number } = {},
  ): Promise<FileMeta> {
    const size = data instanceof Uint8Array ? data.length : options.size;
    const upload = this.beginUpload(name, { size, replicas: options.replicas });
    try {
      for await (const piece of data instanceof Uint8Array ? [data] : data) {
        await upload.write(piece.slice()); // the upload takes ownership of what it is given
      }
    } catch (error) {
      await upload.abort();
      throw error;
    }
    return await upload.commit();
  }

  /** Opens `name` (or `range` of it) as a stream; the version stays readable until it ends. */
  open(
    name: string,
    range: ByteRange = {},
  ): Promise<{ meta: FileMeta; stream: ReadableStream<Uint8Array> }> {
    return Promise.try(() => {
      const reader = this.openRead(name, range);
      return { meta: reader.meta, stream: readerStream(reader) };
    });
  }

  /** @throws {DfsError} `NOT_FOUND` if no version of `name` is committed. */
  meta(name: string): Promise<FileMeta> {
    const { membership } = this.nodes;
    this.throughput.op("meta");
    return Promise.try(() => fileMetaOf(this.#namespace.lookup(name), (r) => membership.zoneOf(r)));
  }

  /**
   * Names under `prefix`, gathered from the data nodes, with size and modified time, in order;
   * those after `options.after`, at most `options.limit` (every one without: the caller holds
   * them all; `listPages` streams them instead).
   */
  async list(prefix = "", options: ListOptions = {}): Promise<ListEntry[]> {
    const entries: ListEntry[] = [];
    for await (const page of this.listPages(prefix, options)) entries.push(...page);
    return entries;
  }

  /**
   * Names under `prefix` as `list` gives them, in pages of at most `LIST_PAGE_ENTRIES_MAX`, each
   * merged from the data nodes' pages as it is asked for (`list_merge.ts`): rank 0 holds a page
   * or two per node and one merged page, however long the listing, and stopping the iteration
   * stops it.
   * While a data node is down the names come from rank 0's index instead (a node that is down
   * cannot say what it holds); should one go down or fail to answer mid-listing, the listing goes
   * on from the index after the last name given.
   *
   * @throws {DfsError} `INTERNAL` if a data node answers out of order.
   */
  async *listPages(prefix = "", options: ListOptions = {}): AsyncGenerator<ListEntry[]> {
    this.throughput.op("list");
    let { after, limit } = options;
    const { membership } = this.nodes;
    let fromIndex = membership.down.size > 0;
    while (true) {
      try {
        const sources = this.#listSources(prefix, fromIndex);
        const fetchEntries = this.#listFetchEntries;
        for await (const page of mergePages(sources, { after, limit, fetchEntries })) {
          after = page[page.length - 1].name;
          if (limit !== undefined) limit -= page.length;
          yield page;
        }
        return;
      } catch (error) {
        // A node that went down or could not answer mid-listing: go on from the index.
        const unanswered = error instanceof DfsError && error.code === "UNAVAILABLE";
        if (fromIndex || !(unanswered || membership.down.size > 0)) throw error;
        fromIndex = true;
      }
    }
  }

  remove(name: string): Promise<void> {
    this.throughput.op("remove");
    return this.#namespace.remove(name);
  }

  removePrefix(prefix: string): Promise<number> {
    this.throughput.op("remove");
    return this.#namespace.removePrefix(prefix);
  }

  rename(from: string, to: string, options: { force?: boolean } = {}): Promise<FileMeta> {
    this.throughput.op("rename");
    return this.#namespace.rename(from, to, options);
  }

  /**
   * Files, bytes and bytes stored (all replicas) under `prefix`, counted as the index goes while
   * the count gives way (`forEachInSteps`).
   */
  async usage(prefix = ""): Promise<Usage> {
    let files = 0;
    let bytes = 0;
    let storedBytes = 0;
    await forEachInSteps(this.#index.values(prefix), (m) => {
      files++;
      bytes += m.size;
      for (const c of m.chunks) storedBytes += c.size * c.ranks.length;
    }, this.#giveWay);
    return { files, bytes, storedBytes };
  }

  /** Each data node's bytes held and its file system's size and free space. */
  capacity(): Promise<RankCapacity[]> {
    return Promise.all(this.nodes.dataRanks.map(async (rank) => {
      const fs = await this.nodes.statfs(rank);
      return { rank, bytesHeld: this.#loads.bytesHeld.get(rank) ?? 0, ...fs };
    }));
  }

  fsck(): Promise<FsckReport> {
    return this.integrity.fsck();
  }

  /**
   * Each data node's state (up: it answered within `STATUS_TIMEOUT_MS`; restarting or down with
   * the reason), bytes and chunks held by the index's count and replicas known missing there, the
   * chunks under-replicated now, the repair and scrub counters, and what the nodes' logs were
   * found to hold. The chunks are counted as the index goes, giving way (`forEachInSteps`): the
   * count takes ~1 us a file (seconds at millions), and the dashboard asks every 5 s.
   */
  async status(): Promise<StatusReport> {
    const membership = this.nodes.membership;
    const chunks = new Map<number, number>(this.nodes.dataRanks.map((r) => [r, 0]));
    const missing = new Map<number, number>();
    let underReplicatedChunks = 0;
    await forEachInSteps(this.#index.values(), (m) => {
      for (const c of m.chunks) {
        let under = false;
        for (const r of c.ranks) {
          chunks.set(r, (chunks.get(r) ?? 0) + 1);
          // Under-replicated now: a replica on a node that is down or gone, or known missing.
          if (membership.isLost(r)) under = true;
          else if (this.health.isMissing(c.id, r)) {
            under = true;
            missing.set(r, (missing.get(r) ?? 0) + 1);
          }
        }
        if (under) underReplicatedChunks++;
      }
    }, this.#giveWay);
    const ranks = await Promise.all(this.nodes.dataRanks.map(async (rank) => {
      let state = membership.stateOf(rank);
      let reason = membership.reasonOf(rank)?.reason;
      if (state === "up") {
        try {
          await this.nodes.ping(rank, STATUS_TIMEOUT_MS);
        } catch (error) {
          state = "down";
          reason = (error as Error).message;
        }
      }
      const bytesHeld = this.#loads.bytesHeld.get(rank) ?? 0;
      const info = membership.infoOf(rank);
      const heardAt = membership.heardAt(rank);
      return {
        rank,
        state,
        kind: info?.kind ?? "worker",
        zone: membership.zoneOf(rank),
        ...(info?.address === undefined ? {} : { address: info.address }),
        ...(info?.dataAddress === undefined ? {} : { dataAddress: info.dataAddress }),
        ...(heardAt === undefined
          ? {}
          : { heartbeatAgeMs: Math.max(0, Math.round(this.#env.clock.monotonic() - heardAt)) }),
        bytesHeld,
        chunks: chunks.get(rank) ?? 0,
        missingChunks: missing.get(rank) ?? 0,
        ...(reason === undefined ? {} : { reason }),
      };
    }));
    const { scrubbed } = this.integrity;
    return {
      files: this.#index.size,
      ranks,
      repairs: this.#replicas.repairs,
      scrub: { passes: scrubbed.passes, bytes: scrubbed.bytes },
      underReplicatedChunks,
      corruptReplicasFound: this.#replicas.damagedFound,
      lostFiles: new Set([
        ...this.health.lostFiles,
        ...scrubbed.problems.filter((p) => p.outcome === "lost").map((p) => p.name),
      ]).size,
      metadata: { ...this.health.metadata },
    };
  }

  /**
   * What would become under-replicated and what would be lost if `target` (a data rank, or a zone:
   * every data node in it) were gone now, on top of the nodes down now; and what is degraded
   * already. One pass over the index as it goes, giving way (`forEachInSteps`); no node I/O (see
   * `loss.ts`).
   *
   * @throws {DfsError} `INVALID_REQUEST` for an empty target; `NOT_FOUND` for one that is neither
   *   a data rank nor a zone.
   */
  async doctor(target: string): Promise<DoctorReport> {
    const membership = this.nodes.membership;
    const resolved = resolveTarget(target, membership);
    const planner = new LossPlanner(new Set(resolved.ranks), {
      alreadyLost: (rank) => membership.isLost(rank),
      replicaMissing: (id, rank) => this.health.isMissing(id, rank),
    });
    await forEachInSteps(this.#index.values(), (m) => planner.add(m), this.#giveWay);
    const ranksDown = [...membership.down].sort((a, b) => a - b);
    return { ...resolved, ranksDown, ...planner.result() };
  }

  /** Stops the store's timers and background work; the data nodes are the caller's to stop. */
  close(): void {
    this.health.close();
    this.nodes.close();
  }

  /**
   * Where `listPages` gets pages: every data node, or the index alone. The index's first page
   * waits for its names to be sorted a step at a time (`FileIndex.sortNames`).
   */
  #listSources(prefix: string, fromIndex: boolean): ListSource[] {
    if (fromIndex) {
      return [async (after, limit) => {
        await this.#index.sortNames(this.#giveWay);
        return this.#index.page(prefix, { after, limit });
      }];
    }
    return this.nodes.dataRanks.map((rank) => (after, limit) =>
      this.nodes.list(rank, prefix, { after, limit })
    );
  }

  /** The environment the store runs in. */
  get env(): StoreOptions["env"] {
    return this.#env;
  }
}
