/**
 * Direct uploads (`protocol/direct.ts`): for a put of a declared size of at least
 * `DIRECT_WRITE_BYTES_MIN` with checksums, rank 0 places every chunk up front on the least loaded
 * live nodes that have a data port (their replicas in different zones when they can be), opens
 * the upload's blob on each of them (`expect`), and hands the client the plan and a write grant;
 * the client writes each chunk to its nodes itself, so the bytes cross the network once per
 * replica and never pass through rank 0. A node that fails a write is replaced on the client's
 * word (`replace`). At the commit each node must have seen every chunk it holds with the CRC32
 * the client names (`seal`, which also closes the blob for writes); then the file is committed
 * as any other. An upload that never commits has its chunks discarded.
 *
 * @module
 */

import { grantLifeMs, signGrant, type WritePlan } from "../../protocol/direct.ts";
import { DfsError } from "../../protocol/errors.ts";
import { CHUNK_SIZE_BYTES } from "../../protocol/limits.ts";
import type { FileMeta } from "../../protocol/messages.ts";
import { chunkIdOf } from "../common/chunk_id.ts";
import type { Upload } from "../common/file_store.ts";
import { checkAttrs, type ChunkRef, type FileAttrs } from "../common/manifest.ts";
import type { Clock } from "../env/env.ts";
import type { NodeClient } from "./node_client.ts";
import type { LoadTracker } from "./placement.ts";
import type { Throughput } from "./throughput.ts";

type PlannedChunk = { id: string; size: number; crc32: number };

function isCorrupted(error: unknown): boolean {
  return error instanceof DfsError && error.code === "CORRUPTED";
}

/** Smallest upload given a direct plan: below it, rank 0 relays the bytes. */
export const DIRECT_WRITE_BYTES_MIN = CHUNK_SIZE_BYTES;
/**
 * Largest upload given a direct plan: every chunk is placed at once, on rank 0's one thread, and
 * the plan and the commit's CRC32s travel in one frame each. Larger ones go through rank 0.
 */
export const DIRECT_WRITE_BYTES_MAX = 16 * 1024 * CHUNK_SIZE_BYTES;
/** How long a node has to open an upload; one slower is left out of the plan. */
export const DIRECT_EXPECT_TIMEOUT_MS = 2_000;

/** What a direct upload needs of the store. */
export interface DirectUploadParts {
  nodes: NodeClient;
  loads: LoadTracker;
  /** The key write grants are signed with. */
  key: Uint8Array;
  clock: Pick<Clock, "now">;
  throughput: Throughput;
  /** Commits a written upload (the namespace's commit). */
  commit(
    draft: { name: string; size: number; sha256: string; chunks: ChunkRef[]; attrs?: FileAttrs },
    options: { ifAbsent?: boolean },
  ): Promise<FileMeta>;
  /** Removes chunks that will never commit, and takes their bytes off the loads. */
  discard(refs: readonly ChunkRef[]): Promise<void>;
  /**
   * Copies `ref`'s replica meant for `from` from one of `sources` to another live node, and says
   * so in `ref.ranks` (`Uploads.moveReplica`).
   */
  move(ref: ChunkRef, from: number, sources: readonly number[]): Promise<void>;
}

/**
 * The ranks a direct upload's chunks may go to: live data nodes with a data port. Undefined when
 * fewer than `replicas` are.
 */
export function directRanks(nodes: NodeClient, replicas: number): number[] | undefined {
  const { membership } = nodes;
  const ranks = membership.dataRanks.filter((rank) =>
    !membership.isDown(rank) && membership.dataPortOf(rank) !== undefined
  );
  return ranks.length >= replicas ? ranks : undefined;
}

/** The data ranks other than `ranks`: what placement must leave out to use only those. */
function allBut(nodes: NodeClient, ranks: readonly number[]): Set<number> {
  return new Set(nodes.membership.dataRanks.filter((rank) => !ranks.includes(rank)));
}

/** One direct upload: its plan, then `commit()` or `abort()`. */
export class DirectUpload implements Upload {
  readonly plan: Promise<WritePlan>;
  #parts: DirectUploadParts;
  #name: string;
  #blob: string;
  #size: number;
  /** Each chunk's ranks, as placed (and replaced). */
  #ranks: number[][];
  #onEnd: () => void;
  #replicas: number;
  #done = false;
  /** Every node the upload was opened on (replaced ones too): an abort removes it from each. */
  #opened = new Set<number>();
  /** Nodes that confirmed their chunks and closed the blob (`#seal`). */
  #sealed = new Set<number>();
  /** Nodes that did not open the upload or that a client could not write to: not used again. */
  #refused = new Set<number>();
  /** Replaces, one after the other, and how many so far (at most one per chunk replica). */
  #replacing: Promise<unknown> = Promise.resolve();
  #replaces = 0;

  constructor(
    parts: DirectUploadParts,
    name: string,
    options: { blob: string; size: number; replicas: number; ranks: number[]; onEnd: () => void },
  ) {
    this.#parts = parts;
    this.#name = name;
    this.#blob = options.blob;
    this.#size = options.size;
    this.#onEnd = options.onEnd;
    this.#replicas = options.replicas;
    const exclude = allBut(parts.nodes, options.ranks);
    const count = Math.ceil(options.size / CHUNK_SIZE_BYTES);
    this.#ranks = Array.from(
      { length: count },
      (_, k) => parts.loads.place(this.#sizeOf(k), options.replicas, exclude),
    );
    this.plan = this.#open();
    this.plan.catch(() => {}); // the session awaits it; an abort follows a failure
  }

  get receivedBytes(): number {
    return 0;
  }

  write(): Promise<void> {
    return Promise.reject(
      new DfsError("INVALID_REQUEST", `Upload of "${this.#name}" goes to the data nodes directly`),
    );
  }

  /**
   * Another node for chunk `index`, whose write to `rank` failed: the least loaded live node with
   * a data port that holds no replica of it, opened for the upload.
   *
   * @throws {DfsError} `INVALID_REQUEST` for a chunk or rank not in the plan; `UNAVAILABLE` if no
   *   node can take it.
   */
  replace(index: number, rank: number): Promise<{ rank: number; address: string }> {
    if (this.#done || !this.#ranks[index]?.includes(rank)) {
      const error = new DfsError(
        "INVALID_REQUEST",
        `Chunk ${index} of this upload is not on rank ${rank}`,
      );
      return Promise.reject(error);
    }
    if (++this.#replaces > this.#ranks.length * this.#replicas) {
      return Promise.reject(
        new DfsError("UNAVAILABLE", "This upload's nodes were replaced once per replica already"),
      );
    }
    // One at a time (each places against the loads and plan the one before left).
    const replaced = this.#replacing.then(() => this.#replace(index, rank));
    this.#replacing = replaced.catch(() => {});
    return replaced;
  }

  async #replace(index: number, rank: number): Promise<{ rank: number; address: string }> {
    const ranks = this.#ranks[index];
    if (this.#done || ranks === undefined || !ranks.includes(rank)) {
      throw new DfsError("INVALID_REQUEST", `Chunk ${index} of this upload is not on rank ${rank}`);
    }
    const { nodes, loads } = this.#parts;
    this.#refused.add(rank); // the client could not write there: not again for this upload
    const usable = (directRanks(nodes, 1) ?? []).filter((r) => !this.#refused.has(r));
    const exclude = allBut(nodes, usable);
    for (const held of ranks) exclude.add(held);
    if (usable.every((r) => exclude.has(r))) {
      throw new DfsError("UNAVAILABLE", `No other data node can take chunk ${index}`);
    }
    const size = this.#sizeOf(index);
    const [target] = loads.place(size, 1, exclude);
    loads.add(rank, -size);
    this.#ranks[index] = ranks.map((r) => r === rank ? target : r);
    this.#opened.add(target);
    await nodes.expect(target, this.#blob, this.#size, DIRECT_EXPECT_TIMEOUT_MS);
    return { rank: target, address: this.#addressOf(target) };
  }

  /**
   * Seals the upload on every node (each must have seen its chunks with the CRC32s `crc32s` names)
   * and commits it.
   *
   * @throws {DfsError} `INVALID_REQUEST` without a SHA-256 or a CRC32 for each chunk; `CORRUPTED`
   *   if a node did not get a chunk as named.
   */
  async commit(
    options: { sha256?: string; attrs?: FileAttrs; ifAbsent?: boolean; crc32s?: number[] } = {},
  ): Promise<FileMeta> {
    if (this.#done) throw new DfsError("INVALID_REQUEST", "The upload is over");
    try {
      await this.plan;
      if (options.attrs !== undefined) checkAttrs(options.attrs);
      const { sha256, crc32s } = options;
      if (sha256 === undefined || crc32s?.length !== this.#ranks.length) {
        throw new DfsError(
          "INVALID_REQUEST",
          `Upload of "${this.#name}" ended without its SHA-256 and a CRC32 for each of its ` +
            `${this.#ranks.length} chunks`,
        );
      }
      const refs = this.#refs(crc32s);
      await this.#seal(refs);
      const attrs = options.attrs === undefined ? {} : { attrs: { ...options.attrs } };
      const draft = { name: this.#name, size: this.#size, sha256, chunks: refs, ...attrs };
      const meta = await this.#parts.commit(draft, { ifAbsent: options.ifAbsent });
      this.#done = true;
      // A node replaced out of the plan holds at most a failed chunk's bytes: they go. A node
      // that did not seal but holds a chunk now (rank 0 copied one there) has the blob closed.
      void this.#dropReplacedOut(refs);
      const { nodes } = this.#parts;
      for (const rank of this.#opened) {
        if (this.#sealed.has(rank) || !refs.some((r) => r.ranks.includes(rank))) continue;
        void nodes.seal(rank, this.#blob, []).catch(() => {});
      }
      this.#ranks = []; // committed: the chunks are the file's now
      this.#parts.throughput.written(this.#size);
      this.#parts.throughput.op("put");
      this.#onEnd();
      return meta;
    } catch (error) {
      await this.abort();
      throw error;
    }
  }

  /** Drops the upload and whatever its chunks wrote. Safe to call more than once. */
  async abort(): Promise<void> {
    this.#onEnd();
    if (this.#done) return;
    this.#done = true;
    const refs = this.#refs(this.#ranks.map(() => 0));
    this.#ranks = [];
    await this.#dropReplacedOut(refs); // such a node may hold part of the blob too
    await this.#parts.discard(refs);
  }

  /** Removes the blob from the nodes it was opened on that hold none of `refs` (replaced out). */
  #dropReplacedOut(refs: readonly ChunkRef[]): Promise<unknown> {
    const { nodes } = this.#parts;
    const others = [...this.#opened].filter((rank) => !refs.some((r) => r.ranks.includes(rank)));
    return Promise.allSettled(others.map((rank) => nodes.discard(rank, [this.#idOf(0)])));
  }

  /**
   * Has every node confirm its chunks (`seal`). A node that cannot (it went down, or restarted and
   * forgot the upload) has its replicas copied by rank 0 from nodes that did, as an upload through
   * rank 0 does for a node lost under it; a node that got a chunk otherwise than the client says
   * fails the upload.
   *
   * @throws {DfsError} `CORRUPTED` for such a chunk; `UNAVAILABLE` if a replica cannot be moved.
   */
  async #seal(refs: ChunkRef[]): Promise<void> {
    const { nodes, move } = this.#parts;
    const byRank = new Map<number, PlannedChunk[]>();
    for (const { id, size, ranks, crc32 } of refs) {
      for (const rank of ranks) {
        byRank.set(rank, [...byRank.get(rank) ?? [], { id, size, crc32: crc32! }]);
      }
    }
    const ranks = [...byRank.keys()];
    const sealed = await Promise.allSettled(
      ranks.map((rank) => nodes.seal(rank, this.#blob, byRank.get(rank)!)),
    );
    const failed = ranks.filter((_, i) => sealed[i].status === "rejected");
    for (const rank of ranks) if (!failed.includes(rank)) this.#sealed.add(rank);
    for (const [i, result] of sealed.entries()) {
      if (result.status === "rejected" && isCorrupted(result.reason)) {
        throw new DfsError("CORRUPTED", `Rank ${ranks[i]}: ${(result.reason as Error).message}`);
      }
    }
    for (const from of failed) {
      for (const ref of refs.filter((r) => r.ranks.includes(from))) {
        const sources = ref.ranks.filter((rank) => !failed.includes(rank));
        if (sources.length === 0) {
          throw new DfsError("UNAVAILABLE", `No node confirmed chunk ${ref.id} of the upload`);
        }
        await move(ref, from, sources);
      }
    }
  }

  /** Opens the blob on every node of the plan, then signs the grant. */
  async #open(): Promise<WritePlan> {
    const { nodes, key, clock, loads } = this.#parts;
    const refused = this.#refused;
    let ranks = [...new Set(this.#ranks.flat())];
    // A node that does not take the upload in time (hung, or at its limit of open uploads) has
    // its chunks placed on the others, which are asked in turn.
    for (let ask = ranks; ask.length > 0;) {
      for (const rank of ask) this.#opened.add(rank);
      const answers = await Promise.allSettled(
        ask.map((rank) => nodes.expect(rank, this.#blob, this.#size, DIRECT_EXPECT_TIMEOUT_MS)),
      );
      const failed = ask.filter((_, i) => answers[i].status === "rejected");
      if (failed.length === 0) break;
      for (const rank of failed) refused.add(rank);
      const usable = (directRanks(nodes, 1) ?? []).filter((rank) => !refused.has(rank));
      if (usable.length < this.#replicas) {
        throw (answers.find((a) => a.status === "rejected") as PromiseRejectedResult).reason;
      }
      const exclude = allBut(nodes, usable);
      this.#ranks = this.#ranks.map((held, k) => {
        if (!held.some((rank) => refused.has(rank))) return held;
        const size = this.#sizeOf(k);
        const keep = held.filter((rank) => !refused.has(rank));
        for (const rank of held) if (refused.has(rank)) loads.add(rank, -size);
        const more = held.length - keep.length;
        return [...keep, ...loads.place(size, more, new Set([...exclude, ...keep]))];
      });
      ranks = [...new Set(this.#ranks.flat())];
      ask = ranks.filter((rank) => !this.#opened.has(rank));
    }
    const addresses: Record<string, string> = {};
    for (const rank of ranks) addresses[rank] = this.#addressOf(rank);
    // The blob open on each node keeps the grant from a committed file: it need only outlast the
    // upload.
    const expires = clock.now() + grantLifeMs(this.#size);
    const grant = signGrant(key, [this.#blob], expires, "write");
    return { blob: this.#blob, ranks: this.#ranks.map((r) => [...r]), nodes: addresses, grant };
  }

  #refs(crc32s: readonly number[]): ChunkRef[] {
    return this.#ranks.map((ranks, k) => ({
      id: this.#idOf(k),
      size: this.#sizeOf(k),
      ranks: [...ranks],
      crc32: crc32s[k],
    }));
  }

  #idOf(index: number): string {
    return chunkIdOf(this.#blob, index * CHUNK_SIZE_BYTES);
  }

  #sizeOf(index: number): number {
    return Math.min(CHUNK_SIZE_BYTES, this.#size - index * CHUNK_SIZE_BYTES);
  }

  #addressOf(rank: number): string {
    const address = this.#parts.nodes.membership.dataPortOf(rank);
    if (address === undefined) throw new DfsError("UNAVAILABLE", `Rank ${rank} has no data port`);
    return address;
  }
}
