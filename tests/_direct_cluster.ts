/**
 * A cluster for the direct data path's end-to-end tests (`direct_reads_test.ts`,
 * `direct_writes_test.ts`): `dfs serve --ranks 1` with a node port and a dashboard, and one
 * `dfs node` process per entry of `dataPorts`, with a data port where true; and what the tests
 * look at from outside: rank 0's throughput counters and sockets, the nodes' blob files, the
 * connections to a data port.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DfsClient } from "../client.ts";
import type { DirectRoute } from "../protocol/direct.ts";
import { rawConnection } from "./_frames.ts";
import { TestNode, writeSecret } from "./_nodes.ts";
import { TestServer } from "./_server.ts";
import { sleep, withTimeout } from "./_wait.ts";

/** How long a test waits for the nodes or the disks to reach a state. */
export const STATE_TIMEOUT_MS = 30_000;

/**
 * A server with only remote nodes, one per entry of `dataPorts` (with a data port where true),
 * keeping `replicas` replicas, with a dashboard (for its throughput counters).
 */
export async function directCluster(dataPorts: boolean[], replicas = 2) {
  const dir = await Deno.makeTempDir({ prefix: "dfs-direct-" });
  const secretFile = await writeSecret(dir);
  const server = await TestServer.start({
    ranks: 1,
    replicas,
    dataDir: `${dir}/rank0`,
    extraArgs: ["--node-port", "0", "--cluster-secret-file", secretFile, "--ui-port", "0"],
  });
  const nodes: TestNode[] = [];
  const clients: DfsClient[] = [];
  const ui = /; ui on ([\d.]+:\d+)/.exec(server.readyLine)?.[1];
  const throughput = async () => {
    const response = await fetch(`http://${ui}/api/throughput`);
    assert.equal(response.status, 200);
    return (await response.json()).totals as { readBytes: number; writtenBytes: number };
  };
  const cluster = {
    dir,
    server,
    nodes,
    /** A client, closed with the cluster. */
    async client(options: { direct?: boolean; verify?: boolean } = {}) {
      const client = await DfsClient.connect(server.address, options);
      clients.push(client);
      return client;
    },
    /** Bytes rank 0 counted as written since it started. */
    async writtenBytes(): Promise<number> {
      return (await throughput()).writtenBytes;
    },
    /** Bytes rank 0 has handed to readers since it started. */
    async readBytes(): Promise<number> {
      return (await throughput()).readBytes;
    },
    /**
     * Bytes rank 0 has received from clients and sent to nodes over the connections open now (the
     * clients' to its client port, the nodes' to its node port), as the kernel counts them.
     */
    async rank0Traffic(): Promise<number> {
      const fromClients = await socketBytes(portOf(server.address), "bytes_received");
      const toNodes = await socketBytes(portOf(server.nodeAddress!), "bytes_sent");
      return fromClients + toNodes;
    },
    /** Every blob file on the nodes (alive or not), as `rank/blob`. */
    async blobs(): Promise<string[]> {
      const names: string[] = [];
      for (const node of nodes) {
        try {
          for await (const e of Deno.readDir(`${node.dataDir}/store/chunks`)) {
            if (/^[0-9a-f]{32}$/.test(e.name)) names.push(`${node.rank}/${e.name}`);
          }
        } catch { /* no chunk folder yet */ }
      }
      return names.sort();
    },
    async [Symbol.asyncDispose]() {
      for (const client of clients) client.close();
      await Promise.all(nodes.map((n) => n.stop("SIGKILL")));
      await server.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  try {
    assert.ok(server.nodeAddress && ui, `the ready line names both ports: ${server.readyLine}`);
    for (const [i, dataPort] of dataPorts.entries()) {
      const node = await TestNode.start(server.nodeAddress!, {
        dataDir: `${dir}/node${i + 1}`,
        secretFile,
        args: dataPort ? ["--data-port", "0"] : [],
      });
      nodes.push(node);
    }
    const client = await cluster.client();
    await waitForStates(client, Object.fromEntries(nodes.map((n) => [n.rank, "up"])));
  } catch (error) {
    await cluster[Symbol.asyncDispose]();
    throw error;
  }
  return cluster;
}

export type Cluster = Awaited<ReturnType<typeof directCluster>>;

export async function waitForStates(
  client: DfsClient,
  want: Record<number, string>,
): Promise<void> {
  const deadline = Date.now() + STATE_TIMEOUT_MS;
  let last = "";
  while (Date.now() < deadline) {
    const status = await client.status();
    const states = Object.fromEntries(status.ranks.map((r) => [r.rank, r.state]));
    last = JSON.stringify(states);
    if (Object.entries(want).every(([rank, state]) => states[Number(rank)] === state)) return;
    await sleep(100);
  }
  assert.fail(`nodes did not reach ${JSON.stringify(want)} in time: ${last}`);
}

/** Waits until the nodes' blob files are `want` (releases and discards are asynchronous). */
export async function waitForBlobs(cluster: Cluster, want: string[], what: string): Promise<void> {
  const deadline = Date.now() + STATE_TIMEOUT_MS;
  let blobs = await cluster.blobs();
  while (JSON.stringify(blobs) !== JSON.stringify(want)) {
    if (Date.now() > deadline) assert.deepEqual(blobs, want, what);
    await sleep(100);
    blobs = await cluster.blobs();
  }
}

/** The sum of a `ss -i` counter (`bytes_received`, `bytes_sent`) over connections of local port `port`. */
async function socketBytes(port: number, counter: string): Promise<number> {
  const { stdout, success } = await new Deno.Command("ss", {
    args: ["-Htin", "state", "established", "sport", "=", `:${port}`],
  }).output();
  assert.ok(success, "ss runs");
  const text = new TextDecoder().decode(stdout);
  let total = 0;
  for (const match of text.matchAll(new RegExp(`\\b${counter}:(\\d+)`, "g"))) {
    total += Number(match[1]);
  }
  return total;
}

/** Established TCP connections to port `port` on this host (from `ss`). */
export async function connectionsTo(port: number): Promise<number> {
  const { stdout, success } = await new Deno.Command("ss", {
    args: ["-Htn", "state", "established", "dport", "=", `:${port}`],
  }).output();
  assert.ok(success, "ss runs");
  return new TextDecoder().decode(stdout).split("\n").filter((line) => line.trim()).length;
}

/** Waits (at most 5 s: a data port closes an idle link after 60) until `port` has no clients. */
export async function noConnectionsTo(port: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (await connectionsTo(port) > 0) {
    assert.ok(Date.now() < deadline, `the links to :${port} were closed with their client`);
    await sleep(50);
  }
}

/** The route rank 0 offers for a direct get of `name`, asked on a bare connection (then done). */
export async function routeOf(server: TestServer, name: string): Promise<DirectRoute | undefined> {
  using raw = await rawConnection(server.address, { hello: true });
  await raw.send({ op: "get", id: 1, name, direct: true });
  const ok = await withTimeout(raw.next(), { timeoutMs: 10_000, what: "the get's answer" });
  assert.equal(ok.op, "ok", JSON.stringify(ok));
  if (ok.direct === undefined) {
    // Read through rank 0: its data frames and end follow.
    while ((await raw.next()).op !== "end") { /* data */ }
    return undefined;
  }
  await raw.send({ op: "done", id: 1 });
  return ok.direct as DirectRoute;
}

/** The port of `HOST:PORT`. */
export const portOf = (address: string) => Number(address.slice(address.lastIndexOf(":") + 1));
