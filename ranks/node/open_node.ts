/**
 * Opening a data node's folder: made if missing (at server start) or checked to be there and on
 * its disk (a node restarted while the server runs), its chunk store opened and probed, and its log
 * replayed into a `DataNode`.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { DfsError } from "../../protocol/errors.ts";
import { denoEnv } from "../env/deno_env.ts";
import type { Env } from "../env/env.ts";
import { reasonOf, syncDirectory } from "./_fs.ts";
import { openDiskChunkStore } from "./chunk_store.ts";
import { CHUNKS_DIR, DataNode, PROBE_FILE } from "./data_node.ts";
import { missingPath, otherDevice, probeWrite } from "./disk_health.ts";

/** Options of `openDataNode()`. */
export interface DataNodeOptions {
  /** The node's disk, log and clock; default `denoEnv()`. */
  env?: Env;
  /** Log bytes below which it is never compacted (default `LOG_COMPACT_BYTES_MIN`). */
  compactBytesMin?: number;
  /** Bytes of manifests in each piece of a scan (default `SCAN_PAGE_BYTES`). */
  scanPageBytes?: number;
  /**
   * Create the folder if it is missing (default true: a new node at server start). A node
   * restarted while the server runs passes false: a folder that vanished is a failed disk, not a
   * new node (its mount point may be empty now, on the wrong disk).
   */
  create?: boolean;
  /**
   * The device the folder must be on, if given: a node restarted while the server runs is on the
   * disk it started on, or it does not start (an unmounted disk leaves its mount point an empty
   * folder on another file system, which must not fill up in its place).
   */
  device?: number;
}

/**
 * Opens the data node of `rank` in folder `dir` (created if missing, its entry made durable) on
 * `options.env`: opens its chunk store (`CHUNKS_DIR`) and replays its log (`LOG_FILE`) piece by
 * piece into the node, each record applied as it is decoded (neither the log's bytes nor its
 * records are kept: with a million files they would be most of a restart's memory).
 *
 * @throws {DfsError} UNAVAILABLE if the folder, the chunk store or the log cannot be opened.
 */
export async function openDataNode(
  rank: number,
  dir: string,
  options: DataNodeOptions = {},
): Promise<DataNode> {
  const env = options.env ?? denoEnv();
  if (options.create === false) {
    const missing = missingPath(env.fs, { folders: [dir], files: [] }) ??
      otherDevice(env.fs, dir, options.device);
    if (missing !== undefined) {
      throw new DfsError(
        "UNAVAILABLE",
        `Cannot open node folder "${dir}": ${missing} (its disk failed or was removed); a node's ` +
          `folder is made anew only when the server starts`,
      );
    }
  }
  // A node that held chunks before and finds no log has lost it; a new one simply has none yet.
  const heldChunks = missingPath(env.fs, { folders: [join(dir, CHUNKS_DIR)], files: [] }) ===
    undefined;
  try {
    await env.fs.mkdir(dir, { recursive: true });
    await syncDirectory(env.fs, dirname(dir));
  } catch (error) {
    throw new DfsError("UNAVAILABLE", `Cannot open node folder "${dir}": ${reasonOf(error)}`, {
      cause: error,
    });
  }
  const store = await openDiskChunkStore(join(dir, CHUNKS_DIR), env);
  try {
    await probeWrite(env.fs, join(dir, CHUNKS_DIR, PROBE_FILE));
    return await DataNode.replay(rank, {
      compactBytesMin: options.compactBytesMin,
      scanPageBytes: options.scanPageBytes,
      env,
      dir,
      store,
      heldChunks,
    });
  } catch (error) {
    await store.close();
    throw error;
  }
}
