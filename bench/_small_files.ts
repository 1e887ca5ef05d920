/**
 * Many small files through the client library: files put, then read back, then their
 * metadata asked, each phase spread over several clients (one `DfsClient`, hence one connection,
 * each), with the rate, the latency of every operation and the CPU used by the server and by this
 * process.
 *
 * @module
 */

import { type ClientOptions, DfsClient } from "../client.ts";
import { pseudoRandomBytes } from "../tests/_bytes.ts";
import { CLIENTS_MAX } from "./_config.ts";
import { cpuSeconds } from "./_timing.ts";

/** Size of a small file. */
export const SMALL_FILE_SIZE_BYTES = 4096;
/** Longest one put, get or meta of a small file may take before the benchmark fails. */
export const SMALL_OP_TIMEOUT_MS = 60_000;
/** How often the phase's watchdog looks for an operation over `SMALL_OP_TIMEOUT_MS`. */
export const WATCHDOG_INTERVAL_MS = 1_000;
/** Longest one phase may run: after it, clients take no new file and the phase reports what it did. */
export const PHASE_TIMEOUT_MS = 300_000;

export type SmallOp = "put" | "get" | "meta";

export interface PhaseResult {
  op: SmallOp;
  /** Files done (fewer than asked only if `PHASE_TIMEOUT_MS` ran out). */
  files: number;
  seconds: number;
  /** Latency of every operation, in milliseconds, in completion order. */
  latenciesMs: number[];
  /** When each operation completed, in milliseconds since the phase began, in completion order. */
  doneAtMs: number[];
  /** CPU seconds the server process and this process used during the phase. */
  serverCpuSeconds: number;
  benchCpuSeconds: number;
}

export interface PhaseOptions {
  /** The i-th file's name. */
  nameOf: (i: number) => string;
  files: number;
  /** Bytes per file (put only). */
  sizeBytes?: number;
  /** The server's process id, to measure its CPU time. */
  serverPid: number;
  timeoutMs?: number;
}

/**
 * Connects `count` clients, each with its own connection.
 *
 * @throws {RangeError} over `CLIENTS_MAX`; `DfsError` if the server cannot be reached.
 */
export async function connectClients(
  address: string,
  count: number,
  options: ClientOptions = {},
): Promise<DfsClient[]> {
  if (!(count >= 1 && count <= CLIENTS_MAX)) {
    throw new RangeError(`Clients must be from 1 to ${CLIENTS_MAX}, got ${count}`);
  }
  const clients = await Promise.allSettled(
    Array.from({ length: count }, () => DfsClient.connect(address, options)),
  );
  const failed = clients.find((c) => c.status === "rejected");
  if (failed) {
    for (const c of clients) if (c.status === "fulfilled") c.value.close();
    throw failed.reason;
  }
  return clients.map((c) => (c as PromiseFulfilledResult<DfsClient>).value);
}

/**
 * Runs one operation on files `0..files-1`, spread over `clients`: each client takes the next file
 * not yet taken, so a slow client does not hold the others up. Stops when every file is done or
 * after `timeoutMs`.
 *
 * @throws {Error} if an operation fails, returns the wrong size or takes over `SMALL_OP_TIMEOUT_MS`.
 */
export async function runPhase(
  clients: readonly DfsClient[],
  op: SmallOp,
  options: PhaseOptions,
): Promise<PhaseResult> {
  const { nameOf, files, serverPid } = options;
  const sizeBytes = options.sizeBytes ?? SMALL_FILE_SIZE_BYTES;
  const content = pseudoRandomBytes(sizeBytes, 7);
  const work = operation(op, { sizeBytes, content });
  const latenciesMs: number[] = [];
  const doneAtMs: number[] = [];
  const deadline = performance.now() + (options.timeoutMs ?? PHASE_TIMEOUT_MS);
  let next = 0;
  let start = 0;
  /** Each lane's operation in progress: which file, since when (`performance.now()`). */
  const current: ({ i: number; since: number } | undefined)[] = clients.map(() => undefined);
  const lane = async (client: DfsClient, laneIndex: number) => {
    while (next < files && performance.now() < deadline) {
      const i = next++;
      const began = performance.now();
      current[laneIndex] = { i, since: began };
      await work(client, nameOf(i), i);
      current[laneIndex] = undefined;
      const end = performance.now();
      latenciesMs.push(end - began);
      doneAtMs.push(end - start);
    }
  };
  // One watchdog for the phase, not a timer per operation: the benchmark's own CPU competes with
  // the server's on this machine.
  const stuck = Promise.withResolvers<never>();
  const watchdog = setInterval(() => {
    const now = performance.now();
    const late = current.find((c) => c !== undefined && now - c.since > SMALL_OP_TIMEOUT_MS);
    if (late) {
      stuck.reject(
        new Error(`${op} "${nameOf(late.i)}" took longer than ${SMALL_OP_TIMEOUT_MS} ms`),
      );
    }
  }, WATCHDOG_INTERVAL_MS);
  const [server0, bench0] = await Promise.all([cpuSeconds(serverPid), cpuSeconds(Deno.pid)]);
  start = performance.now();
  try {
    await Promise.race([Promise.all(clients.map(lane)), stuck.promise]);
  } finally {
    clearInterval(watchdog);
  }
  const seconds = (performance.now() - start) / 1000;
  const [server1, bench1] = await Promise.all([cpuSeconds(serverPid), cpuSeconds(Deno.pid)]);
  return {
    op,
    files: latenciesMs.length,
    seconds,
    latenciesMs,
    doneAtMs,
    serverCpuSeconds: server1 - server0,
    benchCpuSeconds: bench1 - bench0,
  };
}

function operation(
  op: SmallOp,
  options: { sizeBytes: number; content: Uint8Array },
): (client: DfsClient, name: string, i: number) => Promise<void> {
  const { sizeBytes, content } = options;
  switch (op) {
    case "put":
      return async (client, name, i) => {
        // Every file differs: its index is stamped at its start.
        const bytes = content.slice();
        if (bytes.length >= 4) new DataView(bytes.buffer).setUint32(0, i);
        await client.put(name, bytes);
      };
    case "get":
      return async (client, name) => {
        const bytes = await client.getBytes(name); // the client checks the SHA-256
        if (bytes.length !== sizeBytes) {
          throw new Error(`get "${name}" returned ${bytes.length} bytes, expected ${sizeBytes}`);
        }
      };
    case "meta":
      return async (client, name) => {
        const meta = await client.meta(name);
        if (meta.size !== sizeBytes) {
          throw new Error(`meta "${name}" says ${meta.size} bytes, expected ${sizeBytes}`);
        }
      };
  }
}
