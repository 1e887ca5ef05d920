/**
 * What the store knows of its own health, and the background work that brings it back: replicas
 * known missing on live nodes (found at start-up: a log or blob lost or damaged, a folder made
 * anew) are copied back from good replicas without waiting for a read or an fsck; ranks that are
 * gone have what they held re-replicated; and whatever opening or checking a node's log found
 * (damage skipped, a torn tail cut, a log made anew, a log rewritten) is said on the server's log,
 * with the rank and the count, and counted for `status`.
 *
 * @module
 */

import type { ChunkRef, LogOpened } from "../common/manifest.ts";
import type { LogCheck } from "../common/node_protocol.ts";
import { forEachParallel } from "../common/parallel.ts";
import type { Log } from "../env/env.ts";
import type { FileIndex } from "./file_index.ts";
import type { NodeClient } from "./node_client.ts";
import type { RecoveryPlan } from "./plans.ts";
import type { Releases } from "./releases.ts";
import type { Replicas } from "./replicas.ts";

/** Missing replicas the background repair copies back at once. */
export const RESTORES_PARALLEL_MAX = 4;

/** What the data nodes' logs were found to hold since start (opening them, and checks). */
export interface MetadataHealth {
  /** Damaged regions found (skipped at start-up, or rewritten by a check), and their bytes. */
  damagedRegions: number;
  damagedBytes: number;
  /** Torn tails cut off at start-up (what a crash leaves at the end of a log). */
  tailCuts: number;
  /** Logs found missing at start-up and made anew. */
  logsMadeAnew: number;
  /** Logs rewritten from a node's memory after a check found damage. */
  logsRewritten: number;
}

/** See the module doc. */
export class Health {
  readonly metadata: MetadataHealth = {
    damagedRegions: 0,
    damagedBytes: 0,
    tailCuts: 0,
    logsMadeAnew: 0,
    logsRewritten: 0,
  };
  /**
   * Files found lost since start (bounded by the names once stored): at start-up, a name whose
   * every version has a chunk with no replica left; later, a file whose missing replica has no
   * good one left to be copied from.
   */
  readonly lostFiles = new Set<string>();
  /** Replicas known missing on live nodes and not yet restored: chunk id to file and ranks. */
  #missing = new Map<string, { name: string; ranks: Set<number> }>();
  #index: FileIndex;
  #nodes: NodeClient;
  #releases: Releases;
  #replicas: Replicas;
  #rereplicate: (rank: number) => Promise<number>;
  #log: Log;
  #running = new Set<Promise<void>>();
  #draining = false;
  #closed = false;

  constructor(parts: {
    index: FileIndex;
    nodes: NodeClient;
    releases: Releases;
    replicas: Replicas;
    /** Copies what a lost rank held to live nodes; resolves with the chunks copied. */
    rereplicate: (rank: number) => Promise<number>;
    log: Log;
  }) {
    this.#index = parts.index;
    this.#nodes = parts.nodes;
    this.#releases = parts.releases;
    this.#replicas = parts.replicas;
    this.#rereplicate = parts.rereplicate;
    this.#log = parts.log;
  }

  /** True if `rank`'s replica of chunk `id` is known missing and not yet restored. */
  isMissing(id: string, rank: number): boolean {
    return this.#missing.get(id)?.ranks.has(rank) === true;
  }

  /**
   * After start-up recovery: says what each node's log held and which replicas are missing or on
   * gone ranks, then restores and re-replicates them in the background.
   */
  afterRecovery(plan: RecoveryPlan): void {
    for (const [rank, found] of plan.opened) this.noteOpened(rank, found);
    for (const [rank, count] of plan.lacking) {
      this.#log.error(
        `dfs: rank ${rank}: its log lacked ${count} file record(s) that other replicas hold; ` +
          `written back`,
      );
    }
    const missingByRank = new Map<number, number>();
    for (const { name, chunk, rank } of plan.missing) {
      this.noteMissing(name, chunk, rank);
      missingByRank.set(rank, (missingByRank.get(rank) ?? 0) + 1);
    }
    for (const [rank, count] of missingByRank) {
      this.#log.error(
        `dfs: rank ${rank}: ${count} chunk replica(s) missing at start; restoring them from ` +
          `good replicas`,
      );
    }
    for (const { name, version, fallback } of plan.damaged) {
      if (fallback === undefined) this.lostFiles.add(name);
      this.#log.error(
        `dfs: "${name}" version ${version} has a chunk with no replica left; ` +
          (fallback === undefined ? "the file is lost" : `version ${fallback} is served instead`),
      );
    }
    this.restoreInBackground();
    for (const [rank, held] of plan.goneRanks) {
      this.#log.error(
        `dfs: rank ${rank} is gone (the server runs fewer ranks): re-replicating the ${held} ` +
          `chunk replicas it held`,
      );
      this.#track(
        this.#rereplicate(rank).then(
          (copied) => this.#log.error(`dfs: rank ${rank} is gone: ${copied} chunk replicas copied`),
          (error) =>
            this.#log.error(`dfs: cannot re-replicate gone rank ${rank}: ${error.message}`),
        ),
      );
    }
  }

  /** Says and counts what opening a node's log found (at start-up, or when it was restarted). */
  noteOpened(rank: number, found: LogOpened): void {
    const { damagedRegions, damagedBytes, tailCutBytes, created } = found;
    this.metadata.damagedRegions += damagedRegions;
    this.metadata.damagedBytes += damagedBytes;
    if (damagedRegions > 0) {
      this.#log.error(
        `dfs: rank ${rank}: its log had ${damagedRegions} damaged region(s) (${damagedBytes} ` +
          `bytes), skipped; what they held is restored from good replicas`,
      );
    }
    if (tailCutBytes > 0) {
      this.metadata.tailCuts++;
      this.#log.error(
        `dfs: rank ${rank}: a torn tail of ${tailCutBytes} bytes was cut off its log`,
      );
    }
    if (created) {
      this.metadata.logsMadeAnew++;
      this.#log.error(`dfs: rank ${rank}: its log was missing and was made anew`);
    }
  }

  /** Says and counts what a check of a node's log found. */
  noteChecked(check: LogCheck): void {
    if (check.damagedRegions === 0) return;
    this.metadata.damagedRegions += check.damagedRegions;
    this.metadata.damagedBytes += check.damagedBytes;
    if (check.rewritten) this.metadata.logsRewritten++;
    this.#log.error(
      `dfs: rank ${check.rank}: a check of its log found ${check.damagedRegions} damaged ` +
        `region(s) (${check.damagedBytes} bytes)` +
        (check.rewritten ? "; rewritten from the node's memory" : ""),
    );
  }

  /** Notes that `rank` lacks its replica of `chunk` of file `name` (and counts it found). */
  noteMissing(name: string, chunk: ChunkRef, rank: number): void {
    let entry = this.#missing.get(chunk.id);
    if (!entry) this.#missing.set(chunk.id, entry = { name, ranks: new Set() });
    if (entry.ranks.has(rank)) return;
    entry.ranks.add(rank);
    this.#replicas.noteDamaged();
  }

  /** Copies every noted missing replica back from a good one, in the background. */
  restoreInBackground(): void {
    if (this.#draining || this.#closed || this.#missing.size === 0) return;
    this.#draining = true;
    this.#track(
      this.#drain().finally(() => {
        this.#draining = false;
        this.restoreInBackground(); // noted meanwhile
      }),
    );
  }

  /** Resolves once no background work runs (tests, and a clean stop). */
  async settled(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }

  /** Starts no more background work. */
  close(): void {
    this.#closed = true;
  }

  #track(work: Promise<unknown>): void {
    const running = work.then(() => {}, () => {});
    this.#running.add(running);
    void running.finally(() => this.#running.delete(running));
  }

  async #drain(): Promise<void> {
    const entries = [...this.#missing];
    await forEachParallel(entries, RESTORES_PARALLEL_MAX, async ([id, { name, ranks }]) => {
      if (this.#closed) return;
      try {
        await this.#restore(id, name, ranks);
      } finally {
        // Whatever the outcome, the entry is done: a target that went down is reconciled when
        // it is back, a file changed meanwhile no longer needs it.
        if (this.#missing.get(id)?.ranks === ranks) this.#missing.delete(id);
      }
    });
  }

  async #restore(id: string, name: string, ranks: ReadonlySet<number>): Promise<void> {
    const m = this.#index.get(name);
    const chunk = m?.chunks.find((c) => c.id === id);
    if (!m || !chunk) return; // removed or replaced meanwhile
    const membership = this.#nodes.membership;
    const targets = chunk.ranks.filter((r) => ranks.has(r) && !membership.isLost(r));
    if (targets.length === 0) return;
    const sources = chunk.ranks.filter((r) => !ranks.has(r) && !membership.isLost(r));
    const pin = this.#releases.pin(m); // keep the version's chunks while we copy
    try {
      if (!await this.#replicas.copy(chunk, m, sources, targets)) {
        this.lostFiles.add(name);
        this.#log.error(`dfs: chunk ${id} of "${name}" has no good replica left to restore from`);
      }
    } catch (error) {
      this.#log.error(
        `dfs: cannot restore chunk ${id} of "${name}" on rank(s) ${targets.join(", ")}: ${
          (error as Error).message
        }`,
      );
    } finally {
      this.#releases.unpin(pin);
    }
  }
}
