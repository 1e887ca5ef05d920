/**
 * What losing some data nodes would do to a store, counted in the tests from files' metadata,
 * apart from rank 0's `loss.ts`, to check `doctor --lose` against.
 *
 * @module
 */

/** The part of a file's metadata the count needs. */
export interface LossInput {
  name: string;
  size: number;
  chunks: { size: number; ranks: number[] }[];
}

/** What losing `ranks` would do to `metas` with every data node up. */
export function expectedLoss(metas: readonly LossInput[], ranks: ReadonlySet<number>) {
  const underReplicated = { files: 0, chunks: 0, bytes: 0 };
  const lost = { files: 0, bytes: 0, names: [] as string[] };
  for (const m of metas) {
    const hit = m.chunks.filter((c) => c.ranks.some((r) => ranks.has(r)));
    if (hit.some((c) => c.ranks.every((r) => ranks.has(r)))) {
      lost.files++;
      lost.bytes += m.size;
      lost.names.push(m.name);
    } else if (hit.length > 0) {
      underReplicated.files++;
      underReplicated.chunks += hit.length;
      underReplicated.bytes += hit.reduce((n, c) => n + c.size, 0);
    }
  }
  lost.names.sort();
  return { underReplicated, lost };
}
