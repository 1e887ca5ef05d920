/**
 * One client connection: the handshake and the shared-secret challenge, the handshake, idle,
 * write-stall and upload-stall timers, the frame loop that hands each request to its entry in the
 * op table (`ops.ts`), the connection's state (uploads in progress and their share of the upload
 * slots, failed uploads, requests in flight, open reads, the read budget), what the listener asks
 * of it to pick a connection to close (`greeted`, `busy`, `activeAt`, `evict()`), and errors put
 * on the wire. Requests on different names never wait for each other.
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
  type ByteStream,
  closeQuietly,
  FrameReader,
  FrameWriter,
  isConnectionError,
} from "../../protocol/conn.ts";
import { DfsError } from "../../protocol/errors.ts";
import { decodeFrameBody } from "../../protocol/frame.ts";
import { CHUNK_SIZE_BYTES, PROTOCOL_VERSION } from "../../protocol/limits.ts";
import { parseHello, parseRequest, type Request } from "../../protocol/messages.ts";
import {
  READ_CHUNKS_INFLIGHT_MAX,
  type StreamingFileStore,
  type Upload,
} from "../common/file_store.ts";
import { Semaphore } from "../common/semaphore.ts";
import { sendEntries, sendRead } from "./_replies.ts";
import { SharedUpload } from "./_shared_upload.ts";
import type { ServerLimits } from "../config.ts";
import { systemClock } from "../env/system.ts";
import type { Clock, TimerHandle } from "../env/env.ts";
import { FAILED_UPLOADS_PER_REQUEST_MAX, SERVER_NAME } from "./limits.ts";
import { type Op, type OpContext, opOf, type RequestOf } from "./ops.ts";
import { DirectReads } from "./direct_reads.ts";
import { answerPlan, answerReplace } from "./direct_uploads.ts";

/** What a session needs of its socket: a `Deno.Conn`, or any byte stream in a test. */
export type SessionStream = ByteStream & { close(): void };

export interface SessionOptions {
  limits: ServerLimits;
  /** The clock of the handshake and idle timers (default: the system's). */
  clock?: Clock;
  /** Shared secret: the client must answer the hello's challenge with an HMAC of it. */
  secret?: Uint8Array;
  /**
   * The client address's share of uploads in progress (`uploadsPerAddressMax`), shared with the
   * address's other connections; none: only the connection's own share applies.
   */
  addressUploadShare?: Semaphore;
}

/** An upload to start: its name, how, and whether its client asked for a direct plan. */
interface UploadStart {
  name: string;
  begin: () => Upload;
  direct?: boolean;
}

/** One client connection, served from `run()` until the client leaves or `close()`. */
export class Session {
  #conn: SessionStream;
  #limits: ServerLimits;
  #secret: Uint8Array | undefined;
  #context: OpContext;
  #reader: FrameReader;
  #writer: FrameWriter;
  #uploads = new Map<number, SharedUpload>();
  /** The connection's share of uploads in progress (`uploadsPerConnectionMax`). */
  #uploadShare: Semaphore;
  #addressUploadShare: Semaphore | undefined;
  /** Whether a put is waiting for a slot of a share (the frame loop waits with it). */
  #waitingForShare = false;
  /** Gives up the wait of that put, if any: the connection is closing. */
  #abandonWait: (() => void) | null = null;
  /** Fails uploads that receive no data for `uploadStallTimeoutMs`. */
  #stallTimer: TimerHandle | undefined;
  /**
   * The time the frame loop spent waiting for the server's upload windows, and since when it has
   * been waiting now: the client could send nothing meanwhile, so that time is no upload's stall.
   */
  #heldMs = 0;
  #heldSince: number | null = null;
  #greeted = false;
  /** Set by `evict()`: nothing more is served, and the connection closes once this is sent. */
  #farewell: Promise<void> | null = null;
  /** Ids of uploads that failed: their remaining data frames are dropped until `end` or `abort`. */
  #failedUploads = new Set<number>();
  #tasks = new Map<number, Promise<void>>();
  #readers = new Set<{ close(): void }>();
  #direct: DirectReads;
  #closed = false;
  #finished: Promise<void> | null = null;
  #clock: Clock;
  #timer: TimerHandle | undefined;
  /** The quiet time after which `#timer` closes the connection, and when it was last active. */
  #idleMs = 0;
  #activeAt = 0;

  constructor(conn: SessionStream, store: StreamingFileStore, options: SessionOptions) {
    this.#conn = conn;
    this.#limits = options.limits;
    this.#clock = options.clock ?? systemClock;
    this.#activeAt = this.#clock.monotonic();
    this.#secret = options.secret;
    this.#uploadShare = new Semaphore(this.#limits.uploadsPerConnectionMax);
    this.#addressUploadShare = options.addressUploadShare;
    this.#context = {
      store,
      // All of the connection's gets share one read's budget: one get reads ahead as far as
      // one in-process, and many on one connection hold no more memory.
      readBudget: new Semaphore(READ_CHUNKS_INFLIGHT_MAX),
    };
    this.#reader = new FrameReader(conn, {
      frameSizeBytesMax: this.#limits.frameSizeBytesMax,
      pool: store.pool,
    });
    this.#writer = new FrameWriter(conn, {
      stallTimeoutMs: this.#limits.writeTimeoutMs,
      onStall: () => this.#shut(),
    });
    this.#direct = new DirectReads(this.#writer, this.#clock, this.#context.readBudget);
  }

  run(): Promise<void> {
    this.#finished = this.#run();
    return this.#finished;
  }

  async close(): Promise<void> {
    this.#shut();
    await this.#finished;
  }

  /** Whether the client finished the handshake (and the shared secret's challenge). */
  get greeted(): boolean {
    return this.#greeted;
  }

  /** Whether a request is in flight: an upload, a put waiting for its share, a call, list or get. */
  get busy(): boolean {
    return this.#uploads.size > 0 || this.#tasks.size > 0 || this.#waitingForShare;
  }

  /** When the connection last read a frame (or was accepted), on its clock's monotonic ms. */
  get activeAt(): number {
    return this.#activeAt;
  }

  /**
   * Closes the connection to make room for another: serves nothing more, tells the client `reason`
   * in an error frame with id 0, then closes. For a connection that is not `busy`.
   */
  evict(reason: DfsError): void {
    if (this.#closed || this.#farewell) return;
    this.#farewell = this.#writer.send({ op: "error", id: 0, ...reason.toWire() })
      .catch(() => {}) // the client is gone
      .then(() => this.#shut());
  }

  async #run(): Promise<void> {
    try {
      this.#arm(this.#limits.handshakeTimeoutMs);
      const hello = await this.#reader.read();
      if (hello === null || this.#farewell) return;
      parseHello(decodeFrameBody(hello), PROTOCOL_VERSION);
      const challenge = this.#secret ? newNonce() : undefined;
      await this.#writer.send({
        op: "hello",
        version: PROTOCOL_VERSION,
        server: SERVER_NAME,
        chunkSizeBytes: CHUNK_SIZE_BYTES,
        frameSizeBytesMax: this.#limits.frameSizeBytesMax,
        challenge,
        plans: true,
      });
      if (challenge && !await this.#authenticate(this.#secret!, challenge)) return;
      this.#greeted = true;
      while (!this.#closed) {
        this.#arm(this.#limits.idleTimeoutMs);
        const body = await this.#reader.read();
        if (body === null || this.#farewell) break;
        await this.#dispatch(body);
      }
    } catch (error) {
      if (!this.#closed && !this.#farewell) await this.#sendError(0, error);
    } finally {
      await this.#farewell;
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
    if (body === null || this.#farewell) return false;
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
    this.#activeAt = this.#clock.monotonic();
    if (this.#timer !== undefined && ms === this.#idleMs) return;
    this.#clock.clearTimeout(this.#timer);
    this.#idleMs = ms;
    this.#schedule(ms);
  }

  #schedule(ms: number): void {
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      const quiet = this.#clock.monotonic() - this.#activeAt;
      if (quiet < this.#idleMs) return this.#schedule(this.#idleMs - quiet);
      // Gets and commits in progress keep it open (a stalled reader meets the write timeout), and
      // so does a put waiting for its share; an upload that has sent nothing for this long does not.
      if (this.#tasks.size === 0 && !this.#waitingForShare) this.#shut();
      else this.#arm(this.#idleMs);
    }, ms);
  }

  #shut(): void {
    this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#clock.clearTimeout(this.#stallTimer);
    this.#stallTimer = undefined;
    this.#abandonWait?.();
    this.#direct.close();
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
    const op = opOf(request);
    try {
      // Only a data frame's write (its window holds the socket) and a put over its share are
      // waited for; everything else is answered from a task of its own, so the next frame is
      // read at once.
      const writing = this.#serve(request, op);
      if (writing) await writing;
    } catch (error) {
      const { id } = request;
      if (op.kind === "upload" && !this.#uploads.has(id) && !this.#tasks.has(id)) {
        this.#dropUpload(id);
      }
      await this.#sendError(id, error);
    }
  }

  /** Serves `request` as its op's kind says (see `Op` in `ops.ts`); a write returns its promise. */
  #serve(request: Request, op: Op<Request>): Promise<void> | void {
    const { id } = request;
    const context = this.#context;
    switch (op.kind) {
      case "upload":
        this.#checkFreeId(id);
        return this.#beginUpload(id, {
          name: "name" in request ? request.name : "",
          begin: () => op.begin(request, context),
          direct: request.op === "put" && request.direct === true,
        });
      case "write":
        if (this.#failedUploads.has(id)) return op.drop(request, context);
        return this.#write(id, (upload) => op.write(request, upload));
      case "commit":
        return this.#end(id, (upload) => op.commit(request, upload));
      case "abort":
        return this.#abort(id, (upload) => op.abort(request, upload));
      case "replace": {
        const upload = this.#uploadOf(id);
        upload.activeAt = this.#clientNow();
        return answerReplace(this.#writer, request as RequestOf<"replace">, upload, this.#failed);
      }
      case "progress":
        return void (this.#uploadOf(id).activeAt = this.#clientNow());
      case "fetch":
        return this.#direct.fetch(id, (request as RequestOf<"fetch">).index);
      case "done":
        return this.#direct.done(id);
      case "call":
        this.#checkFreeId(id);
        return this.#spawn(
          id,
          () =>
            op.call(request, context).then((result) => this.#writer.send({ op: "ok", id, result })),
        );
      case "list":
        this.#checkFreeId(id);
        return this.#spawn(id, async () => {
          const pages = op.call(request, context);
          const pageBytesMax = this.#limits.frameSizeBytesMax / 2;
          await sendEntries(this.#writer, id, pages, { pageBytesMax, closed: () => this.#closed });
        });
      case "read":
        this.#checkFreeId(id);
        return this.#spawn(id, async () => {
          const reader = op.open(request, context);
          this.#readers.add(reader);
          try {
            if (reader.route) await this.#direct.serve(id, reader);
            else await sendRead(this.#writer, id, reader, () => this.#closed);
          } finally {
            reader.close();
            this.#readers.delete(reader);
          }
        });
    }
  }

  /**
   * Starts upload `id` with a slot of the connection's upload share and one of its address's.
   * While either share is full, the returned promise holds the frame loop until a slot is free:
   * a client over its share slows only itself, and its data frames wait in the socket.
   */
  #beginUpload(id: number, upload: UploadStart): Promise<void> | void {
    if (this.#uploadShare.tryAcquire()) {
      if (this.#addressUploadShare?.tryAcquire() ?? true) return this.#startUpload(id, upload);
      this.#uploadShare.release();
    }
    return this.#beginUploadWhenShared(id, upload);
  }

  async #beginUploadWhenShared(
    id: number,
    upload: UploadStart,
  ): Promise<void> {
    this.#waitingForShare = true;
    try {
      if (!await this.#acquire(this.#uploadShare)) return;
      const address = this.#addressUploadShare;
      if (address && !await this.#acquire(address)) return this.#uploadShare.release();
    } finally {
      this.#waitingForShare = false;
    }
    this.#startUpload(id, upload);
  }

  /** Begins upload `id`, which holds a slot of both shares; they go back if it cannot begin. */
  #startUpload(id: number, upload: UploadStart): void {
    const release = () => {
      this.#uploadShare.release();
      this.#addressUploadShare?.release();
    };
    let begun: Upload;
    try {
      begun = upload.begin();
    } catch (error) {
      release();
      throw error;
    }
    const activeAt = this.#clientNow();
    const shared = new SharedUpload(begun, { name: upload.name, release, activeAt });
    this.#uploads.set(id, shared);
    this.#watchStalls(this.#limits.uploadStallTimeoutMs);
    if (!upload.direct) return;
    answerPlan(this.#writer, id, shared, async (_id, error) => {
      if (this.#uploads.get(id) === shared) this.#uploads.delete(id);
      await this.#failed(id, error);
    });
  }

  /** Waits for a permit of `share`; false, with no permit, if the connection closes first. */
  #acquire(share: Semaphore): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      let state: "waiting" | "given" | "abandoned" = "waiting";
      this.#abandonWait = () => {
        if (state !== "waiting") return;
        state = "abandoned";
        resolve(false);
      };
      void share.acquire().then(() => {
        if (state === "abandoned") return share.release(); // nobody takes it: give it back
        state = "given";
        this.#abandonWait = null;
        resolve(true);
      });
    });
  }

  /**
   * The time the client has had to send frames, in ms: the clock's, less the time the frame loop
   * spent waiting for the server's upload windows.
   */
  #clientNow(): number {
    return (this.#heldSince ?? this.#clock.monotonic()) - this.#heldMs;
  }

  /**
   * Fails each upload that has received no data for `uploadStallTimeoutMs` of client time, from
   * one timer that, when it fires, looks at every upload and is set again for the next one due.
   */
  #watchStalls(ms: number): void {
    if (this.#stallTimer !== undefined || this.#closed) return;
    this.#stallTimer = this.#clock.setTimeout(() => {
      this.#stallTimer = undefined;
      const limitMs = this.#limits.uploadStallTimeoutMs;
      const now = this.#clientNow();
      let next = limitMs;
      for (const [id, upload] of this.#uploads) {
        const quiet = now - upload.activeAt;
        if (quiet < limitMs) next = Math.min(next, limitMs - quiet);
        else this.#failStalled(id, upload);
      }
      if (this.#uploads.size > 0) this.#watchStalls(next);
    }, ms);
  }

  /**
   * Fails a stalled upload: its remaining frames are dropped, it is aborted (giving its slots
   * back), then its client is told why.
   */
  #failStalled(id: number, upload: SharedUpload): void {
    this.#uploads.delete(id);
    // In the upload's place among the requests in flight, until the client ends or aborts it.
    this.#failedUploads.add(id);
    const error = new DfsError(
      "UNAVAILABLE",
      `Upload of "${upload.name}" failed: no data arrived for ` +
        `${this.#limits.uploadStallTimeoutMs} ms`,
    );
    this.#spawn(id, async () => {
      await upload.abort();
      throw error;
    });
  }

  /** Remembers a refused or failed upload so its data frames are dropped quietly. */
  #dropUpload(id: number): void {
    if (
      this.#failedUploads.size >= FAILED_UPLOADS_PER_REQUEST_MAX * this.#limits.requestsInflightMax
    ) {
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

  /** Feeds upload `id`; a failed write aborts it and drops the rest of its frames. */
  async #write(id: number, write: (upload: Upload) => Promise<void>): Promise<void> {
    const upload = this.#uploadOf(id);
    // The write holds the frame loop while the upload's windows are full: the client's clock
    // stops meanwhile.
    const arrived = this.#clock.monotonic();
    upload.activeAt = arrived - this.#heldMs;
    this.#heldSince = arrived;
    try {
      await write(upload);
    } catch (error) {
      this.#uploads.delete(id);
      this.#dropUpload(id);
      await upload.abort();
      throw error;
    } finally {
      this.#heldMs += this.#clock.monotonic() - arrived;
      this.#heldSince = null;
    }
  }

  #end(id: number, commit: (upload: Upload) => Promise<unknown>): void {
    if (this.#failedUploads.delete(id)) return; // already answered with its error
    const upload = this.#uploadOf(id);
    this.#uploads.delete(id);
    this.#spawn(id, async () => {
      const result = await commit(upload);
      await this.#writer.send({ op: "ok", id, result });
    });
  }

  #abort(id: number, abort: (upload: Upload) => Promise<void>): void {
    if (this.#failedUploads.delete(id)) return;
    const upload = this.#uploads.get(id);
    if (!upload) return;
    this.#uploads.delete(id);
    this.#spawn(id, async () => {
      await abort(upload);
      await this.#writer.send({
        op: "error",
        id,
        code: "INVALID_REQUEST",
        message: "Upload aborted by the client",
      });
    });
  }

  #uploadOf(id: number): SharedUpload {
    const upload = this.#uploads.get(id);
    if (!upload) throw new DfsError("INVALID_REQUEST", `No upload in progress with id ${id}`);
    return upload;
  }

  /** Runs a request concurrently with the connection's reading; its error goes back to the client. */
  #spawn(id: number, work: () => Promise<void>): void {
    const task = work()
      .catch((error) => this.#sendError(id, error))
      .finally(() => this.#tasks.delete(id));
    this.#tasks.set(id, task);
  }

  #failed = (id: number, error: unknown) => this.#sendError(id, error);

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
