/**
 * A data node's summary of what it holds, for the fast path of start-up recovery
 * (`ScanSummary`, `rank0/summary_plan.ts`), made a page at a time (`SummaryPage`). Pure: the node
 * gives its manifests and what it finds of its chunks.
 *
 * @module
 */

import { blobOf, offsetOf } from "../common/chunk_id.ts";
import { addPrint, printOf } from "../common/fingerprint.ts";
import type { LogOpened, Manifest } from "../common/manifest.ts";
import { ManifestWriter } from "../common/manifest_codec.ts";
import type { EncodedManifest } from "./manifest_table.ts";
import {
  SUMMARY_PAGE_BYTES,
  type SummaryPage,
  type SummaryTotals,
} from "../common/node_protocol.ts";

/** What a node holds, as its summary is made of it. */
export interface Held {
  rank: number;
  /**
   * Every manifest, every version; with its encoding where the node has it at hand (copied into a
   * page as it is, not encoded again).
   */
  manifests: Iterable<Manifest | EncodedManifest>;
  /** The chunks kept in its log (of `m`: a small file's is found through its commit record). */
  inLog: { has(id: string, m: Manifest): boolean };
  /** Every blob file, with its size. */
  blobs: ReadonlyMap<string, number>;
  opened: LogOpened;
}

/**
 * Sums up what a node holds (`ScanSummary`), fingerprints keyed by `seed`, a page at a time: whole,
 * the manifests it is the first holder of (no chunk of them on a lower rank) and its tombstones;
 * of the others, how many and the sum of their fingerprints. It checks each of its chunks (kept in
 * the log, or a blob reaching past the chunk's end: the rule of `isPresent`) and which blobs no
 * manifest references. Each page goes on through the manifests from where the last stopped; the
 * last carries the totals. The node's manifests must not change in between.
 */
export class Summarizer {
  #held: Held;
  #seed: number;
  #manifests: Iterator<Manifest | EncodedManifest>;
  #count = 0;
  #others = 0;
  #othersSum = 0;
  #allPresent = true;
  #bytesHeld = 0;
  #referenced = new Set<string>();
  /** One page's bytes, reused: each page goes out as an exact copy. */
  #page = new ManifestWriter(SUMMARY_PAGE_BYTES + 1024);
  #done = false;
  /** The manifest read ahead, not yet counted. */
  #ahead: IteratorResult<Manifest | EncodedManifest> | undefined;

  constructor(held: Held, seed: number) {
    this.#held = held;
    this.#seed = seed;
    this.#manifests = held.manifests[Symbol.iterator]();
  }

  /** True once the last page was made. */
  get done(): boolean {
    return this.#done;
  }

  /**
   * The next page: manifests until they pass `pageBytes` (one more than fits, at least), and the
   * totals if no manifest is left.
   */
  next(pageBytes = SUMMARY_PAGE_BYTES): SummaryPage {
    const { rank } = this.#held;
    const page = this.#page;
    page.truncate(0);
    // One manifest is read ahead, so that the page holding the last one has the totals.
    let next = this.#ahead ?? this.#manifests.next();
    while (!next.done) {
      const held = next.value;
      if ("encoded" in held) {
        if (this.#sumUp(held.manifest)) page.addEncoded(held.encoded);
      } else if (this.#sumUp(held)) page.add(held);
      next = this.#manifests.next();
      if (page.byteLength >= pageBytes) break;
    }
    // Kept for the next page: its encoding, a view of a record read back, is copied.
    this.#ahead = next.done || !("encoded" in next.value)
      ? next
      : { value: { ...next.value, encoded: next.value.encoded.slice() } };
    if (!next.done) return { rank, manifests: page.bytes() };
    this.#done = true;
    return { rank, manifests: page.bytes(), totals: this.#totals() };
  }

  /** Counts `m` in; true if it goes whole (first held, or a tombstone). */
  #sumUp(m: Manifest): boolean {
    const { rank, inLog, blobs } = this.#held;
    this.#count++;
    let first = Infinity;
    for (const c of m.chunks) {
      for (const r of c.ranks) first = Math.min(first, r);
      if (!c.ranks.includes(rank)) continue;
      if (inLog.has(c.id, m)) {
        this.#bytesHeld += c.size;
        continue;
      }
      const blob = blobOf(c.id);
      this.#referenced.add(blob);
      if ((blobs.get(blob) ?? -1) >= offsetOf(c.id) + c.size) this.#bytesHeld += c.size;
      else this.#allPresent = false;
    }
    if (m.deleted || first === rank) return true;
    this.#others++;
    this.#othersSum = addPrint(this.#othersSum, printOf(m.name, m.version, this.#seed));
    return false;
  }

  #totals(): SummaryTotals {
    const { blobs, opened } = this.#held;
    return {
      count: this.#count,
      others: this.#others,
      othersSum: this.#othersSum,
      allPresent: this.#allPresent,
      strayBlobs: [...blobs.keys()].filter((blob) => !this.#referenced.has(blob)),
      bytesHeld: this.#bytesHeld,
      opened,
    };
  }
}
