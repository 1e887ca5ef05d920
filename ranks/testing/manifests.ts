/**
 * Manifests for the metadata tests: blob and chunk ids made from numbers, and a manifest from
 * `[id, size, ranks]` triples.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { chunkIdOf, newBlobId } from "../common/chunk_id.ts";
import { encodeChunkIdList } from "../common/chunk_id_set.ts";
import type { Manifest, RankRepair, RankScan } from "../common/manifest.ts";
import { ManifestWriter, readManifests } from "../common/manifest_codec.ts";

/** A blob id made from a number. */
export const blob = (n: number): string => n.toString(16).padStart(32, "0");
/** The id of the chunk at `offset` of blob `n`. */
export const chunk = (n: number, offset = 0): string => chunkIdOf(blob(n), offset);

/** A manifest of `name` at `version` with these chunks (`[id, size, ranks]`). */
export function manifest(
  name: string,
  version: number,
  chunks: [string, number, number[]][],
): Manifest {
  return {
    name,
    version,
    size: chunks.reduce((n, [, size]) => n + size, 0),
    sha256: "0".repeat(64),
    modified: 1000 + version,
    chunks: chunks.map(([id, size, ranks]) => ({ id, size, ranks })),
  };
}

/**
 * A small file of `bytes` at `version` (modified at 1): one chunk of a new blob, with its CRC32,
 * on `ranks` (1 and 2 by default), as a data node keeps in its log.
 */
export function smallFile(
  name: string,
  version: number,
  bytes: Uint8Array,
  ranks: number[] = [1, 2],
): Manifest {
  const id = chunkIdOf(newBlobId(), 0);
  return {
    name,
    version,
    size: bytes.length,
    sha256: "0".repeat(64),
    modified: 1,
    chunks: [{ id, size: bytes.length, ranks, crc32: crc32(bytes) }],
  };
}

/** A data node's scan as the tests write it: manifests as objects, chunk ids kept in its log. */
export interface TestScan {
  rank: number;
  manifests: Manifest[];
  blobs: [string, number][];
  inLog?: string[];
  opened?: RankScan["opened"];
}

/** The `RankScan` a node would send for `scan`. */
export function scanOf(scan: TestScan): RankScan {
  const manifests = new ManifestWriter();
  for (const m of scan.manifests) manifests.add(m);
  const { rank, blobs, opened } = scan;
  const inLog = encodeChunkIdList(scan.inLog ?? []);
  return { rank, manifests: manifests.bytes(), blobs, inLog, ...(opened ? { opened } : {}) };
}

/** A repair with the manifests it keeps as objects. */
export function keptIn(repair: RankRepair | undefined):
  | Omit<RankRepair, "keep"> & {
    keep: Manifest[];
  }
  | undefined {
  return repair && { ...repair, keep: [...readManifests(repair.keep ?? new Uint8Array())] };
}

/** The manifests a scan holds, as objects. */
export function manifestsIn(scan: RankScan): Manifest[] {
  return [...readManifests(scan.manifests)];
}

/** Manifests back to back, as a scan or a repair holds them. */
export function manifestBytes(manifests: Manifest[]): Uint8Array {
  const writer = new ManifestWriter();
  for (const m of manifests) writer.add(m);
  return writer.bytes();
}
