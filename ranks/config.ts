/**
 * What `dfs serve` can set, with its defaults, in one place: the CLI's help and parsing read the
 * defaults here, and the parts of the server take the values from `ServerOptions`. Fixed bounds
 * that no option changes stay beside the code they bound, named with their units.
 *
 * @module
 */

import { FRAME_SIZE_BYTES_MAX } from "../protocol/limits.ts";
import { SCRUB_BUSY_OPS_PER_SEC_MAX } from "./rank0/integrity.ts";

/** Limits of the client gateway, each settable on `dfs serve`. */
export interface ServerLimits {
  /**
   * Open client connections. At the limit a new connection closes the idlest one with no request
   * in flight (one that has not finished its handshake first); when every one has a request in
   * flight, the new one is answered `UNAVAILABLE` and closed.
   */
  connectionsMax: number;
  /** Open connections from one client address (IP), at most; the same rule at its limit. */
  connectionsPerAddressMax: number;
  /** Requests in flight on one connection. */
  requestsInflightMax: number;
  /**
   * Uploads in progress on one connection: a put over it waits (holding that connection's frame
   * loop) until one of the connection's uploads ends, so one client can only slow itself.
   */
  uploadsPerConnectionMax: number;
  /**
   * Uploads in progress from one client address, all its connections together: a put over it
   * waits the same way. Below the server-wide `UPLOADS_INFLIGHT_MAX`, so one address never holds
   * every upload slot.
   */
  uploadsPerAddressMax: number;
  /**
   * An upload that receives no data for this long is failed with `UNAVAILABLE`, giving its slots
   * back (time the server itself held the connection's frames back does not count).
   */
  uploadStallTimeoutMs: number;
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
  // A quarter of the connections, and room for the benchmark's most clients (`CLIENTS_MAX`).
  connectionsPerAddressMax: 256,
  requestsInflightMax: 64,
  // An eighth and a half of the server-wide `UPLOADS_INFLIGHT_MAX` (64).
  uploadsPerConnectionMax: 8,
  uploadsPerAddressMax: 32,
  // Like a client that stops reading (`writeTimeoutMs`): a minute.
  uploadStallTimeoutMs: 60_000,
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
  /** Client operations in the last second over which the scrubber waits (up to 500 ms a file). */
  scrubBusyOpsPerSec: SCRUB_BUSY_OPS_PER_SEC_MAX,
  /** A data node down this long (its restarts failing) has its replicas copied to live nodes. */
  rereplicateAfterMs: 60_000,
  /** Where remote data nodes connect (with a cluster secret file only). */
  nodePort: 7071,
  /** MiB of memory rank 0 keeps small files written or read lately in (0: none). */
  cacheMib: 64,
} as const;
