/**
 * The direct data path over TLS: a server whose client port speaks TLS offers routes and plans
 * only to data ports that speak TLS too (`dfs node --data-tls-cert --data-tls-key`), and a client
 * trusting the CA reads and writes there; a node whose data port is plain is left out, so no byte
 * crosses in the clear where the client asked for TLS.
 */

import assert from "node:assert/strict";
import { DfsClient } from "../client.ts";
import { pseudoRandomBytes, sha256 } from "./_bytes.ts";
import { TestNode, writeSecret } from "./_nodes.ts";
import { TestServer } from "./_server.ts";
import { makeCertificates } from "./_tls.ts";
import { connectionsTo, portOf, waitForStates } from "./_direct_cluster.ts";

const MiB = 1024 * 1024;

Deno.test("a TLS server offers only data ports that speak TLS, and a client trusting the CA reads and writes there", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dfs-direct-tls-" });
  const nodes: TestNode[] = [];
  let server: TestServer | undefined;
  try {
    await makeCertificates(dir);
    const secretFile = await writeSecret(dir);
    const tls = ["--tls-cert", `${dir}/server.pem`, "--tls-key", `${dir}/server.key`];
    server = await TestServer.start({
      ranks: 1,
      replicas: 2,
      dataDir: `${dir}/rank0`,
      extraArgs: ["--node-port", "0", "--cluster-secret-file", secretFile, ...tls],
    });
    const dataTls = ["--data-tls-cert", `${dir}/server.pem`, "--data-tls-key", `${dir}/server.key`];
    // Two nodes with a TLS data port, one with a plain one.
    for (const [i, args] of [dataTls, dataTls, []].entries()) {
      nodes.push(
        await TestNode.start(server.nodeAddress!, {
          dataDir: `${dir}/node${i + 1}`,
          secretFile,
          args: ["--tls-ca", `${dir}/ca.pem`, "--data-port", "0", ...args],
        }),
      );
    }
    const ca = await Deno.readTextFile(`${dir}/ca.pem`);
    const client = await DfsClient.connect(server.address, { tlsCaCerts: [ca] });
    try {
      await waitForStates(client, { 1: "up", 2: "up", 3: "up" });
      const status = await client.status();
      const plain = nodes[2].rank;
      assert.ok(
        status.ranks.find((r) => r.rank === plain)?.dataAddress,
        "the plain one has a port",
      );

      const data = pseudoRandomBytes(6 * MiB + 9, 41);
      const meta = await client.put("tls.bin", data);
      for (const chunk of meta.chunks) {
        assert.ok(!chunk.ranks.includes(plain), "the plan leaves the plain data port out");
      }
      assert.equal(sha256(await client.getBytes("tls.bin")), sha256(data));

      // The client read and wrote over its links to the TLS data ports, none to the plain one.
      const portOfRank = (rank: number) =>
        portOf(status.ranks.find((r) => r.rank === rank)!.dataAddress!);
      for (const node of nodes.slice(0, 2)) {
        assert.equal(await connectionsTo(portOfRank(node.rank)), 1, `a link to rank ${node.rank}`);
      }
      assert.equal(await connectionsTo(portOfRank(plain)), 0, "none to the plain data port");
    } finally {
      client.close();
    }
  } finally {
    await Promise.all(nodes.map((n) => n.stop("SIGKILL")));
    await server?.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
