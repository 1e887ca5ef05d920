/**
 * The data node's public face: open a node in its folder on an `Env` and serve it on a `Comm`;
 * lock and check the data directory that holds every node's folder; and the stores' limits that
 * rank 0 plans with. The Worker entry is `worker.ts` (not re-exported: it runs on import).
 *
 * @module
 */

export { CHUNKS_DIR, DataNode, LOG_COMPACT_BYTES_MIN, LOG_FILE } from "./data_node.ts";
export { type DataNodeOptions, openDataNode } from "./open_node.ts";
export { serveNode, type ServeNodeOptions } from "./serve.ts";
export {
  checkFormat,
  checkRankFolders,
  DATA_FORMAT_VERSION,
  type DataDirOptions,
  FORMAT_FILE,
  LOCK_FILE,
  LOCK_TIMEOUT_MS,
  lockDataDir,
  openDataDir,
} from "./data_dir.ts";
export {
  type ChunkStore,
  type ChunkStoreOptions,
  DiskChunkStore,
  openDiskChunkStore,
} from "./chunk_store.ts";
export { openRecordLog, RecordLog, type RecordLogOptions, replayRecordLog } from "./record_log.ts";
