/**
 * A set of chunk ids held compactly, and its wire form: what a data node reports of the chunks kept
 * in its log at start-up (a million small files are a million such chunks; as one string of ids
 * and a `Set` of strings on rank 0 they cost ~100 bytes each, as 16-byte keys in typed arrays ~28).
 *
 * A chunk kept in a log is a whole small file or part, so its id is `<blob>-0` and is held as its
 * 16-byte blob id; ids of another form go to a plain `Set`. Pure.
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";
import { hashOf, parseHex } from "./hex_bytes.ts";
import { grown, SlotTable } from "./slot_table.ts";

/** Bytes of the key of a `<blob>-0` id: its blob id's. */
export const CHUNK_KEY_BYTES = 16;
/** Slots of a new set; it doubles from here. */
const SLOTS_MIN = 16;
/** The length of a `<blob>-0` id: 32 hex digits, then `-0`. */
const BLOB_CHUNK_ID_LENGTH = 2 * CHUNK_KEY_BYTES + 2;
/** Bytes of the wire form's header: the count of keys (u32, big-endian). */
const HEADER_BYTES = 4;

/**
 * The wire form of a set: the count of keys, the 16-byte keys back to back, then the other ids
 * joined by NUL (which ids never contain), in UTF-8.
 */
export function encodeChunkIds(keys: Uint8Array, others: readonly string[]): Uint8Array {
  assert(keys.length % CHUNK_KEY_BYTES === 0, "chunk keys are 16 bytes each");
  const rest = new TextEncoder().encode(others.join("\0"));
  const bytes = new Uint8Array(HEADER_BYTES + keys.length + rest.length);
  new DataView(bytes.buffer).setUint32(0, keys.length / CHUNK_KEY_BYTES);
  bytes.set(keys, HEADER_BYTES);
  bytes.set(rest, HEADER_BYTES + keys.length);
  return bytes;
}

/** The wire form of a set of these ids (`encodeChunkIds()`). */
export function encodeChunkIdList(ids: Iterable<string>): Uint8Array {
  const keys: Uint8Array[] = [];
  const others: string[] = [];
  for (const id of ids) {
    const key = new Uint8Array(CHUNK_KEY_BYTES);
    if (isBlobChunkId(id) && parseHex(id, CHUNK_KEY_BYTES, key, 0)) keys.push(key);
    else others.push(id);
  }
  const packed = new Uint8Array(keys.length * CHUNK_KEY_BYTES);
  keys.forEach((key, i) => packed.set(key, i * CHUNK_KEY_BYTES));
  return encodeChunkIds(packed, others);
}

/** Whether `id` has the form of a chunk held as a key: `<blob>-0`. */
function isBlobChunkId(id: string): boolean {
  return id.length === BLOB_CHUNK_ID_LENGTH && id.endsWith("-0");
}

/** Chunk ids, as a set. */
export class ChunkIdSet {
  #size = 0;
  #keys: Uint8Array;
  #hashes: Uint32Array;
  #scratch = new Uint8Array(CHUNK_KEY_BYTES);
  #table: SlotTable;
  #others = new Set<string>();

  private constructor(slots: number) {
    this.#keys = new Uint8Array(slots * CHUNK_KEY_BYTES);
    this.#hashes = new Uint32Array(slots);
    this.#table = new SlotTable({
      hashAt: (slot) => this.#hashes[slot],
      holdsSought: (slot, hash) => this.#hashes[slot] === hash && this.#keyIsScratch(slot),
    }, bucketsFor(slots));
  }

  /** A set of the ids given. */
  static of(ids: Iterable<string>): ChunkIdSet {
    const set = new ChunkIdSet(SLOTS_MIN);
    for (const id of ids) set.add(id);
    return set;
  }

  /**
   * The set an `encodeChunkIds()` form holds (read now, not kept).
   *
   * @throws {DfsError} `INTERNAL` if `bytes` is not such a form.
   */
  static decode(bytes: Uint8Array): ChunkIdSet {
    assert(bytes.length >= HEADER_BYTES, "a chunk id set has its count");
    const count = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES).getUint32(0);
    const end = HEADER_BYTES + count * CHUNK_KEY_BYTES;
    assert(end <= bytes.length, "a chunk id set's keys fit in it");
    const set = new ChunkIdSet(Math.max(SLOTS_MIN, count));
    for (let at = HEADER_BYTES; at < end; at += CHUNK_KEY_BYTES) {
      set.#scratch.set(bytes.subarray(at, at + CHUNK_KEY_BYTES));
      set.#addScratch();
    }
    if (end < bytes.length) {
      for (const id of new TextDecoder().decode(bytes.subarray(end)).split("\0")) set.add(id);
    }
    return set;
  }

  get size(): number {
    return this.#size + this.#others.size;
  }

  has(id: string): boolean {
    if (!this.#parse(id)) return this.#others.has(id);
    return this.#table.slotIn(this.#table.find(hashOf(this.#scratch, CHUNK_KEY_BYTES))) >= 0;
  }

  add(id: string): void {
    if (!this.#parse(id)) return void this.#others.add(id);
    this.#addScratch();
  }

  #addScratch(): void {
    const hash = hashOf(this.#scratch, CHUNK_KEY_BYTES);
    const bucket = this.#table.find(hash);
    if (this.#table.slotIn(bucket) >= 0) return;
    const slot = this.#size++;
    if (slot === this.#hashes.length) {
      this.#keys = grown(this.#keys, new Uint8Array(2 * slot * CHUNK_KEY_BYTES));
      this.#hashes = grown(this.#hashes, new Uint32Array(2 * slot));
    }
    this.#keys.set(this.#scratch, slot * CHUNK_KEY_BYTES);
    this.#hashes[slot] = hash;
    if (2 * this.#size > this.#table.length) {
      this.#table.resize(2 * this.#table.length);
      this.#table.put(this.#table.find(hash), slot, hash);
    } else {
      this.#table.put(bucket, slot, hash);
    }
  }

  /** Puts the blob of a `<blob>-0` id into `#scratch`; false for an id of another form. */
  #parse(id: string): boolean {
    return isBlobChunkId(id) && parseHex(id, CHUNK_KEY_BYTES, this.#scratch, 0);
  }

  #keyIsScratch(slot: number): boolean {
    const keys = this.#keys;
    const at = slot * CHUNK_KEY_BYTES;
    for (let i = 0; i < CHUNK_KEY_BYTES; i++) if (keys[at + i] !== this.#scratch[i]) return false;
    return true;
  }
}

/** The buckets for `slots` keys at most half full: a power of two. */
function bucketsFor(slots: number): number {
  let buckets = 2 * SLOTS_MIN;
  while (buckets < 2 * slots) buckets *= 2;
  return buckets;
}
