/**
 * A data node's summary of what it holds, for the fast path of start-up recovery
 * (`ScanSummary`, `rank0/summary_plan.ts`). Pure: the node gives its manifests and what it finds
 * of its chunks.
 *
 * @module
 */

import { blobOf, offsetOf } from "../common/chunk_id.ts";
import { addPrint, printOf } from "../common/fingerprint.ts";
import type { LogOpened, Manifest } from "../common/manifest.ts";
import { ManifestWriter } from "../common/manifest_codec.ts";
import type { ScanSummary } from "../common/node_protocol.ts";

/** What a node holds, as its summary is made of it. */
export interface Held {
  rank: number;
  /** Every manifest, every version. */
  manifests: Iterable<Manifest>;
  /** The chunks kept in its log. */
  inLog: { has(id: string): boolean };
  /** Every blob file, with its size. */
  blobs: ReadonlyMap<string, number>;
  opened: LogOpened;
}

/**
 * Sums up what a node holds (`ScanSummary`), fingerprints keyed by `seed`: whole, the manifests it
 * is the first holder of (no chunk of them on a lower rank) and its tombstones; of the others, how
 * many and the sum of their fingerprints. It checks each of its chunks (kept in the log, or a blob
 * reaching past the chunk's end: the rule of `isPresent`) and which blobs no manifest references.
 */
export function summarize(held: Held, seed: number): ScanSummary {
  const { rank, inLog, blobs } = held;
  const manifests = new ManifestWriter();
  let count = 0;
  let others = 0;
  let othersSum = 0;
  let allPresent = true;
  let bytesHeld = 0;
  const referenced = new Set<string>();
  for (const m of held.manifests) {
    count++;
    let first = Infinity;
    for (const c of m.chunks) {
      for (const r of c.ranks) first = Math.min(first, r);
      if (!c.ranks.includes(rank)) continue;
      if (inLog.has(c.id)) {
        bytesHeld += c.size;
        continue;
      }
      const blob = blobOf(c.id);
      referenced.add(blob);
      if ((blobs.get(blob) ?? -1) >= offsetOf(c.id) + c.size) bytesHeld += c.size;
      else allPresent = false;
    }
    if (m.deleted || first === rank) {
      manifests.add(m);
    } else {
      others++;
      othersSum = addPrint(othersSum, printOf(m.name, m.version, seed));
    }
  }
  return {
    rank,
    manifests: manifests.bytes(),
    count,
    others,
    othersSum,
    allPresent,
    strayBlobs: [...blobs.keys()].filter((blob) => !referenced.has(blob)),
    bytesHeld,
    opened: held.opened,
  };
}
