/**
 * The direct data path: a client reads and writes a large file's chunks on the data nodes
 * themselves instead of through rank 0, as HDFS, MooseFS and SeaweedFS clients do, so that the
 * bytes cross the network once per copy, and rank 0's one thread and link carry only metadata.
 *
 * How a read goes:
 * 1. The client asks rank 0 for the file (`get` with `direct: true`). When the file's chunks are
 *    in blob files on nodes that serve clients (`dfs node --data-port`), rank 0 pins the version
 *    and answers its metadata with a `DirectRoute`: the chunks' ids (as runs), each node's data
 *    address, and a read `Grant`, signed by rank 0, for the blobs it names until it expires.
 * 2. The client reads the chunks from the nodes (`DataRequest` `read`, answered by a `data` frame),
 *    a few at a time, each from one replica and failing over to the others, and checks each
 *    chunk's CRC32. A chunk no node gives is fetched through rank 0 (`fetch`), which reads it
 *    from the version it pinned.
 * 3. `done` tells rank 0 to let the version go (closing the connection does too).
 *
 * How a write goes:
 * 1. The client asks for a plan (`put` with `direct: true` and its size, to a server whose hello
 *    says `plans`). Rank 0 places every chunk, has each node open the upload's blob, and answers
 *    a `WritePlan` with a write grant (or a plain `ok`: the bytes then go through rank 0).
 * 2. The client writes every replica of each chunk (`write`, its bytes in the next frame,
 *    answered `written`), asking rank 0 for another node when one fails (`replace`).
 * 3. `end` names the SHA-256 and each chunk's CRC32; rank 0 has each node confirm its chunks and
 *    close the blob (`seal`), then commits.
 *
 * A node checks the grant's signature with a key derived from the cluster secret, which every node
 * holds (`grantKey`): a client never learns the secret, and a grant reaches nothing but the blobs
 * it names, in its mode. Pure: no I/O.
 *
 * @module
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { DfsError } from "./errors.ts";
import { CHUNK_SIZE_BYTES } from "./limits.ts";
import {
  BLOB_ID_PATTERN,
  blobOf,
  chunkIdOf,
  isChunkId,
  offsetOf,
} from "../ranks/common/chunk_id.ts";

/** Version of the data port's handshake; each side sends it in its hello. */
export const DIRECT_PROTOCOL_VERSION = 1;
/** How long a grant holds after rank 0 signs it, besides the time its bytes take (`grantLifeMs`). */
export const GRANT_TTL_MS = 10 * 60_000;
/**
 * The slowest pace a grant allows for: it holds `GRANT_TTL_MS` plus the time its bytes take at
 * this many bytes a second (1 GiB, 18 minutes more; 1 TiB, 12 days). A read or upload slower than
 * that fails; a grant outliving its transfer reads or writes nothing more (a version released,
 * a blob sealed).
 */
export const GRANT_BYTES_PER_SEC_MIN = 1_000_000;
/** How far a node's clock may be ahead of rank 0's for a grant to still hold until it expires. */
export const GRANT_CLOCK_SKEW_MS = 60_000;
/** Runs one route may have (see `ChunkRun`); a file of more is read through rank 0. */
export const ROUTE_RUNS_MAX = 1024;
/** Blobs one grant may name; a file made of more (a many-part S3 upload) is read through rank 0. */
export const GRANT_BLOBS_MAX = 256;
/** Bytes of a grant's HMAC-SHA256. */
export const GRANT_MAC_BYTES = 32;
/** Largest request frame a data port reads: a read with a grant of `GRANT_BLOBS_MAX` blobs. */
export const DATA_REQUEST_BYTES_MAX = 16 * 1024;
/** Chunk reads one client connection to a node may have in flight. */
export const DIRECT_READS_INFLIGHT_MAX = 8;

/** A data port's address: `HOST:PORT`, an IPv6 address in brackets. */
export const DATA_ADDRESS_PATTERN = /^(?:[A-Za-z0-9._-]{1,253}|\[[0-9A-Fa-f:.]{2,64}\]):\d{1,5}$/;

/** Lets its holder read (or write) the chunks of `blobs` on the data nodes until `expires`. */

export interface Grant {
  /** What it lets its holder do: read the blobs' chunks, or write them (absent: read). */
  mode?: GrantMode;
  blobs: string[];
  /** Milliseconds since the Unix epoch, by rank 0's clock. */
  expires: number;
  mac: Uint8Array;
}

/** What rank 0 adds to a get's answer when the client may read the chunks from the nodes. */
export interface DirectRoute {
  /** The chunks' ids, in file order, as runs (see `runsOf`). */
  runs: ChunkRun[];
  /** `HOST:PORT` of each data node's data port, by rank; a rank missing here has none. */
  nodes: Record<string, string>;
  grant: Grant;
}

/**
 * Consecutive chunks of a file that lie end to end in one blob: the first at `offset` of `blob`,
 * each next one where the one before ends. A file uploaded at once is one run; a file composed
 * of parts (an S3 multipart upload), one run per part.
 */
export interface ChunkRun {
  blob: string;
  offset: number;
  chunks: number;
}

/** What a grant lets its holder do. */
export type GrantMode = "read" | "write";

/**
 * What rank 0 answers a direct put with: where each chunk goes. Chunk `k` is the bytes at
 * `k * CHUNK_SIZE_BYTES` of the file (all whole chunks but the last), with id
 * `<blob>-<offset in hex>`, written to every rank of `ranks[k]`.
 */
export interface WritePlan {
  blob: string;
  ranks: number[][];
  /** `HOST:PORT` of each rank's data port. */
  nodes: Record<string, string>;
  grant: Grant;
}

/** A request on a node's data port. */
export type DataRequest =
  | { op: "hello"; version: number }
  | { op: "read"; id: number; chunk: string; size: number; crc32?: number; grant: Grant }
  /**
   * Write a chunk of an upload rank 0 planned (`WritePlan`): its bytes follow in the next frame,
   * a `data` frame with the same id; answered `written` once in the node's blob (the commit makes
   * it durable).
   */
  | { op: "write"; id: number; chunk: string; crc32: number; grant: Grant };

/** How long a grant for a transfer of `bytes` holds (`GRANT_BYTES_PER_SEC_MIN`). */
export function grantLifeMs(bytes: number): number {
  return GRANT_TTL_MS + Math.ceil(bytes / GRANT_BYTES_PER_SEC_MIN * 1000);
}

/** The key grants are signed with, derived from the cluster secret (never the secret itself). */
export function grantKey(secret: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac("sha256", secret).update("dfs-grant-v1 key").digest());
}

/** Signs a grant to read `blobs` until `expires`. */
export function signGrant(
  key: Uint8Array,
  blobs: readonly string[],
  expires: number,
  mode: GrantMode = "read",
): Grant {
  const grant: Grant = { blobs: [...blobs], expires, mac: macOf(key, blobs, expires, mode) };
  if (mode === "write") grant.mode = mode;
  return grant;
}

/**
 * Checks that `grant` is signed with `key`, has not expired at `nowMs` (allowing
 * `GRANT_CLOCK_SKEW_MS`) and names the blob of `chunk`.
 *
 * @throws {DfsError} `UNAUTHORIZED` naming what is wrong.
 */
export function checkGrant(
  key: Uint8Array,
  grant: Grant,
  chunk: string,
  nowMs: number,
  mode: GrantMode = "read",
): void {
  if (!timingSafeEqual(grant.mac, macOf(key, grant.blobs, grant.expires, grant.mode ?? "read"))) {
    throw new DfsError("UNAUTHORIZED", "Read grant is not signed by this cluster");
  }
  if ((grant.mode ?? "read") !== mode) {
    throw new DfsError("UNAUTHORIZED", `The grant does not let its holder ${mode}`);
  }
  if (nowMs > grant.expires + GRANT_CLOCK_SKEW_MS) {
    throw new DfsError("UNAUTHORIZED", "Read grant has expired; ask rank 0 again");
  }
  if (!isChunkId(chunk) || !grant.blobs.includes(blobOf(chunk))) {
    throw new DfsError("UNAUTHORIZED", `Read grant does not cover chunk ${chunk}`);
  }
}

/**
 * Which replica of a chunk a reader tries first: spread by a hash of the chunk's id, so that
 * reads of files whose chunks were placed in a regular pattern (a direct upload places all its
 * chunks at once, round the nodes in turn) still fall on every node alike.
 */
export function firstReplica(chunk: string, replicas: number): number {
  let hash = 0x811c9dc5; // FNV-1a
  for (let i = 0; i < chunk.length; i++) hash = Math.imul(hash ^ chunk.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % replicas;
}

/**
 * Checks a decoded frame on a data port and returns it typed.
 *
 * @throws {DfsError} `INVALID_REQUEST` naming the first problem.
 */
export function parseDataRequest(value: unknown): DataRequest {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid("a request is a map");
  }
  const m = value as Record<string, unknown>;
  if (m.op === "hello") {
    if (m.version !== DIRECT_PROTOCOL_VERSION) {
      throw new DfsError(
        "VERSION_MISMATCH",
        `Data port speaks version ${DIRECT_PROTOCOL_VERSION}, not ${describe(m.version)}`,
      );
    }
    return { op: "hello", version: DIRECT_PROTOCOL_VERSION };
  }
  if (m.op !== "read" && m.op !== "write") throw invalid(`unknown operation ${describe(m.op)}`);
  const id = u32(m.id, "id");
  if (typeof m.chunk !== "string" || !isChunkId(m.chunk)) {
    throw invalid(`chunk ${describe(m.chunk)} is not a chunk id`);
  }
  if (m.op === "write") {
    return {
      op: "write",
      id,
      chunk: m.chunk,
      crc32: u32(m.crc32, "crc32"),
      grant: parseGrant(m.grant),
    };
  }
  // No chunk is larger than CHUNK_SIZE_BYTES; a larger size would have the node read (and hold)
  // that many bytes of the blob at once, past the chunk's end.
  const size = m.size;
  if (typeof size !== "number" || !Number.isInteger(size) || size < 0 || size > CHUNK_SIZE_BYTES) {
    throw invalid(`size must be an integer from 0 to ${CHUNK_SIZE_BYTES}`);
  }
  const request: DataRequest = { op: "read", id, chunk: m.chunk, size, grant: parseGrant(m.grant) };
  if (m.crc32 !== undefined && m.crc32 !== null) request.crc32 = u32(m.crc32, "crc32");
  return request;
}

/**
 * Checks a grant's shape (not its signature: see `checkGrant`).
 *
 * @throws {DfsError} `INVALID_REQUEST` naming the first problem.
 */
export function parseGrant(value: unknown): Grant {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid("grant is not a map");
  }
  const g = value as Record<string, unknown>;
  const blobs = g.blobs;
  if (!Array.isArray(blobs) || blobs.length === 0 || blobs.length > GRANT_BLOBS_MAX) {
    throw invalid(`grant names 1 to ${GRANT_BLOBS_MAX} blobs`);
  }
  for (const blob of blobs) {
    if (typeof blob !== "string" || !BLOB_ID_PATTERN.test(blob)) {
      throw invalid(`grant blob ${describe(blob)} is not a blob id`);
    }
  }
  const expires = g.expires;
  if (typeof expires !== "number" || !Number.isSafeInteger(expires) || expires < 0) {
    throw invalid("grant expiry must be a whole number of milliseconds");
  }
  if (!(g.mac instanceof Uint8Array) || g.mac.length !== GRANT_MAC_BYTES) {
    throw invalid(`grant mac must be ${GRANT_MAC_BYTES} bytes`);
  }
  const grant: Grant = { blobs: blobs as string[], expires, mac: g.mac };
  if (g.mode !== undefined && g.mode !== null) {
    if (g.mode !== "read" && g.mode !== "write") throw invalid("grant mode is read or write");
    grant.mode = g.mode;
  }
  return grant;
}

/**
 * Checks a route as a client receives it, against the file's chunk count.
 *
 * @throws {DfsError} `INVALID_REQUEST` naming the first problem.
 */
export function parseRoute(value: unknown, chunks: number): DirectRoute {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid("route is not a map");
  }
  const r = value as Record<string, unknown>;
  if (!Array.isArray(r.runs) || r.runs.length > ROUTE_RUNS_MAX) {
    throw invalid(`route runs are a list of at most ${ROUTE_RUNS_MAX}`);
  }
  let total = 0;
  for (const run of r.runs as unknown[]) {
    const { blob, offset, chunks: count } = (run ?? {}) as Record<string, unknown>;
    if (typeof blob !== "string" || !BLOB_ID_PATTERN.test(blob)) {
      throw invalid("run blob is not a blob id");
    }
    if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0) {
      throw invalid("run offset is not a whole number");
    }
    if (typeof count !== "number" || !Number.isSafeInteger(count) || count < 1) {
      throw invalid("run chunks is not a positive count");
    }
    total += count;
  }
  if (total !== chunks) throw invalid(`route runs name ${total} chunks, not ${chunks}`);
  const nodes = parseNodes(r.nodes);
  return {
    runs: r.runs as ChunkRun[],
    nodes,
    grant: parseGrant(r.grant),
  };
}

/**
 * The runs of chunk ids `ids` (in file order), whose sizes are `sizes`; undefined when an id is
 * not a blob chunk's.
 */
export function runsOf(ids: readonly string[], sizes: readonly number[]): ChunkRun[] | undefined {
  const runs: ChunkRun[] = [];
  let last: ChunkRun | undefined;
  let next = -1;
  for (let i = 0; i < ids.length; i++) {
    if (!isChunkId(ids[i])) return undefined;
    const blob = blobOf(ids[i]);
    const offset = offsetOf(ids[i]);
    if (last !== undefined && last.blob === blob && offset === next) last.chunks++;
    else runs.push(last = { blob, offset, chunks: 1 });
    next = offset + sizes[i];
  }
  return runs;
}

/**
 * Checks a write plan as a client receives it, against the chunks its file has.
 *
 * @throws {DfsError} `INVALID_REQUEST` naming the first problem.
 */
export function parsePlan(value: unknown, chunks: number): WritePlan {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid("plan is not a map");
  }
  const p = value as Record<string, unknown>;
  if (typeof p.blob !== "string" || !BLOB_ID_PATTERN.test(p.blob)) {
    throw invalid("plan blob is not a blob id");
  }
  if (!Array.isArray(p.ranks) || p.ranks.length !== chunks) {
    throw invalid(
      `plan places ${describe((p.ranks as unknown[] | undefined)?.length)} chunks, not ${chunks}`,
    );
  }
  const nodes = parseNodes(p.nodes);
  for (const ranks of p.ranks as unknown[]) {
    if (!Array.isArray(ranks) || ranks.length === 0 || ranks.some((r) => nodes[r] === undefined)) {
      throw invalid("a chunk's ranks in the plan are not ranks with a data port");
    }
  }
  return { blob: p.blob, ranks: p.ranks as number[][], nodes, grant: parseGrant(p.grant) };
}

/** The chunk ids `runs` stand for, given the chunks' sizes in file order (`runsOf` undone). */
export function idsOf(runs: readonly ChunkRun[], sizes: readonly number[]): string[] {
  const ids: string[] = [];
  for (const run of runs) {
    let offset = run.offset;
    for (let k = 0; k < run.chunks; k++) {
      ids.push(chunkIdOf(run.blob, offset));
      offset += sizes[ids.length - 1];
    }
  }
  if (ids.length !== sizes.length) {
    throw invalid(`route runs name ${ids.length} chunks, not ${sizes.length}`);
  }
  return ids;
}

/** Data port addresses by rank, as a route or plan gives them. */
function parseNodes(value: unknown): Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid("nodes is not a map");
  }
  for (const [rank, address] of Object.entries(value)) {
    if (!/^[1-9]\d{0,8}$/.test(rank)) throw invalid(`node rank ${describe(rank)} is not a rank`);
    if (typeof address !== "string" || !DATA_ADDRESS_PATTERN.test(address)) {
      throw invalid(`node address ${describe(address)} is not HOST:PORT`);
    }
  }
  return value as Record<string, string>;
}

function macOf(
  key: Uint8Array,
  blobs: readonly string[],
  expires: number,
  mode: GrantMode,
): Uint8Array {
  const hmac = createHmac("sha256", key);
  hmac.update(`dfs-grant-v1 ${mode}\n${expires}\n${blobs.join(",")}`);
  return new Uint8Array(hmac.digest());
}

function u32(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 0xffff_ffff) {
    throw invalid(`${what} must be an integer from 0 to 4294967295`);
  }
  return value;
}

function describe(value: unknown): string {
  const text = typeof value === "string" ? JSON.stringify(value) : String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function invalid(why: string): DfsError {
  return new DfsError("INVALID_REQUEST", `Malformed data request: ${why}`);
}
