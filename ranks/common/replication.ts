/**
 * Rules of replication that rank 0's parts share: how many replicas a file may ask for, and which
 * errors of a replica read mean the replica is damaged (to be rewritten from a good one) rather
 * than unreachable (to be retried elsewhere or reported).
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";

/**
 * Checks a replica count against the data nodes there are. With `ranks` (the `dfs serve` options),
 * the message names the options.
 *
 * @throws {DfsError} `INVALID_REQUEST` unless `replicas` is an integer from 1 to `dataNodes`.
 */
export function checkReplicas(
  replicas: number,
  dataNodes: number,
  options: { ranks?: number } = {},
): void {
  const what = options.ranks === undefined ? "replicas" : "--replicas";
  if (!Number.isInteger(replicas) || replicas < 1) {
    throw new DfsError("INVALID_REQUEST", `${what} must be a positive integer, got ${replicas}`);
  }
  if (replicas <= dataNodes) return;
  throw new DfsError(
    "INVALID_REQUEST",
    options.ranks === undefined
      ? `Cannot keep ${replicas} replicas: there are ${dataNodes} data nodes`
      : `--replicas ${replicas} needs at least ${replicas} data nodes, but --ranks ${options.ranks} gives ${dataNodes}`,
  );
}

/**
 * True when a replica read failed because the replica itself is bad: its bytes do not match their
 * CRC32 or size (`CORRUPTED`), or the node does not have it (`NOT_FOUND`). Any other failure (a
 * node down, a timeout) says nothing of the replica.
 */
export function isDamaged(error: unknown): boolean {
  return error instanceof DfsError && (error.code === "CORRUPTED" || error.code === "NOT_FOUND");
}
