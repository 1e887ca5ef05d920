/**
 * Where a chunk lives on a data node. Each upload writes its chunks into one blob file per data
 * node, each chunk at its offset in the file (so a node's blob is sparse where other nodes hold the
 * chunks): a chunk id is `<blob>-<offset>`, the blob an id unique to the upload, the offset in hex.
 *
 * One file per upload and node instead of one per chunk: creating and fsyncing a file per 1 MiB
 * chunk cost ext4 about 10x the kernel time of writing the same bytes into one file. Small files
 * have no blob at all: their one chunk is kept in the data nodes' logs (`LOG_FILE_BYTES_MAX`).
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";
import { systemRandom } from "../env/system.ts";
import type { Random } from "../env/env.ts";

/** A blob id: 32 lower-case hex digits made by the server (never from a client's name). */
export const BLOB_ID_PATTERN = /^[0-9a-f]{32}$/;
/** A chunk id: its blob id, a dash, and its byte offset in the blob in lower-case hex. */
export const CHUNK_ID_PATTERN = /^[0-9a-f]{32}-(?:0|[1-9a-f][0-9a-f]{0,12})$/;

/**
 * Makes blob ids matching `BLOB_ID_PATTERN`: 64 random bits drawn once, then a counter, so ids
 * never repeat within one source, nor (but with chance 2^-64) across restarts. Rank 0 makes one
 * from its environment's randomness, so a seeded run makes the same ids.
 */
export class BlobIds {
  #prefix: string;
  #count = 0;

  constructor(random: Random) {
    const bits = random.fill(new Uint8Array(8));
    this.#prefix = Array.from(bits, (byte) => byte.toString(16).padStart(2, "0")).join("");
  }

  /** A new blob id. */
  next(): string {
    return this.#prefix + (this.#count++).toString(16).padStart(16, "0");
  }
}

const systemBlobIds = new BlobIds(systemRandom);

/** A new blob id from the system's randomness (for tests and tools; rank 0 has its own). */
export function newBlobId(): string {
  return systemBlobIds.next();
}

/** The id of the chunk at byte `offset` of blob `blob`. */
export function chunkIdOf(blob: string, offset: number): string {
  assert(BLOB_ID_PATTERN.test(blob), `blob id ${JSON.stringify(blob)} is 32 lower-case hex digits`);
  assert(Number.isSafeInteger(offset) && offset >= 0, "a chunk offset is a whole number");
  return `${blob}-${offset.toString(16)}`;
}

/** The blob a chunk id (or a blob id) names. */
export function blobOf(id: string): string {
  return id.slice(0, 32);
}

/** A chunk's byte offset in its blob. */
export function offsetOf(chunkId: string): number {
  return parseInt(chunkId.slice(33), 16);
}

/**
 * Files up to this size travel to their data nodes with their commit and are kept in the nodes'
 * logs (see `data_node.ts`): one trip and one group-committed append instead of a blob of their
 * own, written and synced apart. A log batch of `RECORD_BATCH_BYTES_MAX` still holds 16 of them.
 */
export const LOG_FILE_BYTES_MAX = 64 * 1024;

/**
 * Chunks up to this size are small: a data node reads one at the start of its blob with one
 * `readFile` op (~3x the rate of open+seek+read for 4 KiB on Deno) into a buffer of its own, so
 * rank 0 lends no pooled buffer for it, and a chunk this small travels in an exact copy.
 */
export const SMALL_READ_BYTES_MAX = 256 * 1024;

/**
 * True for the chunk of a file kept in the log: the only chunk of a file of at most
 * `LOG_FILE_BYTES_MAX` (every chunk but the last is `CHUNK_SIZE_BYTES`, so a first chunk this small
 * is the whole file).
 */
export function isKeptInLog(chunkId: string, size: number): boolean {
  return offsetOf(chunkId) === 0 && size <= LOG_FILE_BYTES_MAX;
}

/** True for a well-formed chunk id. */
export function isChunkId(id: string): boolean {
  return CHUNK_ID_PATTERN.test(id);
}
