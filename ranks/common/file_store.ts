/**
 * `FileStore`: the operations every gateway serves. Rank 0's store (`rank0/store.ts`) implements
 * it in-process; the client library (`client.ts`) implements it over the CBOR protocol; the CBOR
 * gateway (`gateway/`) is a table from protocol request to store call, and an HTTP/S3 gateway is
 * a second such table. One behaviour suite (`tests/file_store_suite.ts`) runs against both.
 *
 * `StreamingFileStore` adds what a gateway that receives and sends frames needs to do so without
 * copying: an upload fed frame by frame with each frame's CRC32, a read handed out chunk by chunk
 * with the chunk buffers recycled, the pool those buffers come from, and a listing page by page.
 *
 * @module
 */

import type { BufferPool } from "../../protocol/buffer_pool.ts";
import type { DirectRoute, WritePlan } from "../../protocol/direct.ts";
import type {
  DoctorReport,
  FileMeta,
  FsckReport,
  ListEntry,
  RankCapacity,
  StatusReport,
  Usage,
} from "../../protocol/messages.ts";
import type { FileAttrs } from "./manifest.ts";
import type { Semaphore } from "./semaphore.ts";

export type { DoctorReport, FileMeta, FsckReport, ListEntry, RankCapacity, StatusReport, Usage };

/**
 * Chunk reads one open read keeps in flight ahead of its consumer, unless given a smaller
 * `budget`: the default budget of `openRead`, and what a gateway lends all of one connection's
 * reads together.
 */
export const READ_CHUNKS_INFLIGHT_MAX = 8;

/** Bytes to store: a whole buffer, a stream, or any (async) iterable of byte arrays. */
export type ByteSource =
  | Uint8Array
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array>
  | Iterable<Uint8Array>;

/** A byte range of a file: `start` (default 0) to `end` (default the size), end exclusive. */
export interface ByteRange {
  start?: number;
  end?: number;
}

/** How `list` pages: names after `after` (exclusive), at most `limit` of them. */
export interface ListOptions {
  after?: string;
  limit?: number;
}

/** The operations of a file store, whichever side of a socket it is on. */
export interface FileStore {
  /**
   * Stores `data` as `name`, replacing any previous version atomically once every replica is
   * durable. `size`, when given, is enforced; `replicas` from 1 to the number of data nodes.
   */
  put(
    name: string,
    data: ByteSource,
    options?: { size?: number; replicas?: number },
  ): Promise<FileMeta>;
  /** The current version's metadata and a stream of its bytes (or of `range` of them). */
  open(
    name: string,
    range?: ByteRange,
  ): Promise<{ meta: FileMeta; stream: ReadableStream<Uint8Array> }>;
  meta(name: string): Promise<FileMeta>;
  /** Names under `prefix` in byte order, after `options.after`, at most `options.limit`. */
  list(prefix?: string, options?: ListOptions): Promise<ListEntry[]>;
  remove(name: string): Promise<void>;
  /** Removes every name under a non-empty `prefix`; returns how many. */
  removePrefix(prefix: string): Promise<number>;
  rename(from: string, to: string, options?: { force?: boolean }): Promise<FileMeta>;
  usage(prefix?: string): Promise<Usage>;
  capacity(): Promise<RankCapacity[]>;
  fsck(): Promise<FsckReport>;
  status(): Promise<StatusReport>;
  /**
   * What would become under-replicated and what would be lost if `target` were gone now: a data
   * rank (an integer) or a zone (every data node in it). Looks at the index only, no node I/O.
   * Throws `NOT_FOUND` for neither, `INVALID_REQUEST` for an empty target.
   */
  doctor(target: string): Promise<DoctorReport>;
}

/** One upload in progress: `write()` its bytes, then `commit()` or `abort()`. */
export interface Upload {
  readonly receivedBytes: number;
  /**
   * Begun with `direct`: where the client writes the chunks itself (`protocol/direct.ts`), once
   * the data nodes have opened the upload; absent when the store offers no such plan (the bytes
   * then come through `write()`), rejected when the nodes could not open it.
   */
  readonly plan?: Promise<WritePlan>;
  /**
   * A direct upload's chunk `index` could not be written on `rank`: another live node to write it
   * to instead.
   */
  replace?(index: number, rank: number): Promise<{ rank: number; address: string }>;
  /**
   * Takes the next bytes, with the CRC32 the sender computed (required when the upload promised
   * checksums). Takes ownership of `bytes`. Waits while the upload's window is full.
   */
  write(bytes: Uint8Array, crc32?: number): Promise<void>;
  /**
   * Waits for every chunk to be written and commits the file. With `ifAbsent`, fails with
   * `ALREADY_EXISTS` (and aborts) if the name has a current version when the commit is decided:
   * of two such uploads of one name, one wins. A direct upload's commit names each chunk's CRC32
   * (`crc32s`), which every node that holds it must have seen.
   */
  commit(
    options?: { sha256?: string; attrs?: FileAttrs; ifAbsent?: boolean; crc32s?: number[] },
  ): Promise<FileMeta>;
  /** Drops the upload and whatever it stored; safe to call more than once. */
  abort(): Promise<void>;
}

/** An open read of one committed version; holds that version's chunks until closed. */
export interface FileReader {
  readonly meta: FileMeta;
  /** The byte range being read (end exclusive). */
  readonly start: number;
  readonly end: number;
  /** The range's bytes, chunk by chunk, in order. */
  chunks(): AsyncIterable<Uint8Array>;
  /** Hands a chunk's buffer back once it has been written out. */
  recycle(chunk: Uint8Array): void;
  /**
   * Opened with `direct`: where the client may read the chunks from the data nodes themselves
   * (`protocol/direct.ts`), when the store offers it; `chunks()` is then not called.
   */
  readonly route?: DirectRoute;
  /**
   * Reads chunk `index` of the version opened, whole, and hands it to `send` (its buffer is
   * reused once `send` resolves): a chunk a direct reader could get from no node.
   *
   * @throws {DfsError} `INVALID_REQUEST` for an index out of the file.
   */
  fetch?(index: number, send: (bytes: Uint8Array) => Promise<void>): Promise<void>;
  close(): void;
}

/** A `FileStore` that a frame-speaking gateway can feed and drain without copies. */
export interface StreamingFileStore extends FileStore {
  /** Buffers that incoming data frames are read into (they travel on to the data nodes). */
  readonly pool: BufferPool;
  /**
   * Starts an upload. With `checksums`, every write must carry its CRC32 and the commit the
   * sender's SHA-256, which is recorded instead of hashing the bytes again. With `direct` (and
   * `checksums` and `size`), the store may give the upload a `plan` for the sender to write the
   * chunks to the data nodes itself.
   */
  beginUpload(
    name: string,
    options?: { size?: number; replicas?: number; checksums?: boolean; direct?: boolean },
  ): Upload;
  /**
   * Makes `name` a file of the `sources`' bytes in order, each the given version of a file,
   * without copying them: the sources are gone after, as in a rename. An S3 multipart upload
   * completes this way.
   *
   * @throws {DfsError} `VERSION_MISMATCH` if a source is no longer current; `NOT_FOUND` for a
   *   missing one.
   */
  compose(
    name: string,
    sources: readonly { name: string; version: number }[],
    options?: { attrs?: FileAttrs },
  ): Promise<FileMeta>;
  /**
   * Opens the current version of `name`; its chunks are read ahead within `budget` (shared by
   * the caller's reads, e.g. one connection's) and the server-wide read-ahead.
   */
  openRead(
    name: string,
    range?: ByteRange,
    options?: { budget?: Semaphore; direct?: boolean },
  ): FileReader;
  /**
   * The names `list` gives, in order, as pages of at most `LIST_PAGE_ENTRIES_MAX` made as they
   * are asked for: a listing of any length is streamed in bounded memory. Stopping the iteration
   * stops the listing.
   */
  listPages(prefix?: string, options?: ListOptions): AsyncIterable<ListEntry[]>;
}
