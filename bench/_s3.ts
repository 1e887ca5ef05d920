/**
 * `deno task bench --s3`: the S3 gateway beside the CBOR protocol, on one server in the same run,
 * turn by turn: a large object put and got, and 4 KiB objects put and got by concurrent clients.
 *
 * Through S3, the large object goes up as a multipart upload (parts of `MULTIPART_PART_BYTES`,
 * `PARTS_IN_FLIGHT` at once, each on a connection of its own, then `CompleteMultipartUpload`) and
 * comes back in one GET on one connection, streamed and counted. S3 requests go through the
 * bench's lean client (`_s3_client.ts`: HTTP/1.1 on `Deno.connect`, kept alive, one connection per
 * simulated client, each request signed with SigV4 and `UNSIGNED-PAYLOAD`, as SDKs send over TLS),
 * not `fetch`: on this 2-core machine `fetch` and `@smithy/signature-v4` cost the bench more CPU
 * than the gateway, so they measured the client as much as the server.
 *
 * @module
 */

import type { DfsClient } from "../client.ts";
import { pseudoRandomBytes } from "../tests/_bytes.ts";
import type { TestServer } from "../tests/_server.ts";
import type { BenchContext } from "./_config.ts";
import { putMultipart, S3Connection, type S3Credentials } from "./_s3_client.ts";
import {
  connectClients,
  runPhase,
  SMALL_FILE_SIZE_BYTES,
  SMALL_OP_TIMEOUT_MS,
  WATCHDOG_INTERVAL_MS,
} from "./_small_files.ts";
import { type Figure, figureOf } from "./_stats.ts";
import { cpuSeconds, progress } from "./_timing.ts";
import { withServer } from "./_with_server.ts";

const MiB = 1024 * 1024;
const KEY_ID = "AKIADFSBENCH";
const SECRET = "dfs-bench-secret";
const BUCKET = "bench";

/** Bytes of each part of the large object's multipart upload (the last one may be shorter). */
export const MULTIPART_PART_BYTES = 64 * MiB;
/** Parts of the large object sent at once, each over its own connection. */
export const PARTS_IN_FLIGHT = 4;

/** Runs the comparison on one server with an S3 port. */
export async function runS3(bench: BenchContext): Promise<Figure[]> {
  const dir = await Deno.makeTempDir({ prefix: "dfs-bench-s3-" });
  await Deno.writeTextFile(`${dir}/creds`, `${KEY_ID}:${SECRET}\n`);
  try {
    return await withServer({
      ranks: bench.config.ranks,
      extraArgs: ["--s3-port", "0", "--s3-credentials-file", `${dir}/creds`],
    }, async (server) => {
      const address = /s3 on ([\d.]+:\d+)/.exec(server.readyLine)![1];
      return await compare(bench, server, address);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Wall time of some work, and the CPU the server and this process used meanwhile. */
interface Measured {
  seconds: number;
  serverCpuSeconds: number;
  benchCpuSeconds: number;
}

async function measured(serverPid: number, work: () => Promise<unknown>): Promise<Measured> {
  const [server0, bench0] = await Promise.all([cpuSeconds(serverPid), cpuSeconds(Deno.pid)]);
  const start = performance.now();
  await work();
  const seconds = (performance.now() - start) / 1000;
  const [server1, bench1] = await Promise.all([cpuSeconds(serverPid), cpuSeconds(Deno.pid)]);
  return { seconds, serverCpuSeconds: server1 - server0, benchCpuSeconds: bench1 - bench0 };
}

async function openConnections(
  address: string,
  credentials: S3Credentials,
  count: number,
): Promise<S3Connection[]> {
  const opened = await Promise.allSettled(
    Array.from({ length: count }, () => S3Connection.open(address, credentials)),
  );
  const failed = opened.find((o) => o.status === "rejected");
  if (failed) {
    for (const o of opened) if (o.status === "fulfilled") o.value.close();
    throw failed.reason;
  }
  return opened.map((o) => (o as PromiseFulfilledResult<S3Connection>).value);
}

async function compare(bench: BenchContext, server: TestServer, s3Address: string) {
  const { config } = bench;
  const pid = server.process.pid;
  const samples = new Map<string, number[]>();
  const add = (key: string, value: number) =>
    samples.set(key, [...(samples.get(key) ?? []), value]);
  /** Rate, and server and bench CPU in % of a core and µs per operation. */
  const addMeasured = (key: string, m: Measured, rate: number, ops: number) => {
    add(key, rate);
    add(`${key} server cpu`, 100 * m.serverCpuSeconds / m.seconds);
    add(`${key} bench cpu`, 100 * m.benchCpuSeconds / m.seconds);
    add(`${key} server us`, 1e6 * m.serverCpuSeconds / ops);
  };
  const large = pseudoRandomBytes(config.sizeBytes, 3);
  const parts = Math.ceil(config.sizeBytes / MULTIPART_PART_BYTES);
  const credentials = { accessKeyId: KEY_ID, secret: SECRET };
  const [cbor] = await connectClients(server.address, 1);
  const clients = await connectClients(server.address, config.clients);
  const partLanes = await openConnections(s3Address, credentials, PARTS_IN_FLIGHT);
  const s3Lanes = await openConnections(s3Address, credentials, config.clients);
  try {
    await partLanes[0].send({ method: "PUT", path: `/${BUCKET}` });
    for (let run = 0; run < config.runs; run++) {
      progress(`run ${run + 1}: large object and 4 KiB objects, CBOR then S3`);
      const mbps = (m: Measured) => config.sizeBytes / 1e6 / m.seconds;
      const cborPut = await measured(pid, () => cbor.put(`${BUCKET}/big-c${run}`, large));
      addMeasured("cbor put", cborPut, mbps(cborPut), 1);
      const cborGet = await measured(pid, () => cbor.getBytes(`${BUCKET}/big-c${run}`));
      addMeasured("cbor get", cborGet, mbps(cborGet), 1);

      const path = `/${BUCKET}/big-s${run}`;
      let etag = "";
      const s3Put = await measured(pid, async () => {
        const result = await putMultipart(partLanes, path, large, MULTIPART_PART_BYTES);
        etag = result.etag;
      });
      if (!etag.endsWith(`-${parts}`)) {
        throw new Error(`The multipart upload's ETag ${etag} does not end with -${parts}`);
      }
      addMeasured("s3 put", s3Put, mbps(s3Put), 1);
      let received = 0;
      let gotEtag: string | undefined;
      const s3Get = await measured(pid, async () => {
        const response = await partLanes[0].send({
          method: "GET",
          path,
          onBody: (piece) => received += piece.length,
        });
        gotEtag = response.headers.get("etag");
      });
      if (received !== config.sizeBytes) {
        throw new Error(`S3 GET of ${path} gave ${received} bytes, not ${config.sizeBytes}`);
      }
      if (gotEtag !== `"${etag}"`) throw new Error(`S3 GET of ${path}: ETag ${gotEtag}`);
      addMeasured("s3 get", s3Get, mbps(s3Get), 1);

      const nameOf = (i: number) => `${BUCKET}/r${run}/c${i}`;
      const options = { nameOf, files: config.files, serverPid: pid };
      for (const op of ["put", "get"] as const) {
        const phase = await runPhase(clients, op, options);
        addMeasured(`cbor small ${op}`, phase, phase.files / phase.seconds, phase.files);
      }
      const content = pseudoRandomBytes(SMALL_FILE_SIZE_BYTES, 7);
      const smallPut = await s3Phase(config, pid, s3Lanes, async (s3, i) => {
        const body = content.slice(); // every object differs: its index is stamped at its start
        new DataView(body.buffer).setUint32(0, i);
        await s3.send({ method: "PUT", path: `/${BUCKET}/r${run}/s${i}`, body });
      });
      addMeasured("s3 small put", smallPut, config.files / smallPut.seconds, config.files);
      const smallGet = await s3Phase(config, pid, s3Lanes, async (s3, i) => {
        const { body } = await s3.send({ method: "GET", path: `/${BUCKET}/r${run}/s${i}` });
        if (body.length !== SMALL_FILE_SIZE_BYTES) {
          throw new Error(`S3 GET of s${i} gave ${body.length} bytes`);
        }
      });
      addMeasured("s3 small get", smallGet, config.files / smallGet.seconds, config.files);
    }
  } finally {
    cbor.close();
    for (const client of clients as DfsClient[]) client.close();
    for (const lane of [...partLanes, ...s3Lanes]) lane.close();
  }
  for (const kind of ["put", "get", "small put", "small get"]) {
    const ratio = samples.get(`s3 ${kind}`)!.map((s, i) =>
      100 * s / samples.get(`cbor ${kind}`)![i]
    );
    samples.set(`ratio ${kind}`, ratio);
  }
  const size = `${config.sizeBytes / MiB} MiB`;
  const partsText = `${parts} part${parts === 1 ? "" : "s"} of ${MULTIPART_PART_BYTES / MiB} MiB`;
  const rows: [string, string, string][] = [
    ["put", `${size} put (S3: multipart, ${partsText}, ${PARTS_IN_FLIGHT} at once)`, "MB/s"],
    ["get", `${size} get (S3: one GET)`, "MB/s"],
    ["small put", `4 KiB put, ${config.clients} clients`, "files/s"],
    ["small get", `4 KiB get, ${config.clients} clients`, "files/s"],
  ];
  const shortNames: [string, string][] = [
    ["put", `${size} put`],
    ["get", `${size} get`],
    ["small put", "4 KiB put"],
    ["small get", "4 KiB get"],
  ];
  const core = { unit: "% of a core" };
  const both = (key: string, name: string, unit: string) => [
    figureOf(`${name}, CBOR`, samples.get(`cbor ${key}`)!, { unit }),
    figureOf(`${name}, S3`, samples.get(`s3 ${key}`)!, { unit }),
  ];
  return [
    ...rows.flatMap(([key, name, unit]) => [
      ...both(key, name, unit),
      figureOf(`${name}, S3 / CBOR of the same run`, samples.get(`ratio ${key}`)!, { unit: "%" }),
    ]),
    ...shortNames.flatMap(([key, name]) => [
      ...both(`${key} server cpu`, `${name}, server CPU`, core.unit),
      ...both(`${key} bench cpu`, `${name}, bench (clients) CPU`, core.unit),
    ]),
    ...shortNames.slice(2).flatMap(([key, name]) =>
      both(`${key} server us`, `${name}, server CPU per op`, "µs")
    ),
  ];
}

/**
 * `config.files` S3 operations over the lanes, one connection each, each lane taking the next
 * operation not yet taken.
 *
 * @throws {Error} whatever an operation throws, or if one takes over `SMALL_OP_TIMEOUT_MS`.
 */
async function s3Phase(
  config: BenchContext["config"],
  serverPid: number,
  lanes: readonly S3Connection[],
  op: (s3: S3Connection, i: number) => Promise<unknown>,
): Promise<Measured> {
  let next = 0;
  const since: (number | undefined)[] = lanes.map(() => undefined);
  const lane = async (s3: S3Connection, laneIndex: number) => {
    while (next < config.files) {
      since[laneIndex] = performance.now();
      await op(s3, next++);
      since[laneIndex] = undefined;
    }
  };
  // One watchdog for the phase, as `runPhase` has.
  const stuck = Promise.withResolvers<never>();
  const watchdog = setInterval(() => {
    const now = performance.now();
    if (since.some((t) => t !== undefined && now - t > SMALL_OP_TIMEOUT_MS)) {
      stuck.reject(new Error(`An S3 operation took longer than ${SMALL_OP_TIMEOUT_MS} ms`));
    }
  }, WATCHDOG_INTERVAL_MS);
  try {
    return await measured(
      serverPid,
      () => Promise.race([Promise.all(lanes.map(lane)), stuck.promise]),
    );
  } finally {
    clearInterval(watchdog);
  }
}
