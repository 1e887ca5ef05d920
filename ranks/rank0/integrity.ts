/**
 * Integrity work over the whole store: `fsck` checks every data node's log and every replica of
 * every chunk now; the scrubber does the same in the background at a bounded byte rate. Both
 * repair what they can (a damaged log is rewritten from its node's memory, a bad replica from a
 * good one; fsck also re-replicates what lost nodes held) and say how each file stands.
 *
 * @module
 */

import type { FsckReport } from "../../protocol/messages.ts";
import type { Manifest } from "../common/manifest.ts";
import { forEachParallel } from "../common/parallel.ts";
import { holdersOf } from "../common/manifest.ts";
import type { LogCheck } from "../common/node_protocol.ts";
import type { Clock } from "../env/env.ts";
import type { FileIndex } from "./file_index.ts";
import type { Health } from "./health.ts";
import type { NodeClient } from "./node_client.ts";
import type { Releases } from "./releases.ts";
import type { Replicas } from "./replicas.ts";

/** Files `fsck` checks at a time. */
export const FSCK_FILES_PARALLEL_MAX = 8;
/**
 * Names fsck takes from the index at a time (`FileIndex.namePages`), checking them
 * `FSCK_FILES_PARALLEL_MAX` at a time before it takes the next page: ~1.4 ms of rank 0's thread
 * to make (~0.35 us a name) and ~150 KiB held, where all ten million names at once held the
 * thread for seconds (0.8 s at two million) and took hundreds of MiB. A page is 512 files per
 * lane, so lanes waiting for the last few files of a page cost about 1% of fsck's time.
 */
export const FSCK_PAGE_FILES = 4096;
/**
 * What the scrubber charges against its byte rate for reading one replica of a chunk smaller than
 * this: a read costs a round trip to a data node and a log or file access whatever its size, so a
 * store of small files is scrubbed at a bounded number of reads per second, not thousands.
 */
export const SCRUB_READ_COST_BYTES_MIN = 64 * 1024;
/**
 * Client operations in the last second over which the server counts as busy, and the scrubber
 * waits before its next file (what Ceph's `osd_scrub_load_threshold` does with the load average).
 * Slow calls under a scrub are stalls of rank 0's one thread, which serves every client too, so the
 * scrubber keeps out of the way of clients at work; 50 a second is above what a person's commands
 * and the dashboard make (a few a second, so a store in such use is scrubbed at full rate) and far
 * below any scripted load (one client's back-to-back `meta` calls make thousands a second, tiny
 * puts hundreds). The default of `--scrub-busy-ops-per-sec`.
 */
export const SCRUB_BUSY_OPS_PER_SEC_MAX = 50;
/**
 * How often a scrubber that waits for a busy server looks again: it starts within this of the load
 * stopping, and looking (a few array reads) ten times a second costs nothing.
 */
export const SCRUB_BUSY_WAIT_MS = 100;
/**
 * Longest the scrubber waits for a busy server after one step of a pass (its log checks, a file),
 * so a pass always moves on: a server busy all the time is scrubbed at about 2 files a second
 * (against ~128 a second at the default rate on tiny files, 1/64 of the work), and a store of a
 * million files under constant load still gets a whole pass in about 6 days, within the week Ceph
 * allows between deep scrubs (`osd_deep_scrub_interval`).
 */
export const SCRUB_DEFER_MS_MAX = 500;
/** Problems the scrubber remembers for `status` (the oldest are dropped). */
export const SCRUB_PROBLEMS_KEPT_MAX = 1000;
/**
 * How long fsck waits for a node that its log check failed (a log cut under it) to be restarted
 * and reconciled before it checks the files, so that it reports the store as the restart left it.
 */
export const FSCK_RESTART_WAIT_MS = 30_000;
/** How often fsck looks whether such a node is back. */
const FSCK_RESTART_POLL_MS = 100;

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

/** What the scrubber asks of the server's client load (rank 0's `Throughput`). */
export interface RecentOps {
  /** Client operations in about the last 1000 ms. */
  opsLastSecond(): number;
}

/**
 * Waits while `load` says more than `opsPerSecMax` client operations in the last second, looking
 * again every `SCRUB_BUSY_WAIT_MS`, for at most `SCRUB_DEFER_MS_MAX` (so an always-busy server
 * still gets scrubbed, slowly), or less if `signal` aborts. Resolves with the ms waited (0, at
 * once, if the server is not busy). Time comes from `clock` only.
 */
export async function waitWhileBusy(
  load: RecentOps,
  options: { clock: Clock; opsPerSecMax: number; signal: AbortSignal },
): Promise<number> {
  const { clock, opsPerSecMax, signal } = options;
  const start = clock.monotonic();
  let waitedMs = 0;
  while (!signal.aborted && waitedMs < SCRUB_DEFER_MS_MAX && load.opsLastSecond() > opsPerSecMax) {
    await sleepFor(clock, Math.min(SCRUB_BUSY_WAIT_MS, SCRUB_DEFER_MS_MAX - waitedMs), signal);
    waitedMs = clock.monotonic() - start;
  }
  return waitedMs;
}

/** Waits `ms` on `clock`, or less if `signal` aborts. */
function sleepFor(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const wake = () => {
      clock.clearTimeout(timer);
      signal.removeEventListener("abort", wake);
      resolve();
    };
    const timer = clock.setTimeout(wake, ms);
    signal.addEventListener("abort", wake);
  });
}

/** fsck and the scrubber. */
export class Integrity {
  /** What the background scrubber has done since start. */
  readonly scrubbed: {
    passes: number;
    bytes: number;
    /** Ms it waited for a busy server (`SCRUB_BUSY_OPS_PER_SEC_MAX`). */
    deferredMs: number;
    problems: { name: string; outcome: FileHealth; at: number }[];
  } = { passes: 0, bytes: 0, deferredMs: 0, problems: [] };
  #index: FileIndex;
  #nodes: NodeClient;
  #releases: Releases;
  #replicas: Replicas;
  #health: Health;
  #rereplicateFile: (name: string, rank: number) => Promise<number>;
  #clock: Clock;
  #load: RecentOps;

  constructor(
    parts: {
      index: FileIndex;
      nodes: NodeClient;
      releases: Releases;
      replicas: Replicas;
      health: Health;
      /** Moves a file's replicas on a lost rank to live nodes; resolves with the chunks copied. */
      rereplicateFile: (name: string, rank: number) => Promise<number>;
      clock: Clock;
      /** The client load the scrubber gives way to. */
      load: RecentOps;
    },
  ) {
    this.#health = parts.health;
    this.#rereplicateFile = parts.rereplicateFile;
    this.#index = parts.index;
    this.#nodes = parts.nodes;
    this.#releases = parts.releases;
    this.#replicas = parts.replicas;
    this.#clock = parts.clock;
    this.#load = parts.load;
  }

  /**
   * Checks every live data node's log (`checkLogs`), then every replica of every chunk of every
   * file (reading and checking each against its CRC32), repairs what it can from a good replica,
   * and re-replicates what nodes that are gone or stay down held. Lost: some chunk has no good
   * replica left. The files are taken from the index `pageFiles` names at a time (default
   * `FSCK_PAGE_FILES`; tests make it small): each file present throughout is checked once.
   */
  async fsck(options: { pageFiles?: number } = {}): Promise<FsckReport> {
    const report: FsckReport = {
      files: 0,
      chunks: 0,
      bytesChecked: 0,
      healthy: 0,
      repaired: [],
      underReplicated: [],
      lost: [],
    };
    const logs = await this.checkLogs();
    report.logs = logs.map(({ bytes: _, ...check }) => check);
    const failed = logs.filter((check) => check.missingBytes > 0).map((check) => check.rank);
    if (failed.length > 0) {
      // The node has taken itself for failed; its answer to a ping tells the supervisor at once.
      await Promise.allSettled(failed.map((rank) => this.#nodes.ping(rank, FSCK_RESTART_WAIT_MS)));
      await this.#waitUp(failed, FSCK_RESTART_WAIT_MS);
    }
    // A page of names at a time, not copies of every manifest nor every name at once: each file
    // is looked up when its turn comes (the index makes a new copy per lookup), and skipped if
    // removed meanwhile. A file present throughout is in one page (`FileIndex.namePages`).
    for (const page of this.#index.namePages(options.pageFiles ?? FSCK_PAGE_FILES)) {
      await forEachParallel(page, FSCK_FILES_PARALLEL_MAX, async (name) => {
        const m = this.#index.get(name);
        if (!m) return;
        const outcome = await this.checkFile(m, report, { rereplicate: true });
        report.files++;
        if (outcome === "healthy") report.healthy++;
        else report[outcome].push(m.name);
      });
    }
    for (const list of [report.repaired, report.underReplicated, report.lost]) list.sort();
    return report;
  }

  /**
   * The background scrubber: re-reads every replica of every chunk, at most `bytesPerSec`, repairs
   * what it finds, and starts over after `pauseMs`. After each step (a pass's log checks, each
   * file, the pause) it gives way to clients: it waits while the last second saw more than
   * `busyOpsPerSecMax` (default `SCRUB_BUSY_OPS_PER_SEC_MAX`) client operations, at most
   * `SCRUB_DEFER_MS_MAX` each time (see `waitWhileBusy`). Stops when `signal` aborts.
   */
  async scrub(
    options: {
      bytesPerSec: number;
      pauseMs: number;
      busyOpsPerSecMax?: number;
      signal: AbortSignal;
    },
  ): Promise<void> {
    const { bytesPerSec, pauseMs, signal } = options;
    const opsPerSecMax = options.busyOpsPerSecMax ?? SCRUB_BUSY_OPS_PER_SEC_MAX;
    /**
     * Waits `ms`, then while the server is busy. The next file is looked up after it, never held
     * through the wait (it could be removed and its chunks released meanwhile).
     */
    const rest = async (ms: number) => {
      await sleepFor(this.#clock, ms, signal);
      const waited = await waitWhileBusy(this.#load, { clock: this.#clock, opsPerSecMax, signal });
      this.scrubbed.deferredMs += waited;
    };
    while (!signal.aborted) {
      let logBytes = 0;
      for (const check of await this.checkLogs()) logBytes += check.bytes;
      await rest((1000 * logBytes) / bytesPerSec);
      // Each manifest is made as its turn comes, so it is the current version then (the index
      // gives copies: a snapshot of them all would hold every file's manifest for the whole pass).
      for (const m of this.#index.values()) {
        if (signal.aborted) return;
        const report = { bytesChecked: 0, chunks: 0 };
        const outcome = await this.checkFile(m, report);
        this.scrubbed.bytes += report.bytesChecked;
        const problems = this.scrubbed.problems;
        if (outcome !== "healthy") problems.push({ name: m.name, outcome, at: this.#clock.now() });
        if (problems.length > SCRUB_PROBLEMS_KEPT_MAX) problems.shift();
        await rest((1000 * scrubCostBytes(m)) / bytesPerSec);
      }
      this.scrubbed.passes++;
      await rest(pauseMs);
    }
  }

  /**
   * Has every live data node re-read and check its whole log (a damaged one is rewritten from the
   * node's memory; one cut under the node fails it, and its restart brings it back); says and
   * counts what was found (`Health`). A node that cannot be asked is left out.
   */
  async checkLogs(): Promise<LogCheck[]> {
    const membership = this.#nodes.membership;
    const live = this.#nodes.dataRanks.filter((rank) => !membership.isLost(rank));
    const checks = await Promise.all(live.map(async (rank) => {
      try {
        const check = await this.#nodes.verifyLog(rank);
        this.#health.noteChecked(check);
        return check;
      } catch {
        return undefined; // down meanwhile: it is reconciled when it is back
      }
    }));
    return checks.filter((check) => check !== undefined);
  }

  /**
   * Checks one file's replicas, repairing bad ones, and with `rereplicate` moving those on nodes
   * that are gone or stay down (not one being restarted now) to live nodes; says how the file
   * stands.
   */
  async checkFile(
    m: Manifest,
    counts: { bytesChecked: number; chunks: number },
    options: { rereplicate?: boolean } = {},
  ): Promise<FileHealth> {
    const key = this.#releases.pin(m); // keep the chunks while we look
    const membership = this.#nodes.membership;
    let outcome = "healthy" as FileHealth;
    /** Whether every replica missing is on a lost node (then re-replication makes up for it). */
    let onlyLost = true;
    const worse = (o: FileHealth) => {
      if (HEALTH_ORDER.indexOf(o) > HEALTH_ORDER.indexOf(outcome)) outcome = o;
    };
    try {
      for (const chunk of m.chunks) {
        counts.chunks++;
        const { good, damaged, unreachable } = await this.#replicas.check(chunk, m, counts);
        if (!good) {
          worse("lost");
          continue;
        }
        if (damaged.length > 0) {
          const fixed = await this.#replicas.restore(chunk, good, damaged);
          if (!fixed) onlyLost = false;
          worse(fixed ? "repaired" : "underReplicated");
        }
        if (unreachable.length > 0) {
          if (unreachable.some((rank) => !membership.isLost(rank))) onlyLost = false;
          worse("underReplicated");
        }
        this.#nodes.recycle(good);
      }
      if (options.rereplicate && outcome === "underReplicated" && onlyLost) {
        outcome = await this.#rereplicate(m) ? "repaired" : outcome;
      }
    } finally {
      this.#releases.unpin(key);
    }
    return outcome;
  }

  /**
   * Moves `m`'s replicas on gone nodes and on nodes whose restarts keep failing to live ones;
   * true if every one was moved.
   */
  async #rereplicate(m: Manifest): Promise<boolean> {
    const membership = this.#nodes.membership;
    const lost = [...holdersOf(m)].filter((rank) =>
      membership.isGone(rank) || membership.stateOf(rank) === "down"
    );
    if (lost.length === 0) return false;
    for (const rank of lost) {
      try {
        await this.#rereplicateFile(m.name, rank);
      } catch {
        return false;
      }
    }
    return true;
  }

  /** Waits until none of `ranks` is down, or `timeoutMs` has passed. */
  async #waitUp(ranks: readonly number[], timeoutMs: number): Promise<void> {
    const membership = this.#nodes.membership;
    const start = this.#clock.monotonic();
    while (
      ranks.some((rank) => membership.isDown(rank)) &&
      this.#clock.monotonic() - start < timeoutMs
    ) {
      await new Promise<void>((resolve) => this.#clock.setTimeout(resolve, FSCK_RESTART_POLL_MS));
    }
  }
}
