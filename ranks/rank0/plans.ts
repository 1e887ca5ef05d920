/**
 * Pure plans of rank 0: what start-up recovery, the reconciling of a restarted data node and
 * re-replication must do, decided from what the nodes report. Thin executors carry them out.
 *
 * @module
 */

import { assert } from "../../protocol/errors.ts";
import { blobOf, offsetOf } from "../common/chunk_id.ts";
import {
  type ChunkRef,
  holdersOf,
  type LogOpened,
  type Manifest,
  type RankRepair,
  type RankScan,
} from "../common/manifest.ts";
import { chooseRanks, type ZoneOf } from "./placement.ts";

/** What a data node has on disk, as its scan reports it. */
export interface Holdings {
  /** Blob id to size in bytes, for every blob file present. */
  blobs: ReadonlyMap<string, number>;
  /** Ids of the chunks kept in the node's log. */
  inLog: ReadonlySet<string>;
}

/** A node's holdings from its scan. */
export function holdingsOf(scan: RankScan): Holdings {
  return { blobs: new Map(scan.blobs), inLog: new Set(scan.inLog ? scan.inLog.split("\0") : []) };
}

/**
 * The one rule of "a replica is present": the node keeps the chunk in its log, or its blob there
 * reaches past the chunk's end (blobs are sparse; a cut-off upload leaves a shorter one).
 */
export function isPresent(chunk: ChunkRef, holdings: Holdings): boolean {
  if (holdings.inLog.has(chunk.id)) return true;
  return (holdings.blobs.get(blobOf(chunk.id)) ?? -1) >= offsetOf(chunk.id) + chunk.size;
}

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
  /**
   * Replicas the winning files place on a rank that answered but does not have them (a log or
   * blob lost or damaged, a folder made anew): each is to be copied back from a good replica.
   */
  missing: { name: string; chunk: ChunkRef; rank: number }[];
  /**
   * Ranks the winning files place replicas on that did not answer: ranks that are gone (the
   * server started with fewer); what they held is to be copied elsewhere.
   */
  goneRanks: number[];
  /** What opening each node's log found, as its scan says. */
  opened: Map<number, LogOpened>;
  /**
   * Per rank, the winning manifests it must hold but did not report (a log cut or damaged, or a
   * crash before its copy of a commit was durable): its repair writes them back.
   */
  lacking: Map<number, number>;
}

/**
 * Decides the state after a restart from every data node's scan: for each name the highest version
 * whose every chunk has at least one replica present wins; every rank then holds exactly the winning
 * manifests it has chunks of (missing ones are added, stale ones dropped) and deletes every blob file
 * no winner references. A chunk is present on a rank when the rank keeps it in its log or when its
 * blob there reaches past its end.
 */
export function planRecovery(scans: readonly RankScan[]): RecoveryPlan {
  const holdings = new Map<number, Holdings>();
  /**
   * Each name's versions: the manifest itself in the usual case of one, an array while several
   * coexist (a Map per name and a Set per manifest made this the bulk of start-up's time and
   * memory with a million files).
   */
  const candidates = new Map<string, Manifest | Manifest[]>();
  /** The ranks that reported each candidate (the first copy of a name and version seen). */
  const reporters = new Map<Manifest, number[]>();
  for (const scan of scans) {
    holdings.set(scan.rank, holdingsOf(scan));
    for (const m of scan.manifests) {
      const held = candidates.get(m.name);
      const seen = held === undefined
        ? undefined
        : Array.isArray(held)
        ? held.find((c) => c.version === m.version)
        : held.version === m.version
        ? held
        : undefined;
      if (seen) {
        const ranks = reporters.get(seen)!;
        if (!ranks.includes(scan.rank)) ranks.push(scan.rank);
        continue;
      }
      reporters.set(m, [scan.rank]);
      if (held === undefined) candidates.set(m.name, m);
      else if (Array.isArray(held)) held.push(m);
      else candidates.set(m.name, [held, m]);
    }
  }
  const inLog = (c: ChunkRef, rank: number) => holdings.get(rank)?.inLog.has(c.id) === true;
  const isOn = (c: ChunkRef, rank: number) => {
    const held = holdings.get(rank);
    return held !== undefined && isPresent(c, held);
  };
  const isStored = (c: ChunkRef) => c.ranks.some((r) => isOn(c, r));

  const files: Manifest[] = [];
  const damaged: RecoveryPlan["damaged"] = [];
  for (const [name, versions] of candidates) {
    if (!Array.isArray(versions)) { // the usual case: one version, no sorting
      if (versions.chunks.every(isStored)) {
        if (!versions.deleted) files.push(versions);
      } else damaged.push({ name, version: versions.version, fallback: undefined });
      continue;
    }
    const ordered = [...versions].sort((a, b) => b.version - a.version);
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
  for (const [rank, { blobs }] of holdings) {
    const keep = referenced.get(rank) ?? new Set<string>();
    for (const blob of blobs.keys()) if (!keep.has(blob)) repairs.get(rank)!.deleteBlobs.push(blob);
  }
  const unchanged = new Set<number>();
  const lacking = new Map<number, number>();
  for (const scan of scans) {
    const { keep, deleteBlobs } = repairs.get(scan.rank)!;
    const lacked = keep.filter((m) => !reporters.get(m)!.includes(scan.rank)).length;
    if (lacked > 0) lacking.set(scan.rank, lacked);
    // A log with damage skipped is rewritten, so that the damage is gone for good.
    const damagedLog = (scan.opened?.damagedRegions ?? 0) > 0;
    const same = !damagedLog && deleteBlobs.length === 0 && scan.manifests.length === keep.length &&
      keep.every((m) => reporters.get(m)!.includes(scan.rank));
    if (same) unchanged.add(scan.rank);
  }
  const missing: RecoveryPlan["missing"] = [];
  const gone = new Set<number>();
  for (const m of files) {
    for (const c of m.chunks) {
      for (const rank of c.ranks) {
        if (!holdings.has(rank)) gone.add(rank);
        else if (!isOn(c, rank)) missing.push({ name: m.name, chunk: c, rank });
      }
    }
  }
  const goneRanks = [...gone].sort((a, b) => a - b);
  const opened = new Map<number, LogOpened>();
  for (const scan of scans) if (scan.opened) opened.set(scan.rank, scan.opened);
  return { files, repairs, damaged, unchanged, missing, goneRanks, opened, lacking };
}

/** What reconciling a restarted data node must do. */
export interface ReconcilePlan {
  /** Exactly the manifests it keeps, the blobs it deletes, and the bytes it then holds. */
  repair: RankRepair;
  /** Chunks it should hold but lacks: each is copied to it from a good replica. */
  restore: ChunkRef[];
}

/**
 * Brings a restarted node in line with the current files: it keeps exactly the manifests of the
 * files it holds chunks of, drops every other blob (released or removed while it was down, so
 * nothing deleted comes back, and nothing is counted twice), and gets back every chunk it lacks.
 */
export function planReconcile(files: Iterable<Manifest>, scan: RankScan): ReconcilePlan {
  const { rank } = scan;
  const keep: Manifest[] = [];
  const wanted = new Map<string, ChunkRef>();
  for (const m of files) {
    let holds = false;
    for (const c of m.chunks) {
      if (!c.ranks.includes(rank)) continue;
      holds = true;
      wanted.set(c.id, c);
    }
    if (holds) keep.push(m);
  }
  const holdings = holdingsOf(scan);
  const wantedBlobs = new Set([...wanted.keys()].map(blobOf));
  const deleteBlobs = [...holdings.blobs.keys()].filter((blob) => !wantedBlobs.has(blob));
  let bytesHeld = 0;
  for (const c of wanted.values()) bytesHeld += c.size;
  const restore = [...wanted.values()].filter((c) => !isPresent(c, holdings));
  return { repair: { keep, deleteBlobs, bytesHeld }, restore };
}

/** How a file's replicas on a lost node move to live ones. */
export interface RereplicationPlan {
  /** The file's chunks placed anew (the same ids, sizes and checksums). */
  chunks: ChunkRef[];
  /** Each chunk to copy: from its live replicas to its new node. */
  copies: { chunk: ChunkRef; sources: number[]; target: number }[];
}

/** What re-replication places by: the loads, the nodes down, and (optionally) their zones. */
export interface RereplicationPlacement {
  bytesHeld: ReadonlyMap<number, number>;
  down: ReadonlySet<number>;
  /** The zone of each rank; without it every rank is in one zone. */
  zoneOf?: ZoneOf;
}

/**
 * Moves every replica of `m` on `lost` to the least loaded live node that lacks that chunk,
 * preferring a zone that holds no other replica of it, as placement would (counting each copy
 * as it is placed).
 *
 * @throws {DfsError} `UNAVAILABLE` if no live node can take a replica (from `chooseRanks`).
 */
export function planRereplication(
  m: Manifest,
  lost: number,
  placement: RereplicationPlacement,
): RereplicationPlan {
  const loads = new Map(placement.bytesHeld);
  const chunks: ChunkRef[] = [];
  const copies: RereplicationPlan["copies"] = [];
  for (const chunk of m.chunks) {
    if (!chunk.ranks.includes(lost)) {
      chunks.push(chunk);
      continue;
    }
    const sources = chunk.ranks.filter((r) => r !== lost);
    const exclude = new Set([...placement.down, ...chunk.ranks]);
    const [target] = chooseRanks(loads, 1, { exclude, holders: sources, zoneOf: placement.zoneOf });
    loads.set(target, (loads.get(target) ?? 0) + chunk.size);
    copies.push({ chunk, sources, target });
    chunks.push({ ...chunk, ranks: [...sources, target] });
  }
  assert(copies.length > 0, `"${m.name}" has a replica on rank ${lost}`);
  return { chunks, copies };
}
