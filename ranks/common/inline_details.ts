/**
 * The details of a manifest beyond its name, version, size, modified and deleted, held in columns
 * for `ManifestColumns` (rank 0's index): the sha256 and, for the common case, its one chunk.
 * Pure: no I/O.
 *
 * The common case is held inline: a file of at most one chunk whose id is `<blob>-0`, on at most
 * `RANKS_INLINE_MAX` ranks below `RANK_INLINE_LIMIT`, with a sha256 in lower-case hex (or none) and
 * no attributes. What does not fit (several chunks, a chunk at another offset, attributes, an odd
 * sha256) is kept as a copy in a side map, next to the inline fields; such files are few or large.
 *
 * @module
 */

import type { ChunkRef, FileAttrs, Manifest } from "./manifest.ts";
import { hexOf, parseHex } from "./hex_bytes.ts";
import { type ColumnArray, PagedColumn } from "./paged_column.ts";

/** Ranks of a chunk held inline at most; a chunk on more goes to the side map. */
export const RANKS_INLINE_MAX = 4;
/** Ranks held inline are below this (one byte each); a chunk on a higher one goes to the side. */
export const RANK_INLINE_LIMIT = 256;

const SHA256_BYTES = 32;
const BLOB_BYTES = 16;

/**
 * Flags of a slot this holds the meaning of (bit 0 is the slot's own, `deleted`). The slot has an
 * entry in the side map (chunks, attrs or sha256 that do not fit inline).
 */
const FLAG_EXTRA = 2;
/** The file has one chunk, held inline: blob id, ranks, maybe a CRC32; its size is the file's. */
const FLAG_CHUNK = 4;
const FLAG_CRC32 = 8;
const FLAG_SHA256_EMPTY = 16;
/** The inline chunk's rank count is kept in the top 3 bits of the flags (`RANKS_INLINE_MAX`). */
const RANKS_SHIFT = 5;

/** What a slot holds beyond its columns: copies, never the caller's objects. */
interface Extra {
  sha256?: string;
  chunks?: ChunkRef[];
  attrs?: FileAttrs;
}

/** The fields of a manifest its slot's own columns hold. */
export type ManifestHead = Pick<Manifest, "name" | "version" | "size" | "modified"> & {
  deleted: boolean;
};

/** Sha256, chunks and attributes of manifests, by slot. */
export class InlineDetails {
  #sha256: PagedColumn<Uint8Array>;
  #blobs: PagedColumn<Uint8Array>;
  #crc32: PagedColumn<Uint32Array>;
  #ranks: PagedColumn<Uint8Array>;
  #extras = new Map<number, Extra>();

  constructor(slots: number) {
    this.#sha256 = new PagedColumn((n) => new Uint8Array(n), { width: SHA256_BYTES, slots });
    this.#blobs = new PagedColumn((n) => new Uint8Array(n), { width: BLOB_BYTES, slots });
    this.#crc32 = new PagedColumn((n) => new Uint32Array(n), { width: 1, slots });
    this.#ranks = new PagedColumn((n) => new Uint8Array(n), { width: RANKS_INLINE_MAX, slots });
  }

  /** Its columns, to grow and count with the slot's own. */
  get columns(): PagedColumn<ColumnArray>[] {
    return [this.#sha256, this.#blobs, this.#crc32, this.#ranks];
  }

  /** Writes the details of `m` into `slot`: inline what fits, the rest aside. Returns its flags. */
  write(slot: number, m: Manifest): number {
    let flags = 0;
    const extra: Extra = {};
    if (m.sha256 === "") flags |= FLAG_SHA256_EMPTY;
    else if (
      m.sha256.length !== 2 * SHA256_BYTES ||
      !parseHex(m.sha256, SHA256_BYTES, this.#sha256.page(slot), this.#sha256.at(slot))
    ) extra.sha256 = m.sha256;
    if (m.chunks.length === 1 && this.#writeChunk(slot, m.chunks[0], m.size)) {
      const chunk = m.chunks[0];
      flags |= FLAG_CHUNK | (chunk.ranks.length << RANKS_SHIFT);
      if (chunk.crc32 !== undefined) flags |= FLAG_CRC32;
    } else if (m.chunks.length > 0) extra.chunks = m.chunks.map(copyChunk);
    if (m.attrs !== undefined) extra.attrs = { ...m.attrs };
    if (extra.sha256 !== undefined || extra.chunks || extra.attrs) {
      flags |= FLAG_EXTRA;
      this.#extras.set(slot, extra);
    } else this.#extras.delete(slot);
    return flags;
  }

  /** Forgets what `slot` held aside. */
  free(slot: number): void {
    this.#extras.delete(slot);
  }

  /** A new manifest of `head` and the details in `slot` (with `flags`). */
  read(slot: number, flags: number, head: ManifestHead): Manifest {
    const extra = flags & FLAG_EXTRA ? this.#extras.get(slot) : undefined;
    const { name, version, size, modified, deleted } = head;
    const m: Manifest = {
      name,
      version,
      size,
      sha256: extra?.sha256 ??
        (flags & FLAG_SHA256_EMPTY
          ? ""
          : hexOf(this.#sha256.page(slot), this.#sha256.at(slot), SHA256_BYTES)),
      modified,
      chunks: flags & FLAG_CHUNK
        ? [this.#chunkAt(slot, flags, size)]
        : extra?.chunks
        ? extra.chunks.map(copyChunk)
        : [],
    };
    if (deleted) m.deleted = true;
    if (extra?.attrs) m.attrs = { ...extra.attrs };
    return m;
  }

  /** The fewest ranks any chunk in `slot` is on; 0 without chunks (`replicasOf`). */
  replicasAt(slot: number, flags: number): number {
    if (flags & FLAG_CHUNK) return flags >>> RANKS_SHIFT;
    const chunks = flags & FLAG_EXTRA ? this.#extras.get(slot)?.chunks : undefined;
    if (!chunks) return 0;
    let fewest = Infinity;
    for (const chunk of chunks) fewest = Math.min(fewest, chunk.ranks.length);
    return fewest;
  }

  /** Writes `chunk` inline if it fits (see the module); false if it does not. */
  #writeChunk(slot: number, chunk: ChunkRef, fileSize: number): boolean {
    const { id, ranks, crc32 } = chunk;
    if (chunk.size !== fileSize || ranks.length > RANKS_INLINE_MAX) return false;
    if (crc32 !== undefined && (crc32 >>> 0) !== crc32) return false;
    for (const rank of ranks) {
      if (!(Number.isInteger(rank) && rank >= 0 && rank < RANK_INLINE_LIMIT)) return false;
    }
    // `<blob>-0`: 32 lower-case hex digits, a dash, a zero.
    if (id.length !== 2 * BLOB_BYTES + 2 || !id.endsWith("-0")) return false;
    if (!parseHex(id, BLOB_BYTES, this.#blobs.page(slot), this.#blobs.at(slot))) return false;
    this.#ranks.page(slot).set(ranks, this.#ranks.at(slot));
    this.#crc32.set(slot, crc32 ?? 0);
    return true;
  }

  #chunkAt(slot: number, flags: number, size: number): ChunkRef {
    const id = hexOf(this.#blobs.page(slot), this.#blobs.at(slot), BLOB_BYTES) + "-0";
    const ranks: number[] = [];
    const count = flags >>> RANKS_SHIFT;
    for (let i = 0; i < count; i++) ranks.push(this.#ranks.get(slot, i));
    return flags & FLAG_CRC32
      ? { id, size, ranks, crc32: this.#crc32.get(slot) }
      : { id, size, ranks };
  }
}

function copyChunk(chunk: ChunkRef): ChunkRef {
  const { id, size, ranks, crc32 } = chunk;
  return crc32 === undefined
    ? { id, size, ranks: [...ranks] }
    : { id, size, ranks: [...ranks], crc32 };
}
