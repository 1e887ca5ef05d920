/**
 * Manifests for the metadata tests: blob and chunk ids made from numbers, and a manifest from
 * `[id, size, ranks]` triples.
 *
 * @module
 */

import { chunkIdOf } from "../common/chunk_id.ts";
import type { Manifest } from "../common/manifest.ts";

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
