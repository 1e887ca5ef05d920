/**
 * Reads: a read pins the version it opened, so a later overwrite does not disturb it, and keeps
 * a few chunk reads in flight ahead of the socket, bounded by the caller's budget and a
 * server-wide read-ahead. Each chunk is read from one replica (spread by a hash of its id), failing
 * over to the others; a replica found damaged is rewritten from the good bytes in the background
 * (read repair).
 *
 * @module
 */

import { firstReplica } from "../../protocol/direct.ts";
import { chunkSpans } from "../../protocol/spans.ts";
import { DfsError } from "../../protocol/errors.ts";
import { type ByteRange, type FileReader, READ_CHUNKS_INFLIGHT_MAX } from "../common/file_store.ts";
import { fileMetaOf, type Manifest } from "../common/manifest.ts";
import { isDamaged } from "../common/replication.ts";
import { Semaphore } from "../common/semaphore.ts";
import type { ChunkCache } from "./chunk_cache.ts";
import type { DirectRoutes } from "./direct_routes.ts";
import type { Namespace } from "./namespace.ts";
import type { NodeClient } from "./node_client.ts";
import type { Releases } from "./releases.ts";
import type { Throughput } from "./throughput.ts";
import type { Replicas } from "./replicas.ts";

/**
 * Chunks read ahead server-wide, beyond the one each read may always have in flight: with many
 * clients reading at once, memory stays near one chunk per reader plus this many.
 */
export const READ_AHEAD_CHUNKS_SERVER_MAX = 32;

/** Permits for the chunks a read has in flight. */
interface Permits {
  acquire(): Promise<void>;
  tryAcquire(): boolean;
  release(): void;
}

/** Opens reads of committed versions. */
export class Reads {
  /** Read-ahead permits shared by every read (`READ_AHEAD_CHUNKS_SERVER_MAX`). */
  readonly readAhead = new Semaphore(READ_AHEAD_CHUNKS_SERVER_MAX);
  #nodes: NodeClient;
  #zoneOf = (rank: number) => this.#nodes.membership.zoneOf(rank);
  #namespace: Namespace;
  #releases: Releases;
  #replicas: Replicas;
  #throughput: Throughput;
  #cache: ChunkCache | undefined;
  #routes: DirectRoutes | undefined;

  constructor(
    parts: {
      nodes: NodeClient;
      namespace: Namespace;
      releases: Releases;
      replicas: Replicas;
      /** Small chunks read lately or written, answered without a node (`chunk_cache.ts`). */
      cache?: ChunkCache;
      /** Counts each read opened (a `get`) and the bytes handed out. */
      throughput: Throughput;
      /** Signs routes for reads from the data nodes themselves; without it, none is offered. */
      routes?: DirectRoutes;
    },
  ) {
    this.#routes = parts.routes;
    this.#nodes = parts.nodes;
    this.#namespace = parts.namespace;
    this.#releases = parts.releases;
    this.#replicas = parts.replicas;
    this.#throughput = parts.throughput;
    this.#cache = parts.cache;
  }

  /**
   * Opens the current version of `name` for reading. A later overwrite does not disturb the reader:
   * the version it opened stays readable until `close()`. With `start`/`end` (byte offsets, end
   * exclusive), only the chunks that range covers are read. It counts in the throughput unless
   * `counted` is false (a read of the server's own).
   *
   * @throws {DfsError} `NOT_FOUND` if no version of `name` is committed; `INVALID_REQUEST` for a
   *   range outside the file.
   */
  open(
    name: string,
    range: ByteRange = {},
    options: { budget?: Semaphore; counted?: boolean; direct?: boolean } = {},
  ): FileReader {
    const m = this.#namespace.lookup(name);
    const start = range.start ?? 0;
    const end = range.end ?? m.size;
    if (!(0 <= start && start <= end && end <= m.size)) {
      throw new DfsError(
        "INVALID_REQUEST",
        `Cannot read bytes ${start} to ${end} of "${name}": it has ${m.size} bytes`,
      );
    }
    const key = this.#releases.pin(m);
    let open = true;
    const close = () => {
      if (!open) return;
      open = false;
      this.#releases.unpin(key);
      while (held.length > 0) permits.release(); // chunks read but never written out
    };
    // Every chunk read ahead holds a permit of the caller's budget until it is written out, so
    // all the reads of one connection share `budget` (default: this read alone); a chunk read
    // ahead of the first also holds one of the server-wide `readAhead`. Permits go back in the
    // order they were taken (chunks are written out in order): `held` says which had both.
    const budget = options.budget ?? new Semaphore(READ_CHUNKS_INFLIGHT_MAX);
    const held: boolean[] = [];
    const permits: Permits = {
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
      this.#nodes.recycle(chunk);
      permits.release();
    };
    const throughput = options.counted === false ? undefined : this.#throughput;
    throughput?.op("get");
    const chunks = () => this.#readChunks(m, start, end, permits, throughput);
    const route = options.direct ? this.#routes?.routeOf(m, start, end) : undefined;
    const fetch = async (index: number, send: (bytes: Uint8Array) => Promise<void>) => {
      if (!open) throw new DfsError("UNAVAILABLE", `The read of "${name}" is closed`);
      if (!(Number.isSafeInteger(index) && index >= 0 && index < m.chunks.length)) {
        throw new DfsError("INVALID_REQUEST", `"${name}" has no chunk ${index}`);
      }
      const bytes = await this.#readChunk(m, index);
      try {
        throughput?.read(bytes.length);
        await send(bytes);
      } finally {
        this.#nodes.recycle(bytes);
      }
    };
    const meta = fileMetaOf(m, this.#zoneOf);
    return { meta, start, end, chunks, recycle, close, route, fetch };
  }

  /** The bytes `start` to `end` of `m`, reading only the chunks that hold them. */
  async *#readChunks(
    m: Manifest,
    start: number,
    end: number,
    permits: Permits,
    throughput: Throughput | undefined,
  ): AsyncIterable<Uint8Array> {
    // Each wanted chunk with the part of it to send.
    const wanted = chunkSpans(m.chunks, start, end);
    const reads: Promise<Uint8Array>[] = [];
    let next = 0;
    try {
      while (next < wanted.length || reads.length > 0) {
        while (next < wanted.length && reads.length < READ_CHUNKS_INFLIGHT_MAX) {
          // Read ahead only while the budget allows; with nothing in flight, wait for a permit.
          if (reads.length === 0) await permits.acquire();
          else if (!permits.tryAcquire()) break;
          const { index, from, to } = wanted[next++];
          const read = this.#readChunk(m, index).then((b) => b.subarray(from, to));
          read.catch(() => {}); // awaited below in order; avoid an unhandled rejection meanwhile
          reads.push(read);
        }
        const bytes = await reads.shift()!;
        throughput?.read(bytes.length);
        yield bytes;
      }
    } finally {
      // Reads never handed out: their buffers and permits come back here.
      for (const settled of await Promise.allSettled(reads)) {
        if (settled.status === "fulfilled") this.#nodes.recycle(settled.value);
        permits.release();
      }
    }
  }

  /** Reads chunk `index` of `m`, from the cache or from one of its replicas. */
  async #readChunk(m: Manifest, index: number): Promise<Uint8Array> {
    const chunk = m.chunks[index];
    const cached = this.#cache?.get(chunk.id);
    if (cached !== undefined) return cached;
    const bytes = await this.#readReplica(m, index);
    this.#cache?.put(chunk.id, bytes);
    return bytes;
  }

  /** Reads chunk `index` of `m` from one of its replicas, failing over to the others; repairs damage. */
  async #readReplica(m: Manifest, index: number): Promise<Uint8Array> {
    const chunk = m.chunks[index];
    let lastError: unknown;
    const damaged: number[] = [];
    const first = firstReplica(chunk.id, chunk.ranks.length);
    for (let i = 0; i < chunk.ranks.length; i++) {
      const rank = chunk.ranks[(first + i) % chunk.ranks.length];
      try {
        const bytes = await this.#nodes.read(rank, chunk, m);
        if (damaged.length > 0) this.#replicas.repairInBackground(chunk, bytes, damaged);
        return bytes;
      } catch (error) {
        lastError = error;
        if (isDamaged(error)) {
          damaged.push(rank);
          this.#replicas.noteDamaged();
        }
      }
    }
    throw lastError instanceof DfsError
      ? lastError
      : new DfsError("UNAVAILABLE", `Cannot read a chunk from ranks ${chunk.ranks.join(", ")}`);
  }
}
