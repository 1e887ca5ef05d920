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
import { assert, DfsError } from "../protocol/errors.ts";
import { BufferPool } from "../protocol/buffer_pool.ts";
import { CHUNK_SIZE_BYTES, FRAME_SIZE_BYTES_MAX } from "../protocol/limits.ts";
import type { FileMeta, ListEntry } from "../protocol/messages.ts";
import { newChunkId } from "./chunk_store.ts";
import type { Comm } from "./comm.ts";
import {
  type ChunkRef,
  FileIndex,
  fileMetaOf,
  holdersOf,
  type Manifest,
  mergeListings,
  planRecovery,
  type RecoveryPlan,
} from "./metadata.ts";
import type { ListAnswer, NodeCall, NodeCollective, ScanAnswer } from "./node_protocol.ts";
import { LoadTracker } from "./placement.ts";

/** Chunks of one upload sent to data nodes and not yet acknowledged as durable. */
export const UPLOAD_CHUNKS_INFLIGHT_MAX = 8;
/** Chunk reads of one download in flight ahead of the socket. */
export const READ_CHUNKS_INFLIGHT_MAX = 8;
/** Idle chunk buffers rank 0 keeps for reuse (each `FRAME_SIZE_BYTES_MAX`). */
export const POOL_BUFFERS_MAX = 64;
/** How long rank 0 waits for a data node's answer to one request. */
export const NODE_CALL_TIMEOUT_MS = 60_000;

export interface CoordinatorOptions {
  /** Ranks of the data nodes (1..N-1). */
  dataRanks: number[];
  /** Copies of every chunk. */
  replicas: number;
  nodeCallTimeoutMs?: number;
}

/** An open read of one committed version; holds that version's chunks until closed. */
export interface FileReader {
  readonly meta: FileMeta;
  /** The file's bytes, chunk by chunk, in order. */
  chunks(): AsyncIterable<Uint8Array>;
  /** Hands a chunk's buffer back for reuse once it has been written out. */
  recycle(chunk: Uint8Array): void;
  close(): void;
}

export class Coordinator {
  /**
   * Chunk buffers: socket frames are read into them, they travel to the data nodes and come back
   * with the answer, so steady transfers allocate nothing.
   */
  readonly pool: BufferPool = new BufferPool(FRAME_SIZE_BYTES_MAX, {
    buffersMax: POOL_BUFFERS_MAX,
  });
  #comm: Comm;
  #dataRanks: number[];
  #replicas: number;
  #timeoutMs: number;
  #index = new FileIndex();
  #loads: LoadTracker;
  #pins = new Map<Manifest, number>();
  #retiring = new Set<Manifest>();

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
  }

  get fileCount(): number {
    return this.#index.size;
  }

  /**
   * Start-up recovery: gathers every data node's manifests and chunk list, decides the committed
   * state (`planRecovery`), has every node repair itself to it, and loads the index.
   */
  async recover(): Promise<RecoveryPlan> {
    const scans = await this.#collective<ScanAnswer>((tag) => ({ op: "scan", tag }));
    const plan = planRecovery(scans);
    await Promise.all(
      [...plan.repairs].map(([rank, repair]) => this.#call(rank, { op: "repair", repair })),
    );
    for (const [rank, repair] of plan.repairs) this.#loads.add(rank, repair.bytesHeld);
    for (const m of plan.files) this.#index.install(m);
    return plan;
  }

  /** Starts an upload of `name`; `size`, when given, is enforced. */
  beginUpload(name: string, options: { size?: number } = {}): Upload {
    return new Upload(this, name, options.size);
  }

  /** @throws {DfsError} `NOT_FOUND` if no version of `name` is committed. */
  meta(name: string): FileMeta {
    return fileMetaOf(this.#lookup(name));
  }

  /**
   * Opens the current version of `name` for reading. A later overwrite does not disturb the reader:
   * the version it opened stays readable until `close()`.
   *
   * @throws {DfsError} `NOT_FOUND` if no version of `name` is committed.
   */
  openRead(name: string): FileReader {
    const m = this.#lookup(name);
    this.#pins.set(m, (this.#pins.get(m) ?? 0) + 1);
    let open = true;
    const close = () => {
      if (!open) return;
      open = false;
      const left = this.#pins.get(m)! - 1;
      if (left > 0) return void this.#pins.set(m, left);
      this.#pins.delete(m);
      if (this.#retiring.delete(m)) void this.#release(m);
    };
    const recycle = (chunk: Uint8Array) => this.pool.give(chunk.buffer);
    return { meta: fileMetaOf(m), chunks: () => this.#readChunks(m), recycle, close };
  }

  /** All names under `prefix`, gathered from the data nodes, with size and modified time. */
  async list(prefix: string): Promise<ListEntry[]> {
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

  async *#readChunks(m: Manifest): AsyncIterable<Uint8Array> {
    const reads: Promise<Uint8Array>[] = [];
    let next = 0;
    try {
      while (next < m.chunks.length || reads.length > 0) {
        while (next < m.chunks.length && reads.length < READ_CHUNKS_INFLIGHT_MAX) {
          const read = this.#readChunk(m.chunks[next], next);
          read.catch(() => {}); // awaited below in order; avoid an unhandled rejection meanwhile
          reads.push(read);
          next++;
        }
        yield await reads.shift()!;
      }
    } finally {
      await Promise.allSettled(reads);
    }
  }

  /** Reads one chunk from one of its replicas (spread by chunk index), failing over to the others. */
  async #readChunk(chunk: ChunkRef, index: number): Promise<Uint8Array> {
    let lastError: unknown;
    for (let i = 0; i < chunk.ranks.length; i++) {
      const rank = chunk.ranks[(index + i) % chunk.ranks.length];
      try {
        // Lend the node a pooled buffer to read into; it comes back holding the chunk.
        const into = chunk.size <= this.pool.bufferBytes ? this.pool.take().buffer : undefined;
        const call: NodeCall = { op: "read", id: chunk.id, size: chunk.size, into };
        const bytes = await this.#call<Uint8Array>(rank, call, into && [into]);
        if (bytes.length === chunk.size) return bytes;
        lastError = new DfsError("CORRUPTED", `Chunk on rank ${rank} has the wrong size`);
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError instanceof DfsError
      ? lastError
      : new DfsError("UNAVAILABLE", `Cannot read a chunk from ranks ${chunk.ranks.join(", ")}`);
  }

  // ---- used by Upload ----

  /** Sends a chunk to the least loaded data nodes; resolves when every replica is durable. */
  storeChunk(bytes: Uint8Array): { ref: ChunkRef; durable: Promise<void> } {
    const ranks = this.#loads.place(bytes.length, this.#replicas);
    const ref = { id: newChunkId(), size: bytes.length, ranks };
    const writes = ranks.map(async (rank, i) => {
      // The last replica takes the caller's buffer; the others get copies (transfer detaches).
      // Each node hands the buffer back with its answer, and it returns to the pool.
      const copy = i === ranks.length - 1 ? bytes : this.#copy(bytes);
      const call: NodeCall = { op: "write", id: ref.id, bytes: copy };
      this.pool.give(await this.#call<ArrayBuffer>(rank, call, [copy.buffer as ArrayBuffer]));
    });
    return { ref, durable: Promise.all(writes).then(() => {}) };
  }

  #copy(bytes: Uint8Array): Uint8Array {
    const copy = bytes.length <= this.pool.bufferBytes
      ? this.pool.take().subarray(0, bytes.length)
      : new Uint8Array(bytes.length);
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
   * Commits an upload whose chunks are all durable: appends its manifest on every holder, then
   * installs it. Committed once any holder has it durably (recovery would pick it up).
   */
  async commit(draft: Omit<Manifest, "version" | "modified">): Promise<FileMeta> {
    const m: Manifest = { ...draft, version: this.#index.nextVersion(), modified: Date.now() };
    const holders = [...holdersOf(m)];
    const results = await Promise.allSettled(
      holders.map((rank) => this.#call(rank, { op: "commit", manifest: m })),
    );
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
    if (this.#pins.has(m)) this.#retiring.add(m);
    else void this.#release(m);
  }

  async #release(m: Manifest): Promise<void> {
    for (const c of m.chunks) for (const rank of c.ranks) this.#loads.add(rank, -c.size);
    const holders = [...holdersOf(m)];
    const results = await Promise.allSettled(
      holders.map((rank) => this.#call(rank, { op: "release", name: m.name, version: m.version })),
    );
    results.forEach((r, i) => {
      if (r.status === "rejected") {
        // Not lost: the next start-up drops superseded versions.
        console.error(
          `dfs: cannot release "${m.name}" v${m.version} on rank ${holders[i]}: ${r.reason}`,
        );
      }
    });
  }

  #call<T = unknown>(rank: number, call: NodeCall, transfer?: ArrayBuffer[]): Promise<T> {
    return this.#comm.call<T>(rank, call, { transfer, timeoutMs: this.#timeoutMs });
  }
}

/** One upload in progress. Feed it with `write()`, then `commit()` or `abort()`. */
export class Upload {
  #coordinator: Coordinator;
  #name: string;
  #declaredSize: number | undefined;
  #hash: Hash = createHash("sha256");
  #received = 0;
  #chunks: ChunkRef[] = [];
  #inflight: Promise<void>[] = [];
  #buffer: Uint8Array | null = null;
  #buffered = 0;
  #failure: unknown = null;
  #done = false;

  constructor(coordinator: Coordinator, name: string, declaredSize: number | undefined) {
    this.#coordinator = coordinator;
    this.#name = name;
    this.#declaredSize = declaredSize;
  }

  get receivedBytes(): number {
    return this.#received;
  }

  /**
   * Takes the next bytes of the file. Takes ownership of `bytes` (its buffer may be transferred to a
   * data node). Waits while `UPLOAD_CHUNKS_INFLIGHT_MAX` chunks are unacknowledged.
   *
   * @throws {DfsError} `INVALID_REQUEST` past the declared size; any error of an earlier chunk.
   */
  async write(bytes: Uint8Array): Promise<void> {
    assert(!this.#done, "write() after commit() or abort()");
    if (this.#failure) throw this.#failure;
    if (this.#declaredSize !== undefined && this.#received + bytes.length > this.#declaredSize) {
      throw new DfsError(
        "INVALID_REQUEST",
        `Upload of "${this.#name}" sent more than its declared ${this.#declaredSize} bytes`,
      );
    }
    this.#received += bytes.length;
    this.#hash.update(bytes);
    if (this.#buffered === 0 && bytes.length === CHUNK_SIZE_BYTES) {
      return await this.#send(bytes); // the common case: one client frame is one chunk, no copy
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
   * Waits for every chunk to be durable and commits the file.
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
      if (this.#buffered > 0 || this.#chunks.length === 0) await this.#flush(); // an empty file has one empty chunk
      const sha256 = this.#hash.digest("hex");
      if (options.sha256 !== undefined && options.sha256 !== sha256) {
        throw new DfsError(
          "CORRUPTED",
          `Upload of "${this.#name}" does not match the client's SHA-256`,
        );
      }
      await Promise.all(this.#inflight);
      this.#done = true;
      const meta = await this.#coordinator.commit({
        name: this.#name,
        size: this.#received,
        sha256,
        chunks: this.#chunks,
      });
      this.#chunks = []; // committed: they belong to the file now, abort() must not touch them
      return meta;
    } catch (error) {
      await this.abort();
      throw error;
    }
  }

  /** Drops the upload and removes whatever it stored. Safe to call more than once. */
  async abort(): Promise<void> {
    if (this.#done && this.#chunks.length === 0) return;
    this.#done = true;
    await Promise.allSettled(this.#inflight);
    const chunks = this.#chunks;
    this.#chunks = [];
    this.#inflight = [];
    await this.#coordinator.discardChunks(chunks);
  }

  async #flush(): Promise<void> {
    const bytes = (this.#buffer ?? this.#coordinator.pool.take()).subarray(0, this.#buffered);
    this.#buffer = null;
    this.#buffered = 0;
    await this.#send(bytes);
  }

  async #send(bytes: Uint8Array): Promise<void> {
    const { ref, durable } = this.#coordinator.storeChunk(bytes);
    this.#chunks.push(ref);
    this.#inflight.push(durable);
    durable.catch((error) => this.#failure ??= error);
    if (this.#inflight.length >= UPLOAD_CHUNKS_INFLIGHT_MAX) {
      await this.#inflight.shift();
    }
  }
}
