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
import type { ScanSummary } from "../common/node_protocol.ts";
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
 * or undefined if the summaries disagree in any way (then `planRecovery` decides).
 */
export function planFastRecovery(
  summaries: readonly ScanSummary[],
  seed: number,
): RecoveryPlan | undefined {
  const expected = new Map<number, Expected>();
  for (const { rank } of summaries) {
    expected.set(rank, { kept: 0, others: 0, othersSum: 0, drop: [] });
  }
  const files = new ManifestColumns();
  const tombstones: string[] = [];
  for (const summary of summaries) {
    for (const m of readManifests(summary.manifests)) {
      if (m.deleted) {
        const held = files.versionOf(m.name);
        // A tombstone goes from every node that has it; a file newer than it is kept.
        expected.get(summary.rank)!.drop.push({ name: m.name, version: m.version });
        if (held === undefined) {
          files.set(m);
          tombstones.push(m.name);
        } else if (held !== m.version && !(held > m.version && !files.get(m.name)!.deleted)) {
          return undefined;
        }
        continue;
      }
      const holders = holdersOf(m);
      if (Math.min(...holders) !== summary.rank) return undefined;
      const print = printOf(m.name, m.version, seed);
      for (const rank of holders) {
        const of = expected.get(rank);
        if (of === undefined) return undefined; // a holder that did not answer
        of.kept++;
        if (rank === summary.rank) continue;
        of.others++;
        of.othersSum = addPrint(of.othersSum, print);
      }
      if (files.insert(m) >= 0) continue;
      // A file comes whole from one node only, its first holder, unless it is newer than a
      // tombstone of its name.
      const held = files.get(m.name)!;
      if (!held.deleted || held.version > m.version) return undefined;
      files.set(m);
    }
  }
  const repairs = new Map<number, RankRepair>();
  const unchanged = new Set<number>();
  const opened = new Map<number, LogOpened>();
  for (const summary of summaries) {
    const of = expected.get(summary.rank)!;
    const agrees = summary.allPresent && summary.others === of.others &&
      summary.othersSum === of.othersSum && summary.count === of.kept + of.drop.length;
    if (!agrees) return undefined;
    const { rank, strayBlobs, bytesHeld } = summary;
    repairs.set(rank, { drop: of.drop, deleteBlobs: strayBlobs, bytesHeld });
    opened.set(rank, summary.opened);
    // A log with damage skipped is rewritten, so that the damage is gone for good.
    const same = of.drop.length === 0 && strayBlobs.length === 0 &&
      summary.opened.damagedRegions === 0;
    if (same) unchanged.add(rank);
  }
  // A winning tombstone means removed: every node drops the name, tombstone included.
  for (const name of tombstones) if (files.get(name)?.deleted) files.delete(name);
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
