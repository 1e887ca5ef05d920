/**
 * Rank 0's logic: uploads, reads, metadata and listing over the data nodes, and start-up recovery.
 * Talks to the data nodes only through a `Comm`; owns no socket (see `server.ts`).
 *
 * An upload's chunks go to the least loaded data nodes as they arrive, at most
 * `UPLOAD_CHUNKS_INFLIGHT_MAX` chunks unacknowledged at a time (when the window is full, `write()`
 * waits, and so does the socket behind it). The commit assigns a version, appends the manifest on
 * every data node holding a chunk of it and then installs it: the highest version wins, at run time
 * as after a restart. A superseded version is released once no reader has it open.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { crc32 } from "node:zlib";
import { assert, DfsError } from "../../protocol/errors.ts";
import { BufferPool } from "../../protocol/buffer_pool.ts";
import { CHUNK_SIZE_BYTES, FRAME_SIZE_BYTES_MAX } from "../../protocol/limits.ts";
import type {
  FileMeta,
  FsckReport,
  ListEntry,
  RankCapacity,
  StatusReport,
  Usage,
} from "../../protocol/messages.ts";
import { blobOf, chunkIdOf, LOG_FILE_BYTES_MAX, newBlobId, offsetOf } from "../common/chunk_id.ts";
import { SMALL_READ_BYTES_MAX } from "../node/chunk_store.ts";
import type { Comm } from "../comm/comm.ts";
import {
  type ChunkRef,
  fileMetaOf,
  holdersOf,
  type Manifest,
  mergeListings,
  replicasOf,
  toListing,
  tombstoneOf,
} from "../common/manifest.ts";
import { FileIndex } from "./file_index.ts";
import { planRecovery, type RecoveryPlan } from "./plans.ts";
import type { ListAnswer, NodeCall, NodeCollective, ScanAnswer } from "../common/node_protocol.ts";
import { LoadTracker } from "./placement.ts";
import type {
  ByteRange,
  ByteSource,
  FileReader,
  ListOptions,
  StreamingFileStore,
  Upload as UploadApi,
} from "../common/file_store.ts";
import { Semaphore } from "../common/semaphore.ts";

/** Chunks of one upload sent to data nodes and not yet acknowledged as written. */
export const UPLOAD_CHUNKS_INFLIGHT_MAX = 8;
/** Chunk reads of one download in flight ahead of the socket. */
export const READ_CHUNKS_INFLIGHT_MAX = 8;
/** Idle chunk buffers rank 0 keeps for reuse (each `FRAME_SIZE_BYTES_MAX`). */
export const POOL_BUFFERS_MAX = 64;
/** Idle chunk buffers kept once no transfer has taken one for `POOL_IDLE_TRIM_MS`. */
export const POOL_BUFFERS_KEPT_IDLE = 8;
/** Quiet time after which the pool lets go of its idle buffers beyond `POOL_BUFFERS_KEPT_IDLE`. */
export const POOL_IDLE_TRIM_MS = 5_000;
/**
 * Uploads in progress at once, server-wide: each may hold a chunk buffer being filled plus
 * `UPLOAD_CHUNKS_INFLIGHT_MAX` chunks on their way to the data nodes, so this bounds their memory.
 */
export const UPLOADS_INFLIGHT_MAX = 64;
/**
 * Chunks read ahead server-wide, beyond the one each read may always have in flight: with many
 * clients reading at once, memory stays near one chunk per reader plus this many.
 */
export const READ_AHEAD_CHUNKS_SERVER_MAX = 32;
/**
 * Chunks on their way to the data nodes server-wide, every upload's together (each holds its
 * buffer and a copy for the second replica); uploads take turns for them.
 */
export const UPLOAD_CHUNKS_SERVER_MAX = 32;
/** Files `fsck` checks at a time. */
export const FSCK_FILES_PARALLEL_MAX = 8;
/**
 * What the scrubber charges against its byte rate for reading one replica of a chunk smaller than
 * this: a read costs a round trip to a data node and a log or file access whatever its size, so a
 * store of small files is scrubbed at a bounded number of reads per second, not thousands.
 */
export const SCRUB_READ_COST_BYTES_MIN = 64 * 1024;
/** Problems the scrubber remembers for `status` (the oldest are dropped). */
export const SCRUB_PROBLEMS_KEPT_MAX = 1000;
/** How long `status` waits for a data node before calling it down. */
export const STATUS_TIMEOUT_MS = 2_000;
/** Files `removePrefix` removes at a time. */
export const REMOVE_PARALLEL_MAX = 16;
/**
 * Releases rank 0 keeps for a data node that is down, to send once it is back (beyond this, the
 * next start-up cleans up instead).
 */
export const MISSED_RELEASES_MAX = 10_000;
/** How long rank 0 waits for a data node's answer to one request. */
export const NODE_CALL_TIMEOUT_MS = 60_000;

/** What identifies a version's stored data: its first chunk's id (chunk ids are never reused). */
function dataKey(m: Manifest): string {
  return m.chunks[0]?.id ?? `${m.name}\0${m.version}`;
}

export interface CoordinatorOptions {
  /** Ranks of the data nodes (1..N-1). */
  dataRanks: number[];
  /** Copies of every chunk. */
  replicas: number;
  nodeCallTimeoutMs?: number;
  /** Uploads in progress at once, server-wide (default `UPLOADS_INFLIGHT_MAX`). */
  uploadsMax?: number;
}

export class Coordinator implements StreamingFileStore {
  /**
   * Chunk buffers: socket frames are read into them, they travel to the data nodes and come back
   * with the answer, so steady transfers allocate nothing.
   */
  readonly pool: BufferPool = new BufferPool(FRAME_SIZE_BYTES_MAX, {
    buffersMax: POOL_BUFFERS_MAX,
  });
  /** Replicas rewritten from a good copy since start (read repair, scrub, fsck, reconcile). */
  repairs = 0;
  /** Read-ahead permits shared by every read (`READ_AHEAD_CHUNKS_SERVER_MAX`). */
  readonly readAhead = new Semaphore(READ_AHEAD_CHUNKS_SERVER_MAX);
  /** Chunks of every upload on their way to the data nodes (`UPLOAD_CHUNKS_SERVER_MAX`). */
  readonly uploadWindow = new Semaphore(UPLOAD_CHUNKS_SERVER_MAX);
  /** Replicas found corrupted (bad CRC32 or size) or missing since start. */
  corruptReplicasFound = 0;
  #comm: Comm;
  #uploads = 0;
  #uploadsMax: number;
  #dataRanks: number[];
  #replicas: number;
  #timeoutMs: number;
  #index = new FileIndex();
  #loads: LoadTracker;
  /** Open readers per stored data, keyed by `dataKey` (a rename keeps the data, so the key). */
  #pins = new Map<string, number>();
  /** Superseded versions waiting for their readers to finish, by `dataKey`. */
  #retiring = new Map<string, Manifest>();
  /** Per-name queues: metadata changes of one name happen one at a time. */
  #locks = new Map<string, Promise<void>>();

  constructor(comm: Comm, options: CoordinatorOptions) {
    if (options.dataRanks.length < options.replicas) {
      throw new DfsError(
        "INVALID_REQUEST",
        `Cannot keep ${options.replicas} replicas with ${options.dataRanks.length} data nodes`,
      );
    }
    this.#comm = comm;
    this.#dataRanks = options.dataRanks;
    this.#replicas = options.replicas;
    this.#timeoutMs = options.nodeCallTimeoutMs ?? NODE_CALL_TIMEOUT_MS;
    this.#loads = new LoadTracker(options.dataRanks);
    this.#uploadsMax = options.uploadsMax ?? UPLOADS_INFLIGHT_MAX;
  }

  get fileCount(): number {
    return this.#index.size;
  }

  /** What the background scrubber has done since start. */
  readonly scrubbed: {
    passes: number;
    bytes: number;
    problems: { name: string; outcome: string; at: number }[];
  } = { passes: 0, bytes: 0, problems: [] };

  /**
   * Each data node's state (up: it answered within `STATUS_TIMEOUT_MS`), bytes and chunks held by
   * the index's count, and the repair and scrub counters.
   */
  async status(): Promise<StatusReport> {
    const chunks = new Map<number, number>(this.#dataRanks.map((r) => [r, 0]));
    for (const m of this.#index.values()) {
      for (const c of m.chunks) for (const r of c.ranks) chunks.set(r, (chunks.get(r) ?? 0) + 1);
    }
    const ranks = await Promise.all(this.#dataRanks.map(async (rank) => {
      let state: "up" | "down" | "restarting" = this.#down.has(rank) ? "restarting" : "up";
      if (state === "up") {
        try {
          await this.#comm.call(rank, { op: "ping" }, { timeoutMs: STATUS_TIMEOUT_MS });
        } catch {
          state = "down";
        }
      }
      return {
        rank,
        state,
        bytesHeld: this.#loads.bytesHeld.get(rank) ?? 0,
        chunks: chunks.get(rank) ?? 0,
      };
    }));
    // Under-replicated now: chunks with a replica on a node that is down.
    let underReplicatedChunks = 0;
    for (const m of this.#index.values()) {
      for (const c of m.chunks) if (c.ranks.some((r) => this.#down.has(r))) underReplicatedChunks++;
    }
    const recent = this.scrubbed.problems;
    return {
      files: this.#index.size,
      ranks,
      repairs: this.repairs,
      scrub: { passes: this.scrubbed.passes, bytes: this.scrubbed.bytes },
      underReplicatedChunks,
      corruptReplicasFound: this.corruptReplicasFound,
      lostFiles: recent.filter((p) => p.outcome === "lost").length,
    };
  }

  /**
   * Start-up recovery: gathers every data node's manifests and chunk list, decides the committed
   * state (`planRecovery`), has every node repair itself to it, and loads the index.
   */
  async recover(): Promise<RecoveryPlan> {
    const scans = await this.#collective<ScanAnswer>((tag) => ({ op: "scan", tag }));
    const plan = planRecovery(scans);
    // A node already holding exactly what it should (the usual clean restart) is left alone:
    // rewriting its whole log would be most of the start-up time.
    const needed = [...plan.repairs].filter(([rank]) => !plan.unchanged.has(rank));
    await Promise.all(needed.map(([rank, repair]) => this.#call(rank, { op: "repair", repair })));
    for (const [rank, repair] of plan.repairs) this.#loads.add(rank, repair.bytesHeld);
    for (const m of plan.files) this.#index.install(m);
    return plan;
  }

  /**
   * Starts an upload of `name`; `size`, when given, is enforced; `replicas` (default: the server's)
   * may be anything from 1 to the number of data nodes. With `checksums`, every write must come
   * with its CRC32 and the commit with the client's SHA-256, which is recorded instead of hashing
   * the bytes again (see `protocol/messages.ts`).
   *
   * @throws {DfsError} `INVALID_REQUEST` for a replica count the cluster cannot keep.
   */
  beginUpload(
    name: string,
    options: { size?: number; replicas?: number; checksums?: boolean } = {},
  ): Upload {
    if (this.#uploads >= this.#uploadsMax) {
      throw new DfsError(
        "UNAVAILABLE",
        `Server is at its limit of ${this.#uploadsMax} uploads in progress; try again later`,
      );
    }
    const replicas = options.replicas ?? this.#replicas;
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > this.#dataRanks.length) {
      throw new DfsError(
        "INVALID_REQUEST",
        `Cannot keep ${replicas} replicas: there are ${this.#dataRanks.length} data nodes`,
      );
    }
    this.#uploads++;
    let ended = false;
    const onEnd = () => {
      if (!ended) this.#uploads--;
      ended = true;
    };
    const checksums = options.checksums === true;
    return new Upload(this, name, { declaredSize: options.size, replicas, checksums, onEnd });
  }

  /** @throws {DfsError} `NOT_FOUND` if no version of `name` is committed. */
  meta(name: string): Promise<FileMeta> {
    return Promise.try(() => fileMetaOf(this.#lookup(name)));
  }

  /** Stores `data` as `name` through an upload (see `beginUpload`). */
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
      const chunks = reader.chunks()[Symbol.asyncIterator]();
      const stream = new ReadableStream<Uint8Array>({
        async pull(controller) {
          try {
            const next = await chunks.next();
            if (next.done) {
              reader.close();
              return controller.close();
            }
            controller.enqueue(next.value.slice());
            reader.recycle(next.value);
          } catch (error) {
            reader.close();
            controller.error(error);
          }
        },
        async cancel() {
          await chunks.return?.();
          reader.close();
        },
      }, { highWaterMark: 0 });
      return { meta: reader.meta, stream };
    });
  }

  /**
   * Opens the current version of `name` for reading. A later overwrite does not disturb the reader:
   * the version it opened stays readable until `close()`.
   *
   * With `start`/`end` (byte offsets, end exclusive), only the chunks that range covers are read.
   *
   * @throws {DfsError} `NOT_FOUND` if no version of `name` is committed; `INVALID_REQUEST` for a
   *   range outside the file.
   */
  openRead(
    name: string,
    range: { start?: number; end?: number } = {},
    options: { budget?: Semaphore } = {},
  ): FileReader {
    const m = this.#lookup(name);
    const start = range.start ?? 0;
    const end = range.end ?? m.size;
    if (!(0 <= start && start <= end && end <= m.size)) {
      throw new DfsError(
        "INVALID_REQUEST",
        `Cannot read bytes ${start} to ${end} of "${name}": it has ${m.size} bytes`,
      );
    }
    const key = this.#pin(m);
    let open = true;
    const close = () => {
      if (!open) return;
      open = false;
      this.#unpin(key);
      while (held.length > 0) permits.release(); // chunks read but never written out
    };
    // Every chunk read ahead holds a permit of the caller's budget until it is written out, so
    // all the reads of one connection share `budget` (default: this read alone); a chunk read
    // ahead of the first also holds one of the server-wide `readAhead`. Permits go back in the
    // order they were taken (chunks are written out in order): `held` says which had both.
    const budget = options.budget ?? new Semaphore(READ_CHUNKS_INFLIGHT_MAX);
    const held: boolean[] = [];
    const permits = {
      acquire: async () => void (await budget.acquire(), held.push(false)),
      tryAcquire: () => {
        if (!budget.tryAcquire()) return false;
        if (!this.readAhead.tryAcquire()) return (budget.release(), false);
        held.push(true);
        return true;
      },
      release: () => {
        if (held.length === 0) return;
        if (held.shift()) this.readAhead.release();
        budget.release();
      },
    };
    const recycle = (chunk: Uint8Array) => {
      this.pool.give(chunk.buffer);
      permits.release();
    };
    const chunks = () => this.#readChunks(m, start, end, permits);
    return { meta: fileMetaOf(m), start, end, chunks, recycle, close };
  }

  /** Pins a version's stored data so that a later overwrite does not release it; returns its key. */
  #pin(m: Manifest): string {
    const key = dataKey(m);
    this.#pins.set(key, (this.#pins.get(key) ?? 0) + 1);
    return key;
  }

  /** Drops one pin of stored data; the last one out releases it if it was superseded meanwhile. */
  #unpin(key: string): void {
    const left = this.#pins.get(key)! - 1;
    if (left > 0) return void this.#pins.set(key, left);
    this.#pins.delete(key);
    const retired = this.#retiring.get(key);
    if (retired) {
      this.#retiring.delete(key);
      void this.#release(retired);
    }
  }

  /**
   * Removes `name`: a tombstone goes to every data node, then the file's chunks are released once
   * no reader has it open. A later restart never brings it back.
   *
   * @throws {DfsError} `NOT_FOUND` if there is no such file.
   */
  remove(name: string): Promise<void> {
    return this.#exclusive([name], async () => {
      this.#lookup(name);
      const tombstone = tombstoneOf(name, this.#index.nextVersion(), Date.now());
      await this.#onEveryNode(`remove "${name}"`, { op: "commit", manifest: tombstone });
      const { superseded } = this.#index.install(tombstone);
      if (superseded) this.#retire(superseded);
    });
  }

  /** Removes every file whose name starts with `prefix`; returns how many. */
  async removePrefix(prefix: string): Promise<number> {
    const names = [...this.#index.values()].map((m) => m.name).filter((n) => n.startsWith(prefix));
    let removed = 0;
    let next = 0;
    const worker = async () => {
      while (next < names.length) {
        const name = names[next++];
        try {
          await this.remove(name);
          removed++;
        } catch (error) {
          if (!(error instanceof DfsError && error.code === "NOT_FOUND")) throw error;
        }
      }
    };
    await Promise.all(Array.from({ length: REMOVE_PARALLEL_MAX }, worker));
    return removed;
  }

  /**
   * Renames `from` to `to` at once: one record on every data node moves the chunks to the new name
   * and leaves a tombstone on the old one, so no reader ever sees both names or neither.
   *
   * @throws {DfsError} `NOT_FOUND` for a missing `from`; `ALREADY_EXISTS` if `to` exists and
   *   `force` is not set (with it, the old `to` is replaced and released).
   */
  rename(from: string, to: string, options: { force?: boolean } = {}): Promise<FileMeta> {
    return this.#exclusive([from, to], async () => {
      const m = this.#lookup(from);
      if (from === to) return fileMetaOf(m);
      if (this.#index.get(to) && !options.force) {
        throw new DfsError(
          "ALREADY_EXISTS",
          `Cannot move "${from}" to "${to}": "${to}" exists (--force replaces it)`,
        );
      }
      const version = this.#index.nextVersion();
      const moved: Manifest = { ...m, name: to, version };
      const tombstone = tombstoneOf(from, version, Date.now());
      await this.#onEveryNode(`move "${from}"`, {
        op: "rename",
        fromVersion: m.version,
        tombstone,
        manifest: moved,
      });
      this.#index.install(tombstone); // `m` is not released: its chunks now belong to `moved`
      const { superseded } = this.#index.install(moved);
      if (superseded) this.#retire(superseded);
      return fileMetaOf(moved);
    });
  }

  /** Files, bytes and bytes stored (all replicas) under `prefix`. */
  usage(prefix = ""): Promise<Usage> {
    return Promise.resolve(this.#usage(prefix));
  }

  #usage(prefix: string): Usage {
    let files = 0;
    let bytes = 0;
    let storedBytes = 0;
    for (const m of this.#index.values()) {
      if (!m.name.startsWith(prefix)) continue;
      files++;
      bytes += m.size;
      for (const c of m.chunks) storedBytes += c.size * c.ranks.length;
    }
    return { files, bytes, storedBytes };
  }

  /** Each data node's bytes held and its file system's size and free space. */
  async capacity(): Promise<RankCapacity[]> {
    return await Promise.all(this.#dataRanks.map(async (rank) => {
      const fs = await this.#call<Omit<RankCapacity, "rank" | "bytesHeld">>(rank, {
        op: "statfs",
      });
      return { rank, bytesHeld: this.#loads.bytesHeld.get(rank) ?? 0, ...fs };
    }));
  }

  /**
   * Names under `prefix`, gathered from the data nodes, with size and modified time, in order;
   * those after `options.after`, at most `options.limit`.
   */
  async list(prefix = "", options: ListOptions = {}): Promise<ListEntry[]> {
    const all = await this.#list(prefix);
    const { after, limit } = options;
    let from = 0;
    if (after !== undefined) {
      while (from < all.length && all[from].name <= after) from++;
    }
    const to = limit === undefined ? all.length : Math.min(all.length, from + limit);
    return from === 0 && to === all.length ? all : all.slice(from, to);
  }

  async #list(prefix: string): Promise<ListEntry[]> {
    // While a node is down (being restarted) no collective can include it: answer from the index.
    if (this.#down.size > 0) {
      const entries = [...this.#index.values()]
        .filter((m) => m.name.startsWith(prefix))
        .map((m) => {
          const { name, size, modified, version } = m;
          return { name, size, modified, version, replicas: replicasOf(m) };
        });
      return mergeListings([toListing(entries)]);
    }
    const answers = await this.#collective<ListAnswer>((tag) => ({ op: "list", prefix, tag }));
    return mergeListings(answers);
  }

  #lookup(name: string): Manifest {
    const m = this.#index.get(name);
    if (!m) throw new DfsError("NOT_FOUND", `Cannot find "${name}": file does not exist`);
    return m;
  }

  /** bcast a question, then gather every data node's answer (rank 0 contributes nothing). */
  async #collective<T>(question: (tag: number) => NodeCollective): Promise<T[]> {
    const tag = this.#comm.nextTag();
    const options = { tag, timeoutMs: this.#timeoutMs };
    await this.#comm.bcast(0, question(tag), { timeoutMs: this.#timeoutMs });
    const answers = await this.#comm.gather<T | undefined>(0, undefined, options);
    return answers!.filter((a, rank): a is T => rank !== 0 && a !== undefined);
  }

  /** The bytes `start` to `end` of `m`, reading only the chunks that hold them. */
  async *#readChunks(
    m: Manifest,
    start: number,
    end: number,
    permits: { acquire(): Promise<void>; tryAcquire(): boolean; release(): void },
  ): AsyncIterable<Uint8Array> {
    // Each wanted chunk with the part of it to send.
    const wanted: { index: number; from: number; to: number }[] = [];
    let offset = 0;
    m.chunks.forEach((chunk, index) => {
      const from = Math.max(start - offset, 0);
      const to = Math.min(end - offset, chunk.size);
      if (from < to) wanted.push({ index, from, to });
      offset += chunk.size;
    });
    const reads: Promise<Uint8Array>[] = [];
    let next = 0;
    try {
      while (next < wanted.length || reads.length > 0) {
        while (next < wanted.length && reads.length < READ_CHUNKS_INFLIGHT_MAX) {
          // Read ahead only while the budget allows; with nothing in flight, wait for a permit.
          if (reads.length === 0) await permits.acquire();
          else if (!permits.tryAcquire()) break;
          const { index, from, to } = wanted[next++];
          const read = this.#readChunk(m.chunks[index], index).then((b) => b.subarray(from, to));
          read.catch(() => {}); // awaited below in order; avoid an unhandled rejection meanwhile
          reads.push(read);
        }
        yield await reads.shift()!;
      }
    } finally {
      // Reads never handed out: their buffers and permits come back here.
      for (const settled of await Promise.allSettled(reads)) {
        if (settled.status === "fulfilled") this.pool.give(settled.value.buffer);
        permits.release();
      }
    }
  }

  /**
   * Reads one chunk from one of its replicas (spread by chunk index), failing over to the others.
   * A replica found corrupted (bad CRC32 or size) or missing is rewritten from the good bytes
   * (read repair) without delaying the read.
   */
  async #readChunk(chunk: ChunkRef, index: number): Promise<Uint8Array> {
    let lastError: unknown;
    const damaged: number[] = [];
    for (let i = 0; i < chunk.ranks.length; i++) {
      const rank = chunk.ranks[(index + i) % chunk.ranks.length];
      try {
        const bytes = await this.#readReplica(chunk, rank);
        if (damaged.length > 0) this.#repair(chunk, bytes, damaged);
        return bytes;
      } catch (error) {
        lastError = error;
        const code = error instanceof DfsError ? error.code : undefined;
        if (code === "CORRUPTED" || code === "NOT_FOUND") {
          damaged.push(rank);
          this.corruptReplicasFound++;
        }
      }
    }
    throw lastError instanceof DfsError
      ? lastError
      : new DfsError("UNAVAILABLE", `Cannot read a chunk from ranks ${chunk.ranks.join(", ")}`);
  }

  /**
   * Checks every replica of every chunk of every file (reading and checking each against its CRC32)
   * and repairs what it can from a good replica. Lost: some chunk has no good replica left.
   */
  async fsck(): Promise<FsckReport> {
    const report: FsckReport = {
      files: 0,
      chunks: 0,
      bytesChecked: 0,
      healthy: 0,
      repaired: [],
      underReplicated: [],
      lost: [],
    };
    const files = [...this.#index.values()];
    let next = 0;
    const worker = async () => {
      while (next < files.length) {
        const m = files[next++];
        const outcome = await this.#checkFile(m, report);
        report.files++;
        if (outcome === "healthy") report.healthy++;
        else report[outcome].push(m.name);
      }
    };
    await Promise.all(Array.from({ length: FSCK_FILES_PARALLEL_MAX }, worker));
    for (const list of [report.repaired, report.underReplicated, report.lost]) list.sort();
    return report;
  }

  /**
   * The background scrubber: re-reads every replica of every chunk, at most `bytesPerSec`, repairs
   * what it finds, and starts over after `pauseMs`. Stops when `signal` aborts.
   */
  async scrub(
    options: { bytesPerSec: number; pauseMs: number; signal: AbortSignal },
  ): Promise<void> {
    const { bytesPerSec, pauseMs, signal } = options;
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", wake);
          resolve();
        };
        const timer = setTimeout(wake, ms);
        signal.addEventListener("abort", wake);
      });
    while (!signal.aborted) {
      for (const m of [...this.#index.values()]) {
        if (signal.aborted) return;
        if (this.#index.get(m.name) !== m) continue; // replaced meanwhile
        const report = { bytesChecked: 0, chunks: 0 };
        const outcome = await this.#checkFile(m, report);
        this.scrubbed.bytes += report.bytesChecked;
        if (outcome !== "healthy") {
          this.scrubbed.problems.push({ name: m.name, outcome, at: Date.now() });
        }
        if (this.scrubbed.problems.length > SCRUB_PROBLEMS_KEPT_MAX) this.scrubbed.problems.shift();
        await sleep((1000 * scrubCostBytes(m)) / bytesPerSec);
      }
      this.scrubbed.passes++;
      await sleep(pauseMs);
    }
  }

  /** Checks one file's replicas, repairing bad ones; says how the file stands. */
  async #checkFile(
    m: Manifest,
    counts: { bytesChecked: number; chunks: number },
  ): Promise<"healthy" | "repaired" | "underReplicated" | "lost"> {
    const key = this.#pin(m); // keep the chunks while we look
    let outcome: "healthy" | "repaired" | "underReplicated" | "lost" = "healthy";
    const worse = (o: typeof outcome) => {
      const order = ["healthy", "repaired", "underReplicated", "lost"];
      if (order.indexOf(o) > order.indexOf(outcome)) outcome = o;
    };
    try {
      for (const chunk of m.chunks) {
        counts.chunks++;
        const { good, damaged, unreachable } = await this.#checkChunk(chunk, counts);
        if (!good) {
          worse("lost");
          continue;
        }
        if (damaged.length > 0) {
          const fixed = await this.#restore(chunk, good, damaged);
          worse(fixed ? "repaired" : "underReplicated");
        }
        if (unreachable.length > 0) worse("underReplicated");
        this.pool.give(good.buffer);
      }
    } finally {
      this.#unpin(key);
    }
    return outcome;
  }

  /** Reads a chunk from every replica; returns good bytes (if any) and which replicas failed. */
  async #checkChunk(
    chunk: ChunkRef,
    counts: { bytesChecked: number },
  ): Promise<{ good?: Uint8Array; damaged: number[]; unreachable: number[] }> {
    const damaged: number[] = [];
    const unreachable: number[] = [];
    let good: Uint8Array | undefined;
    for (const rank of chunk.ranks) {
      try {
        const bytes = await this.#readReplica(chunk, rank);
        counts.bytesChecked += bytes.length;
        if (good) this.pool.give(bytes.buffer);
        else good = bytes;
      } catch (error) {
        const code = error instanceof DfsError ? error.code : undefined;
        if (code === "CORRUPTED" || code === "NOT_FOUND") {
          damaged.push(rank);
          this.corruptReplicasFound++;
        } else unreachable.push(rank);
      }
    }
    return { good, damaged, unreachable };
  }

  /** Rewrites a chunk on `ranks` from good bytes and waits; true if all were rewritten. */
  async #restore(chunk: ChunkRef, good: Uint8Array, ranks: readonly number[]): Promise<boolean> {
    const results = await Promise.allSettled(ranks.map((rank) => {
      const copy = this.#copy(good);
      const call: NodeCall = { op: "restore", id: chunk.id, bytes: copy, crc32: chunk.crc32 };
      return this.#call(rank, call, [copy.buffer as ArrayBuffer]);
    }));
    this.repairs += results.filter((r) => r.status === "fulfilled").length;
    return results.every((r) => r.status === "fulfilled");
  }

  /** Rewrites a chunk on the ranks that had it damaged or missing, in the background. */
  #repair(chunk: ChunkRef, good: Uint8Array, ranks: readonly number[]): void {
    this.#restore(chunk, good, ranks).then((all) => {
      const where = `chunk ${chunk.id} on ranks ${ranks.join(", ")}`;
      console.error(
        all ? `dfs: repaired ${where} from a good replica` : `dfs: cannot repair ${where}`,
      );
    });
  }

  /** Reads one replica into a pooled buffer lent to the node; it comes back holding the chunk. */
  #readReplica(chunk: ChunkRef, rank: number): Promise<Uint8Array> {
    // Small chunks are read whole by the store into a buffer of their own: lend nothing then.
    const lend = chunk.size > SMALL_READ_BYTES_MAX && chunk.size <= this.pool.bufferBytes;
    const into = lend ? this.pool.take().buffer : undefined;
    const call: NodeCall = { op: "read", id: chunk.id, size: chunk.size, crc32: chunk.crc32, into };
    return this.#call<Uint8Array>(rank, call, into && [into]);
  }

  // ---- used by Upload ----

  /**
   * Sends a chunk to the least loaded data nodes; `written` resolves when every replica is written
   * into its blob (the commit makes them durable).
   */
  storeChunk(
    id: string,
    bytes: Uint8Array,
    options: { replicas: number; crc32?: number },
  ): { ref: ChunkRef; written: Promise<void> } {
    const ref = this.placeChunk(id, bytes, options);
    const { ranks } = ref;
    const writes = ranks.map(async (rank, i) => {
      // The last replica takes the caller's buffer; the others get copies (transfer detaches).
      // Each node hands the buffer back with its answer, and it returns to the pool.
      const copy = i === ranks.length - 1 ? bytes : this.#copy(bytes);
      const call: NodeCall = { op: "write", id: ref.id, bytes: copy, crc32: ref.crc32 };
      this.pool.give(await this.#call<ArrayBuffer>(rank, call, [copy.buffer as ArrayBuffer]));
    });
    return { ref, written: Promise.all(writes).then(() => {}) };
  }

  /**
   * Picks the least loaded data nodes for a chunk and counts it on them (without sending it).
   * The checksum is taken as the bytes arrive (or was checked against the client's); each data
   * node checks it before writing.
   */
  placeChunk(
    id: string,
    bytes: Uint8Array,
    options: { replicas: number; crc32?: number },
  ): ChunkRef {
    const ranks = this.#loads.place(bytes.length, options.replicas, this.#down);
    return { id, size: bytes.length, ranks, crc32: options.crc32 ?? crc32(bytes) };
  }

  /** A copy in a pooled buffer for large chunks, or an exact one for small chunks. */
  #copy(bytes: Uint8Array): Uint8Array {
    if (bytes.length <= SMALL_READ_BYTES_MAX || bytes.length > this.pool.bufferBytes) {
      return bytes.slice();
    }
    const copy = this.pool.take().subarray(0, bytes.length);
    copy.set(bytes);
    return copy;
  }

  /** Removes chunks of an upload that will never commit (best effort: start-up cleans the rest). */
  async discardChunks(refs: readonly ChunkRef[]): Promise<void> {
    const byRank = new Map<number, string[]>();
    for (const ref of refs) {
      for (const rank of ref.ranks) {
        byRank.set(rank, [...(byRank.get(rank) ?? []), ref.id]);
        this.#loads.add(rank, -ref.size);
      }
    }
    await Promise.allSettled(
      [...byRank].map(([rank, ids]) => this.#call(rank, { op: "discard", ids })),
    );
  }

  /**
   * Commits an upload whose chunks are all written: every holder makes its chunks durable and
   * appends the manifest, then rank 0 installs it. Committed once any holder has it durably
   * (recovery would pick it up; a holder whose commit failed is repaired like a damaged replica).
   */
  commit(draft: Omit<Manifest, "version" | "modified">, data?: Uint8Array): Promise<FileMeta> {
    return this.#exclusive([draft.name], () => this.#commit(draft, data));
  }

  /** With `data`, the manifest's one chunk travels with it (a copy to each holder). */
  async #commit(
    draft: Omit<Manifest, "version" | "modified">,
    data: Uint8Array | undefined,
  ): Promise<FileMeta> {
    const m: Manifest = { ...draft, version: this.#index.nextVersion(), modified: Date.now() };
    const holders = [...holdersOf(m)];
    const results = await Promise.allSettled(holders.map((rank) => {
      // A small file's bytes are copied by postMessage: not transferring them lets the commit
      // travel with other packets to the same node (see `port_transport.ts`).
      return this.#call(rank, { op: "commit", manifest: m, data });
    }));
    const failed = results.filter((r) => r.status === "rejected");
    if (failed.length === holders.length) {
      throw new DfsError(
        "UNAVAILABLE",
        `Cannot commit "${m.name}": no data node stored its metadata`,
        {
          cause: (failed[0] as PromiseRejectedResult).reason,
        },
      );
    }
    const { superseded } = this.#index.install(m);
    if (superseded) this.#retire(superseded);
    return fileMetaOf(m);
  }

  #retire(m: Manifest): void {
    const key = dataKey(m);
    if (this.#pins.has(key)) this.#retiring.set(key, m);
    else void this.#release(m);
  }

  /**
   * Runs `work` once every earlier metadata change of these names is done. All names are queued at
   * once, in one synchronous step, so two changes never wait for each other in a cycle.
   */
  async #exclusive<T>(names: string[], work: () => Promise<T>): Promise<T> {
    const keys = [...new Set(names)];
    const earlier = keys.map((key) => this.#locks.get(key));
    const done = Promise.withResolvers<void>();
    for (const key of keys) this.#locks.set(key, done.promise);
    try {
      await Promise.all(earlier);
      return await work();
    } finally {
      done.resolve();
      for (const key of keys) if (this.#locks.get(key) === done.promise) this.#locks.delete(key);
    }
  }

  /** Sends one call to every data node; fine if at least one stored it durably. */
  async #onEveryNode(what: string, call: NodeCall): Promise<void> {
    const results = await Promise.allSettled(this.#dataRanks.map((rank) => this.#call(rank, call)));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed.length === results.length) {
      throw new DfsError("UNAVAILABLE", `Cannot ${what}: no data node stored it`, {
        cause: failed[0].reason,
      });
    }
    for (const f of failed) console.error(`dfs: a data node could not ${what}: ${f.reason}`);
  }

  async #release(m: Manifest): Promise<void> {
    for (const c of m.chunks) for (const rank of c.ranks) this.#loads.add(rank, -c.size);
    const call: NodeCall = { op: "release", name: m.name, version: m.version };
    const cannot = (rank: number, error: unknown) => {
      // Not lost: the next start-up drops superseded versions.
      console.error(`dfs: cannot release "${m.name}" v${m.version} on rank ${rank}: ${error}`);
    };
    await Promise.all([...holdersOf(m)].map(async (rank) => {
      try {
        await this.#call(rank, call);
      } catch (error) {
        // Decided as each call fails, not once all have: the node may be back up by then.
        const missed = this.#missedReleases.get(rank) ?? [];
        if (this.#down.has(rank) && missed.length < MISSED_RELEASES_MAX) {
          // A reconcile running now may have kept it: send it again once the node is back.
          this.#missedReleases.set(rank, [...missed, m]);
        } else if (!this.#down.has(rank)) {
          // Back up since the call failed (its reconcile may have kept the version): once more.
          await this.#call(rank, call).catch((again) => cannot(rank, again));
        } else cannot(rank, error);
      }
    }));
  }

  /** Releases a down node missed, by rank: sent once it is back up (`markUp`). */
  readonly #missedReleases = new Map<number, Manifest[]>();

  /** Data nodes currently down (crashed or hung, being restarted): nothing is sent to them. */
  readonly #down = new Set<number>();

  /** Marks a data node down: reads fail over at once, new chunks and metadata go elsewhere. */
  markDown(rank: number): void {
    this.#down.add(rank);
  }

  /** Marks a reconciled data node up again. */
  markUp(rank: number): void {
    this.#down.delete(rank);
    const missed = this.#missedReleases.get(rank) ?? [];
    this.#missedReleases.delete(rank);
    for (const m of missed) {
      this.#call(rank, { op: "release", name: m.name, version: m.version }).catch((error) => {
        console.error(`dfs: cannot release "${m.name}" v${m.version} on rank ${rank}: ${error}`);
      });
    }
  }

  /**
   * Brings a restarted data node in line with the index: it keeps exactly the manifests of current
   * files it holds chunks of, drops every other chunk (released or removed while it was down, so
   * nothing deleted comes back, and nothing is counted twice), and gets back any chunk it lost,
   * copied from a good replica. Call it while the node is still marked down.
   */
  async reconcile(rank: number): Promise<{ dropped: number; restored: number }> {
    const direct = <T>(call: NodeCall, transfer?: ArrayBuffer[]) =>
      this.#comm.call<T>(rank, call, { transfer, timeoutMs: this.#timeoutMs });
    const scan = await direct<ScanAnswer>({ op: "scan" });
    const keep = [...this.#index.values()].filter((m) => holdersOf(m).has(rank));
    const wanted = new Map<string, ChunkRef>();
    for (const m of keep) for (const c of m.chunks) if (c.ranks.includes(rank)) wanted.set(c.id, c);
    const present = new Map(scan.blobs);
    const inLog = new Set(scan.inLog ? scan.inLog.split("\0") : []);
    const wantedBlobs = new Set([...wanted.keys()].map(blobOf));
    const deleteBlobs = [...present.keys()].filter((blob) => !wantedBlobs.has(blob));
    let bytesHeld = 0;
    for (const c of wanted.values()) bytesHeld += c.size;
    await direct({ op: "repair", repair: { keep, deleteBlobs, bytesHeld } });
    this.#loads.set(rank, bytesHeld);
    let restored = 0;
    for (const chunk of wanted.values()) {
      if (inLog.has(chunk.id)) continue;
      if ((present.get(blobOf(chunk.id)) ?? -1) >= offsetOf(chunk.id) + chunk.size) continue;
      const others = { ...chunk, ranks: chunk.ranks.filter((r) => r !== rank) };
      const { good } = await this.#checkChunk(others, { bytesChecked: 0 });
      if (!good) {
        console.error(
          `dfs: chunk ${chunk.id} has no good replica left to restore rank ${rank} from`,
        );
        continue;
      }
      const copy = this.#copy(good);
      this.pool.give(good.buffer);
      await direct({ op: "restore", id: chunk.id, bytes: copy, crc32: chunk.crc32 }, [
        copy.buffer as ArrayBuffer,
      ]);
      restored++;
      this.repairs++;
    }
    return { dropped: deleteBlobs.length, restored };
  }

  /**
   * Moves every replica a down rank held to live nodes: each chunk with a replica on `rank` is
   * copied from a good replica to the least loaded live node that lacks it, then the file gets a
   * new version of its manifest (same data, new placement) through one rename record per node, so
   * every file has its replica count again. Returns how many chunks were copied.
   *
   * @throws {DfsError} `UNAVAILABLE` if no live node can take a replica, or none is left to copy.
   */
  async rereplicate(rank: number): Promise<number> {
    let copied = 0;
    for (const m of [...this.#index.values()]) {
      if (!holdersOf(m).has(rank)) continue;
      copied += await this.#exclusive([m.name], async () => {
        const current = this.#index.get(m.name);
        if (!current || !holdersOf(current).has(rank) || !this.#down.has(rank)) return 0;
        const chunks: ChunkRef[] = [];
        for (const chunk of current.chunks) {
          if (!chunk.ranks.includes(rank)) {
            chunks.push(chunk);
            continue;
          }
          const live = chunk.ranks.filter((r) => r !== rank);
          const { good } = await this.#checkChunk({ ...chunk, ranks: live }, { bytesChecked: 0 });
          if (!good) {
            throw new DfsError("UNAVAILABLE", `No good replica of chunk ${chunk.id} is left`);
          }
          const [target] = this.#loads.place(
            chunk.size,
            1,
            new Set([...this.#down, ...chunk.ranks]),
          );
          const copy = this.#copy(good);
          this.pool.give(good.buffer);
          const call: NodeCall = { op: "restore", id: chunk.id, bytes: copy, crc32: chunk.crc32 };
          await this.#call(target, call, [copy.buffer as ArrayBuffer]);
          this.#loads.add(rank, -chunk.size);
          chunks.push({ ...chunk, ranks: [...live, target] });
        }
        const next: Manifest = { ...current, version: this.#index.nextVersion(), chunks };
        await this.#onEveryNode(`re-replicate "${current.name}"`, {
          op: "rename",
          fromVersion: current.version,
          manifest: next,
        });
        this.#index.install(next); // the same data: `current` must not be released
        return chunks.filter((c, i) => c !== current.chunks[i]).length;
      });
    }
    return copied;
  }

  /** Ranks a `kill` test hook took down for good: the supervisor does not restart them. */
  readonly keptDown = new Set<number>();

  /** Test hook: makes a data node crash, hang, or die for good (only with --test-hooks). */
  testHook(rank: number, mode: "crash" | "hang" | "kill"): void {
    if (mode === "kill") this.keptDown.add(rank);
    const op = mode === "hang" ? "hang" : "crash";
    this.#comm.call(rank, { op }, { timeoutMs: 1000 }).catch(() => {});
  }

  #call<T = unknown>(rank: number, call: NodeCall, transfer?: ArrayBuffer[]): Promise<T> {
    if (this.#down.has(rank)) {
      return Promise.reject(new DfsError("UNAVAILABLE", `Rank ${rank} is down`));
    }
    return this.#comm.call<T>(rank, call, { transfer, timeoutMs: this.#timeoutMs });
  }
}

/** One upload in progress. Feed it with `write()`, then `commit()` or `abort()`. */
export class Upload implements UploadApi {
  #coordinator: Coordinator;
  #name: string;
  #declaredSize: number | undefined;
  #replicas: number;
  /** Called once when the upload commits or is dropped (frees its slot). */
  #onEnd: () => void;
  /** The SHA-256 of the bytes, unless the client sends its own (`checksums`). */
  #hash: Hash | null;
  #received = 0;
  /** This upload's blob on every data node it writes to (see `chunk_id.ts`). */
  #blob = newBlobId();
  /** Bytes handed to `storeChunk()` so far: the next chunk's offset. */
  #sent = 0;
  #chunks: ChunkRef[] = [];
  #inflight: Promise<void>[] = [];
  #buffer: Uint8Array | null = null;
  #buffered = 0;
  #failure: unknown = null;
  #done = false;

  constructor(
    coordinator: Coordinator,
    name: string,
    options: {
      declaredSize: number | undefined;
      replicas: number;
      checksums: boolean;
      onEnd: () => void;
    },
  ) {
    this.#coordinator = coordinator;
    this.#hash = options.checksums ? null : createHash("sha256");
    this.#name = name;
    this.#declaredSize = options.declaredSize;
    this.#replicas = options.replicas;
    this.#onEnd = options.onEnd;
  }

  get receivedBytes(): number {
    return this.#received;
  }

  /**
   * Takes the next bytes of the file, with their CRC32 as the client computed it (required with
   * `checksums`). Takes ownership of `bytes` (its buffer may be transferred to a data node). Waits
   * while `UPLOAD_CHUNKS_INFLIGHT_MAX` chunks are unacknowledged.
   *
   * @throws {DfsError} `INVALID_REQUEST` past the declared size or for a missing CRC32;
   *   `CORRUPTED` for bytes that do not match their CRC32; any error of an earlier chunk.
   */
  async write(bytes: Uint8Array, expectedCrc32?: number): Promise<void> {
    assert(!this.#done, "write() after commit() or abort()");
    if (this.#failure) throw this.#failure;
    if (expectedCrc32 === undefined && !this.#hash) {
      throw new DfsError(
        "INVALID_REQUEST",
        `Upload of "${this.#name}" promised checksums, but a data frame has no crc32`,
      );
    }
    const received = expectedCrc32 === undefined ? undefined : crc32(bytes);
    if (received !== expectedCrc32) {
      throw new DfsError(
        "CORRUPTED",
        `Upload of "${this.#name}": a data frame arrived damaged (its CRC32 does not match)`,
      );
    }
    if (this.#declaredSize !== undefined && this.#received + bytes.length > this.#declaredSize) {
      throw new DfsError(
        "INVALID_REQUEST",
        `Upload of "${this.#name}" sent more than its declared ${this.#declaredSize} bytes`,
      );
    }
    this.#received += bytes.length;
    this.#hash?.update(bytes);
    if (this.#buffered === 0 && bytes.length === CHUNK_SIZE_BYTES) {
      // The common case: one client frame is one chunk, no copy, its CRC32 taken once.
      return await this.#send(bytes, received);
    }
    let at = 0;
    while (at < bytes.length) {
      this.#buffer ??= this.#coordinator.pool.take();
      const n = Math.min(bytes.length - at, CHUNK_SIZE_BYTES - this.#buffered);
      this.#buffer.set(bytes.subarray(at, at + n), this.#buffered);
      this.#buffered += n;
      at += n;
      if (this.#buffered === CHUNK_SIZE_BYTES) await this.#flush();
    }
  }

  /**
   * Waits for every chunk to be written and commits the file.
   *
   * @throws {DfsError} `INVALID_REQUEST` if fewer bytes than declared arrived; `CORRUPTED` if
   *   `sha256` is given and differs from the bytes received.
   */
  async commit(options: { sha256?: string } = {}): Promise<FileMeta> {
    try {
      if (this.#failure) throw this.#failure;
      if (this.#declaredSize !== undefined && this.#received !== this.#declaredSize) {
        throw new DfsError(
          "INVALID_REQUEST",
          `Upload of "${this.#name}" ended after ${this.#received} of its declared ${this.#declaredSize} bytes`,
        );
      }
      // A small file (an empty one too: one empty chunk) goes with its commit.
      const data = this.#chunks.length === 0 && this.#buffered <= LOG_FILE_BYTES_MAX
        ? this.#takeBuffered()
        : undefined;
      if (this.#buffered > 0) await this.#flush();
      if (!this.#hash && options.sha256 === undefined) {
        throw new DfsError(
          "INVALID_REQUEST",
          `Upload of "${this.#name}" promised checksums, but its end has no sha256`,
        );
      }
      const sha256 = this.#hash?.digest("hex") ?? options.sha256!;
      if (options.sha256 !== undefined && options.sha256 !== sha256) {
        throw new DfsError(
          "CORRUPTED",
          `Upload of "${this.#name}" does not match the client's SHA-256`,
        );
      }
      await Promise.all(this.#inflight);
      this.#done = true;
      if (data) {
        const id = chunkIdOf(this.#blob, 0);
        this.#chunks.push(this.#coordinator.placeChunk(id, data, { replicas: this.#replicas }));
      }
      const draft = { name: this.#name, size: this.#received, sha256, chunks: this.#chunks };
      const meta = await this.#coordinator.commit(draft, data);
      this.#chunks = []; // committed: they belong to the file now, abort() must not touch them
      this.#onEnd();
      return meta;
    } catch (error) {
      await this.abort();
      throw error;
    }
  }

  /** Drops the upload and removes whatever it stored. Safe to call more than once. */
  async abort(): Promise<void> {
    this.#onEnd();
    if (this.#buffer) this.#coordinator.pool.give(this.#buffer.buffer);
    this.#buffer = null;
    if (this.#done && this.#chunks.length === 0) return;
    this.#done = true;
    await Promise.allSettled(this.#inflight);
    const chunks = this.#chunks;
    this.#chunks = [];
    this.#inflight = [];
    await this.#coordinator.discardChunks(chunks);
  }

  /** The bytes buffered, in an exact copy (the pooled buffer goes back). */
  #takeBuffered(): Uint8Array {
    const bytes = (this.#buffer ?? new Uint8Array(0)).slice(0, this.#buffered);
    if (this.#buffer) this.#coordinator.pool.give(this.#buffer.buffer);
    this.#buffer = null;
    this.#buffered = 0;
    return bytes;
  }

  async #flush(): Promise<void> {
    const buffer = this.#buffer;
    let bytes = (buffer ?? new Uint8Array(0)).subarray(0, this.#buffered);
    if (buffer && this.#buffered <= SMALL_READ_BYTES_MAX) {
      // A small last chunk (or a small file) travels in an exact copy; the big buffer goes back.
      bytes = bytes.slice();
      this.#coordinator.pool.give(buffer.buffer);
    }
    this.#buffer = null;
    this.#buffered = 0;
    await this.#send(bytes);
  }

  async #send(bytes: Uint8Array, crc32?: number): Promise<void> {
    // This upload's window, then the server's: chunks in flight hold a permit until written
    // (never waiting on a client, so the permits always come back).
    while (this.#inflight.length >= UPLOAD_CHUNKS_INFLIGHT_MAX) await this.#inflight.shift();
    const window = this.#coordinator.uploadWindow;
    await window.acquire();
    const id = chunkIdOf(this.#blob, this.#sent);
    this.#sent += bytes.length;
    const options = { replicas: this.#replicas, crc32 };
    const { ref, written } = this.#coordinator.storeChunk(id, bytes, options);
    const settled = written.finally(() => window.release());
    this.#chunks.push(ref);
    this.#inflight.push(settled);
    settled.catch((error) => this.#failure ??= error);
  }
}

/** The bytes the scrubber charges for checking every replica of `m` (`SCRUB_READ_COST_BYTES_MIN`). */
export function scrubCostBytes(m: Manifest): number {
  let cost = 0;
  for (const chunk of m.chunks) {
    cost += chunk.ranks.length * Math.max(chunk.size, SCRUB_READ_COST_BYTES_MIN);
  }
  return cost;
}
