/**
 * Chunk buffers in memory shared with this process's Workers. A chunk an upload sends to two
 * data nodes that are Workers here is copied once into a slot, and both nodes write it from
 * there, straight to disk (the slots are page-aligned, as direct I/O wants): no copy for the
 * second replica, none on the nodes, no buffer moved back and forth.
 *
 * A slot is given back only once every node it was sent to has answered. One whose call failed
 * (a timeout, a node that went down) may still be read by its node, so it is set aside for good:
 * the pool shrinks by one, and when it is empty uploads copy chunks as before.
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";
import { sharedAlignedBuffers } from "../env/env.ts";

/** A slot of shared memory: a view of `slotBytes`, page-aligned. */
export type SharedSlot = Uint8Array<SharedArrayBuffer>;

/** Slots of `slotBytes` each, `slotsMax` of them, allocated together on first use. */
export class SharedSlots {
  readonly slotBytes: number;
  readonly slotsMax: number;
  #free: SharedSlot[] | undefined;
  #setAsideCount = 0;

  constructor(slotBytes: number, options: { slotsMax: number }) {
    assert(slotBytes > 0 && options.slotsMax >= 0, "slot sizes are positive");
    this.slotBytes = slotBytes;
    this.slotsMax = options.slotsMax;
  }

  /** Free slots now. */
  get free(): number {
    return this.#free?.length ?? this.slotsMax;
  }

  /** Slots set aside after a failed call. */
  get setAsideCount(): number {
    return this.#setAsideCount;
  }

  /** A free slot (its contents stale), or undefined if none is free. */
  take(): SharedSlot | undefined {
    if (this.slotsMax === 0) return undefined;
    this.#free ??= sharedAlignedBuffers(this.slotsMax, this.slotBytes).reverse();
    return this.#free.pop();
  }

  /** Gives a slot back once no node will read it any more. */
  give(slot: SharedSlot): void {
    assert(this.#free !== undefined && this.#free.length < this.slotsMax, "a slot comes back once");
    this.#free.push(slot);
  }

  /** Sets a slot aside for good: a node may still read it (its call failed). */
  setAside(_slot: SharedSlot): void {
    this.#setAsideCount++;
  }
}
