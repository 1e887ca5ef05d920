/**
 * A data node as a process of its own (`dfs node`): it keeps its identity (node id, cluster id,
 * rank) in its folder, joins rank 0 over the node port (`common/join.ts`: both sides prove they
 * hold the cluster secret), serves rank 0 over a `TcpTransport`, and when the link drops (rank 0
 * restarted, the network cut) finishes what it was doing and joins again, with backoff. Rank 0
 * reconciles it each time, as it does a restarted Worker.
 *
 * Its folder: `LOCK` (one process per folder), `NODE_FILE` (its identity) and `STORE_DIR` (the
 * data node's own folder: chunks and log).
 *
 * @module
 */

import { join } from "node:path";
import { newNonce, nodeProof, proofMatches, rankZeroProof } from "../../protocol/auth.ts";
import { BufferPool } from "../../protocol/buffer_pool.ts";
import { FrameReader, FrameWriter } from "../../protocol/conn.ts";
import { openSocket } from "../../protocol/connect.ts";
import { DfsError } from "../../protocol/errors.ts";
import { FRAME_SIZE_BYTES_MAX } from "../../protocol/limits.ts";
import { decodeFrameBody } from "../../protocol/frame.ts";
import { Comm } from "../comm/comm.ts";
import { TcpTransport } from "../comm/tcp_transport.ts";
import {
  ID_PATTERN,
  JOIN_FRAME_BYTES_MAX,
  JOIN_PROTOCOL_VERSION,
  type JoinHello,
  newId,
  parseHello,
  parseWelcome,
} from "../common/join.ts";
import { RANKS_MAX, READY_TAG } from "../common/node_protocol.ts";
import { readJsonFile, writeFileDurably } from "../env/durable.ts";
import { denoEnv } from "../env/deno_env.ts";
import type { Env } from "../env/env.ts";
import type { DataNode } from "./data_node.ts";
import { openDataNode } from "./open_node.ts";
import { lockDataDir } from "./data_dir.ts";
import { serveNode } from "./serve.ts";
import { type DataPort, serveDataPort } from "./data_port.ts";
import { grantKey } from "../../protocol/direct.ts";

/** The file in a node's folder that holds its identity. */
export const NODE_FILE = "node.json";
/** The data node's folder inside a node's folder. */
export const STORE_DIR = "store";
/** Wait after the first failed attempt to join; it doubles after each failure. */
export const NODE_RECONNECT_BACKOFF_MS = 500;
/** Longest wait between two attempts to join. */
export const NODE_RECONNECT_BACKOFF_MAX_MS = 10_000;
/** How long connecting to rank 0 (and its TLS handshake) may take. */
export const NODE_CONNECT_TIMEOUT_MS = 10_000;
/** How long the join handshake may take once connected. */
export const NODE_JOIN_TIMEOUT_MS = 10_000;
/**
 * A link to rank 0 that brings nothing for this long is taken for dead (rank 0 heartbeats every
 * second): a cut cable shows as silence, not as an error.
 */
export const NODE_SILENCE_TIMEOUT_MS = 10_000;

/** Idle buffers a node keeps for the chunks it reads (each `FRAME_SIZE_BYTES_MAX`). */
export const NODE_READ_BUFFERS_MAX = 16;

/** A node's identity, as kept in its folder. */
export interface NodeIdentity {
  nodeId: string;
  /** Null until it first joins a cluster. */
  clusterId: string | null;
  rank: number | null;
}

/** Options of `runRemoteNode()`. */
export interface RemoteNodeOptions {
  /** Rank 0's node port. */
  join: { hostname: string; port: number };
  /** The node's folder. */
  dataDir: string;
  /** The cluster secret. */
  secret: Uint8Array;
  /** This host's name as the node reports it (default: the system's host name). */
  host?: string;
  /** The node's failure domain (default: `host`). */
  zone?: string;
  /** Trust these certificates and speak TLS to rank 0. */
  tlsCaCerts?: string[];
  /**
   * Serve clients' direct reads on this port (`data_port.ts`; 0 picks a free one). Without it,
   * clients read this node's chunks through rank 0.
   */
  dataPort?: number;
  /**
   * The address the data port listens on and clients are told to reach it at (default: it listens
   * on every address, and clients are told the address this node reaches rank 0 from).
   */
  dataHost?: string;
  /** The data port speaks TLS with this certificate and key (PEM). */
  dataTls?: { cert: string; key: string };
  /** Told each time the node has joined (and said it is ready). */
  onJoined?: (rank: number) => void;
  /** Stops the node: it finishes what it was doing and returns. */
  signal?: AbortSignal;
  env?: Env;
}

/**
 * Runs a data node that joins rank 0 until `signal` aborts.
 *
 * @throws {DfsError} `UNAUTHORIZED` when rank 0 refuses the secret or belongs to another cluster
 *   (or fails to prove it holds the secret); `INVALID_REQUEST` for a folder that cannot be a
 *   node's; `UNAVAILABLE` if the folder is in use. Connection failures are retried, not thrown.
 */
export async function runRemoteNode(options: RemoteNodeOptions): Promise<void> {
  const env = options.env ?? denoEnv();
  const host = options.host ?? systemHostName();
  const zone = options.zone ?? host;
  await env.fs.mkdir(options.dataDir, { recursive: true });
  const lock = await lockDataDir(options.dataDir, env);
  let node: DataNode | undefined;
  let dataPort: DataPort | undefined;
  try {
    let identity = await readIdentity(options, env);
    /** The device the store was on when first opened; a store opened again must be on it. */
    let device: number | undefined;
    let backoffMs = NODE_RECONNECT_BACKOFF_MS;
    let lastFailure = "";
    // The buffers large reads go into, reused once their bytes are on the socket: a fresh 1 MiB
    // buffer per read cost the node much of its time in page faults.
    const readBuffers = new BufferPool(FRAME_SIZE_BYTES_MAX, { buffersMax: NODE_READ_BUFFERS_MAX });
    dataPort = openDataPort(options, env, () => node);
    while (!options.signal?.aborted) {
      try {
        const joined = await joinOnce(options, { identity, host, zone, dataPort: dataPort?.port });
        if (identity.clusterId === null || identity.rank === null) {
          identity = { ...identity, clusterId: joined.clusterId, rank: joined.rank };
          await writeIdentity(options.dataDir, identity, env);
        }
        node ??= await openStore(joined, options.dataDir, { env, device });
        if (node === undefined) continue;
        device ??= env.fs.statSync(join(options.dataDir, STORE_DIR)).dev;
        backoffMs = NODE_RECONNECT_BACKOFF_MS;
        lastFailure = "";
        await serveLink(joined, node, { ...options, env, readBuffers });
        if (options.signal?.aborted) break;
        env.log.error(`dfs: lost rank 0 at ${address(options)}; joining again`);
        if (hasFailed(node)) {
          // Its disk failed: opened again, as a restarted Worker is, on the disk it was on (a disk
          // that fell off leaves an empty mount point, which must not fill up in its place).
          await node.close().catch(() => {});
          node = undefined;
        }
      } catch (error) {
        if (isPermanent(error)) throw error;
        const why = (error as Error).message;
        if (why !== lastFailure) env.log.error(`dfs: cannot join ${address(options)}: ${why}`);
        lastFailure = why;
      }
      if (options.signal?.aborted) break;
      const jitter = env.random.fill(new Uint8Array(1))[0] / 255; // nodes do not come back in step
      const waitMs = backoffMs * (0.75 + jitter * 0.5);
      backoffMs = Math.min(2 * backoffMs, NODE_RECONNECT_BACKOFF_MAX_MS);
      await sleep(env, waitMs, options.signal);
    }
  } finally {
    await dataPort?.close();
    await node?.close().catch(() => {});
    lock.close();
  }
}

/**
 * Opens the data port when `dataPort` is given (`data_port.ts`).
 *
 * @throws the listen error (address in use, no permission).
 */
function openDataPort(
  options: RemoteNodeOptions,
  env: Env,
  node: () => DataNode | undefined,
): DataPort | undefined {
  if (options.dataPort === undefined) return undefined;
  const address = { hostname: options.dataHost ?? "0.0.0.0", port: options.dataPort };
  const listener = options.dataTls
    ? Deno.listenTls({ ...address, ...options.dataTls })
    : Deno.listen(address);
  const pool = new BufferPool(FRAME_SIZE_BYTES_MAX, { buffersMax: NODE_READ_BUFFERS_MAX });
  const key = grantKey(options.secret);
  return serveDataPort(listener, { node, key, pool, clock: env.clock, log: env.log });
}

/** A link to rank 0 that passed the join handshake. */
interface Joined {
  rank: number;
  clusterId: string;
  conn: Deno.Conn;
  reader: FrameReader;
}

/** Connects to rank 0 and runs the handshake. Throws rank 0's refusal as a DfsError. */
async function joinOnce(
  options: RemoteNodeOptions,
  me: { identity: NodeIdentity; host: string; zone: string; dataPort?: number },
): Promise<Joined> {
  const { hostname, port } = options.join;
  const conn = await openSocket(hostname, port, {
    tlsCaCerts: options.tlsCaCerts,
    connectTimeoutMs: NODE_CONNECT_TIMEOUT_MS,
  });
  let timedOut = false;
  let hello: JoinHello | undefined;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, NODE_JOIN_TIMEOUT_MS);
  const reader = new FrameReader(conn, { frameSizeBytesMax: JOIN_FRAME_BYTES_MAX });
  const writer = new FrameWriter(conn);
  try {
    const first = await reader.read();
    if (first === null) throw new DfsError("UNAVAILABLE", "rank 0 hung up before its hello");
    hello = parseHello(decodeFrameBody(first));
    const { identity } = me;
    if (identity.clusterId !== null && identity.clusterId !== hello.clusterId) {
      const message = `This node belongs to cluster ${identity.clusterId}; ${hostname}:${port} ` +
        `is cluster ${hello.clusterId}: nothing was changed on either`;
      await writer.send({ op: "refused", code: "UNAUTHORIZED", message }).catch(() => {});
      throw new DfsError("UNAUTHORIZED", message);
    }
    const nonce = newNonce();
    await writer.send({
      op: "join",
      version: JOIN_PROTOCOL_VERSION,
      nodeId: identity.nodeId,
      clusterId: identity.clusterId,
      rank: identity.rank,
      zone: me.zone,
      host: me.host,
      data: me.dataPort === undefined
        ? undefined
        : dataAddress(options.dataHost ?? (conn.localAddr as Deno.NetAddr).hostname, me.dataPort),
      dataTls: options.dataTls !== undefined && me.dataPort !== undefined ? true : undefined,
      nonce,
      proof: nodeProof(options.secret, hello.nonce, nonce),
    });
    const answer = await reader.read();
    if (answer === null) throw new DfsError("UNAVAILABLE", "rank 0 hung up during the handshake");
    const welcome = parseWelcome(decodeFrameBody(answer));
    if (!proofMatches(welcome.proof, rankZeroProof(options.secret, hello.nonce, nonce))) {
      throw new DfsError(
        "UNAUTHORIZED",
        `${hostname}:${port} failed to prove it holds the cluster secret: not joining it`,
      );
    }
    if (identity.rank !== null && welcome.rank !== identity.rank) {
      throw new DfsError(
        "INVALID_REQUEST",
        `Rank 0 gave rank ${welcome.rank} to this node, which is rank ${identity.rank}`,
      );
    }
    clearTimeout(timer);
    writer.close();
    return { rank: welcome.rank, clusterId: welcome.clusterId, conn, reader };
  } catch (error) {
    clearTimeout(timer);
    writer.close();
    try {
      conn.close();
    } catch { /* closed by the timer */ }
    if (!timedOut) throw error;
    const tls = options.tlsCaCerts ? "" : " (if its node port speaks TLS, pass --tls-ca)";
    const what = hello === undefined ? `sent no hello${tls}` : "did not answer the join";
    throw new DfsError("UNAVAILABLE", `rank 0 ${what} within ${NODE_JOIN_TIMEOUT_MS} ms`);
  }
}

/**
 * Opens the data node's storage on its first join; says why on the link and gives undefined if
 * it cannot (a failed disk): the node tries again after its backoff.
 */
async function openStore(
  joined: Joined,
  dataDir: string,
  options: { env: Env; device?: number },
): Promise<DataNode | undefined> {
  const { env, device } = options;
  try {
    // Created only the first time: a folder that vanished later is a failed disk.
    const create = device === undefined;
    return await openDataNode(joined.rank, join(dataDir, STORE_DIR), { env, create, device });
  } catch (error) {
    env.log.error(`dfs: cannot open the node's storage: ${(error as Error).message}`);
    const transport = new TcpTransport(joined.rank, RANKS_MAX);
    transport.attach(0, joined.conn, { reader: joined.reader });
    transport.send(0, READY_TAG, { error: DfsError.wireOf(error), detail: String(error) });
    setTimeout(() => transport.close(), 1_000);
    return undefined;
  }
}

/** Serves rank 0 on a joined link until it drops (or the node stops), then finishes its calls. */
async function serveLink(
  joined: Joined,
  node: DataNode,
  options: RemoteNodeOptions & { env: Env; readBuffers: BufferPool },
): Promise<void> {
  const { env, readBuffers } = options;
  const transport = new TcpTransport(joined.rank, RANKS_MAX, {
    silenceTimeoutMs: NODE_SILENCE_TIMEOUT_MS,
    clock: env.clock,
    recycle: (buffer) => readBuffers.give(buffer),
  });
  transport.attach(0, joined.conn, { reader: joined.reader });
  const comm: Comm = new Comm(transport, {
    clock: env.clock,
    log: env.log,
    onPeerError: (_rank, error) => {
      if (!options.signal?.aborted) env.log.error(`dfs: ${(error as Error).message}`);
      comm.close();
    },
  });
  const stop = () => comm.close();
  options.signal?.addEventListener("abort", stop, { once: true });
  try {
    comm.send(0, READY_TAG, { ok: true });
    options.onJoined?.(joined.rank);
    await serveNode(comm, node, { log: env.log, pool: readBuffers });
  } finally {
    options.signal?.removeEventListener("abort", stop);
    comm.close();
  }
}

/** Whether the node's disk has failed (it answers everything with `NODE_FAILED`). */
function hasFailed(node: DataNode): boolean {
  try {
    node.ping();
    return false;
  } catch {
    return true;
  }
}

/**
 * The system's host name as a zone name may be spelled (letters, digits, `.-_:`, at most 128),
 * other characters replaced by `-`; `unknown` if there is none.
 */
export function systemHostName(): string {
  const name = Deno.hostname().replace(/[^A-Za-z0-9._:-]/g, "-").slice(0, 128);
  return name === "" ? "unknown" : name;
}

/** Refusals that trying again cannot change: the node stops. */
function isPermanent(error: unknown): boolean {
  return error instanceof DfsError &&
    (error.code === "UNAUTHORIZED" || error.code === "INVALID_REQUEST" ||
      error.code === "VERSION_MISMATCH");
}

async function readIdentity(options: RemoteNodeOptions, env: Env): Promise<NodeIdentity> {
  const path = join(options.dataDir, NODE_FILE);
  const stored = await readJsonFile(env.fs, path).catch((error) => {
    throw new DfsError("INVALID_REQUEST", `Cannot read ${path}: ${(error as Error).message}`);
  });
  if (stored === undefined) {
    const holds = await holdsAnything(env, join(options.dataDir, STORE_DIR));
    if (holds) {
      throw new DfsError(
        "INVALID_REQUEST",
        `${options.dataDir} holds a node's data but no ${NODE_FILE}: it cannot say which ` +
          "cluster and rank it belongs to; restore the file or use an empty folder",
      );
    }
    const identity = { nodeId: newId(), clusterId: null, rank: null };
    await writeIdentity(options.dataDir, identity, env);
    return identity;
  }
  const { nodeId, clusterId, rank } = stored as Partial<NodeIdentity>;
  if (
    typeof nodeId !== "string" || !ID_PATTERN.test(nodeId) ||
    !(clusterId === null || (typeof clusterId === "string" && ID_PATTERN.test(clusterId))) ||
    !(rank === null || (Number.isSafeInteger(rank) && rank! > 0))
  ) {
    throw new DfsError("INVALID_REQUEST", `Cannot read ${path}: it is not a dfs node identity`);
  }
  return { nodeId, clusterId, rank: rank ?? null };
}

async function writeIdentity(dataDir: string, identity: NodeIdentity, env: Env): Promise<void> {
  const text = `${JSON.stringify(identity, null, 2)}\n`;
  await writeFileDurably(env.fs, join(dataDir, NODE_FILE), new TextEncoder().encode(text));
}

async function holdsAnything(env: Env, dir: string): Promise<boolean> {
  try {
    for await (const _ of env.fs.readDir(dir)) return true;
    return false;
  } catch {
    return false;
  }
}

/** `HOST:PORT` for a client to reach the data port at (IPv6 in brackets). */
function dataAddress(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

function address(options: RemoteNodeOptions): string {
  return `${options.join.hostname}:${options.join.port}`;
}

function sleep(env: Env, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = env.clock.setTimeout(done, ms);
    function done() {
      env.clock.clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
