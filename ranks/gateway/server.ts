/**
 * Rank 0's client socket: accepts connections, speaks the framed CBOR protocol and hands each
 * request to the `Coordinator`. Every connection is independent; requests on different names never
 * wait for each other.
 *
 * @module
 */

import {
  AUTH_NONCE_BYTES,
  clientProof,
  newNonce,
  proofMatches,
  serverProof,
} from "../../protocol/auth.ts";
import {
  COALESCE_BYTES_MAX,
  FrameReader,
  FrameWriter,
  isConnectionError,
  setNoDelay,
} from "../../protocol/conn.ts";
import { DfsError } from "../../protocol/errors.ts";
import { decodeFrameBody } from "../../protocol/frame.ts";
import {
  CHUNK_SIZE_BYTES,
  FRAME_SIZE_BYTES_MAX,
  FRAME_SIZE_BYTES_MIN,
  LIST_PAGE_ENTRIES_MAX,
  PROTOCOL_VERSION,
} from "../../protocol/limits.ts";
import { parseHello, parseRequest, type Request } from "../../protocol/messages.ts";
import { utf8ByteLength } from "../../protocol/names.ts";
import { type Coordinator, READ_CHUNKS_INFLIGHT_MAX, type Upload } from "../rank0/coordinator.ts";
import { Semaphore } from "../common/semaphore.ts";

/** Server limits, each settable on `dfs serve`. */
export interface ServerLimits {
  /** Open client connections; one more is answered `UNAVAILABLE` and closed. */
  connectionsMax: number;
  /** Requests in flight on one connection. */
  requestsInflightMax: number;
  /** A connection with no request in flight and no frame for this long is closed. */
  idleTimeoutMs: number;
  /** A new connection must complete the handshake within this time. */
  handshakeTimeoutMs: number;
  /** A connection whose socket accepts no bytes for this long (a client not reading) is closed. */
  writeTimeoutMs: number;
  /** Largest frame accepted, at least `FRAME_SIZE_BYTES_MIN`; announced in the hello. */
  frameSizeBytesMax: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  connectionsMax: 1024,
  requestsInflightMax: 64,
  idleTimeoutMs: 5 * 60_000,
  handshakeTimeoutMs: 10_000,
  writeTimeoutMs: 60_000,
  frameSizeBytesMax: FRAME_SIZE_BYTES_MAX,
};

/** Bytes a list entry takes in a frame besides its name (keys, size, time, replicas), at most. */
const LIST_ENTRY_OVERHEAD_BYTES = 64;

/** The version string the server reports in its handshake. */
export const SERVER_NAME = "dfs/0.1.0";

/** A running client listener. */
export interface ClientServer {
  readonly hostname: string;
  readonly port: number;
  /** Stops accepting, closes every connection and waits for their handlers. */
  close(): Promise<void>;
}

/** How clients must prove themselves and how the socket is protected; both optional. */
export interface ServerSecurity {
  /** Shared secret: every client must answer the hello's challenge with an HMAC of it. */
  secret?: Uint8Array;
  /** Allow the `test-hook` request that crashes or hangs a data node (tests only). */
  testHooks?: boolean;
  /** PEM certificate chain and private key: the listener speaks TLS. */
  tls?: { cert: string; key: string };
}

/** Listens on `hostname:port` (port 0 picks a free one) and serves clients until closed. */
export function serveClients(
  coordinator: Coordinator,
  options: { hostname: string; port: number; limits?: Partial<ServerLimits> } & ServerSecurity,
): ClientServer {
  const limits: ServerLimits = { ...DEFAULT_LIMITS };
  for (const [key, value] of Object.entries(options.limits ?? {})) {
    if (value !== undefined) limits[key as keyof ServerLimits] = value;
  }
  const frame = limits.frameSizeBytesMax;
  if (frame < FRAME_SIZE_BYTES_MIN || frame > FRAME_SIZE_BYTES_MAX) {
    throw new DfsError(
      "INVALID_REQUEST",
      `--frame-size-bytes-max must be from ${FRAME_SIZE_BYTES_MIN} to ${FRAME_SIZE_BYTES_MAX}, got ${frame}`,
    );
  }
  const address = { hostname: options.hostname, port: options.port, transport: "tcp" as const };
  const listener: Deno.Listener = options.tls
    ? Deno.listenTls({ ...address, cert: options.tls.cert, key: options.tls.key })
    : Deno.listen(address);
  const connections = new Set<Connection>();
  const done = (async () => {
    for await (const conn of listener) {
      if (connections.size >= limits.connectionsMax) {
        void refuse(
          conn,
          new DfsError(
            "UNAVAILABLE",
            `Server is at its limit of ${limits.connectionsMax} connections`,
          ),
        );
        continue;
      }
      setNoDelay(conn);
      const connection = new Connection(conn, coordinator, {
        limits,
        secret: options.secret,
        testHooks: options.testHooks === true,
      });
      connections.add(connection);
      void connection.run().finally(() => connections.delete(connection));
    }
  })().catch(() => {}); // the listener was closed
  const addr = listener.addr as Deno.NetAddr;
  return {
    hostname: addr.hostname,
    port: addr.port,
    async close() {
      try {
        listener.close();
      } catch { /* already closed */ }
      await done;
      await Promise.all([...connections].map((c) => c.close()));
    },
  };
}

async function refuse(conn: Deno.Conn, error: DfsError): Promise<void> {
  try {
    await new FrameWriter(conn).send({ op: "error", id: 0, ...error.toWire() });
  } catch { /* the client is gone */ }
  closeQuietly(conn);
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

/** One client connection. */
class Connection {
  #conn: Deno.Conn;
  #coordinator: Coordinator;
  #limits: ServerLimits;
  #secret: Uint8Array | undefined;
  #testHooks: boolean;
  /** Chunks read ahead for all of this connection's gets together (bounds its memory). */
  #readBudget = new Semaphore(READ_CHUNKS_INFLIGHT_MAX);
  #reader: FrameReader;
  #writer: FrameWriter;
  #uploads = new Map<number, Upload>();
  /** Ids of uploads that failed: their remaining data frames are dropped until `end` or `abort`. */
  #failedUploads = new Set<number>();
  #tasks = new Map<number, Promise<void>>();
  #readers = new Set<{ close(): void }>();
  #closed = false;
  #finished: Promise<void> | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** The quiet time after which `#timer` closes the connection, and when it was last active. */
  #idleMs = 0;
  #activeAt = 0;

  constructor(
    conn: Deno.Conn,
    coordinator: Coordinator,
    options: { limits: ServerLimits; secret?: Uint8Array; testHooks: boolean },
  ) {
    this.#testHooks = options.testHooks;
    this.#conn = conn;
    this.#coordinator = coordinator;
    this.#limits = options.limits;
    this.#secret = options.secret;
    this.#reader = new FrameReader(conn, {
      frameSizeBytesMax: this.#limits.frameSizeBytesMax,
      pool: coordinator.pool,
    });
    this.#writer = new FrameWriter(conn, {
      stallTimeoutMs: this.#limits.writeTimeoutMs,
      onStall: () => this.#shut(),
    });
  }

  run(): Promise<void> {
    this.#finished = this.#run();
    return this.#finished;
  }

  async close(): Promise<void> {
    this.#shut();
    await this.#finished;
  }

  async #run(): Promise<void> {
    try {
      this.#arm(this.#limits.handshakeTimeoutMs);
      const hello = await this.#reader.read();
      if (hello === null) return;
      parseHello(decodeFrameBody(hello), PROTOCOL_VERSION);
      const challenge = this.#secret ? newNonce() : undefined;
      await this.#writer.send({
        op: "hello",
        version: PROTOCOL_VERSION,
        server: SERVER_NAME,
        chunkSizeBytes: CHUNK_SIZE_BYTES,
        frameSizeBytesMax: this.#limits.frameSizeBytesMax,
        challenge,
      });
      if (challenge && !await this.#authenticate(this.#secret!, challenge)) return;
      while (!this.#closed) {
        this.#arm(this.#limits.idleTimeoutMs);
        const body = await this.#reader.read();
        if (body === null) break;
        await this.#dispatch(body);
      }
    } catch (error) {
      if (!this.#closed) await this.#sendError(0, error);
    } finally {
      this.#shut();
      await Promise.allSettled(this.#tasks.values());
      // A client that vanished mid-upload leaves nothing behind.
      await Promise.allSettled([...this.#uploads.values()].map((u) => u.abort()));
      for (const reader of this.#readers) reader.close();
    }
  }

  /**
   * Reads the client's answer to the hello's challenge, still within the handshake time. A wrong or
   * missing answer gets `UNAUTHORIZED` and nothing else; the caller then closes the connection.
   */
  async #authenticate(secret: Uint8Array, challenge: Uint8Array): Promise<boolean> {
    const body = await this.#reader.read();
    if (body === null) return false;
    type Answer = { op?: unknown; nonce?: unknown; proof?: unknown } | null;
    let answer: Answer = null;
    try {
      answer = decodeFrameBody(body) as Answer;
    } catch { /* treated as a wrong answer */ }
    const nonce = answer?.nonce;
    const valid = answer?.op === "auth" && nonce instanceof Uint8Array &&
      nonce.length === AUTH_NONCE_BYTES &&
      proofMatches(answer.proof, clientProof(secret, challenge, nonce));
    if (!valid) {
      await this.#sendError(0, new DfsError("UNAUTHORIZED", "Authentication failed"));
      return false;
    }
    await this.#writer.send({ op: "auth", proof: serverProof(secret, challenge, nonce) });
    return true;
  }

  /**
   * Closes the socket after `ms` unless a frame arrives or a request is in flight. Called for every
   * frame, so it only notes the time: the one timer, when it fires, looks at how long the
   * connection has really been quiet (a timer per frame cost ~5% of rank 0's time on small files).
   */
  #arm(ms: number): void {
    this.#activeAt = performance.now();
    if (this.#timer !== undefined && ms === this.#idleMs) return;
    clearTimeout(this.#timer);
    this.#idleMs = ms;
    this.#schedule(ms);
  }

  #schedule(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const quiet = performance.now() - this.#activeAt;
      if (quiet < this.#idleMs) return this.#schedule(this.#idleMs - quiet);
      // Gets and commits in progress keep it open (a stalled reader meets the write timeout); an
      // upload that has sent nothing for this long does not.
      if (this.#tasks.size === 0) this.#shut();
      else this.#arm(this.#idleMs);
    }, ms);
  }

  #shut(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#closed) return;
    this.#closed = true;
    this.#writer.close();
    closeQuietly(this.#conn);
  }

  async #dispatch(body: Uint8Array): Promise<void> {
    let request: Request;
    let decoded: unknown;
    try {
      decoded = decodeFrameBody(body);
      request = parseRequest(decoded);
    } catch (error) {
      // The framing is intact, so the connection goes on; say which request was refused if we can.
      const { id: refusedId, isPut } = describeRefused(decoded);
      const upload = refusedId === null ? undefined : this.#uploads.get(refusedId);
      if (upload) {
        // A refused frame of an upload in progress (an oversized chunk, say) fails that upload:
        // committing the rest would store a file with a hole in it.
        this.#uploads.delete(refusedId!);
        this.#dropUpload(refusedId!);
        await upload.abort();
      } else if (refusedId !== null && isPut) {
        this.#dropUpload(refusedId);
      }
      return await this.#sendError(refusedId ?? 0, error);
    }
    const { id } = request;
    try {
      switch (request.op) {
        case "put":
          this.#checkFreeId(id);
          this.#uploads.set(
            id,
            this.#coordinator.beginUpload(request.name, {
              size: request.size,
              replicas: request.replicas,
              checksums: request.checksums,
            }),
          );
          return;
        case "data":
          return await this.#data(id, request.bytes, request.crc32);
        case "end":
          return this.#end(id, request.sha256);
        case "abort":
          return this.#abort(id);
        case "get":
          this.#checkFreeId(id);
          return this.#spawn(id, () => this.#get(id, request));
        case "meta":
          this.#checkFreeId(id);
          return this.#spawn(
            id,
            async () =>
              await this.#writer.send({
                op: "ok",
                id,
                result: await this.#coordinator.meta(request.name),
              }),
          );
        case "list":
          this.#checkFreeId(id);
          return this.#spawn(id, () => this.#list(id, request.prefix));
        case "rm":
          this.#checkFreeId(id);
          return this.#spawn(id, async () => {
            let removed = 1;
            if ("name" in request) await this.#coordinator.remove(request.name);
            else removed = await this.#coordinator.removePrefix(request.prefix);
            await this.#writer.send({ op: "ok", id, result: { removed } });
          });
        case "mv":
          this.#checkFreeId(id);
          return this.#spawn(id, async () => {
            const { from, to, force } = request;
            const result = await this.#coordinator.rename(from, to, { force });
            await this.#writer.send({ op: "ok", id, result });
          });
        case "du":
          this.#checkFreeId(id);
          return this.#spawn(
            id,
            async () =>
              await this.#writer.send({
                op: "ok",
                id,
                result: await this.#coordinator.usage(request.prefix),
              }),
          );
        case "test-hook":
          if (!this.#testHooks) throw new DfsError("INVALID_REQUEST", "Test hooks are off");
          this.#coordinator.testHook(request.rank, request.mode);
          return void await this.#writer.send({ op: "ok", id });
        case "fsck":
          this.#checkFreeId(id);
          return this.#spawn(id, async () => {
            await this.#writer.send({ op: "ok", id, result: await this.#coordinator.fsck() });
          });
        case "status":
          this.#checkFreeId(id);
          return this.#spawn(id, async () => {
            await this.#writer.send({ op: "ok", id, result: await this.#coordinator.status() });
          });
        case "df":
          this.#checkFreeId(id);
          return this.#spawn(id, async () => {
            await this.#writer.send({ op: "ok", id, result: await this.#coordinator.capacity() });
          });
      }
    } catch (error) {
      if (request.op === "put" && !this.#uploads.has(id) && !this.#tasks.has(id)) {
        this.#dropUpload(id);
      }
      await this.#sendError(id, error);
    }
  }

  /** Remembers a refused or failed upload so its data frames are dropped quietly. */
  #dropUpload(id: number): void {
    if (this.#failedUploads.size >= 2 * this.#limits.requestsInflightMax) {
      throw new DfsError("INVALID_REQUEST", "Too many refused uploads on this connection");
    }
    this.#failedUploads.add(id);
  }

  #checkFreeId(id: number): void {
    if (this.#uploads.has(id) || this.#tasks.has(id) || this.#failedUploads.has(id)) {
      throw new DfsError(
        "INVALID_REQUEST",
        `Request id ${id} is already in use on this connection`,
      );
    }
    const inflight = this.#uploads.size + this.#tasks.size + this.#failedUploads.size;
    if (inflight >= this.#limits.requestsInflightMax) {
      throw new DfsError(
        "UNAVAILABLE",
        `Connection is at its limit of ${this.#limits.requestsInflightMax} requests in flight`,
      );
    }
  }

  async #data(id: number, bytes: Uint8Array, crc32: number | undefined): Promise<void> {
    if (this.#failedUploads.has(id)) return this.#coordinator.pool.give(bytes.buffer);
    const upload = this.#uploads.get(id);
    if (!upload) throw new DfsError("INVALID_REQUEST", `No upload in progress with id ${id}`);
    try {
      await upload.write(bytes, crc32);
    } catch (error) {
      this.#uploads.delete(id);
      this.#dropUpload(id);
      await upload.abort();
      throw error;
    }
  }

  #end(id: number, sha256: string | undefined): void {
    if (this.#failedUploads.delete(id)) return; // already answered with its error
    const upload = this.#uploads.get(id);
    if (!upload) throw new DfsError("INVALID_REQUEST", `No upload in progress with id ${id}`);
    this.#uploads.delete(id);
    this.#spawn(id, async () => {
      const result = await upload.commit({ sha256 });
      await this.#writer.send({ op: "ok", id, result });
    });
  }

  #abort(id: number): void {
    if (this.#failedUploads.delete(id)) return;
    const upload = this.#uploads.get(id);
    if (!upload) return;
    this.#uploads.delete(id);
    this.#spawn(id, async () => {
      await upload.abort();
      await this.#writer.send({
        op: "error",
        id,
        code: "INVALID_REQUEST",
        message: "Upload aborted by the client",
      });
    });
  }

  async #get(
    id: number,
    request: { name: string; start?: number; end?: number },
  ): Promise<void> {
    const { name, start, end } = request;
    const reader = this.#coordinator.openRead(name, { start, end }, { budget: this.#readBudget });
    this.#readers.add(reader);
    try {
      if (reader.end - reader.start <= COALESCE_BYTES_MAX) {
        // A small read: its bytes first, then every frame of the answer in one write.
        const chunks: Uint8Array[] = [];
        for await (const chunk of reader.chunks()) chunks.push(chunk);
        await Promise.all([
          this.#writer.send({ op: "ok", id, result: reader.meta }),
          ...chunks.map((chunk) => this.#writer.sendData(id, chunk)),
          this.#writer.send({ op: "end", id }),
        ]);
        for (const chunk of chunks) reader.recycle(chunk);
        return;
      }
      await this.#writer.send({ op: "ok", id, result: reader.meta });
      for await (const chunk of reader.chunks()) {
        if (this.#closed) return;
        await this.#writer.sendData(id, chunk);
        reader.recycle(chunk);
      }
      await this.#writer.send({ op: "end", id });
    } finally {
      reader.close();
      this.#readers.delete(reader);
    }
  }

  async #list(id: number, prefix: string): Promise<void> {
    const entries = await this.#coordinator.list(prefix);
    // Pages are bounded by count and by bytes, so long names never make a frame too large.
    const pageBytesMax = this.#limits.frameSizeBytesMax / 2;
    let page: typeof entries = [];
    let pageBytes = 0;
    for (const entry of entries) {
      const bytes = utf8ByteLength(entry.name) + LIST_ENTRY_OVERHEAD_BYTES;
      if (page.length === LIST_PAGE_ENTRIES_MAX || pageBytes + bytes > pageBytesMax) {
        await this.#writer.send({ op: "entries", id, entries: page });
        page = [];
        pageBytes = 0;
      }
      page.push(entry);
      pageBytes += bytes;
    }
    if (page.length > 0) await this.#writer.send({ op: "entries", id, entries: page });
    await this.#writer.send({ op: "end", id });
  }

  /** Runs a request concurrently with the connection's reading; its error goes back to the client. */
  #spawn(id: number, work: () => Promise<void>): void {
    const task = work()
      .catch((error) => this.#sendError(id, error))
      .finally(() => this.#tasks.delete(id));
    this.#tasks.set(id, task);
  }

  async #sendError(id: number, error: unknown): Promise<void> {
    // A client that went away mid-request is no fault of the server's.
    if (this.#closed || isConnectionError(error)) return;
    if (!(error instanceof DfsError)) console.error("dfs: internal error:", error);
    try {
      await this.#writer.send({ op: "error", id, ...DfsError.wireOf(error) });
    } catch { /* the client is gone */ }
  }
}

/**
 * What can be told of a refused message (undefined when it was not even CBOR): its id when it
 * has a usable one, and whether it asked to start an upload.
 */
function describeRefused(decoded: unknown): { id: number | null; isPut: boolean } {
  const m = (typeof decoded === "object" && decoded !== null ? decoded : {}) as {
    id?: unknown;
    op?: unknown;
  };
  const id = m.id;
  const usable = typeof id === "number" && Number.isInteger(id) && id >= 0 && id <= 0xffff_ffff;
  return { id: usable ? id : null, isPut: m.op === "put" };
}
