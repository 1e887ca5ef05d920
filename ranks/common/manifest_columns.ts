/**
 * Manifests by name in columns instead of objects: what an index of a million files can afford.
 * In a `Map<string, Manifest>` a small file's manifest costs ~510 bytes of heap (the object, its
 * name, its sha256 in hex, an array of one chunk object with its id string and an array of ranks);
 * here ~125 (`bench/_manifest_memory.ts`, 1,000,000 files): its name as UTF-8 in a shared arena,
 * one entry in an open-addressing hash table, and one slot of typed-array columns (~91 bytes, of
 * which 32 are the sha256 and 16 the blob id). Pure: no I/O.
 *
 * The common case is held inline: a file of at most one chunk whose id is `<blob>-0`, on at most
 * `RANKS_INLINE_MAX` ranks below `RANK_INLINE_LIMIT`, with a sha256 in lower-case hex (or none) and
 * no attributes. What does not fit (several chunks, a chunk at another offset, attributes, an odd
 * sha256) is kept as a copy in a side map, next to the inline fields; such files are few or large.
 *
 * `get()` and the iterators make a new `Manifest` each time: equal to the one set (`assertEquals`),
 * never the same object, and changing it changes nothing here.
 *
 * @module
 */

import { NAME_BYTES_MAX } from "../../protocol/limits.ts";
import { DfsError } from "../../protocol/errors.ts";
import type { ChunkRef, FileAttrs, Manifest } from "./manifest.ts";
import { hashOf, hexOf, parseHex } from "./hex_bytes.ts";
import { SlotTable } from "./slot_table.ts";
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
 * a few buckets more than at 0.5 (each bucket a slot number; the slot's hash is compared before
 * its name), and a million names take 2^21 buckets (8 MiB) instead of 2^22.
 */
export const TABLE_LOAD_MAX = 0.75;
/** Emptiest the hash table gets, in entries per bucket, before it halves. */
export const TABLE_LOAD_MIN = 0.125;
/** Ranks of a chunk held inline at most; a chunk on more goes to the side map. */
export const RANKS_INLINE_MAX = 4;
/** Ranks held inline are below this (one byte each); a chunk on a higher one goes to the side. */
export const RANK_INLINE_LIMIT = 256;

const SHA256_BYTES = 32;
const BLOB_BYTES = 16;
/** Numbers per slot in `#numbers`: version, size, modified. */
const NUMBERS_PER_SLOT = 3;

const FLAG_DELETED = 1;
/** The slot has an entry in the side map (chunks, attrs or sha256 that do not fit inline). */
const FLAG_EXTRA = 2;
/** The file has one chunk, held inline: blob id, ranks, maybe a CRC32; its size is the file's. */
const FLAG_CHUNK = 4;
const FLAG_CRC32 = 8;
const FLAG_SHA256_EMPTY = 16;
/** The inline chunk's rank count is kept in the top 3 bits of the flags (`RANKS_INLINE_MAX`). */
const RANKS_SHIFT = 5;

/** What a slot holds beyond its columns: copies, never the caller's objects. */
interface Extra {
  sha256?: string;
  chunks?: ChunkRef[];
  attrs?: FileAttrs;
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

  // Per slot (all made by `#reset()`).
  #hashes!: PagedColumn<Uint32Array>;
  /** Arena address of the name (`NameArena`); for a free slot, the next free one. */
  #nameAt!: PagedColumn<Uint32Array>;
  /** UTF-8 bytes of the name; 0 for a free slot (names are never empty). */
  #nameBytes!: PagedColumn<Uint16Array>;
  #numbers!: PagedColumn<Float64Array>;
  #sha256!: PagedColumn<Uint8Array>;
  #blobs!: PagedColumn<Uint8Array>;
  #crc32!: PagedColumn<Uint32Array>;
  #ranks!: PagedColumn<Uint8Array>;
  #flags!: PagedColumn<Uint8Array>;
  #extras!: Map<number, Extra>;

  /** Name to slot; at most `TABLE_LOAD_MAX` full. */
  #table!: SlotTable;

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

  constructor() {
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

  /** A new copy of the manifest of `name`, or undefined if none is held. */
  get(name: string): Manifest | undefined {
    const slot = this.#slotOf(name);
    return slot < 0 ? undefined : this.#manifestAt(slot, name);
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
      this.#hashes.set(slot, hash);
      this.#writeName(slot, length);
      this.#table.put(bucket, slot);
      this.#sorted.added(slot);
      this.#size++;
      if (this.#size > this.#table.length * TABLE_LOAD_MAX) {
        this.#table.resize(this.#table.length * 2);
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
      this.#table.resize(buckets / 2);
    }
    // Freed names are at most about as many bytes as live ones, or a few per slot: compacting
    // costs one pass over the slots and names, paid for by the deletes since the last one.
    if (this.#names.wantsCompacting(this.#slotsUsed)) this.#compactNames();
    return true;
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
    this.#extras.delete(slot);
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
    return [
      this.#hashes,
      this.#nameAt,
      this.#nameBytes,
      this.#numbers,
      this.#sha256,
      this.#blobs,
      this.#crc32,
      this.#ranks,
      this.#flags,
    ];
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
    this.#hashes = new PagedColumn((n) => new Uint32Array(n), { width: 1, slots });
    this.#nameAt = new PagedColumn((n) => new Uint32Array(n), { width: 1, slots });
    this.#nameBytes = new PagedColumn((n) => new Uint16Array(n), { width: 1, slots });
    this.#numbers = new PagedColumn((n) => new Float64Array(n), { width: NUMBERS_PER_SLOT, slots });
    this.#sha256 = new PagedColumn((n) => new Uint8Array(n), { width: SHA256_BYTES, slots });
    this.#blobs = new PagedColumn((n) => new Uint8Array(n), { width: BLOB_BYTES, slots });
    this.#crc32 = new PagedColumn((n) => new Uint32Array(n), { width: 1, slots });
    this.#ranks = new PagedColumn((n) => new Uint8Array(n), { width: RANKS_INLINE_MAX, slots });
    this.#flags = new PagedColumn((n) => new Uint8Array(n), { width: 1, slots });
    this.#extras = new Map();
    this.#table = new SlotTable({
      hashAt: (slot) => this.#hashes.get(slot),
      holdsSought: (slot) =>
        this.#nameBytes.get(slot) === this.#scratchLength &&
        this.#nameIsScratch(slot, this.#scratchLength),
    }, TABLE_BUCKETS_MIN);
    this.#names = new NameArena();
  }

  /** Writes every field of `m` but its name into `slot`: inline what fits, the rest aside. */
  #writeFields(slot: number, m: Manifest): void {
    const numbers = this.#numbers.page(slot);
    const at = this.#numbers.at(slot);
    numbers[at] = m.version;
    numbers[at + 1] = m.size;
    numbers[at + 2] = m.modified;
    let flags = m.deleted ? FLAG_DELETED : 0;
    const extra: Extra = {};
    if (m.sha256 === "") flags |= FLAG_SHA256_EMPTY;
    else if (
      m.sha256.length !== 2 * SHA256_BYTES ||
      !parseHex(m.sha256, SHA256_BYTES, this.#sha256.page(slot), this.#sha256.at(slot))
    ) extra.sha256 = m.sha256;
    if (m.chunks.length === 1 && this.#writeChunk(slot, m.chunks[0], m.size)) {
      const chunk = m.chunks[0];
      flags |= FLAG_CHUNK | (chunk.ranks.length << RANKS_SHIFT);
      if (chunk.crc32 !== undefined) flags |= FLAG_CRC32;
    } else if (m.chunks.length > 0) extra.chunks = m.chunks.map(copyChunk);
    if (m.attrs !== undefined) extra.attrs = { ...m.attrs };
    if (extra.sha256 !== undefined || extra.chunks || extra.attrs) {
      flags |= FLAG_EXTRA;
      this.#extras.set(slot, extra);
    } else this.#extras.delete(slot);
    this.#flags.set(slot, flags);
  }

  /** Writes `chunk` inline if it fits (see the module); false if it does not. */
  #writeChunk(slot: number, chunk: ChunkRef, fileSize: number): boolean {
    const { id, ranks, crc32 } = chunk;
    if (chunk.size !== fileSize || ranks.length > RANKS_INLINE_MAX) return false;
    if (crc32 !== undefined && (crc32 >>> 0) !== crc32) return false;
    for (const rank of ranks) {
      if (!(Number.isInteger(rank) && rank >= 0 && rank < RANK_INLINE_LIMIT)) return false;
    }
    // `<blob>-0`: 32 lower-case hex digits, a dash, a zero.
    if (id.length !== 2 * BLOB_BYTES + 2 || !id.endsWith("-0")) return false;
    if (!parseHex(id, BLOB_BYTES, this.#blobs.page(slot), this.#blobs.at(slot))) return false;
    this.#ranks.page(slot).set(ranks, this.#ranks.at(slot));
    this.#crc32.set(slot, crc32 ?? 0);
    return true;
  }

  /** A new manifest from `slot`, whose name is `name`. */
  #manifestAt(slot: number, name: string): Manifest {
    const flags = this.#flags.get(slot);
    const extra = flags & FLAG_EXTRA ? this.#extras.get(slot) : undefined;
    const numbers = this.#numbers.page(slot);
    const at = this.#numbers.at(slot);
    const size = numbers[at + 1];
    const m: Manifest = {
      name,
      version: numbers[at],
      size,
      sha256: extra?.sha256 ??
        (flags & FLAG_SHA256_EMPTY
          ? ""
          : hexOf(this.#sha256.page(slot), this.#sha256.at(slot), SHA256_BYTES)),
      modified: numbers[at + 2],
      chunks: flags & FLAG_CHUNK
        ? [this.#chunkAt(slot, flags, size)]
        : extra?.chunks
        ? extra.chunks.map(copyChunk)
        : [],
    };
    if (flags & FLAG_DELETED) m.deleted = true;
    if (extra?.attrs) m.attrs = { ...extra.attrs };
    return m;
  }

  #chunkAt(slot: number, flags: number, size: number): ChunkRef {
    const id = hexOf(this.#blobs.page(slot), this.#blobs.at(slot), BLOB_BYTES) + "-0";
    const ranks: number[] = [];
    const count = flags >>> RANKS_SHIFT;
    for (let i = 0; i < count; i++) ranks.push(this.#ranks.get(slot, i));
    return flags & FLAG_CRC32
      ? { id, size, ranks, crc32: this.#crc32.get(slot) }
      : { id, size, ranks };
  }

  #replicasAt(slot: number, flags: number): number {
    if (flags & FLAG_CHUNK) return flags >>> RANKS_SHIFT;
    const chunks = flags & FLAG_EXTRA ? this.#extras.get(slot)?.chunks : undefined;
    if (!chunks) return 0;
    let fewest = Infinity;
    for (const chunk of chunks) fewest = Math.min(fewest, chunk.ranks.length);
    return fewest;
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

function copyChunk(chunk: ChunkRef): ChunkRef {
  const { id, size, ranks, crc32 } = chunk;
  return crc32 === undefined
    ? { id, size, ranks: [...ranks] }
    : { id, size, ranks: [...ranks], crc32 };
}
