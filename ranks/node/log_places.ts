/**
 * Where the bytes of each chunk kept in a data node's log are: chunk id to offset and size. A chunk
 * kept in the log is a whole small file or part, so its id is `<blob>-0`; it is held as its 16-byte
 * blob id in an open-addressing table of typed arrays, with offset and size packed into one number
 * (~40 bytes a chunk, and nothing for the garbage collector to walk), instead of a Map entry, an id
 * string and an object (~120 bytes). Ids of another form, which no caller makes today, go to a
 * plain Map. Pure.
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";
import { LOG_FILE_BYTES_MAX } from "../common/chunk_id.ts";
import { encodeChunkIds } from "../common/chunk_id_set.ts";
import { hashOf, hexOf, parseHex } from "../common/hex_bytes.ts";
import { PagedColumn } from "../common/paged_column.ts";
import { SlotTable } from "../common/slot_table.ts";

/** Sizes packed below this (a chunk kept in the log is at most `LOG_FILE_BYTES_MAX`). */
const SIZE_LIMIT = 2 ** 17;
/** Log offsets below this are exact when packed (64 GiB of log). */
export const LOG_PLACE_OFFSET_LIMIT = 2 ** 53 / SIZE_LIMIT;
/** Slots of a new table; it grows from here (`PagedColumn`). */
export const LOG_PLACES_SLOTS_MIN = 16;
/** Fullest the hash table gets, in chunks per bucket, before it doubles (as `TABLE_LOAD_MAX`). */
export const LOG_PLACES_LOAD_MAX = 0.75;
/** Chunks one node's log may hold at most. */
export const LOG_PLACES_MAX = 2 ** 26;

const KEY_BYTES = 16;
/** A chunk id held by its blob: 32 hex digits, then `-0`. */
const BLOB_CHUNK_ID_LENGTH = 2 * KEY_BYTES + 2;

/** Where a chunk's bytes are in the log file. */
export interface LogPlace {
  offset: number;
  size: number;
}

/** Chunk id to where its bytes are in the log. */
export class LogPlaces {
  #size = 0;
  /** Slots ever used; free ones below it are on `#free`. */
  #slotsUsed = 0;
  #free: number[] = [];
  #keys = new PagedColumn((n) => new Uint8Array(n), {
    width: KEY_BYTES,
    slots: LOG_PLACES_SLOTS_MIN,
  });
  #values = new PagedColumn((n) => new Float64Array(n), { width: 1, slots: LOG_PLACES_SLOTS_MIN });
  #hashes = new PagedColumn((n) => new Uint32Array(n), { width: 1, slots: LOG_PLACES_SLOTS_MIN });
  #scratch = new Uint8Array(KEY_BYTES);
  /** Blob id to slot; at most `LOG_PLACES_LOAD_MAX` full. */
  #table = new SlotTable({
    hashAt: (slot) => this.#hashes.get(slot),
    holdsSought: (slot, hash) => this.#hashes.get(slot) === hash && this.#keyIsScratch(slot),
  }, 2 * LOG_PLACES_SLOTS_MIN);
  /** Ids not of the form `<blob>-0`. */
  #others = new Map<string, number>();

  get size(): number {
    return this.#size + this.#others.size;
  }

  has(id: string): boolean {
    return this.#packed(id) !== undefined;
  }

  get(id: string): LogPlace | undefined {
    const packed = this.#packed(id);
    if (packed === undefined) return undefined;
    return { offset: Math.floor(packed / SIZE_LIMIT), size: packed % SIZE_LIMIT };
  }

  set(id: string, place: LogPlace): void {
    const { offset, size } = place;
    assert(size >= 0 && size <= LOG_FILE_BYTES_MAX && size < SIZE_LIMIT, "a log chunk is small");
    this.#checkOffset(offset);
    const packed = offset * SIZE_LIMIT + size;
    if (!this.#parse(id)) return void this.#others.set(id, packed);
    this.#put(hashOf(this.#scratch, KEY_BYTES), packed);
  }

  /**
   * Takes from `from` every chunk whose bytes are at or past `tailFrom`, `shift` bytes on: a
   * rewrite of the log copied the records appended while it ran there. A walk of `from`'s
   * slots, and a set of each chunk taken.
   */
  takeTail(from: LogPlaces, tailFrom: number, shift: number): void {
    const [limit, by] = [tailFrom * SIZE_LIMIT, shift * SIZE_LIMIT];
    const free = from.#freeSlots();
    for (let slot = 0; slot < from.#slotsUsed; slot++) {
      const packed = from.#values.get(slot);
      if (free[slot] === 1 || packed < limit) continue;
      this.#checkOffset(Math.floor(packed / SIZE_LIMIT) + shift);
      const [keys, at] = [from.#keys.page(slot), from.#keys.at(slot)];
      for (let i = 0; i < KEY_BYTES; i++) this.#scratch[i] = keys[at + i];
      this.#put(from.#hashes.get(slot), packed + by);
    }
    for (const [id, packed] of from.#others) {
      if (packed >= limit) this.#others.set(id, packed + by);
    }
  }

  /** Sets the chunk whose blob is in `#scratch`, of hash `hash`, to `packed`. */
  #put(hash: number, packed: number): void {
    const bucket = this.#table.find(hash);
    const held = this.#table.slotIn(bucket);
    if (held >= 0) return this.#values.set(held, packed);
    assert(this.#size < LOG_PLACES_MAX, `a node's log holds at most ${LOG_PLACES_MAX} chunks`);
    const slot = this.#newSlot();
    this.#keys.page(slot).set(this.#scratch, this.#keys.at(slot));
    this.#hashes.set(slot, hash);
    this.#values.set(slot, packed);
    this.#size++;
    if (this.#size > this.#table.length * LOG_PLACES_LOAD_MAX) {
      this.#table.resize(2 * this.#table.length);
      this.#table.put(this.#table.find(hash), slot, hash);
    } else {
      this.#table.put(bucket, slot, hash);
    }
  }

  delete(id: string): boolean {
    if (!this.#parse(id)) return this.#others.delete(id);
    const bucket = this.#table.find(hashOf(this.#scratch, KEY_BYTES));
    const slot = this.#table.slotIn(bucket);
    if (slot < 0) return false;
    this.#table.remove(bucket);
    this.#free.push(slot);
    this.#size--;
    return true;
  }

  /**
   * Every chunk id held, and those of `extra` not held, in the wire form of a `ChunkIdSet` (see
   * `encodeChunkIds()`).
   */
  encodeIds(extra: readonly string[] = []): Uint8Array {
    const more = extra.filter((id) => !this.has(id));
    const keys = new Uint8Array((this.#size + more.length) * KEY_BYTES);
    // In slot order, where the keys lie one after another: in the hash table's order each was a
    // miss of the cache (~260 ns a chunk, 0.4 s for 1.5 million, in a scan's first answer).
    const free = this.#freeSlots();
    let at = 0;
    for (let slot = 0; slot < this.#slotsUsed; slot++) {
      if (free[slot] === 1) continue;
      const [page, from] = [this.#keys.page(slot), this.#keys.at(slot)];
      for (let i = 0; i < KEY_BYTES; i++) keys[at + i] = page[from + i];
      at += KEY_BYTES;
    }
    const others = [...this.#others.keys()];
    for (const id of more) {
      if (!this.#parse(id)) {
        others.push(id);
        continue;
      }
      keys.set(this.#scratch, at);
      at += KEY_BYTES;
    }
    return encodeChunkIds(keys.subarray(0, at), others);
  }

  /** Every chunk id held (in no particular order). */
  *keys(): IterableIterator<string> {
    for (const slot of this.#table.slots()) {
      yield `${hexOf(this.#keys.page(slot), this.#keys.at(slot), KEY_BYTES)}-0`;
    }
    yield* this.#others.keys();
  }

  /** 1 for each free slot below `#slotsUsed`. */
  #freeSlots(): Uint8Array {
    const free = new Uint8Array(this.#slotsUsed);
    for (const slot of this.#free) free[slot] = 1;
    return free;
  }

  #checkOffset(offset: number): void {
    assert(
      Number.isSafeInteger(offset) && offset >= 0 && offset < LOG_PLACE_OFFSET_LIMIT,
      `a log offset is below ${LOG_PLACE_OFFSET_LIMIT}`,
    );
  }

  #packed(id: string): number | undefined {
    if (!this.#parse(id)) return this.#others.get(id);
    const slot = this.#table.slotIn(this.#table.find(hashOf(this.#scratch, KEY_BYTES)));
    return slot < 0 ? undefined : this.#values.get(slot);
  }

  /** Puts the blob of a `<blob>-0` id into `#scratch`; false for an id of another form. */
  #parse(id: string): boolean {
    return id.length === BLOB_CHUNK_ID_LENGTH && id.endsWith("-0") &&
      parseHex(id, KEY_BYTES, this.#scratch, 0);
  }

  #keyIsScratch(slot: number): boolean {
    const keys = this.#keys.page(slot);
    const at = this.#keys.at(slot);
    for (let i = 0; i < KEY_BYTES; i++) if (keys[at + i] !== this.#scratch[i]) return false;
    return true;
  }

  #newSlot(): number {
    const reused = this.#free.pop();
    if (reused !== undefined) return reused;
    if (this.#slotsUsed === this.#values.slots) {
      for (const column of [this.#keys, this.#values, this.#hashes]) column.grow();
    }
    return this.#slotsUsed++;
  }
}
