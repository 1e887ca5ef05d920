/**
 * The open-addressing hash table under the column stores (`ManifestColumns`, a data node's
 * `LogPlaces`): buckets of slot numbers in one `Uint32Array`, linear probing, and deletion by
 * moving the rest of a probe run back into the gap (no tombstones). The store keeps each slot's key
 * (and its hash, if it keeps a column of them) and answers the table's two questions (`SlotKeys`).
 * Each bucket also holds the top `TAG_BITS` of its slot's hash: a probe past another key then
 * reads only the bucket, not the store's keys (a cache miss each, ~8 per insert at the fullest).
 * Pure.
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";

/** What a table asks of the store whose slots it holds. */
export interface SlotKeys {
  /**
   * The hash of the key held in `slot`: asked only when entries move (`remove()`, `resize()`), so
   * a store may work it out from the key rather than keep a column of hashes.
   */
  hashAt(slot: number): number;
  /**
   * Whether `slot` holds the key being looked up now, whose hash is `hash` (the bucket's tag
   * matched it already; a store with a column of hashes compares them before the keys).
   */
  holdsSought(slot: number, hash: number): boolean;
}

/** Slots a table holds at most: a bucket keeps the slot plus one below its tag bits. */
export const SLOT_TABLE_SLOTS_MAX = 2 ** 27 - 1;
/** Bits of the hash kept in each bucket, above the slot. */
const TAG_BITS = 5;
const SLOT_BITS = 32 - TAG_BITS;
const SLOT_MASK = 2 ** SLOT_BITS - 1;

/** Buckets of slot numbers; the store decides when to resize (see `resize()`). */
export class SlotTable {
  /** Per bucket, the hash's tag above its slot + 1; 0 when empty. */
  #buckets: Uint32Array;
  #keys: SlotKeys;

  /** An empty table of `buckets` buckets, a power of two. */
  constructor(keys: SlotKeys, buckets: number) {
    assert(isPowerOfTwo(buckets), "a slot table has a power of two of buckets");
    this.#keys = keys;
    this.#buckets = new Uint32Array(buckets);
  }

  /** Buckets, empty or not. */
  get length(): number {
    return this.#buckets.length;
  }

  /** Bytes of the buckets. */
  get byteLength(): number {
    return this.#buckets.byteLength;
  }

  /** The bucket holding the key sought (whose hash is `hash`), or the empty one where it goes. */
  find(hash: number): number {
    const buckets = this.#buckets;
    const mask = buckets.length - 1;
    const tag = hash >>> SLOT_BITS;
    for (let bucket = hash & mask;; bucket = (bucket + 1) & mask) {
      const entry = buckets[bucket];
      if (entry === 0) return bucket;
      if (entry >>> SLOT_BITS !== tag) continue;
      const slot = (entry & SLOT_MASK) - 1;
      if (this.#keys.holdsSought(slot, hash)) return bucket;
    }
  }

  /** The slot in `bucket`, or -1 if it is empty. */
  slotIn(bucket: number): number {
    return (this.#buckets[bucket] & SLOT_MASK) - 1;
  }

  /** Puts `slot`, whose key's hash is `hash`, in `bucket`, an empty one `find(hash)` gave. */
  put(bucket: number, slot: number, hash: number): void {
    assert(slot >= 0 && slot < SLOT_TABLE_SLOTS_MAX, "a slot fits a bucket");
    this.#buckets[bucket] = ((hash >>> SLOT_BITS) << SLOT_BITS | (slot + 1)) >>> 0;
  }

  /** Empties `bucket`, moving later entries of its probe run back into the gap. */
  remove(bucket: number): void {
    const buckets = this.#buckets;
    const mask = buckets.length - 1;
    let gap = bucket;
    for (let next = (gap + 1) & mask; buckets[next] !== 0; next = (next + 1) & mask) {
      const home = this.#keys.hashAt((buckets[next] & SLOT_MASK) - 1) & mask;
      // The entry may move to the gap unless its home lies cyclically in (gap, next].
      const stays = gap <= next ? gap < home && home <= next : gap < home || home <= next;
      if (stays) continue;
      buckets[gap] = buckets[next];
      gap = next;
    }
    buckets[gap] = 0;
  }

  /** The same slots in `buckets` buckets (a power of two, more than the slots held). */
  resize(buckets: number): void {
    assert(isPowerOfTwo(buckets), "a slot table has a power of two of buckets");
    const resized = new Uint32Array(buckets);
    const mask = buckets - 1;
    for (const entry of this.#buckets) {
      if (entry === 0) continue;
      let bucket = this.#keys.hashAt((entry & SLOT_MASK) - 1) & mask;
      while (resized[bucket] !== 0) bucket = (bucket + 1) & mask;
      resized[bucket] = entry;
    }
    freeNow(this.#buckets);
    this.#buckets = resized;
  }

  /** Every slot held, in bucket order. */
  *slots(): Generator<number> {
    for (const entry of this.#buckets) if (entry !== 0) yield (entry & SLOT_MASK) - 1;
  }
}

/** `to` with `old` copied into its start: how the column stores grow a column. */
export function grown<T extends Uint8Array | Uint16Array | Uint32Array | Float64Array>(
  old: T,
  to: T,
): T {
  to.set(old);
  return to;
}

/**
 * Frees the memory of `array`, an array nothing will read again that has its buffer to itself, now
 * rather than when V8 next collects it: the buffer is detached (a view of it then reads as empty).
 * For the arrays a store drops as it grows: a start-up that fills tables of a million slots
 * replaces tens of MiB of them, which would otherwise stay resident until a full collection
 * (V8 runs none once the process goes idle, until its memory reducer starts, ~8 s on).
 */
export function freeNow(array: Uint8Array | Uint16Array | Uint32Array | Float64Array): void {
  const { buffer } = array;
  assert(
    buffer instanceof ArrayBuffer && array.byteOffset === 0 &&
      array.byteLength === buffer.byteLength,
    "an array freed at once has its buffer to itself",
  );
  buffer.transfer(0);
}

/**
 * Frees `array`'s memory now (`freeNow`) if it views the whole of its buffer, as bytes a Worker
 * posted do; a view into a larger buffer (bytes decoded out of a frame read from a socket) is left
 * to the collector. For an array read once that nothing else holds: a page of a node's summary
 * (1 MiB) waits in rank 0's mailbox while it reads another node's page, so the collector takes it
 * for long-lived and frees it only at a full collection.
 */
export function freeIfWhole(array: Uint8Array | Float64Array): void {
  const { buffer } = array;
  const whole = array.byteOffset === 0 && array.byteLength === buffer.byteLength;
  if (whole && buffer instanceof ArrayBuffer) freeNow(array);
}

function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0;
}
