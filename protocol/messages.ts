/**
 * The client protocol's messages and their validation. Pure: no I/O.
 *
 * A connection starts with `hello` from the client; the server answers `hello` or an error and
 * closes. A server with a shared secret puts a `challenge` nonce in its hello; the client must then
 * send `auth {nonce, proof}` (see `auth.ts`) and gets `auth {proof}` back, or `UNAUTHORIZED` and
 * the connection closed. Every later request carries an `id` (a u32 the client picks, unique among its requests in
 * flight); every reply frame for that request carries the same id.
 *
 * | request | frames back |
 * | --- | --- |
 * | `put {name, size?, replicas?, checksums?}`, then `data {bytes, crc32?}`..., then `end {sha256?}` | `ok {result: FileMeta}` |
 * | `get {name}` | `ok {result: FileMeta}`, `data {bytes}`..., `end` |
 * | `meta {name}` | `ok {result: FileMeta}` |
 * | `list {prefix?, after?, limit?}` | `entries {entries}`..., `end`: names after `after`, at most `limit` |
 * | `get {name, start, end}` | as `get`, only bytes `start` to `end` (exclusive) |
 * | `rm {name}` or `rm {prefix}` | `ok {result: {removed}}` |
 * | `mv {from, to, force?}` | `ok {result: FileMeta}` of the new name |
 * | `du {prefix?}` / `df` | `ok {result: Usage}` / `ok {result: RankCapacity[]}` |
 * | `fsck` / `status` | `ok {result: FsckReport}` / `ok {result: StatusReport}` |
 * | `doctor {target}` | `ok {result: DoctorReport}`: what losing a data rank or zone would do |
 *
 * Any request can end in `error {code, message}` instead, after which no more frames for its id
 * follow. A client ends a put early with `abort`.
 *
 * Checksums: a data frame's `crc32`, when present, is checked on arrival. A put with `checksums`
 * promises a `crc32` in every data frame and the file's SHA-256 in `end`: the server checks every
 * CRC32 and records that SHA-256 rather than hashing the bytes a second time. Without it, the
 * server computes the SHA-256 itself and checks the one in `end`, if any. `FileMeta` gives each
 * chunk's CRC32, so a reader checks a whole file chunk by chunk at CRC32 speed.
 *
 * @module
 */

import type { DirectRoute, WritePlan } from "./direct.ts";
import { DfsError, type WireError } from "./errors.ts";
import {
  CHUNK_SIZE_BYTES,
  DATA_BYTES_MAX,
  DOCTOR_TARGET_BYTES_MAX,
  FILE_SIZE_BYTES_MAX,
  LIST_LIMIT_ENTRIES_MAX,
  NAME_BYTES_MAX,
} from "./limits.ts";
import { utf8ByteLength, validateName, validatePrefix } from "./names.ts";

/** What the server knows of a stored file. */
export interface FileMeta {
  name: string;
  /** Bytes. */
  size: number;
  /** Lowercase hex SHA-256 of the whole content. */
  sha256: string;
  /** Milliseconds since the Unix epoch, set when the version was committed. */
  modified: number;
  /** Grows with every committed upload across the store; the highest version of a name wins. */
  version: number;
  /** Copies of every chunk (the fewest, should a chunk have fewer). */
  replicas: number;
  /**
   * In file order: each chunk's size, the ranks holding a replica of it, their zones (in the
   * order of `ranks`), and its CRC32.
   */
  chunks: { size: number; ranks: number[]; zones?: string[]; crc32?: number }[];
  /** Attributes set when this version was committed (content type, S3 ETag and metadata...). */
  attrs?: Record<string, string>;
}

/** One `list` entry. */
export interface ListEntry {
  name: string;
  size: number;
  modified: number;
  replicas: number;
}

/** What `dfs fsck` found: files by health, with names. */
export interface FsckReport {
  files: number;
  chunks: number;
  bytesChecked: number;
  healthy: number;
  /** Files with a replica rewritten from a good one, or re-replicated off a lost node. */
  repaired: string[];
  underReplicated: string[];
  lost: string[];
  /** Each live data node's log, re-read and checked (damage is rewritten from its memory). */
  logs?: {
    rank: number;
    records: number;
    damagedRegions: number;
    damagedBytes: number;
    /** Bytes written to the log that the file lost (the node is then taken for failed). */
    missingBytes: number;
    rewritten: boolean;
  }[];
}

/** What `dfs status` shows. */
export interface StatusReport {
  files: number;
  ranks: {
    rank: number;
    /**
     * `up`; `restarting` (a Worker being restarted); `down` (restarts failing, or a remote node
     * disconnected); `joining` (a remote node known to the store, not connected since rank 0
     * started, or connected and being reconciled).
     */
    state: "up" | "down" | "restarting" | "joining";
    /** `worker`: a Web Worker of the server's process; `remote`: a `dfs node` process over TCP. */
    kind?: "worker" | "remote";
    /** The node's failure domain (its host name unless `--zone` named one). */
    zone?: string;
    /** `HOST:PORT` a remote node connects from, once it has connected. */
    address?: string;
    /** `HOST:PORT` of its data port, where clients read and write directly (when it has one). */
    dataAddress?: string;
    /** Milliseconds since the node last answered a heartbeat (absent before its first). */
    heartbeatAgeMs?: number;
    bytesHeld: number;
    chunks: number;
    /** Of those, replicas known missing there and being restored from good ones. */
    missingChunks?: number;
    /** Why the node is down or restarting. */
    reason?: string;
  }[];
  /** Replicas rewritten from a good copy since start. */
  repairs: number;
  scrub: { passes: number; bytes: number };
  /**
   * Chunks with fewer good replicas than placed, now: a replica on a data node that is down or
   * gone, or known missing (found at start-up, being restored).
   */
  underReplicatedChunks: number;
  /** Replicas found corrupted or missing since start (each then repaired, or reported). */
  corruptReplicasFound: number;
  /**
   * Files found with no good replica of some chunk: by start-up, by the background restore of
   * missing replicas, and by the scrubber (recent passes).
   */
  lostFiles: number;
  /** What the data nodes' logs were found to hold since start (see `rank0/health.ts`). */
  metadata?: {
    damagedRegions: number;
    damagedBytes: number;
    tailCuts: number;
    logsMadeAnew: number;
    logsRewritten: number;
  };
}

/** Files that have (or would have) fewer live replicas of some chunk, and a live one of each. */
export interface UnderReplication {
  files: number;
  /** Their chunks with fewer live replicas. */
  chunks: number;
  /** Bytes of those chunks (each counted once). */
  bytes: number;
}

/** Files with a chunk that has (or would have) no live replica. */
export interface FileLoss {
  files: number;
  /** Their sizes, added up. */
  bytes: number;
  /** The first of their names in byte order (at most `DOCTOR_NAMES_MAX`); `files` counts all. */
  names: string[];
}

/**
 * What `dfs doctor --lose TARGET` shows: what would become under-replicated and what would be lost
 * if a data node, or every data node of a zone, were gone now, and what is degraded already. A
 * replica is live when its rank is up and it is not known missing there.
 */
export interface DoctorReport {
  /** The target as asked. */
  target: string;
  /** Whether it named a data rank, or a zone (every data node in it). */
  kind: "rank" | "zone";
  /** The data ranks it covers, and their zones. */
  ranks: number[];
  zones: string[];
  /** Data ranks down now: their replicas are gone already. */
  ranksDown: number[];
  /** Every file present, and their chunks. */
  files: number;
  chunks: number;
  /**
   * What losing `ranks` would add: files left with fewer live replicas of some chunk than now
   * (and one of each), and files left with a chunk with none (lost now: not counted again).
   */
  wouldBe: { underReplicated: UnderReplication; lost: FileLoss };
  /** Before losing anything: files with fewer live replicas than placed, and files lost. */
  now: { underReplicated: UnderReplication; lost: FileLoss };
}

export interface HelloRequest {
  op: "hello";
  version: number;
}

export type Request =
  | {
    op: "put";
    id: number;
    name: string;
    size?: number;
    replicas?: number;
    checksums?: boolean;
    /** Asks for a plan to write the chunks to the data nodes directly (`protocol/direct.ts`). */
    direct?: boolean;
  }
  | { op: "data"; id: number; bytes: Uint8Array; crc32?: number }
  | { op: "end"; id: number; sha256?: string; crc32s?: number[] }
  /** During a direct upload: chunk `index` could not be written to `rank`; where instead? */
  | { op: "replace"; id: number; index: number; rank: number }
  /** During a direct upload: the client is still writing (keeps the upload from stalling). */
  | { op: "progress"; id: number }
  | { op: "abort"; id: number }
  | { op: "get"; id: number; name: string; start?: number; end?: number; direct?: boolean }
  /** During a direct read (see `protocol/direct.ts`): chunk `index` through rank 0. */
  | { op: "fetch"; id: number; index: number }
  /** A direct read is over: rank 0 lets its version go. */
  | { op: "done"; id: number }
  | { op: "meta"; id: number; name: string }
  | { op: "list"; id: number; prefix: string; after?: string; limit?: number }
  | { op: "rm"; id: number; name: string }
  | { op: "rm"; id: number; prefix: string }
  | { op: "mv"; id: number; from: string; to: string; force: boolean }
  | { op: "du"; id: number; prefix: string }
  | { op: "df"; id: number }
  | { op: "fsck"; id: number }
  | { op: "status"; id: number }
  | { op: "doctor"; id: number; target: string };

/** `du`: files under a prefix, their bytes, and the bytes stored for them on all replicas. */
export interface Usage {
  files: number;
  bytes: number;
  storedBytes: number;
}

/** `df`: one data node's bytes held, and its file system's size and free space. */
export interface RankCapacity {
  rank: number;
  bytesHeld: number;
  totalBytes: number;
  availableBytes: number;
  /** The file system's device number: nodes sharing one disk count once in totals. */
  device?: number;
}

export type Reply =
  | {
    op: "hello";
    version: number;
    server: string;
    chunkSizeBytes: number;
    frameSizeBytesMax?: number;
    challenge?: Uint8Array;
    /** The server answers a put that asks for a direct plan (`direct: true`) at once. */
    plans?: boolean;
  }
  | { op: "auth"; proof: Uint8Array }
  | { op: "ok"; id: number; result?: unknown; direct?: DirectRoute; plan?: WritePlan }
  | { op: "data"; id: number; bytes: Uint8Array }
  | { op: "entries"; id: number; entries: ListEntry[] }
  | { op: "end"; id: number }
  | ({ op: "error"; id: number } & WireError);

const SHA256_HEX_PATTERN = /^[0-9a-f]{64}$/;

/** Returns an `ok` reply; throws the error a reply carries, or a protocol error. */
export function expectOk(reply: Reply): Extract<Reply, { op: "ok" }> {
  if (reply.op === "ok") return reply;
  if (reply.op === "error") throw DfsError.fromWire(reply);
  throw unexpected(reply);
}

/** The result an `ok` reply carries, as the request's caller expects it. */
export function resultOf<T>(reply: Reply): T {
  return expectOk(reply).result as T;
}

/** A protocol error for a reply of a kind the request does not get. */
export function unexpected(reply: Reply): DfsError {
  return new DfsError(
    "INTERNAL",
    `Unexpected reply "${String(reply.op).slice(0, 40)}" from the server`,
  );
}

/**
 * Checks that a decoded frame is a well-formed request and returns it typed.
 *
 * @throws {DfsError} `INVALID_REQUEST` naming the first problem; `TOO_LARGE` for an oversized
 *   data payload or declared size.
 */
export function parseRequest(value: unknown): Request {
  const m = asRecord(value);
  const op = m.op;
  const id = m.id;
  if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > 0xffff_ffff) {
    throw invalid("id must be an integer from 0 to 4294967295");
  }
  switch (op) {
    case "put": {
      const request: Request = { op, id, name: validateName(m.name) };
      if (m.size !== undefined && m.size !== null) request.size = checkSize(m.size);
      if (m.replicas !== undefined && m.replicas !== null) {
        request.replicas = checkCount(m.replicas, "replicas");
      }
      if (m.checksums !== undefined && m.checksums !== null) {
        if (typeof m.checksums !== "boolean") throw invalid("checksums must be true or false");
        request.checksums = m.checksums;
      }
      if (m.direct === true) request.direct = true;
      return request;
    }
    case "data": {
      if (!(m.bytes instanceof Uint8Array)) throw invalid("data bytes must be a byte string");
      if (m.bytes.length > DATA_BYTES_MAX) {
        throw new DfsError(
          "TOO_LARGE",
          `Data frame of ${m.bytes.length} bytes is over the limit of ${DATA_BYTES_MAX}`,
        );
      }
      if (m.crc32 === undefined || m.crc32 === null) return { op, id, bytes: m.bytes };
      const crc32 = m.crc32;
      if (
        typeof crc32 !== "number" || !Number.isInteger(crc32) || crc32 < 0 || crc32 > 0xffff_ffff
      ) {
        throw invalid("crc32 must be an integer from 0 to 4294967295");
      }
      return { op, id, bytes: m.bytes, crc32 };
    }
    case "end": {
      const request: Request = { op, id };
      if (m.sha256 !== undefined && m.sha256 !== null) {
        if (typeof m.sha256 !== "string" || !SHA256_HEX_PATTERN.test(m.sha256)) {
          throw invalid("sha256 must be 64 lowercase hex digits");
        }
        request.sha256 = m.sha256;
      }
      if (m.crc32s !== undefined && m.crc32s !== null) request.crc32s = checkCrc32s(m.crc32s);
      return request;
    }
    case "replace":
      return {
        op,
        id,
        index: checkCount(m.index, "index", { min: 0 }),
        rank: checkCount(m.rank, "rank"),
      };
    case "progress":
      return { op, id };
    case "abort":
      return { op, id };
    case "get": {
      const request: Request = { op, id, name: validateName(m.name) };
      if (m.start !== undefined && m.start !== null) request.start = checkSize(m.start, "start");
      if (m.end !== undefined && m.end !== null) request.end = checkSize(m.end, "end");
      if (m.direct === true) request.direct = true;
      return request;
    }
    case "fetch":
      return { op, id, index: checkCount(m.index, "index", { min: 0 }) };
    case "done":
      return { op, id };
    case "meta":
      return { op, id, name: validateName(m.name) };
    case "list": {
      const request: Request = { op, id, prefix: validatePrefix(m.prefix) };
      if (m.after !== undefined && m.after !== null) request.after = checkAfter(m.after);
      if (m.limit !== undefined && m.limit !== null) request.limit = checkListLimit(m.limit);
      return request;
    }
    case "du":
      return { op, id, prefix: validatePrefix(m.prefix) };
    case "rm":
      // Exactly one of the two: a frame with neither must never mean "everything".
      if ((m.name === undefined) === (m.prefix === undefined)) {
        throw invalid("rm takes a name or a prefix");
      }
      if (m.name !== undefined) return { op, id, name: validateName(m.name) };
      if (typeof m.prefix !== "string") throw invalid("prefix must be a string");
      return { op, id, prefix: validatePrefix(m.prefix) };
    case "mv":
      return {
        op,
        id,
        from: validateName(m.from),
        to: validateName(m.to),
        force: m.force === true,
      };
    case "df":
    case "fsck":
    case "status":
      return { op, id };
    case "doctor":
      return { op, id, target: checkTarget(m.target) };
    default:
      throw invalid(`unknown operation ${describe(op)}`);
  }
}

/**
 * Checks the first frame of a connection.
 *
 * @throws {DfsError} `INVALID_REQUEST` if it is not a hello; `VERSION_MISMATCH` for another version.
 */
export function parseHello(value: unknown, supportedVersion: number): HelloRequest {
  const m = asRecord(value);
  if (m.op !== "hello") throw invalid("the first frame must be a hello");
  if (m.version !== supportedVersion) {
    throw new DfsError(
      "VERSION_MISMATCH",
      `Protocol version ${
        describe(m.version)
      } is not supported (server speaks ${supportedVersion})`,
    );
  }
  return { op: "hello", version: supportedVersion };
}

function checkSize(size: unknown, what = "size"): number {
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    throw invalid(`${what} must be a non-negative integer`);
  }
  if (size > FILE_SIZE_BYTES_MAX) {
    throw new DfsError(
      "TOO_LARGE",
      `File of ${size} bytes is over the limit of ${FILE_SIZE_BYTES_MAX}`,
    );
  }
  return size;
}

function checkCount(value: unknown, what: string, options = { min: 1 }): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < options.min) {
    throw invalid(`${what} must be ${options.min === 0 ? "a whole number" : "a positive integer"}`);
  }
  return value;
}

/** A direct upload's CRC32 of each chunk, in order: at most a file's largest number of chunks. */
function checkCrc32s(value: unknown): number[] {
  if (!Array.isArray(value) || value.length > FILE_SIZE_BYTES_MAX / CHUNK_SIZE_BYTES) {
    throw invalid("crc32s must be a list of a CRC32 per chunk");
  }
  for (const crc of value) {
    if (typeof crc !== "number" || !Number.isInteger(crc) || crc < 0 || crc > 0xffff_ffff) {
      throw invalid("each of crc32s must be an integer from 0 to 4294967295");
    }
  }
  return value as number[];
}

/** A `list` cursor: any string a name could be (the last name of the previous page, say). */
function checkAfter(after: unknown): string {
  if (typeof after !== "string") throw invalid("after must be a string");
  if (!after.isWellFormed() || after.includes("\uFFFD")) throw invalid("after is not valid UTF-8");
  const bytes = utf8ByteLength(after);
  if (bytes > NAME_BYTES_MAX) {
    throw invalid(`after is ${bytes} bytes, over the limit of ${NAME_BYTES_MAX}`);
  }
  if (after.includes("\0")) throw invalid("after contains a NUL character");
  return after;
}

/** A `doctor` target: a data rank or a zone name, resolved by the store. */
function checkTarget(target: unknown): string {
  if (typeof target !== "string") throw invalid("target must be a string (a rank or a zone)");
  if (target === "") throw invalid("target must not be empty");
  if (!target.isWellFormed()) throw invalid("target is not valid UTF-8");
  const bytes = utf8ByteLength(target);
  if (bytes > DOCTOR_TARGET_BYTES_MAX) {
    throw invalid(`target is ${bytes} bytes, over the limit of ${DOCTOR_TARGET_BYTES_MAX}`);
  }
  return target;
}

function checkListLimit(limit: unknown): number {
  if (
    typeof limit !== "number" || !Number.isSafeInteger(limit) || limit < 1 ||
    limit > LIST_LIMIT_ENTRIES_MAX
  ) {
    throw invalid(
      `limit must be an integer from 1 to ${LIST_LIMIT_ENTRIES_MAX}, got ${describe(limit)}`,
    );
  }
  return limit;
}

/** A short, safe rendering of any decoded value for an error message (never throws). */
function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.slice(0, 40));
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (value === null || value === undefined) return String(value);
  return `of type ${
    value instanceof Uint8Array ? "bytes" : Array.isArray(value) ? "array" : typeof value
  }`;
}

function asRecord(value: unknown): Record<string, unknown> {
  const plain = typeof value === "object" && value !== null &&
    Object.getPrototypeOf(value) === Object.prototype;
  if (!plain) throw invalid("a message must be a CBOR map");
  return value as Record<string, unknown>;
}

function invalid(why: string): DfsError {
  return new DfsError("INVALID_REQUEST", `Invalid request: ${why}`);
}
