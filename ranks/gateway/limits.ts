/**
 * The CBOR gateway's limits and names: what `dfs serve` sets (`ServerLimits`, with their defaults
 * in `ranks/config.ts`), the server name it announces, and the fixed bounds on one connection's
 * work. Pure: no I/O.
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";
import { FRAME_SIZE_BYTES_MAX, FRAME_SIZE_BYTES_MIN } from "../../protocol/limits.ts";
import { DEFAULT_LIMITS, type ServerLimits } from "../config.ts";

/** The version string the server reports in its handshake. */
export const SERVER_NAME = "dfs/0.1.0";

/** Bytes a list entry takes in a frame besides its name (keys, size, time, replicas), at most. */
export const LIST_ENTRY_OVERHEAD_BYTES = 64;

/**
 * Refused or failed uploads a connection may have whose remaining data frames are still being
 * dropped, per request it may have in flight.
 */
export const FAILED_UPLOADS_PER_REQUEST_MAX = 2;

/** The shares that must allow at least one of what they bound, with their `dfs serve` options. */
const SHARES = [
  ["connectionsPerAddressMax", "--connections-per-address-max"],
  ["uploadsPerConnectionMax", "--uploads-per-connection-max"],
  ["uploadsPerAddressMax", "--uploads-per-address-max"],
] as const;

/**
 * `DEFAULT_LIMITS` with the given ones in place (undefined ones keep their default).
 *
 * @throws {DfsError} `INVALID_REQUEST` for a frame limit outside `FRAME_SIZE_BYTES_MIN` to
 *   `FRAME_SIZE_BYTES_MAX`, or a per-connection or per-address share below 1.
 */
export function resolveLimits(given: Partial<ServerLimits> = {}): ServerLimits {
  const limits: ServerLimits = { ...DEFAULT_LIMITS };
  for (const [key, value] of Object.entries(given)) {
    if (value !== undefined) limits[key as keyof ServerLimits] = value;
  }
  const frame = limits.frameSizeBytesMax;
  if (frame < FRAME_SIZE_BYTES_MIN || frame > FRAME_SIZE_BYTES_MAX) {
    throw new DfsError(
      "INVALID_REQUEST",
      `--frame-size-bytes-max must be from ${FRAME_SIZE_BYTES_MIN} to ${FRAME_SIZE_BYTES_MAX}, got ${frame}`,
    );
  }
  for (const [key, option] of SHARES) {
    if (limits[key] < 1) {
      throw new DfsError("INVALID_REQUEST", `${option} must be at least 1, got ${limits[key]}`);
    }
  }
  return limits;
}
