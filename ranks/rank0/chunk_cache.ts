/**
 * Rank 0's cache of small chunks: the bytes of small files written or read lately, so that a get
 * of a hot small file is answered without a round trip to a data node. Chunk ids name immutable
 * bytes (each upload writes a blob of its own; a repair rewrites the same bytes), so an entry is
 * never stale; a released file's chunks just age out. Pure: no I/O.
 *
 * Memory. The bytes are copied into slabs (`CHUNK_CACHE_SLAB_BYTES` each), and an entry is a slot
 * in typed-array columns (its slab, offset, length, its links in two lists, and its id as bytes:
 * the blob's 16 and the offset) found through a `SlotTable`. A Uint8Array of its own per entry
 * cost ~700-900 B of resident memory for a 64-byte chunk (the view, its ArrayBuffer, malloc's
 * block for the bytes); here an entry costs its bytes in a slab and
 * `CHUNK_CACHE_ENTRY_OVERHEAD_BYTES`. Nor does an entry leave garbage: with its id as a string in
 * a `Map`, every chunk that aged out left a string and a map entry behind in the old generation
 * (each lives seconds), ~22 MB of rank 0's heap right after a million tiny puts.
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
import { CHUNK_ID_PATTERN, offsetOf } from "../common/chunk_id.ts";
import { hashOf, parseHex } from "../common/hex_bytes.ts";
import { SlotTable } from "../common/slot_table.ts";

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
 * Bytes each entry costs beyond its chunk's, counted against `bytesMax`: its columns (28 B), its
 * id's key and hash (28 B) and two buckets of the table (8 B).
 */
export const CHUNK_CACHE_ENTRY_OVERHEAD_BYTES = 64;
/** Chunks the cache holds at most, whatever their size: the columns are allocated for this many. */
export const CHUNK_CACHE_ENTRIES_MAX = 32 * 1024;
/** Bytes of an entry's key: its blob id's 16, then its offset as a float64. */
const KEY_BYTES = 24;
const BLOB_BYTES = 16;

const NONE = -1;

/** A least-recently-used map from chunk id to its bytes, bounded by the memory it holds. */
export class ChunkCache {
  readonly bytesMax: number;
  readonly slabBytes: number;
  readonly entriesMax: number;
  /** Id to slot: each slot's key (`KEY_BYTES`) and its hash, and the table over them. */
  #keys: Uint8Array;
  #hashes: Uint32Array;
  #table: SlotTable;
  /** The key being looked up, and its offset's view; its hash. */
  #sought = new Uint8Array(KEY_BYTES);
  #soughtOffset = new Float64Array(this.#sought.buffer, BLOB_BYTES, 1);
  #soughtHash = 0;
  /** The key `put` inserts, kept while its evictions look up theirs. */
  #inserting = new Uint8Array(KEY_BYTES);
  #size = 0;
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
    this.#keys = new Uint8Array(this.entriesMax * KEY_BYTES);
    this.#hashes = new Uint32Array(this.entriesMax);
    const keys = this.#keys;
    const sought = this.#sought;
    this.#table = new SlotTable({
      hashAt: (slot) => this.#hashes[slot],
      holdsSought: (slot, hash) => {
        if (this.#hashes[slot] !== hash) return false;
        const at = slot * KEY_BYTES;
        for (let i = 0; i < KEY_BYTES; i++) if (keys[at + i] !== sought[i]) return false;
        return true;
      },
    }, 2 ** Math.ceil(Math.log2(2 * Math.max(1, this.entriesMax))));
  }

  /** Bytes held: the slabs allocated, and `CHUNK_CACHE_ENTRY_OVERHEAD_BYTES` per entry. */
  get bytes(): number {
    return this.#slabCount * this.slabBytes + this.#size * CHUNK_CACHE_ENTRY_OVERHEAD_BYTES;
  }

  /** Chunks held. */
  get size(): number {
    return this.#size;
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
    const slot = this.#slotOf(id);
    if (slot === NONE) {
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
    if (!this.#seek(id)) return;
    // Kept aside: evictions below look their own keys up, which overwrites the one sought.
    const hash = this.#soughtHash;
    const key = this.#inserting;
    key.set(this.#sought);
    const held = this.#table.slotIn(this.#table.find(hash));
    if (held !== NONE) this.#remove(held);
    while (this.#size >= this.entriesMax) this.#remove(this.#oldest);
    while (
      this.#slabCount * this.slabBytes + (this.#size + 1) * CHUNK_CACHE_ENTRY_OVERHEAD_BYTES >
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
    this.#sought.set(key);
    this.#keys.set(key, slot * KEY_BYTES);
    this.#hashes[slot] = hash;
    this.#table.put(this.#table.find(hash), slot, hash);
    this.#size++;
  }

  /** Forgets a chunk (its file was released). */
  delete(id: string): void {
    const slot = this.#slotOf(id);
    if (slot !== NONE) this.#remove(slot);
  }

  /** The slot holding chunk `id`, or `NONE`. */
  #slotOf(id: string): number {
    if (!this.#seek(id)) return NONE;
    return this.#table.slotIn(this.#table.find(this.#soughtHash));
  }

  /**
   * Makes `id` the key sought: its blob's bytes and its offset, and their hash; false if it is
   * not a chunk id (no such chunk is cached).
   */
  #seek(id: string): boolean {
    if (!CHUNK_ID_PATTERN.test(id) || !parseHex(id, BLOB_BYTES, this.#sought, 0)) return false;
    this.#soughtOffset[0] = offsetOf(id);
    this.#soughtHash = hashOf(this.#sought, KEY_BYTES);
    return true;
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
        (this.#size + 1) * CHUNK_CACHE_ENTRY_OVERHEAD_BYTES;
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
    // Its bucket: found by its own key, which becomes the one sought.
    this.#sought.set(this.#keys.subarray(slot * KEY_BYTES, (slot + 1) * KEY_BYTES));
    this.#soughtHash = this.#hashes[slot];
    this.#table.remove(this.#table.find(this.#soughtHash));
    this.#size--;
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
