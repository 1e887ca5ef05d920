/**
 * Chunk placement: the replicas of a chunk go to different zones (failure domains) whenever more
 * than one zone has an eligible node, and within a zone to the node holding the least data. With
 * one zone, simply the least loaded nodes. Pure.
 *
 * @module
 */

import { assert, DfsError } from "../../protocol/errors.ts";

/** Gives the zone (failure domain) of a data node. */
export type ZoneOf = (rank: number) => string;

/** What `chooseRanks()` must avoid, and how it knows zones. */
export interface PlacementOptions {
  /** Ranks that may not take a replica (down, or lacking room). */
  exclude?: ReadonlySet<number>;
  /**
   * Ranks that already hold a replica of the chunk: they are excluded, and their zones count as
   * used (a copy made elsewhere prefers another zone).
   */
  holders?: readonly number[];
  /** The zone of each rank; without it every rank is in one zone. */
  zoneOf?: ZoneOf;
}

/**
 * Picks `replicas` distinct ranks, greedily: each next one is the least loaded eligible rank (ties
 * to the lower rank) in a zone that no chosen rank or holder is in; only when no such zone has an
 * eligible rank, the least loaded eligible rank anywhere. Ranks in `exclude` or `holders` are not
 * eligible. Without `zoneOf` (or with every rank in one zone) this is the least loaded ranks.
 *
 * @throws {DfsError} `UNAVAILABLE` when fewer eligible ranks than `replicas` remain.
 */
export function chooseRanks(
  bytesHeld: ReadonlyMap<number, number>,
  replicas: number,
  options: PlacementOptions = {},
): number[] {
  assert(Number.isInteger(replicas) && replicas >= 1, "replicas is a positive integer");
  const holders = options.holders ?? [];
  const eligible = [...bytesHeld].filter(([rank]) =>
    !options.exclude?.has(rank) && !holders.includes(rank)
  );
  if (eligible.length < replicas) {
    throw new DfsError(
      "UNAVAILABLE",
      `Cannot place a chunk: ${replicas} replicas wanted, ${eligible.length} data nodes available`,
    );
  }
  eligible.sort(([rankA, bytesA], [rankB, bytesB]) => bytesA - bytesB || rankA - rankB);
  const ranks = eligible.map(([rank]) => rank);
  const { zoneOf } = options;
  if (!zoneOf) return ranks.slice(0, replicas);
  return spreadOverZones(ranks, replicas, zoneOf, holders);
}

/** Takes `replicas` of `ranks` (least loaded first), each in a zone not used yet while one is. */
function spreadOverZones(
  ranks: number[],
  replicas: number,
  zoneOf: ZoneOf,
  holders: readonly number[],
): number[] {
  const used = new Set(holders.map(zoneOf));
  const chosen: number[] = [];
  while (chosen.length < replicas) {
    const i = Math.max(0, ranks.findIndex((rank) => !used.has(zoneOf(rank))));
    const [rank] = ranks.splice(i, 1);
    used.add(zoneOf(rank));
    chosen.push(rank);
  }
  return chosen;
}

/**
 * Bytes held (or reserved by uploads in flight) per data node, as rank 0 tracks them; places
 * chunks over zones when given `zoneOf`.
 */
export class LoadTracker {
  #bytes = new Map<number, number>();
  #zoneOf?: ZoneOf;

  /**
   * `ranks` are the data nodes known at start (more join through `addRank()`); `zoneOf` gives the
   * zone of any of them (default: all in one zone).
   */
  constructor(ranks: readonly number[], options: { zoneOf?: ZoneOf } = {}) {
    for (const rank of ranks) this.addRank(rank);
    this.#zoneOf = options.zoneOf;
  }

  get bytesHeld(): ReadonlyMap<number, number> {
    return this.#bytes;
  }

  /**
   * Places a chunk of `size` bytes on `replicas` ranks not in `exclude` (see `chooseRanks()`) and
   * counts it against them at once.
   *
   * @throws {DfsError} `UNAVAILABLE` when fewer eligible ranks than `replicas` remain.
   */
  place(size: number, replicas: number, exclude?: ReadonlySet<number>): number[] {
    const ranks = chooseRanks(this.#bytes, replicas, { exclude, zoneOf: this.#zoneOf });
    for (const rank of ranks) this.add(rank, size);
    return ranks;
  }

  /** Registers a data node that joined (holding 0 bytes until it is reconciled). */
  addRank(rank: number): void {
    assert(Number.isInteger(rank) && rank > 0, "data ranks are 1 and up");
    assert(!this.#bytes.has(rank), `rank ${rank} is not a data node yet`);
    this.#bytes.set(rank, 0);
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
