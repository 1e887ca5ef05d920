/**
 * A `ManifestTable` over a model of its log for tests: records kept encoded by made-up offset,
 * read back from there, each offset read noted. Private to the node's tests.
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";
import { ManifestTable } from "./manifest_table.ts";

/** A table reading its records from `log` (offset to encoded record); `reads` lists each read. */
export function tableOnModelLog(): {
  table: ManifestTable;
  log: Map<number, Uint8Array>;
  reads: number[];
} {
  const log = new Map<number, Uint8Array>();
  const reads: number[] = [];
  const table = new ManifestTable((where) => {
    reads.push(where);
    const bytes = log.get(where);
    if (!bytes) throw new DfsError("CORRUPTED", `No record at ${where}`);
    return bytes;
  });
  return { table, log, reads };
}
