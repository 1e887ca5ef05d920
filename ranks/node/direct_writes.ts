/**
 * Uploads a data node takes chunks of from clients directly (`data_port.ts`): rank 0 opens a blob
 * for an upload it planned (`expect`) on each node the plan names, clients write the blob's chunks
 * with a write grant, the node records what each one was, and rank 0 seals the blob before it
 * commits (`seal`): every chunk the commit names must have been written here as named, and no
 * write is taken after. A chunk id names bytes that never change, so a grant alone (which lives
 * for minutes) must not let a client write into a committed blob: the open blob is what does.
 * Pure but for the clock.
 *
 * @module
 */

import { GRANT_CLOCK_SKEW_MS, GRANT_TTL_MS } from "../../protocol/direct.ts";
import { DfsError } from "../../protocol/errors.ts";
import { CHUNK_SIZE_BYTES } from "../../protocol/limits.ts";
import { blobOf, offsetOf } from "../common/chunk_id.ts";
import type { Clock } from "../env/env.ts";

/** Blobs open for direct writes on one node at once (rank 0 uploads through itself beyond). */
export const DIRECT_BLOBS_OPEN_MAX = 256;
/**
 * How long a blob stays open with no write, seal or discard: a grant's shortest life and skew.
 * Each write admitted keeps it open that much longer, so an upload that goes on never lapses.
 */
export const DIRECT_BLOB_OPEN_MS = GRANT_TTL_MS + GRANT_CLOCK_SKEW_MS;

interface OpenBlob {
  /** The upload's size: no chunk is written past it. */
  bytes: number;
  /** Monotonic ms after which the blob is closed. */
  untilMs: number;
  /** Each chunk written, by offset. */
  written: Map<number, { size: number; crc32: number }>;
  /** Writes admitted and not finished: the blob cannot be sealed under them. */
  inflight: number;
}

/** A chunk of a direct upload as rank 0 will commit it. */
export interface PlannedChunk {
  id: string;
  size: number;
  crc32: number;
}

/** The blobs open for direct writes on one node. */
export class DirectWrites {
  #open = new Map<string, OpenBlob>();
  #clock: Pick<Clock, "monotonic">;

  constructor(clock: Pick<Clock, "monotonic">) {
    this.#clock = clock;
  }

  /** Blobs open now. */
  get size(): number {
    return this.#open.size;
  }

  /**
   * Opens `blob`, an upload of `bytes`, for direct writes.
   *
   * @throws {DfsError} `UNAVAILABLE` at `DIRECT_BLOBS_OPEN_MAX` open blobs.
   */
  expect(blob: string, bytes: number): true {
    const now = this.#clock.monotonic();
    for (const [id, open] of this.#open) if (open.untilMs < now) this.#open.delete(id);
    if (!this.#open.has(blob) && this.#open.size >= DIRECT_BLOBS_OPEN_MAX) {
      throw new DfsError("UNAVAILABLE", `${DIRECT_BLOBS_OPEN_MAX} uploads are open on this node`);
    }
    const { written = new Map(), inflight = 0 } = this.#open.get(blob) ?? {};
    this.#open.set(blob, { bytes, untilMs: now + DIRECT_BLOB_OPEN_MS, written, inflight });
    return true;
  }

  /**
   * Checks that a write of `size` bytes as chunk `chunk` may go ahead: its blob is open, and it
   * is a chunk of the upload's plan (at a whole chunk's offset, within the upload's size). The
   * caller then writes it and calls `finish()`, whether the write succeeded or not.
   *
   * @throws {DfsError} `UNAUTHORIZED` when the blob is not open here (never, sealed, discarded or
   *   expired); `INVALID_REQUEST` for a chunk the plan cannot have.
   */
  admit(chunk: string, size: number): void {
    const open = this.#openOf(blobOf(chunk));
    const offset = offsetOf(chunk);
    const expected = Math.min(CHUNK_SIZE_BYTES, open.bytes - offset);
    if (offset % CHUNK_SIZE_BYTES !== 0 || offset >= open.bytes || size !== expected) {
      throw new DfsError(
        "INVALID_REQUEST",
        `Chunk ${chunk} of ${size} bytes is not a chunk of this ${open.bytes}-byte upload`,
      );
    }
    open.inflight++;
    open.untilMs = this.#clock.monotonic() + DIRECT_BLOB_OPEN_MS;
  }

  /**
   * Ends a write `admit()` let through; with `crc32`, notes that chunk `chunk` was written with
   * `size` bytes and that CRC32. False when the blob is no longer open (discarded or expired while
   * the write was on its way: the caller removes what it wrote).
   */
  finish(chunk: string, written?: { size: number; crc32: number }): boolean {
    const open = this.#open.get(blobOf(chunk));
    if (open === undefined) return false;
    open.inflight--;
    if (written) open.written.set(offsetOf(chunk), written);
    return true;
  }

  /**
   * Closes `blob` for writes once every chunk of `chunks` was written here as it says.
   *
   * @throws {DfsError} `UNAVAILABLE` if the blob is not open (the node restarted, say);
   *   `CORRUPTED` for a chunk not written, or written otherwise.
   */
  seal(blob: string, chunks: readonly PlannedChunk[]): true {
    const open = this.#open.get(blob);
    if (open === undefined || open.untilMs < this.#clock.monotonic()) {
      throw new DfsError("UNAVAILABLE", `Upload ${blob} is not open on this node any more`);
    }
    if (open.inflight > 0) {
      throw new DfsError("INVALID_REQUEST", `Upload ${blob} has writes in flight on this node`);
    }
    for (const chunk of chunks) {
      const got = blobOf(chunk.id) === blob ? open.written.get(offsetOf(chunk.id)) : undefined;
      if (got?.size !== chunk.size || got.crc32 !== chunk.crc32) {
        throw new DfsError("CORRUPTED", `Chunk ${chunk.id} was not written here as committed`);
      }
    }
    this.#open.delete(blob);
    return true;
  }

  /** Closes the blobs of chunks that are discarded. */
  forget(ids: readonly string[]): void {
    for (const id of ids) this.#open.delete(blobOf(id));
  }

  #openOf(blob: string): OpenBlob {
    const open = this.#open.get(blob);
    if (open === undefined || open.untilMs < this.#clock.monotonic()) {
      this.#open.delete(blob);
      throw new DfsError("UNAUTHORIZED", `Upload ${blob} is not open for writes on this node`);
    }
    return open;
  }
}
