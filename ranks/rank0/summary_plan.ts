/**
 * Start-up recovery's fast path: the plan of a clean restart, made from the data nodes' summaries
 * (`ScanSummary`) instead of every replica of every manifest. Pure.
 *
 * Each node sends whole only the manifests it is the first holder of (and its tombstones), so
 * rank 0 reads each file once rather than once per replica; of the others it sends how many and
 * the sum of their fingerprints, and it checks its own chunks and blobs. Rank 0 then knows what
 * every node should have reported besides (each file's other holders) and checks the counts and
 * sums. If everything agrees (every node holds exactly the files placing chunks on it, every chunk
 * is present, no name has two versions but a file newer than its tombstone) the plan is the one
 * `planRecovery` would make; if anything disagrees there is no fast plan, and recovery reads every
 * manifest (`planRecovery`), which settles every case.
 *
 * @module
 */

import { addPrint, printOf } from "../common/fingerprint.ts";
import { holdersOf, type LogOpened, type RankRepair } from "../common/manifest.ts";
import { ManifestColumns } from "../common/manifest_columns.ts";
import { readManifests } from "../common/manifest_codec.ts";
import type { SummaryTotals } from "../common/node_protocol.ts";
import type { RecoveryPlan } from "./plans.ts";

/** What rank 0 expects of one node from the others' summaries. */
interface Expected {
  /** Files placing a chunk on it. */
  kept: number;
  /** Of those, the ones some lower rank sent whole: their count and fingerprint sum. */
  others: number;
  othersSum: number;
  /** Versions it holds to drop: tombstones, and nothing else. */
  drop: { name: string; version: number }[];
}

/**
 * The recovery plan of a clean restart from every node's summary (fingerprints keyed by `seed`),
 * or undefined if the summaries disagree in any way (then `planRecovery` decides), made a page at
 * a time: the nodes' pages (`SummaryPage`) are read as they come, in
 * any order (what a page decides does not depend on which came first), each straight into the
 * columns that become the index, and may be dropped at once; then their totals.
 */
export class FastPlanner {
  #seed: number;
  #expected = new Map<number, Expected>();
  #files = new ManifestColumns();
  #tombstones: string[] = [];
  #disagrees = false;

  /** A planner of the summaries of `ranks`, fingerprints keyed by `seed`. */
  constructor(ranks: readonly number[], seed: number) {
    this.#seed = seed;
    for (const rank of ranks) {
      this.#expected.set(rank, { kept: 0, others: 0, othersSum: 0, drop: [] });
    }
  }

  /** Reads a page of `rank`'s manifests; false once the summaries disagree. */
  add(rank: number, manifests: Uint8Array): boolean {
    if (!this.#disagrees && !this.#read(rank, manifests)) this.#disagrees = true;
    return !this.#disagrees;
  }

  #read(rank: number, manifests: Uint8Array): boolean {
    const files = this.#files;
    const seed = this.#seed;
    const expected = this.#expected;
    if (!expected.has(rank)) return false;
    for (const m of readManifests(manifests)) {
      if (m.deleted) {
        const held = files.versionOf(m.name);
        // A tombstone goes from every node that has it; a file newer than it is kept.
        expected.get(rank)!.drop.push({ name: m.name, version: m.version });
        if (held === undefined) {
          files.set(m);
          this.#tombstones.push(m.name);
        } else if (held !== m.version && !(held > m.version && !files.get(m.name)!.deleted)) {
          return false;
        }
        continue;
      }
      const holders = holdersOf(m);
      if (Math.min(...holders) !== rank) return false;
      const print = printOf(m.name, m.version, seed);
      for (const holder of holders) {
        const of = expected.get(holder);
        if (of === undefined) return false; // a holder that did not answer
        of.kept++;
        if (holder === rank) continue;
        of.others++;
        of.othersSum = addPrint(of.othersSum, print);
      }
      if (files.insert(m) >= 0) continue;
      // A file comes whole from one node only, its first holder, unless it is newer than a
      // tombstone of its name.
      const held = files.get(m.name)!;
      if (!held.deleted || held.version > m.version) return false;
      files.set(m);
    }
    return true;
  }

  /**
   * The plan, once every page of every rank was added and `totals` has each rank's; undefined if
   * the summaries disagree (a rank's totals lacking too).
   */
  plan(totals: ReadonlyMap<number, SummaryTotals>): RecoveryPlan | undefined {
    if (this.#disagrees) return undefined;
    const repairs = new Map<number, RankRepair>();
    const unchanged = new Set<number>();
    const opened = new Map<number, LogOpened>();
    for (const [rank, of] of this.#expected) {
      const summary = totals.get(rank);
      if (summary === undefined) return undefined;
      const agrees = summary.allPresent && summary.others === of.others &&
        summary.othersSum === of.othersSum && summary.count === of.kept + of.drop.length;
      if (!agrees) return undefined;
      const { strayBlobs, bytesHeld } = summary;
      repairs.set(rank, { drop: of.drop, deleteBlobs: strayBlobs, bytesHeld });
      opened.set(rank, summary.opened);
      // A log with damage skipped is rewritten, so that the damage is gone for good.
      const same = of.drop.length === 0 && strayBlobs.length === 0 &&
        summary.opened.damagedRegions === 0;
      if (same) unchanged.add(rank);
    }
    // A winning tombstone means removed: every node drops the name, tombstone included.
    const files = this.#files;
    for (const name of this.#tombstones) if (files.get(name)?.deleted) files.delete(name);
    return {
      files,
      repairs,
      damaged: [],
      unchanged,
      missing: [],
      goneRanks: new Map(),
      opened,
      lacking: new Map(),
    };
  }
}
