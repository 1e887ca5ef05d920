/**
 * Test seams: a whole cluster in one thread (`MemoryCluster`), and a launcher that crashes, hangs
 * or kills Worker ranks of a real server (`FaultyLauncher`).
 *
 * @module
 */

export { MemoryCluster, type MemoryClusterOptions } from "./memory_cluster.ts";
export { FaultyLauncher } from "./faulty_launcher.ts";
