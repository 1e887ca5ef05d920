/**
 * Chunk placement: each chunk goes to the data nodes holding the least data. Pure.
 *
 * @module
 */

import { assert, DfsError } from "../../protocol/errors.ts";

/**
 * Picks `replicas` distinct ranks, least bytes held first (ties to the lower rank), skipping ranks in
 * `exclude`.
 *
 * @throws {DfsError} `UNAVAILABLE` when fewer eligible ranks than `replicas` remain.
 */
export function chooseRanks(
  bytesHeld: ReadonlyMap<number, number>,
  replicas: number,
  options: { exclude?: ReadonlySet<number> } = {},
): number[] {
  assert(Number.isInteger(replicas) && replicas >= 1, "replicas is a positive integer");
  const eligible = [...bytesHeld].filter(([rank]) => !options.exclude?.has(rank));
  if (eligible.length < replicas) {
    throw new DfsError(
      "UNAVAILABLE",
      `Cannot place a chunk: ${replicas} replicas wanted, ${eligible.length} data nodes available`,
    );
  }
  eligible.sort(([rankA, bytesA], [rankB, bytesB]) => bytesA - bytesB || rankA - rankB);
  return eligible.slice(0, replicas).map(([rank]) => rank);
}

/** Bytes held (or reserved by uploads in flight) per data node, as rank 0 tracks them. */
export class LoadTracker {
  #bytes = new Map<number, number>();

  constructor(ranks: readonly number[]) {
    for (const rank of ranks) this.#bytes.set(rank, 0);
  }

  get bytesHeld(): ReadonlyMap<number, number> {
    return this.#bytes;
  }

  /** Places a chunk of `size` bytes and counts it against the chosen ranks at once. */
  place(size: number, replicas: number, exclude?: ReadonlySet<number>): number[] {
    const ranks = chooseRanks(this.#bytes, replicas, { exclude });
    for (const rank of ranks) this.add(rank, size);
    return ranks;
  }

  /** Sets the bytes a rank holds (after reconciling it). */
  set(rank: number, size: number): void {
    this.add(rank, size - (this.#bytes.get(rank) ?? 0));
  }

  /** Adds (or with a negative size, removes) bytes on a rank. */
  add(rank: number, size: number): void {
    const held = this.#bytes.get(rank);
    assert(held !== undefined, `rank ${rank} is a data node`);
    this.#bytes.set(rank, Math.max(0, held + size));
  }
}
