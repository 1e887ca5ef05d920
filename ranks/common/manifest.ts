/**
 * File metadata: manifests, rank 0's index, the data nodes' manifest tables and log records, and the
 * start-up recovery plan. Pure: no I/O.
 *
 * Where metadata lives: every data node that holds a chunk of a file also holds that file's manifest
 * in its own durable log. Rank 0 keeps no state on disk; at start it gathers the manifests from the
 * ranks and rebuilds its index (`planRecovery`). The highest committed version of a name wins.
 *
 * @module
 */

import { decode, Encoder } from "../../protocol/cbor.ts";
import { assert } from "../../protocol/errors.ts";
import type { FileMeta, ListEntry } from "../../protocol/messages.ts";
import { blobOf, offsetOf } from "./chunk_id.ts";

/** One chunk of a file: its id (`<blob>-<offset>`), size in bytes, and the ranks holding a replica. */
export interface ChunkRef {
  id: string;
  size: number;
  ranks: number[];
  /** CRC32 of the chunk's bytes, computed by rank 0 when they arrived. */
  crc32?: number;
}

/**
 * A committed version of a file, or with `deleted` a tombstone: the name was removed at this
 * version (no chunks). A tombstone outranks every older manifest of its name, at run time and at
 * recovery, so a removed file never comes back.
 */
export interface Manifest {
  name: string;
  version: number;
  size: number;
  sha256: string;
  modified: number;
  chunks: ChunkRef[];
  deleted?: true;
}

/** What a data node appends to its log. */
export type LogRecord =
  | { kind: "commit"; manifest: Manifest }
  | { kind: "release"; name: string; version: number }
  /**
   * A rename, applied at once: version `fromVersion` of `tombstone.name` becomes `manifest` (same
   * chunks, new name and version) and `tombstone` marks the old name removed.
   */
  | { kind: "rename"; fromVersion: number; tombstone?: Manifest; manifest: Manifest }
  /** New bytes of a chunk kept in the log (a repair from a good replica); the record carries them. */
  | { kind: "data"; id: string };

/**
 * The name a rename record moves from: the tombstone's, or, for a record without one (a new
 * version of the same file with its chunks placed anew, after re-replication), the manifest's.
 */
export function renamedFrom(record: { tombstone?: Manifest; manifest: Manifest }): string {
  return record.tombstone?.name ?? record.manifest.name;
}

/** A tombstone for `name` at `version`. */
export function tombstoneOf(name: string, version: number, modified: number): Manifest {
  return { name, version, size: 0, sha256: "", modified, chunks: [], deleted: true };
}

/** Replicas of a file: the fewest ranks any of its chunks is on. */
export function replicasOf(m: Manifest): number {
  return m.chunks.length === 0 ? 0 : Math.min(...m.chunks.map((c) => c.ranks.length));
}

const encoder = new Encoder({ useRecords: false, mapsAsObjects: true });

/**
 * The first byte of a record that carries data: `[RECORD_WITH_DATA][u32 BE length of CBOR][CBOR
 * record][data]`. A plain record is CBOR alone, and a CBOR map never starts with this byte.
 */
const RECORD_WITH_DATA = 0x01;
const RECORD_WITH_DATA_HEADER_BYTES = 5;

/**
 * Encodes a log record in a fresh buffer; with `data`, the bytes of the record's one chunk travel
 * in the record itself (a small file kept in the log, see `data_node.ts`).
 */
export function encodeRecord(record: LogRecord, data?: Uint8Array): Uint8Array {
  const cbor = encoder.encode(record);
  if (data === undefined) return cbor.slice();
  const bytes = new Uint8Array(RECORD_WITH_DATA_HEADER_BYTES + cbor.length + data.length);
  bytes[0] = RECORD_WITH_DATA;
  new DataView(bytes.buffer).setUint32(1, cbor.length);
  bytes.set(cbor, RECORD_WITH_DATA_HEADER_BYTES);
  bytes.set(data, RECORD_WITH_DATA_HEADER_BYTES + cbor.length);
  return bytes;
}

/**
 * Decodes a log record read back from disk, checking its shape; `data` is where the bytes it
 * carries sit in `bytes` (offset and size), if it carries any.
 */
export function decodeRecordWithData(
  bytes: Uint8Array,
): { record: LogRecord; data?: { offset: number; size: number } } {
  if (bytes[0] !== RECORD_WITH_DATA) return { record: decodeRecord(bytes) };
  assert(bytes.length >= RECORD_WITH_DATA_HEADER_BYTES, "a record with data has its header");
  const cborBytes = new DataView(bytes.buffer, bytes.byteOffset + 1, 4).getUint32(0);
  const offset = RECORD_WITH_DATA_HEADER_BYTES + cborBytes;
  assert(offset <= bytes.length, "a record's CBOR fits in it");
  const record = decodeRecord(bytes.subarray(RECORD_WITH_DATA_HEADER_BYTES, offset));
  return { record, data: { offset, size: bytes.length - offset } };
}

/** Decodes a log record without data read back from disk, checking its shape. */
export function decodeRecord(bytes: Uint8Array): LogRecord {
  if (bytes[0] === RECORD_WITH_DATA) return decodeRecordWithData(bytes).record;
  const record = decode(bytes) as LogRecord;
  assert(
    record.kind === "commit" || record.kind === "release" || record.kind === "rename" ||
      record.kind === "data",
    "log record has a known kind",
  );
  if (record.kind === "commit") checkManifest(record.manifest);
  if (record.kind === "rename") {
    checkManifest(record.manifest);
    if (record.tombstone) checkManifest(record.tombstone);
  }
  return record;
}

/** Asserts a manifest is internally consistent (sizes add up, every chunk has a replica). */
export function checkManifest(m: Manifest): void {
  assert(typeof m.name === "string" && m.name.length > 0, "manifest has a name");
  assert(Number.isSafeInteger(m.version) && m.version > 0, "manifest version is positive");
  assert(!m.deleted || m.chunks.length === 0, "a tombstone has no chunks");
  let total = 0;
  for (const chunk of m.chunks) {
    assert(chunk.ranks.length > 0, "every chunk has a replica");
    total += chunk.size;
  }
  assert(total === m.size, `manifest of "${m.name}" sizes add up`);
}

/** The public metadata of a manifest (chunk ids stay internal; their CRC32s are for readers). */
export function fileMetaOf(m: Manifest): FileMeta {
  return {
    name: m.name,
    size: m.size,
    sha256: m.sha256,
    modified: m.modified,
    version: m.version,
    replicas: replicasOf(m),
    chunks: m.chunks.map((c) => {
      const chunk = { size: c.size, ranks: [...c.ranks] };
      return c.crc32 === undefined ? chunk : { ...chunk, crc32: c.crc32 };
    }),
  };
}

/** The ids of a manifest's chunks that one rank holds. */
export function chunkIdsOn(m: Manifest, rank: number): string[] {
  return m.chunks.filter((c) => c.ranks.includes(rank)).map((c) => c.id);
}

/** The ranks holding any chunk of a manifest. */
export function holdersOf(m: Manifest): Set<number> {
  return new Set(m.chunks.flatMap((c) => c.ranks));
}

/** A data node's manifests, rebuilt from its log. Several versions of a name may coexist until the
 * older ones are released (a reader may still be reading them). */
export class ManifestTable {
  /**
   * Each name's versions: the manifest itself when there is one (nearly always; a Map per name
   * cost ~200 bytes a file), an array of them while several coexist.
   */
  #byName = new Map<string, Manifest | Manifest[]>();

  apply(record: LogRecord): void {
    switch (record.kind) {
      case "commit":
        return this.#add(record.manifest);
      case "release":
        return this.#remove(record.name, record.version);
      case "rename":
        this.#remove(renamedFrom(record), record.fromVersion);
        if (record.tombstone) this.#add(record.tombstone);
        return this.#add(record.manifest);
      case "data":
        return; // bytes, not metadata: the data node tracks where they are
    }
  }

  #add(manifest: Manifest): void {
    const held = this.#byName.get(manifest.name);
    if (held === undefined || (!Array.isArray(held) && held.version === manifest.version)) {
      this.#byName.set(manifest.name, manifest);
      return;
    }
    const versions = Array.isArray(held) ? held : [held];
    const at = versions.findIndex((m) => m.version === manifest.version);
    if (at >= 0) versions[at] = manifest;
    else versions.push(manifest);
    this.#byName.set(manifest.name, versions);
  }

  #remove(name: string, version: number): void {
    const held = this.#byName.get(name);
    if (held === undefined) return;
    if (!Array.isArray(held)) {
      if (held.version === version) this.#byName.delete(name);
      return;
    }
    const left = held.filter((m) => m.version !== version);
    if (left.length === 0) this.#byName.delete(name);
    else this.#byName.set(name, left.length === 1 ? left[0] : left);
  }

  get(name: string, version: number): Manifest | undefined {
    const held = this.#byName.get(name);
    if (held === undefined) return undefined;
    if (!Array.isArray(held)) return held.version === version ? held : undefined;
    return held.find((m) => m.version === version);
  }

  /** Every manifest held, all versions. */
  *all(): Iterable<Manifest> {
    for (const held of this.#byName.values()) {
      if (Array.isArray(held)) yield* held;
      else yield held;
    }
  }

  /**
   * The newest version held of each name starting with `prefix`, as list entries with versions;
   * tombstones included (with `deleted`), so that merging hides older versions held elsewhere.
   */
  latest(prefix: string): Listing {
    const out: VersionedEntry[] = [];
    for (const [name, held] of this.#byName) {
      if (!name.startsWith(prefix)) continue;
      let best: Manifest | undefined;
      for (const m of Array.isArray(held) ? held : [held]) {
        if (!best || m.version > best.version) best = m;
      }
      if (!best) continue;
      const { size, modified, version } = best;
      const entry: VersionedEntry = { name, size, modified, version, replicas: replicasOf(best) };
      if (best.deleted) entry.deleted = true;
      out.push(entry);
    }
    return toListing(out);
  }
}

/** A data node's list entry: the newest version it holds of a name (maybe a tombstone). */
export type VersionedEntry = ListEntry & { version: number; deleted?: true };

/**
 * A list of versioned entries in columns, sorted by name: what a data node answers to `list`. One
 * string and one typed array cost a fraction of an object per name to post between ranks (100k
 * entries as objects took ~0.25 s to clone and as long again to merge).
 */
export interface Listing {
  /** The names, sorted by UTF-16 code units, joined by NUL (which names never contain). */
  names: string;
  /** `LISTING_FIELDS` numbers per name: size, modified, version, replicas, deleted (1) or not (0). */
  numbers: Float64Array;
}

/** Numbers per name in a `Listing`. */
export const LISTING_FIELDS = 5;

const byName = (a: { name: string }, b: { name: string }) =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

/** Puts entries into a `Listing`, sorting them by name. */
export function toListing(entries: VersionedEntry[]): Listing {
  const sorted = [...entries].sort(byName);
  const numbers = new Float64Array(sorted.length * LISTING_FIELDS);
  sorted.forEach((e, i) => {
    numbers.set([e.size, e.modified, e.version, e.replicas, e.deleted ? 1 : 0], i * LISTING_FIELDS);
  });
  return { names: sorted.map((e) => e.name).join("\0"), numbers };
}

/**
 * Merges per-rank listings: for each name the highest version wins (a removed name drops out),
 * names sorted by UTF-16 code units (byte order for ASCII). A k-way merge of sorted columns.
 */
export function mergeListings(listings: readonly Listing[]): ListEntry[] {
  const lists = listings
    .filter((l) => l.numbers.length > 0)
    .map((l) => ({ names: l.names.split("\0"), numbers: l.numbers, at: 0 }));
  const out: ListEntry[] = [];
  while (true) {
    let name: string | undefined;
    for (const l of lists) {
      if (l.at < l.names.length && (name === undefined || l.names[l.at] < name)) {
        name = l.names[l.at];
      }
    }
    if (name === undefined) return out;
    let best: { numbers: Float64Array; base: number } | undefined;
    for (const l of lists) {
      if (l.at >= l.names.length || l.names[l.at] !== name) continue;
      const base = l.at++ * LISTING_FIELDS;
      if (!best || l.numbers[base + 2] > best.numbers[best.base + 2]) {
        best = { numbers: l.numbers, base };
      }
    }
    const { numbers, base } = best!;
    if (numbers[base + 4] === 1) continue; // removed
    out.push({
      name,
      size: numbers[base],
      modified: numbers[base + 1],
      replicas: numbers[base + 3],
    });
  }
}

/** Rank 0's view: the committed manifest of every name, and tombstones of removed names. */
export class FileIndex {
  #files = new Map<string, Manifest>();
  #tombstones = 0;
  #version = 0;

  /** Files present (tombstones not counted). */
  get size(): number {
    return this.#files.size - this.#tombstones;
  }

  /** The current version of `name`; undefined if there is none or it was removed. */
  get(name: string): Manifest | undefined {
    const m = this.#files.get(name);
    return m?.deleted ? undefined : m;
  }

  /** The next version number; versions grow across the whole store, so later commits win. */
  nextVersion(): number {
    return ++this.#version;
  }

  /**
   * Installs a committed manifest unless a higher version of the name is already installed.
   * Returns the manifest no longer current (the previous one, or `m` itself if it lost).
   */
  install(m: Manifest): { installed: boolean; superseded?: Manifest } {
    this.#version = Math.max(this.#version, m.version);
    const current = this.#files.get(m.name);
    if (current && current.version >= m.version) return { installed: false, superseded: m };
    this.#files.set(m.name, m);
    this.#tombstones += (m.deleted ? 1 : 0) - (current?.deleted ? 1 : 0);
    return { installed: true, superseded: current?.deleted ? undefined : current };
  }

  /** Every present file (no tombstones). */
  *values(): Iterable<Manifest> {
    for (const m of this.#files.values()) if (!m.deleted) yield m;
  }
}

/** What one data node reports at start-up. */
export interface RankScan {
  rank: number;
  manifests: Manifest[];
  /** Blob id and size of every blob file present (see `chunk_id.ts`). */
  blobs: [string, number][];
  /** The ids of the chunks kept whole in the node's log (small files), joined by NUL. */
  inLog?: string;
}

/** What one data node must do to match the recovered state. */
export interface RankRepair {
  /** Exactly the manifests this rank must hold from now on (its log is rewritten to these). */
  keep: Manifest[];
  /** Blob files to remove: leftovers of cut-off uploads and of superseded versions. */
  deleteBlobs: string[];
  /** Bytes of the chunks it keeps. */
  bytesHeld: number;
}

/** The outcome of start-up recovery. */
export interface RecoveryPlan {
  /** The winning manifest of every name. */
  files: Manifest[];
  repairs: Map<number, RankRepair>;
  /** Names whose newest version had a chunk with no replica present, with the version used instead
   * (or none). Only damage to the disks causes this. */
  damaged: { name: string; version: number; fallback?: number }[];
  /** Ranks that already hold exactly what they should: their repair changes nothing. */
  unchanged: Set<number>;
}

/**
 * Decides the state after a restart from every data node's scan: for each name the highest version
 * whose every chunk has at least one replica present wins; every rank then holds exactly the winning
 * manifests it has chunks of (missing ones are added, stale ones dropped) and deletes every blob file
 * no winner references. A chunk is present on a rank when the rank keeps it in its log or when its
 * blob there reaches past its end.
 */
export function planRecovery(scans: readonly RankScan[]): RecoveryPlan {
  const present = new Map<number, Map<string, number>>();
  const presentInLog = new Map<number, Set<string>>();
  const candidates = new Map<string, Map<number, Manifest>>();
  /** The ranks that reported each candidate (the first copy of a name and version seen). */
  const reporters = new Map<Manifest, Set<number>>();
  for (const scan of scans) {
    present.set(scan.rank, new Map(scan.blobs));
    presentInLog.set(scan.rank, new Set(scan.inLog ? scan.inLog.split("\0") : []));
    for (const m of scan.manifests) {
      let versions = candidates.get(m.name);
      if (!versions) candidates.set(m.name, versions = new Map());
      const seen = versions.get(m.version);
      if (seen) reporters.get(seen)!.add(scan.rank);
      else {
        versions.set(m.version, m);
        reporters.set(m, new Set([scan.rank]));
      }
    }
  }
  const inLog = (c: ChunkRef, rank: number) => presentInLog.get(rank)?.has(c.id) === true;
  const isOn = (c: ChunkRef, rank: number) =>
    inLog(c, rank) || (present.get(rank)?.get(blobOf(c.id)) ?? -1) >= offsetOf(c.id) + c.size;
  const isStored = (c: ChunkRef) => c.ranks.some((r) => isOn(c, r));

  const files: Manifest[] = [];
  const damaged: RecoveryPlan["damaged"] = [];
  for (const [name, versions] of candidates) {
    if (versions.size === 1) { // the usual case: no sorting
      const [only] = versions.values();
      if (only.chunks.every(isStored)) {
        if (!only.deleted) files.push(only);
      } else damaged.push({ name, version: only.version, fallback: undefined });
      continue;
    }
    const ordered = [...versions.values()].sort((a, b) => b.version - a.version);
    const winner = ordered.find((m) => m.chunks.every(isStored));
    if (winner !== ordered[0]) {
      damaged.push({ name, version: ordered[0].version, fallback: winner?.version });
    }
    // A winning tombstone means removed: every node drops the name, tombstone included.
    if (winner && !winner.deleted) files.push(winner);
  }

  const repairs = new Map<number, RankRepair>();
  for (const scan of scans) repairs.set(scan.rank, { keep: [], deleteBlobs: [], bytesHeld: 0 });
  const referenced = new Map<number, Set<string>>();
  for (const m of files) {
    const holders = m.chunks.length === 1 ? m.chunks[0].ranks : holdersOf(m);
    for (const rank of holders) repairs.get(rank)?.keep.push(m);
    for (const c of m.chunks) {
      for (const rank of c.ranks) {
        const repair = repairs.get(rank);
        if (inLog(c, rank)) {
          if (repair) repair.bytesHeld += c.size;
          continue;
        }
        if (!referenced.has(rank)) referenced.set(rank, new Set());
        referenced.get(rank)!.add(blobOf(c.id));
        if (repair && isOn(c, rank)) repair.bytesHeld += c.size;
      }
    }
  }
  for (const [rank, blobs] of present) {
    const keep = referenced.get(rank) ?? new Set<string>();
    for (const blob of blobs.keys()) if (!keep.has(blob)) repairs.get(rank)!.deleteBlobs.push(blob);
  }
  const unchanged = new Set<number>();
  for (const scan of scans) {
    const { keep, deleteBlobs } = repairs.get(scan.rank)!;
    const same = deleteBlobs.length === 0 && scan.manifests.length === keep.length &&
      keep.every((m) => reporters.get(m)!.has(scan.rank));
    if (same) unchanged.add(scan.rank);
  }
  return { files, repairs, damaged, unchanged };
}
