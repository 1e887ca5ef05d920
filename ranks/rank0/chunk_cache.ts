/**
 * Rank 0's cache of small chunks: the bytes of small files written or read lately, so that a get
 * of a hot small file is answered without a round trip to a data node. Chunk ids name immutable
 * bytes (each upload writes a blob of its own; a repair rewrites the same bytes), so an entry is
 * never stale; a released file's chunks just age out. Least recently used entries go first once
 * `CHUNK_CACHE_BYTES_MAX` or `CHUNK_CACHE_ENTRIES_MAX` is reached. Pure: no I/O.
 *
 * What it does not change: reads of a data node's disk by scrub, fsck and re-replication go to
 * the nodes; the client still checks the file's SHA-256 (or each chunk's CRC32).
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";

/** Bytes the cache holds at most: its chunks' and `CHUNK_CACHE_ENTRY_OVERHEAD_BYTES` each. */
export const CHUNK_CACHE_BYTES_MAX = 64 * 1024 * 1024;
/** The largest chunk cached, in bytes: a small file's whole content. */
export const CHUNK_CACHE_ENTRY_BYTES_MAX = 64 * 1024;
/**
 * Bytes each entry costs beyond its chunk's (its id, the Map's entry, the Uint8Array and its
 * ArrayBuffer), counted against `bytesMax`: without it, a cache of 64-byte files would hold a
 * million entries and take 4x its size.
 */
export const CHUNK_CACHE_ENTRY_OVERHEAD_BYTES = 256;
/**
 * Chunks the cache holds at most, whatever their size: each is four objects for the garbage
 * collector to walk at every full collection, and a store of a million tiny files would otherwise
 * keep 200,000 of them.
 */
export const CHUNK_CACHE_ENTRIES_MAX = 32 * 1024;

/** A least-recently-used map from chunk id to its bytes, bounded by their total size. */
export class ChunkCache {
  readonly bytesMax: number;
  /** In use order: the least recently used first. */
  #entries = new Map<string, Uint8Array>();
  /** Where the next eviction starts (`#oldest()`). */
  #cursor: MapIterator<[string, Uint8Array]> | undefined;
  #bytes = 0;
  #hits = 0;
  #misses = 0;

  constructor(options: { bytesMax?: number } = {}) {
    this.bytesMax = options.bytesMax ?? CHUNK_CACHE_BYTES_MAX;
    assert(this.bytesMax >= 0, "a cache size is not negative");
  }

  /** Bytes held, overhead included. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Chunks held. */
  get size(): number {
    return this.#entries.size;
  }

  /** Lookups that found their chunk, and those that did not. */
  get stats(): { hits: number; misses: number } {
    return { hits: this.#hits, misses: this.#misses };
  }

  /** A copy of the chunk's bytes if held (the caller may recycle or give it away). */
  get(id: string): Uint8Array | undefined {
    const bytes = this.#entries.get(id);
    if (bytes === undefined) {
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    this.#entries.delete(id);
    this.#entries.set(id, bytes);
    return bytes.slice();
  }

  /**
   * Keeps a copy of a chunk's bytes if it is at most `CHUNK_CACHE_ENTRY_BYTES_MAX`, evicting the
   * least recently used chunks to stay within `bytesMax`.
   */
  put(id: string, bytes: Uint8Array): void {
    const cost = bytes.length + CHUNK_CACHE_ENTRY_OVERHEAD_BYTES;
    if (bytes.length > CHUNK_CACHE_ENTRY_BYTES_MAX || cost > this.bytesMax) return;
    this.delete(id);
    this.#entries.set(id, bytes.slice());
    this.#bytes += cost;
    while (this.#bytes > this.bytesMax || this.#entries.size > CHUNK_CACHE_ENTRIES_MAX) {
      const [oldest, held] = this.#oldest();
      this.#entries.delete(oldest);
      this.#bytes -= held.length + CHUNK_CACHE_ENTRY_OVERHEAD_BYTES;
    }
  }

  /**
   * The least recently used entry, which must exist. It comes from an iterator kept from one
   * eviction to the next: every entry before it was evicted, or used again and so moved behind it.
   * A new iterator each time walked the holes evicted entries leave at the start of the Map's
   * table until it is rebuilt: 11 µs per put into a full cache of tiny chunks, against 0.5.
   */
  #oldest(): [string, Uint8Array] {
    for (let fresh = false;; fresh = true) {
      this.#cursor ??= this.#entries.entries();
      const next = this.#cursor.next();
      if (!next.done) return next.value;
      this.#cursor = undefined; // at the end: entries added since come after where it stopped
      assert(!fresh, "an entry to evict");
    }
  }

  /** Forgets a chunk (its file was released). */
  delete(id: string): void {
    const held = this.#entries.get(id);
    if (held === undefined) return;
    this.#entries.delete(id);
    this.#bytes -= held.length + CHUNK_CACHE_ENTRY_OVERHEAD_BYTES;
  }
}
