/**
 * The records a data node's log is rewritten to (a compaction, a start-up repair): a commit
 * record of each manifest kept, carrying the bytes of its chunk kept in the log, and data records
 * for the chunks kept in the log of a file of several. Pure: the bytes come from the function it is
 * given.
 *
 * @module
 */

import { readManifests } from "../common/manifest_codec.ts";
import { encodeRecord } from "./log_record.ts";

/** A chunk whose bytes a record carries, and where they start in the record. */
export interface CarriedChunk {
  id: string;
  at: number;
  size: number;
}

/** Where the bytes of the chunks kept in the log come from. */
export interface KeptChunks {
  /** True if the chunk's bytes are kept in the log. */
  has(id: string): boolean;
  /** The chunk's bytes, or undefined if they are no longer there. */
  bytesOf(id: string): Promise<Uint8Array | undefined>;
}

/**
 * The records of a log holding exactly `manifests` (`ManifestWriter` bytes), made as they are
 * taken. Once taken, `carried` says per record which chunk it carries, and `commits` per manifest
 * (in their order) which record commits it.
 */
export class RewrittenRecords implements AsyncIterable<Uint8Array> {
  readonly carried: (CarriedChunk | undefined)[] = [];
  readonly commits: number[] = [];
  #manifests: Uint8Array;
  #chunks: KeptChunks;

  constructor(manifests: Uint8Array, chunks: KeptChunks) {
    this.#manifests = manifests;
    this.#chunks = chunks;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    const { carried, commits } = this;
    for (const manifest of readManifests(this.#manifests)) {
      const [first] = manifest.chunks;
      const single = manifest.chunks.length === 1;
      const data = single ? await this.#chunks.bytesOf(first.id) : undefined;
      const bytes = encodeRecord({ kind: "commit", manifest }, data);
      commits.push(carried.length);
      carried.push(data && { id: first.id, at: bytes.length - data.length, size: data.length });
      yield bytes;
      if (single) continue;
      // A file of several chunks (a composed one) may hold chunks kept in the log: their bytes
      // follow its commit in data records.
      for (const { id } of manifest.chunks) {
        const data = this.#chunks.has(id) ? await this.#chunks.bytesOf(id) : undefined;
        if (!data) continue;
        const bytes = encodeRecord({ kind: "data", id }, data);
        carried.push({ id, at: bytes.length - data.length, size: data.length });
        yield bytes;
      }
    }
  }
}
