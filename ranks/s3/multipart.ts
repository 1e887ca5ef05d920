/**
 * S3 multipart uploads over a `StreamingFileStore`: create, upload part, complete, abort, list
 * parts, list uploads.
 *
 * An upload in progress is files like any other, so it survives a restart and is replicated:
 * - `.s3-uploads/BUCKET/ID`: the upload itself, no bytes; its attributes are the object's to be
 *   (content headers, `x-amz-meta-*`) and its key (`s3-key`); its modified time is its start.
 * - `.s3-parts/BUCKET/ID/NNNNN`: part NNNNN (five digits), its ETag (MD5) as its attribute.
 *
 * Completing one composes the object from the listed parts' chunks (`StreamingFileStore.compose`):
 * no byte is copied, and a 200 means the object is committed on every replica, whole. The rest
 * of the upload's files are then removed. Bucket names cannot start with `.`, so neither folder
 * is ever a bucket; `dfs list` shows them, which is honest about the space they take.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import type { FileMeta } from "../../protocol/messages.ts";
import type { StreamingFileStore } from "../common/file_store.ts";
import { type BodyPayload, storeBody } from "./body.ts";
import { commonPrefixOf, encodeListingValue } from "./listing.ts";
import { dfsNameOf } from "./names.ts";
import { attrsOf, ETAG_ATTR, etagOf } from "./objects.ts";
import { declaredSizeOf, readSmallBody, withoutChunkedEncoding } from "./request.ts";
import { S3Error, s3ErrorOf } from "./s3_error.ts";
import { parseCompleteMultipartUpload, PARTS_MAX } from "./xml_requests.ts";
import {
  completeMultipartUploadXml,
  initiateMultipartUploadXml,
  type ListedUpload,
  listMultipartUploadsXml,
  listPartsXml,
  type Owner,
} from "./xml_responses.ts";

/** Bytes every part but the last must have at least (S3's rule: `EntityTooSmall` otherwise). */
export const PART_BYTES_MIN = 5 * 1024 * 1024;
/** Parts `ListParts` answers with at most per page, and by default. */
export const LIST_PARTS_MAX = 1000;
/** Uploads `ListMultipartUploads` answers with at most per page, and by default. */
export const LIST_UPLOADS_MAX = 1000;
/** Uploads in progress one bucket may have at once; `CreateMultipartUpload` refuses more. */
export const UPLOADS_PER_BUCKET_MAX = 10_000;

/**
 * An upload with no new part for this long is dropped with its parts (as MinIO drops stale
 * uploads after a day): an abandoned upload does not hold its space for ever.
 */
export const UPLOAD_IDLE_EXPIRY_MS = 24 * 60 * 60 * 1000;
/** How often the gateway looks for such uploads (and once when it starts). */
export const UPLOAD_SWEEP_INTERVAL_MS = 60 * 60 * 1000;

/** Where uploads in progress are kept, and their parts. */
export const UPLOADS_FOLDER = ".s3-uploads/";
export const PARTS_FOLDER = ".s3-parts/";
/** The attribute of an upload's file that holds its key. */
const KEY_ATTR = "s3-key";
const UPLOAD_ID_PATTERN = /^[0-9a-f]{32}$/;

const XML = { "content-type": "application/xml" };

/** An upload in progress, as its file says. */
interface UploadInfo {
  key: string;
  /** The object's attributes to be (no ETag yet). */
  attrs: Record<string, string>;
  initiated: number;
}

/** The multipart operations of the S3 gateway; the gateway checks the bucket first. */
export class Multipart {
  #store: StreamingFileStore;
  #owner: Owner;
  #stallMs: number;

  constructor(
    options: { store: StreamingFileStore; owner: Owner; stallMs: number },
  ) {
    this.#store = options.store;
    this.#owner = options.owner;
    this.#stallMs = options.stallMs;
  }

  /** `POST /bucket/key?uploads`: records the upload and its object's headers. */
  async create(bucket: string, key: string, headers: Headers): Promise<Response> {
    dfsNameOf(bucket, key); // a key dfs cannot store is refused now, not at the end
    const attrs: Record<string, string> = attrsOf(withoutChunkedEncoding(headers), "");
    delete attrs[ETAG_ATTR];
    attrs[KEY_ATTR] = key;
    const inProgress = await this.#store.list(`${UPLOADS_FOLDER}${bucket}/`, {
      limit: UPLOADS_PER_BUCKET_MAX,
    });
    if (inProgress.length >= UPLOADS_PER_BUCKET_MAX) {
      throw new S3Error(
        "SlowDown",
        `Bucket ${bucket} has ${UPLOADS_PER_BUCKET_MAX} multipart uploads in progress, its ` +
          "limit: complete or abort some first",
      );
    }
    const uploadId = newUploadId();
    const upload = this.#store.beginUpload(uploadName(bucket, uploadId), { size: 0 });
    try {
      await upload.commit({ attrs });
    } catch (error) {
      await upload.abort();
      throw error;
    }
    const xml = initiateMultipartUploadXml({ bucket, key, uploadId });
    return new Response(xml, { headers: XML });
  }

  /** `PUT /bucket/key?partNumber=N&uploadId=ID`: stores one part (replacing one of that number). */
  async uploadPart(
    bucket: string,
    key: string,
    query: URLSearchParams,
    request: Request,
    payload: BodyPayload,
  ): Promise<Response> {
    const uploadId = query.get("uploadId") ?? "";
    const partNumber = partNumberOf(query.get("partNumber"));
    await this.#info(bucket, key, uploadId);
    const size = declaredSizeOf(request.headers, payload);
    const { etag } = await storeBody(this.#store, partName(bucket, uploadId, partNumber), request, {
      payload,
      size,
      stallMs: this.#stallMs,
      resource: `/${bucket}/${key}`,
      attrs: (etag) => ({ [ETAG_ATTR]: etag }),
      // Aborted or completed meanwhile: the part would be left over, so it is not kept.
      beforeCommit: async () => void await this.#info(bucket, key, uploadId),
    });
    return new Response(null, { headers: { etag: `"${etag}"` } });
  }

  /**
   * `POST /bucket/key?uploadId=ID`: makes the object of the listed parts, in order, without
   * copying them; the ETag is S3's, the MD5 of the parts' MD5s, a dash and their count.
   */
  async complete(bucket: string, key: string, uploadId: string, request: Request) {
    const info = await this.#info(bucket, key, uploadId);
    const listed = parseCompleteMultipartUpload(await readSmallBody(request, this.#stallMs));
    const resource = `/${bucket}/${key}`;
    const parts: FileMeta[] = [];
    for (const { partNumber, etag } of listed) {
      const meta = await this.#store.meta(partName(bucket, uploadId, partNumber))
        .catch(() => undefined);
      if (meta === undefined || meta.attrs?.[ETAG_ATTR] !== etag) {
        throw new S3Error(
          "InvalidPart",
          `Part ${partNumber} ${
            meta === undefined ? "was not uploaded" : `has ETag "${meta.attrs?.[ETAG_ATTR]}"`
          }${meta === undefined ? "" : `, not "${etag}"`}`,
          { resource },
        );
      }
      parts.push(meta);
    }
    for (const [i, part] of parts.entries()) {
      if (i < parts.length - 1 && part.size < PART_BYTES_MIN) {
        throw new S3Error(
          "EntityTooSmall",
          `Part ${listed[i].partNumber} has ${part.size} bytes; every part but the last must ` +
            `have at least ${PART_BYTES_MIN}`,
          { resource },
        );
      }
    }
    const md5 = createHash("md5");
    for (const { etag } of listed) md5.update(Buffer.from(etag, "hex"));
    const etag = `${md5.digest("hex")}-${listed.length}`;
    const attrs = { ...info.attrs, [ETAG_ATTR]: etag };
    const name = dfsNameOf(bucket, key);
    let meta: FileMeta;
    if (parts.every((part) => part.size === 0)) {
      const upload = this.#store.beginUpload(name, { size: 0 });
      meta = await upload.commit({ attrs }).catch(async (error) => {
        await upload.abort();
        throw error;
      });
    } else {
      meta = await this.#store.compose(
        name,
        parts.map(({ name, version }) => ({ name, version })),
        { attrs },
      ).catch((error) => {
        if (s3ErrorOf(error).code === "NoSuchKey" || error?.code === "VERSION_MISMATCH") {
          throw new S3Error(
            "InvalidPart",
            "A part was replaced or removed while the upload completed",
            { resource },
          );
        }
        throw error;
      });
    }
    await this.#drop(bucket, uploadId);
    const xml = completeMultipartUploadXml({
      location: `/${bucket}/${encodeURIComponent(key).replaceAll("%2F", "/")}`,
      bucket,
      key,
      etag: etagOf(meta),
    });
    return new Response(xml, { headers: XML });
  }

  /** `DELETE /bucket/key?uploadId=ID`: drops the upload and its parts. */
  async abort(bucket: string, key: string, uploadId: string): Promise<Response> {
    await this.#info(bucket, key, uploadId);
    await this.#drop(bucket, uploadId);
    return new Response(null, { status: 204 });
  }

  /** `GET /bucket/key?uploadId=ID`: one page of the parts, after `part-number-marker`. */
  async listParts(bucket: string, key: string, query: URLSearchParams): Promise<Response> {
    const uploadId = query.get("uploadId") ?? "";
    await this.#info(bucket, key, uploadId);
    const marker = countOf(query.get("part-number-marker"), "part-number-marker", 0, PARTS_MAX);
    const maxParts = Math.min(
      countOf(query.get("max-parts"), "max-parts", LIST_PARTS_MAX, Number.MAX_SAFE_INTEGER),
      LIST_PARTS_MAX,
    );
    const entries = await this.#store.list(partsFolder(bucket, uploadId), {
      after: marker === 0 ? undefined : partName(bucket, uploadId, marker),
      limit: maxParts + 1,
    });
    const page = entries.slice(0, maxParts);
    const parts = [];
    for (const entry of page) {
      const meta = await this.#store.meta(entry.name).catch(() => undefined);
      if (meta === undefined) continue; // replaced or dropped meanwhile
      parts.push({
        partNumber: Number(entry.name.slice(-5)),
        modified: meta.modified,
        etag: meta.attrs?.[ETAG_ATTR] ?? "",
        size: meta.size,
      });
    }
    const isTruncated = entries.length > maxParts;
    const xml = listPartsXml({
      bucket,
      key,
      uploadId,
      owner: this.#owner,
      partNumberMarker: marker,
      nextPartNumberMarker: parts.length > 0 ? parts.at(-1)!.partNumber : undefined,
      maxParts,
      isTruncated,
      parts,
    });
    return new Response(xml, { headers: XML });
  }

  /**
   * `GET /bucket?uploads`: the uploads in progress by key, then start, with `prefix`,
   * `delimiter`, `key-marker`, `upload-id-marker`, `max-uploads` and `encoding-type=url`.
   */
  async listUploads(bucket: string, query: URLSearchParams): Promise<Response> {
    const prefix = query.get("prefix") ?? "";
    const delimiter = query.get("delimiter") || undefined;
    const keyMarker = query.get("key-marker") ?? "";
    const uploadIdMarker = keyMarker === "" ? "" : query.get("upload-id-marker") ?? "";
    const maxUploads = Math.min(
      countOf(query.get("max-uploads"), "max-uploads", LIST_UPLOADS_MAX, Number.MAX_SAFE_INTEGER),
      LIST_UPLOADS_MAX,
    );
    const encodingType = query.get("encoding-type") ?? undefined;
    if (encodingType !== undefined && encodingType !== "url") {
      throw new S3Error("InvalidArgument", `Unknown encoding-type ${JSON.stringify(encodingType)}`);
    }
    const all: ListedUpload[] = [];
    const folder = `${UPLOADS_FOLDER}${bucket}/`;
    for (const entry of await this.#store.list(folder, { limit: UPLOADS_PER_BUCKET_MAX })) {
      const meta = await this.#store.meta(entry.name).catch(() => undefined);
      const key = meta?.attrs?.[KEY_ATTR];
      if (meta === undefined || key === undefined || !key.startsWith(prefix)) continue;
      all.push({ key, uploadId: entry.name.slice(folder.length), initiated: meta.modified });
    }
    all.sort((a, b) =>
      a.key < b.key ? -1 : a.key > b.key ? 1 : a.initiated - b.initiated ||
        (a.uploadId < b.uploadId ? -1 : a.uploadId > b.uploadId ? 1 : 0)
    );
    // After the markers: past the marked upload of the marked key, else past the whole key.
    const marked = uploadIdMarker === ""
      ? -1
      : all.findIndex((u) => u.key === keyMarker && u.uploadId === uploadIdMarker);
    const past = all.findIndex((u) => u.key > keyMarker);
    const from = keyMarker === "" ? 0 : marked >= 0 ? marked + 1 : past < 0 ? all.length : past;
    const afterMarker = all.slice(from);
    const uploads: ListedUpload[] = [];
    const commonPrefixes: string[] = [];
    let isTruncated = false;
    let last: ListedUpload | string | undefined;
    for (const u of afterMarker) {
      const common = commonPrefixOf(u.key, prefix, delimiter);
      if (common !== undefined && commonPrefixes.at(-1) === common) continue;
      if (uploads.length + commonPrefixes.length >= maxUploads) {
        isTruncated = true;
        break;
      }
      if (common !== undefined) commonPrefixes.push(last = common);
      else uploads.push(last = u);
    }
    const encode = (text: string) =>
      encodingType === "url" ? encodeListingValue(text, "url") : text;
    const xml = listMultipartUploadsXml({
      bucket,
      owner: this.#owner,
      keyMarker: encode(keyMarker),
      uploadIdMarker,
      nextKeyMarker: isTruncated && last !== undefined
        ? encode(typeof last === "string" ? last : last.key)
        : undefined,
      nextUploadIdMarker: isTruncated && typeof last === "object" ? last.uploadId : undefined,
      prefix: encode(prefix),
      delimiter: delimiter === undefined ? undefined : encode(delimiter),
      maxUploads,
      isTruncated,
      encodingType: encodingType as "url" | undefined,
      uploads: uploads.map((u) => ({ ...u, key: encode(u.key) })),
      commonPrefixes: commonPrefixes.map(encode),
    });
    return new Response(xml, { headers: XML });
  }

  /** Drops every upload of a bucket (when the bucket is deleted). */
  async dropBucket(bucket: string): Promise<void> {
    await this.#store.removePrefix(`${PARTS_FOLDER}${bucket}/`);
    await this.#store.removePrefix(`${UPLOADS_FOLDER}${bucket}/`);
  }

  /**
   * Drops every upload, in any bucket, with nothing new (neither its start nor a part) for
   * `idleMs` before `now`; returns how many.
   */
  async sweep(now: number, idleMs = UPLOAD_IDLE_EXPIRY_MS): Promise<number> {
    let dropped = 0;
    for (const entry of await this.#store.list(UPLOADS_FOLDER)) {
      const [bucket, uploadId] = entry.name.slice(UPLOADS_FOLDER.length).split("/");
      if (uploadId === undefined || !UPLOAD_ID_PATTERN.test(uploadId)) continue;
      const parts = await this.#store.list(partsFolder(bucket, uploadId));
      const latest = Math.max(entry.modified, ...parts.map((part) => part.modified));
      if (now - latest < idleMs) continue;
      await this.#drop(bucket, uploadId);
      dropped++;
    }
    return dropped;
  }

  /** The upload `uploadId` of `key`, or `NoSuchUpload`. */
  async #info(bucket: string, key: string, uploadId: string): Promise<UploadInfo> {
    const noSuchUpload = () =>
      new S3Error("NoSuchUpload", undefined, { resource: `/${bucket}/${key}` });
    if (!UPLOAD_ID_PATTERN.test(uploadId)) throw noSuchUpload();
    const meta = await this.#store.meta(uploadName(bucket, uploadId)).catch((error) => {
      if (s3ErrorOf(error).code === "NoSuchKey") throw noSuchUpload();
      throw error;
    });
    const { [KEY_ATTR]: uploadKey, ...attrs } = meta.attrs ?? {};
    if (uploadKey !== key) throw noSuchUpload();
    return { key, attrs, initiated: meta.modified };
  }

  /** Removes an upload's parts, then the upload itself. */
  async #drop(bucket: string, uploadId: string): Promise<void> {
    await this.#store.removePrefix(partsFolder(bucket, uploadId));
    await this.#store.remove(uploadName(bucket, uploadId)).catch((error) => {
      if (s3ErrorOf(error).code !== "NoSuchKey") throw error;
    });
  }
}

function newUploadId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function uploadName(bucket: string, uploadId: string): string {
  return `${UPLOADS_FOLDER}${bucket}/${uploadId}`;
}

function partsFolder(bucket: string, uploadId: string): string {
  return `${PARTS_FOLDER}${bucket}/${uploadId}/`;
}

function partName(bucket: string, uploadId: string, partNumber: number): string {
  return `${partsFolder(bucket, uploadId)}${String(partNumber).padStart(5, "0")}`;
}

/** A part number from the query: 1 to `PARTS_MAX`. */
function partNumberOf(text: string | null): number {
  const n = Number(text);
  if (text === null || !/^\d+$/.test(text) || n < 1 || n > PARTS_MAX) {
    throw new S3Error(
      "InvalidArgument",
      `Part number must be an integer between 1 and ${PARTS_MAX}, not ${JSON.stringify(text)}`,
    );
  }
  return n;
}

/** A count from the query, `fallback` when absent. */
function countOf(text: string | null, name: string, fallback: number, max: number): number {
  if (text === null) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > max) {
    throw new S3Error(
      "InvalidArgument",
      `${name} must be a whole number, not ${JSON.stringify(text)}`,
    );
  }
  return n;
}
