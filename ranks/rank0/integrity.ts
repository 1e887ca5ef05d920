/**
 * Integrity work over whole files: `fsck` checks every replica of every chunk now; the scrubber
 * does the same in the background at a bounded byte rate. Both repair what they can from a good
 * replica (`Replicas`) and say how each file stands.
 *
 * @module
 */

import type { FsckReport } from "../../protocol/messages.ts";
import type { Manifest } from "../common/manifest.ts";
import { forEachParallel } from "../common/parallel.ts";
import type { Clock } from "../env/env.ts";
import type { FileIndex } from "./file_index.ts";
import type { NodeClient } from "./node_client.ts";
import type { Releases } from "./releases.ts";
import type { Replicas } from "./replicas.ts";

/** Files `fsck` checks at a time. */
export const FSCK_FILES_PARALLEL_MAX = 8;
/**
 * What the scrubber charges against its byte rate for reading one replica of a chunk smaller than
 * this: a read costs a round trip to a data node and a log or file access whatever its size, so a
 * store of small files is scrubbed at a bounded number of reads per second, not thousands.
 */
export const SCRUB_READ_COST_BYTES_MIN = 64 * 1024;
/** Problems the scrubber remembers for `status` (the oldest are dropped). */
export const SCRUB_PROBLEMS_KEPT_MAX = 1000;

/** How a file stands after a check, from best to worst. */
export type FileHealth = "healthy" | "repaired" | "underReplicated" | "lost";
const HEALTH_ORDER: readonly FileHealth[] = ["healthy", "repaired", "underReplicated", "lost"];

/** The bytes the scrubber charges for checking every replica of `m` (`SCRUB_READ_COST_BYTES_MIN`). */
export function scrubCostBytes(m: Manifest): number {
  let cost = 0;
  for (const chunk of m.chunks) {
    cost += chunk.ranks.length * Math.max(chunk.size, SCRUB_READ_COST_BYTES_MIN);
  }
  return cost;
}

/** fsck and the scrubber. */
export class Integrity {
  /** What the background scrubber has done since start. */
  readonly scrubbed: {
    passes: number;
    bytes: number;
    problems: { name: string; outcome: FileHealth; at: number }[];
  } = { passes: 0, bytes: 0, problems: [] };
  #index: FileIndex;
  #nodes: NodeClient;
  #releases: Releases;
  #replicas: Replicas;
  #clock: Clock;

  constructor(
    parts: {
      index: FileIndex;
      nodes: NodeClient;
      releases: Releases;
      replicas: Replicas;
      clock: Clock;
    },
  ) {
    this.#index = parts.index;
    this.#nodes = parts.nodes;
    this.#releases = parts.releases;
    this.#replicas = parts.replicas;
    this.#clock = parts.clock;
  }

  /**
   * Checks every replica of every chunk of every file (reading and checking each against its CRC32)
   * and repairs what it can from a good replica. Lost: some chunk has no good replica left.
   */
  async fsck(): Promise<FsckReport> {
    const report: FsckReport = {
      files: 0,
      chunks: 0,
      bytesChecked: 0,
      healthy: 0,
      repaired: [],
      underReplicated: [],
      lost: [],
    };
    await forEachParallel([...this.#index.values()], FSCK_FILES_PARALLEL_MAX, async (m) => {
      const outcome = await this.checkFile(m, report);
      report.files++;
      if (outcome === "healthy") report.healthy++;
      else report[outcome].push(m.name);
    });
    for (const list of [report.repaired, report.underReplicated, report.lost]) list.sort();
    return report;
  }

  /**
   * The background scrubber: re-reads every replica of every chunk, at most `bytesPerSec`, repairs
   * what it finds, and starts over after `pauseMs`. Stops when `signal` aborts.
   */
  async scrub(
    options: { bytesPerSec: number; pauseMs: number; signal: AbortSignal },
  ): Promise<void> {
    const { bytesPerSec, pauseMs, signal } = options;
    while (!signal.aborted) {
      for (const m of [...this.#index.values()]) {
        if (signal.aborted) return;
        if (this.#index.get(m.name) !== m) continue; // replaced meanwhile
        const report = { bytesChecked: 0, chunks: 0 };
        const outcome = await this.checkFile(m, report);
        this.scrubbed.bytes += report.bytesChecked;
        const problems = this.scrubbed.problems;
        if (outcome !== "healthy") problems.push({ name: m.name, outcome, at: this.#clock.now() });
        if (problems.length > SCRUB_PROBLEMS_KEPT_MAX) problems.shift();
        await this.#sleep((1000 * scrubCostBytes(m)) / bytesPerSec, signal);
      }
      this.scrubbed.passes++;
      await this.#sleep(pauseMs, signal);
    }
  }

  /** Checks one file's replicas, repairing bad ones; says how the file stands. */
  async checkFile(
    m: Manifest,
    counts: { bytesChecked: number; chunks: number },
  ): Promise<FileHealth> {
    const key = this.#releases.pin(m); // keep the chunks while we look
    let outcome: FileHealth = "healthy";
    const worse = (o: FileHealth) => {
      if (HEALTH_ORDER.indexOf(o) > HEALTH_ORDER.indexOf(outcome)) outcome = o;
    };
    try {
      for (const chunk of m.chunks) {
        counts.chunks++;
        const { good, damaged, unreachable } = await this.#replicas.check(chunk, counts);
        if (!good) {
          worse("lost");
          continue;
        }
        if (damaged.length > 0) {
          const fixed = await this.#replicas.restore(chunk, good, damaged);
          worse(fixed ? "repaired" : "underReplicated");
        }
        if (unreachable.length > 0) worse("underReplicated");
        this.#nodes.recycle(good);
      }
    } finally {
      this.#releases.unpin(key);
    }
    return outcome;
  }

  /** Waits `ms`, or less if `signal` aborts. */
  #sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        this.#clock.clearTimeout(timer);
        signal.removeEventListener("abort", wake);
        resolve();
      };
      const timer = this.#clock.setTimeout(wake, ms);
      signal.addEventListener("abort", wake);
    });
  }
}
