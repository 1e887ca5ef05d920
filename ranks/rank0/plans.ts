/**
 * Pure plans of rank 0: what start-up recovery, the reconciling of a restarted data node and
 * re-replication must do, decided from what the nodes report. Thin executors carry them out.
 *
 * @module
 */

import { blobOf, offsetOf } from "../common/chunk_id.ts";
import {
  type ChunkRef,
  holdersOf,
  type Manifest,
  type RankRepair,
  type RankScan,
} from "../common/manifest.ts";

/** The outcome of start-up recovery. */
export interface RecoveryPlan {
  /** The winning manifest of every name. */
  files: Manifest[];
  repairs: Map<number, RankRepair>;
  /** Names whose newest version had a chunk with no replica present, with the version used instead
   * (or none). Only damage to the disks causes this. */
  damaged: { name: string; version: number; fallback?: number }[];
  /** Ranks that already hold exactly what they should: their repair changes nothing. */
  unchanged: Set<number>;
}

/**
 * Decides the state after a restart from every data node's scan: for each name the highest version
 * whose every chunk has at least one replica present wins; every rank then holds exactly the winning
 * manifests it has chunks of (missing ones are added, stale ones dropped) and deletes every blob file
 * no winner references. A chunk is present on a rank when the rank keeps it in its log or when its
 * blob there reaches past its end.
 */
export function planRecovery(scans: readonly RankScan[]): RecoveryPlan {
  const present = new Map<number, Map<string, number>>();
  const presentInLog = new Map<number, Set<string>>();
  const candidates = new Map<string, Map<number, Manifest>>();
  /** The ranks that reported each candidate (the first copy of a name and version seen). */
  const reporters = new Map<Manifest, Set<number>>();
  for (const scan of scans) {
    present.set(scan.rank, new Map(scan.blobs));
    presentInLog.set(scan.rank, new Set(scan.inLog ? scan.inLog.split("\0") : []));
    for (const m of scan.manifests) {
      let versions = candidates.get(m.name);
      if (!versions) candidates.set(m.name, versions = new Map());
      const seen = versions.get(m.version);
      if (seen) reporters.get(seen)!.add(scan.rank);
      else {
        versions.set(m.version, m);
        reporters.set(m, new Set([scan.rank]));
      }
    }
  }
  const inLog = (c: ChunkRef, rank: number) => presentInLog.get(rank)?.has(c.id) === true;
  const isOn = (c: ChunkRef, rank: number) =>
    inLog(c, rank) || (present.get(rank)?.get(blobOf(c.id)) ?? -1) >= offsetOf(c.id) + c.size;
  const isStored = (c: ChunkRef) => c.ranks.some((r) => isOn(c, r));

  const files: Manifest[] = [];
  const damaged: RecoveryPlan["damaged"] = [];
  for (const [name, versions] of candidates) {
    if (versions.size === 1) { // the usual case: no sorting
      const [only] = versions.values();
      if (only.chunks.every(isStored)) {
        if (!only.deleted) files.push(only);
      } else damaged.push({ name, version: only.version, fallback: undefined });
      continue;
    }
    const ordered = [...versions.values()].sort((a, b) => b.version - a.version);
    const winner = ordered.find((m) => m.chunks.every(isStored));
    if (winner !== ordered[0]) {
      damaged.push({ name, version: ordered[0].version, fallback: winner?.version });
    }
    // A winning tombstone means removed: every node drops the name, tombstone included.
    if (winner && !winner.deleted) files.push(winner);
  }

  const repairs = new Map<number, RankRepair>();
  for (const scan of scans) repairs.set(scan.rank, { keep: [], deleteBlobs: [], bytesHeld: 0 });
  const referenced = new Map<number, Set<string>>();
  for (const m of files) {
    const holders = m.chunks.length === 1 ? m.chunks[0].ranks : holdersOf(m);
    for (const rank of holders) repairs.get(rank)?.keep.push(m);
    for (const c of m.chunks) {
      for (const rank of c.ranks) {
        const repair = repairs.get(rank);
        if (inLog(c, rank)) {
          if (repair) repair.bytesHeld += c.size;
          continue;
        }
        if (!referenced.has(rank)) referenced.set(rank, new Set());
        referenced.get(rank)!.add(blobOf(c.id));
        if (repair && isOn(c, rank)) repair.bytesHeld += c.size;
      }
    }
  }
  for (const [rank, blobs] of present) {
    const keep = referenced.get(rank) ?? new Set<string>();
    for (const blob of blobs.keys()) if (!keep.has(blob)) repairs.get(rank)!.deleteBlobs.push(blob);
  }
  const unchanged = new Set<number>();
  for (const scan of scans) {
    const { keep, deleteBlobs } = repairs.get(scan.rank)!;
    const same = deleteBlobs.length === 0 && scan.manifests.length === keep.length &&
      keep.every((m) => reporters.get(m)!.has(scan.rank));
    if (same) unchanged.add(scan.rank);
  }
  return { files, repairs, damaged, unchanged };
}
