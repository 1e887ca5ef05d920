/**
 * `deno task bench --s3`: the S3 gateway beside the CBOR protocol, on one server in the same run,
 * turn by turn: a large object put (one PUT) and got, and 4 KiB objects put and got by concurrent
 * clients. S3 requests are signed with `@smithy/signature-v4` (`UNSIGNED-PAYLOAD`, as SDKs send
 * over TLS) and sent with `fetch`, one connection pool for all clients.
 *
 * @module
 */

import { newSigner } from "../tests/_s3_signer.ts";
import type { DfsClient } from "../client.ts";
import { pseudoRandomBytes } from "../tests/_bytes.ts";
import type { TestServer } from "../tests/_server.ts";
import type { BenchContext } from "./_config.ts";
import { connectClients, runPhase } from "./_small_files.ts";
import { type Figure, figureOf } from "./_stats.ts";
import { cpuSeconds, progress, timed } from "./_timing.ts";
import { withServer } from "./_with_server.ts";

const MiB = 1024 * 1024;
const KEY_ID = "AKIADFSBENCH";
const SECRET = "dfs-bench-secret";
const BUCKET = "bench";

/** Signed S3 requests to one gateway. */
class S3Client {
  #endpoint: URL;
  #signer = newSigner(KEY_ID, SECRET);

  constructor(address: string) {
    this.#endpoint = new URL(`http://${address}`);
  }

  async send(method: string, path: string, body?: Uint8Array): Promise<Response> {
    const headers: Record<string, string> = {
      host: this.#endpoint.host,
      "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
    };
    if (body) headers["content-length"] = String(body.length);
    const signed = await this.#signer.sign({
      method,
      protocol: "http:",
      hostname: this.#endpoint.hostname,
      port: Number(this.#endpoint.port),
      path,
      query: {},
      headers,
    });
    const response = await fetch(new URL(path, this.#endpoint), {
      method,
      headers: signed.headers as Record<string, string>,
      body: body as BodyInit | undefined,
    });
    if (!response.ok) {
      throw new Error(`S3 ${method} ${path}: ${response.status} ${await response.text()}`);
    }
    return response;
  }
}

/** Runs the comparison on one server with an S3 port. */
export async function runS3(bench: BenchContext): Promise<Figure[]> {
  const dir = await Deno.makeTempDir({ prefix: "dfs-bench-s3-" });
  await Deno.writeTextFile(`${dir}/creds`, `${KEY_ID}:${SECRET}\n`);
  try {
    return await withServer({
      ranks: bench.config.ranks,
      extraArgs: ["--s3-port", "0", "--s3-credentials-file", `${dir}/creds`],
    }, async (server) => {
      const s3 = new S3Client(/s3 on ([\d.]+:\d+)/.exec(server.readyLine)![1]);
      await s3.send("PUT", `/${BUCKET}`);
      return await compare(bench, server, s3);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function compare(bench: BenchContext, server: TestServer, s3: S3Client): Promise<Figure[]> {
  const { config } = bench;
  const samples = new Map<string, number[]>();
  const add = (key: string, value: number) =>
    samples.set(key, [...(samples.get(key) ?? []), value]);
  const large = pseudoRandomBytes(config.sizeBytes, 3);
  const [cbor] = await connectClients(server.address, 1);
  const clients = await connectClients(server.address, config.clients);
  const small = pseudoRandomBytes(4096, 4);
  try {
    for (let run = 0; run < config.runs; run++) {
      progress(`run ${run + 1}: large object and 4 KiB objects, CBOR then S3`);
      const mbps = (seconds: number) => config.sizeBytes / 1e6 / seconds;
      add("cbor put", mbps((await timed(() => cbor.put(`${BUCKET}/big-c${run}`, large))).seconds));
      add("cbor get", mbps((await timed(() => cbor.getBytes(`${BUCKET}/big-c${run}`))).seconds));
      add(
        "s3 put",
        mbps((await timed(() => s3.send("PUT", `/${BUCKET}/big-s${run}`, large))).seconds),
      );
      add(
        "s3 get",
        mbps(
          (await timed(async () => {
            const response = await s3.send("GET", `/${BUCKET}/big-s${run}`);
            let received = 0;
            for await (const piece of response.body!) received += piece.length;
            if (received !== config.sizeBytes) throw new Error(`S3 GET gave ${received} bytes`);
          })).seconds,
        ),
      );
      const nameOf = (i: number) => `${BUCKET}/r${run}/c${i}`;
      const options = { nameOf, files: config.files, serverPid: server.process.pid };
      const put = await runPhase(clients, "put", options);
      const get = await runPhase(clients, "get", options);
      add("cbor small put", put.files / put.seconds);
      add("cbor small get", get.files / get.seconds);
      add("cbor small put cpu", 100 * put.serverCpuSeconds / put.seconds);
      add("cbor small get cpu", 100 * get.serverCpuSeconds / get.seconds);
      const pid = server.process.pid;
      const s3Put = await s3Phase(config, pid, (i) => {
        return s3.send("PUT", `/${BUCKET}/r${run}/s${i}`, small);
      });
      const s3Get = await s3Phase(config, pid, async (i) => {
        const body = await (await s3.send("GET", `/${BUCKET}/r${run}/s${i}`)).arrayBuffer();
        if (body.byteLength !== 4096) throw new Error(`S3 GET gave ${body.byteLength} bytes`);
      });
      add("s3 small put", s3Put.rate);
      add("s3 small get", s3Get.rate);
      add("s3 small put cpu", s3Put.serverCpu);
      add("s3 small get cpu", s3Get.serverCpu);
    }
  } finally {
    cbor.close();
    for (const client of clients as DfsClient[]) client.close();
  }
  for (const kind of ["put", "get", "small put", "small get"]) {
    const ratio = samples.get(`s3 ${kind}`)!.map((s, i) =>
      100 * s / samples.get(`cbor ${kind}`)![i]
    );
    samples.set(`ratio ${kind}`, ratio);
  }
  const size = `${config.sizeBytes / MiB} MiB`;
  const rows: [string, string, string][] = [
    ["put", `${size} put (one request)`, "MB/s"],
    ["get", `${size} get`, "MB/s"],
    ["small put", `4 KiB put, ${config.clients} clients`, "files/s"],
    ["small get", `4 KiB get, ${config.clients} clients`, "files/s"],
  ];
  const core = { unit: "% of a core" };
  return [
    ...rows.flatMap(([key, name, unit]) => [
      figureOf(`${name}, CBOR`, samples.get(`cbor ${key}`)!, { unit }),
      figureOf(`${name}, S3`, samples.get(`s3 ${key}`)!, { unit }),
      figureOf(`${name}, S3 / CBOR of the same run`, samples.get(`ratio ${key}`)!, { unit: "%" }),
    ]),
    ...["put", "get"].flatMap((op) => [
      figureOf(`4 KiB ${op}, server CPU, CBOR`, samples.get(`cbor small ${op} cpu`)!, core),
      figureOf(`4 KiB ${op}, server CPU, S3`, samples.get(`s3 small ${op} cpu`)!, core),
    ]),
  ];
}

/**
 * `config.files` S3 operations over `config.clients` lanes: operations per second, and the
 * server's CPU over the phase in % of a core.
 */
async function s3Phase(
  config: BenchContext["config"],
  serverPid: number,
  op: (i: number) => Promise<unknown>,
): Promise<{ rate: number; serverCpu: number }> {
  let next = 0;
  const lane = async () => {
    while (next < config.files) await op(next++);
  };
  const cpu0 = await cpuSeconds(serverPid);
  const { seconds } = await timed(() => Promise.all(Array.from({ length: config.clients }, lane)));
  const cpu1 = await cpuSeconds(serverPid);
  return { rate: config.files / seconds, serverCpu: 100 * (cpu1 - cpu0) / seconds };
}
