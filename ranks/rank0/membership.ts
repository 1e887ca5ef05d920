/**
 * Which data nodes are up, in one place: a node is down from the moment it is lost (crashed, hung,
 * or failing) until it has been restarted and reconciled; meanwhile nothing is sent to it, reads
 * fail over, new chunks go elsewhere, and the releases it misses are kept (bounded) to send once
 * it is back.
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";
import type { Manifest } from "../common/manifest.ts";

/**
 * Releases kept for a data node that is down, to send once it is back (beyond this, the next
 * start-up cleans up instead).
 */
export const MISSED_RELEASES_MAX = 10_000;

/**
 * How a data node stands: `up`; `restarting` from the moment it is lost until its first restart
 * attempt fails; `down` while restarts keep failing (a failed disk, a folder that is gone).
 */
export type NodeState = "up" | "restarting" | "down";

/** Why a node is down, and since when (monotonic ms). */
export interface DownReason {
  reason: string;
  sinceMs: number;
  /** A restart was tried and failed (the node's state is `down`, not `restarting`). */
  restartFailed: boolean;
}

/** The data nodes and which of them are down. */
export class Membership {
  readonly dataRanks: readonly number[];
  #down = new Set<number>();
  #reasons = new Map<number, DownReason>();
  /** Releases a down node missed, by rank: handed back by `markUp()` to be sent. */
  #missed = new Map<number, Manifest[]>();
  #missedMax: number;

  constructor(dataRanks: readonly number[], options: { missedReleasesMax?: number } = {}) {
    assert(dataRanks.every((r) => Number.isInteger(r) && r > 0), "data ranks are 1 and up");
    this.dataRanks = dataRanks;
    this.#missedMax = options.missedReleasesMax ?? MISSED_RELEASES_MAX;
  }

  /** The data nodes down now. */
  get down(): ReadonlySet<number> {
    return this.#down;
  }

  isDown(rank: number): boolean {
    return this.#down.has(rank);
  }

  /**
   * A rank that held data once but is not a data node now (the server was started with fewer
   * ranks): what it held is under-replicated for good.
   */
  isGone(rank: number): boolean {
    return !this.dataRanks.includes(rank);
  }

  /** Down or gone: nothing can be read from it or sent to it now. */
  isLost(rank: number): boolean {
    return this.#down.has(rank) || this.isGone(rank);
  }

  /** How the node stands now. */
  stateOf(rank: number): NodeState {
    const down = this.#reasons.get(rank);
    if (!down) return "up";
    return down.restartFailed ? "down" : "restarting";
  }

  /** Why the node is down, while it is. */
  reasonOf(rank: number): DownReason | undefined {
    return this.#reasons.get(rank);
  }

  /**
   * Marks a node down for `reason`, at monotonic time `nowMs`; false if it already was (someone
   * else is bringing it back).
   */
  markDown(rank: number, reason = "lost", nowMs = 0): boolean {
    assert(this.dataRanks.includes(rank), `rank ${rank} is a data node`);
    if (this.#down.has(rank)) return false;
    this.#down.add(rank);
    this.#reasons.set(rank, { reason, sinceMs: nowMs, restartFailed: false });
    return true;
  }

  /** A restart of a down node failed, for `reason`: it is `down` until one succeeds. */
  restartFailed(rank: number, reason: string): void {
    const down = this.#reasons.get(rank);
    if (down) this.#reasons.set(rank, { ...down, reason, restartFailed: true });
  }

  /** Marks a reconciled node up again; returns the releases it missed meanwhile, to send. */
  markUp(rank: number): Manifest[] {
    this.#down.delete(rank);
    this.#reasons.delete(rank);
    const missed = this.#missed.get(rank) ?? [];
    this.#missed.delete(rank);
    return missed;
  }

  /**
   * Keeps a release that could not reach a down node, to send once it is back (a reconcile
   * running meanwhile may have kept the version). False if the node is up or too many are kept.
   */
  missRelease(rank: number, m: Manifest): boolean {
    if (!this.#down.has(rank)) return false;
    const missed = this.#missed.get(rank) ?? [];
    if (missed.length >= this.#missedMax) return false;
    missed.push(m);
    this.#missed.set(rank, missed);
    return true;
  }
}
