/**
 * The data path of uploads: an upload's chunks go to the least loaded data nodes (their replicas
 * in different zones when they can be) as they arrive,
 * at most `UPLOAD_CHUNKS_INFLIGHT_MAX` of them unacknowledged at a time per upload and
 * `UPLOAD_CHUNKS_SERVER_MAX` server-wide (when a window is full, `write()` waits, and so does the
 * socket behind it). The commit goes through the namespace; an upload that never commits has its
 * chunks discarded.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { crc32 } from "node:zlib";
import { assert, DfsError } from "../../protocol/errors.ts";
import { CHUNK_SIZE_BYTES } from "../../protocol/limits.ts";
import type { FileMeta } from "../../protocol/messages.ts";
import {
  type BlobIds,
  chunkIdOf,
  LOG_FILE_BYTES_MAX,
  SMALL_READ_BYTES_MAX,
} from "../common/chunk_id.ts";
import type { Upload as UploadApi } from "../common/file_store.ts";
import { DIRECT_IO_ALIGN_BYTES } from "../env/env.ts";
import { checkAttrs, type ChunkRef, type FileAttrs } from "../common/manifest.ts";
import { checkReplicas } from "../common/replication.ts";
import { Semaphore } from "../common/semaphore.ts";
import type { ChunkCache } from "./chunk_cache.ts";
import type { Namespace } from "./namespace.ts";
import type { NodeClient } from "./node_client.ts";
import { chooseRanks, type LoadTracker } from "./placement.ts";
import type { Replicas } from "./replicas.ts";
import type { SharedSlot } from "./shared_slots.ts";
import type { Throughput } from "./throughput.ts";
import type { Clock } from "../env/env.ts";
import {
  DIRECT_WRITE_BYTES_MAX,
  DIRECT_WRITE_BYTES_MIN,
  directRanks,
  DirectUpload,
} from "./direct_uploads.ts";

/** Chunks of one upload sent to data nodes and not yet acknowledged as written. */
export const UPLOAD_CHUNKS_INFLIGHT_MAX = 8;
/**
 * Uploads in progress at once, server-wide: each may hold a chunk buffer being filled plus
 * `UPLOAD_CHUNKS_INFLIGHT_MAX` chunks on their way to the data nodes, so this bounds their memory.
 */
export const UPLOADS_INFLIGHT_MAX = 64;
/**
 * Chunks on their way to the data nodes server-wide, every upload's together (each holds its
 * buffer and a copy for the second replica); uploads take turns for them.
 */
export const UPLOAD_CHUNKS_SERVER_MAX = 32;

/** Starts uploads and carries their chunks to the data nodes. */
export class Uploads {
  /** Chunks of every upload on their way to the data nodes (`UPLOAD_CHUNKS_SERVER_MAX`). */
  readonly window = new Semaphore(UPLOAD_CHUNKS_SERVER_MAX);
  #nodes: NodeClient;
  #loads: LoadTracker;
  #namespace: Namespace;
  #copies: Replicas;
  #blobIds: BlobIds;
  #replicas: number;
  #uploads = 0;
  #uploadsMax: number;
  /** Data nodes there may be (more than now, when remote nodes may join): bounds `replicas`. */
  #dataNodesMax: number;
  #cache: ChunkCache | undefined;
  #direct: { key: Uint8Array; clock: Pick<Clock, "now"> } | undefined;
  readonly throughput: Throughput;

  constructor(
    parts: {
      nodes: NodeClient;
      loads: LoadTracker;
      namespace: Namespace;
      /** Copies a replica whose node went down under an upload to a live node. */
      copies: Replicas;
      blobIds: BlobIds;
      replicas: number;
      uploadsMax?: number;
      dataNodesMax?: number;
      /** Counts the bytes written and each upload committed (a `put`). */
      throughput: Throughput;
      /** Takes a small file's bytes at its commit (`chunk_cache.ts`). */
      cache?: ChunkCache;
      /** Signs write grants for direct uploads (`direct_uploads.ts`); without it, none is. */
      direct?: { key: Uint8Array; clock: Pick<Clock, "now"> };
    },
  ) {
    this.#direct = parts.direct;
    this.#nodes = parts.nodes;
    this.#loads = parts.loads;
    this.#namespace = parts.namespace;
    this.#copies = parts.copies;
    this.#blobIds = parts.blobIds;
    this.#replicas = parts.replicas;
    this.#uploadsMax = parts.uploadsMax ?? UPLOADS_INFLIGHT_MAX;
    this.#dataNodesMax = parts.dataNodesMax ?? 0;
    this.throughput = parts.throughput;
    this.#cache = parts.cache;
  }

  /**
   * Starts an upload of `name`; `size`, when given, is enforced; `replicas` (default: the server's)
   * may be anything from 1 to the number of data nodes. With `checksums`, every write must come
   * with its CRC32 and the commit with the client's SHA-256, which is recorded instead of hashing
   * the bytes again (see `protocol/messages.ts`).
   *
   * @throws {DfsError} `UNAVAILABLE` at `UPLOADS_INFLIGHT_MAX`; `INVALID_REQUEST` for a replica
   *   count the cluster cannot keep.
   */
  begin(
    name: string,
    options: { size?: number; replicas?: number; checksums?: boolean; direct?: boolean } = {},
  ): Upload | DirectUpload {
    if (this.#uploads >= this.#uploadsMax) {
      throw new DfsError(
        "UNAVAILABLE",
        `Server is at its limit of ${this.#uploadsMax} uploads in progress; try again later`,
      );
    }
    const replicas = options.replicas ?? this.#replicas;
    const { membership } = this.#nodes;
    checkReplicas(replicas, Math.max(membership.dataRanks.length, this.#dataNodesMax));
    const up = membership.dataRanks.filter((rank) => !membership.isDown(rank)).length;
    if (up < replicas) {
      throw new DfsError(
        "UNAVAILABLE",
        `Cannot store "${name}": ${replicas} replicas wanted, but ${up} data ` +
          `node${up === 1 ? " is" : "s are"} up`,
      );
    }
    this.#uploads++;
    let ended = false;
    const onEnd = () => {
      if (!ended) this.#uploads--;
      ended = true;
    };
    const { size } = options;
    const direct = this.#direct;
    const ranks = direct && options.direct && options.checksums && size !== undefined &&
        size >= DIRECT_WRITE_BYTES_MIN && size <= DIRECT_WRITE_BYTES_MAX
      ? directRanks(this.#nodes, replicas)
      : undefined;
    if (direct && ranks && size !== undefined) {
      const parts = {
        nodes: this.#nodes,
        loads: this.#loads,
        ...direct,
        throughput: this.throughput,
        commit: (draft: Parameters<Uploads["commit"]>[0], o: { ifAbsent?: boolean }) =>
          this.commit(draft, undefined, o),
        discard: (refs: readonly ChunkRef[]) => this.discard(refs),
        move: (ref: ChunkRef, from: number, sources: readonly number[]) =>
          this.moveReplica(ref, from, sources),
      };
      return new DirectUpload(parts, name, {
        blob: this.#blobIds.next(),
        size,
        replicas,
        ranks,
        onEnd,
      });
    }
    return new Upload(this, name, {
      blob: this.#blobIds.next(),
      declaredSize: options.size,
      replicas,
      checksums: options.checksums === true,
      onEnd,
    });
  }

  /** The node client, whose buffer pool uploads fill chunks in. */
  get nodes(): NodeClient {
    return this.#nodes;
  }

  /**
   * Sends a chunk to the least loaded data nodes; `written` resolves when every replica is written
   * into its blob (the commit makes them durable). A replica whose node went down meanwhile (it
   * crashed, or its disk failed) is copied from one that was written to another live node, and
   * `ref.ranks` says so: a node failing under an upload does not fail it while others can take
   * its replicas. Takes `bytes`.
   */
  store(
    id: string,
    bytes: Uint8Array,
    options: { replicas: number; crc32?: number },
  ): { ref: ChunkRef; written: Promise<void> } {
    const ref = this.place(id, bytes, options);
    const ranks = [...ref.ranks];
    const slot = this.#sharedSlotFor(bytes, ranks);
    const shared = slot?.subarray(0, bytes.length);
    const writes = ranks.map((rank, i) => {
      // Every replica is written from one shared slot, or the last takes the caller's buffer and
      // the others get copies.
      const copy = shared ?? (i === ranks.length - 1 ? bytes : this.#nodes.copy(bytes));
      return this.#nodes.write(rank, ref, copy).then(() => undefined, (error) => ({ rank, error }));
    });
    const written = Promise.all(writes).then(async (results) => {
      const failed = results.filter((r) => r !== undefined);
      // A slot comes back once every node answered; after a failed call it is set aside.
      if (slot && failed.length > 0) this.#nodes.shared.setAside(slot);
      else if (slot) this.#nodes.shared.give(slot);
      if (failed.length === 0) return;
      const membership = this.#nodes.membership;
      const written = ranks.filter((rank) => !failed.some((f) => f.rank === rank));
      if (written.length === 0 || failed.some((f) => !membership.isDown(f.rank))) {
        throw failed[0].error;
      }
      for (const { rank } of failed) await this.moveReplica(ref, rank, written);
    });
    return { ref, written };
  }

  /**
   * A shared slot holding a copy of `bytes` at its start if every rank shares this process's
   * memory and one is free (the caller's buffer goes back to the pool at once), else undefined.
   * Chunks of whole pages only: the nodes write those straight from the slot with direct I/O.
   */
  #sharedSlotFor(bytes: Uint8Array, ranks: readonly number[]): SharedSlot | undefined {
    if (bytes.length % DIRECT_IO_ALIGN_BYTES !== 0 || bytes.length <= SMALL_READ_BYTES_MAX) {
      return undefined;
    }
    if (!ranks.every((rank) => this.#nodes.sharesMemoryWith(rank))) return undefined;
    const slot = this.#nodes.shared.take();
    if (slot === undefined) return undefined;
    slot.set(bytes);
    this.#nodes.recycle(bytes);
    return slot;
  }

  /**
   * Copies `ref`'s replica meant for `from` (down now) from one of `sources` to the least loaded
   * live node that lacks it, in a zone that holds no other replica of it if one can take it.
   *
   * @throws {DfsError} `UNAVAILABLE` if no live node can take it or no source can give it.
   */
  async moveReplica(ref: ChunkRef, from: number, sources: readonly number[]): Promise<void> {
    // (Also for a direct upload whose node could not confirm its chunks: `direct_uploads.ts`.)
    const membership = this.#nodes.membership;
    const exclude = new Set([...membership.down, ...ref.ranks]);
    // Replicas meant for other nodes that went down are being moved too: their zones are free.
    const holders = ref.ranks.filter((rank) => rank !== from && !membership.isDown(rank));
    const zoneOf = (rank: number) => membership.zoneOf(rank);
    const [target] = chooseRanks(this.#loads.bytesHeld, 1, { exclude, holders, zoneOf });
    // Not committed yet: its chunks are found by their ids.
    if (!await this.#copies.copy(ref, undefined, sources, [target])) {
      throw new DfsError("UNAVAILABLE", `Cannot store chunk ${ref.id}: rank ${from} went down`);
    }
    this.#loads.add(target, ref.size);
    this.#loads.add(from, -ref.size);
    ref.ranks = ref.ranks.map((rank) => rank === from ? target : rank);
  }

  /**
   * Picks the least loaded live data nodes for a chunk, in different zones when they can be (see
   * `chooseRanks`), and counts it on them (without sending it).
   * The checksum is taken as the bytes arrive (or was checked against the client's); each data
   * node checks it before writing.
   */
  place(id: string, bytes: Uint8Array, options: { replicas: number; crc32?: number }): ChunkRef {
    const ranks = this.#loads.place(bytes.length, options.replicas, this.#nodes.membership.down);
    return { id, size: bytes.length, ranks, crc32: options.crc32 ?? crc32(bytes) };
  }

  /** Removes chunks of an upload that will never commit (best effort: start-up cleans the rest). */
  async discard(refs: readonly ChunkRef[]): Promise<void> {
    const byRank = new Map<number, string[]>();
    for (const ref of refs) {
      for (const rank of ref.ranks) {
        byRank.set(rank, [...(byRank.get(rank) ?? []), ref.id]);
        this.#loads.add(rank, -ref.size);
      }
    }
    await Promise.allSettled([...byRank].map(([rank, ids]) => this.#nodes.discard(rank, ids)));
  }

  /** Commits a written upload (see `Namespace.commit`). */
  async commit(
    draft: { name: string; size: number; sha256: string; chunks: ChunkRef[]; attrs?: FileAttrs },
    data?: Uint8Array,
    options: { ifAbsent?: boolean } = {},
  ): Promise<FileMeta> {
    const meta = await this.#namespace.commit(draft, data, options);
    if (data !== undefined) this.#cache?.put(draft.chunks[0].id, data);
    return meta;
  }
}

/** One upload in progress. Feed it with `write()`, then `commit()` or `abort()`. */
export class Upload implements UploadApi {
  #uploads: Uploads;
  #name: string;
  #declaredSize: number | undefined;
  #replicas: number;
  /** Called once when the upload commits or is dropped (frees its slot). */
  #onEnd: () => void;
  /** The SHA-256 of the bytes, unless the client sends its own (`checksums`). */
  #hash: Hash | null;
  #received = 0;
  /** This upload's blob on every data node it writes to (see `chunk_id.ts`). */
  #blob: string;
  /** Bytes handed to `store()` so far: the next chunk's offset. */
  #sent = 0;
  #chunks: ChunkRef[] = [];
  #inflight: Promise<void>[] = [];
  #buffer: Uint8Array | null = null;
  #buffered = 0;
  #failure: unknown = null;
  #done = false;

  constructor(
    uploads: Uploads,
    name: string,
    options: {
      blob: string;
      declaredSize: number | undefined;
      replicas: number;
      checksums: boolean;
      onEnd: () => void;
    },
  ) {
    this.#uploads = uploads;
    this.#hash = options.checksums ? null : createHash("sha256");
    this.#name = name;
    this.#blob = options.blob;
    this.#declaredSize = options.declaredSize;
    this.#replicas = options.replicas;
    this.#onEnd = options.onEnd;
  }

  get receivedBytes(): number {
    return this.#received;
  }

  /**
   * Takes the next bytes of the file, with their CRC32 as the client computed it (required with
   * `checksums`). Takes ownership of `bytes` (its buffer may be moved to a data node). Waits
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
    this.#uploads.throughput.written(bytes.length);
    this.#hash?.update(bytes);
    if (this.#buffered === 0 && bytes.length === CHUNK_SIZE_BYTES) {
      // The common case: one client frame is one chunk, no copy, its CRC32 taken once.
      return await this.#send(bytes, received);
    }
    let at = 0;
    while (at < bytes.length) {
      this.#buffer ??= this.#uploads.nodes.pool.take();
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
  async commit(
    options: { sha256?: string; attrs?: FileAttrs; ifAbsent?: boolean } = {},
  ): Promise<FileMeta> {
    try {
      if (options.attrs !== undefined) checkAttrs(options.attrs);
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
        this.#chunks.push(this.#uploads.place(id, data, { replicas: this.#replicas }));
      }
      const draft = {
        name: this.#name,
        size: this.#received,
        sha256,
        chunks: this.#chunks,
        ...(options.attrs === undefined ? {} : { attrs: { ...options.attrs } }),
      };
      const meta = await this.#uploads.commit(draft, data, { ifAbsent: options.ifAbsent });
      this.#chunks = []; // committed: they belong to the file now, abort() must not touch them
      this.#uploads.throughput.op("put");
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
    if (this.#buffer) this.#uploads.nodes.recycle(this.#buffer);
    this.#buffer = null;
    if (this.#done && this.#chunks.length === 0) return;
    this.#done = true;
    await Promise.allSettled(this.#inflight);
    const chunks = this.#chunks;
    this.#chunks = [];
    this.#inflight = [];
    await this.#uploads.discard(chunks);
  }

  /** The bytes buffered, in an exact copy (the pooled buffer goes back). */
  #takeBuffered(): Uint8Array {
    const bytes = (this.#buffer ?? new Uint8Array(0)).slice(0, this.#buffered);
    if (this.#buffer) this.#uploads.nodes.recycle(this.#buffer);
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
      this.#uploads.nodes.recycle(buffer);
    }
    this.#buffer = null;
    this.#buffered = 0;
    await this.#send(bytes);
  }

  async #send(bytes: Uint8Array, crc32?: number): Promise<void> {
    // This upload's window, then the server's: chunks in flight hold a permit until written
    // (never waiting on a client, so the permits always come back).
    while (this.#inflight.length >= UPLOAD_CHUNKS_INFLIGHT_MAX) await this.#inflight.shift();
    const window = this.#uploads.window;
    await window.acquire();
    const id = chunkIdOf(this.#blob, this.#sent);
    this.#sent += bytes.length;
    const { ref, written } = this.#uploads.store(id, bytes, { replicas: this.#replicas, crc32 });
    const settled = written.finally(() => window.release());
    this.#chunks.push(ref);
    this.#inflight.push(settled);
    settled.catch((error) => this.#failure ??= error);
  }
}
