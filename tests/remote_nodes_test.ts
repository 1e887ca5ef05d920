/**
 * Remote data nodes as separate processes on 127.0.0.1: a server with `--ranks 1` (no Worker
 * nodes) and three `dfs node` processes in two zones. Every operation works across them; a node
 * killed mid-put or mid-get costs no data; rank 0 killed and restarted finds everything again as
 * the nodes rejoin; a wrong secret or a copied node folder is refused on both sides.
 */

import assert from "node:assert/strict";
import { DfsClient, DfsError } from "../client.ts";
import { pseudoRandomBytes, sha256 } from "./_bytes.ts";
import { dfs } from "./_cli.ts";
import { TestNode, writeSecret } from "./_nodes.ts";
import { TestServer } from "./_server.ts";
import { makeCertificates } from "./_tls.ts";
import { sleep } from "./_wait.ts";

const MiB = 1024 * 1024;
/** How long a test waits for the nodes to reach a state. */
const STATE_TIMEOUT_MS = 30_000;

/** A server with only remote nodes: three, in zones a, b, b. */
async function remoteCluster(options: { rereplicateAfterMs?: number } = {}) {
  const dir = await Deno.makeTempDir({ prefix: "dfs-remote-" });
  const secretFile = await writeSecret(dir);
  const extraArgs = ["--node-port", "0", "--cluster-secret-file", secretFile];
  if (options.rereplicateAfterMs !== undefined) {
    extraArgs.push("--rereplicate-after-ms", String(options.rereplicateAfterMs));
  }
  const server = await TestServer.start({ ranks: 1, dataDir: `${dir}/rank0`, extraArgs });
  assert.ok(server.nodeAddress, "the ready line names the node port");
  const nodes: TestNode[] = [];
  for (const [i, zone] of ["a", "b", "b"].entries()) {
    nodes.push(
      await TestNode.start(server.nodeAddress!, {
        dataDir: `${dir}/node${i + 1}`,
        secretFile,
        args: ["--zone", zone],
      }),
    );
  }
  const client = await DfsClient.connect(server.address);
  await waitForStates(client, { 1: "up", 2: "up", 3: "up" });
  return {
    dir,
    secretFile,
    server,
    nodes,
    client,
    async [Symbol.asyncDispose]() {
      client.close();
      await Promise.all(nodes.map((n) => n.stop("SIGKILL")));
      await server.stop("SIGKILL");
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

async function waitForStates(client: DfsClient, want: Record<number, string>): Promise<void> {
  const deadline = Date.now() + STATE_TIMEOUT_MS;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const status = await client.status();
      const states = Object.fromEntries(status.ranks.map((r) => [r.rank, r.state]));
      last = JSON.stringify(states);
      if (Object.entries(want).every(([rank, state]) => states[Number(rank)] === state)) return;
    } catch (error) {
      last = String(error);
    }
    await sleep(100);
  }
  assert.fail(`nodes did not reach ${JSON.stringify(want)} in time: ${last}`);
}

async function waitForUnderReplicated(client: DfsClient, chunks: number): Promise<void> {
  const deadline = Date.now() + STATE_TIMEOUT_MS;
  let last = -1;
  while (Date.now() < deadline) {
    last = (await client.status()).underReplicatedChunks;
    if (last === chunks) return;
    await sleep(100);
  }
  assert.fail(`under-replicated chunks stayed ${last}, not ${chunks}`);
}

/** Waits (at most `STATE_TIMEOUT_MS`) until a process's output matches; the caller asserts it. */
async function outputMatches(output: { text: string }, pattern: RegExp): Promise<void> {
  const deadline = Date.now() + STATE_TIMEOUT_MS;
  while (!pattern.test(output.text) && Date.now() < deadline) await sleep(50);
}

async function readAll(client: DfsClient, name: string): Promise<Uint8Array> {
  const { stream } = await client.open(name);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

Deno.test("a server with only remote nodes serves put, get, list, overwrite, rm and mv, replicas in both zones", async () => {
  await using cluster = await remoteCluster();
  const { client } = cluster;
  const status = await client.status();
  assert.deepEqual(status.ranks.map((r) => [r.rank, r.kind, r.zone, r.state]), [
    [1, "remote", "a", "up"],
    [2, "remote", "b", "up"],
    [3, "remote", "b", "up"],
  ]);
  for (const r of status.ranks) assert.match(r.address ?? "", /^127\.0\.0\.1:\d+$/);

  const files = new Map<string, Uint8Array>([
    ["empty", new Uint8Array()],
    ["small.txt", new TextEncoder().encode("hello over TCP")],
    ["dir/big.bin", pseudoRandomBytes(5 * MiB + 17, 1)],
  ]);
  for (const [name, data] of files) await client.put(name, data);
  for (const [name, data] of files) {
    assert.equal(sha256(await readAll(client, name)), sha256(data), name);
  }
  assert.deepEqual((await client.list()).map((e) => e.name), ["dir/big.bin", "empty", "small.txt"]);
  const meta = await client.meta("dir/big.bin");
  for (const chunk of meta.chunks) {
    assert.equal(chunk.ranks.length, 2);
    assert.deepEqual([...chunk.zones!].sort(), ["a", "b"], "one replica in each zone");
  }

  const newer = pseudoRandomBytes(2 * MiB, 2);
  const overwritten = await client.put("dir/big.bin", newer);
  assert.ok(overwritten.version > meta.version);
  assert.equal(sha256(await readAll(client, "dir/big.bin")), sha256(newer));
  await client.rename("small.txt", "moved.txt");
  await assert.rejects(
    client.meta("small.txt"),
    (e) => e instanceof DfsError && e.code === "NOT_FOUND",
  );
  assert.equal(new TextDecoder().decode(await readAll(client, "moved.txt")), "hello over TCP");
  await client.remove("empty");
  assert.deepEqual((await client.list()).map((e) => e.name), ["dir/big.bin", "moved.txt"]);

  const text = await dfs(["status", "--server", cluster.server.address]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^3 +remote +b +127\.0\.0\.1:\d+ +up /m);
});

Deno.test("a node killed mid-put and mid-get: the put commits whole or not at all, the get fails over, the node rejoins", async () => {
  await using cluster = await remoteCluster();
  const { client, nodes } = cluster;
  const data = pseudoRandomBytes(24 * MiB, 3);
  await client.put("before", data);

  // Mid-get: kill a node holding the first chunk while the file streams.
  const holder = (await client.meta("before")).chunks[0].ranks[0];
  const { stream } = await client.open("before");
  const reader = stream.getReader();
  const first = await reader.read();
  await nodes[holder - 1].stop("SIGKILL");
  const parts = [first.value!];
  for (let next = await reader.read(); !next.done; next = await reader.read()) {
    parts.push(next.value);
  }
  const got = new Uint8Array(await new Blob(parts as BlobPart[]).arrayBuffer());
  assert.equal(sha256(got), sha256(data), "the get failed over to the other replica");
  await waitForStates(client, { [holder]: "down" });
  nodes[holder - 1] = await TestNode.start(cluster.server.nodeAddress!, {
    dataDir: nodes[holder - 1].dataDir,
    secretFile: cluster.secretFile,
    args: ["--zone", holder === 1 ? "a" : "b"],
  });
  await waitForStates(client, { 1: "up", 2: "up", 3: "up" });

  // Mid-put: a node dies while a large file streams in.
  const victim = nodes[1];
  const body = pseudoRandomBytes(32 * MiB, 4);
  const half = Promise.withResolvers<void>();
  const killed = Promise.withResolvers<void>();
  let sent = 0;
  const source = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent === body.length / 2) {
        half.resolve();
        await killed.promise; // the second half goes only once the node is dead
      }
      controller.enqueue(body.slice(sent, sent + MiB));
      sent += MiB;
      if (sent === body.length) controller.close();
    },
  });
  const put = client.put("during", source, { size: body.length }).then((m) => m, (e) => e);
  await half.promise;
  await victim.stop("SIGKILL");
  killed.resolve();
  const outcome = await put;
  if (outcome instanceof Error) {
    assert.ok(outcome instanceof DfsError && outcome.code === "UNAVAILABLE", String(outcome));
    await assert.rejects(
      client.meta("during"),
      (e) => e instanceof DfsError && e.code === "NOT_FOUND",
    );
  } else {
    assert.equal(sha256(await readAll(client, "during")), sha256(body), "whole, or not at all");
  }
  assert.equal(sha256(await readAll(client, "before")), sha256(data));
  nodes[1] = await TestNode.start(cluster.server.nodeAddress!, {
    dataDir: victim.dataDir,
    secretFile: cluster.secretFile,
    args: ["--zone", "b"],
  });
  await waitForStates(client, { 1: "up", 2: "up", 3: "up" });
  await waitForUnderReplicated(client, 0);
  const fsck = await client.fsck();
  assert.deepEqual(fsck.lost, []);
});

Deno.test("rank 0 killed and restarted: the nodes rejoin by themselves and every file is back", async () => {
  await using cluster = await remoteCluster();
  const files = new Map<string, Uint8Array>();
  for (let i = 0; i < 8; i++) files.set(`f${i}`, pseudoRandomBytes(i * 300 * 1024 + 5, 10 + i));
  for (const [name, data] of files) await cluster.client.put(name, data);
  await cluster.client.remove("f0");
  files.delete("f0");
  cluster.client.close();

  await cluster.server.stop("SIGKILL");
  const address = cluster.server.nodeAddress!;
  const port = address.split(":")[1];
  // The same node port, so that the running nodes find rank 0 again.
  const server = await TestServer.start({
    ranks: 1,
    dataDir: cluster.server.dataDir,
    extraArgs: ["--node-port", port, "--cluster-secret-file", cluster.secretFile],
  });
  try {
    await using client = await DfsClient.connect(server.address);
    await waitForStates(client, { 1: "up", 2: "up", 3: "up" });
    assert.deepEqual((await client.list()).map((e) => e.name), [...files.keys()].sort());
    for (const [name, data] of files) {
      assert.equal(sha256(await readAll(client, name)), sha256(data), name);
    }
    assert.match(await server.stderrSoFar(), /waiting for remote data nodes before recovery/);
    for (const node of cluster.nodes) assert.match(node.output.text, /lost rank 0 .*joining again/);
  } finally {
    await server.stop("SIGKILL");
  }
});

Deno.test("a node with a wrong secret, from another cluster, or with a copied id is refused on both sides", async () => {
  await using cluster = await remoteCluster();
  const join = cluster.server.nodeAddress!;

  const wrong = await writeSecret(cluster.dir, "wrong-secret");
  const stranger = TestNode.spawn(join, { dataDir: `${cluster.dir}/stranger`, secretFile: wrong });
  assert.equal((await stranger.finished).code, 1);
  assert.match(stranger.output.text, /is refused: wrong cluster secret/);
  const identity = JSON.parse(await Deno.readTextFile(`${cluster.dir}/stranger/node.json`));
  assert.equal(identity.clusterId, null, "a refused node joins no cluster");

  // A node folder copied while its node runs: same id, refused while the original is connected.
  await Deno.mkdir(`${cluster.dir}/copy`);
  await Deno.copyFile(`${cluster.dir}/node1/node.json`, `${cluster.dir}/copy/node.json`);
  const copy = TestNode.spawn(join, {
    dataDir: `${cluster.dir}/copy`,
    secretFile: cluster.secretFile,
  });
  await outputMatches(copy.output, /connected already/);
  copy.process.kill("SIGKILL");
  await copy.finished;
  assert.match(copy.output.text, /a node with its id is connected already/);

  // A node of another cluster (its folder names that cluster) is refused, and says why.
  const other = JSON.parse(await Deno.readTextFile(`${cluster.dir}/node1/node.json`));
  await Deno.mkdir(`${cluster.dir}/foreign`);
  await Deno.writeTextFile(
    `${cluster.dir}/foreign/node.json`,
    JSON.stringify({ ...other, nodeId: "f".repeat(32), clusterId: "e".repeat(32) }),
  );
  const foreign = TestNode.spawn(join, {
    dataDir: `${cluster.dir}/foreign`,
    secretFile: cluster.secretFile,
  });
  assert.equal((await foreign.finished).code, 1);
  assert.match(foreign.output.text, /belongs to cluster e{32}.*nothing was changed/);

  const log = await cluster.server.stderrSoFar();
  assert.match(log, /refused a node .*wrong cluster secret/);
  assert.match(log, /refused a node .*connected already/);
  const status = await cluster.client.status();
  assert.deepEqual(status.ranks.map((r) => [r.rank, r.state]), [[1, "up"], [2, "up"], [3, "up"]]);
});

Deno.test("the node port speaks TLS when the server has a certificate: a node trusting its CA joins, others cannot", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dfs-remote-tls-" });
  try {
    await makeCertificates(dir);
    const secretFile = await writeSecret(dir);
    await using server = await TestServer.start({
      ranks: 1,
      replicas: 1,
      dataDir: `${dir}/rank0`,
      extraArgs: [
        ...["--node-port", "0", "--cluster-secret-file", secretFile],
        ...["--tls-cert", `${dir}/server.pem`, "--tls-key", `${dir}/server.key`],
      ],
    });
    await using node = await TestNode.start(server.nodeAddress!, {
      dataDir: `${dir}/node`,
      secretFile,
      args: ["--tls-ca", `${dir}/ca.pem`],
    });
    assert.equal(node.rank, 1);
    const ca = await Deno.readTextFile(`${dir}/ca.pem`);
    await using client = await DfsClient.connect(server.address, { tlsCaCerts: [ca] });
    await waitForStates(client, { 1: "up" }); // joined, then reconciled and marked up
    const data = pseudoRandomBytes(3 * MiB, 7);
    await client.put("over-tls", data);
    assert.equal(sha256(await readAll(client, "over-tls")), sha256(data));

    for (
      const [name, args, why] of [
        [
          "plain",
          [],
          /cannot join .*rank 0 sent no hello \(if its node port speaks TLS, pass --tls-ca\)/,
        ],
        ["distrusting", ["--tls-ca", `${dir}/other.pem`], /cannot join .*Cannot connect/],
      ] as const
    ) {
      const other = TestNode.spawn(server.nodeAddress!, {
        dataDir: `${dir}/${name}`,
        secretFile,
        args: [...args],
      });
      await outputMatches(other.output, why);
      other.process.kill("SIGKILL");
      await other.finished;
      assert.match(other.output.text, why);
      assert.doesNotMatch(other.output.text, /joined/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("nodes joining at the same moment get distinct ranks, each recorded once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dfs-remote-many-" });
  try {
    const secretFile = await writeSecret(dir);
    await using server = await TestServer.start({
      ranks: 1,
      dataDir: `${dir}/rank0`,
      extraArgs: ["--node-port", "0", "--cluster-secret-file", secretFile],
    });
    const nodes = await Promise.all(
      [1, 2, 3, 4, 5].map((i) =>
        TestNode.start(server.nodeAddress!, { dataDir: `${dir}/node${i}`, secretFile })
      ),
    );
    try {
      assert.deepEqual(nodes.map((n) => n.rank).sort(), [1, 2, 3, 4, 5]);
      const table = JSON.parse(await Deno.readTextFile(`${dir}/rank0/cluster.json`));
      assert.deepEqual(table.nodes.map((n: { rank: number }) => n.rank), [1, 2, 3, 4, 5]);
      await using client = await DfsClient.connect(server.address);
      await waitForStates(client, { 1: "up", 2: "up", 3: "up", 4: "up", 5: "up" });
      assert.doesNotMatch(await server.stderrSoFar(), /failed its handshake|refused/);
    } finally {
      await Promise.all(nodes.map((n) => n.stop("SIGKILL")));
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("--forget-node: rank 0 starts without a host gone for good, re-replicates, and refuses it if it returns", async () => {
  await using cluster = await remoteCluster();
  const files = new Map<string, Uint8Array>();
  for (let i = 0; i < 4; i++) files.set(`f${i}`, pseudoRandomBytes(1024 * 1024 + i, 20 + i));
  for (const [name, data] of files) await cluster.client.put(name, data);
  cluster.client.close();
  await cluster.nodes[2].stop("SIGKILL"); // rank 3's host is gone for good
  await cluster.server.stop("SIGKILL");

  const port = cluster.server.nodeAddress!.split(":")[1];
  const server = await TestServer.start({
    ranks: 1,
    dataDir: cluster.server.dataDir,
    extraArgs: [
      "--node-port",
      port,
      "--cluster-secret-file",
      cluster.secretFile,
      "--forget-node",
      "3",
    ],
  });
  try {
    await using client = await DfsClient.connect(server.address);
    await waitForStates(client, { 1: "up", 2: "up" });
    assert.deepEqual((await client.status()).ranks.map((r) => r.rank), [1, 2]);
    await waitForUnderReplicated(client, 0);
    for (const [name, data] of files) {
      assert.equal(sha256(await readAll(client, name)), sha256(data), name);
      const meta = await client.meta(name);
      for (const chunk of meta.chunks) assert.deepEqual([...chunk.ranks].sort(), [1, 2]);
    }
    assert.match(await server.stderrSoFar(), /forgot remote data node [0-9a-f]{32} \(rank 3\)/);

    const back = TestNode.spawn(server.nodeAddress!, {
      dataDir: cluster.nodes[2].dataDir,
      secretFile: cluster.secretFile,
    });
    assert.equal((await back.finished).code, 1);
    assert.match(back.output.text, /was forgotten by this cluster/);
  } finally {
    await server.stop("SIGKILL");
  }
});

Deno.test("dfs node refuses missing or malformed options with a usage error, and stops on SIGTERM", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dfs-node-usage-" });
  try {
    const secretFile = await writeSecret(dir);
    const cases: [string[], RegExp][] = [
      [["--data", dir, "--cluster-secret-file", secretFile], /node needs --join HOST:PORT/],
      [["--join", "127.0.0.1:1", "--cluster-secret-file", secretFile], /node needs --data DIR/],
      [["--join", "127.0.0.1:1", "--data", dir], /node needs --cluster-secret-file F/],
      [
        ["--join", "nowhere", "--data", dir, "--cluster-secret-file", secretFile],
        /--join takes HOST:PORT, got "nowhere"/,
      ],
      [
        ["--join", "h:1", "--data", dir, "--cluster-secret-file", secretFile, "--zone", "a b"],
        /--zone takes 1 to 128 letters/,
      ],
    ];
    for (const [args, pattern] of cases) {
      const result = await dfs(["node", ...args]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, pattern);
    }
    // With no server to join, the node keeps trying; SIGTERM stops it cleanly.
    const waiting = TestNode.spawn("127.0.0.1:1", { dataDir: `${dir}/n`, secretFile });
    await outputMatches(waiting.output, /cannot join 127\.0\.0\.1:1/);
    waiting.process.kill("SIGTERM");
    assert.equal((await waiting.finished).code, 0);
    assert.match(waiting.output.text, /node stopped/);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("with fewer data nodes up than replicas, a put is UNAVAILABLE and says so; reads go on", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dfs-remote-few-" });
  try {
    const secretFile = await writeSecret(dir);
    await using server = await TestServer.start({
      ranks: 1,
      replicas: 2,
      dataDir: `${dir}/rank0`,
      extraArgs: ["--node-port", "0", "--cluster-secret-file", secretFile],
    });
    await using client = await DfsClient.connect(server.address);
    await assert.rejects(
      client.put("none-yet", new Uint8Array(10)),
      (e) =>
        e instanceof DfsError && e.code === "UNAVAILABLE" &&
        e.message === 'Cannot store "none-yet": 2 replicas wanted, but 0 data nodes are up',
    );
    await using node = await TestNode.start(server.nodeAddress!, {
      dataDir: `${dir}/n1`,
      secretFile,
    });
    await waitForStates(client, { [node.rank]: "up" });
    await assert.rejects(
      client.put("one-up", new Uint8Array(10)),
      (e) => e instanceof DfsError && /2 replicas wanted, but 1 data node is up/.test(e.message),
    );
    const data = pseudoRandomBytes(100_000, 9);
    await client.put("single", data, { replicas: 1 });
    assert.equal(sha256(await readAll(client, "single")), sha256(data));
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("a node that stays away is drained: a restarted rank 0 does not wait for it, and it is reconciled when back", async () => {
  await using cluster = await remoteCluster({ rereplicateAfterMs: 500 });
  const files = new Map<string, Uint8Array>();
  for (let i = 0; i < 4; i++) files.set(`f${i}`, pseudoRandomBytes(1024 * 1024 + i, 30 + i));
  for (const [name, data] of files) await cluster.client.put(name, data);
  const away = cluster.nodes[2];
  await away.stop("SIGKILL");
  await waitForStates(cluster.client, { 3: "down" });
  await waitForUnderReplicated(cluster.client, 0);
  const deadline = Date.now() + STATE_TIMEOUT_MS;
  while (!/rank 3 holds nothing the store needs/.test(await cluster.server.stderrSoFar())) {
    assert.ok(Date.now() < deadline, "rank 3 was not recorded as drained");
    await sleep(50);
  }
  cluster.client.close();
  await cluster.server.stop("SIGKILL");

  const port = cluster.server.nodeAddress!.split(":")[1];
  const server = await TestServer.start({
    ranks: 1,
    dataDir: cluster.server.dataDir,
    extraArgs: ["--node-port", port, "--cluster-secret-file", cluster.secretFile],
  });
  try {
    await using client = await DfsClient.connect(server.address);
    assert.match(
      await server.stderrSoFar(),
      /not waiting for rank 3: everything it held was copied/,
    );
    for (const [name, data] of files) {
      assert.equal(sha256(await readAll(client, name)), sha256(data), name);
    }
    assert.equal((await client.status()).ranks.find((r) => r.rank === 3)?.state, "joining");

    cluster.nodes[2] = await TestNode.start(server.nodeAddress!, {
      dataDir: away.dataDir,
      secretFile: cluster.secretFile,
      args: ["--zone", "b"],
    });
    await waitForStates(client, { 1: "up", 2: "up", 3: "up" });
    assert.match(
      await server.stderrSoFar(),
      /rank 3 .* joined from .* \([1-9]\d* stale chunks dropped/,
    );
    const table = JSON.parse(await Deno.readTextFile(`${cluster.server.dataDir}/cluster.json`));
    assert.deepEqual(table.nodes.map((n: { drained?: boolean }) => n.drained), [
      undefined,
      undefined,
      undefined,
    ]);
    assert.deepEqual((await client.fsck()).lost, []);
  } finally {
    await server.stop("SIGKILL");
  }
});

Deno.test("over remote nodes a damaged replica never reaches a client: read repair and fsck rewrite it", async () => {
  await using cluster = await remoteCluster();
  const { client } = cluster;
  const data = pseudoRandomBytes(3 * MiB, 40);
  await client.put("victim", data);
  // Rank 1 is zone a's only node: it holds a replica of every chunk, in one blob.
  const chunks = `${cluster.dir}/node1/store/chunks`;
  const blobs: string[] = [];
  for await (const entry of Deno.readDir(chunks)) {
    if (entry.isFile) blobs.push(`${chunks}/${entry.name}`);
  }
  assert.equal(blobs.length, 1);
  const original = await Deno.readFile(blobs[0]);
  const damaged = original.slice();
  for (let i = 0; i < 3; i++) damaged[i * MiB + 100] ^= 0x40;
  await Deno.writeFile(blobs[0], damaged);

  assert.equal(
    sha256(await readAll(client, "victim")),
    sha256(data),
    "the good replicas were read",
  );
  const report = await client.fsck();
  assert.deepEqual(report.lost, []);
  assert.equal((await client.fsck()).healthy, 1);
  assert.deepEqual(await Deno.readFile(blobs[0]), original, "every damaged replica was rewritten");
  const status = await client.status();
  assert.equal(status.corruptReplicasFound, 3);
  assert.equal(status.repairs, 3);
});

Deno.test("./dfs node and ./dfs serve with their narrowed permissions: a node joins, stores and serves", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dfs-remote-narrow-" });
  try {
    const secretFile = await writeSecret(dir);
    await using server = await TestServer.start({
      ranks: 1,
      replicas: 1,
      launcher: true,
      dataDir: `${dir}/rank0`,
      extraArgs: ["--node-port", "0", "--cluster-secret-file", secretFile],
    });
    await using node = await TestNode.start(server.nodeAddress!, {
      dataDir: `${dir}/node`,
      secretFile,
      launcher: true,
    });
    await using client = await DfsClient.connect(server.address);
    await waitForStates(client, { [node.rank]: "up" }); // joined, then reconciled and marked up
    const data = pseudoRandomBytes(2 * MiB + 5, 50);
    await client.put("narrow", data);
    assert.equal(sha256(await readAll(client, "narrow")), sha256(data));
    const status = await client.status();
    assert.match(status.ranks[0].zone ?? "", /^[A-Za-z0-9._:-]+$/, "the host name was readable");
    const df = await dfs(["df", "--server", server.address]);
    assert.equal(df.code, 0, df.stderr);
    assert.doesNotMatch(node.output.text, /NotCapable|Requires .* access/);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
