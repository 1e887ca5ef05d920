/**
 * The client's side of direct reads (`direct.ts`): connections to the data nodes' data ports, one
 * per node, each with several requests in flight (writes too: `direct_writer.ts`); and a read of a file's range from them, chunk by
 * chunk in order, each chunk from one replica (spread by a hash of its id) and failing over to the
 * others, and through rank 0 when no node gives it.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import type { BufferPool } from "./buffer_pool.ts";
import { closeQuietly, FrameReader, FrameWriter, setNoDelay } from "./conn.ts";
import { openSocket, parseAddress } from "./connect.ts";
import { DIRECT_PROTOCOL_VERSION, type DirectRoute, firstReplica, idsOf } from "./direct.ts";
import { DfsError, type WireError } from "./errors.ts";
import { decodeFrameBody } from "./frame.ts";
import type { FileMeta } from "./messages.ts";
import { chunkSpans } from "./spans.ts";

/** Chunks one direct read has in flight (over all the nodes it reads from). */
export const DIRECT_CHUNKS_INFLIGHT_MAX = 8;
/** Data ports a client keeps connections to; the least recently used is closed beyond this. */
export const DATA_LINKS_MAX = 64;
/**
 * A connection to a data port with requests waiting that brings nothing for this long is taken
 * for dead (a host cut off or hung shows as silence, not as an error): its requests fail over. As
 * long as a node's link to rank 0 may be silent (`NODE_SILENCE_TIMEOUT_MS`); a chunk's frame
 * takes under a second even at 10 Mbit/s.
 */
export const DATA_LINK_SILENCE_MS = 10_000;
/**
 * How long a data port that went silent, or could not be reached or greeted in time, is skipped
 * (its requests fail at once, to the next replica or another node) before it is tried again:
 * otherwise every later request to a hung node would wait out a time limit of its own, while a
 * route or plan in hand still names it.
 */
export const DATA_LINK_RETRY_MS = 30_000;

/** What a `DataLink` is opened with. */
interface LinkOptions {
  connectTimeoutMs: number;
  /** Speak TLS, trusting these certificates (as the client does to rank 0). */
  tlsCaCerts?: string[];
  silenceMs: number;
  /** Where chunk frames are read into (`FrameReader`'s pool). */
  pool?: BufferPool;
  /**
   * Told when the node is silent: it did not accept the connection and greet within
   * `connectTimeoutMs`, or the link failed for `silenceMs` without a frame.
   */
  onSilent?: () => void;
}

type Pending = { resolve: (bytes: Uint8Array) => void; reject: (error: unknown) => void };

/** One connection to a data port. */
class DataLink {
  #conn: Deno.Conn;
  #writer: FrameWriter;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #failure: DfsError | undefined;
  /** When a frame last came (or requests began to wait), and the timer that watches for silence. */
  #heardAt = 0;
  #watch: ReturnType<typeof setTimeout> | undefined;

  #silenceMs: number;
  #onSilent: (() => void) | undefined;

  private constructor(conn: Deno.Conn, options: LinkOptions) {
    this.#silenceMs = options.silenceMs;
    this.#onSilent = options.onSilent;
    this.#conn = conn;
    this.#writer = new FrameWriter(conn);
  }

  /**
   * Connects and greets, both within `connectTimeoutMs` (a hung node's kernel still accepts the
   * connection; only its hello never comes). @throws {DfsError} `UNAVAILABLE`, `VERSION_MISMATCH`.
   */
  static async open(address: string, options: LinkOptions): Promise<DataLink> {
    const { connectTimeoutMs } = options;
    const deadline = performance.now() + connectTimeoutMs;
    const { hostname, port } = parseAddress(address);
    let conn: Deno.Conn;
    try {
      conn = await openSocket(hostname, port, { connectTimeoutMs, tlsCaCerts: options.tlsCaCerts });
    } catch (error) {
      if (performance.now() >= deadline) options.onSilent?.(); // timed out, not refused
      throw error;
    }
    setNoDelay(conn);
    const link = new DataLink(conn, options);
    const reader = new FrameReader(conn, { pool: options.pool });
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      link.close(); // the hello's read and send fail
    }, Math.max(0, deadline - performance.now()));
    try {
      await link.#writer.send({ op: "hello", version: DIRECT_PROTOCOL_VERSION });
      const body = await reader.read();
      const hello = body === null ? null : decodeFrameBody(body) as { op?: string };
      if (hello?.op === "error") throw DfsError.fromWire(hello as unknown as WireError);
      if (hello?.op !== "hello") throw new DfsError("UNAVAILABLE", `${address} sent no hello`);
    } catch (error) {
      link.close();
      if (late) {
        options.onSilent?.();
        throw new DfsError("UNAVAILABLE", `No hello from ${address} in ${connectTimeoutMs} ms`);
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
    void link.#receive(reader, address);
    return link;
  }

  get broken(): boolean {
    return this.#failure !== undefined;
  }

  /**
   * Sends a request (a write's `bytes` in a data frame right after it); resolves with the bytes
   * read, or empty bytes once written. @throws {DfsError} the node's error.
   */
  request(request: Record<string, unknown>, bytes?: Uint8Array): Promise<Uint8Array> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId;
    this.#nextId = id >= 0xffff_ffff ? 1 : id + 1;
    const { promise, resolve, reject } = Promise.withResolvers<Uint8Array>();
    if (this.#pending.size === 0) this.#heardAt = performance.now();
    this.#pending.set(id, { resolve, reject });
    if (this.#watch === undefined) this.#watchSilence(this.#silenceMs);
    this.#writer.send({ id, ...request }).catch((error) => this.#fail(error));
    if (bytes) this.#writer.sendData(id, bytes).catch((error) => this.#fail(error));
    return promise;
  }

  close(): void {
    this.#fail(new DfsError("UNAVAILABLE", "Data port connection closed"));
  }

  async #receive(reader: FrameReader, address: string): Promise<void> {
    try {
      while (true) {
        const body = await reader.read();
        if (body === null) throw new DfsError("UNAVAILABLE", `${address} closed the connection`);
        this.#heardAt = performance.now();
        const reply = decodeFrameBody(body) as { op: string; id: number; bytes?: Uint8Array };
        const pending = this.#pending.get(reply.id);
        if (reply.op === "error" && (reply.id === 0 || pending === undefined)) {
          throw DfsError.fromWire(reply as unknown as WireError);
        }
        if (pending === undefined) throw new DfsError("INTERNAL", `${address} sent a stray reply`);
        this.#pending.delete(reply.id);
        if (reply.op === "data" && reply.bytes instanceof Uint8Array) pending.resolve(reply.bytes);
        else if (reply.op === "written") pending.resolve(new Uint8Array(0));
        else if (reply.op === "error") {
          pending.reject(DfsError.fromWire(reply as unknown as WireError));
        } else pending.reject(new DfsError("INTERNAL", `${address} sent "${reply.op}"`));
      }
    } catch (error) {
      this.#fail(error);
    }
  }

  /** Fails the link once requests have waited its silence limit with nothing heard. */
  #watchSilence(ms: number): void {
    const timer = setTimeout(() => {
      this.#watch = undefined;
      if (this.#pending.size === 0 || this.#failure) return;
      const quiet = performance.now() - this.#heardAt;
      if (quiet < this.#silenceMs) return this.#watchSilence(this.#silenceMs - quiet);
      this.#fail(
        new DfsError("UNAVAILABLE", `No answer from a data port in ${this.#silenceMs} ms`),
      );
      this.#onSilent?.();
    }, ms);
    Deno.unrefTimer(timer); // the requests waiting keep the process alive by themselves
    this.#watch = timer;
  }

  #fail(error: unknown): void {
    clearTimeout(this.#watch);
    this.#watch = undefined;
    this.#failure ??= error instanceof DfsError
      ? error
      : new DfsError("UNAVAILABLE", `Data port failed: ${(error as Error).message}`);
    closeQuietly(this.#conn);
    for (const pending of this.#pending.values()) pending.reject(this.#failure);
    this.#pending.clear();
  }
}

/** What `DataLinks` opens its links with. */
interface DataLinksOptions {
  connectTimeoutMs: number;
  silenceMs?: number;
  retryMs?: number;
  tlsCaCerts?: string[];
  pool?: BufferPool;
}

/** A client's connections to data ports, opened as needed and kept for the next reads. */
export class DataLinks {
  #links = new Map<string, Promise<DataLink>>();
  #options: DataLinksOptions & { silenceMs: number; retryMs: number };
  /** Data ports found silent, each skipped until its time (`DATA_LINK_RETRY_MS`), at most `DATA_LINKS_MAX`. */
  #silent = new Map<string, { until: number; error: DfsError }>();

  /**
   * `silenceMs`, `retryMs`: `DATA_LINK_SILENCE_MS`, `DATA_LINK_RETRY_MS` unless told (tests make
   * them short). `pool`: where the links read chunks into (see `DfsClient.getInto`).
   */
  constructor(options: DataLinksOptions) {
    this.#options = { silenceMs: DATA_LINK_SILENCE_MS, retryMs: DATA_LINK_RETRY_MS, ...options };
  }

  /** Reads a chunk from the data port at `address`. @throws {DfsError} as the node answers. */
  async read(address: string, request: Record<string, unknown>): Promise<Uint8Array> {
    return (await this.#linkTo(address)).request({ op: "read", ...request });
  }

  /** Writes a chunk to the data port at `address`. @throws {DfsError} as the node answers. */
  async write(address: string, request: Record<string, unknown>, bytes: Uint8Array): Promise<void> {
    await (await this.#linkTo(address)).request({ op: "write", ...request }, bytes);
  }

  close(): void {
    for (const link of this.#links.values()) link.then((l) => l.close(), () => {});
    this.#links.clear();
  }

  async #linkTo(address: string): Promise<DataLink> {
    let link = this.#links.get(address);
    if (link !== undefined) {
      // To the end (the map's order is by last use) before awaiting: a read that finds the
      // address missing meanwhile would open a second link, one the map then loses and `close()`
      // never closes.
      this.#links.delete(address);
      this.#links.set(address, link);
      const open = await link.catch(() => undefined);
      if (open !== undefined && !open.broken) return open;
      const now = this.#links.get(address);
      if (now !== undefined && now !== link) return await this.#linkTo(address); // replaced
    }
    const silent = this.#silent.get(address);
    if (silent !== undefined && performance.now() < silent.until) throw silent.error;
    this.#silent.delete(address);
    const { connectTimeoutMs, silenceMs, retryMs, tlsCaCerts, pool } = this.#options;
    const onSilent = () => {
      const now = performance.now();
      for (const [other, { until }] of this.#silent) if (until <= now) this.#silent.delete(other);
      // At most as many as the links kept: the one found silent longest ago goes first.
      if (this.#silent.size >= DATA_LINKS_MAX) {
        this.#silent.delete(this.#silent.keys().next().value!);
      }
      const error = new DfsError(
        "UNAVAILABLE",
        `Data port ${address} went silent: not tried again for ${retryMs} ms`,
      );
      this.#silent.set(address, { until: now + retryMs, error });
    };
    link = DataLink.open(address, { connectTimeoutMs, silenceMs, onSilent, tlsCaCerts, pool });
    this.#links.set(address, link);
    if (this.#links.size > DATA_LINKS_MAX) {
      const [oldest, opening] = this.#links.entries().next().value!;
      this.#links.delete(oldest);
      opening.then((l) => l.close(), () => {});
    }
    return await link;
  }
}

/**
 * The bytes `start` to `end` of the file `meta` describes, read from the data nodes along
 * `route`, in order, a piece per chunk; a chunk no node gives comes from `fetch` (through rank 0).
 * With `verify`, each chunk is checked whole against its CRC32 here (every chunk must have one),
 * and a damaged replica is failed over like a missing one; the nodes then do not check it again.
 *
 * @throws {DfsError} `CORRUPTED` when, with `verify`, a chunk comes damaged from rank 0 too.
 */
export async function* readDirect(
  meta: FileMeta,
  route: DirectRoute,
  range: { start: number; end: number },
  links: DataLinks,
  fetch: (index: number) => Promise<Uint8Array>,
  options: { verify: boolean },
): AsyncGenerator<Uint8Array> {
  const ids = idsOf(route.runs, meta.chunks.map((chunk) => chunk.size));
  const wanted = chunkSpans(meta.chunks, range.start, range.end);
  const { verify } = options;
  const intact = (bytes: Uint8Array, size: number, expected: number | undefined) =>
    bytes.length === size && (!verify || crc32(bytes) === expected);
  const readChunk = async (index: number): Promise<Uint8Array> => {
    const { size, ranks, crc32: expected } = meta.chunks[index];
    const request = {
      chunk: ids[index],
      size,
      grant: route.grant,
      crc32: verify ? undefined : expected,
    };
    const first = firstReplica(ids[index], ranks.length);
    for (let i = 0; i < ranks.length; i++) {
      const address = route.nodes[ranks[(first + i) % ranks.length]];
      if (address === undefined) continue;
      try {
        const bytes = await links.read(address, request);
        if (intact(bytes, size, expected)) return bytes;
      } catch { /* the next replica, then rank 0 */ }
    }
    const bytes = await fetch(index);
    if (intact(bytes, size, expected)) return bytes;
    throw new DfsError(
      "CORRUPTED",
      `Chunk ${index} of "${meta.name}" came damaged from every replica`,
    );
  };
  const reads: Promise<Uint8Array>[] = [];
  let next = 0;
  try {
    while (next < wanted.length || reads.length > 0) {
      while (next < wanted.length && reads.length < DIRECT_CHUNKS_INFLIGHT_MAX) {
        const { index, from, to } = wanted[next++];
        const read = readChunk(index).then((bytes) => bytes.subarray(from, to));
        read.catch(() => {}); // awaited in order below
        reads.push(read);
      }
      yield await reads.shift()!;
    }
  } finally {
    await Promise.allSettled(reads);
  }
}
