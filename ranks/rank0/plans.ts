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
  type FileVersion,
  holdersOf,
  type LogOpened,
  type Manifest,
  type RankRepair,
  type RankScan,
} from "../common/manifest.ts";
import { ChunkIdSet } from "../common/chunk_id_set.ts";
import { ManifestColumns } from "../common/manifest_columns.ts";
import { decodeManifest, ManifestReader, ManifestWriter } from "../common/manifest_codec.ts";
import { grown } from "../common/slot_table.ts";
import { chooseRanks, type ZoneOf } from "./placement.ts";

/** What a data node has on disk, as its scan reports it. */
export interface Holdings {
  /** Blob id to size in bytes, for every blob file present. */
  blobs: ReadonlyMap<string, number>;
  /** Ids of the chunks kept in the node's log. */
  inLog: { has(id: string): boolean };
}

/** A node's holdings from its scan. */
export function holdingsOf(scan: RankScan): Holdings {
  return { blobs: new Map(scan.blobs), inLog: ChunkIdSet.decode(scan.inLog) };
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
  /** The winning manifest of every name (no tombstones): the store of the index to load. */
  files: ManifestColumns;
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
   * Ranks the winning files place replicas on that did not answer, with how many chunk replicas
   * each held: ranks that are gone (the server started with fewer); what they held is to be
   * copied elsewhere.
   */
  goneRanks: Map<number, number>;
  /** What opening each node's log found, as its scan says. */
  opened: Map<number, LogOpened>;
  /**
   * Per rank, the winning manifests it must hold but did not report (a log cut or damaged, or a
   * crash before its copy of a commit was durable): its repair writes them back.
   */
  lacking: Map<number, number>;
}

/** Where a replica is found at start-up (`Gone`: on a rank that did not answer). */
const Presence = { InLog: 0, InBlob: 1, Missing: 2, Gone: 3 } as const;
type Presence = typeof Presence[keyof typeof Presence];

/** Reporter bits per slot: two 32-bit words cover `RANKS_MAX` (64) ranks. */
const REPORTER_WORDS = 2;

/**
 * Decides the state after a restart from every data node's scan: for each name the highest version
 * whose every chunk has at least one replica present wins; every rank then holds exactly the winning
 * manifests it has chunks of (missing ones are added, stale ones dropped) and deletes every blob file
 * no winner references. A chunk is present on a rank when the rank keeps it in its log or when its
 * blob there reaches past its end.
 *
 * Built for a million names: the scans are read one manifest at a time, straight into the columns
 * that become the index, with a bit per reporting rank beside each. A name reported in one version
 * only (every name of a clean restart) is settled as it is read, and what it adds to each rank's
 * counts is kept; a name reported in several versions is set apart and settled by the full rule at
 * the end. A rank's repair lists its manifests only if it needs one.
 */
export function planRecovery(scans: readonly RankScan[]): RecoveryPlan {
  const holdings = new Map<number, Holdings>();
  for (const scan of scans) holdings.set(scan.rank, holdingsOf(scan));
  const isOn = (c: ChunkRef, rank: number) => {
    const held = holdings.get(rank);
    return held !== undefined && isPresent(c, held);
  };
  const isStored = (c: ChunkRef) => c.ranks.some((r) => isOn(c, r));
  const tally = new RankTally(holdings);

  const files = new ManifestColumns();
  let reporters = new Uint32Array(REPORTER_WORDS * 1024);
  /** Per slot of `files`: a bit for each rank its chunks are on. */
  let holders = new Uint32Array(REPORTER_WORDS * 1024);
  /**
   * Slots whose one version so far has a chunk with no replica present (not in the tally), with
   * their names.
   */
  const unstored = new Map<number, string>();
  /** Names first seen as tombstones. */
  const tombstones: string[] = [];
  /** Names reported in several versions: each version with the ranks that reported it. */
  const contested = new Map<string, { m: Manifest; ranks: number[] }[]>();
  const reported = new Map<number, number>();
  for (const scan of scans) {
    const { rank } = scan;
    let count = 0;
    const reader = new ManifestReader(scan.manifests, { subject: `rank ${rank}'s scan` });
    while (reader.left > 0) {
      count++;
      const at = reader.at;
      const { name, version } = reader.nameAndVersion();
      const versions = contested.get(name);
      if (versions) {
        const same = versions.find((v) => v.m.version === version);
        if (!same) versions.push({ m: decodeManifest(scan.manifests, at).manifest, ranks: [rank] });
        else if (!same.ranks.includes(rank)) same.ranks.push(rank);
        continue;
      }
      let slot = files.slotOf(name);
      if (slot >= 0 && files.versionAt(slot) === version) {
        // Another copy of a version read already (the usual case for all but a name's first
        // replica): only who reported it counts, and nothing more of it is decoded.
        if (hasRank(reporters, slot, rank)) continue;
        setRank(reporters, slot, rank);
        if (!unstored.has(slot) && hasRank(holders, slot, rank)) tally.of(rank).matched++;
        continue;
      }
      const m = decodeManifest(scan.manifests, at).manifest;
      if (slot >= 0) {
        // A second version: set the name apart, undoing what its first one added.
        const first = files.get(name)!;
        const ranks = ranksOf(reporters, slot);
        // A version with a chunk missing everywhere is not in the tally.
        if (!unstored.delete(slot)) tally.add(first, ranks, -1);
        files.delete(name);
        contested.set(name, [{ m: first, ranks }, { m, ranks: [rank] }]);
        continue;
      }
      slot = files.set(m);
      if (REPORTER_WORDS * slot >= reporters.length) {
        reporters = grown(reporters, new Uint32Array(2 * reporters.length));
        holders = grown(holders, new Uint32Array(2 * holders.length));
      }
      reporters.fill(0, REPORTER_WORDS * slot, REPORTER_WORDS * (slot + 1));
      holders.fill(0, REPORTER_WORDS * slot, REPORTER_WORDS * (slot + 1));
      for (const c of m.chunks) for (const r of c.ranks) setRank(holders, slot, r);
      unstored.delete(slot);
      if (m.deleted) tombstones.push(name);
      if (!tally.add(m, [], +1)) unstored.set(slot, name);
      setRank(reporters, slot, rank);
      if (!unstored.has(slot) && hasRank(holders, slot, rank)) tally.of(rank).matched++;
    }
    reported.set(rank, count);
  }

  const damaged: RecoveryPlan["damaged"] = [];
  const dropped: string[] = tombstones.filter((name) => files.get(name)?.deleted);
  for (const [slot, name] of unstored) {
    damaged.push({ name, version: files.versionAt(slot), fallback: undefined });
    dropped.push(name);
  }
  for (const [name, versions] of contested) {
    const ordered = versions.sort((a, b) => b.m.version - a.m.version);
    const winner = ordered.find((v) => v.m.chunks.every(isStored));
    if (winner !== ordered[0]) {
      damaged.push({ name, version: ordered[0].m.version, fallback: winner?.m.version });
    }
    if (!winner) continue;
    files.set(winner.m);
    tally.add(winner.m, winner.ranks, +1, { stored: true });
    if (winner.m.deleted) dropped.push(name);
  }
  // A winning tombstone means removed: every node drops the name, tombstone included.
  for (const name of dropped) files.delete(name);

  const unchanged = new Set<number>();
  const lacking = new Map<number, number>();
  const deleted = new Map<number, string[]>();
  for (const scan of scans) {
    const { rank } = scan;
    const counts = tally.of(rank);
    const referenced = tally.referencedOn(rank);
    const deleteBlobs = [...holdings.get(rank)!.blobs.keys()].filter((b) => !referenced.has(b));
    deleted.set(rank, deleteBlobs);
    if (counts.kept > counts.matched) lacking.set(rank, counts.kept - counts.matched);
    // A log with damage skipped is rewritten, so that the damage is gone for good.
    const damagedLog = (scan.opened?.damagedRegions ?? 0) > 0;
    const same = !damagedLog && deleteBlobs.length === 0 &&
      reported.get(rank) === counts.kept && counts.matched === counts.kept;
    if (same) unchanged.add(rank);
  }
  // Only a rank that changes is sent what it keeps, all of them in one pass over the files.
  const keep = new Map<number, ManifestWriter>();
  for (const scan of scans) {
    if (!unchanged.has(scan.rank)) keep.set(scan.rank, new ManifestWriter());
  }
  if (keep.size > 0) {
    for (const m of files.values()) for (const rank of holdersOf(m)) keep.get(rank)?.add(m);
  }
  const repairs = new Map<number, RankRepair>();
  for (const { rank } of scans) {
    repairs.set(rank, {
      keep: (keep.get(rank) ?? new ManifestWriter()).bytes(),
      deleteBlobs: deleted.get(rank)!,
      bytesHeld: tally.of(rank).bytesHeld,
    });
  }
  const missing = tally.missing.filter((entry) => files.versionOf(entry.name) === entry.version)
    .map(({ name, chunk, rank }) => ({ name, chunk, rank }));
  const goneRanks = new Map(
    [...tally.gone].filter(([, held]) => held > 0).sort(([a], [b]) => a - b),
  );
  const opened = new Map<number, LogOpened>();
  for (const scan of scans) if (scan.opened) opened.set(scan.rank, scan.opened);
  return { files, repairs, damaged, unchanged, missing, goneRanks, opened, lacking };
}

/**
 * What the winning versions add up to on each rank, kept as the scans are read (a name's share is
 * taken back if it turns out not to win): the winners each rank holds chunks of, how many of those
 * it reported, its bytes held, the blobs referenced on it, the replicas missing, and the chunk
 * replicas on ranks that did not answer.
 */
class RankTally {
  #holdings: ReadonlyMap<number, Holdings>;
  #counts = new Map<number, { kept: number; matched: number; bytesHeld: number }>();
  /** Per rank, each blob referenced there by a winner, with how many of its chunks. */
  #referenced = new Map<number, Map<string, number>>();
  /** Replicas missing, with the version of the file that places them. */
  missing: { name: string; version: number; chunk: ChunkRef; rank: number }[] = [];
  /** Chunk replicas placed on ranks that did not answer. */
  gone = new Map<number, number>();

  constructor(holdings: ReadonlyMap<number, Holdings>) {
    this.#holdings = holdings;
  }

  /** The counts of `rank`. */
  of(rank: number): { kept: number; matched: number; bytesHeld: number } {
    let counts = this.#counts.get(rank);
    if (!counts) this.#counts.set(rank, counts = { kept: 0, matched: 0, bytesHeld: 0 });
    return counts;
  }

  /** The blobs that winners reference on `rank`. */
  referencedOn(rank: number): ReadonlySet<string> {
    const blobs = this.#referenced.get(rank);
    return new Set(blobs ? [...blobs].filter(([, n]) => n > 0).map(([blob]) => blob) : []);
  }

  /**
   * Adds (`sign` +1) or takes back (-1) the share of a winner `m` reported by `ranks`. Adding
   * checks first that every chunk has a replica present (unless told it is `stored`) and adds
   * nothing if one has none: false then.
   */
  add(
    m: Manifest,
    ranks: readonly number[],
    sign: 1 | -1,
    options: { stored?: boolean } = {},
  ): boolean {
    if (m.deleted) return true;
    // Each replica's presence, found once: in the log, else in a blob long enough, else none.
    const found: Presence[] = [];
    for (const c of m.chunks) {
      let any = false;
      for (const rank of c.ranks) {
        const held = this.#holdings.get(rank);
        const presence = held === undefined
          ? Presence.Gone
          : held.inLog.has(c.id)
          ? Presence.InLog
          : (held.blobs.get(blobOf(c.id)) ?? -1) >= offsetOf(c.id) + c.size
          ? Presence.InBlob
          : Presence.Missing;
        found.push(presence);
        any ||= presence === Presence.InLog || presence === Presence.InBlob;
      }
      if (!any && sign > 0 && !options.stored) return false;
    }
    const holders = m.chunks.length === 1 ? m.chunks[0].ranks : [...holdersOf(m)];
    for (const rank of holders) {
      if (!this.#holdings.has(rank)) continue;
      this.of(rank).kept += sign;
    }
    for (const rank of ranks) this.report(m, rank, sign);
    let i = 0;
    for (const c of m.chunks) {
      for (const rank of c.ranks) {
        const presence = found[i++];
        if (presence === Presence.Gone) {
          this.gone.set(rank, (this.gone.get(rank) ?? 0) + sign);
          continue;
        }
        const counts = this.of(rank);
        if (presence === Presence.InLog) {
          counts.bytesHeld += sign * c.size;
          continue;
        }
        let blobs = this.#referenced.get(rank);
        if (!blobs) this.#referenced.set(rank, blobs = new Map());
        const blob = blobOf(c.id);
        blobs.set(blob, (blobs.get(blob) ?? 0) + sign);
        if (presence === Presence.InBlob) counts.bytesHeld += sign * c.size;
        else if (sign > 0) this.missing.push({ name: m.name, version: m.version, chunk: c, rank });
      }
    }
    return true;
  }

  /** Counts that `rank` reported winner `m` (if it holds chunks of it). */
  report(m: Manifest, rank: number, sign: 1 | -1 = 1): void {
    if (m.deleted || !this.#holdings.has(rank)) return;
    const holds = m.chunks.some((c) => c.ranks.includes(rank));
    if (holds) this.of(rank).matched += sign;
  }
}

function hasRank(bits: Uint32Array, slot: number, rank: number): boolean {
  return (bits[REPORTER_WORDS * slot + (rank >>> 5)] & (1 << (rank & 31))) !== 0;
}

function setRank(bits: Uint32Array, slot: number, rank: number): void {
  bits[REPORTER_WORDS * slot + (rank >>> 5)] |= 1 << (rank & 31);
}

function ranksOf(bits: Uint32Array, slot: number): number[] {
  const ranks: number[] = [];
  for (let rank = 0; rank < 32 * REPORTER_WORDS; rank++) {
    if (hasRank(bits, slot, rank)) ranks.push(rank);
  }
  return ranks;
}

/** What reconciling a restarted data node must do. */
export interface ReconcilePlan {
  /** Exactly the manifests it keeps, the blobs it deletes, and the bytes it then holds. */
  repair: RankRepair;
  /**
   * Chunks it should hold but lacks, each with a file it belongs to (through which a node finds a
   * small file's): each is copied to it from a good replica.
   */
  restore: { chunk: ChunkRef; file: FileVersion }[];
}

/**
 * Brings a restarted node in line with the current files: it keeps exactly the manifests of the
 * files it holds chunks of, drops every other blob (released or removed while it was down, so
 * nothing deleted comes back, and nothing is counted twice), and gets back every chunk it lacks.
 * The files are given one at a time (`add()`), so that the walk over the index can give way: no
 * structure here grows with the files but the manifests kept, and the blobs and chunks to restore.
 */
export class ReconcilePlanner {
  readonly #rank: number;
  readonly #holdings: Holdings;
  #keep = new ManifestWriter();
  /** Blob files of the node some kept chunk is in. */
  #referenced = new Set<string>();
  /**
   * Chunks of files of several chunks seen so far: a composed file shares its parts' chunks, each
   * counted once (a part of one chunk added before the composed file counts twice in `bytesHeld`,
   * which placement balances by: at most a small last part's size; a set of every chunk would
   * cost tens of bytes a small file).
   */
  #shared = new Set<string>();
  #restore = new Map<string, { chunk: ChunkRef; file: FileVersion }>();
  #bytesHeld = 0;

  /** A plan for the node whose scan is `scan`. */
  constructor(scan: RankScan) {
    this.#rank = scan.rank;
    this.#holdings = holdingsOf(scan);
  }

  /** Counts in a current file (present, not a tombstone). */
  add(m: Manifest): void {
    let holds = false;
    for (const c of m.chunks) {
      if (!c.ranks.includes(this.#rank)) continue;
      holds = true;
      const blob = blobOf(c.id);
      if (this.#holdings.blobs.has(blob)) this.#referenced.add(blob);
      if (this.#shared.has(c.id)) continue;
      if (m.chunks.length > 1) this.#shared.add(c.id);
      this.#bytesHeld += c.size;
      if (isPresent(c, this.#holdings)) continue;
      this.#restore.set(c.id, { chunk: c, file: { name: m.name, version: m.version } });
    }
    if (holds) this.#keep.add(m);
  }

  /** The plan, once every current file was added. */
  plan(): ReconcilePlan {
    const deleteBlobs = [...this.#holdings.blobs.keys()].filter((b) => !this.#referenced.has(b));
    return {
      repair: { keep: this.#keep.bytes(), deleteBlobs, bytesHeld: this.#bytesHeld },
      restore: [...this.#restore.values()],
    };
  }
}

/** `ReconcilePlanner` of every file of `files` at once. */
export function planReconcile(files: Iterable<Manifest>, scan: RankScan): ReconcilePlan {
  const planner = new ReconcilePlanner(scan);
  for (const m of files) planner.add(m);
  return planner.plan();
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
