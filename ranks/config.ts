/**
 * What `dfs serve` can set, with its defaults, in one place: the CLI's help and parsing read the
 * defaults here, and the parts of the server take the values from `ServerOptions`. Fixed bounds
 * that no option changes stay beside the code they bound, named with their units.
 *
 * @module
 */

import { FRAME_SIZE_BYTES_MAX } from "../protocol/limits.ts";

/** Limits of the client gateway, each settable on `dfs serve`. */
export interface ServerLimits {
  /** Open client connections; one more is answered `UNAVAILABLE` and closed. */
  connectionsMax: number;
  /** Requests in flight on one connection. */
  requestsInflightMax: number;
  /** A connection with no request in flight and no frame for this long is closed. */
  idleTimeoutMs: number;
  /** A new connection must complete the handshake within this time. */
  handshakeTimeoutMs: number;
  /** A connection whose socket accepts no bytes for this long (a client not reading) is closed. */
  writeTimeoutMs: number;
  /** Largest frame accepted, at least `FRAME_SIZE_BYTES_MIN`; announced in the hello. */
  frameSizeBytesMax: number;
}

/** The gateway's limits unless `dfs serve` says otherwise. */
export const DEFAULT_LIMITS: ServerLimits = {
  connectionsMax: 1024,
  requestsInflightMax: 64,
  idleTimeoutMs: 5 * 60_000,
  handshakeTimeoutMs: 10_000,
  writeTimeoutMs: 60_000,
  frameSizeBytesMax: FRAME_SIZE_BYTES_MAX,
};

/** Every other default of `dfs serve`. */
export const SERVE_DEFAULTS = {
  /** Ranks, rank 0 included: rank 0 and three data nodes. */
  ranks: 4,
  host: "127.0.0.1",
  port: 7070,
  dataDir: "./dfs-data",
  /** Copies of every chunk unless a put asks for another number. */
  replicas: 2,
  /** Bytes per second the background scrubber reads, over all replicas (0: off). */
  scrubBytesPerSec: 16 * 1024 * 1024,
  /** Pause between two scrub passes. */
  scrubPauseMs: 60_000,
  /** A data node down this long (its restarts failing) has its replicas copied to live nodes. */
  rereplicateAfterMs: 60_000,
} as const;
