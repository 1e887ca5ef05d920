/**
 * Test seams: a whole cluster in one thread (`MemoryCluster`), a launcher that crashes, hangs or
 * kills Worker ranks of a real server (`FaultyLauncher`), and the helpers tests of rank 0 and the
 * data node share (`cluster_helpers.ts`, `manifests.ts`, `summaries.ts`).
 *
 * @module
 */

export { MemoryCluster, type MemoryClusterOptions } from "./memory_cluster.ts";
export { FaultyLauncher } from "./faulty_launcher.ts";
export { blobPath, blobsOn, bytesOf, flipByte, readAll, settle } from "./cluster_helpers.ts";
export { blob, chunk, manifest } from "./manifests.ts";
export { planFastRecovery, summarize } from "./summaries.ts";
