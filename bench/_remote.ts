/**
 * `deno task bench --remote-nodes`: the same store twice in one run, once with Worker data nodes
 * (`--ranks N`) and once with the same number of `dfs node` processes joined over TCP on loopback
 * (`--ranks 1`), each with a data port as a deployment for speed has, measured turn by turn: a
 * large file put and got through the library (to the TCP nodes both through rank 0, as without
 * data ports, and directly to their data ports), and 4 KiB files put and got by concurrent clients
 * (which go through rank 0 either way). The ratios say what the TCP transport costs.
 *
 * @module
 */

import { TestNode, writeSecret } from "../tests/_nodes.ts";
import type { TestServer } from "../tests/_server.ts";
import type { BenchContext } from "./_config.ts";
import { getConcurrently, putConcurrently, settled } from "./_large_file.ts";
import { connectClients, runPhase } from "./_small_files.ts";
import { type Figure, figureOf } from "./_stats.ts";
import { progress } from "./_timing.ts";
import { withServer } from "./_with_server.ts";

const MiB = 1024 * 1024;

/** Runs the comparison; both servers stay up for every run, measured one after the other. */
export async function runRemote(bench: BenchContext): Promise<Figure[]> {
  const { config } = bench;
  const dataNodes = config.ranks - 1;
  const dir = await Deno.makeTempDir({ prefix: "dfs-bench-remote-" });
  const secretFile = await writeSecret(dir);
  const nodes: TestNode[] = [];
  try {
    return await withServer({ ranks: config.ranks }, (workers) =>
      withServer({
        ranks: 1,
        extraArgs: ["--node-port", "0", "--cluster-secret-file", secretFile],
      }, async (remote) => {
        for (let i = 0; i < dataNodes; i++) {
          nodes.push(
            await TestNode.start(remote.nodeAddress!, {
              dataDir: `${dir}/node${i}`,
              secretFile,
              args: ["--data-port", "0"],
            }),
          );
        }
        await allUp(remote.address, dataNodes);
        return await compare(bench, { workers, remote });
      }));
  } finally {
    await Promise.all(nodes.map((n) => n.stop("SIGTERM")));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function compare(
  bench: BenchContext,
  servers: { workers: TestServer; remote: TestServer },
): Promise<Figure[]> {
  const { config } = bench;
  const samples = new Map<string, number[]>();
  const add = (key: string, value: number) =>
    samples.set(key, [...(samples.get(key) ?? []), value]);
  for (let run = 0; run < config.runs; run++) {
    const figures: Record<string, Record<string, number>> = {};
    for (const [kind, server] of Object.entries(servers)) {
      progress(`run ${run + 1}: ${kind} nodes, large file and 4 KiB files`);
      figures[kind] = await measure(server, bench, run, kind === "remote");
      for (const [key, value] of Object.entries(figures[kind])) add(`${kind} ${key}`, value);
    }
    for (const key of Object.keys(figures.remote)) {
      add(`ratio ${key}`, 100 * figures.remote[key] / figures.workers[key.replace(/ direct$/, "")]);
    }
  }
  const size = `${config.sizeBytes / MiB} MiB`;
  const rows: [string, string, string][] = [
    ["put", `${size} put, library`, "MB/s"],
    ["get", `${size} get, library`, "MB/s"],
    ["small put", `4 KiB put, ${config.clients} clients`, "files/s"],
    ["small get", `4 KiB get, ${config.clients} clients`, "files/s"],
  ];
  return rows.flatMap(([key, name, unit]) => {
    const figure = (sample: string, what: string, unitOf = unit) =>
      figureOf(`${name}, ${what}`, samples.get(sample)!, { unit: unitOf });
    const ratio = (of: string, to: string) =>
      figure(`ratio ${of}`, `${to} / Worker of the same run`, "%");
    if (key === "small put" || key === "small get") {
      // Through rank 0 either way.
      return [
        figure(`workers ${key}`, "Worker nodes"),
        figure(`remote ${key}`, "TCP nodes on loopback"),
        ratio(key, "TCP"),
      ];
    }
    return [
      figure(`workers ${key}`, "Worker nodes"),
      figure(`remote ${key}`, "TCP nodes on loopback, through rank 0"),
      figure(`remote ${key} direct`, "TCP nodes on loopback, data ports"),
      ratio(key, "TCP through rank 0"),
      ratio(`${key} direct`, "TCP data ports"),
    ];
  });
}

async function measure(
  server: TestServer,
  bench: BenchContext,
  run: number,
  dataPorts: boolean,
): Promise<Record<string, number>> {
  const { config, notes } = bench;
  // Worker nodes have no data ports: there the client's `direct` changes nothing.
  const largeFile = async (direct: boolean) => {
    const large = await connectClients(server.address, 1, { direct });
    const path = direct ? "direct" : "rank0";
    const files = { prefix: `bench/run${run}-${path}-`, sizeBytes: config.sizeBytes };
    try {
      const put = await settled(() => putConcurrently(large, files));
      const get = await settled(() => getConcurrently(large, files));
      // Gone before the next: 3 runs would otherwise keep 12 GiB on the one disk.
      await Promise.all(large.map((c, i) => c.remove(`${files.prefix}${i}`)));
      return { put, get };
    } finally {
      for (const c of large) c.close();
    }
  };
  const { put, get } = await largeFile(false);
  const direct = dataPorts ? await largeFile(true) : undefined;
  const clients = await connectClients(server.address, config.clients);
  try {
    const options = {
      nameOf: (i: number) => `small/r${run}/f${i}`,
      files: config.files,
      serverPid: server.process.pid,
    };
    // After the large files' gigabytes: each small put waits on an fdatasync.
    const smallPut = await settled(() => runPhase(clients, "put", options));
    const smallGet = await runPhase(clients, "get", options);
    for (const phase of [smallPut, smallGet]) {
      if (phase.files < config.files) {
        notes.push(`${phase.op}: only ${phase.files} of ${config.files} files in time`);
      }
    }
    return {
      put,
      get,
      ...direct ? { "put direct": direct.put, "get direct": direct.get } : {},
      "small put": smallPut.files / smallPut.seconds,
      "small get": smallGet.files / smallGet.seconds,
    };
  } finally {
    for (const c of clients) c.close();
  }
}

/** How long the bench waits for its remote nodes to be taken in. */
const NODES_UP_TIMEOUT_MS = 60_000;

/** Waits until `count` data nodes are up (a node says it joined before rank 0 has taken it in). */
async function allUp(address: string, count: number): Promise<void> {
  const [client] = await connectClients(address, 1);
  try {
    const deadline = Date.now() + NODES_UP_TIMEOUT_MS;
    while ((await client.status()).ranks.filter((r) => r.state === "up").length < count) {
      if (Date.now() > deadline) throw new Error(`${count} data nodes were not up in time`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    client.close();
  }
}
