/**
 * The dfs client library: connect, put, get, meta, list, close. The CLI (`main.ts`) is built on it.
 *
 * ```ts
 * await using client = await DfsClient.connect("127.0.0.1:7070");
 * await client.put("notes/a.txt", new TextEncoder().encode("hello"));
 * const text = new TextDecoder().decode(await client.getBytes("notes/a.txt"));
 * ```
 *
 * One client holds one connection and runs one operation at a time on it (a `get` holds it until
 * its stream is read to the end or cancelled); open several clients for parallel transfers. A
 * cancelled get closes the connection, and the next operation reconnects.
 *
 * `DfsClient` is a `FileStore` (`ranks/common/file_store.ts`), the same interface rank 0's store
 * implements in-process: code written against it runs on either side of the socket.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import { readChecker } from "./protocol/checksums.ts";
import { sendPieces } from "./protocol/pieces.ts";
import { isConnectionError } from "./protocol/conn.ts";
import { parseAddress } from "./protocol/connect.ts";
import { DfsError } from "./protocol/errors.ts";
import { type Link, openLink, readReply } from "./protocol/client_link.ts";
import { type Rank0Link, readRoute, writePlan } from "./protocol/direct_client.ts";
import type { WritePlan } from "./protocol/direct.ts";
import { DataLinks, DIRECT_CHUNKS_INFLIGHT_MAX } from "./protocol/direct_reader.ts";
import { BufferPool } from "./protocol/buffer_pool.ts";
import { FRAME_SIZE_BYTES_MAX } from "./protocol/limits.ts";
import {
  type DoctorReport,
  expectOk,
  type FileMeta,
  type FsckReport,
  type ListEntry,
  type RankCapacity,
  resultOf,
  type StatusReport,
  unexpected,
  type Usage,
} from "./protocol/messages.ts";
import type { ByteRange, ByteSource, FileStore, ListOptions } from "./ranks/common/file_store.ts";

export { DfsError } from "./protocol/errors.ts";
export { parseAddress } from "./protocol/connect.ts";
export type { ErrorCode } from "./protocol/errors.ts";
export type {
  DoctorReport,
  FileMeta,
  FsckReport,
  ListEntry,
  RankCapacity,
  StatusReport,
  Usage,
} from "./protocol/messages.ts";
export type { ByteRange, ByteSource, FileStore, ListOptions } from "./ranks/common/file_store.ts";

/** The address used when none is given: `DFS_SERVER`, else this. */
export const DEFAULT_SERVER = "127.0.0.1:7070";
/** How long connecting and the handshake may take. */
export const CONNECT_TIMEOUT_MS = 10_000;

export interface ClientOptions {
  /**
   * Check every byte end to end. A put sends each frame's CRC32, which the server checks, and the
   * file's SHA-256, which it records; a get checks each chunk against the CRC32 in its metadata (or,
   * for a file stored without them, the whole file against its SHA-256). Default true.
   */
  verify?: boolean;
  connectTimeoutMs?: number;
  /** The shared secret of a server started with `--token-file`. */
  token?: Uint8Array;
  /** PEM certificates to trust: the connection uses TLS and checks the server against them. */
  tlsCaCerts?: string[];
  /**
   * Read and write large files on the data nodes themselves when the server offers it
   * (`protocol/direct.ts`), rather than through the server. Default true.
   */
  direct?: boolean;
}

/** Bytes to upload: a whole buffer, a stream, or any (async) iterable of byte arrays. */
export type PutSource = ByteSource;

/** A sink's write that failed under `getInto`, carried out past the connection's error handling. */
class SinkFailure {
  constructor(readonly error: unknown) {}
}

/** Where `getInto` writes: a `Deno.FsFile` or `Deno.stdout`. */
export interface ByteSink {
  /** Writes some of `bytes`; resolves with how many. */
  write(bytes: Uint8Array): Promise<number>;
}

/** A connection to a dfs server, speaking the CBOR protocol; a `FileStore` over the socket. */
export class DfsClient implements FileStore {
  #address: { hostname: string; port: number };
  #options: Required<Pick<ClientOptions, "verify" | "connectTimeoutMs">> & ClientOptions;
  #link: Link | null = null;
  /** Connections to the data nodes' data ports, for direct reads. */
  #dataLinks: DataLinks | undefined;
  #busy: Promise<void> = Promise.resolve();
  /** Chunk buffers `getInto` reads into again (a direct read's window and one being written). */
  #pool = new BufferPool(FRAME_SIZE_BYTES_MAX, { buffersMax: DIRECT_CHUNKS_INFLIGHT_MAX + 2 });
  #nextId = 1;
  #closed = false;

  private constructor(address: string, options: ClientOptions) {
    this.#address = parseAddress(address);
    this.#options = { verify: true, connectTimeoutMs: CONNECT_TIMEOUT_MS, ...options };
  }

  /**
   * Connects and completes the handshake.
   *
   * @throws {DfsError} `UNAVAILABLE` if the server cannot be reached; `VERSION_MISMATCH`.
   */
  static async connect(
    address: string = DEFAULT_SERVER,
    options: ClientOptions = {},
  ): Promise<DfsClient> {
    const client = new DfsClient(address, options);
    await client.#exclusive(async () => void await client.#connected());
    return client;
  }

  /**
   * Uploads `source` as `name`, replacing any previous version atomically. Streams: memory use does
   * not grow with the file. Pass `size` to have the server enforce it (and, with remote nodes that
   * have data ports, to let the client write to them directly), `replicas` to keep another number
   * of copies than the server's default (1 up to the number of data nodes). A piece the source
   * gives is the client's from then on, as a stream's chunk is its reader's: several may be in
   * flight at once, so a source must not reuse a piece's buffer.
   */
  put(
    name: string,
    source: PutSource,
    options: { size?: number; replicas?: number } = {},
  ): Promise<FileMeta> {
    return this.#exclusive(async () => {
      const link = await this.#connected();
      const { reader, writer, dataBytesMax } = link;
      const id = this.#id();
      const size = source instanceof Uint8Array ? source.length : options.size;
      const checksums = this.#options.verify;
      const put = { op: "put", id, name, size, replicas: options.replicas, checksums };
      if (source instanceof Uint8Array && source.length <= dataBytesMax) {
        // A file of one data frame or none: its frames go together, in one write when small
        // (see `COALESCE_BYTES_MAX`). Were the put refused, the server drops the rest quietly.
        const sha256 = this.#options.verify
          ? createHash("sha256").update(source).digest("hex")
          : undefined;
        const sent = [writer.send(put)];
        if (source.length > 0) {
          sent.push(writer.sendData(id, source, checksums ? crc32(source) : undefined));
        }
        sent.push(writer.send({ op: "end", id, sha256 }));
        const answer = readReply(reader);
        answer.catch(() => {});
        await Promise.all(sent);
        return resultOf<FileMeta>(await answer);
      }
      if (this.#options.direct !== false && link.plans && checksums && size !== undefined) {
        // A plan to write the chunks to the data nodes, or none (then the bytes come here).
        await writer.send({ ...put, direct: true });
        const reply = await readReply(reader);
        const { plan } = reply as { plan?: WritePlan };
        if (plan) return await this.#writePlan(link, put, { plan, source, size });
        if (reply.op === "ok") return await this.#sendBytes(link, id, source);
        if (reply.op !== "error" || reply.code !== "UNAVAILABLE") throw expectOk(reply);
        put.id = this.#id(); // the nodes could not take the upload: through the server
      }
      await writer.send(put);
      return await this.#sendBytes(link, put.id, source);
    });
  }

  /** Sends an upload's bytes in data frames, then its end; resolves with the server's answer. */
  async #sendBytes(link: Link, id: number, source: PutSource): Promise<FileMeta> {
    const reply = () => readReply(link.reader);
    const verify = this.#options.verify;
    return resultOf<FileMeta>(await sendPieces(link, reply, { id, source, verify }));
  }

  /**
   * Writes a put's chunks to the data nodes along `plan`, then ends it. Bytes in memory that the
   * nodes could not take (their data ports unreachable from here, say) go again, through rank 0.
   */
  async #writePlan(
    link: Link,
    put: { id: number } & Record<string, unknown>,
    upload: { plan: WritePlan; source: PutSource; size: number },
  ): Promise<FileMeta> {
    try {
      return await writePlan(this.#rank0(link), put.id, upload, this.#links());
    } catch (error) {
      this.#drop(link); // the server aborts the upload as the connection closes
      const { source } = upload;
      if (!(source instanceof Uint8Array) || (error as DfsError).code !== "UNAVAILABLE") {
        throw error;
      }
      const again = { ...put, id: this.#id() };
      await (await this.#connected()).writer.send(again);
      return await this.#sendBytes(this.#link!, again.id, source);
    }
  }

  /** Metadata of the current version of `name`. @throws {DfsError} `NOT_FOUND`. */
  meta(name: string): Promise<FileMeta> {
    return this.#request<FileMeta>({ op: "meta", name });
  }

  /** Removes `name` everywhere. @throws {DfsError} `NOT_FOUND`. */
  async remove(name: string): Promise<void> {
    await this.#request({ op: "rm", name });
  }

  /** Removes every file whose name starts with `prefix`; returns how many. */
  async removePrefix(prefix: string): Promise<number> {
    return (await this.#request<{ removed: number }>({ op: "rm", prefix })).removed;
  }

  /**
   * Renames `from` to `to` atomically: readers see one name or the other, never both or neither.
   *
   * @throws {DfsError} `NOT_FOUND`; `ALREADY_EXISTS` if `to` exists and `force` is not set.
   */
  rename(from: string, to: string, options: { force?: boolean } = {}): Promise<FileMeta> {
    return this.#request<FileMeta>({ op: "mv", from, to, force: options.force === true });
  }

  /** Files under `prefix`, their bytes, and the bytes stored for them counting every replica. */
  usage(prefix = ""): Promise<Usage> {
    return this.#request<Usage>({ op: "du", prefix });
  }

  /** Each data node's bytes held, and the size and free space of the file system it is on. */
  capacity(): Promise<RankCapacity[]> {
    return this.#request<RankCapacity[]>({ op: "df" });
  }

  /**
   * Checks every replica of every chunk against its CRC32 and repairs what it can: files healthy,
   * repaired, under-replicated (a replica could not be checked or rewritten) and lost (a chunk with
   * no good replica).
   */
  fsck(): Promise<FsckReport> {
    return this.#request<FsckReport>({ op: "fsck" });
  }

  /** Each data node's state, bytes and chunks held, and the repair and scrub counters. */
  status(): Promise<StatusReport> {
    return this.#request<StatusReport>({ op: "status" });
  }

  /**
   * What would become under-replicated and what would be lost if `target` were gone now: a data
   * rank (an integer) or a zone (every data node in it); and what is degraded already. A question,
   * not a check: the server looks at its index and touches no data node.
   *
   * @throws {DfsError} `NOT_FOUND` if `target` is neither a data rank nor a zone;
   *   `INVALID_REQUEST` for an empty one.
   */
  doctor(target: string): Promise<DoctorReport> {
    return this.#request<DoctorReport>({ op: "doctor", target });
  }

  /** Sends one request and returns the result of its single `ok` reply. */
  #request<T>(message: Record<string, unknown>): Promise<T> {
    return this.#exclusive(async () => {
      const { reader, writer } = await this.#connected();
      await writer.send({ ...message, id: this.#id() });
      return resultOf<T>(await readReply(reader));
    });
  }

  /**
   * Names under `prefix` (all when empty), sorted, with size and modified time: those after
   * `options.after` (exclusive), at most `options.limit` (1 to `LIST_LIMIT_ENTRIES_MAX`). To page
   * through a long listing, pass the last name of one page as the next one's `after`; or read it
   * with `listPages()`, which holds a page at a time where this holds every entry.
   *
   * @throws {DfsError} `INVALID_REQUEST` for a bad prefix, cursor or limit.
   */
  async list(prefix = "", options: ListOptions = {}): Promise<ListEntry[]> {
    const entries: ListEntry[] = [];
    for await (const page of this.listPages(prefix, options)) entries.push(...page);
    return entries;
  }

  /**
   * What `list()` gives, as the server sends it: pages of at most `LIST_PAGE_ENTRIES_MAX` entries,
   * in order, each read off the connection when the one before has been taken. A listing of any
   * length (a million names) takes a page of memory here. The connection is the listing's until
   * its last page; stopping the iteration before closes it (the rest is in flight), and the next
   * request opens another.
   *
   * @throws {DfsError} `INVALID_REQUEST` for a bad prefix, cursor or limit; `UNAVAILABLE` if the
   *   connection fails.
   */
  async *listPages(prefix = "", options: ListOptions = {}): AsyncGenerator<ListEntry[]> {
    let release!: () => void;
    const held = new Promise<void>((resolve) => release = resolve);
    let link: Link | undefined;
    // At the end of the listing, or after an error the server sent, the connection is in step.
    let inStep = false;
    try {
      link = await this.#exclusive(async () => {
        const link = await this.#connected();
        const request: Record<string, unknown> = { op: "list", id: this.#id(), prefix };
        if (options.after !== undefined) request.after = options.after;
        if (options.limit !== undefined) request.limit = options.limit;
        await link.writer.send(request);
        return link;
      }, held);
      while (true) {
        const reply = await readReply(link.reader);
        if (reply.op === "entries") {
          yield reply.entries;
        } else if (reply.op === "end") {
          inStep = true;
          return;
        } else {
          inStep = reply.op === "error";
          throw expectOk(reply) && unexpected(reply);
        }
      }
    } finally {
      if (link && !inStep) this.#drop(link);
      release();
    }
  }

  /**
   * Opens `name` for reading: resolves with its metadata and a stream of its bytes once the server
   * has found it. The stream errors with `CORRUPTED` if a chunk does not match its CRC32 (or the
   * file its SHA-256). With `start` and/or `end` (byte offsets, end exclusive) only that range
   * comes, and the server reads only the chunks holding it; the chunks it covers whole are checked.
   *
   * @throws {DfsError} `NOT_FOUND` if there is no such file; `INVALID_REQUEST` for a range outside
   *   it.
   */
  async open(
    name: string,
    range: ByteRange = {},
  ): Promise<{ meta: FileMeta; stream: ReadableStream<Uint8Array> }> {
    let release!: () => void;
    const held = new Promise<void>((resolve) => release = resolve);
    let link!: Link;
    // The connection stays ours until the stream is read to the end, fails or is cancelled.
    const { meta, pieces, checked } = await this.#exclusive(async () => {
      link = await this.#connected();
      return await this.#get(link, name, range);
    }, held);
    const { check, finish } = readChecker(name, meta, range, this.#options.verify && !checked);
    const stream = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          const piece = await pieces.next();
          if (!piece.done) {
            check(piece.value);
            controller.enqueue(piece.value);
            return;
          }
          finish();
          controller.close();
          release();
        } catch (error) {
          this.#drop(link);
          release();
          controller.error(error);
        }
      },
      cancel: () => {
        this.#drop(link); // unread frames are in flight: this connection cannot be reused
        void pieces.return(undefined);
        release();
      },
    }, { highWaterMark: 0 });
    return { meta, stream };
  }

  /** The bytes of `name` (or of a range of it) as a stream. @throws {DfsError} `NOT_FOUND`. */
  async get(name: string, range: ByteRange = {}): Promise<ReadableStream<Uint8Array>> {
    return (await this.open(name, range)).stream;
  }

  /**
   * The content of `name` (or a range of it) in memory (for small files), checked like `open()`'s
   * stream. Reads the frames straight off the connection, without a stream in between.
   */
  async getBytes(name: string, range: ByteRange = {}): Promise<Uint8Array> {
    let out = new Uint8Array(0);
    let at = 0;
    await this.#read(name, range, (meta) => {
      out = new Uint8Array((range.end ?? meta.size) - (range.start ?? 0));
      return (piece) => {
        if (at + piece.length > out.length) throw new DfsError("INTERNAL", "Too many bytes");
        out.set(piece, at);
        at += piece.length;
      };
    });
    return out;
  }

  /**
   * Writes `name` (or a range of it) to `sink`, checked like `open()`'s stream, a piece at a time:
   * each piece is written whole, and its buffer then read into again, so a large get allocates
   * nothing per chunk (`dfs get`: a new process otherwise reads its first ~128 MiB into memory
   * the kernel must fault in page by page). The sink must be done with the bytes it is given when
   * its write resolves, as a file's or stdout's is. `opened` is told the file's metadata first.
   * The client keeps the buffers (`DIRECT_CHUNKS_INFLIGHT_MAX` + 2 chunks) for its next read.
   *
   * @throws what the sink's write throws, as it is; `INTERNAL` for a write that says it took no
   *   bytes, or more than it was given.
   */
  getInto(
    name: string,
    sink: ByteSink,
    options: ByteRange & { opened?: (meta: FileMeta) => void } = {},
  ): Promise<FileMeta> {
    const { opened, ...range } = options;
    const pool = this.#pool;
    return this.#read(name, range, (meta) => {
      opened?.(meta);
      return async (piece) => {
        try {
          for (let at = 0; at < piece.length;) {
            const n = await sink.write(piece.subarray(at));
            if (!Number.isInteger(n) || n < 1 || n > piece.length - at) {
              throw new DfsError("INTERNAL", `A sink wrote ${n} of ${piece.length - at} bytes`);
            }
            at += n;
          }
        } catch (error) {
          throw new SinkFailure(error); // not the server's connection failing
        }
        pool.give(piece.buffer);
      };
    }, pool).catch((error) => {
      throw error instanceof SinkFailure ? error.error : error;
    });
  }

  /**
   * Reads `name` (or a range) on the connection, each piece checked and handed to what `opened`
   * returns, awaited before the next; resolves with the file's metadata. With `pool`, the
   * connection reads its chunk frames into it while the read lasts (other replies are read as
   * they come).
   */
  #read(
    name: string,
    range: ByteRange,
    opened: (meta: FileMeta) => (piece: Uint8Array) => void | Promise<void>,
    pool?: BufferPool,
  ): Promise<FileMeta> {
    return this.#exclusive(async () => {
      const link = await this.#connected();
      const { meta, pieces, checked } = await this.#get(link, name, range);
      link.reader.pool = pool;
      try {
        const verify = this.#options.verify && !checked;
        const { check, finish } = readChecker(name, meta, range, verify);
        const take = opened(meta);
        for (let next = await pieces.next(); !next.done; next = await pieces.next()) {
          check(next.value);
          await take(next.value);
        }
        finish();
        return meta;
      } catch (error) {
        // Not awaited, as `open()`'s cancel: reads still in flight settle on their own, and one
        // from a node that hangs must not hold the error back until its silence limit.
        pieces.return(undefined).catch(() => {});
        this.#drop(link); // frames of this get may still be in flight
        throw error;
      } finally {
        link.reader.pool = undefined;
      }
    });
  }

  /**
   * Asks for `name` on `link`: its metadata, and its bytes as they come, from the server's data
   * frames or, when the server offers a direct route, from the data nodes
   * (`protocol/direct_reader.ts`); then tells the server the read is done.
   */
  async #get(
    link: Link,
    name: string,
    range: ByteRange,
  ): Promise<{ meta: FileMeta; pieces: AsyncGenerator<Uint8Array>; checked: boolean }> {
    const id = this.#id();
    const direct = this.#options.direct !== false ? { direct: true } : {};
    await link.writer.send({ op: "get", id, name, ...range, ...direct });
    const reply = expectOk(await readReply(link.reader));
    const meta = reply.result as FileMeta;
    if (reply.direct === undefined) return { meta, pieces: this.#frames(link), checked: false };
    const span = { start: range.start ?? 0, end: range.end ?? meta.size };
    // Each chunk is checked whole as it comes, and a damaged replica failed over.
    const verify = this.#options.verify && meta.chunks.every((c) => c.crc32 !== undefined);
    const read = { meta, route: reply.direct, range: span };
    const pieces = readRoute(this.#rank0(link), id, read, this.#links(), { verify });
    return { meta, pieces, checked: verify };
  }

  /** The connections to data ports, for the direct path. */
  #links(): DataLinks {
    const { connectTimeoutMs, tlsCaCerts } = this.#options; // TLS to the nodes as to rank 0
    // Their chunk frames are read into the pool that `getInto` gives its buffers back to.
    return this.#dataLinks ??= new DataLinks({ connectTimeoutMs, tlsCaCerts, pool: this.#pool });
  }

  /** `link` as the direct path asks rank 0 things (`protocol/direct_client.ts`). */
  #rank0(link: Link): Rank0Link {
    return {
      send: (message) => link.writer.send(message),
      reply: () => readReply(link.reader),
    };
  }

  /** The bytes of a get's `data` frames until its `end`. */
  async *#frames(link: Link): AsyncGenerator<Uint8Array> {
    while (true) {
      const reply = await readReply(link.reader);
      if (reply.op === "end") return;
      if (reply.op !== "data") throw expectOk(reply) && unexpected(reply);
      yield reply.bytes;
    }
  }

  /** Closes the connection; later calls fail. */
  close(): void {
    this.#closed = true;
    this.#dataLinks?.close();
    if (this.#link) this.#drop(this.#link);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  #id(): number {
    const id = this.#nextId;
    this.#nextId = id >= 0xffff_ffff ? 1 : id + 1;
    return id;
  }

  /** Runs one operation at a time on the connection; after a success, the next waits for `hold`. */
  #exclusive<T>(work: () => Promise<T>, hold?: Promise<void>): Promise<T> {
    const run = this.#busy.then(() => {
      if (this.#closed) throw new DfsError("UNAVAILABLE", "Client is closed");
      return work().catch((error) => {
        // After a transport failure the stream position is unknown: start afresh next time.
        if (!(error instanceof DfsError) || error.code === "UNAVAILABLE") this.#dropCurrent();
        throw isConnectionError(error)
          ? new DfsError("UNAVAILABLE", `Connection to the server failed: ${error.message}`)
          : error;
      });
    });
    this.#busy = run.then(() => hold, () => {});
    return run;
  }

  async #connected(): Promise<Link> {
    if (this.#link) return this.#link;
    const { hostname, port } = this.#address;
    this.#link = await openLink(hostname, port, this.#options);
    return this.#link;
  }

  #dropCurrent(): void {
    if (this.#link) this.#drop(this.#link);
  }

  #drop(link: Link): void {
    if (this.#link === link) this.#link = null;
    try {
      link.conn.close();
    } catch { /* already closed */ }
  }
}
