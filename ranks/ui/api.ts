/**
 * The dashboard's JSON API: a table from request to store call, over any `StreamingFileStore`
 * that also counts its throughput (rank 0's `DfsStore`). Who may call it (sessions, the header
 * that mutating calls carry) is `dashboard.ts`'s concern; this module only reads requests and
 * answers them.
 *
 * | route | store call | answer |
 * | --- | --- | --- |
 * | `GET /api/status` | `status()` | the status report |
 * | `GET /api/capacity` | `capacity()` | `{ nodes, totals: { heldBytes, totalBytes, availableBytes } }` |
 * | `GET /api/throughput` | `throughput.snapshot()` | ops and bytes per second, oldest first |
 * | `GET /api/list?prefix&after&limit` | `list()` | `{ prefix, rows, next? }` (see `listing.ts`) |
 * | `GET /api/meta?name` | `meta()` | the file's metadata, with each chunk's replicas |
 * | `GET /api/file?name` | `open()` | the bytes, as an attachment |
 * | `PUT /api/file?name` | `beginUpload()`, `write()`, `commit()` | 201 and the metadata |
 * | `DELETE /api/file?name` | `remove()` | `{ removed: name }` |
 *
 * Names are checked as the CBOR gateway checks them (`protocol/names.ts`), and refused with its
 * message before the store is asked.
 *
 * @module
 */

import { DfsError } from "../../protocol/errors.ts";
import { FILE_SIZE_BYTES_MAX, NAME_BYTES_MAX } from "../../protocol/limits.ts";
import { utf8ByteLength, validateName, validatePrefix } from "../../protocol/names.ts";
import type { RankCapacity, StreamingFileStore } from "../common/file_store.ts";
import type { Clock } from "../env/env.ts";
import type { ThroughputSnapshot } from "../rank0/throughput.ts";
import { attachmentOf, HttpError, json } from "./http.ts";
import {
  UI_BODY_STALL_TIMEOUT_MS,
  UI_LIST_PAGE_DEFAULT,
  UI_LIST_PAGE_MAX,
  UI_UPLOADS_INFLIGHT_MAX,
} from "./limits.ts";
import { listFolder } from "./listing.ts";

/** What the dashboard serves: a store that also says its throughput. */
export type UiStore = StreamingFileStore & {
  readonly throughput: { snapshot(): ThroughputSnapshot };
};

/** One API call: what it answers, and whether it changes the store (and so needs more proof). */
export interface ApiRoute {
  mutates: boolean;
  call(request: Request, query: URLSearchParams): Promise<Response>;
}

/** Options of `new UiApi()`. */
export interface UiApiOptions {
  /** Times an upload body's stalls. */
  clock: Pick<Clock, "setTimeout" | "clearTimeout">;
  /** An upload body that brings nothing for this long fails (default UI_BODY_STALL_TIMEOUT_MS). */
  bodyStallTimeoutMs?: number;
  /** Uploads in progress at once (default UI_UPLOADS_INFLIGHT_MAX). */
  uploadsMax?: number;
}

/** The API's calls over one store. */
export class UiApi {
  #store: UiStore;
  #clock: UiApiOptions["clock"];
  #stallMs: number;
  #uploadsMax: number;
  #uploads = 0;

  constructor(store: UiStore, options: UiApiOptions) {
    this.#store = store;
    this.#clock = options.clock;
    this.#stallMs = options.bodyStallTimeoutMs ?? UI_BODY_STALL_TIMEOUT_MS;
    this.#uploadsMax = options.uploadsMax ?? UI_UPLOADS_INFLIGHT_MAX;
  }

  /** The route of `method` on `path`: undefined for no such path, `"method"` for another method. */
  route(method: string, path: string): ApiRoute | "method" | undefined {
    if (!Object.hasOwn(this.#routes, path)) return undefined;
    const byMethod = this.#routes[path];
    return Object.hasOwn(byMethod, method) ? byMethod[method] : "method";
  }

  #routes: Record<string, Record<string, ApiRoute>> = {
    "/api/status": { GET: this.#read(async () => json(await this.#store.status())) },
    "/api/capacity": { GET: this.#read(() => this.#capacity()) },
    "/api/throughput": {
      GET: this.#read(() => Promise.resolve(json(this.#store.throughput.snapshot()))),
    },
    "/api/list": { GET: this.#read((_, query) => this.#list(query)) },
    "/api/meta": {
      GET: this.#read(async (_, query) => json(await this.#store.meta(nameOf(query)))),
    },
    "/api/file": {
      GET: this.#read((_, query) => this.#download(query)),
      PUT: { mutates: true, call: (request, query) => this.#upload(request, query) },
      DELETE: { mutates: true, call: (_, query) => this.#remove(query) },
    },
  };

  #read(call: ApiRoute["call"]): ApiRoute {
    return { mutates: false, call };
  }

  /** Each node's bytes held and its disk, and the totals (a disk shared by nodes counts once). */
  async #capacity(): Promise<Response> {
    const nodes = await this.#store.capacity();
    const disks = new Map<string, RankCapacity>();
    for (const node of nodes) disks.set(String(node.device ?? `rank ${node.rank}`), node);
    const sum = (values: Iterable<RankCapacity>, of: (node: RankCapacity) => number) =>
      [...values].reduce((total, node) => total + of(node), 0);
    return json({
      nodes,
      totals: {
        heldBytes: sum(nodes, (node) => node.bytesHeld),
        totalBytes: sum(disks.values(), (node) => node.totalBytes),
        availableBytes: sum(disks.values(), (node) => node.availableBytes),
      },
    });
  }

  async #list(query: URLSearchParams): Promise<Response> {
    const prefix = validatePrefix(query.get("prefix") ?? "");
    const after = query.get("after") ?? undefined;
    if (after !== undefined) checkCursor(after);
    const limitText = query.get("limit");
    const limit = limitText === null ? UI_LIST_PAGE_DEFAULT : Number(limitText);
    if (!/^\d+$/.test(limitText ?? "1") || limit < 1 || limit > UI_LIST_PAGE_MAX) {
      throw new HttpError(
        400,
        "INVALID_REQUEST",
        `limit must be a whole number from 1 to ${UI_LIST_PAGE_MAX}, got "${limitText}"`,
      );
    }
    const fetch = (prefix: string, options: { after?: string; limit?: number }) =>
      this.#store.list(prefix, options);
    return json(await listFolder(fetch, prefix, { after, limit }));
  }

  async #download(query: URLSearchParams): Promise<Response> {
    const { meta, stream } = await this.#store.open(nameOf(query));
    return new Response(stream, {
      headers: {
        "content-type": "application/octet-stream",
        "content-length": String(meta.size),
        "content-disposition": attachmentOf(meta.name),
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
      },
    });
  }

  /**
   * Streams the body into an upload of its declared length (`content-length`, required), and
   * commits it once the whole body came; any failure aborts it, storing nothing.
   */
  async #upload(request: Request, query: URLSearchParams): Promise<Response> {
    const name = nameOf(query);
    const size = declaredSizeOf(request.headers.get("content-length"));
    if (this.#uploads >= this.#uploadsMax) {
      throw new DfsError(
        "UNAVAILABLE",
        `The dashboard is at its limit of ${this.#uploadsMax} uploads in progress; try again later`,
      );
    }
    this.#uploads++;
    try {
      const upload = this.#store.beginUpload(name, { size });
      try {
        for await (const piece of piecesOf(request, this.#stallMs, this.#clock)) {
          await upload.write(owned(piece));
        }
        return json(await upload.commit(), { status: 201 });
      } catch (error) {
        await upload.abort();
        throw error;
      }
    } finally {
      this.#uploads--;
    }
  }

  async #remove(query: URLSearchParams): Promise<Response> {
    const name = nameOf(query);
    await this.#store.remove(name);
    return json({ removed: name });
  }
}

/** The `name` parameter, checked as every gateway checks names. */
function nameOf(query: URLSearchParams): string {
  const name = query.get("name");
  if (name === null) throw new HttpError(400, "INVALID_REQUEST", "The name parameter is missing");
  return validateName(name);
}

/** A list cursor: a row's key (a name, or a folder ending in `/`). */
function checkCursor(after: string): void {
  if (!after.isWellFormed() || utf8ByteLength(after) > NAME_BYTES_MAX) {
    throw new HttpError(
      400,
      "INVALID_REQUEST",
      `after must be a name of at most ${NAME_BYTES_MAX} UTF-8 bytes`,
    );
  }
}

/** An upload's size from its `content-length`. */
function declaredSizeOf(header: string | null): number {
  if (header === null) {
    throw new HttpError(411, "LENGTH_REQUIRED", "An upload needs a content-length");
  }
  const size = Number(header);
  if (!/^\d+$/.test(header) || !Number.isSafeInteger(size)) {
    throw new HttpError(400, "INVALID_REQUEST", `content-length ${header} is not a size`);
  }
  if (size > FILE_SIZE_BYTES_MAX) {
    throw new DfsError(
      "TOO_LARGE",
      `An upload of ${size} bytes is over the limit of ${FILE_SIZE_BYTES_MAX}`,
    );
  }
  return size;
}

/**
 * The pieces of a request's body; fails when none comes for `stallMs`, or when the body breaks
 * off (the browser went away, or cancelled).
 */
async function* piecesOf(
  request: Request,
  stallMs: number,
  clock: UiApiOptions["clock"],
): AsyncGenerator<Uint8Array> {
  if (request.body === null) return;
  const reader = request.body.getReader();
  try {
    while (true) {
      let timer: unknown;
      const stalled = new Promise<never>((_, reject) => {
        timer = clock.setTimeout(
          () =>
            reject(new HttpError(408, "REQUEST_TIMEOUT", `No body bytes came for ${stallMs} ms`)),
          stallMs,
        );
      });
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await Promise.race([reader.read(), stalled]);
      } catch (error) {
        if (error instanceof HttpError) throw error;
        throw new HttpError(
          400,
          "INCOMPLETE_BODY",
          `The upload's body broke off: ${(error as Error).message}`,
        );
      } finally {
        clock.clearTimeout(timer);
      }
      if (next.done) return;
      yield next.value;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** A piece whose buffer is its own (an upload takes ownership, and may move the buffer). */
function owned(piece: Uint8Array): Uint8Array {
  return piece.byteOffset === 0 && piece.byteLength === piece.buffer.byteLength
    ? piece
    : piece.slice();
}
