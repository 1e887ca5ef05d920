/**
 * Messages between rank 0 and the data nodes. Point-to-point requests go through `Comm.call`;
 * cluster-wide questions (`list`, `scan`) are a `bcast` from rank 0 followed by a `gather` on the
 * tag the broadcast names.
 *
 * @module
 */

import type { Listing, Manifest, RankRepair, RankScan } from "./manifest.ts";

/** A request rank 0 sends to one data node. */
export type NodeCall =
  /** Write a chunk into its blob (made durable by the commit that names it). */
  | { op: "write"; id: string; bytes: Uint8Array; crc32?: number }
  /** Rewrite a damaged or missing replica from a good one (read repair), atomically. */
  | { op: "restore"; id: string; bytes: Uint8Array; crc32?: number }
  /** Read a chunk back; the reply is its bytes, transferred. `into` is a spare buffer to fill. */
  | { op: "read"; id: string; size: number; crc32?: number; into?: ArrayBuffer }
  /**
   * Make the manifest's chunks on this node durable, then append the manifest to the log; with
   * `data` (a small file's one chunk), keep the chunk in the log record itself.
   */
  | { op: "commit"; manifest: Manifest; data?: Uint8Array }
  /** Rename at once: the version `fromVersion` of the tombstone's name becomes `manifest`. */
  | { op: "rename"; fromVersion: number; tombstone?: Manifest; manifest: Manifest }
  /** Drop a superseded version: log it, then remove its chunks on this node. */
  | { op: "release"; name: string; version: number }
  /** Remove chunks of an upload that never committed. */
  | { op: "discard"; ids: string[] }
  /** The size and free space of the file system under this node's folder. */
  | { op: "statfs" }
  /** A heartbeat: answered at once. */
  | { op: "ping" }
  /** What this node holds, for reconciling it after a restart. */
  | { op: "scan" }
  /** Test hooks (only with `testHooks`): die with an uncaught error, or stop answering. */
  | { op: "crash" }
  | { op: "hang" }
  /** Start-up repair: hold exactly `repair.keep` from now on and remove `repair.deleteBlobs`. */
  | { op: "repair"; repair: RankRepair };

/** A question rank 0 broadcasts to every data node; each answers with `gather` on `tag`. */
export type NodeCollective =
  | { op: "list"; prefix: string; tag: number }
  | { op: "scan"; tag: number };

/** A data node's answer to `list`. */
export type ListAnswer = Listing;

/** A data node's answer to `scan`. */
export type ScanAnswer = RankScan;

/** The first message rank 0 posts to a new data node Worker. */
export interface NodeInit {
  /** `testHooks` enables the `crash` and `hang` calls (tests only; off in normal serving). */
  init: { rank: number; size: number; dir: string; testHooks?: boolean };
}

/** The tag a data node sends on once it has opened its storage (`Comm.nextTag()` never yields 0). */
export const READY_TAG = 0;
