/**
 * Pins and releases: a version's stored data stays while a reader (or a check) has it pinned; once
 * superseded and unpinned, it is released on every node holding it. A release a down node misses
 * is kept for it (`Membership`) and sent when it is back.
 *
 * @module
 */

import { holdersOf, type Manifest } from "../common/manifest.ts";
import type { Log } from "../env/env.ts";
import type { NodeClient } from "./node_client.ts";
import type { LoadTracker } from "./placement.ts";

/** What identifies a version's stored data: its first chunk's id (chunk ids are never reused). */
export function dataKey(m: Manifest): string {
  return m.chunks[0]?.id ?? `${m.name}\0${m.version}`;
}

/** Pins on stored data and the releases of superseded versions. */
export class Releases {
  #nodes: NodeClient;
  #loads: LoadTracker;
  #log: Log;
  /** Open readers per stored data, keyed by `dataKey` (a rename keeps the data, so the key). */
  #pins = new Map<string, number>();
  /** Superseded versions waiting for their readers to finish, by `dataKey`. */
  #retiring = new Map<string, Manifest>();

  constructor(parts: { nodes: NodeClient; loads: LoadTracker; log: Log }) {
    this.#nodes = parts.nodes;
    this.#loads = parts.loads;
    this.#log = parts.log;
  }

  /** Pins a version's stored data so that a later overwrite does not release it; returns its key. */
  pin(m: Manifest): string {
    const key = dataKey(m);
    this.#pins.set(key, (this.#pins.get(key) ?? 0) + 1);
    return key;
  }

  /** Drops one pin; the last one out releases the data if it was superseded meanwhile. */
  unpin(key: string): void {
    const left = this.#pins.get(key)! - 1;
    if (left > 0) return void this.#pins.set(key, left);
    this.#pins.delete(key);
    const retired = this.#retiring.get(key);
    if (retired) {
      this.#retiring.delete(key);
      void this.#release(retired);
    }
  }

  /** A version is no longer current: release it now, or once its last reader is done. */
  retire(m: Manifest): void {
    const key = dataKey(m);
    if (this.#pins.has(key)) this.#retiring.set(key, m);
    else void this.#release(m);
  }

  /** Sends the releases a node missed while it was down (it has just been marked up). */
  resend(rank: number, missed: readonly Manifest[]): void {
    for (const m of missed) {
      this.#nodes.release(rank, m).catch((error) => this.#cannot(m, rank, error));
    }
  }

  async #release(m: Manifest): Promise<void> {
    for (const c of m.chunks) for (const rank of c.ranks) this.#loads.add(rank, -c.size);
    const membership = this.#nodes.membership;
    await Promise.all([...holdersOf(m)].map(async (rank) => {
      try {
        await this.#nodes.release(rank, m);
      } catch (error) {
        // Decided as each call fails, not once all have: the node may be back up by then.
        if (membership.missRelease(rank, m)) return; // a reconcile now may have kept it
        if (!membership.isDown(rank)) {
          // Back up since the call failed (its reconcile may have kept the version): once more.
          await this.#nodes.release(rank, m).catch((again) => this.#cannot(m, rank, again));
        } else this.#cannot(m, rank, error);
      }
    }));
  }

  #cannot(m: Manifest, rank: number, error: unknown): void {
    // Not lost: the next start-up drops superseded versions.
    this.#log.error(`dfs: cannot release "${m.name}" v${m.version} on rank ${rank}: ${error}`);
  }
}
