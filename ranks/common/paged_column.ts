/**
 * A column of a column store (`ManifestColumns`, a data node's `LogPlaces`) in pages: a fixed
 * number of values per slot, in typed arrays of `PAGE_SLOTS` slots each once the column is past
 * its first page. Growing adds a page and frees nothing. Columns that grew by making a larger array
 * and copying left each old array to the allocator: with a million files, the freed arrays kept
 * 120-300 MB of the server's resident memory that malloc did not give back to the system, more
 * than the columns themselves left empty. The first page doubles from the store's smallest size
 * up to a whole page, so that a small store stays small. Pure.
 *
 * A slot's values lie in one page: `page(slot)` and `at(slot)` give the array and the index of the
 * slot's first value in it.
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";
import { freeNow, grown } from "./slot_table.ts";

/** Slots of a whole page (a power of two): a sha256 column's page is 512 KiB. */
export const PAGE_SLOTS = 2 ** 14;
const PAGE_SHIFT = Math.log2(PAGE_SLOTS);
const PAGE_MASK = PAGE_SLOTS - 1;

/** The typed arrays a column may be made of. */
export type ColumnArray = Uint8Array | Uint16Array | Uint32Array | Float64Array;

/** A column of `width` values per slot, in pages. */
export class PagedColumn<T extends ColumnArray> {
  readonly width: number;
  #make: (length: number) => T;
  #pages: T[];
  #slots: number;

  /**
   * An empty column of `slots` slots (a power of two, at most `PAGE_SLOTS`), `width` values each,
   * whose pages `make(length)` makes, zeroed.
   */
  constructor(make: (length: number) => T, options: { width: number; slots: number }) {
    const { width, slots } = options;
    assert(Number.isSafeInteger(width) && width >= 1, `width ${width} must be a positive integer`);
    assert(
      slots >= 1 && slots <= PAGE_SLOTS && (slots & (slots - 1)) === 0,
      `a column starts with a power of two of slots, at most ${PAGE_SLOTS}`,
    );
    this.width = width;
    this.#make = make;
    this.#pages = [make(slots * width)];
    this.#slots = slots;
  }

  /** Slots the column has room for. */
  get slots(): number {
    return this.#slots;
  }

  /** Bytes of its pages. */
  get byteLength(): number {
    let bytes = 0;
    for (const page of this.#pages) bytes += page.byteLength;
    return bytes;
  }

  /** Makes room for more slots: the first page doubles up to `PAGE_SLOTS`, then a page is added. */
  grow(): void {
    if (this.#slots < PAGE_SLOTS) {
      const old = this.#pages[0];
      this.#pages[0] = grown(old, this.#make(2 * this.#slots * this.width));
      freeNow(old);
      this.#slots *= 2;
      return;
    }
    this.#pages.push(this.#make(PAGE_SLOTS * this.width));
    this.#slots += PAGE_SLOTS;
  }

  /** The page holding `slot`'s values (until the column grows: the first page is then freed). */
  page(slot: number): T {
    return this.#pages[slot >>> PAGE_SHIFT];
  }

  /** Where `slot`'s first value is in its page. */
  at(slot: number): number {
    return (slot & PAGE_MASK) * this.width;
  }

  /** Value `i` (of `width`) of `slot`. */
  get(slot: number, i = 0): number {
    return this.#pages[slot >>> PAGE_SHIFT][(slot & PAGE_MASK) * this.width + i];
  }

  /** Sets value `i` (of `width`) of `slot`. */
  set(slot: number, value: number, i = 0): void {
    this.#pages[slot >>> PAGE_SHIFT][(slot & PAGE_MASK) * this.width + i] = value;
  }
}
