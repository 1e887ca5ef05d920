/**
 * The vocabulary rank 0, the data nodes and the gateways share: the `FileStore` interface
 * (`file_store.ts`), manifests and chunk refs (`manifest.ts`), chunk and blob ids (`chunk_id.ts`),
 * the node protocol with a glossary of its verbs (`node_protocol.ts`), the rules of replication
 * (`replication.ts`), and two small tools: a semaphore and a bounded parallel loop.
 *
 * @module
 */

export { READ_CHUNKS_INFLIGHT_MAX } from "./file_store.ts";
export type {
  ByteRange,
  ByteSource,
  FileReader,
  FileStore,
  ListOptions,
  StreamingFileStore,
  Upload,
} from "./file_store.ts";
export {
  BLOB_ID_PATTERN,
  BlobIds,
  blobOf,
  CHUNK_ID_PATTERN,
  chunkIdOf,
  isChunkId,
  isKeptInLog,
  LOG_FILE_BYTES_MAX,
  offsetOf,
  SMALL_READ_BYTES_MAX,
} from "./chunk_id.ts";
export {
  ATTR_NAME_BYTES_MAX,
  ATTRS_BYTES_MAX,
  checkAttrs,
  checkManifest,
  chunkIdsOn,
  type ChunkRef,
  type FileAttrs,
  fileMetaOf,
  holdersOf,
  type Listing,
  ListingBuilder,
  type ListingPage,
  listingPageOf,
  type Manifest,
  type RankRepair,
  type RankScan,
  replicasOf,
  toListing,
  tombstoneOf,
} from "./manifest.ts";
export {
  type ListAnswer,
  NODE_LIST_ENTRIES_MAX,
  type NodeCall,
  type NodeCollective,
  type NodeInit,
  READY_TAG,
  type ScanAnswer,
} from "./node_protocol.ts";
export { checkReplicas, isDamaged } from "./replication.ts";
export { forEachParallel } from "./parallel.ts";
export { Semaphore } from "./semaphore.ts";
