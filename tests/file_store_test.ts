/**
 * The `FileStore` suite over `DfsClient`: the client library against a real `dfs serve` process
 * (4 ranks: rank 0 and 3 data nodes, 2 replicas) on 127.0.0.1 with a temp data directory.
 */

import { DfsClient } from "../client.ts";
import { fileStoreSuite } from "./file_store_suite.ts";
import { TestServer } from "./_server.ts";
import { MemoryCluster } from "../ranks/testing/memory_cluster.ts";

fileStoreSuite("DfsClient over a 4-rank, 2-replica server passes the FileStore suite", async () => {
  await using stack = new AsyncDisposableStack();
  const server = stack.use(await TestServer.start({ ranks: 4, replicas: 2 }));
  const client = stack.use(await DfsClient.connect(server.address));
  const owned = stack.move();
  return {
    store: client,
    dataNodes: 3,
    replicas: 2,
    [Symbol.asyncDispose]: () => owned.disposeAsync(),
  };
});

fileStoreSuite(
  "rank 0's store in-process (3 data nodes, 2 replicas) passes the FileStore suite",
  async () => {
    const cluster = await MemoryCluster.start({ ranks: 4, replicas: 2, epochMs: Date.now() });
    return {
      store: cluster.store,
      dataNodes: 3,
      replicas: 2,
      [Symbol.asyncDispose]: () => cluster.close(),
    };
  },
);
