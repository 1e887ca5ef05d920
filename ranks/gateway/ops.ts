/**
 * The CBOR gateway as a table: for each request op, the store call that serves it and the kind of
 * answer it gets. The session (`session.ts`) owns the connection and answers every op of a kind
 * the same way; this table holds no connection state and none of the store's logic. An HTTP or
 * S3 gateway is a second such table over the same `FileStore`.
 *
 * @module
 */

import type { FileMeta, ListEntry, Request } from "../../protocol/messages.ts";
import type { FileReader, StreamingFileStore, Upload } from "../common/file_store.ts";
import type { Semaphore } from "../common/semaphore.ts";

/** What an op is served with besides its request: the store and what the connection lends it. */
export interface OpContext {
  readonly store: StreamingFileStore;
  /** Shared by every read of the connection: bounds the chunks they have read ahead together. */
  readonly readBudget: Semaphore;
}

/** The request of one op, typed. */
export type RequestOf<O extends Request["op"]> = Extract<Request, { op: O }>;

/**
 * How one op is served: its store call, and by its kind the frames that answer it.
 *
 * - `call`: one `ok {result}`; runs alongside the connection's other requests.
 * - `list`: the store's pages as `entries` frames paged by count and bytes, each sent (to the
 *   socket) before the next page is asked for, then `end`.
 * - `read`: `ok {result: meta}`, the bytes in `data` frames, then `end`; or, when the reader has a
 *   route, `ok {result: meta, direct: route}` and the reader held until the client is done.
 * - `upload`: starts an upload under the request's id; nothing is answered until its `end`.
 * - `write`, `commit`, `abort`: the next step of the upload the id names. `write` is not
 *   answered (`drop` recycles a data frame of an upload that already failed); `commit` is
 *   answered `ok {result: meta}`; `abort` with an `INVALID_REQUEST` error.
 * - `upload` with `direct`: answered at once, `ok {plan}` when the store gives the upload a plan
 *   (the client writes the chunks to the nodes itself), else `ok` (the client sends data frames).
 * - `replace`, `progress`: a direct upload's steps: another node for a chunk (`ok {result}`), and
 *   word that the client is still writing (not answered).
 * - `fetch`, `done`: the next step of the direct read the id names (`direct_reads.ts`): a chunk
 *   through rank 0 (answered by a `data` or an `error` frame), or the read's end (not answered).
 */
export type Op<R extends Request> =
  | { kind: "call"; call(request: R, context: OpContext): Promise<unknown> }
  | { kind: "list"; call(request: R, context: OpContext): AsyncIterable<ListEntry[]> }
  | { kind: "read"; open(request: R, context: OpContext): FileReader }
  | { kind: "upload"; begin(request: R, context: OpContext): Upload }
  | {
    kind: "write";
    write(request: R, upload: Upload): Promise<void>;
    drop(request: R, context: OpContext): void;
  }
  | { kind: "commit"; commit(request: R, upload: Upload): Promise<FileMeta> }
  | { kind: "abort"; abort(request: R, upload: Upload): Promise<void> }
  | { kind: "fetch" }
  | { kind: "done" }
  | { kind: "replace" }
  | { kind: "progress" };

/** The CBOR protocol's table: one entry for every request op of `protocol/messages.ts`. */
export const CBOR_OPS: { readonly [O in Request["op"]]: Op<RequestOf<O>> } = {
  put: {
    kind: "upload",
    begin: (r, { store }) =>
      store.beginUpload(r.name, {
        size: r.size,
        replicas: r.replicas,
        checksums: r.checksums,
        ...(r.direct ? { direct: true } : {}),
      }),
  },
  data: {
    kind: "write",
    write: (r, upload) => upload.write(r.bytes, r.crc32),
    drop: (r, { store }) => store.pool.give(r.bytes.buffer),
  },
  end: {
    kind: "commit",
    commit: (r, upload) =>
      upload.commit({ sha256: r.sha256, ...(r.crc32s ? { crc32s: r.crc32s } : {}) }),
  },
  replace: { kind: "replace" },
  progress: { kind: "progress" },
  abort: { kind: "abort", abort: (_, upload) => upload.abort() },
  get: {
    kind: "read",
    open: (r, { store, readBudget }) =>
      store.openRead(r.name, { start: r.start, end: r.end }, {
        budget: readBudget,
        ...(r.direct ? { direct: true } : {}),
      }),
  },
  fetch: { kind: "fetch" },
  done: { kind: "done" },
  meta: { kind: "call", call: (r, { store }) => store.meta(r.name) },
  list: {
    kind: "list",
    call: (r, { store }) => store.listPages(r.prefix, { after: r.after, limit: r.limit }),
  },
  rm: {
    kind: "call",
    call: async (r, { store }) => {
      if ("prefix" in r) return { removed: await store.removePrefix(r.prefix) };
      await store.remove(r.name);
      return { removed: 1 };
    },
  },
  mv: { kind: "call", call: (r, { store }) => store.rename(r.from, r.to, { force: r.force }) },
  du: { kind: "call", call: (r, { store }) => store.usage(r.prefix) },
  df: { kind: "call", call: (_, { store }) => store.capacity() },
  fsck: { kind: "call", call: (_, { store }) => store.fsck() },
  status: { kind: "call", call: (_, { store }) => store.status() },
  doctor: { kind: "call", call: (r, { store }) => store.doctor(r.target) },
};

/** The table's entry for `request`'s op. */
export function opOf(request: Request): Op<Request> {
  // Each entry takes its own op's request; TypeScript cannot follow that through the index.
  return CBOR_OPS[request.op] as Op<Request>;
}
