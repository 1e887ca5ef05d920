/**
 * The fast path of bringing a restarted data node back in line: its summary (`SummaryPage`, what
 * start-up's fast path reads) checked against what the index says it should hold, instead of every
 * manifest it holds sent over, compared and sent back whole (`planReconcile`). Pure.
 *
 * Rank 0 counts, of the files of the index that place a chunk on the node, those the node is the
 * first holder of and the others, with the sums of their fingerprints (`printOf`); the releases
 * the node missed while it was down count too, since it still holds those versions (they are sent
 * once it is up). The node sends whole the manifests it is the first holder of and its tombstones,
 * and counts and sums the others. If both sides agree and every chunk is present, the node holds
 * exactly what it should: its repair drops its tombstones and stray blobs, and nothing is copied.
 * Otherwise there is no fast plan, and the node is reconciled manifest by manifest.
 *
 * @module
 */

import { addPrint, printOf } from "../common/fingerprint.ts";
import { holdersOf, type Manifest, type RankRepair } from "../common/manifest.ts";
import { readManifests } from "../common/manifest_codec.ts";
import type { SummaryTotals } from "../common/node_protocol.ts";

/** Counts and fingerprint sums of a set of manifests. */
interface Tally {
  count: number;
  sum: number;
}

/** One rank's summary checked against what the index expects of it (see the module). */
export class ReconcileCheck {
  readonly #rank: number;
  readonly #seed: number;
  /** Expected: files first held by the rank, and the others placing a chunk on it. */
  #first: Tally = { count: 0, sum: 0 };
  #others: Tally = { count: 0, sum: 0 };
  /** Bytes of the chunks the index places on the rank (missed releases left out). */
  #bytesHeld = 0;
  /** Sent whole by the node: the files it holds first, and its tombstones. */
  #whole: Tally = { count: 0, sum: 0 };
  #tombstones: { name: string; version: number }[] = [];
  #disagrees = false;

  /** A check of `rank`'s summary made with fingerprints keyed by `seed`. */
  constructor(rank: number, seed: number) {
    this.#rank = rank;
    this.#seed = seed;
  }

  /** Counts in a file of the index (present, not a tombstone): the rank holds it if it has a chunk there. */
  expect(m: Manifest): void {
    const bytes = this.#count(m);
    if (bytes > 0) this.#bytesHeld += bytes;
  }

  /** Counts in a version the rank missed the release of: it holds it still. */
  expectMissed(m: Manifest): void {
    this.#count(m);
  }

  /**
   * Counts `m` in if it places a chunk on the rank, as its first holder or not: the bytes it
   * places there, or -1 (one pass over its chunks, no set made: every file of the index comes here).
   */
  #count(m: Manifest): number {
    let first = Infinity;
    let bytes = -1;
    for (const c of m.chunks) {
      for (const r of c.ranks) first = Math.min(first, r);
      if (c.ranks.includes(this.#rank)) bytes = Math.max(bytes, 0) + c.size;
    }
    if (bytes < 0) return -1;
    const tally = first === this.#rank ? this.#first : this.#others;
    tally.count++;
    tally.sum = addPrint(tally.sum, printOf(m.name, m.version, this.#seed));
    return bytes;
  }

  /** Reads a page of the node's summary manifests; false once they cannot agree. */
  add(manifests: Uint8Array): boolean {
    if (this.#disagrees) return false;
    for (const m of readManifests(manifests)) {
      if (m.deleted) {
        this.#tombstones.push({ name: m.name, version: m.version });
        continue;
      }
      // The node sends whole what its copy of the manifest says it holds first.
      if (Math.min(...holdersOf(m)) !== this.#rank) {
        this.#disagrees = true;
        return false;
      }
      this.#whole.count++;
      this.#whole.sum = addPrint(this.#whole.sum, printOf(m.name, m.version, this.#seed));
    }
    return true;
  }

  /**
   * The repair, once every page was added and `totals` is the summary's last word; undefined if
   * the node does not hold exactly what the index expects, every chunk present.
   */
  repair(totals: SummaryTotals): RankRepair | undefined {
    const agrees = !this.#disagrees && totals.allPresent &&
      this.#whole.count === this.#first.count && this.#whole.sum === this.#first.sum &&
      totals.others === this.#others.count && totals.othersSum === this.#others.sum &&
      totals.count === this.#whole.count + this.#tombstones.length + totals.others;
    if (!agrees) return undefined;
    return { drop: this.#tombstones, deleteBlobs: totals.strayBlobs, bytesHeld: this.#bytesHeld };
  }
}
