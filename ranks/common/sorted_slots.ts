/**
 * The slots of a column store (`ManifestColumns`) in name order, kept without a full sort per
 * listing: a sorted array of slots made once, on the first walk, and kept in step after it. A name
 * added since goes into a small sorted side list; a removed one is marked stale where it stands in
 * the array (its slot may be reused at once for another name, whose place is elsewhere). The side
 * list is merged in, and stale entries dropped, once either grows past its bound: one pass over
 * the array without comparing names, plus a binary search per name merged. Pure: no I/O.
 *
 * Names compare by UTF-16 code units (JavaScript's `<`), the order `list` promises, here computed
 * from their UTF-8 bytes (`compareUtf8AsUtf16`).
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";
import { grown } from "./slot_table.ts";

/** Names added since the array was last merged that the side list holds at most. */
export const SORTED_SIDE_SLOTS_MAX = 1024;
/** Stale entries (names removed) the array holds at most before they are dropped. */
export const SORTED_STALE_SLOTS_MAX = 4096;
/** Room the array grows by when a merge overflows it, as a share of its length. */
export const SORTED_GROWTH = 1 / 8;
/**
 * Names a build in steps (`build()`) sorts or merges before it gives way to other work: a data
 * node's ~6.7 million names at ten million files sort for tens of seconds, longer than a node may
 * go without answering a heartbeat. A step is tens of milliseconds, and giving way costs ~2 ms
 * (a timer), so steps are not smaller. A store of at most this many names sorts in one go.
 */
export const SORT_STEP_NAMES = 65_536;
/** Builds in steps started over (a name was removed meanwhile) before one sorts in one go. */
export const SORT_BUILD_ATTEMPTS_MAX = 3;

/** A slot's place: in neither (free, or not yet placed), in the array, or in the side list. */
const OUT = 0;
const IN_ARRAY = 1;
const IN_SIDE = 2;

/** What the order asks of the store whose slots it sorts. */
export interface SlotNames {
  /** Slots ever used: every live slot is below it. */
  slotsUsed(): number;
  /** Whether `slot` holds a name now. */
  isLive(slot: number): boolean;
  /** Negative, zero or positive as the name in `a` sorts before, as, or after the one in `b`. */
  compare(a: number, b: number): number;
}

/**
 * The live slots of a store in name order. The store tells it of every slot that takes a new name
 * (`added`) and every slot freed (`removed`), after the change; until the first walk it keeps
 * nothing and those calls cost nothing.
 */
export class SortedSlots {
  #names: SlotNames;
  /** The sorted slots (stale ones among them), or undefined until the first walk. */
  #array: Uint32Array | undefined;
  #arrayLength = 0;
  /** Per slot: `OUT`, `IN_ARRAY` or `IN_SIDE`. */
  #places = new Uint8Array(0);
  /** Slots added since the last merge, sorted. */
  #side: number[] = [];
  /** Entries of the array whose slot is no longer `IN_ARRAY` there. */
  #stale = 0;
  /** A build in steps running: slots added meanwhile, and whether a name was removed. */
  #building: { added: number[]; dirty: boolean } | undefined;
  #buildDone: Promise<void> | undefined;

  constructor(names: SlotNames) {
    this.#names = names;
  }

  /** Whether the order is kept (a walk has happened since the last `reset`). */
  get built(): boolean {
    return this.#array !== undefined;
  }

  /** Bytes held: the array, the places and the side list. */
  get bytes(): number {
    return (this.#array?.byteLength ?? 0) + this.#places.byteLength + 8 * this.#side.length;
  }

  /** `slot` took a name it did not hold before. */
  added(slot: number): void {
    if (this.#building) return void this.#building.added.push(slot);
    if (this.#array === undefined) return;
    if (slot >= this.#places.length) {
      this.#places = grown(
        this.#places,
        new Uint8Array(Math.max(slot + 1, 2 * this.#places.length)),
      );
    }
    assert(this.#places[slot] !== IN_SIDE, "a slot added is not in the side list");
    const side = this.#side;
    let lo = 0;
    let hi = side.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#names.compare(side[mid], slot) < 0) lo = mid + 1;
      else hi = mid;
    }
    side.splice(lo, 0, slot);
    this.#places[slot] = IN_SIDE;
    if (side.length > SORTED_SIDE_SLOTS_MAX) this.#merge();
  }

  /** `slot` was freed (its name is gone; the slot may be reused). */
  removed(slot: number): void {
    if (this.#building) this.#building.dirty = true; // its comparisons may no longer hold
    if (this.#array === undefined) return;
    const place = this.#places[slot];
    this.#places[slot] = OUT;
    if (place === IN_SIDE) {
      this.#side.splice(this.#side.indexOf(slot), 1);
    } else if (place === IN_ARRAY && ++this.#stale > SORTED_STALE_SLOTS_MAX) {
      this.#merge();
    }
  }

  /** Forgets the order (the store was emptied); the next walk sorts again. */
  reset(): void {
    if (this.#building) this.#building.dirty = true;
    this.#array = undefined;
    this.#arrayLength = 0;
    this.#places = new Uint8Array(0);
    this.#side = [];
    this.#stale = 0;
  }

  /**
   * Calls `visit` with each live slot in name order, from the first whose name is not `below`
   * (which must hold of a leading run of the order) until `visit` returns false. The first walk
   * sorts every name; later ones cost a binary search and the slots visited. Neither `below` nor
   * `visit` may change the store.
   */
  walk(below: (slot: number) => boolean, visit: (slot: number) => boolean): void {
    if (this.#array === undefined) this.#build();
    const array = this.#array!;
    const side = this.#side;
    const places = this.#places;
    let i = this.#lowerBound(below);
    let j = lowerBound(side.length, (k) => below(side[k]));
    while (true) {
      while (i < this.#arrayLength && places[array[i]] !== IN_ARRAY) i++;
      const fromArray = i < this.#arrayLength;
      const fromSide = j < side.length;
      if (!fromArray && !fromSide) return;
      const takeSide = fromSide && (!fromArray || this.#names.compare(side[j], array[i]) < 0);
      if (!visit(takeSide ? side[j++] : array[i++])) return;
    }
  }

  /**
   * Builds the order unless it is built, `stepNames` (`SORT_STEP_NAMES`) at a time, awaiting
   * `giveWay` between steps so that other work goes on: blocks sorted, then merged in pairs. Names
   * may be added meanwhile (they join the side list once it is done); a name removed meanwhile
   * starts it over, and after `SORT_BUILD_ATTEMPTS_MAX` attempts it sorts in one go. Concurrent
   * calls share one build.
   */
  build(giveWay: () => Promise<void>, stepNames = SORT_STEP_NAMES): Promise<void> {
    if (this.#array !== undefined) return Promise.resolve();
    return this.#buildDone ??= this.#buildInSteps(giveWay, stepNames).finally(() => {
      this.#buildDone = undefined;
    });
  }

  async #buildInSteps(giveWay: () => Promise<void>, stepNames: number): Promise<void> {
    for (let attempt = 1; this.#array === undefined; attempt++) {
      if (attempt > SORT_BUILD_ATTEMPTS_MAX) return this.#build();
      const building = { added: [] as number[], dirty: false };
      this.#building = building;
      let sorted: { array: Uint32Array; length: number } | undefined;
      try {
        sorted = await this.#sortInSteps(giveWay, stepNames, building);
      } finally {
        if (this.#building === building) this.#building = undefined;
      }
      // A walk meanwhile may have sorted in one go (and taken what was added since).
      if (sorted === undefined || building.dirty || this.#array !== undefined) continue;
      this.#install(sorted.array, sorted.length);
      for (const slot of building.added) this.added(slot);
    }
  }

  /** The live slots sorted a step at a time; undefined if a name was removed meanwhile. */
  async #sortInSteps(
    giveWay: () => Promise<void>,
    stepNames: number,
    building: { dirty: boolean },
  ): Promise<{ array: Uint32Array; length: number } | undefined> {
    let [a, n]: [Uint32Array, number] = this.#liveSlots();
    const compare = (x: number, y: number) => this.#names.compare(x, y);
    for (let i = 0; i < n; i += stepNames) {
      a.subarray(i, Math.min(n, i + stepNames)).sort(compare);
      if (n <= stepNames) return { array: a, length: n };
      await giveWay();
      if (building.dirty) return undefined;
    }
    let b: Uint32Array = new Uint32Array(a.length);
    let steps = 0;
    for (let width = stepNames; width < n; width *= 2) {
      for (let lo = 0; lo < n; lo += 2 * width) {
        const mid = Math.min(lo + width, n);
        const hi = Math.min(lo + 2 * width, n);
        let [i, j, k] = [lo, mid, lo];
        while (i < mid && j < hi) {
          b[k++] = compare(a[j], a[i]) < 0 ? a[j++] : a[i++];
          if (++steps % stepNames !== 0) continue;
          await giveWay();
          if (building.dirty) return undefined;
        }
        while (i < mid) b[k++] = a[i++];
        while (j < hi) b[k++] = a[j++];
      }
      [a, b] = [b, a];
    }
    return { array: a, length: n };
  }

  /** Sorts every live slot into the array in one go. */
  #build(): void {
    if (this.#building) this.#building.dirty = true; // a build in steps running gives up
    this.#building = undefined;
    const [array, length] = this.#liveSlots();
    array.subarray(0, length).sort((a, b) => this.#names.compare(a, b));
    this.#install(array, length);
  }

  /** Every live slot, in slot order, and how many. */
  #liveSlots(): [Uint32Array, number] {
    const names = this.#names;
    const used = names.slotsUsed();
    let length = 0;
    for (let slot = 0; slot < used; slot++) if (names.isLive(slot)) length++;
    const array = new Uint32Array(Math.max(length, 1));
    length = 0;
    for (let slot = 0; slot < used; slot++) if (names.isLive(slot)) array[length++] = slot;
    return [array, length];
  }

  /** Takes `array` (`length` slots sorted) as the order; the side list and stale start empty. */
  #install(array: Uint32Array, length: number): void {
    this.#places = new Uint8Array(Math.max(this.#names.slotsUsed(), 1));
    for (let k = 0; k < length; k++) this.#places[array[k]] = IN_ARRAY;
    this.#array = array;
    this.#arrayLength = length;
    this.#side = [];
    this.#stale = 0;
  }

  /**
   * The position in the array from which to walk: no live entry before it is past `below`. A
   * probe that lands on a stale entry looks at the next live one (at most `SORTED_STALE_SLOTS_MAX`
   * entries on).
   */
  #lowerBound(below: (slot: number) => boolean): number {
    const array = this.#array!;
    const places = this.#places;
    let lo = 0;
    let hi = this.#arrayLength;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      let at = mid;
      while (at < hi && places[array[at]] !== IN_ARRAY) at++;
      if (at < hi && below(array[at])) lo = at + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Drops the stale entries and merges the side list into the array, in place: a binary search
   * per side slot, then one pass from the end moving runs of the array up to make room. A stale
   * entry's slot may sit in the side list (reused): it is dropped before the side list is marked
   * `IN_ARRAY`, so it never comes back as a second entry.
   */
  #merge(): void {
    const places = this.#places;
    let array = this.#array!;
    let length = 0;
    for (let r = 0; r < this.#arrayLength; r++) {
      const slot = array[r];
      if (places[slot] === IN_ARRAY) array[length++] = slot;
    }
    const side = this.#side;
    const total = length + side.length;
    if (total > array.length) {
      const slack = Math.ceil(array.length * SORTED_GROWTH); // a merge or so of room
      array = grown(array, new Uint32Array(total + slack));
    }
    const at = side.map((slot) =>
      lowerBound(length, (k) => this.#names.compare(array[k], slot) < 0)
    );
    let end = length;
    for (let k = side.length - 1; k >= 0; k--) {
      array.copyWithin(at[k] + k + 1, at[k], end);
      array[at[k] + k] = side[k];
      end = at[k];
    }
    for (const slot of side) places[slot] = IN_ARRAY;
    this.#array = array;
    this.#arrayLength = total;
    this.#side = [];
    this.#stale = 0;
  }
}

/** The first of `0..length` for which `below` is false (it holds of a leading run). */
function lowerBound(length: number, below: (k: number) => boolean): number {
  let lo = 0;
  let hi = length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (below(mid)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Compares two well-formed UTF-8 strings, `a[aStart..aEnd)` and `b[bStart..bEnd)`, in the order of
 * their UTF-16 code units: byte order, except that a character from U+E000 to U+FFFF (lead byte
 * 0xEE or 0xEF) sorts after one above U+FFFF (lead byte 0xF0 to 0xF4), whose UTF-16 form starts
 * with a surrogate (0xD800 to 0xDFFF). The first differing byte is a lead byte in both strings or
 * in neither, as the bytes before it are the same. Negative, zero or positive.
 */
export function compareUtf8AsUtf16(
  a: Uint8Array,
  aStart: number,
  aEnd: number,
  b: Uint8Array,
  bStart: number,
  bEnd: number,
): number {
  const length = Math.min(aEnd - aStart, bEnd - bStart);
  for (let i = 0; i < length; i++) {
    const x = a[aStart + i];
    const y = b[bStart + i];
    if (x !== y) return weightOf(x) - weightOf(y);
  }
  return (aEnd - aStart) - (bEnd - bStart);
}

/** A byte's weight in `compareUtf8AsUtf16`: the lead bytes 0xEE and 0xEF move past 0xF4. */
function weightOf(byte: number): number {
  return byte === 0xee || byte === 0xef ? byte + 0x10 : byte;
}
