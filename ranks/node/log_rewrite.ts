/**
 * The records a data node's log is rewritten to (a compaction, a start-up repair): a commit
 * record of each manifest kept, carrying the bytes of its chunk kept in the log, and data records
 * for the chunks kept in the log of a file of several. Pure: the manifests and the bytes come from
 * what it is given, as the records are taken.
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";
import type { Manifest } from "../common/manifest.ts";
import { encodeRecord } from "./log_record.ts";
import { LogPlaces } from "./log_places.ts";
import { RECORD_HEADER_SIZE_BYTES } from "./record_frame.ts";

/** A manifest to write, and its one chunk's bytes if they are at hand (a view). */
export interface KeptManifest {
  manifest: Manifest;
  data?: Uint8Array;
  /**
   * Its commit record as it is to be written, if it is at hand: read back from the old log, where
   * it commits this manifest alone with `data` at its end (or no data, its chunk not kept in the
   * log). Written as is, it costs a copy, not an encoding.
   */
  record?: Uint8Array;
}

/** `manifests` as manifests to write, their chunks' bytes to be fetched. */
export function* keptOf(manifests: Iterable<Manifest>): Generator<KeptManifest> {
  for (const manifest of manifests) yield { manifest };
}

/** Where the bytes of the chunks kept in the log come from. */
export interface KeptChunks {
  /** True if the chunk's bytes are kept in the log. */
  has(id: string): boolean;
  /** The chunk's bytes, or undefined if they are no longer there. */
  bytesOf(id: string, m?: Manifest): Promise<Uint8Array | undefined>;
}

/**
 * The records of a log holding exactly the manifests `kept` yields (with their one chunk's bytes
 * when it has them at hand; else they come from `chunks`), made as they are taken. The new log
 * holds them from its start, one after another (`[header][body]`, `record_frame.ts`): `placed` is
 * told where each manifest's commit record's body goes as it is made, and where the bytes it
 * carries go, if any; `places` says where each chunk carried goes, but those `placed` took. Take
 * them all before using those, and `check()` them against the offsets the log reports.
 */
export class RewrittenRecords implements AsyncIterable<Uint8Array> {
  /** Where the bytes of each chunk carried are in the new log. */
  readonly places: LogPlaces = new LogPlaces();
  #kept: Iterable<KeptManifest> | AsyncIterable<KeptManifest>;
  #chunks: KeptChunks;
  #placed: (where: number, dataAt?: number) => boolean;
  #records = 0;
  /** Bytes of the new log so far: where the next record's header goes. */
  #end = 0;
  /** Where the last record's body goes. */
  #last = -1;

  constructor(
    kept: Iterable<KeptManifest> | AsyncIterable<KeptManifest>,
    chunks: KeptChunks,
    placed: (where: number, dataAt?: number) => boolean,
  ) {
    this.#kept = kept;
    this.#chunks = chunks;
    this.#placed = placed;
  }

  /** Records made so far. */
  get records(): number {
    return this.#records;
  }

  /**
   * Checks that the log put the records where they were counted to go.
   *
   * @throws {Error} an assertion if it did not.
   */
  check(offsets: readonly number[]): void {
    assert(
      offsets.length === this.#records && (offsets.at(-1) ?? -1) === this.#last,
      "a rewritten log holds its records where they were counted to go",
    );
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for await (const { manifest, data: given, record } of this.#kept) {
      const [first] = manifest.chunks;
      const single = manifest.chunks.length === 1;
      const data = single && !record
        ? given ?? await this.#chunks.bytesOf(first.id, manifest)
        : given;
      const bytes = record ?? encodeRecord({ kind: "commit", manifest }, data);
      const at = this.#next(bytes);
      const dataAt = data ? at + bytes.length - data.length : undefined;
      if (!this.#placed(at, dataAt) && data) this.#carried(first.id, bytes, data);
      yield bytes;
      if (single) continue;
      // A file of several chunks (a composed one) may hold chunks kept in the log: their bytes
      // follow its commit in data records.
      for (const { id } of manifest.chunks) {
        const data = this.#chunks.has(id) ? await this.#chunks.bytesOf(id) : undefined;
        if (!data) continue;
        const bytes = encodeRecord({ kind: "data", id }, data);
        this.#next(bytes);
        this.#carried(id, bytes, data);
        yield bytes;
      }
    }
  }

  /** Counts `record` in: where its body goes. */
  #next(record: Uint8Array): number {
    this.#last = this.#end + RECORD_HEADER_SIZE_BYTES;
    this.#end = this.#last + record.length;
    this.#records++;
    return this.#last;
  }

  /** Notes where the `data` at the end of `record`, the last counted in, go. */
  #carried(id: string, record: Uint8Array, data: Uint8Array): void {
    this.places.set(id, { offset: this.#last + record.length - data.length, size: data.length });
  }
}
