/**
 * The S3 gateway: the store's second gateway beside the CBOR one, answering the S3 REST API
 * (path-style: `/bucket/key`) over any `StreamingFileStore`. Every request is signed (`sigv4.ts`);
 * an object's bytes stream in and out with the store's own bounds; a PUT commits only once the
 * whole body arrived and every checksum it carries held, so a failed one stores nothing.
 *
 * Implemented: ListBuckets; Create, Head and Delete bucket; GetBucketLocation; ListObjectsV2 and
 * ListObjects; PutObject; GetObject (ranges, conditions); HeadObject; DeleteObject; DeleteObjects;
 * CopyObject; multipart uploads (`multipart.ts`). Anything else answers `501 NotImplemented` as
 * XML.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { DfsError } from "../../protocol/errors.ts";
import type { FileMeta } from "../../protocol/messages.ts";
import type { StreamingFileStore } from "../common/file_store.ts";
import { readerStream, readWhole } from "../common/reader_stream.ts";
import type { Clock, Log, TimerHandle } from "../env/env.ts";
import type { Buckets } from "./buckets.ts";
import {
  fetchFromStore,
  type ListingFetch,
  listObjectsResult,
  listPage,
  parseListQuery,
} from "./listing.ts";
import { dfsNameOf, validateBucketName } from "./names.ts";
import {
  attrsOf,
  checkPreconditions,
  etagOf,
  headersOfAttrs,
  httpDate,
  rangeOf,
  userMetadataOf,
} from "./objects.ts";
import { ERROR_CONTENT_TYPE, errorHasBody, errorXml, S3Error, s3ErrorOf } from "./s3_error.ts";
import { type BodyPayload, storeBody } from "./body.ts";
import { Multipart, UPLOAD_SWEEP_INTERVAL_MS } from "./multipart.ts";
import { splitRequestTarget, verifyRequest } from "./sigv4.ts";
import {
  BODY_STALL_TIMEOUT_MS,
  copySourceOf,
  declaredSizeOf,
  notImplemented,
  owned,
  PUT_OBJECT_BYTES_MAX,
  readSmallBody,
  safeDecode,
  subresourceOf,
  type Target,
  targetOf,
  withoutChunkedEncoding,
} from "./request.ts";
import { parseCreateBucketConfiguration, parseDeleteObjects } from "./xml_requests.ts";
import {
  copyObjectResultXml,
  deleteResultXml,
  listAllMyBucketsXml,
  listBucketResultXml,
  locationConstraintXml,
  type Owner,
} from "./xml_responses.ts";

/**
 * Objects (or ranges) up to this many bytes are read whole and answered as one buffer; larger
 * ones stream, a chunk at a time.
 */
export const SMALL_OBJECT_BYTES_MAX = 64 * 1024;

const XML = { "content-type": "application/xml" };
const OWNER: Owner = { id: "dfs", displayName: "dfs" };

/** What the gateway serves and checks requests with. */
export interface S3GatewayOptions {
  store: StreamingFileStore;
  buckets: Buckets;
  /** Access key id to secret. */
  credentials: ReadonlyMap<string, string>;
  region: string;
  clock: Clock;
  log: Log;
  /** A body that brings nothing for this long fails; default `BODY_STALL_TIMEOUT_MS`. */
  bodyStallTimeoutMs?: number;
}

/** Answers S3 requests over a store. */
export class S3Gateway {
  #store: StreamingFileStore;
  #buckets: Buckets;
  #credentials: ReadonlyMap<string, string>;
  #region: string;
  #clock: Clock;
  #log: Log;
  #stallMs: number;
  #multipart: Multipart;

  constructor(options: S3GatewayOptions) {
    this.#store = options.store;
    this.#buckets = options.buckets;
    this.#credentials = options.credentials;
    this.#region = options.region;
    this.#clock = options.clock;
    this.#log = options.log;
    this.#stallMs = options.bodyStallTimeoutMs ?? BODY_STALL_TIMEOUT_MS;
    this.#multipart = new Multipart({ store: this.#store, owner: OWNER, stallMs: this.#stallMs });
  }

  /**
   * Drops multipart uploads left idle (`UPLOAD_IDLE_EXPIRY_MS`) now and every
   * `UPLOAD_SWEEP_INTERVAL_MS`, saying so on the log, until the returned function is called (it
   * waits for a sweep under way).
   */
  sweepUploads(): () => Promise<void> {
    let timer: TimerHandle | undefined;
    let running: Promise<void> = Promise.resolve();
    let stopped = false;
    const sweep = async () => {
      try {
        const dropped = await this.#multipart.sweep(this.#clock.now());
        if (dropped > 0) {
          this.#log.error(`dfs: the S3 gateway dropped ${dropped} multipart upload(s) left idle`);
        }
      } catch (error) {
        if (!stopped) {
          this.#log.error("dfs: the S3 gateway could not drop idle multipart uploads:", error);
        }
      }
      if (!stopped) timer = this.#clock.setTimeout(start, UPLOAD_SWEEP_INTERVAL_MS);
    };
    const start = () => void (running = sweep());
    timer = this.#clock.setTimeout(start, 0);
    return async () => {
      stopped = true;
      this.#clock.clearTimeout(timer);
      await running;
    };
  }

  /**
   * Answers one request; never throws (every failure is an S3 error answer). The size of its head
   * was bounded by the HTTP server (`HTTP_HEAD_BYTES_MAX`) before it got here.
   */
  async handle(request: Request): Promise<Response> {
    const requestId = crypto.randomUUID().replaceAll("-", "").slice(0, 16).toUpperCase();
    let resource = "/";
    try {
      const { path, query } = splitRequestTarget(request.url);
      resource = safeDecode(path);
      const verified = verifyRequest(
        { method: request.method, path, query, headers: request.headers },
        {
          now: this.#clock.now(),
          credentials: (id) => this.#credentials.get(id),
          region: this.#region,
        },
      );
      const target = targetOf(request, path, new URLSearchParams(query));
      const response = await this.#route(target, request, verified.payload);
      response.headers.set("x-amz-request-id", requestId);
      return response;
    } catch (error) {
      const s3 = s3ErrorOf(error, resource);
      if (s3.code === "InternalError") {
        this.#log.error(`dfs: S3 request ${requestId} failed:`, error);
      }
      const headers = new Headers({ "x-amz-request-id": requestId });
      if (!errorHasBody(s3, request.method)) {
        return new Response(null, { status: s3.status, headers });
      }
      headers.set("content-type", ERROR_CONTENT_TYPE);
      return new Response(errorXml(s3, requestId), { status: s3.status, headers });
    }
  }

  #route(
    target: Target,
    request: Request,
    payload: BodyPayload,
  ): Promise<Response> {
    const { method, bucket, key, query } = target;
    if (bucket === undefined) {
      if (method === "GET") return this.#listBuckets();
      throw new S3Error("MethodNotAllowed");
    }
    if (key === undefined) {
      const sub = subresourceOf(query, ["location", "delete", "uploads", "list-type"]);
      if (method === "GET" && sub === "location") return this.#location(bucket);
      if (method === "GET" && (sub === undefined || sub === "list-type")) {
        return this.#listObjects(bucket, query);
      }
      if (method === "PUT" && sub === undefined) return this.#createBucket(bucket, request);
      if (method === "HEAD" && sub === undefined) return this.#headBucket(bucket);
      if (method === "DELETE" && sub === undefined) return this.#deleteBucket(bucket);
      if (method === "POST" && sub === "delete") return this.#deleteObjects(bucket, request);
      if (method === "GET" && sub === "uploads") {
        this.#needBucket(bucket);
        return this.#multipart.listUploads(bucket, query);
      }
      throw notImplemented(method, query);
    }
    const sub = subresourceOf(query, []);
    if (sub === "uploads" || sub === "uploadId" || sub === "partNumber") {
      return this.#routeMultipart(target, request, payload);
    }
    if (sub !== undefined) throw notImplemented(method, query);
    if (method === "PUT" && request.headers.has("x-amz-copy-source")) {
      return this.#copyObject(target);
    }
    if (method === "PUT") return this.#putObject(target, request, payload);
    if (method === "GET" || method === "HEAD") return this.#getObject(target);
    if (method === "DELETE") return this.#deleteObject(target);
    throw notImplemented(method, query);
  }

  #routeMultipart(target: Target, request: Request, payload: BodyPayload): Promise<Response> {
    const { method, bucket, key, query } = target as Required<Target>;
    this.#needBucket(bucket);
    const uploadId = query.get("uploadId");
    if (method === "POST" && query.has("uploads") && uploadId === null) {
      return this.#multipart.create(bucket, key, request.headers);
    }
    if (uploadId !== null && !query.has("uploads")) {
      if (method === "PUT" && query.has("partNumber")) {
        if (request.headers.has("x-amz-copy-source")) throw notImplemented("UploadPartCopy", query);
        return this.#multipart.uploadPart(bucket, key, query, request, payload);
      }
      if (query.has("partNumber")) throw notImplemented(method, query);
      if (method === "POST") return this.#multipart.complete(bucket, key, uploadId, request);
      if (method === "DELETE") return this.#multipart.abort(bucket, key, uploadId);
      if (method === "GET") return this.#multipart.listParts(bucket, key, query);
    }
    throw notImplemented(method, query);
  }

  #listBuckets(): Promise<Response> {
    const xml = listAllMyBucketsXml({ owner: OWNER, buckets: this.#buckets.list() });
    return Promise.resolve(new Response(xml, { headers: XML }));
  }

  #location(bucket: string): Promise<Response> {
    this.#needBucket(bucket);
    const region = this.#region === "us-east-1" ? "" : this.#region;
    return Promise.resolve(new Response(locationConstraintXml(region), { headers: XML }));
  }

  async #createBucket(bucket: string, request: Request): Promise<Response> {
    validateBucketName(bucket);
    const body = await readSmallBody(request, this.#stallMs);
    if (body.length > 0) parseCreateBucketConfiguration(body);
    if (!await this.#buckets.create(bucket, this.#clock.now())) {
      throw new S3Error("BucketAlreadyOwnedByYou", undefined, { resource: `/${bucket}` });
    }
    return new Response(null, { headers: { location: `/${bucket}` } });
  }

  #headBucket(bucket: string): Promise<Response> {
    this.#needBucket(bucket);
    return Promise.resolve(
      new Response(null, { headers: { "x-amz-bucket-region": this.#region } }),
    );
  }

  async #deleteBucket(bucket: string): Promise<Response> {
    this.#needBucket(bucket);
    if ((await this.#store.list(`${bucket}/`, { limit: 1 })).length > 0) {
      throw new S3Error("BucketNotEmpty", undefined, { resource: `/${bucket}` });
    }
    await this.#multipart.dropBucket(bucket);
    await this.#buckets.delete(bucket);
    return new Response(null, { status: 204 });
  }

  async #listObjects(bucket: string, query: URLSearchParams): Promise<Response> {
    this.#needBucket(bucket);
    const list = parseListQuery(query);
    const fetchNames = fetchFromStore(
      (prefix, options) => this.#store.list(prefix, options),
      bucket,
      list.prefix,
    );
    // Each object's ETag, from its metadata (rank 0's index: no data node is asked). An object
    // removed between the two looks is listed without one.
    const fetch: ListingFetch = async (after, limit) => {
      const entries = await fetchNames(after, limit);
      return await Promise.all(entries.map(async (entry) => {
        const meta = await Promise.try(() => this.#store.meta(dfsNameOf(bucket, entry.key)))
          .catch(() => undefined);
        return meta === undefined ? entry : { ...entry, etag: etagOf(meta) };
      }));
    };
    const page = await listPage(fetch, list);
    const xml = listBucketResultXml(listObjectsResult(bucket, list, page, OWNER));
    return new Response(xml, { headers: XML });
  }

  async #putObject(
    target: Target,
    request: Request,
    payload: BodyPayload,
  ): Promise<Response> {
    const { bucket, key, headers } = target as Required<Target>;
    this.#needBucket(bucket);
    const name = dfsNameOf(bucket, key);
    const size = declaredSizeOf(headers, payload);
    if (headers.get("if-none-match") === "*") await this.#mustNotExist(name, target.resource);
    userMetadataOf(headers); // checked before a byte is read
    try {
      // A conditional create is decided at the commit, under the name's lock: of two at once,
      // one wins and the other is told 412.
      const { meta } = await storeBody(this.#store, name, request, {
        payload,
        size,
        stallMs: this.#stallMs,
        resource: target.resource,
        attrs: (etag) => attrsOf(withoutChunkedEncoding(headers), etag),
        ifAbsent: headers.get("if-none-match") === "*",
      });
      return new Response(null, { headers: { etag: `"${etagOf(meta)}"` } });
    } catch (error) {
      if (error instanceof DfsError && error.code === "ALREADY_EXISTS") {
        throw new S3Error("PreconditionFailed", "The object exists (If-None-Match: *)", {
          resource: target.resource,
        });
      }
      throw error;
    }
  }

  async #getObject(target: Target): Promise<Response> {
    const { bucket, key, headers, method } = target as Required<Target>;
    this.#needBucket(bucket);
    const name = dfsNameOf(bucket, key);
    const meta = await this.#metaOrNoSuchKey(name, target.resource);
    const etag = etagOf(meta);
    checkPreconditions(headers, { etag, modified: meta.modified });
    const range = rangeOf(headers.get("range"), meta.size);
    const out = headersOfAttrs(meta.attrs);
    out.set("etag", `"${etag}"`);
    out.set("last-modified", httpDate(meta.modified));
    out.set("accept-ranges", "bytes");
    const length = range ? range.end - range.start : meta.size;
    out.set("content-length", String(length));
    if (range) out.set("content-range", `bytes ${range.start}-${range.end - 1}/${meta.size}`);
    const status = range ? 206 : 200;
    if (method === "HEAD") return new Response(null, { status, headers: out });
    const reader = this.#store.openRead(name, range ?? {});
    if (reader.meta.version !== meta.version) {
      // Overwritten between the two looks: answer for the version opened, whole or not at all.
      reader.close();
      throw new S3Error("PreconditionFailed", "The object changed while it was being read");
    }
    if (length <= SMALL_OBJECT_BYTES_MAX) {
      // Whole, in one buffer: a fixed body costs the HTTP layer far less than a stream.
      return new Response(await readWhole(reader), { status, headers: out });
    }
    return new Response(readerStream(reader), { status, headers: out });
  }

  async #deleteObject(target: Target): Promise<Response> {
    const { bucket, key } = target as Required<Target>;
    this.#needBucket(bucket);
    await this.#removeIfThere(dfsNameOf(bucket, key));
    return new Response(null, { status: 204 });
  }

  async #deleteObjects(bucket: string, request: Request): Promise<Response> {
    this.#needBucket(bucket);
    const body = await readSmallBody(request, this.#stallMs);
    const md5 = request.headers.get("content-md5");
    if (md5 !== null && md5 !== createHash("md5").update(body).digest("base64")) {
      throw new S3Error("BadDigest");
    }
    const { quiet, objects } = parseDeleteObjects(body);
    const deleted: { key: string }[] = [];
    const errors: { key: string; code: string; message: string }[] = [];
    for (const { key } of objects) {
      try {
        await this.#removeIfThere(dfsNameOf(bucket, key));
        deleted.push({ key });
      } catch (error) {
        const s3 = s3ErrorOf(error);
        errors.push({ key, code: s3.code, message: s3.message });
      }
    }
    return new Response(deleteResultXml({ quiet, deleted, errors }), { headers: XML });
  }

  async #copyObject(target: Target): Promise<Response> {
    const { bucket, key, headers } = target as Required<Target>;
    this.#needBucket(bucket);
    const name = dfsNameOf(bucket, key);
    const source = copySourceOf(headers.get("x-amz-copy-source")!);
    this.#needBucket(source.bucket);
    const from = dfsNameOf(source.bucket, source.key);
    const opened = await this.#store.open(from).catch((error) => {
      throw s3ErrorOf(error, `/${source.bucket}/${source.key}`);
    });
    if (opened.meta.size > PUT_OBJECT_BYTES_MAX) {
      await opened.stream.cancel();
      throw new S3Error("InvalidRequest", "A copy of an object over 5 GiB must go multipart");
    }
    const replace = headers.get("x-amz-metadata-directive") === "REPLACE";
    const upload = this.#store.beginUpload(name, { size: opened.meta.size });
    const md5 = createHash("md5");
    try {
      for await (const piece of opened.stream) {
        md5.update(piece);
        await upload.write(owned(piece));
      }
      const etag = md5.digest("hex");
      const attrs = replace
        ? attrsOf(headers, etag)
        : { ...opened.meta.attrs, etag } as Record<string, string>;
      const meta = await upload.commit({ attrs });
      const xml = copyObjectResultXml({ etag: etagOf(meta), modified: meta.modified });
      return new Response(xml, { headers: XML });
    } catch (error) {
      await upload.abort();
      throw error;
    }
  }

  #needBucket(bucket: string): void {
    validateBucketName(bucket);
    if (!this.#buckets.has(bucket)) {
      throw new S3Error("NoSuchBucket", undefined, { resource: `/${bucket}` });
    }
  }

  async #metaOrNoSuchKey(name: string, resource: string): Promise<FileMeta> {
    try {
      return await this.#store.meta(name);
    } catch (error) {
      if (s3ErrorOf(error).code === "NoSuchKey") {
        throw new S3Error("NoSuchKey", undefined, { resource });
      }
      throw error;
    }
  }

  async #mustNotExist(name: string, resource: string): Promise<void> {
    const exists = await this.#store.meta(name).then(() => true, () => false);
    if (exists) {
      throw new S3Error("PreconditionFailed", "The object exists (If-None-Match: *)", { resource });
    }
  }

  async #removeIfThere(name: string): Promise<void> {
    try {
      await this.#store.remove(name);
    } catch (error) {
      if (s3ErrorOf(error).code !== "NoSuchKey") throw error;
    }
  }
}
