/**
 * The names of a column store (`ManifestColumns`) as UTF-8 in slabs: each name once, at a 32-bit
 * address, with no string or object per name for the garbage collector. Freed names stay as dead
 * bytes until the store compacts the arena. Pure.
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";
import { hashOf } from "./hex_bytes.ts";
import { freeNow, grown } from "./slot_table.ts";
import { compareUtf8AsUtf16 } from "./sorted_slots.ts";

/** Bytes of one slab of the name arena; the first slab doubles up to this, then slabs are added. */
export const NAMES_SLAB_BYTES = 1024 * 1024;
/** Bytes of the first slab of the name arena when the store is new. */
export const NAMES_SLAB_BYTES_MIN = 1024;
/** Slabs of the name arena at most: name addresses are 32-bit (4 GiB of names). */
export const NAMES_SLABS_MAX = 2 ** 32 / NAMES_SLAB_BYTES;
/** Bytes of freed names per slot the arena may keep (beyond as many as live names take). */
export const NAMES_DEAD_BYTES_PER_SLOT = 4;

const utf8Decoder = new TextDecoder();

/** Where the names of a slot store live, by address and length (the store keeps both per slot). */
export interface NameSlots {
  /** Slots ever used. */
  count: number;
  /** Bytes of a slot's name; 0 for a free slot. */
  lengthOf(slot: number): number;
  addressOf(slot: number): number;
  setAddress(slot: number, address: number): void;
}

/** Names as UTF-8 in slabs, by address. */
export class NameArena {
  #slabs: Uint8Array[] = [new Uint8Array(NAMES_SLAB_BYTES_MIN)];
  /** Bytes used in the last slab. */
  #slabUsed = 0;
  /** Bytes of names held, and of names freed but still in the arena. */
  #liveBytes = 0;
  #deadBytes = 0;

  /** Bytes of the slabs. */
  get byteLength(): number {
    return this.#slabs.reduce((sum, slab) => sum + slab.byteLength, 0);
  }

  /**
   * Makes room for a name of `length` bytes at the end (`name` is for the error).
   *
   * @throws {DfsError} `TOO_LARGE` if the arena is full.
   */
  makeRoom(length: number, name: string): void {
    const last = this.#slabs[this.#slabs.length - 1];
    if (this.#slabUsed + length <= last.length) return;
    if (last.length < NAMES_SLAB_BYTES) {
      // The first slab grows by doubling until it is a whole slab.
      let bytes = last.length * 2;
      while (bytes < this.#slabUsed + length) bytes *= 2;
      this.#slabs[this.#slabs.length - 1] = grown(last, new Uint8Array(bytes));
      freeNow(last);
      return;
    }
    if (this.#slabs.length === NAMES_SLABS_MAX) {
      throw new DfsError("TOO_LARGE", `Cannot hold "${name}": the arena of names is full`);
    }
    this.#slabs.push(new Uint8Array(NAMES_SLAB_BYTES));
    this.#deadBytes += NAMES_SLAB_BYTES - this.#slabUsed; // the end left unused
    this.#slabUsed = 0;
  }

  /** Copies the first `length` bytes of `bytes` to the end (after `makeRoom()`); their address. */
  append(bytes: Uint8Array, length: number): number {
    const last = this.#slabs.length - 1;
    this.#slabs[last].set(bytes.subarray(0, length), this.#slabUsed);
    const address = last * NAMES_SLAB_BYTES + this.#slabUsed;
    this.#slabUsed += length;
    this.#liveBytes += length;
    return address;
  }

  /** Counts a name of `length` bytes as freed. */
  free(length: number): void {
    this.#liveBytes -= length;
    this.#deadBytes += length;
  }

  /** Whether the name at `address` is the first `length` bytes of `bytes`. */
  equals(address: number, bytes: Uint8Array, length: number): boolean {
    const slab = this.#slabOf(address);
    const offset = address % NAMES_SLAB_BYTES;
    for (let i = 0; i < length; i++) if (slab[offset + i] !== bytes[i]) return false;
    return true;
  }

  /** The hash of the name of `length` bytes at `address` (`hashOf` of its bytes). */
  hash(address: number, length: number): number {
    return hashOf(this.#slabOf(address), length, address % NAMES_SLAB_BYTES);
  }

  /** Whether the name of `length` bytes at `address` starts with `prefix`. */
  startsWith(address: number, length: number, prefix: Uint8Array): boolean {
    return length >= prefix.length && this.equals(address, prefix, prefix.length);
  }

  /** The name of `length` bytes at `address`. */
  decode(address: number, length: number): string {
    const slab = this.#slabOf(address);
    const offset = address % NAMES_SLAB_BYTES;
    const end = offset + length;
    let ascii = true;
    for (let i = offset; i < end; i++) if (slab[i] >= 0x80) ascii = false;
    // Short ASCII names (nearly all) are quicker this way than through the decoder.
    return ascii
      ? String.fromCharCode.apply(null, slab.subarray(offset, end) as unknown as number[])
      : utf8Decoder.decode(slab.subarray(offset, end));
  }

  /** Compares two names in UTF-16 code unit order, from their bytes. */
  compare(a: number, aLength: number, b: number, bLength: number): number {
    const aOffset = a % NAMES_SLAB_BYTES;
    const bOffset = b % NAMES_SLAB_BYTES;
    return compareUtf8AsUtf16(
      this.#slabOf(a),
      aOffset,
      aOffset + aLength,
      this.#slabOf(b),
      bOffset,
      bOffset + bLength,
    );
  }

  /**
   * Whether freed names are more bytes than live ones, or than a few per slot of `slotsUsed`:
   * compacting then costs one pass over the slots and names, paid for by the frees since the last.
   */
  wantsCompacting(slotsUsed: number): boolean {
    return this.#deadBytes > Math.max(this.#liveBytes, NAMES_DEAD_BYTES_PER_SLOT * slotsUsed);
  }

  /** Copies every live name of `slots` into new slabs, in slot order, leaving out freed ones. */
  compact(slots: NameSlots): void {
    const old = this.#slabs;
    const slabs = [new Uint8Array(Math.min(NAMES_SLAB_BYTES, nextPowerOfTwo(this.#liveBytes)))];
    let used = 0;
    let unused = 0; // the ends of full slabs
    for (let slot = 0; slot < slots.count; slot++) {
      const length = slots.lengthOf(slot);
      if (length === 0) continue;
      if (used + length > slabs[slabs.length - 1].length) {
        unused += slabs[slabs.length - 1].length - used;
        slabs.push(new Uint8Array(NAMES_SLAB_BYTES));
        used = 0;
      }
      const address = slots.addressOf(slot);
      const offset = address % NAMES_SLAB_BYTES;
      const from = old[Math.floor(address / NAMES_SLAB_BYTES)].subarray(offset, offset + length);
      slabs[slabs.length - 1].set(from, used);
      slots.setAddress(slot, (slabs.length - 1) * NAMES_SLAB_BYTES + used);
      used += length;
    }
    this.#slabs = slabs;
    this.#slabUsed = used;
    this.#deadBytes = unused;
  }

  #slabOf(address: number): Uint8Array {
    return this.#slabs[Math.floor(address / NAMES_SLAB_BYTES)];
  }
}

function nextPowerOfTwo(n: number): number {
  let power = NAMES_SLAB_BYTES_MIN;
  while (power < n) power *= 2;
  return power;
}
