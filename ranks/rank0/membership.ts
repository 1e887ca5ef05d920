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

/** The zone of a node that names none (Workers of a server whose host name is unknown). */
export const DEFAULT_ZONE = "local";

/**
 * How a data node stands: `up`; `restarting` from the moment it is lost until its first restart
 * attempt fails; `down` while restarts keep failing (a failed disk, a folder that is gone);
 * `joining` for a remote node known to the cluster that has not connected since rank 0 started,
 * or that is connected and being reconciled.
 */
export type NodeState = "up" | "restarting" | "down" | "joining";

/** Where a data node runs: a Worker of rank 0's process, or a `dfs node` process over TCP. */
export type NodeKind = "worker" | "remote";

/** What rank 0 knows of a data node besides its state. */
export interface NodeInfo {
  kind: NodeKind;
  /** Its failure domain: replicas of a chunk go to different zones when they can. */
  zone: string;
  /** `HOST:PORT` it connects from (remote nodes, once connected). */
  address?: string;
  /** `HOST:PORT` of its data port, where clients read chunks directly (when it has one). */
  dataAddress?: string;
  /** Its data port speaks TLS. */
  dataTls?: boolean;
}

/** Why a node is down, and since when (monotonic ms). */
export interface DownReason {
  reason: string;
  sinceMs: number;
  /** A restart was tried and failed (the node's state is `down`, not `restarting`). */
  restartFailed: boolean;
  /** A remote node that has not connected since rank 0 started, or is being reconciled. */
  joining?: boolean;
}

/** The data nodes and which of them are down. */
export class Membership {
  #dataRanks: number[];
  #info = new Map<number, NodeInfo>();
  #heard = new Map<number, number>();
  #down = new Set<number>();
  #reasons = new Map<number, DownReason>();
  /** Releases a down node missed, by rank: handed back by `markUp()` to be sent. */
  #missed = new Map<number, Manifest[]>();
  #missedMax: number;

  /**
   * `dataRanks` are the data nodes known at start; `info` says what each is (default: a Worker
   * in zone `"local"`).
   */
  constructor(
    dataRanks: readonly number[],
    options: { missedReleasesMax?: number; info?: ReadonlyMap<number, NodeInfo> } = {},
  ) {
    assert(dataRanks.every((r) => Number.isInteger(r) && r > 0), "data ranks are 1 and up");
    this.#dataRanks = [...dataRanks].sort((a, b) => a - b);
    for (const rank of this.#dataRanks) {
      this.#info.set(rank, options.info?.get(rank) ?? { kind: "worker", zone: DEFAULT_ZONE });
    }
    this.#missedMax = options.missedReleasesMax ?? MISSED_RELEASES_MAX;
  }

  /** The data nodes, in rank order (it grows as remote nodes join). */
  get dataRanks(): readonly number[] {
    return this.#dataRanks;
  }

  /**
   * Adds a data node that was not known (a remote node joining for the first time), in state
   * `joining` until it is reconciled and marked up.
   */
  add(rank: number, info: NodeInfo, nowMs = 0): void {
    assert(Number.isInteger(rank) && rank > 0, "data ranks are 1 and up");
    assert(!this.#info.has(rank), `rank ${rank} is not a data node yet`);
    this.#dataRanks = [...this.#dataRanks, rank].sort((a, b) => a - b);
    this.#info.set(rank, info);
    this.markJoining(rank, "joining", nowMs);
  }

  /** Notes that the node answered a heartbeat at monotonic time `nowMs`. */
  heard(rank: number, nowMs: number): void {
    this.#heard.set(rank, nowMs);
  }

  /** When the node last answered a heartbeat (monotonic ms), if it ever did. */
  heardAt(rank: number): number | undefined {
    return this.#heard.get(rank);
  }

  /** What the node is (kind, zone, address). */
  infoOf(rank: number): NodeInfo | undefined {
    return this.#info.get(rank);
  }

  /**
   * Clients speak TLS to rank 0: the direct path then takes only data ports that speak TLS, and
   * otherwise only those that do not (`dataPortOf`).
   */
  dataTls = false;

  /** `HOST:PORT` of the node's data port, if it has one the direct path may use (`dataTls`). */
  dataPortOf(rank: number): string | undefined {
    const info = this.#info.get(rank);
    return (info?.dataTls === true) === this.dataTls ? info?.dataAddress : undefined;
  }

  /** The node's zone (`DEFAULT_ZONE` for a rank that is not a data node). */
  zoneOf(rank: number): string {
    return this.#info.get(rank)?.zone ?? DEFAULT_ZONE;
  }

  /** Updates what is known of a node (a remote node reconnecting from a new address). */
  setInfo(rank: number, info: NodeInfo): void {
    assert(this.#info.has(rank), `rank ${rank} is a data node`);
    this.#info.set(rank, info);
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
    return !this.#info.has(rank);
  }

  /** Down or gone: nothing can be read from it or sent to it now. */
  isLost(rank: number): boolean {
    return this.#down.has(rank) || this.isGone(rank);
  }

  /** How the node stands now. */
  stateOf(rank: number): NodeState {
    const down = this.#reasons.get(rank);
    if (!down) return "up";
    if (down.joining) return "joining";
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
    assert(this.#info.has(rank), `rank ${rank} is a data node`);
    if (this.#down.has(rank)) return false;
    this.#down.add(rank);
    this.#reasons.set(rank, { reason, sinceMs: nowMs, restartFailed: false });
    return true;
  }

  /**
   * Marks a node as joining (down until reconciled): a known remote node not yet connected, or
   * one connected and being reconciled. False if it was down already (its state becomes joining).
   */
  markJoining(rank: number, reason = "joining", nowMs = 0): boolean {
    assert(this.#info.has(rank), `rank ${rank} is a data node`);
    const fresh = !this.#down.has(rank);
    this.#down.add(rank);
    const sinceMs = this.#reasons.get(rank)?.sinceMs ?? nowMs;
    this.#reasons.set(rank, { reason, sinceMs, restartFailed: false, joining: true });
    return fresh;
  }

  /** A restart of a down node failed, for `reason`: it is `down` until one succeeds. */
  restartFailed(rank: number, reason: string): void {
    const down = this.#reasons.get(rank);
    if (down) this.#reasons.set(rank, { ...down, reason, restartFailed: true, joining: false });
  }

  /** Marks a reconciled node up again; returns the releases it missed meanwhile, to send. */
  markUp(rank: number): Manifest[] {
    this.#down.delete(rank);
    this.#reasons.delete(rank);
    const missed = this.#missed.get(rank) ?? [];
    this.#missed.delete(rank);
    return missed;
  }

  /** The releases `rank` missed so far, oldest first (a copy). */
  missedBy(rank: number): Manifest[] {
    return [...this.#missed.get(rank) ?? []];
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
