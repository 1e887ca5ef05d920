/**
 * Replicas of one chunk: checking them, and rewriting the bad ones from a good one. Read repair,
 * fsck, the scrubber, reconciling a restarted node and re-replication all copy chunks through
 * here, and keep one pair of counters of what was found and fixed.
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";
import type { ChunkRef, FileVersion } from "../common/manifest.ts";
import { isDamaged } from "../common/replication.ts";
import type { Log } from "../env/env.ts";
import type { CallOptions, NodeClient } from "./node_client.ts";

/** What a check of every replica of a chunk found. */
export interface ChunkCheck {
  /** Good bytes, if any replica had them (recycle them when done). */
  good?: Uint8Array;
  /** Ranks whose replica is corrupted or missing. */
  damaged: number[];
  /** Ranks that could not be asked (down, timed out). */
  unreachable: number[];
}

/** Checks and repairs replicas through the node client; counts what it finds and fixes. */
export class Replicas {
  /** Replicas rewritten from a good copy since start. */
  repairs = 0;
  /** Replicas found corrupted (bad CRC32 or size) or missing since start. */
  damagedFound = 0;
  #nodes: NodeClient;
  #log: Log;

  constructor(nodes: NodeClient, log: Log) {
    this.#nodes = nodes;
    this.#log = log;
  }

  /** Notes a replica found damaged by a read. */
  noteDamaged(): void {
    this.damagedFound++;
  }

  /**
   * Reads `chunk` of `file` from each of its ranks; returns good bytes (if any) and which failed
   * how.
   */
  async check(
    chunk: ChunkRef,
    file: FileVersion | undefined,
    counts: { bytesChecked: number },
  ): Promise<ChunkCheck> {
    const result: ChunkCheck = { damaged: [], unreachable: [] };
    for (const rank of chunk.ranks) {
      try {
        const bytes = await this.#nodes.read(rank, chunk, file);
        counts.bytesChecked += bytes.length;
        if (result.good) this.#nodes.recycle(bytes);
        else result.good = bytes;
      } catch (error) {
        if (isDamaged(error)) {
          result.damaged.push(rank);
          this.damagedFound++;
        } else result.unreachable.push(rank);
      }
    }
    return result;
  }

  /** Rewrites `chunk` on `ranks` from `good` and waits; true if every one was rewritten. */
  async restore(
    chunk: ChunkRef,
    good: Uint8Array,
    ranks: readonly number[],
    options: CallOptions = {},
  ): Promise<boolean> {
    const results = await Promise.allSettled(
      ranks.map((rank) => this.#nodes.restore(rank, chunk, this.#nodes.copy(good), options)),
    );
    this.repairs += results.filter((r) => r.status === "fulfilled").length;
    return results.every((r) => r.status === "fulfilled");
  }

  /** Rewrites `chunk` on `ranks` from `good` in the background (read repair), and says so. */
  repairInBackground(chunk: ChunkRef, good: Uint8Array, ranks: readonly number[]): void {
    void this.restore(chunk, good, ranks).then((all) => {
      const where = `chunk ${chunk.id} on ranks ${ranks.join(", ")}`;
      this.#log.error(
        all ? `dfs: repaired ${where} from a good replica` : `dfs: cannot repair ${where}`,
      );
    });
  }

  /**
   * Copies `chunk` of `file` (undefined for one not committed yet: a node finds a small file's
   * chunk through its commit record) from a good replica among `sources` to `targets`: the one
   * way a replica is made anew (reconcile, re-replication). False if no source has a good replica.
   *
   * @throws {DfsError} `UNAVAILABLE` if a target cannot take it.
   */
  async copy(
    chunk: ChunkRef,
    file: FileVersion | undefined,
    sources: readonly number[],
    targets: readonly number[],
    options: CallOptions = {},
  ): Promise<boolean> {
    const from = { ...chunk, ranks: [...sources] };
    const { good } = await this.check(from, file, { bytesChecked: 0 });
    if (!good) return false;
    try {
      if (await this.restore(chunk, good, targets, options)) return true;
      throw new DfsError(
        "UNAVAILABLE",
        `Cannot copy chunk ${chunk.id} to rank${targets.length > 1 ? "s" : ""} ${
          targets.join(", ")
        }`,
      );
    } finally {
      this.#nodes.recycle(good);
    }
  }
}
