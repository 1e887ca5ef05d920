/**
 * Where a data node finds the bytes of the chunks kept in its log (small files' and restored
 * small chunks'): most in the commit record of their file, which the node's table says carries
 * them (`ManifestTable.carry()`, 2 bytes a file), the rest by the chunk's id (`LogPlaces`, ~34
 * bytes a chunk): a version pushed out by a newer one, a renamed or composed file's, a chunk
 * restored in a data record. A reader names the file (`NodeCall` `read`). The table tells
 * (`Evicted`) when a slot that carried its chunk changes: the chunk is then found by its id.
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";
import { carriedChunkId, type LogRecord } from "./log_record.ts";
import { type LogPlace, LogPlaces } from "./log_places.ts";
import type { ManifestTable } from "./manifest_table.ts";
import type { LogSwap, RecordLog } from "./record_log.ts";
import { TABLE_STEP_MANIFESTS } from "./table_snapshot.ts";
import { chunkIdsOn, type FileVersion, type Manifest } from "../common/manifest.ts";

/** What the chunks' places are read through: the node's table and log, as they stand. */
export interface LogChunksOwner {
  table(): ManifestTable;
  log(): RecordLog;
  /** The node's rank: the chunks placed on it are its. */
  rank: number;
}

/** See the module. */
export class LogChunks {
  #owner: LogChunksOwner;
  /** Chunks found by their id. */
  #byId = new LogPlaces();
  /** Where a compaction running puts the chunks it carries: one released meanwhile goes. */
  #compacting: LogPlaces | undefined;

  constructor(owner: LogChunksOwner) {
    this.#owner = owner;
  }

  /** The chunks found by their id (a rewrite takes their bytes from there). */
  get byId(): LogPlaces {
    return this.#byId;
  }

  /** Whether the bytes of chunk `id` of `m` are kept in the log (as a summary asks). */
  has(id: string, m: FileVersion): boolean {
    // Most are carried: that lookup first.
    return this.#owner.table().carriedAt(m.name, m.version) !== undefined || this.#byId.has(id);
  }

  /**
   * The bytes of chunk `id`, of `size` bytes, of `file` if named, if they are kept in the log;
   * read synchronously (a log rewrite cannot move them meanwhile).
   *
   * @throws {DfsError} `CORRUPTED` if the log holds a chunk of that id of another size, or its
   *   record is damaged; `UNAVAILABLE` if the log cannot be read.
   */
  async read(
    id: string,
    size: number,
    file: Partial<FileVersion>,
  ): Promise<Uint8Array<ArrayBuffer> | undefined> {
    const place = this.#byId.get(id);
    if (place === undefined) {
      if (file.name === undefined) return undefined;
      const at = this.#owner.table().carriedAt(file.name, file.version ?? -1);
      return at === undefined ? undefined : await this.#owner.log().read(at, size);
    }
    if (place.size !== size) {
      throw new DfsError(
        "CORRUPTED",
        `Cannot read chunk ${id}: expected ${size} bytes, found ${place.size}`,
      );
    }
    return await this.#owner.log().read(place.offset, size);
  }

  /**
   * Every chunk kept in the log, in the wire form of a `ChunkIdSet`: those found through their
   * file's record too (each read back), giving way every `TABLE_STEP_MANIFESTS`.
   */
  async encodeIds(giveWay: () => Promise<void>): Promise<Uint8Array> {
    const carried: string[] = [];
    for (const id of this.#owner.table().carriedChunkIds()) {
      if (carried.push(id) % TABLE_STEP_MANIFESTS === 0) await giveWay();
    }
    return this.#byId.encodeIds(carried);
  }

  /**
   * The chunks kept in the log whose bytes `record` makes dead, to be told `gone()` once it is
   * applied: a release's, and those of a compose's sources that the composed file leaves out
   * (an empty one).
   */
  leavingWith(record: LogRecord): string[] {
    const [table, rank] = [this.#owner.table(), this.#owner.rank];
    if (record.kind === "release") {
      const released = table.get(record.name, record.version);
      return released ? chunkIdsOn(released, rank) : [];
    }
    if (record.kind !== "compose") return [];
    const kept = new Set(chunkIdsOn(record.manifest, rank));
    const leaving: string[] = [];
    for (const source of record.sources) {
      const m = table.get(source.name, source.version);
      for (const id of m ? chunkIdsOn(m, rank) : []) if (!kept.has(id)) leaving.push(id);
    }
    return leaving;
  }

  /** Where the bytes of `m`'s one chunk are, if its slot's record carries them. */
  carriedPlaceOf(m: Manifest): LogPlace | undefined {
    const at = this.#owner.table().carriedAt(m.name, m.version);
    return at === undefined ? undefined : { offset: at, size: m.chunks[0].size };
  }

  /**
   * Notes where the bytes the record at `where` carries are (at `offset`): through its slot, if
   * it commits the newest version held there (`ManifestTable.carry()`), else by the chunk's id.
   */
  placed(record: LogRecord, where: number, offset: number, size: number): void {
    const id = carriedChunkId(record);
    if (id === undefined) return;
    if (record.kind === "commit") {
      const { name, version } = record.manifest;
      if (this.#owner.table().carry(name, version, where, offset)) return;
    }
    this.#byId.set(id, { offset, size });
  }

  /**
   * The slot of `m`, whose record carried its one chunk's bytes, changed (`Evicted`): they are
   * found by the chunk's id again, and those a compaction running wrote from the slot too.
   */
  evicted(m: Manifest, where: { dataAt: number | undefined; newDataAt: number | undefined }): void {
    const [{ id, size }] = m.chunks;
    if (where.dataAt !== undefined && !this.#byId.has(id)) {
      this.#byId.set(id, { offset: where.dataAt, size });
    }
    if (where.newDataAt !== undefined) this.#compacting?.set(id, { offset: where.newDataAt, size });
  }

  /** A chunk's bytes are no longer kept in the log (released, or left out of a compose). */
  gone(id: string): void {
    this.#byId.delete(id);
    this.#compacting?.delete(id);
  }

  /** A compaction runs, putting the chunks it carries at `places` (undefined once it ended). */
  compacting(places: LogPlaces | undefined): void {
    this.#compacting = places;
  }

  /**
   * The new log is the log: the chunks found by their id are at `places` (less those released
   * meanwhile, taken out as they went), with those appended meanwhile.
   */
  swapped(places: LogPlaces, swap: LogSwap): void {
    places.takeTail(this.#byId, swap.tailFrom, swap.shift);
    this.#byId = places;
  }
}
