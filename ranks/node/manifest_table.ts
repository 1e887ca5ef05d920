/**
 * A data node's manifests in memory, rebuilt from its log and kept in step with every record it
 * appends. Pure: records are read back through the function it is given.
 *
 * @module
 */

import { type ListingPage, listingPageOf, type Manifest } from "../common/manifest.ts";
import { MANIFEST_SLOTS_MIN, ManifestColumns } from "../common/manifest_columns.ts";
import { PagedColumn } from "../common/paged_column.ts";
import { NODE_LIST_ENTRIES_MAX } from "../common/node_protocol.ts";
import { assert, DfsError } from "../../protocol/errors.ts";
import {
  composeTombstones,
  decodeRecord,
  decodeRecordWithData,
  isBinaryCommit,
  type LogRecord,
  renamedFrom,
} from "./log_record.ts";
import { TableSnapshot } from "./table_snapshot.ts";

/** The manifests a record commits (tombstones included), in the order it applies them. */
export function manifestsOf(record: LogRecord): Manifest[] {
  switch (record.kind) {
    case "commit":
      return [record.manifest];
    case "rename":
      return record.tombstone ? [record.tombstone, record.manifest] : [record.manifest];
    case "compose":
      return [...composeTombstones(record), record.manifest];
    default:
      return [];
  }
}

/**
 * Version `version` of `name` in `record`, whose body is at `where` in the log.
 *
 * @throws {DfsError} `CORRUPTED` if it holds no such manifest.
 */
export function manifestIn(
  record: LogRecord,
  name: string,
  version: number,
  where: number,
): Manifest {
  const found = manifestsOf(record).find((m) => m.name === name && m.version === version);
  if (found) return found;
  throw new DfsError(
    "CORRUPTED",
    `The log record at byte ${where} does not hold version ${version} of "${name}"`,
  );
}

/**
 * The body of the record at `where` in the log (`RecordReader.readSync`): a view that need hold
 * only until the next call.
 */
export type RecordAt = (where: number) => Uint8Array;

/**
 * A manifest with its encoding as a `ManifestWriter` writes it, taken from a commit record that
 * holds it alone: a summary copies it rather than encoding the manifest again. The encoding is a
 * view of the record read back, which holds until the table's next read (slice it to keep it).
 */
export interface EncodedManifest {
  manifest: Manifest;
  encoded: Uint8Array;
}

/** Bytes of a record's body before the chunk bytes it carries, under which its slot says where. */
export const CARRIED_OFFSET_LIMIT = 2 ** 16;

/**
 * Told when a slot whose record carries its one chunk's bytes changes (see `ManifestTable`): the
 * manifest `m` it held no longer says where they are (`dataAt`, in the log file), which the owner
 * must now find by the chunk's id. `newDataAt`: where a compaction running wrote them in its new
 * log from this slot, which no longer says so either.
 */
export type Evicted = (
  m: Manifest,
  where: { dataAt: number | undefined; newDataAt: number | undefined },
) => void;

/** A change to the table, and where its record is in the log if it is there. */
export interface TableStep {
  record: LogRecord;
  where?: number;
}

/**
 * A data node's manifests, rebuilt from its log. Several versions of a name may coexist until the
 * older ones are released (a reader may still be reading them). The newest of each name is held
 * in columns with its details elsewhere (`ManifestColumns`, ~70 bytes a small file): its name,
 * version, size, modified time and where its record is in the log, whose record is read back for
 * the rest (`RecordAt`). Those whose record is not in the log yet (applied before their append
 * resolves, `placed()`), and the older versions, few and short-lived, are held whole as objects.
 * Manifests handed out are copies.
 *
 * A small file's one chunk is kept in the log, most often in its commit record: a slot whose
 * record carries its chunk's bytes says where in it (`carry()`, 2 bytes a slot), and the owner
 * then keeps no place of that chunk by its id (~34 bytes a chunk): it finds the bytes through the
 * file (`carriedAt()`). Once the slot changes, `Evicted` is told, and the bytes are found by the
 * chunk's id again.
 */
export class ManifestTable {
  /** Each name's newest version held. */
  #newest = new ManifestColumns({ details: "elsewhere" });
  /** The newest versions held whole, by name: where their slot says -1. */
  #whole = new Map<string, Manifest>();
  /** Older versions of a name still held (until released), if any. */
  #older = new Map<string, Manifest[]>();
  #recordAt: RecordAt;
  /** The snapshot being written by a compaction, told of every change to a slot. */
  #frozen: TableSnapshot | undefined;
  /**
   * For a slot whose record carries its chunk's bytes, where they start in the record's body
   * (never 0: the manifest comes first); else 0 (see the class).
   */
  #carries = new PagedColumn((n) => new Uint16Array(n), { width: 1, slots: MANIFEST_SLOTS_MIN });
  #evicted: Evicted;
  /** Set while a compaction's new log is placed: nothing is evicted meanwhile. */
  #thawing = false;

  constructor(recordAt: RecordAt, evicted: Evicted = () => {}) {
    this.#recordAt = recordAt;
    this.#evicted = evicted;
  }

  /** Newest versions held whole rather than by where their record is, and older versions held. */
  get heldWhole(): number {
    let older = 0;
    for (const versions of this.#older.values()) older += versions.length;
    return this.#whole.size + older;
  }

  /**
   * Applies `record`, whose body is at `where` in the log if it is there already (a replay; an
   * undo), else held whole until `placed()`. Takes the record's manifests: don't change them.
   */
  apply(record: LogRecord, where?: number): void {
    switch (record.kind) {
      case "commit":
        return this.#add(record.manifest, where);
      case "release":
        // The chunk bytes a released version's record carries die with it.
        return this.#remove(record.name, record.version, { bytesLive: false });
      case "rename":
        this.#remove(renamedFrom(record), record.fromVersion);
        if (record.tombstone) this.#add(record.tombstone, where);
        return this.#add(record.manifest, where);
      case "compose":
        for (const source of record.sources) this.#remove(source.name, source.version);
        for (const tombstone of composeTombstones(record)) this.#add(tombstone, where);
        return this.#add(record.manifest, where);
      case "data":
        return; // bytes, not metadata: the data node tracks where they are
    }
  }

  /** `record`, applied before, is now in the log at `where`: its manifests still newest go there. */
  placed(record: LogRecord, where: number): void {
    for (const m of manifestsOf(record)) this.place(m.name, m.version, where);
  }

  /** Version `version` of `name`, if it is the newest held, is in the record at `where` now. */
  place(name: string, version: number, where: number): void {
    const slot = this.#newest.slotOf(name);
    if (slot < 0 || this.#newest.versionAt(slot) !== version) return;
    this.#changing(slot, name);
    this.#newest.setWhere(slot, where);
    this.#whole.delete(name);
  }

  /**
   * The record at `where` of version `version` of `name` carries its one chunk's bytes, from
   * `dataAt` on (in the log file): true if that version is the newest held, placed there, and the
   * bytes start within `CARRIED_OFFSET_LIMIT` of the record's body; its slot then says so.
   */
  carry(name: string, version: number, where: number, dataAt: number): boolean {
    const slot = this.#newest.slotOf(name);
    if (slot < 0 || this.#newest.versionAt(slot) !== version) return false;
    const offset = dataAt - where;
    if (this.#newest.whereAt(slot) !== where || offset <= 0 || offset >= CARRIED_OFFSET_LIMIT) {
      return false;
    }
    this.#setCarries(slot, offset);
    return true;
  }

  /**
   * Where (in the log file) the bytes of version `version` of `name`'s one chunk start, if its
   * record carries them.
   */
  carriedAt(name: string, version: number): number | undefined {
    const slot = this.#newest.slotOf(name);
    if (slot < 0 || this.#newest.versionAt(slot) !== version) return undefined;
    const offset = this.#carriesAt(slot);
    return offset === 0 ? undefined : this.#newest.whereAt(slot) + offset;
  }

  /**
   * The id of each chunk whose bytes a slot's record carries (read back from the records), a slot
   * at a time; a slot changed meanwhile may be missed.
   */
  *carriedChunkIds(): Generator<string> {
    for (let slot = 0; slot < this.#newest.slotsUsed; slot++) {
      if (this.#carriesAt(slot) === 0) continue;
      const place = this.#newest.placeAt(slot);
      if (place === undefined || place.where < 0) continue;
      try {
        yield this.#read(place.name, place.version, place.where).chunks[0].id;
      } catch (error) {
        // A damaged record: its chunk is not counted present (the other replicas make up for it).
        if (!(error instanceof DfsError && error.code === "CORRUPTED")) throw error;
      }
    }
  }

  /**
   * Freezes what the table holds now for a compaction (`TableSnapshot`): a copy of the few held
   * whole and a walk of the rest, told of every change until `thaw()`. Costs a byte and a number
   * per slot, not a read of every record.
   */
  freeze(): TableSnapshot {
    assert(this.#frozen === undefined, "one snapshot at a time");
    const whole = [...this.#whole.values()];
    for (const versions of this.#older.values()) whole.push(...versions);
    this.#frozen = new TableSnapshot(this.#newest, whole, (slot) => this.#carriesAt(slot) !== 0);
    return this.#frozen;
  }

  /**
   * Ends the freeze; with `moved` (the new log now holds what was written from it, then the
   * records appended meanwhile, `shift` bytes on from where they were at or past `tailFrom`),
   * each manifest still held as it was goes where it was written, and each placed meanwhile
   * where its record went (`TableSnapshot.placeAll()`).
   */
  thaw(snapshot: TableSnapshot, moved?: { tailFrom: number; shift: number }): void {
    assert(this.#frozen === snapshot, "the snapshot thawed is the one frozen");
    this.#frozen = undefined;
    if (!moved) return;
    // A manifest written by name has its chunk's place in the new log's places already.
    this.#thawing = true;
    try {
      snapshot.placeAll({
        place: (name, version, where) => this.place(name, version, where),
        carries: (slot, offset) =>
          this.#setCarries(slot, offset < CARRIED_OFFSET_LIMIT ? offset : 0),
      }, moved);
    } finally {
      this.#thawing = false;
    }
  }

  /** Whether a snapshot is frozen (a compaction runs): see `thaw()`. */
  get frozen(): boolean {
    return this.#frozen !== undefined;
  }

  /**
   * Drops version `version` of `name` if it is the newest held and its record is at `where` (a
   * record found damaged there): true if it did.
   */
  dropDamaged(name: string, version: number, where: number): boolean {
    if (this.#whereOf(name, version) !== where) return false;
    this.#remove(name, version, { bytesLive: false });
    return true;
  }

  #add(manifest: Manifest, where: number | undefined): void {
    // The usual case, a name not held yet, takes one lookup.
    let slot = this.#newest.insert(manifest);
    if (slot >= 0) {
      this.#frozen?.filled(slot);
      this.#setCarries(slot, 0);
    } else {
      const { name, version } = manifest;
      slot = this.#newest.slotOf(name);
      const newest = this.#newest.versionAt(slot);
      if (version < newest) return this.#keepOlder(structuredClone(manifest));
      // The version pushed out, read back once for both.
      const older = version > newest ? this.#newestAt(slot, name) : undefined; // a copy
      this.#changing(slot, name, { bytesLive: true, held: older });
      if (older) this.#keepOlder(older);
      this.#newest.set(manifest);
    }
    this.#newest.setWhere(slot, where ?? -1);
    if (where === undefined) this.#whole.set(manifest.name, manifest);
    else this.#whole.delete(manifest.name);
  }

  /**
   * `slot`, live, is about to change: tells the snapshot, and `Evicted` if its record carried its
   * chunk's bytes or a compaction running wrote them from it, unless they die with it (not
   * `bytesLive`). `held`: what the slot holds, if the caller read it already.
   */
  #changing(
    slot: number,
    name: string,
    options: { bytesLive: boolean; held?: Manifest } = { bytesLive: true },
  ): void {
    const newDataAt = this.#frozen?.changing(slot, name);
    const offset = this.#carriesAt(slot);
    if (offset === 0 && newDataAt === undefined) return;
    this.#setCarries(slot, 0);
    if (this.#thawing || !options.bytesLive) return;
    const where = this.#newest.whereAt(slot);
    let held = options.held;
    try {
      held ??= this.#newestAt(slot, name);
    } catch (error) {
      // A damaged record: the other replicas make up for its chunk.
      if (error instanceof DfsError && error.code === "CORRUPTED") return;
      throw error;
    }
    this.#evicted(held, { dataAt: offset === 0 ? undefined : where + offset, newDataAt });
  }

  #carriesAt(slot: number): number {
    return slot < this.#carries.slots ? this.#carries.get(slot) : 0;
  }

  #setCarries(slot: number, value: number): void {
    while (slot >= this.#carries.slots) this.#carries.grow();
    this.#carries.set(slot, value);
  }

  /** Holds `m` (which it takes) among its name's older versions, replacing the same version. */
  #keepOlder(m: Manifest): void {
    const versions = (this.#older.get(m.name) ?? []).filter((o) => o.version !== m.version);
    versions.push(m);
    this.#older.set(m.name, versions);
  }

  /**
   * Drops version `version` of `name`; `bytesLive: false` if the chunk bytes its record carries
   * die with it (a release: `Evicted` is not told).
   */
  #remove(name: string, version: number, options = { bytesLive: true }): void {
    const slot = this.#newest.slotOf(name);
    if (slot >= 0 && this.#newest.versionAt(slot) === version) {
      this.#changing(slot, name, options);
      this.#newest.delete(name);
      this.#whole.delete(name);
      const older = this.#older.get(name);
      if (older === undefined) return;
      // The highest older version becomes the newest, held whole.
      const next = older.reduce((a, b) => (b.version > a.version ? b : a));
      this.#dropOlder(name, next.version);
      this.#add(next, undefined);
      return;
    }
    this.#dropOlder(name, version);
  }

  #dropOlder(name: string, version: number): void {
    const older = this.#older.get(name);
    if (older === undefined) return;
    const left = older.filter((m) => m.version !== version);
    if (left.length === 0) this.#older.delete(name);
    else this.#older.set(name, left);
  }

  /** The changes that take back `record` (applied already), should its append fail. */
  undoOf(record: LogRecord): TableStep[] {
    const releaseOf = (m: { name: string; version: number }): TableStep => ({
      record: { kind: "release", name: m.name, version: m.version },
    });
    const recommit = (name: string, version: number): TableStep[] => {
      const manifest = this.get(name, version);
      return manifest
        ? [{ record: { kind: "commit", manifest }, where: this.#whereOf(name, version) }]
        : [];
    };
    switch (record.kind) {
      case "commit":
        return [releaseOf(record.manifest)];
      case "release":
        return recommit(record.name, record.version);
      case "rename": {
        const undo = [releaseOf(record.manifest)];
        if (record.tombstone) undo.push(releaseOf(record.tombstone));
        return [...undo, ...recommit(renamedFrom(record), record.fromVersion)];
      }
      case "compose": {
        const undo = [record.manifest, ...composeTombstones(record)].map(releaseOf);
        for (const source of record.sources) undo.push(...recommit(source.name, source.version));
        return undo;
      }
      case "data":
        return [];
    }
  }

  /** Where the record of `version` of `name` is, if it is the newest and not held whole. */
  #whereOf(name: string, version: number): number | undefined {
    const slot = this.#newest.slotOf(name);
    if (slot < 0 || this.#newest.versionAt(slot) !== version) return undefined;
    const where = this.#newest.whereAt(slot);
    return where < 0 ? undefined : where;
  }

  /**
   * Version `version` of `name`, as a copy; undefined if not held.
   *
   * @throws {DfsError} what reading its record throws: `CORRUPTED` if it is damaged.
   */
  get(name: string, version: number): Manifest | undefined {
    const slot = this.#newest.slotOf(name);
    if (slot >= 0 && this.#newest.versionAt(slot) === version) return this.#newestAt(slot, name);
    const m = this.#older.get(name)?.find((o) => o.version === version);
    return m && structuredClone(m);
  }

  /** A copy of the newest manifest of `name`, in `slot`. */
  #newestAt(slot: number, name: string): Manifest {
    const where = this.#newest.whereAt(slot);
    if (where < 0) return structuredClone(this.#whole.get(name)!);
    return this.#read(name, this.#newest.versionAt(slot), where);
  }

  /** Version `version` of `name`, from its record at `where`. */
  #read(name: string, version: number, where: number): Manifest {
    return manifestIn(decodeRecord(this.#recordAt(where)), name, version, where);
  }

  /**
   * The same, with its encoding if the record is a commit in the binary form (a view that holds
   * until the next read).
   */
  #readEncoded(
    name: string,
    version: number,
    where: number,
  ): { manifest: Manifest; encoded?: Uint8Array } {
    const bytes = this.#recordAt(where);
    const { record, data } = decodeRecordWithData(bytes);
    const manifest = manifestIn(record, name, version, where);
    if (!isBinaryCommit(bytes)) return { manifest };
    // The kind's byte, then the manifest, then the chunk bytes it may carry.
    return { manifest, encoded: bytes.subarray(1, data?.offset ?? bytes.length) };
  }

  /**
   * Every manifest held, all versions, as copies, one at a time (records read back in turn).
   * With `damaged`, one whose record is damaged is left out and told to it instead.
   *
   * @throws {DfsError} what reading a record throws: `CORRUPTED` if one is damaged (without
   *   `damaged`).
   */
  *all(damaged?: (name: string, version: number, where: number) => void): Iterable<Manifest> {
    for (const held of this.allEncoded(damaged)) yield "encoded" in held ? held.manifest : held;
  }

  /**
   * The same, each with its encoding (`EncodedManifest`, a view that holds until the next read)
   * where its record has it: a commit in the binary form, holding it alone.
   */
  *allEncoded(
    damaged?: (name: string, version: number, where: number) => void,
  ): Iterable<Manifest | EncodedManifest> {
    for (const { name, version, where } of this.#newest.places()) {
      if (where < 0) {
        yield structuredClone(this.#whole.get(name)!);
        continue;
      }
      let read: { manifest: Manifest; encoded?: Uint8Array };
      try {
        read = this.#readEncoded(name, version, where);
      } catch (error) {
        if (!(damaged && error instanceof DfsError && error.code === "CORRUPTED")) throw error;
        damaged(name, version, where);
        continue;
      }
      const { manifest, encoded } = read;
      yield encoded === undefined ? manifest : { manifest, encoded };
    }
    for (const versions of this.#older.values()) {
      for (const m of versions) yield structuredClone(m);
    }
  }

  /** Name and version of every manifest held, all versions, without reading a record. */
  *versions(): Iterable<{ name: string; version: number }> {
    for (const { name, version } of this.#newest.places()) yield { name, version };
    for (const versions of this.#older.values()) {
      for (const { name, version } of versions) yield { name, version };
    }
  }

  /**
   * Sorts the names for `page()` unless they are, a step at a time, awaiting `giveWay` between
   * steps: millions of names take seconds to sort, which a node must not spend without answering.
   */
  sortNames(giveWay: () => Promise<void>): Promise<void> {
    return this.#newest.sortNames(giveWay);
  }

  /**
   * A page of the newest version held of each name starting with `prefix`, as list entries with
   * versions, in UTF-16 code unit order after `after` (exclusive), at most `limit`, and whether
   * more remain; tombstones included (with `deleted`), so that merging hides older versions held
   * elsewhere. The first page sorts every name; later ones cost a page (`ManifestColumns`).
   *
   * @throws {DfsError} `INVALID_REQUEST` for a limit that is not 1 to `NODE_LIST_ENTRIES_MAX`.
   */
  page(prefix: string, options: { after?: string; limit: number }): ListingPage {
    const { after, limit } = options;
    if (!Number.isInteger(limit) || limit < 1 || limit > NODE_LIST_ENTRIES_MAX) {
      throw new DfsError(
        "INVALID_REQUEST",
        `Cannot list ${limit} names at once: a page is 1 to ${NODE_LIST_ENTRIES_MAX} names`,
      );
    }
    return listingPageOf((add) =>
      this.#newest.forEachSummaryInOrder(add, { prefix, after, limit })
    );
  }
}
