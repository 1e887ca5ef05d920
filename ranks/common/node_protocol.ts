/**
 * Messages between rank 0 and the data nodes. Point-to-point requests go through `Comm.call`
 * (rank 0's typed client of them is `rank0/node_client.ts`), `list` among them, a page per call;
 * the cluster-wide question (`scan` at start-up) is a `bcast` from rank 0 followed by a `gather`
 * on the tag the broadcast names.
 *
 * Glossary of the verbs:
 * - `write`: a chunk's bytes into its upload's blob; not durable until a `commit` names it.
 * - `commit`: make a manifest's chunks durable and append the manifest to the log (a small file's
 *   one chunk travels with it and is kept in the log record).
 * - `read`: a chunk's bytes back, checked against its CRC32.
 * - `restore`: rewrite a damaged or missing replica from good bytes, durably (repairs).
 * - `rename`: one log record that moves a version to a new name (or new placement) at once.
 * - `release`: drop a superseded version: logged, then its chunks removed.
 * - `discard`: remove the chunks of an upload that will never commit.
 * - `repair`: hold exactly these manifests from now on and delete these blobs (start-up,
 *   reconcile).
 * - `scan`: everything the node holds (manifests, blobs, chunks in its log), and what opening its
 *   log found.
 * - `verifyLog`: re-read the whole log and check every record (the scrubber's check of the
 *   metadata); damage is rewritten from the node's memory, a log cut under it fails the node.
 * - `list`: a page of the node's newest version of each name under a prefix, in name order, after
 *   a cursor (rank 0 merges the nodes' pages: `rank0/list_merge.ts`).
 * - `statfs`, `ping`: the size and free space of its disk; a heartbeat, which also checks that
 *   the node's folder and log are still there.
 *
 * A node whose disk failed answers every call with `NODE_FAILED` (see `node/disk_health.ts`).
 *
 * @module
 */

import type { ListingPage, LogOpened, Manifest, RankRepair, RankScan } from "./manifest.ts";

/**
 * Most entries one `list` call asks a data node for: a page of its names. Rank 0 holds a page or
 * two per node while it merges them; pages of 2,048 lived long enough for their buffers to reach
 * the old generation (~25 MB more memory after a listing of 200,000 names), pages of 1,024 ~6 MB,
 * as fast.
 */
export const NODE_LIST_ENTRIES_MAX = 1024;

/** A request rank 0 sends to one data node. */
export type NodeCall =
  /** Open a blob for an upload's chunks written by a client directly (`node/direct_writes.ts`). */
  | { op: "expect"; blob: string; bytes: number }
  /** Close it once every chunk the commit will name was written as it says. */
  | { op: "seal"; blob: string; chunks: { id: string; size: number; crc32: number }[] }
  /** Write a chunk into its blob (made durable by the commit that names it). */
  | { op: "write"; id: string; bytes: Uint8Array; crc32?: number }
  /** Rewrite a damaged or missing replica from a good one (read repair), atomically. */
  | { op: "restore"; id: string; bytes: Uint8Array; crc32?: number }
  /**
   * Read a chunk back; the reply is its bytes, transferred. `into` is a spare buffer to fill (a
   * part of one, on the node itself: see `node/serve.ts`). `name` and `version` name the file
   * it belongs to: a small file's chunk is found through its commit record, which carries it.
   */
  | {
    op: "read";
    id: string;
    size: number;
    crc32?: number;
    into?: ArrayBuffer | Uint8Array<ArrayBuffer>;
    name?: string;
    version?: number;
  }
  /**
   * Make the manifest's chunks on this node durable, then append the manifest to the log; with
   * `data` (a small file's one chunk), keep the chunk in the log record itself.
   */
  | { op: "commit"; manifest: Manifest; data?: Uint8Array }
  /** Rename at once: the version `fromVersion` of the tombstone's name becomes `manifest`. */
  | { op: "rename"; fromVersion: number; tombstone?: Manifest; manifest: Manifest }
  /**
   * Compose at once: the `sources` give their chunks to `manifest` and leave tombstones (see
   * `node/log_record.ts`); nothing is released.
   */
  | { op: "compose"; sources: { name: string; version: number }[]; manifest: Manifest }
  /** Drop a superseded version: log it, then remove its chunks on this node. */
  | { op: "release"; name: string; version: number }
  /** Remove chunks of an upload that never committed. */
  | { op: "discard"; ids: string[] }
  /** The size and free space of the file system under this node's folder. */
  | { op: "statfs" }
  /** A heartbeat: answered at once. */
  | { op: "ping" }
  /** The first page of this node's summary, fingerprints keyed by `seed` (reconciling it). */
  | { op: "summary"; seed: number }
  /** The next page of the summary last asked for (`SummaryPage`); NOT_FOUND if none is being made. */
  | { op: "summaryPage" }
  /**
   * The next piece of the scan's manifests (`ScanAnswer`), a `ScanPiece`; NOT_FOUND if none is
   * being sent.
   */
  | { op: "scanPage" }
  /** What this node holds, for reconciling it after a restart. */
  | { op: "scan" }
  /** Start-up repair: hold exactly `repair.keep` from now on and remove `repair.deleteBlobs`. */
  | { op: "repair"; repair: RankRepair }
  /** Re-read and check the whole log; the answer is a `LogCheck`. */
  | { op: "verifyLog" }
  /**
   * A page of this node's newest version of each name under `prefix` (tombstones too), in UTF-16
   * code unit order, after `after` (exclusive), at most `limit` (1 to `NODE_LIST_ENTRIES_MAX`);
   * the answer is a `ListAnswer`.
   */
  | { op: "list"; prefix: string; after?: string; limit: number };

/** What a data node's check of its log found (`verifyLog`). */
export interface LogCheck {
  rank: number;
  /** Bytes of log read. */
  bytes: number;
  /** Intact records read. */
  records: number;
  /** Damaged regions found, and their bytes. */
  damagedRegions: number;
  damagedBytes: number;
  /** Bytes written to the log that the file no longer has (cut under the node: it fails). */
  missingBytes: number;
  /** The log was rewritten from the node's memory (the damage is gone). */
  rewritten: boolean;
}

/** A question rank 0 broadcasts to every data node; each answers with `gather` on `tag`. */
export type NodeCollective =
  | { op: "scan"; tag: number }
  /**
   * What it holds, summed up (`ScanSummary`), fingerprints keyed by `seed`: the answer is the
   * first `SummaryPage`; `summaryPage` calls bring the others.
   */
  | { op: "summary"; seed: number; tag: number };

/** A data node's answer to `list`: its entries in order, and whether more remain after them. */
export type ListAnswer = ListingPage;

/**
 * What a data node holds, summed up for a fast start-up (`FastPlanner`): whole, only the
 * manifests it is the first holder of (no chunk of them is on a lower rank) and its tombstones; of
 * the others, how many and the sum of their fingerprints (`printOf` with the seed asked for).
 */
export interface ScanSummary extends SummaryTotals {
  rank: number;
  /** Back to back (`ManifestWriter`). */
  manifests: Uint8Array;
}

/**
 * Bytes of manifests in one page of a summary, about (a page ends with the manifest that passes
 * it): a node's summary goes in pages, the first as the answer to the `summary` collective, the
 * others as answers to `summaryPage` calls, so that no frame over TCP (`TCP_FRAME_BYTES_MAX`)
 * and no buffer holds a whole node's (~32 MB for the first-held manifests of 667,000 small files).
 */
export const SUMMARY_PAGE_BYTES = 1024 * 1024;

/** A page of a data node's summary (`ScanSummary`); the last carries the totals. */
export interface SummaryPage {
  rank: number;
  /** Manifests, back to back (`ManifestWriter`): about `SUMMARY_PAGE_BYTES`. */
  manifests: Uint8Array;
  totals?: SummaryTotals;
}

/** What a summary says besides its manifests. */
export interface SummaryTotals {
  /** Manifests held in all, every version. */
  count: number;
  /** Manifests held but not sent whole, and the sum of their fingerprints (`addPrint`). */
  others: number;
  othersSum: number;
  /** Every chunk of every manifest held that is placed on this node is present on it. */
  allPresent: boolean;
  /** Blob files that no manifest held references. */
  strayBlobs: string[];
  /** Bytes of the chunks of its manifests present on it. */
  bytesHeld: number;
  /** What opening its log found. */
  opened: LogOpened;
}

/**
 * Bytes of manifests in the answer to `scan` and in each `scanPage` after it (all but the last
 * piece hold exactly this many): a node of millions of files sends its scan in pieces that rank
 * 0 joins, so that no frame over TCP (`TCP_FRAME_BYTES_MAX`) holds all of it. The node encodes
 * each piece as it is asked for, so it never holds all of them either.
 */
export const SCAN_PAGE_BYTES = 8 * 1024 * 1024;

/**
 * A data node's answer to `scan`: its `RankScan` with the first piece of its manifests (at most
 * `SCAN_PAGE_BYTES`), and whether more follow: `scanPage` calls bring them, in order, until one
 * says no more follow.
 */
export type ScanAnswer = RankScan & { more: boolean };

/** A piece of a scan's manifests after the first (`scanPage`), and whether more follow. */
export interface ScanPiece {
  manifests: Uint8Array;
  more: boolean;
}

/** The first message rank 0 posts to a new data node Worker. */
export interface NodeInit {
  /**
   * `create`: make the folder if it is missing (at server start); false when the node is
   * restarted while the server runs (a vanished folder is a failed disk). `device`: the device
   * the folder must be on (a restart: the one it was on at start; an unmounted disk leaves an
   * empty folder on another).
   */
  init: { rank: number; size: number; dir: string; create?: boolean; device?: number };
}

/**
 * Most ranks one server runs, remote data nodes included: the size of every rank's `Comm`, so a
 * node that joins later has a rank within it.
 */
export const RANKS_MAX = 64;

/** The tag a data node sends on once it has opened its storage (`Comm.nextTag()` never yields 0). */
export const READY_TAG = 0;
