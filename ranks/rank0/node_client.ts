/**
 * Rank 0's typed client of the data nodes: one method per node operation, over the rank library.
 * It owns what every call shares: the timeout, refusing nodes that are down (`Membership`), and
 * the buffer policy. Over a transport that moves buffers (Workers), a chunk written is handed back
 * with the answer and a read is lent an empty pooled buffer to fill, so steady transfers allocate
 * nothing; over one that serializes, neither happens (both would only double the bytes sent).
 *
 * Glossary of the node operations: `ranks/common/node_protocol.ts`.
 *
 * @module
 */

import { BufferPool } from "../../protocol/buffer_pool.ts";
import { concatBytes } from "../../protocol/bytes.ts";
import { DfsError } from "../../protocol/errors.ts";
import { CHUNK_SIZE_BYTES, FRAME_SIZE_BYTES_MAX } from "../../protocol/limits.ts";
import type { Comm } from "../comm/comm.ts";
import type { ChunkRef, FileVersion, Manifest, RankRepair } from "../common/manifest.ts";
import type {
  ListAnswer,
  LogCheck,
  NodeCall,
  NodeCollective,
  ScanAnswer,
  ScanPiece,
  SummaryPage,
} from "../common/node_protocol.ts";
import type { Clock, FsStats, TimerHandle } from "../env/env.ts";
import { SMALL_READ_BYTES_MAX } from "../common/chunk_id.ts";
import type { Membership } from "./membership.ts";
import { SharedSlots } from "./shared_slots.ts";

/** How long rank 0 waits for a data node's answer to one request. */
export const NODE_CALL_TIMEOUT_MS = 60_000;
/** Idle chunk buffers rank 0 keeps for reuse (each `FRAME_SIZE_BYTES_MAX`). */
export const POOL_BUFFERS_MAX = 64;
/** Idle chunk buffers kept once no transfer has taken one for `POOL_IDLE_TRIM_MS`. */
export const POOL_BUFFERS_KEPT_IDLE = 8;
/** Quiet time after which the pool lets go of its idle buffers beyond `POOL_BUFFERS_KEPT_IDLE`. */
export const POOL_IDLE_TRIM_MS = 5_000;
/**
 * Chunk slots (`CHUNK_SIZE_BYTES` each) in memory shared with the data nodes that are Workers of
 * this process: as many as chunks uploads may have on their way at once (`UPLOAD_CHUNKS_SERVER_MAX`).
 */
export const SHARED_CHUNK_SLOTS = 32;

/** How a call treats a node marked down: refused at once, unless the caller is bringing it back. */
export interface CallOptions {
  /** Send even though the node is marked down (reconciling it after a restart). */
  whileDown?: boolean;
  /** How long the call may take (default: the client's `timeoutMs`). */
  timeoutMs?: number;
}

/** One method per node operation; see the module comment. */
export class NodeClient {
  readonly membership: Membership;
  /** Chunk buffers: frames are read into them, they travel to the nodes and (maybe) come back. */
  readonly pool: BufferPool = new BufferPool(FRAME_SIZE_BYTES_MAX, {
    buffersMax: POOL_BUFFERS_MAX,
  });
  /** Chunk slots shared with nodes that are Workers here (see `shared_slots.ts`). */
  readonly shared: SharedSlots = new SharedSlots(CHUNK_SIZE_BYTES, {
    slotsMax: SHARED_CHUNK_SLOTS,
  });
  /**
   * Told when a node answers `NODE_FAILED` (its disk failed): the supervisor marks it down at
   * once, as a crashed rank.
   */
  onNodeFailed: ((rank: number, reason: string) => void) | undefined;
  #comm: Comm;
  #clock: Clock;
  #timeoutMs: number;
  #trimTimer: TimerHandle | undefined;

  constructor(
    comm: Comm,
    options: { membership: Membership; clock: Clock; timeoutMs?: number },
  ) {
    this.#comm = comm;
    this.membership = options.membership;
    this.#clock = options.clock;
    this.#timeoutMs = options.timeoutMs ?? NODE_CALL_TIMEOUT_MS;
  }

  get dataRanks(): readonly number[] {
    return this.membership.dataRanks;
  }

  /** Whether `rank` shares this process's memory: a view of a shared slot reaches it uncopied. */
  sharesMemoryWith(rank: number): boolean {
    return this.#comm.movesBuffersTo(rank);
  }

  /**
   * Writes a replica of a chunk into its blob (durable once a commit names it). Takes `bytes`,
   * unless they lie in a shared slot (see `sharesMemoryWith`): the caller gives that back.
   */
  async write(rank: number, chunk: ChunkRef, bytes: Uint8Array): Promise<void> {
    const call: NodeCall = { op: "write", id: chunk.id, bytes, crc32: chunk.crc32 };
    if (bytes.buffer instanceof SharedArrayBuffer) {
      await this.#call(rank, call);
      return;
    }
    const answer = await this.#call(rank, call, this.#transferOf(bytes));
    if (answer instanceof ArrayBuffer) this.pool.give(answer);
    // Over a socket the buffer was written from where it is; the answer means it was all sent.
    else if (!this.#comm.movesBuffersTo(rank)) this.pool.give(bytes.buffer);
  }

  /** Rewrites a damaged or missing replica from good bytes, durably. Takes `bytes`. */
  async restore(
    rank: number,
    chunk: ChunkRef,
    bytes: Uint8Array,
    options: CallOptions = {},
  ): Promise<void> {
    const call: NodeCall = { op: "restore", id: chunk.id, bytes, crc32: chunk.crc32 };
    await this.#call(rank, call, this.#transferOf(bytes), options);
  }

  /**
   * Reads a replica of a chunk of version `file.version` of `file.name` (through which the node
   * finds a small file's, in its commit record; undefined for a file not committed yet); the
   * node checks it against its CRC32. The caller recycles the bytes.
   */
  read(
    rank: number,
    chunk: ChunkRef,
    file: FileVersion | undefined,
    options: CallOptions = {},
  ): Promise<Uint8Array> {
    const lend = this.#comm.movesBuffersTo(rank) && chunk.size > SMALL_READ_BYTES_MAX &&
      chunk.size <= this.pool.bufferBytes;
    const into = lend ? this.pool.take().buffer : undefined;
    const { id, size, crc32 } = chunk;
    const call: NodeCall = file
      ? { op: "read", id, size, crc32, into, name: file.name, version: file.version }
      : { op: "read", id, size, crc32, into };
    return this.#call<Uint8Array>(rank, call, into && [into], options);
  }

  /**
   * Makes the manifest's chunks on the node durable and appends the manifest to its log; with
   * `data`, a small file's one chunk travels and is kept in the log record.
   */
  async commit(rank: number, manifest: Manifest, data?: Uint8Array): Promise<void> {
    // A small file's bytes are copied, not moved: then the commit travels with other packets to
    // the same node in one post (see `comm/port_transport.ts`).
    await this.#call(rank, { op: "commit", manifest, data });
  }

  /** One record: version `fromVersion` of the old name becomes `manifest`, `tombstone` the old. */
  async rename(
    rank: number,
    change: { fromVersion: number; manifest: Manifest; tombstone?: Manifest },
  ): Promise<void> {
    await this.#call(rank, { op: "rename", ...change });
  }

  /** One record: the `sources` give their chunks to `manifest` and leave tombstones. */
  async compose(
    rank: number,
    change: { sources: { name: string; version: number }[]; manifest: Manifest },
  ): Promise<void> {
    await this.#call(rank, { op: "compose", ...change });
  }

  /** Drops a superseded version on the node: logged, then its chunks removed. */
  async release(rank: number, m: { name: string; version: number }): Promise<void> {
    await this.#call(rank, { op: "release", name: m.name, version: m.version });
  }

  /**
   * Opens `blob` on the node for an upload of `bytes` a client writes directly, within
   * `timeoutMs` (a node slow to answer so little is better left out of the upload).
   */
  async expect(rank: number, blob: string, bytes: number, timeoutMs?: number): Promise<void> {
    await this.#call(rank, { op: "expect", blob, bytes }, undefined, { timeoutMs });
  }

  /** Closes `blob` on the node once `chunks` were written there as they say. */
  async seal(
    rank: number,
    blob: string,
    chunks: { id: string; size: number; crc32: number }[],
  ): Promise<void> {
    await this.#call(rank, { op: "seal", blob, chunks });
  }

  /** Removes chunks of an upload that will never commit. */
  async discard(rank: number, ids: string[]): Promise<void> {
    await this.#call(rank, { op: "discard", ids });
  }

  /** Size and free space of the file system under the node's folder. */
  statfs(rank: number): Promise<FsStats> {
    return this.#call<FsStats>(rank, { op: "statfs" });
  }

  /**
   * Resolves once the node answers, within `timeoutMs`; the node checks its folder and log.
   *
   * @throws {DfsError} `UNAVAILABLE` if it does not answer in time or its disk failed.
   */
  async ping(rank: number, timeoutMs: number): Promise<void> {
    await this.#comm.call(rank, { op: "ping" }, { timeoutMs }).catch((error) => {
      throw this.#failedOr(rank, error);
    });
    this.membership.heard(rank, this.#clock.monotonic());
  }

  /** Has the node re-read and check its whole log (damage is rewritten from its memory). */
  verifyLog(rank: number): Promise<LogCheck> {
    return this.#call<LogCheck>(rank, { op: "verifyLog" });
  }

  /** What the node holds: its manifests, blob files and the chunks kept in its log. */
  async scan(rank: number, options: CallOptions = {}): Promise<ScanAnswer> {
    return await this.#joined(
      await this.#call<ScanAnswer>(rank, { op: "scan" }, undefined, options),
      options,
    );
  }

  /**
   * `scan` with every piece of its manifests: a scan larger than `SCAN_PAGE_BYTES` comes in
   * pieces (`scanPage`) until one says no more follow, joined here in order.
   */
  async #joined(scan: ScanAnswer, options: CallOptions = {}): Promise<ScanAnswer> {
    const { rank } = scan;
    if (!scan.more) return scan;
    const pieces = [scan.manifests];
    let bytes = scan.manifests.length;
    for (let more = true; more;) {
      const piece = await this.#call<ScanPiece>(rank, { op: "scanPage" }, undefined, options);
      if (
        !(piece?.manifests instanceof Uint8Array) || (piece.manifests.length === 0 && piece.more)
      ) {
        throw new DfsError("CORRUPTED", `Rank ${rank}'s scan came in a piece that is not one`);
      }
      pieces.push(piece.manifests);
      bytes += piece.manifests.length;
      more = piece.more === true;
    }
    return { ...scan, manifests: concatBytes(pieces, bytes), more: false };
  }

  /** Has the node hold exactly `repair.keep` from now on and delete `repair.deleteBlobs`. */
  async repair(rank: number, repair: RankRepair, options: CallOptions = {}): Promise<void> {
    await this.#call(rank, { op: "repair", repair }, undefined, options);
  }

  /**
   * A page of the node's newest version of each name under `prefix` (tombstones too), in name
   * order after `options.after`, at most `options.limit` (1 to `NODE_LIST_ENTRIES_MAX`).
   */
  list(
    rank: number,
    prefix: string,
    options: { after?: string; limit: number },
  ): Promise<ListAnswer> {
    const { after, limit } = options;
    return this.#call<ListAnswer>(rank, { op: "list", prefix, after, limit });
  }

  /**
   * The first page of every data node's summary of what it holds (start-up), fingerprints keyed
   * by `seed`; `summaryPage()` brings the others.
   */
  summarizeAll(seed: number): Promise<SummaryPage[]> {
    return this.#collective<SummaryPage>((tag) => ({ op: "summary", seed, tag }));
  }

  /** The first page of one node's summary (a restarted node's reconcile), keyed by `seed`. */
  summarize(rank: number, seed: number, options: CallOptions = {}): Promise<SummaryPage> {
    return this.#call<SummaryPage>(rank, { op: "summary", seed }, undefined, options);
  }

  /** The next page of `rank`'s summary (see `summarizeAll()` and `summarize()`). */
  summaryPage(rank: number, options: CallOptions = {}): Promise<SummaryPage> {
    return this.#call<SummaryPage>(rank, { op: "summaryPage" }, undefined, options);
  }

  /** Every data node's scan (start-up). */
  async scanAll(): Promise<ScanAnswer[]> {
    const scans = await this.#collective<ScanAnswer>((tag) => ({ op: "scan", tag }));
    // A node whose pieces do not all come counts as one that did not answer.
    const joined = await Promise.all(
      scans.map((scan) => this.#joined(scan).catch(() => undefined)),
    );
    return joined.filter((scan) => scan !== undefined);
  }

  /** A copy of `bytes` to send (a pooled buffer for a large chunk, an exact copy otherwise). */
  copy(bytes: Uint8Array): Uint8Array {
    if (bytes.length <= SMALL_READ_BYTES_MAX || bytes.length > this.pool.bufferBytes) {
      return bytes.slice();
    }
    const copy = this.pool.take().subarray(0, bytes.length);
    copy.set(bytes);
    return copy;
  }

  /** Hands a chunk's buffer back once its bytes are no longer needed. */
  recycle(bytes: Uint8Array | ArrayBufferLike | undefined): void {
    this.pool.give(bytes instanceof Uint8Array ? bytes.buffer : bytes);
    this.#scheduleTrim();
  }

  /** Stops the pool's trim timer. */
  close(): void {
    this.#clock.clearTimeout(this.#trimTimer);
    this.#trimTimer = undefined;
  }

  /**
   * Lets go of idle buffers beyond `POOL_BUFFERS_KEPT_IDLE` once none was taken for
   * `POOL_IDLE_TRIM_MS`: one lazy timer, armed while more than that are idle.
   */
  #scheduleTrim(): void {
    if (this.#trimTimer !== undefined || this.pool.idle <= POOL_BUFFERS_KEPT_IDLE) return;
    this.#trimTimer = this.#clock.setTimeout(() => {
      this.#trimTimer = undefined;
      this.pool.trim({ keep: POOL_BUFFERS_KEPT_IDLE, idleMs: POOL_IDLE_TRIM_MS });
      this.#scheduleTrim();
    }, POOL_IDLE_TRIM_MS);
  }

  /**
   * The buffers a call gives up: the chunk's, moved to a Worker, or written from where it is to a
   * socket (not copied).
   */
  #transferOf(bytes: Uint8Array): ArrayBuffer[] {
    return [bytes.buffer as ArrayBuffer];
  }

  #call<T = unknown>(
    rank: number,
    call: NodeCall,
    transfer?: ArrayBuffer[],
    options: CallOptions = {},
  ): Promise<T> {
    if (this.membership.isGone(rank)) {
      return Promise.reject(new DfsError("UNAVAILABLE", `Rank ${rank} is gone`));
    }
    if (!options.whileDown && this.membership.isDown(rank)) {
      return Promise.reject(new DfsError("UNAVAILABLE", `Rank ${rank} is down`));
    }
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    return this.#comm.call<T>(rank, call, { transfer, timeoutMs }).catch(
      (error) => {
        throw this.#failedOr(rank, error);
      },
    );
  }

  /**
   * A node's `NODE_FAILED` answer becomes `UNAVAILABLE` (clients never see the inter-rank code),
   * after `onNodeFailed` is told; any other error is returned as it is.
   */
  #failedOr(rank: number, error: unknown): unknown {
    if (!(error instanceof DfsError) || error.code !== "NODE_FAILED") return error;
    this.onNodeFailed?.(rank, error.message);
    return new DfsError("UNAVAILABLE", `Rank ${rank} is down: ${error.message}`, { cause: error });
  }

  /** bcast a question, then gather every data node's answer (rank 0 contributes nothing). */
  async #collective<T>(question: (tag: number) => NodeCollective): Promise<T[]> {
    const tag = this.#comm.nextTag();
    // The group: the data nodes up now (at start-up, those connected), whatever else there is.
    const ranks = this.dataRanks.filter((rank) => !this.membership.isDown(rank));
    const options = { tag, timeoutMs: this.#timeoutMs, ranks };
    await this.#comm.bcast(0, question(tag), { timeoutMs: this.#timeoutMs, ranks });
    const answers = await this.#comm.gather<T | undefined>(0, undefined, options);
    return answers!.filter((a, rank): a is T => rank !== 0 && a !== undefined);
  }
}
