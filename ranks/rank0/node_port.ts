/**
 * The node port: where remote data nodes (`dfs node`) connect to rank 0. Each connection runs the
 * join handshake (`common/join.ts`) within `NODE_HANDSHAKE_TIMEOUT_MS` and frames of at most
 * `JOIN_FRAME_BYTES_MAX` (the peer is not trusted yet); a node that proves it holds the cluster
 * secret and is let in by `decideJoin` is handed over to the cluster, socket and all. Every
 * refusal is said to the node and logged here, and changes nothing.
 *
 * @module
 */

import { newNonce, nodeProof, proofMatches, rankZeroProof } from "../../protocol/auth.ts";
import { FrameReader, FrameWriter, isConnectionError, setNoDelay } from "../../protocol/conn.ts";
import { DfsError } from "../../protocol/errors.ts";
import { decodeFrameBody } from "../../protocol/frame.ts";
import {
  decideJoin,
  JOIN_FRAME_BYTES_MAX,
  JOIN_PROTOCOL_VERSION,
  type JoinRefusal,
  type JoinRequest,
  type KnownNode,
  parseJoin,
} from "../common/join.ts";
import type { Log } from "../env/env.ts";

/** How long a connecting node has to finish the join handshake. */
export const NODE_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Join handshakes in progress at once; further connections are closed at once. */
export const NODE_HANDSHAKES_MAX = 16;

/** A node that passed the handshake, with its socket, for the cluster to take in. */
export interface JoinedNode {
  join: JoinRequest;
  rank: number;
  /** Known to the cluster before (its rank came from the node table). */
  known: boolean;
  /** `HOST:PORT` it connected from. */
  address: string;
  conn: Deno.Conn;
  /** The reader the handshake used (it may hold bytes already). */
  reader: FrameReader;
}

/** What the node port needs from the cluster. */
export interface NodePortOptions {
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  /** The cluster secret both sides prove they hold. */
  secret: Uint8Array;
  /** TLS on the node port (the server's certificate and key). */
  tls?: { cert: string; key: string };
  /** The cluster's id and the nodes it knows, and the first rank a new node may take. */
  cluster: () => {
    clusterId: string;
    nodes: readonly KnownNode[];
    firstRank: number;
    ranksMax: number;
  };
  /** Whether a node with this id is connected (or joining) now. */
  isConnected(nodeId: string): boolean;
  /**
   * Records a node's rank (durably, before it is welcomed: a new node's rank is never given
   * twice) and reserves its id until `admit` is done with it.
   */
  reserve(node: KnownNode): Promise<void>;
  /** Takes a welcomed node in; the cluster owns its socket from then on. */
  admit(node: JoinedNode): void;
  log: Log;
}

/** A listening node port. */
export interface NodePort {
  readonly hostname: string;
  readonly port: number;
  close(): void;
}

/**
 * Listens for data nodes on `hostname:port` (TLS when `tls` is given).
 *
 * @throws the listen error (address in use, no permission).
 */
export function listenForNodes(options: NodePortOptions): NodePort {
  const address = { hostname: options.hostname, port: options.port, transport: "tcp" as const };
  const listener: Deno.Listener = options.tls
    ? Deno.listenTls({ ...address, cert: options.tls.cert, key: options.tls.key })
    : Deno.listen(address);
  let handshakes = 0;
  let closed = false;
  /** Decisions are taken one at a time: two new nodes never get the same rank. */
  let deciding: Promise<unknown> = Promise.resolve();
  const serially = <T>(work: () => Promise<T>): Promise<T> => {
    const done = deciding.then(work);
    deciding = done.catch(() => {});
    return done;
  };
  void (async () => {
    for await (const conn of listener) {
      if (handshakes >= NODE_HANDSHAKES_MAX) {
        conn.close();
        continue;
      }
      handshakes++;
      void handshake(conn, options, serially).finally(() => handshakes--);
    }
  })().catch((error) => {
    if (!closed) options.log.error("dfs: the node port stopped:", error);
  });
  const addr = listener.addr as Deno.NetAddr;
  return {
    hostname: addr.hostname,
    port: addr.port,
    close() {
      closed = true;
      try {
        listener.close();
      } catch { /* closed already */ }
    },
  };
}

async function handshake(
  conn: Deno.Conn,
  options: NodePortOptions,
  serially: <T>(work: () => Promise<T>) => Promise<T>,
): Promise<void> {
  const remote = conn.remoteAddr as Deno.NetAddr;
  const from = `${remote.hostname}:${remote.port}`;
  const timer = setTimeout(() => conn.close(), NODE_HANDSHAKE_TIMEOUT_MS);
  const reader = new FrameReader(conn, { frameSizeBytesMax: JOIN_FRAME_BYTES_MAX });
  const writer = new FrameWriter(conn);
  let handed = false;
  try {
    setNoDelay(conn);
    if ("handshake" in conn) await (conn as Deno.TlsConn).handshake();
    const { clusterId } = options.cluster();
    const nonce = newNonce();
    await writer.send({ op: "hello", version: JOIN_PROTOCOL_VERSION, clusterId, nonce });
    const body = await reader.read();
    if (body === null) throw new DfsError("UNAVAILABLE", "it hung up during the handshake");
    const join = parseJoin(decodeFrameBody(body));
    if (!proofMatches(join.proof, nodeProof(options.secret, nonce, join.nonce))) {
      return await refuse(writer, options, from, {
        op: "refused",
        code: "UNAUTHORIZED",
        message: `Node ${join.nodeId} (${join.host}) is refused: wrong cluster secret`,
      });
    }
    const decision = await serially(async () => {
      const cluster = { ...options.cluster(), connected: new Set<string>() };
      if (options.isConnected(join.nodeId)) cluster.connected.add(join.nodeId);
      const decided = decideJoin(join, cluster);
      if (decided.ok) {
        await options.reserve({ nodeId: join.nodeId, rank: decided.rank, zone: join.zone });
      }
      return decided;
    });
    if (!decision.ok) {
      return await refuse(writer, options, from, { op: "refused", ...decision });
    }
    const proof = rankZeroProof(options.secret, nonce, join.nonce);
    await writer.send({ op: "welcome", rank: decision.rank, clusterId, proof });
    clearTimeout(timer);
    handed = true;
    options.admit({
      join,
      rank: decision.rank,
      known: decision.known,
      address: from,
      conn,
      reader,
    });
  } catch (error) {
    if (!isConnectionError(error) && !(error instanceof Deno.errors.InvalidData)) {
      const why = error instanceof Error ? error.message : String(error);
      options.log.error(`dfs: a node connecting from ${from} failed its handshake: ${why}`);
      if (error instanceof DfsError && error.code === "INVALID_REQUEST") {
        await writer.send({ op: "refused", code: error.code, message: error.message })
          .catch(() => {});
      }
    }
  } finally {
    clearTimeout(timer);
    writer.close();
    if (!handed) {
      try {
        conn.close();
      } catch { /* closed by the timer */ }
    }
  }
}

async function refuse(
  writer: FrameWriter,
  options: NodePortOptions,
  from: string,
  refusal: JoinRefusal,
): Promise<void> {
  options.log.error(`dfs: refused a node connecting from ${from}: ${refusal.message}`);
  await writer.send(refusal).catch(() => {});
}
