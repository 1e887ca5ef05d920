/**
 * Rank 0: the store every gateway serves, split by concern.
 *
 * - `store.ts`: `DfsStore`, the `FileStore` put together from the parts below
 * - `node_client.ts`, `membership.ts`: the typed client of the data nodes; which nodes are up
 * - `placement.ts`: which nodes a chunk goes to; `file_index.ts`: the current version of each name
 * - `give_way.ts`: walks over the whole index a step at a time, letting other work run between
 * - `namespace.ts`: commits, removals, renames; `releases.ts`: pins and releases of old versions
 * - `list_merge.ts`: the k-way merge of the data nodes' pages of names behind `list`
 * - `uploads.ts`: the upload data path; `reads.ts`: reads with failover and read repair
 * - `replicas.ts`: checking and copying one chunk's replicas; `integrity.ts`: fsck and the scrubber
 * - `loss.ts`: pure: what losing a data node or a zone would leave under-replicated or lost (`doctor`)
 * - `plans.ts`: pure plans of recovery, reconcile and re-replication; `recovery.ts`: their executors
 * - `launch.ts`, `supervisor.ts`, `cluster.ts`: starting the ranks, watching them, the whole cluster
 *
 * @module
 */

export { type Cluster, type ClusterOptions, RANKS_MAX, startCluster } from "./cluster.ts";
export { type LaunchedRank, type Launcher, type PortRank, WorkerLauncher } from "./launch.ts";
export { DfsStore, STATUS_TIMEOUT_MS, type StoreOptions } from "./store.ts";
export {
  HEARTBEAT_INTERVAL_MS,
  HEARTBEAT_TIMEOUT_MS,
  REREPLICATE_AFTER_MS,
  RESTART_BACKOFF_MS,
} from "./supervisor.ts";
export type { RecoveryPlan } from "./plans.ts";
