/**
 * `dfs doctor --lose RANK|ZONE`: what would become under-replicated and what would be lost if a
 * data node, or every data node of a zone, were gone now. Pure: one pass over the file index, no
 * node I/O; rank 0's store (`store.ts`) hands in its membership and the index's files, one at a
 * time (`LossPlanner`) so that it can give way between steps.
 *
 * A replica is live when its rank is neither down nor gone and it is not known missing there.
 * A file is lost when some chunk of it has no live replica, under-replicated when it is not lost
 * and some chunk has fewer live replicas than it was placed on.
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";
import type { DoctorReport, FileLoss, UnderReplication } from "../../protocol/messages.ts";
import type { Manifest } from "../common/manifest.ts";

/**
 * Names of lost files a report carries in each of its two lists (lost now, would be lost); the
 * counts cover them all. Two full lists of the longest names fit one reply frame.
 */
export const DOCTOR_NAMES_MAX = 500;

/** What a `--lose` target names: the data ranks it covers and their zones. */
export type LossTarget = Pick<DoctorReport, "target" | "kind" | "ranks" | "zones">;

/** What a loss plan counts: every file, and what is degraded now and would be after the loss. */
export type LossPlan = Pick<DoctorReport, "files" | "chunks" | "now" | "wouldBe">;

/** The data nodes as a target is resolved against them (`Membership` is one). */
export interface DataNodes {
  readonly dataRanks: readonly number[];
  zoneOf(rank: number): string;
}

/**
 * Resolves a `--lose` target: an integer that is a data rank names that rank; anything else names
 * the zone of that name, every data rank in it.
 *
 * @throws {DfsError} `INVALID_REQUEST` for an empty target; `NOT_FOUND` for one that is neither a
 *   data rank nor a zone (the message lists the data ranks and zones there are).
 */
export function resolveTarget(target: string, nodes: DataNodes): LossTarget {
  if (target === "") {
    throw new DfsError("INVALID_REQUEST", "Invalid request: target must not be empty");
  }
  if (/^\d+$/.test(target)) {
    const rank = Number(target);
    if (nodes.dataRanks.includes(rank)) {
      return { target, kind: "rank", ranks: [rank], zones: [nodes.zoneOf(rank)] };
    }
  }
  const ranks = nodes.dataRanks.filter((r) => nodes.zoneOf(r) === target);
  if (ranks.length > 0) return { target, kind: "zone", ranks, zones: [target] };
  const zones = [...new Set(nodes.dataRanks.map((r) => nodes.zoneOf(r)))].sort();
  throw new DfsError(
    "NOT_FOUND",
    `Cannot find ${JSON.stringify(target)}: it is neither a data rank nor a zone (data ranks ` +
      `${nodes.dataRanks.join(", ")}; zones ${zones.map((z) => JSON.stringify(z)).join(", ")})`,
  );
}

/** How `planLoss` tells a live replica, and how many names it keeps. */
export interface PlanLossOptions {
  /** Ranks down or gone now: their replicas are not live already (default: none). */
  alreadyLost?: (rank: number) => boolean;
  /** Replicas known missing on a rank that is up (default: none). */
  replicaMissing?: (chunkId: string, rank: number) => boolean;
  /** Names kept per list of lost files (default `DOCTOR_NAMES_MAX`). */
  namesMax?: number;
}

/**
 * Counts, in one pass over `files`, what is degraded now and what taking the ranks in `lose` away
 * on top of those already lost would do: files that would keep a live replica of every chunk but
 * have fewer of some chunk than now ("under-replicated": files, those chunks, their bytes), and
 * files that would have a chunk with no live replica left ("lost": files, their bytes, the first
 * `namesMax` names in byte order). Files degraded already are counted again only if the loss
 * makes them worse; a file lost now is never counted as would-be lost.
 */
export function planLoss(
  files: Iterable<Manifest>,
  lose: ReadonlySet<number>,
  options: PlanLossOptions = {},
): LossPlan {
  const planner = new LossPlanner(lose, options);
  for (const m of files) planner.add(m);
  return planner.result();
}

/**
 * `planLoss` a file at a time, for a pass that gives way between files (rank 0's `doctor`): the
 * same counts of the files added.
 */
export class LossPlanner {
  #lose: ReadonlySet<number>;
  #alreadyLost: (rank: number) => boolean;
  #replicaMissing: (chunkId: string, rank: number) => boolean;
  #now: { underReplicated: Tally; lost: LossTally };
  #wouldBe: { underReplicated: Tally; lost: LossTally };
  #files = 0;
  #chunks = 0;

  constructor(lose: ReadonlySet<number>, options: PlanLossOptions = {}) {
    this.#lose = lose;
    this.#alreadyLost = options.alreadyLost ?? (() => false);
    this.#replicaMissing = options.replicaMissing ?? (() => false);
    const namesMax = options.namesMax ?? DOCTOR_NAMES_MAX;
    this.#now = { underReplicated: new Tally(), lost: new LossTally(namesMax) };
    this.#wouldBe = { underReplicated: new Tally(), lost: new LossTally(namesMax) };
  }

  /** Counts one file. */
  add(m: Manifest): void {
    this.#files++;
    this.#chunks += m.chunks.length;
    const nowFile = new FileTally();
    const afterFile = new FileTally();
    for (const c of m.chunks) {
      let liveNow = 0;
      let liveAfter = 0;
      for (const r of c.ranks) {
        if (this.#alreadyLost(r) || this.#replicaMissing(c.id, r)) continue;
        liveNow++;
        if (!this.#lose.has(r)) liveAfter++;
      }
      nowFile.add(c.size, liveNow, c.ranks.length);
      if (liveNow > 0) afterFile.add(c.size, liveAfter, liveNow);
    }
    nowFile.into(m, this.#now);
    if (!nowFile.lost) afterFile.into(m, this.#wouldBe);
  }

  /** The counts of the files added so far. */
  result(): LossPlan {
    const [now, wouldBe] = [this.#now, this.#wouldBe];
    return {
      files: this.#files,
      chunks: this.#chunks,
      now: { underReplicated: now.underReplicated.result(), lost: now.lost.result() },
      wouldBe: { underReplicated: wouldBe.underReplicated.result(), lost: wouldBe.lost.result() },
    };
  }
}

/** One file's chunks against a baseline: any with no live replica, and those with fewer. */
class FileTally {
  lost = false;
  fewerChunks = 0;
  fewerBytes = 0;

  add(size: number, live: number, baseline: number): void {
    if (live === 0) this.lost = true;
    else if (live < baseline) {
      this.fewerChunks++;
      this.fewerBytes += size;
    }
  }

  /** Counts the file as lost, or as under-replicated, or not at all. */
  into(m: Manifest, to: { underReplicated: Tally; lost: LossTally }): void {
    if (this.lost) to.lost.add(m.name, m.size);
    else if (this.fewerChunks > 0) to.underReplicated.add(this.fewerChunks, this.fewerBytes);
  }
}

class Tally {
  #files = 0;
  #chunks = 0;
  #bytes = 0;

  add(chunks: number, bytes: number): void {
    this.#files++;
    this.#chunks += chunks;
    this.#bytes += bytes;
  }

  result(): UnderReplication {
    return { files: this.#files, chunks: this.#chunks, bytes: this.#bytes };
  }
}

/** Lost files: all counted, the first `namesMax` names (byte order) kept. */
class LossTally {
  #files = 0;
  #bytes = 0;
  #names: FirstNames;

  constructor(namesMax: number) {
    this.#names = new FirstNames(namesMax);
  }

  add(name: string, bytes: number): void {
    this.#files++;
    this.#bytes += bytes;
    this.#names.add(name);
  }

  result(): FileLoss {
    return { files: this.#files, bytes: this.#bytes, names: this.#names.result() };
  }
}

/**
 * The first `max` of the names added, in UTF-16 code unit order (byte order for ASCII, as `list`
 * sorts). Holds at most `2 * max` names: it sorts and trims whenever it holds that many.
 */
export class FirstNames {
  #max: number;
  #names: string[] = [];
  /** Once trimmed, no name at or after this one can be among the first. */
  #bound: string | undefined;

  constructor(max: number) {
    this.#max = max;
  }

  add(name: string): void {
    if (this.#max === 0 || (this.#bound !== undefined && name >= this.#bound)) return;
    this.#names.push(name);
    if (this.#names.length >= 2 * this.#max) this.#trim();
  }

  /** The names kept, in order. */
  result(): string[] {
    this.#trim();
    return [...this.#names];
  }

  #trim(): void {
    this.#names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    if (this.#names.length > this.#max) {
      this.#names.length = this.#max;
      this.#bound = this.#names[this.#max - 1];
    }
  }
}
