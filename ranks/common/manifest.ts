/**
 * The vocabulary of file metadata shared by rank 0 and the data nodes: manifests and chunk refs,
 * the columnar listing pages nodes answer `list` with (merged by `rank0/list_merge.ts`), and what a
 * node reports at start-up. Pure.
 *
 * Where metadata lives: every data node that holds a chunk of a file also holds that file's manifest
 * in its own durable log. Rank 0 keeps no state on disk; at start it gathers the manifests from the
 * ranks and rebuilds its index (`planRecovery`). The highest committed version of a name wins.
 *
 * @module
 */

import { assert, DfsError } from "../../protocol/errors.ts";
import type { FileMeta, ListEntry } from "../../protocol/messages.ts";

/** A version of a file, by name. */
export interface FileVersion {
  name: string;
  version: number;
}

/** One chunk of a file: its id (`<blob>-<offset>`), size in bytes, and the ranks holding a replica. */
export interface ChunkRef {
  id: string;
  size: number;
  ranks: number[];
  /** CRC32 of the chunk's bytes, computed by rank 0 when they arrived. */
  crc32?: number;
}

/**
 * A file's attributes: small named strings set when a version is committed and kept with its
 * manifest on every holder (an S3 object's content type, ETag and `x-amz-meta-*`, say). Names are
 * 1 to `ATTR_NAME_BYTES_MAX` of `a-z 0-9 - _ .`; values text without control characters but tab;
 * all of them at most `ATTRS_BYTES_MAX` UTF-8 bytes together.
 */
export type FileAttrs = Readonly<Record<string, string>>;

/** Longest attribute name, in bytes. */
export const ATTR_NAME_BYTES_MAX = 128;
/** Bytes of every attribute name and value of one file together (S3 allows 2 KB of metadata). */
export const ATTRS_BYTES_MAX = 8 * 1024;

const ATTR_NAME_PATTERN = /^[a-z0-9._-]+$/;
// deno-lint-ignore no-control-regex
const ATTR_VALUE_FORBIDDEN = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/;

/**
 * Checks a file's attributes against the rules of `FileAttrs`.
 *
 * @throws {DfsError} `INVALID_REQUEST` saying which attribute breaks which rule.
 */
export function checkAttrs(attrs: unknown): asserts attrs is FileAttrs {
  if (typeof attrs !== "object" || attrs === null || Array.isArray(attrs)) {
    throw new DfsError("INVALID_REQUEST", "Attributes must be a map of names to text");
  }
  const utf8 = new TextEncoder();
  let bytes = 0;
  for (const [name, value] of Object.entries(attrs)) {
    if (name.length > ATTR_NAME_BYTES_MAX || !ATTR_NAME_PATTERN.test(name)) {
      throw new DfsError(
        "INVALID_REQUEST",
        `Attribute name "${
          name.slice(0, 64)
        }" must be 1 to ${ATTR_NAME_BYTES_MAX} of a-z 0-9 - _ .`,
      );
    }
    if (typeof value !== "string" || ATTR_VALUE_FORBIDDEN.test(value)) {
      throw new DfsError(
        "INVALID_REQUEST",
        `Attribute "${name}" must be text without control characters`,
      );
    }
    bytes += utf8.encode(name).length + utf8.encode(value).length;
  }
  if (bytes > ATTRS_BYTES_MAX) {
    throw new DfsError(
      "INVALID_REQUEST",
      `Attributes take ${bytes} bytes, over the limit of ${ATTRS_BYTES_MAX}`,
    );
  }
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
  /** Set at commit, kept by renames and re-replication. */
  attrs?: FileAttrs;
}

/** A tombstone for `name` at `version`. */
export function tombstoneOf(name: string, version: number, modified: number): Manifest {
  return { name, version, size: 0, sha256: "", modified, chunks: [], deleted: true };
}

/** Replicas of a file: the fewest ranks any of its chunks is on. */
export function replicasOf(m: Manifest): number {
  return m.chunks.length === 0 ? 0 : Math.min(...m.chunks.map((c) => c.ranks.length));
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
  if (m.attrs !== undefined) checkAttrs(m.attrs);
}

/** The public metadata of a manifest (chunk ids stay internal; their CRC32s are for readers). */
export function fileMetaOf(m: Manifest, zoneOf?: (rank: number) => string): FileMeta {
  return {
    name: m.name,
    size: m.size,
    sha256: m.sha256,
    modified: m.modified,
    version: m.version,
    replicas: replicasOf(m),
    chunks: m.chunks.map((c) => {
      const ranks = [...c.ranks];
      const chunk = zoneOf
        ? { size: c.size, ranks, zones: ranks.map(zoneOf) }
        : { size: c.size, ranks };
      return c.crc32 === undefined ? chunk : { ...chunk, crc32: c.crc32 };
    }),
    ...(m.attrs === undefined ? {} : { attrs: { ...m.attrs } }),
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

/** Puts entries into a `Listing`, sorting them by name. */
export function toListing(entries: VersionedEntry[]): Listing {
  const builder = new ListingBuilder();
  for (const e of entries) builder.add(e);
  return builder.build();
}

/**
 * Builds a `Listing` from entries added one at a time, keeping their names and numbers in flat
 * arrays rather than an object each (a node lists hundreds of thousands of names at once).
 */
export class ListingBuilder {
  #names: string[] = [];
  #numbers: number[] = [];

  /** Adds an entry; `entry` is read now and not kept. */
  add(entry: Omit<VersionedEntry, "deleted"> & { deleted?: boolean }): void {
    this.#names.push(entry.name);
    const { size, modified, version, replicas, deleted } = entry;
    this.#numbers.push(size, modified, version, replicas, deleted ? 1 : 0);
  }

  /** The entries added, sorted by name (UTF-16 code units). */
  build(): Listing {
    const names = this.#names;
    const order = Array.from(names.keys()).sort((a, b) =>
      names[a] < names[b] ? -1 : names[a] > names[b] ? 1 : 0
    );
    const numbers = new Float64Array(order.length * LISTING_FIELDS);
    order.forEach((from, i) => {
      for (let f = 0; f < LISTING_FIELDS; f++) {
        numbers[i * LISTING_FIELDS + f] = this.#numbers[from * LISTING_FIELDS + f];
      }
    });
    return { names: order.map((i) => names[i]).join("\0"), numbers };
  }
}

/** A page of a listing: entries in order, and whether more remain after the last. */
export interface ListingPage {
  listing: Listing;
  more: boolean;
}

/**
 * The page `walk` makes: it adds entries in name order and returns whether more remain (a
 * column store's `forEachSummaryInOrder`, say).
 */
export function listingPageOf(
  walk: (add: (entry: Omit<VersionedEntry, "deleted"> & { deleted?: boolean }) => void) => boolean,
): ListingPage {
  const builder = new ListingBuilder();
  const more = walk((entry) => builder.add(entry));
  return { listing: builder.build(), more };
}

/** What one data node reports at start-up. */
export interface RankScan {
  rank: number;
  /**
   * Every manifest the node holds, all versions, back to back (`ManifestWriter` of
   * `manifest_codec.ts`): a few dozen bytes a small file, where objects cost hundreds to make,
   * post and keep.
   */
  manifests: Uint8Array;
  /** Blob id and size of every blob file present (see `chunk_id.ts`). */
  blobs: [string, number][];
  /** The ids of the chunks kept whole in the node's log (small files), as `encodeChunkIds()`. */
  inLog: Uint8Array;
  /** What opening the node's log found, when it found anything (older nodes say nothing). */
  opened?: LogOpened;
}

/** What opening a data node's log found. */
export interface LogOpened {
  /** Damaged regions skipped, and their bytes (intact records after them were kept). */
  damagedRegions: number;
  damagedBytes: number;
  /** Bytes of a torn tail cut off its end (what a crash leaves; 0 if none). */
  tailCutBytes: number;
  /** The log was missing and was made anew. */
  created: boolean;
}

/** What one data node must do to match the recovered state. */
export interface RankRepair {
  /**
   * Exactly the manifests this rank must hold from now on (its log is rewritten to these), back to
   * back (`ManifestWriter`). Absent: it keeps what it holds, less `drop`.
   */
  keep?: Uint8Array;
  /** Without `keep`: versions of names it holds that it drops (tombstones). */
  drop?: { name: string; version: number }[];
  /** Blob files to remove: leftovers of cut-off uploads and of superseded versions. */
  deleteBlobs: string[];
  /** Bytes of the chunks it keeps. */
  bytesHeld: number;
}
