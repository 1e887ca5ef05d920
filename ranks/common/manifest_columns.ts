/**
 * Manifests by name in columns instead of objects: what an index of a million files can afford.
 * In a `Map<string, Manifest>` a small file's manifest costs ~510 bytes of heap (the object, its
 * name, its sha256 in hex, an array of one chunk object with its id string and an array of ranks);
 * here ~125 (`bench/_manifest_memory.ts`, 1,000,000 files): its name as UTF-8 in a shared arena,
 * one entry in an open-addressing hash table, and one slot of typed-array columns (~87 bytes, of
 * which 32 are the sha256 and 16 the blob id). Pure: no I/O.
 *
 * A store holds the rest of each manifest (its sha256, chunks and attributes) in one of two ways:
 * in columns of its own (`InlineDetails`, rank 0's index), or elsewhere (`details: "elsewhere"`, a
 * data node's table, whose log has every manifest whole): then each slot holds, instead, a number
 * its owner sets (`whereAt()`: where the manifest's record is in the log), and ~50 bytes less.
 *
 * `get()` and the iterators make a new `Manifest` each time: equal to the one set (`assertEquals`),
 * never the same object, and changing it changes nothing here.
 *
 * @module
 */

import { NAME_BYTES_MAX } from "../../protocol/limits.ts";
import { assert, DfsError } from "../../protocol/errors.ts";
import { type Manifest, replicasOf } from "./manifest.ts";
import { hashOf } from "./hex_bytes.ts";
import { InlineDetails } from "./inline_details.ts";
import { freeNow, SlotTable } from "./slot_table.ts";
import { type ColumnArray, PagedColumn } from "./paged_column.ts";
import { SortedSlots } from "./sorted_slots.ts";
import { NameArena } from "./name_arena.ts";

export {
  NAMES_DEAD_BYTES_PER_SLOT,
  NAMES_SLAB_BYTES,
  NAMES_SLAB_BYTES_MIN,
  NAMES_SLABS_MAX,
} from "./name_arena.ts";

/** Slots of a new store; the columns grow from here as files are added (`PagedColumn`). */
export const MANIFEST_SLOTS_MIN = 16;
/** Most files one store holds (its sha256 column alone is then 2 GiB). */
export const MANIFEST_SLOTS_MAX = 2 ** 26;
/** Buckets of the hash table at least. */
export const TABLE_BUCKETS_MIN = 2 * MANIFEST_SLOTS_MIN;
/**
 * Fullest the hash table gets, in entries per bucket, before it doubles. At 0.75 a lookup probes
 * a few buckets more than at 0.5 (each bucket a slot number and 5 bits of its hash, compared
 * before the name), and a million names take 2^21 buckets (8 MiB) instead of 2^22.
 */
export const TABLE_LOAD_MAX = 0.75;
/** Emptiest the hash table gets, in entries per bucket, before it halves. */
export const TABLE_LOAD_MIN = 0.125;
export { RANK_INLINE_LIMIT, RANKS_INLINE_MAX } from "./inline_details.ts";
/**
 * Replicas a store with details elsewhere counts for a listing at most (7 bits of its flags); a
 * file on more is listed with this many.
 */
export const REPLICAS_COUNTED_MAX = 127;

/** Numbers per slot in `#numbers`: version, size, modified. */
const NUMBERS_PER_SLOT = 3;

/** The one flag of a slot's own; the other bits are its details' (`InlineDetails`). */
const FLAG_DELETED = 1;
/** With details elsewhere, the other 7 bits are the replicas (`replicasOf`). */
const REPLICAS_SHIFT = 1;

/** How a store holds the details of its manifests (see the module). */
export interface ManifestColumnsOptions {
  /** "inline" (the default): in columns here; "elsewhere": a number per slot instead. */
  details?: "inline" | "elsewhere";
}

/** A slot's name, version and the number its owner set, with details elsewhere. */
export interface ManifestPlace {
  name: string;
  version: number;
  where: number;
}

/** The fields of a manifest a listing needs, read without making the manifest. */
export interface ManifestSummary {
  name: string;
  version: number;
  size: number;
  modified: number;
  deleted: boolean;
  /** The fewest ranks any chunk is on; 0 without chunks (`replicasOf`). */
  replicas: number;
}

/** Which entries an iteration visits. */
export interface VisitOptions {
  /** Only names starting with this (default: every name). */
  prefix?: string;
  /** Visit tombstones (`deleted: true`) too; default true. */
  tombstones?: boolean;
}

const utf8 = new TextEncoder();

/**
 * Manifests keyed by name, one per name, in columns. Iteration goes in slot order, which is neither
 * insertion nor name order; an iteration sees each entry present throughout it once, as it is when
 * visited, and may or may not see entries set after it began. `forEachSummaryInOrder` walks them
 * in name order instead, a page at a time (`SortedSlots`: sorted on the first such walk, then
 * kept in step with every name added or removed).
 */
export class ManifestColumns {
  #size = 0;
  /** Slots ever used: every live slot is below it. */
  #slotsUsed = 0;
  /** The head of the free slot list, plus one (0: empty); the list runs through `#nameAt`. */
  #freeHead = 0;

  // Per slot (all made by `#reset()`). No hash: the table asks for one only when it moves an
  // entry, and hashing the name then costs less than 4 bytes a slot (`SlotKeys`).
  /** Arena address of the name (`NameArena`); for a free slot, the next free one. */
  #nameAt!: PagedColumn<Uint32Array>;
  /** UTF-8 bytes of the name; 0 for a free slot (names are never empty). */
  #nameBytes!: PagedColumn<Uint16Array>;
  #numbers!: PagedColumn<Float64Array>;
  #flags!: PagedColumn<Uint8Array>;
  /** Sha256, chunks and attributes, unless they are held elsewhere. */
  #details!: InlineDetails | undefined;
  /** With details elsewhere: the number the owner set (`setWhere()`). */
  #where!: PagedColumn<Float64Array> | undefined;
  readonly #inline: boolean;

  /** Name to slot; at most `TABLE_LOAD_MAX` full. */
  #table!: SlotTable;
  /** Each slot's hash while the table resizes (`#resizeTable()`). */
  #hashesNow: Uint32Array | undefined;

  #names!: NameArena;

  /** The name being looked up or added, as UTF-8 (see `#encode()`), and its length. */
  #scratch = new Uint8Array(NAME_BYTES_MAX);
  #scratchLength = 0;

  /** The live slots in name order, once a walk in order has asked for it. */
  #sorted = new SortedSlots({
    slotsUsed: () => this.#slotsUsed,
    isLive: (slot) => this.#nameBytes.get(slot) !== 0,
    compare: (a, b) => this.#compareNames(a, b),
  });

  constructor(options: ManifestColumnsOptions = {}) {
    this.#inline = (options.details ?? "inline") === "inline";
    this.#reset();
  }

  /** Entries held (tombstones included). */
  get size(): number {
    return this.#size;
  }

  /** Bytes of the columns, table and name arena (the side map of odd manifests not counted). */
  get bytes(): number {
    const table = this.#table.byteLength + this.#sorted.bytes + this.#names.byteLength;
    return this.#columns().reduce((sum, column) => sum + column.byteLength, table);
  }

  /** True if a manifest of `name` is held (a tombstone too). */
  has(name: string): boolean {
    return this.#slotOf(name) >= 0;
  }

  /**
   * A new copy of the manifest of `name`, or undefined if none is held.
   *
   * @throws {Error} an assertion with details elsewhere.
   */
  get(name: string): Manifest | undefined {
    const slot = this.#slotOf(name);
    return slot < 0 ? undefined : this.#manifestAt(slot, name);
  }

  /** With details elsewhere: the number set for `slot` (`setWhere()`; -1 until set). */
  whereAt(slot: number): number {
    assert(this.#where !== undefined, "a store with details inline has no where");
    return this.#where.get(slot);
  }

  /** With details elsewhere: sets the number of `slot`, the manifest's place elsewhere. */
  setWhere(slot: number, where: number): void {
    assert(this.#where !== undefined, "a store with details inline has no where");
    this.#where.set(slot, where);
  }

  /** The slot holding `name`, or -1: a number that stays the name's until it is deleted. */
  slotOf(name: string): number {
    return this.#slotOf(name);
  }

  /** The version of the manifest in `slot` (from `slotOf()` or `set()`). */
  versionAt(slot: number): number {
    return this.#numbers.get(slot);
  }

  /** The version of the manifest of `name`, without making it; undefined if none is held. */
  versionOf(name: string): number | undefined {
    const slot = this.#slotOf(name);
    return slot < 0 ? undefined : this.#numbers.get(slot);
  }

  /**
   * Holds a copy of `m`, replacing the manifest of `m.name` if there is one. Returns its slot.
   *
   * @throws {DfsError} `INVALID_REQUEST` for a name that is empty, not well-formed, or over
   *   `NAME_BYTES_MAX` UTF-8 bytes; `TOO_LARGE` if `MANIFEST_SLOTS_MAX` names are held already or
   *   the name arena is full.
   */
  set(m: Manifest): number {
    return this.#put(m, true);
  }

  /** Holds `m` in a new slot, or in the one of its name if `replace` (else it returns -1). */
  #put(m: Manifest, replace: boolean): number {
    const length = this.#encode(m.name);
    if (length <= 0) throw invalidName(m.name);
    const hash = hashOf(this.#scratch, length);
    const bucket = this.#table.find(hash);
    let slot = this.#table.slotIn(bucket);
    if (slot >= 0 && !replace) return -1;
    if (slot < 0) {
      this.#names.makeRoom(length, m.name); // first: what may throw comes before any change
      slot = this.#newSlot(m.name);
      this.#writeName(slot, length);
      this.#table.put(bucket, slot, hash);
      this.#sorted.added(slot);
      this.#size++;
      if (this.#size > this.#table.length * TABLE_LOAD_MAX) {
        this.#resizeTable(this.#table.length * 2);
      }
    }
    this.#writeFields(slot, m);
    return slot;
  }

  /**
   * Holds a copy of `m` if no manifest of `m.name` is held: its slot, or -1 (and nothing changed)
   * if one is. One lookup where `has()` then `set()` take two.
   *
   * @throws what `set()` throws.
   */
  insert(m: Manifest): number {
    return this.#put(m, false);
  }

  /** Drops the manifest of `name`; true if there was one. */
  delete(name: string): boolean {
    const length = this.#encode(name);
    if (length <= 0) return false;
    const bucket = this.#table.find(hashOf(this.#scratch, length));
    const slot = this.#table.slotIn(bucket);
    if (slot < 0) return false;
    this.#table.remove(bucket);
    this.#freeSlot(slot);
    this.#sorted.removed(slot);
    this.#size--;
    if (this.#size === 0) return this.#reset(), true;
    const buckets = this.#table.length;
    if (this.#size < buckets * TABLE_LOAD_MIN && buckets > TABLE_BUCKETS_MIN) {
      this.#resizeTable(buckets / 2);
    }
    // Freed names are at most about as many bytes as live ones, or a few per slot: compacting
    // costs one pass over the slots and names, paid for by the deletes since the last one.
    if (this.#names.wantsCompacting(this.#slotsUsed)) this.#compactNames();
    return true;
  }

  /**
   * Sorts the names for `forEachSummaryInOrder` unless they are sorted, a step at a time, awaiting
   * `giveWay` between steps (`SortedSlots.build`): a walk in order then costs no sort.
   */
  sortNames(giveWay: () => Promise<void>): Promise<void> {
    return this.#sorted.build(giveWay);
  }

  /** Drops every manifest and gives back the memory. */
  clear(): void {
    this.#reset();
  }

  /** A new copy of every manifest held (see the class for the order), made one at a time. */
  *values(options: VisitOptions = {}): Generator<Manifest> {
    const visit = this.#visitor(options);
    const end = this.#slotsUsed;
    for (let slot = 0; slot < Math.min(end, this.#slotsUsed); slot++) {
      const name = visit(slot);
      if (name !== undefined) yield this.#manifestAt(slot, name);
    }
  }

  /** With details elsewhere: every manifest's name, version and where (see the class's order). */
  *places(): Generator<ManifestPlace> {
    const end = this.#slotsUsed;
    for (let slot = 0; slot < Math.min(end, this.#slotsUsed); slot++) {
      const place = this.placeAt(slot);
      if (place !== undefined) yield place;
    }
  }

  /** Slots ever used since the store was last empty: every live slot is below it. */
  get slotsUsed(): number {
    return this.#slotsUsed;
  }

  /**
   * With details elsewhere: the name, version and where of the manifest in `slot`; undefined for
   * a free slot or one at or past `slotsUsed`: for a walk that needs each slot's number (a data
   * node's compaction follows what changes in each slot while it runs).
   */
  placeAt(slot: number): ManifestPlace | undefined {
    if (slot >= this.#slotsUsed || this.#nameBytes.get(slot) === 0) return undefined;
    return {
      name: this.#nameOf(slot),
      version: this.#numbers.get(slot),
      where: this.whereAt(slot),
    };
  }

  /** Every name held (see the class for the order). */
  *names(options: VisitOptions = {}): Generator<string> {
    const visit = this.#visitor(options);
    const end = this.#slotsUsed;
    for (let slot = 0; slot < Math.min(end, this.#slotsUsed); slot++) {
      const name = visit(slot);
      if (name !== undefined) yield name;
    }
  }

  /** Calls `fn` with the summary of every manifest held (see the class for the order). */
  forEachSummary(fn: (summary: ManifestSummary) => void, options: VisitOptions = {}): void {
    const visit = this.#visitor(options);
    const end = this.#slotsUsed;
    for (let slot = 0; slot < Math.min(end, this.#slotsUsed); slot++) {
      const name = visit(slot);
      if (name !== undefined) fn(this.#summaryAt(slot, name));
    }
  }

  /**
   * Calls `fn` with the summary of each manifest (tombstones too) whose name starts with `prefix`
   * (default: any) and sorts after `after` (exclusive), in UTF-16 code unit order, at most `limit`
   * of them; returns whether more such names remain. The first call sorts every name; later ones
   * cost a binary search and the entries visited, however names came and went between calls.
   * `fn` must not change the store.
   */
  forEachSummaryInOrder(
    fn: (summary: ManifestSummary) => void,
    visit: { prefix?: string; after?: string; limit: number },
  ): boolean {
    const { prefix = "", after, limit } = visit;
    // Start at the first name past `after`, or at the first with the prefix if that comes later.
    const below = after !== undefined && after >= prefix
      ? (slot: number) => this.#nameOf(slot) <= after
      : (slot: number) => this.#nameOf(slot) < prefix;
    let visited = 0;
    let more = false;
    this.#sorted.walk(below, (slot) => {
      const name = this.#nameOf(slot);
      if (!name.startsWith(prefix)) return false; // names with a prefix sort together
      if (visited === limit) {
        more = true;
        return false;
      }
      visited++;
      fn(this.#summaryAt(slot, name));
      return true;
    });
    return more;
  }

  #summaryAt(slot: number, name: string): ManifestSummary {
    const flags = this.#flags.get(slot);
    return {
      name,
      version: this.#numbers.get(slot, 0),
      size: this.#numbers.get(slot, 1),
      modified: this.#numbers.get(slot, 2),
      deleted: (flags & FLAG_DELETED) !== 0,
      replicas: this.#replicasAt(slot, flags),
    };
  }

  /** Compares the names in two live slots in UTF-16 code unit order, from their bytes. */
  #compareNames(a: number, b: number): number {
    return this.#names.compare(
      this.#nameAt.get(a),
      this.#nameBytes.get(a),
      this.#nameAt.get(b),
      this.#nameBytes.get(b),
    );
  }

  /** The name of a live slot the options select, or undefined. */
  #visitor(options: VisitOptions): (slot: number) => string | undefined {
    const tombstones = options.tombstones ?? true;
    const prefix = options.prefix ?? "";
    // A prefix that is not well-formed UTF-16 has no UTF-8 form to compare: compare strings.
    const bytes = prefix.isWellFormed() ? utf8.encode(prefix) : undefined;
    return (slot) => {
      const length = this.#nameBytes.get(slot);
      if (!length) return undefined;
      if (!tombstones && (this.#flags.get(slot) & FLAG_DELETED)) return undefined;
      if (bytes !== undefined && !this.#nameStartsWith(slot, bytes)) return undefined;
      const name = this.#nameOf(slot);
      return bytes !== undefined || name.startsWith(prefix) ? name : undefined;
    };
  }

  /** The slot of `name`, or -1. */
  #slotOf(name: string): number {
    const length = this.#encode(name);
    if (length <= 0) return -1;
    return this.#table.slotIn(this.#table.find(hashOf(this.#scratch, length)));
  }

  /** Puts `name` in `#scratch` as UTF-8; its length, or -1 if empty, ill-formed or too long. */
  #encode(name: string): number {
    if (name.length === 0 || name.length > NAME_BYTES_MAX || !name.isWellFormed()) return -1;
    const { read, written } = utf8.encodeInto(name, this.#scratch);
    this.#scratchLength = written;
    return read === name.length ? written : -1;
  }

  #nameIsScratch(slot: number, length: number): boolean {
    return this.#names.equals(this.#nameAt.get(slot), this.#scratch, length);
  }

  #nameStartsWith(slot: number, prefix: Uint8Array): boolean {
    return this.#names.startsWith(this.#nameAt.get(slot), this.#nameBytes.get(slot), prefix);
  }

  #nameOf(slot: number): string {
    return this.#names.decode(this.#nameAt.get(slot), this.#nameBytes.get(slot));
  }

  #newSlot(name: string): number {
    if (this.#freeHead !== 0) {
      const slot = this.#freeHead - 1;
      this.#freeHead = this.#nameAt.get(slot);
      return slot;
    }
    if (this.#slotsUsed === this.#flags.slots) this.#growSlots(name);
    return this.#slotsUsed++;
  }

  #freeSlot(slot: number): void {
    this.#names.free(this.#nameBytes.get(slot));
    this.#nameBytes.set(slot, 0);
    this.#flags.set(slot, 0);
    this.#details?.free(slot);
    this.#nameAt.set(slot, this.#freeHead);
    this.#freeHead = slot + 1;
  }

  #growSlots(name: string): void {
    if (this.#flags.slots === MANIFEST_SLOTS_MAX) {
      throw new DfsError(
        "TOO_LARGE",
        `Cannot hold "${name}": ${MANIFEST_SLOTS_MAX} files are held, the most one index holds`,
      );
    }
    for (const column of this.#columns()) column.grow();
  }

  /** Every column of the slots. */
  #columns(): PagedColumn<ColumnArray>[] {
    const own = [this.#nameAt, this.#nameBytes, this.#numbers, this.#flags];
    return [...own, ...this.#details?.columns ?? [this.#where!]];
  }

  #hashOf(slot: number): number {
    return this.#names.hash(this.#nameAt.get(slot), this.#nameBytes.get(slot));
  }

  /**
   * Resizes the table with every slot's hash worked out first, in slot order: the names are then
   * read in the order they lie in the arena, not in the table's (a cache miss each). A million
   * inserts took 4.10-4.26 s against 4.33-4.37 (`bench/_manifest_memory.ts`).
   */
  #resizeTable(buckets: number): void {
    const hashes = new Uint32Array(this.#slotsUsed);
    for (let slot = 0; slot < this.#slotsUsed; slot++) {
      if (this.#nameBytes.get(slot) !== 0) hashes[slot] = this.#hashOf(slot);
    }
    this.#hashesNow = hashes;
    try {
      this.#table.resize(buckets);
    } finally {
      this.#hashesNow = undefined;
      freeNow(hashes);
    }
  }

  /** Copies the name in `#scratch` to the end of the arena, which has room for it. */
  #writeName(slot: number, length: number): void {
    this.#nameAt.set(slot, this.#names.append(this.#scratch, length));
    this.#nameBytes.set(slot, length);
  }

  /** Copies every live name into a new arena, in slot order, leaving out freed ones. */
  #compactNames(): void {
    this.#names.compact({
      count: this.#slotsUsed,
      lengthOf: (slot) => this.#nameBytes.get(slot),
      addressOf: (slot) => this.#nameAt.get(slot),
      setAddress: (slot, address) => (this.#nameAt.set(slot, address)),
    });
  }

  /** Makes every column anew, empty and at its smallest. */
  #reset(): void {
    this.#sorted.reset();
    this.#size = 0;
    this.#slotsUsed = 0;
    this.#freeHead = 0;
    const slots = MANIFEST_SLOTS_MIN;
    this.#nameAt = new PagedColumn((n) => new Uint32Array(n), { width: 1, slots });
    this.#nameBytes = new PagedColumn((n) => new Uint16Array(n), { width: 1, slots });
    this.#numbers = new PagedColumn((n) => new Float64Array(n), { width: NUMBERS_PER_SLOT, slots });
    this.#flags = new PagedColumn((n) => new Uint8Array(n), { width: 1, slots });
    this.#details = this.#inline ? new InlineDetails(slots) : undefined;
    this.#where = this.#inline
      ? undefined
      : new PagedColumn((n) => new Float64Array(n).fill(-1), { width: 1, slots });
    this.#table = new SlotTable({
      hashAt: (slot) => this.#hashesNow?.[slot] ?? this.#hashOf(slot),
      holdsSought: (slot) =>
        this.#nameBytes.get(slot) === this.#scratchLength &&
        this.#nameIsScratch(slot, this.#scratchLength),
    }, TABLE_BUCKETS_MIN);
    this.#names = new NameArena();
  }

  /** Writes every field of `m` but its name into `slot`: its details too, if they are here. */
  #writeFields(slot: number, m: Manifest): void {
    const numbers = this.#numbers.page(slot);
    const at = this.#numbers.at(slot);
    numbers[at] = m.version;
    numbers[at + 1] = m.size;
    numbers[at + 2] = m.modified;
    const deleted = m.deleted ? FLAG_DELETED : 0;
    const flags = this.#details
      ? this.#details.write(slot, m)
      : Math.min(replicasOf(m), REPLICAS_COUNTED_MAX) << REPLICAS_SHIFT;
    this.#flags.set(slot, deleted | flags);
  }

  /** A new manifest from `slot`, whose name is `name`. */
  #manifestAt(slot: number, name: string): Manifest {
    assert(this.#details !== undefined, "a store with details elsewhere makes no manifest");
    const flags = this.#flags.get(slot);
    const numbers = this.#numbers.page(slot);
    const at = this.#numbers.at(slot);
    const [version, size, modified] = [numbers[at], numbers[at + 1], numbers[at + 2]];
    const head = { name, version, size, modified, deleted: (flags & FLAG_DELETED) !== 0 };
    return this.#details.read(slot, flags, head);
  }

  #replicasAt(slot: number, flags: number): number {
    return this.#details
      ? this.#details.replicasAt(slot, flags)
      : (flags & ~FLAG_DELETED) >>> REPLICAS_SHIFT;
  }
}

function invalidName(name: string): DfsError {
  const what = name.length === 0
    ? "the name is empty"
    : !name.isWellFormed()
    ? "the name is not well-formed UTF-16"
    : `the name is over the limit of ${NAME_BYTES_MAX} bytes`;
  return new DfsError(
    "INVALID_REQUEST",
    `Cannot hold a manifest of "${name.slice(0, 64)}": ${what}`,
  );
}
