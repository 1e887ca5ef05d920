/**
 * What a data node's table holds at one moment, frozen for a compaction without copying it: the
 * few manifests held whole, and for the rest which slot of the table's columns holds them. The
 * compaction reads their records back from the old log later, a step at a time, giving way
 * between steps, while commits and releases go on changing the table. A slot about to change
 * before the walk reaches it first hands over what it held at the freeze (its name, version and
 * where its record is: the old file stays readable), so the walk writes exactly what the table
 * held; a slot that changes after it was written is not placed in the new log (what changed it
 * is appended there after the rewritten records). Pure: records are read through the function
 * given.
 *
 * @module
 */

import { assert, DfsError } from "../../protocol/errors.ts";
import type { Manifest } from "../common/manifest.ts";
import type { ManifestColumns } from "../common/manifest_columns.ts";
import type { KeptManifest } from "./log_rewrite.ts";

/**
 * Manifests a data node reads back from its log between giving way, in a compaction and in a
 * piece of a scan: the thread must answer heartbeats (rank 0 takes a node silent for
 * `HEARTBEAT_TIMEOUT_MS` for down), and a table of millions takes many seconds to read back
 * whole. A step of 8,192 small files took 50-80 ms here (a compaction of 1.5 million: each record
 * read back, decoded, copied and framed anew).
 */
export const TABLE_STEP_MANIFESTS = 8192;

/**
 * Reads version `version` of `name` back from its record at `where`, with its chunk's bytes if
 * that record holds the ones the node keeps (a view that holds until the next read); `carried`:
 * read from a slot that says its record carries them (`ManifestTable.carry()`).
 *
 * @throws {DfsError} `CORRUPTED` if the record is damaged or holds no such manifest.
 */
export type ReadKept = (
  name: string,
  version: number,
  where: number,
  carried: boolean,
) => KeptManifest;

/** A slot's state in the walk. Pending: not reached yet, and unchanged since the freeze. */
const PENDING = 0;
/**
 * Not written from the slot: free or held whole at the freeze, changed before the walk reached it,
 * or damaged.
 */
const SKIPPED = 1;
/** Written, and unchanged since: it goes where it was written. */
const WRITTEN = 2;
/** Written, then changed: what holds the slot now is not what was written. */
const CHANGED = 3;

/** A manifest known by its name, frozen whole or handed over by its slot. */
interface Named {
  name: string;
  version: number;
  /** Where its record is in the old log; -1 for one frozen whole. */
  where: number;
  /** Where its record went in the new log, once written. */
  placed?: number;
}

/** The table's manifests at the freeze: see the module. Made by `ManifestTable.freeze()`. */
export class TableSnapshot {
  #columns: ManifestColumns;
  #whole: Manifest[];
  /** Slots below this were in use at the freeze. */
  #end: number;
  #state: Uint8Array;
  /** Where each slot's manifest went in the new log (valid for `WRITTEN` slots). */
  #placed: Float64Array;
  /** Where the chunk bytes its record carries went in the new log, or -1 (`WRITTEN` slots). */
  #placedData: Float64Array;
  /** Whether a slot's record carries its chunk's bytes (`ManifestTable.carry()`). */
  #carried: (slot: number) => boolean;
  /** Manifests handed over by slots that changed before the walk reached them, not yet read. */
  #handedOver: Named[] = [];
  /** Manifests written by name (frozen whole, handed over). */
  #named: Named[] = [];
  /** What was yielded last: a slot, or a manifest written by name. */
  #current: number | Named | undefined;
  #walked = false;

  /**
   * The columns of the newest versions as they are now, every manifest held whole, and which
   * slots' records carry their chunk's bytes.
   */
  constructor(columns: ManifestColumns, whole: Manifest[], carried: (slot: number) => boolean) {
    this.#columns = columns;
    this.#whole = whole;
    this.#carried = carried;
    this.#end = columns.slotsUsed;
    this.#state = new Uint8Array(this.#end);
    this.#placed = new Float64Array(this.#end);
    this.#placedData = new Float64Array(this.#end);
  }

  /**
   * `slot`, live, is about to change (replaced, placed, or freed); `name` is its name. Before
   * the walk reaches it, it hands over what it held if that was in the log. Written already,
   * it returns where the chunk bytes its record carries went in the new log, if they did: the
   * slot will not say so once the new log is the log.
   */
  changing(slot: number, name: string): number | undefined {
    if (slot >= this.#end) return undefined;
    const state = this.#state[slot];
    if (state === WRITTEN) {
      this.#state[slot] = CHANGED;
      const dataAt = this.#placedData[slot];
      return dataAt >= 0 ? dataAt : undefined;
    }
    if (state !== PENDING) return undefined;
    this.#state[slot] = SKIPPED;
    const where = this.#columns.whereAt(slot);
    // Held whole at the freeze: among the manifests frozen whole.
    if (where < 0) return undefined;
    this.#handedOver.push({ name, version: this.#columns.versionAt(slot), where });
    return undefined;
  }

  /** `slot`, free, was just filled: the walk leaves it out. */
  filled(slot: number): void {
    if (slot >= this.#end) return;
    const state = this.#state[slot];
    this.#state[slot] = state === WRITTEN ? CHANGED : state === PENDING ? SKIPPED : state;
  }

  /**
   * Every manifest frozen, read as it is taken (records through `read`), awaiting `giveWay`
   * every `stepManifests` slots walked or records read. A damaged record is left out and told to
   * `damaged` (in its slot, still unchanged, if it had one: the caller may drop it). Tell
   * `placed()` where each one goes before taking the next.
   *
   * @throws what `read` throws but `CORRUPTED`.
   */
  async *manifests(read: ReadKept, options: {
    giveWay: () => Promise<void>;
    damaged: (name: string, version: number, where: number) => void;
    stepManifests?: number;
  }): AsyncGenerator<KeptManifest> {
    assert(!this.#walked, "a snapshot is walked once");
    this.#walked = true;
    const step = options.stepManifests ?? TABLE_STEP_MANIFESTS;
    let steps = 0;
    const stepped = async () => {
      if (++steps % step === 0) await options.giveWay();
    };
    for (const manifest of this.#whole) {
      const { name, version } = manifest;
      this.#current = this.#addNamed({ name, version, where: -1 });
      yield { manifest };
      await stepped();
    }
    this.#whole = [];
    for (let slot = 0; slot < this.#end; slot++) {
      if (this.#state[slot] !== PENDING) continue;
      const place = this.#columns.placeAt(slot);
      if (place === undefined || place.where < 0) {
        this.#state[slot] = SKIPPED; // free, or held whole: frozen above
      } else {
        // Written before it is read: dropping a damaged one changes it, and must not hand it over.
        this.#state[slot] = WRITTEN;
        const carried = this.#carried(slot);
        const { name, version, where } = place;
        const kept = this.#read(read, name, version, where, carried, options.damaged);
        if (kept === undefined) {
          this.#state[slot] = SKIPPED;
        } else {
          this.#current = slot;
          yield kept;
        }
      }
      await stepped();
      yield* this.#readHandedOver(read, options.damaged);
    }
    yield* this.#readHandedOver(read, options.damaged);
    this.#current = undefined;
  }

  /**
   * The manifest taken last goes at `where` in the new log, with the bytes of its one chunk at
   * `dataAt` if its record carries them. True if its slot will say so once the new log is the
   * log (it was taken from a slot): the owner then need not keep their place by the chunk's id.
   */
  placed(where: number, dataAt?: number): boolean {
    const current = this.#current;
    assert(current !== undefined, "a manifest was taken");
    if (typeof current !== "number") {
      current.placed = where;
      return false;
    }
    this.#placed[current] = where;
    this.#placedData[current] = dataAt ?? -1;
    return dataAt !== undefined;
  }

  /**
   * Once the new log is the log: places each manifest written from a slot unchanged since, moves
   * every other slot whose record was appended while the rewrite ran (at or past `tailFrom` in the
   * old log) by `shift`, as the new log holds it after the rewritten records, then calls `place`
   * for each manifest written by name (`ManifestTable.place()`, which checks it is still the
   * version held). Call it with the snapshot no longer told of changes, before any record is
   * placed in the new log.
   */
  placeAll(
    table: {
      place: (name: string, version: number, where: number) => void;
      /** Where in `slot`'s record its chunk's bytes start, if it carries them; else 0. */
      carries: (slot: number, offset: number) => void;
    },
    moved: { tailFrom: number; shift: number },
  ): void {
    const [columns, state, placed] = [this.#columns, this.#state, this.#placed];
    const { tailFrom, shift } = moved;
    const end = columns.slotsUsed;
    for (let slot = 0; slot < end; slot++) {
      if (slot < this.#end && state[slot] === WRITTEN) {
        columns.setWhere(slot, placed[slot]);
        const dataAt = this.#placedData[slot];
        table.carries(slot, dataAt >= 0 ? dataAt - placed[slot] : 0);
      } else {
        // Held whole (-1), free (whatever it says), or in the tail; nothing else is in the old log.
        const where = columns.whereAt(slot);
        if (where >= tailFrom) columns.setWhere(slot, where + shift);
      }
    }
    for (const { name, version, placed } of this.#named) {
      if (placed !== undefined) table.place(name, version, placed);
    }
  }

  /** Reads the manifests handed over so far, one at a time. */
  *#readHandedOver(
    read: ReadKept,
    damaged: (name: string, version: number, where: number) => void,
  ): Generator<KeptManifest> {
    while (this.#handedOver.length > 0) {
      const named = this.#handedOver.pop()!;
      const kept = this.#read(read, named.name, named.version, named.where, false, damaged);
      if (kept === undefined) continue;
      this.#current = this.#addNamed(named);
      yield kept;
    }
  }

  #read(
    read: ReadKept,
    name: string,
    version: number,
    where: number,
    carried: boolean,
    damaged: (name: string, version: number, where: number) => void,
  ): KeptManifest | undefined {
    try {
      return read(name, version, where, carried);
    } catch (error) {
      if (!(error instanceof DfsError && error.code === "CORRUPTED")) throw error;
      damaged(name, version, where);
      return undefined;
    }
  }

  #addNamed(named: Named): Named {
    this.#named.push(named);
    return named;
  }
}
