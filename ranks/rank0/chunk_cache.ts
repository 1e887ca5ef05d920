/**
 * Rank 0's cache of small chunks: the bytes of small files written or read lately, so that a get
 * of a hot small file is answered without a round trip to a data node. Chunk ids name immutable
 * bytes (each upload writes a blob of its own; a repair rewrites the same bytes), so an entry is
 * never stale; a released file's chunks just age out. Pure: no I/O.
 *
 * Memory. The bytes are copied into slabs (`CHUNK_CACHE_SLAB_BYTES` each), and an entry is a slot
 * in typed-array columns (its slab, offset, length and its links in two lists) plus its id in a
 * `Map` from id to slot. A Uint8Array of its own per entry cost ~700-900 B of resident memory
 * for a 64-byte chunk (the view, its ArrayBuffer, malloc's block for the bytes); here an entry
 * costs its bytes in a slab and `CHUNK_CACHE_ENTRY_OVERHEAD_BYTES`.
 *
 * Eviction is least recently used, exactly: a doubly linked list through the slots, a get moves
 * its entry to the newest end. An evicted or deleted entry leaves a hole in its slab. When the
 * slab being filled has no room, the slab with the fewest live bytes is compacted in place and
 * filled next if that leaves half a slab free (a compaction then copies at most what it frees);
 * else a new slab is taken, within `bytesMax`; else the sparsest is compacted once it has a
 * quarter free, the least recently used entries going until one has (`#reserve`). So what goes is
 * always the least recently used, but a put into a full cache may evict a quarter of a slab at
 * once or more, and it evicts only when every slab is at least three quarters full.
 *
 * What it does not change: reads of a data node's disk by scrub, fsck and re-replication go to
 * the nodes; the client still checks the file's SHA-256 (or each chunk's CRC32).
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";

/** Bytes the cache holds at most: its slabs' and `CHUNK_CACHE_ENTRY_OVERHEAD_BYTES` per entry. */
export const CHUNK_CACHE_BYTES_MAX = 64 * 1024 * 1024;
/** The largest chunk cached, in bytes: a small file's whole content. */
export const CHUNK_CACHE_ENTRY_BYTES_MAX = 64 * 1024;
/**
 * Bytes of one slab, the unit the cache allocates chunks' bytes in (smaller for a cache under
 * 8 slabs: `bytesMax / 8`). A slab lives as long as the cache unless its entries all go and
 * their index needs its room.
 */
export const CHUNK_CACHE_SLAB_BYTES = 1024 * 1024;
/**
 * Bytes each entry costs beyond its chunk's, counted against `bytesMax`: its id string and its
 * share of the `Map` from id to slot (123 B of heap measured, the cache alone holding 32,768 ids
 * of 34 characters) and of the columns (28 B).
 */
export const CHUNK_CACHE_ENTRY_OVERHEAD_BYTES = 160;
/**
 * Chunks the cache holds at most, whatever their size: each id is a string for the garbage
 * collector to walk at every full collection, and the columns are allocated for this many.
 */
export const CHUNK_CACHE_ENTRIES_MAX = 32 * 1024;

const NONE = -1;

/** A least-recently-used map from chunk id to its bytes, bounded by the memory it holds. */
export class ChunkCache {
  readonly bytesMax: number;
  readonly slabBytes: number;
  readonly entriesMax: number;
  /** Id to slot; each slot's id, to forget it on eviction. */
  #slots = new Map<string, number>();
  #ids: (string | undefined)[] = [];
  /** Slots never used start at `#slotsUsed`; freed ones wait in `#freeSlots`. */
  #slotsUsed = 0;
  #freeSlots: number[] = [];
  #slabOf: Int32Array;
  #offsetOf: Int32Array;
  #lengthOf: Int32Array;
  /** Use order: `#oldest` first, through `#newer`; back through `#older`. */
  #newer: Int32Array;
  #older: Int32Array;
  #oldest = NONE;
  #newest = NONE;
  /** Each slab's entries in offset order, through `#nextInSlab` and `#prevInSlab`. */
  #nextInSlab: Int32Array;
  #prevInSlab: Int32Array;
  #slabs: (Uint8Array | undefined)[] = [];
  #slabFirst: number[] = [];
  #slabLast: number[] = [];
  /** Live bytes of each slab, and where its next entry goes. */
  #slabLive: number[] = [];
  #slabEnd: number[] = [];
  /** The slab being filled. */
  #head = NONE;
  #slabCount = 0;
  #hits = 0;
  #misses = 0;

  /** `slabBytes` and `entriesMax` are for tests (`CHUNK_CACHE_SLAB_BYTES`, `_ENTRIES_MAX`). */
  constructor(options: { bytesMax?: number; slabBytes?: number; entriesMax?: number } = {}) {
    this.bytesMax = options.bytesMax ?? CHUNK_CACHE_BYTES_MAX;
    this.slabBytes = options.slabBytes ??
      Math.min(CHUNK_CACHE_SLAB_BYTES, Math.floor(this.bytesMax / 8));
    this.entriesMax = options.entriesMax ?? CHUNK_CACHE_ENTRIES_MAX;
    assert(this.bytesMax >= 0, "a cache size is not negative");
    assert(this.slabBytes >= 0 && this.entriesMax >= 0, "slabs and entries are not negative");
    const column = () => new Int32Array(this.entriesMax);
    this.#slabOf = column();
    this.#offsetOf = column();
    this.#lengthOf = column();
    this.#newer = column();
    this.#older = column();
    this.#nextInSlab = column();
    this.#prevInSlab = column();
  }

  /** Bytes held: the slabs allocated, and `CHUNK_CACHE_ENTRY_OVERHEAD_BYTES` per entry. */
  get bytes(): number {
    return this.#slabCount * this.slabBytes + this.#slots.size * CHUNK_CACHE_ENTRY_OVERHEAD_BYTES;
  }

  /** Chunks held. */
  get size(): number {
    return this.#slots.size;
  }

  /** Lookups that found their chunk, and those that did not. */
  get stats(): { hits: number; misses: number } {
    return { hits: this.#hits, misses: this.#misses };
  }

  /**
   * A copy of the chunk's bytes if held: the caller may recycle it or give it away (transfer it),
   * and the cache may reuse its slab's room at once.
   */
  get(id: string): Uint8Array | undefined {
    const slot = this.#slots.get(id);
    if (slot === undefined) {
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    this.#unlinkUse(slot);
    this.#linkNewest(slot);
    const offset = this.#offsetOf[slot];
    return this.#slabs[this.#slabOf[slot]]!.slice(offset, offset + this.#lengthOf[slot]);
  }

  /**
   * Keeps a copy of a chunk's bytes if it is at most `CHUNK_CACHE_ENTRY_BYTES_MAX` and a slab,
   * evicting the least recently used chunks to stay within `bytesMax` and `entriesMax`.
   */
  put(id: string, bytes: Uint8Array): void {
    const length = bytes.length;
    if (length > CHUNK_CACHE_ENTRY_BYTES_MAX || length > this.slabBytes) return;
    if (this.slabBytes + CHUNK_CACHE_ENTRY_OVERHEAD_BYTES > this.bytesMax) return;
    if (this.slabBytes === 0 || this.entriesMax === 0) return;
    this.delete(id);
    while (this.#slots.size >= this.entriesMax) this.#remove(this.#oldest);
    while (
      this.#slabCount * this.slabBytes + (this.#slots.size + 1) * CHUNK_CACHE_ENTRY_OVERHEAD_BYTES >
        this.bytesMax
    ) {
      if (!this.#releaseEmptySlab()) this.#remove(this.#oldest);
    }
    const slab = this.#reserve(length);
    const slot = this.#freeSlots.pop() ?? this.#slotsUsed++;
    const offset = this.#slabEnd[slab];
    this.#slabs[slab]!.set(bytes, offset);
    this.#slabEnd[slab] = offset + length;
    this.#slabLive[slab] += length;
    this.#slabOf[slot] = slab;
    this.#offsetOf[slot] = offset;
    this.#lengthOf[slot] = length;
    this.#linkInSlab(slot, slab);
    this.#linkNewest(slot);
    this.#ids[slot] = id;
    this.#slots.set(id, slot);
  }

  /** Forgets a chunk (its file was released). */
  delete(id: string): void {
    const slot = this.#slots.get(id);
    if (slot !== undefined) this.#remove(slot);
  }

  /**
   * A slab with `length` bytes free at its end, made the one being filled: the current one; else
   * the sparsest compacted, if that leaves half a slab free; else a new one, within `bytesMax`;
   * else the sparsest compacted if that leaves a quarter free (copying up to 3 bytes per byte
   * freed rather than evicting more); else the least recently used entries go until one does.
   */
  #reserve(length: number): number {
    const half = Math.max(length, this.slabBytes >> 1);
    const quarter = Math.max(length, this.slabBytes >> 2);
    for (;;) {
      const head = this.#head;
      if (head !== NONE && this.slabBytes - this.#slabEnd[head] >= length) return head;
      const sparsest = this.#sparsestSlab();
      const room = sparsest === NONE ? 0 : this.slabBytes - this.#slabLive[sparsest];
      const slabBudget = this.bytesMax -
        (this.#slots.size + 1) * CHUNK_CACHE_ENTRY_OVERHEAD_BYTES;
      if (sparsest !== NONE && room >= half) {
        this.#compact(sparsest);
      } else if ((this.#slabCount + 1) * this.slabBytes <= slabBudget) {
        this.#head = this.#newSlab();
      } else if (sparsest !== NONE && room >= quarter) {
        this.#compact(sparsest);
      } else {
        assert(this.#oldest !== NONE, "an entry to evict when every slab is full");
        this.#remove(this.#oldest);
      }
    }
  }

  /** The allocated slab with the fewest live bytes, or `NONE`. */
  #sparsestSlab(): number {
    let sparsest = NONE;
    for (let slab = 0; slab < this.#slabs.length; slab++) {
      if (this.#slabs[slab] === undefined) continue;
      if (sparsest === NONE || this.#slabLive[slab] < this.#slabLive[sparsest]) sparsest = slab;
    }
    return sparsest;
  }

  /** Moves a slab's entries to its start, in order, and fills it next. */
  #compact(slab: number): void {
    const bytes = this.#slabs[slab]!;
    let end = 0;
    for (let slot = this.#slabFirst[slab]; slot !== NONE; slot = this.#nextInSlab[slot]) {
      const offset = this.#offsetOf[slot];
      const length = this.#lengthOf[slot];
      if (offset !== end) bytes.copyWithin(end, offset, offset + length);
      this.#offsetOf[slot] = end;
      end += length;
    }
    assert(end === this.#slabLive[slab], "a compacted slab holds its live bytes");
    this.#slabEnd[slab] = end;
    this.#head = slab;
  }

  #newSlab(): number {
    let slab = this.#slabs.indexOf(undefined);
    if (slab === NONE) slab = this.#slabs.length;
    this.#slabs[slab] = new Uint8Array(this.slabBytes);
    this.#slabFirst[slab] = this.#slabLast[slab] = NONE;
    this.#slabLive[slab] = this.#slabEnd[slab] = 0;
    this.#slabCount++;
    return slab;
  }

  /** Drops a slab without entries, if there is one, to make room for entries' overhead. */
  #releaseEmptySlab(): boolean {
    for (let slab = 0; slab < this.#slabs.length; slab++) {
      if (this.#slabs[slab] === undefined || this.#slabFirst[slab] !== NONE) continue;
      this.#slabs[slab] = undefined;
      this.#slabCount--;
      if (this.#head === slab) this.#head = NONE;
      return true;
    }
    return false;
  }

  #remove(slot: number): void {
    const slab = this.#slabOf[slot];
    this.#unlinkUse(slot);
    this.#unlinkInSlab(slot, slab);
    this.#slabLive[slab] -= this.#lengthOf[slot];
    if (this.#slabFirst[slab] === NONE) this.#slabEnd[slab] = 0;
    this.#slots.delete(this.#ids[slot]!);
    this.#ids[slot] = undefined;
    this.#freeSlots.push(slot);
  }

  #linkNewest(slot: number): void {
    this.#older[slot] = this.#newest;
    this.#newer[slot] = NONE;
    if (this.#newest === NONE) this.#oldest = slot;
    else this.#newer[this.#newest] = slot;
    this.#newest = slot;
  }

  #unlinkUse(slot: number): void {
    const older = this.#older[slot];
    const newer = this.#newer[slot];
    if (older === NONE) this.#oldest = newer;
    else this.#newer[older] = newer;
    if (newer === NONE) this.#newest = older;
    else this.#older[newer] = older;
  }

  #linkInSlab(slot: number, slab: number): void {
    const last = this.#slabLast[slab];
    this.#prevInSlab[slot] = last;
    this.#nextInSlab[slot] = NONE;
    if (last === NONE) this.#slabFirst[slab] = slot;
    else this.#nextInSlab[last] = slot;
    this.#slabLast[slab] = slot;
  }

  #unlinkInSlab(slot: number, slab: number): void {
    const prev = this.#prevInSlab[slot];
    const next = this.#nextInSlab[slot];
    if (prev === NONE) this.#slabFirst[slab] = next;
    else this.#nextInSlab[prev] = next;
    if (next === NONE) this.#slabLast[slab] = prev;
    else this.#prevInSlab[next] = prev;
  }
}
