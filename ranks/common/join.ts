/**
 * How a remote data node (`dfs node`) joins rank 0 over the node port, before any packet of the
 * rank library flows. Pure: the messages, their checks, and rank 0's decision; the sockets are in
 * `rank0/node_port.ts` and `node/remote_node.ts`.
 *
 * The handshake, one frame each way at a time (`JOIN_FRAME_BYTES_MAX`):
 * 1. rank 0: `hello {version, clusterId, nonce}`;
 * 2. node: `join {version, nodeId, clusterId, rank, zone, host, nonce, proof}`, where `clusterId`
 *    and `rank` are null for a node that never joined, and `proof` is the node's HMAC of both
 *    nonces under the cluster secret (`protocol/auth.ts`, its own labels);
 * 3. rank 0: `welcome {rank, clusterId, proof}` with its own proof, or `refused {code, message}`.
 *
 * The node checks rank 0's proof before it trusts anything it says, then says it is ready on
 * `READY_TAG` as a Worker does. The secret never crosses the wire.
 *
 * @module
 */

import { AUTH_NONCE_BYTES, AUTH_PROOF_BYTES } from "../../protocol/auth.ts";
import { DATA_ADDRESS_PATTERN } from "../../protocol/direct.ts";
import { DfsError, type ErrorCode } from "../../protocol/errors.ts";

/**
 * The version of the join handshake this build speaks, and of the node calls behind it: a node of
 * another version is refused at the door rather than misread later. 2: scans, summaries and
 * repairs carry manifests as bytes (`manifest_codec.ts`), and `list` pages with a cursor. 3: a
 * summary comes in pages (`SummaryPage`), a scan's manifests in pieces (`scanPage`). 4: each
 * piece of a scan says whether more follow (`ScanPiece`), rather than the first its total. 5: a
 * read names the file of the chunk (a small file's is found through its commit record).
 */
export const JOIN_PROTOCOL_VERSION = 5;
/** Largest handshake frame, read before the peer is authenticated. */
export const JOIN_FRAME_BYTES_MAX = 4096;
/** A node id or cluster id: 128 random bits in lowercase hex. */
export const ID_PATTERN = /^[0-9a-f]{32}$/;
/** A zone or host name: letters, digits and `.-_:`, 1 to 128 of them. */
export const ZONE_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** Rank 0's first frame. */
export interface JoinHello {
  op: "hello";
  version: number;
  clusterId: string;
  nonce: Uint8Array;
}

/** The node's answer. */
export interface JoinRequest {
  op: "join";
  version: number;
  nodeId: string;
  /** The cluster the node belongs to; null for a node that never joined one. */
  clusterId: string | null;
  /** The rank it was given when it first joined; null before. */
  rank: number | null;
  zone: string;
  /** The host name the node runs on, as it says (shown in `status`). */
  host: string;
  /** `HOST:PORT` of its data port, where clients read chunks directly (`node/data_port.ts`). */
  data?: string;
  /** Its data port speaks TLS. */
  dataTls?: boolean;
  nonce: Uint8Array;
  proof: Uint8Array;
}

/** Rank 0's acceptance. */
export interface JoinWelcome {
  op: "welcome";
  rank: number;
  clusterId: string;
  proof: Uint8Array;
}

/** Rank 0's refusal (also sent by a node that refuses rank 0, before it hangs up). */
export interface JoinRefusal {
  op: "refused";
  code: ErrorCode;
  message: string;
}

/** A fresh node or cluster id. */
export function newId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function invalid(what: string): never {
  throw new DfsError("INVALID_REQUEST", `Malformed join handshake: ${what}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function bytesOf(value: unknown, length: number, what: string): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    invalid(`${what} is not ${length} bytes`);
  }
  return value;
}

function dataAddressOf(value: unknown): string {
  if (typeof value !== "string" || !DATA_ADDRESS_PATTERN.test(value)) {
    invalid("data is not HOST:PORT");
  }
  return value;
}

function idOf(value: unknown, what: string): string {
  if (typeof value !== "string" || !ID_PATTERN.test(value)) invalid(`${what} is not an id`);
  return value;
}

function versionOf(value: Record<string, unknown>): number {
  if (value.version !== JOIN_PROTOCOL_VERSION) {
    throw new DfsError(
      "INVALID_REQUEST",
      `Join handshake version ${value.version} is not the ${JOIN_PROTOCOL_VERSION} this dfs speaks`,
    );
  }
  return JOIN_PROTOCOL_VERSION;
}

/** Checks rank 0's hello. @throws {DfsError} `INVALID_REQUEST` if it is not one. */
export function parseHello(value: unknown): JoinHello {
  if (!isObject(value) || value.op !== "hello") invalid("expected hello");
  return {
    op: "hello",
    version: versionOf(value),
    clusterId: idOf(value.clusterId, "clusterId"),
    nonce: bytesOf(value.nonce, AUTH_NONCE_BYTES, "nonce"),
  };
}

/** Checks a node's join. @throws {DfsError} `INVALID_REQUEST` if it is not one. */
export function parseJoin(value: unknown): JoinRequest {
  if (!isObject(value) || value.op !== "join") invalid("expected join");
  const rank = value.rank;
  if (rank !== null && !(Number.isSafeInteger(rank) && (rank as number) > 0)) {
    invalid("rank is not a positive integer");
  }
  for (const key of ["zone", "host"] as const) {
    if (typeof value[key] !== "string" || !ZONE_PATTERN.test(value[key] as string)) {
      invalid(`${key} is not 1 to 128 letters, digits or .-_:`);
    }
  }
  return {
    op: "join",
    version: versionOf(value),
    nodeId: idOf(value.nodeId, "nodeId"),
    clusterId: value.clusterId === null ? null : idOf(value.clusterId, "clusterId"),
    rank: rank as number | null,
    zone: value.zone as string,
    host: value.host as string,
    ...(value.data === undefined || value.data === null ? {} : { data: dataAddressOf(value.data) }),
    ...(value.dataTls === true ? { dataTls: true } : {}),
    nonce: bytesOf(value.nonce, AUTH_NONCE_BYTES, "nonce"),
    proof: bytesOf(value.proof, AUTH_PROOF_BYTES, "proof"),
  };
}

/**
 * Checks rank 0's answer to a join: a welcome, or a refusal turned into the DfsError it carries.
 *
 * @throws {DfsError} the refusal's code and message; `INVALID_REQUEST` for anything else.
 */
export function parseWelcome(value: unknown): JoinWelcome {
  if (isObject(value) && value.op === "refused") {
    const code = typeof value.code === "string" ? value.code as ErrorCode : "UNAVAILABLE";
    const message = typeof value.message === "string" ? value.message : "no reason given";
    throw new DfsError(code, message);
  }
  if (!isObject(value) || value.op !== "welcome") invalid("expected welcome");
  const rank = value.rank;
  if (!Number.isSafeInteger(rank) || (rank as number) < 1) {
    invalid("rank is not a positive integer");
  }
  return {
    op: "welcome",
    rank: rank as number,
    clusterId: idOf(value.clusterId, "clusterId"),
    proof: bytesOf(value.proof, AUTH_PROOF_BYTES, "proof"),
  };
}

/** A remote node rank 0 knows: its id, the rank it was given, its zone. */
export interface KnownNode {
  nodeId: string;
  rank: number;
  zone: string;
  /**
   * Everything it held was copied to other nodes while it was away (re-replicated): the store
   * needs nothing of it, so a restarted rank 0 does not wait for it. Cleared when it rejoins.
   */
  drained?: boolean;
}

/** What rank 0 decides about a join (its proof already checked). */
export type JoinDecision =
  | { ok: true; rank: number; known: boolean }
  | { ok: false; code: ErrorCode; message: string };

/**
 * Rank 0's decision on an authenticated join: the rank the node gets (the one it had, or the lowest
 * free rank from `firstRank` for a new node), or why it is refused: another cluster, its id already
 * connected, a rank that does not match, or no rank left below `ranksMax`.
 */
export function decideJoin(
  join: JoinRequest,
  cluster: {
    clusterId: string;
    nodes: readonly KnownNode[];
    /** Nodes the operator made rank 0 forget (`--forget-node`): refused, their ranks not reused. */
    forgotten?: readonly KnownNode[];
    connected: ReadonlySet<string>;
    firstRank: number;
    ranksMax: number;
  },
): JoinDecision {
  const who = `Node ${join.nodeId} (${join.host})`;
  if (join.clusterId !== null && join.clusterId !== cluster.clusterId) {
    return {
      ok: false,
      code: "UNAUTHORIZED",
      message: `${who} belongs to cluster ${join.clusterId}, not to this cluster ` +
        `${cluster.clusterId}: nothing was changed on either`,
    };
  }
  if (cluster.forgotten?.some((n) => n.nodeId === join.nodeId)) {
    return {
      ok: false,
      code: "UNAUTHORIZED",
      message: `${who} was forgotten by this cluster (--forget-node): what it held was ` +
        "re-replicated or given up; empty its folder to join as a new node",
    };
  }
  if (cluster.connected.has(join.nodeId)) {
    return {
      ok: false,
      code: "ALREADY_EXISTS",
      message: `${who} is refused: a node with its id is connected already (a copied node folder?)`,
    };
  }
  const known = cluster.nodes.find((n) => n.nodeId === join.nodeId);
  if (known) {
    if (join.rank !== null && join.rank !== known.rank) {
      return {
        ok: false,
        code: "INVALID_REQUEST",
        message:
          `${who} says it is rank ${join.rank}, but this cluster knows it as rank ${known.rank}`,
      };
    }
    return { ok: true, rank: known.rank, known: true };
  }
  // A forgotten node's rank is never given again: chunks placed on it may still name it.
  const taken = new Set([...cluster.nodes, ...cluster.forgotten ?? []].map((n) => n.rank));
  if (join.clusterId !== null) {
    // A member rank 0 has no record of (its cluster file restored from before it joined): it keeps
    // its rank if that is free, as the chunks it holds name it.
    if (join.rank === null || join.rank < cluster.firstRank || taken.has(join.rank)) {
      return {
        ok: false,
        code: "INVALID_REQUEST",
        message: `${who} says it is rank ${join.rank} of this cluster, which is not free here`,
      };
    }
    return { ok: true, rank: join.rank, known: false };
  }
  if (join.rank !== null) {
    return { ok: false, code: "INVALID_REQUEST", message: `${who} has a rank but no cluster` };
  }
  for (let rank = cluster.firstRank; rank < cluster.ranksMax; rank++) {
    if (!taken.has(rank)) return { ok: true, rank, known: false };
  }
  return {
    ok: false,
    code: "UNAVAILABLE",
    message: `${who} is refused: every rank below ${cluster.ranksMax} is taken`,
  };
}
