/**
 * The documents the S3 gateway answers with, built with `xml.ts`. Pure.
 *
 * @module
 */

import type { ListObjectsResult } from "./listing.ts";
import { element, S3_XMLNS, type XmlContent, xmlDocument, type XmlElement } from "./xml.ts";

// ---------------------------------------------------------------------------------------------
// Response documents

/** An owner as S3 lists it. */
export interface Owner {
  id: string;
  displayName?: string;
}

/** `ms` since the epoch as S3 writes times in XML: `2009-10-12T17:50:30.000Z`. */
export function xmlTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** An ETag as S3 writes it, in double quotes; `etag` is given without them. */
export function quoteEtag(etag: string): string {
  return `"${etag}"`;
}

function root(name: string, content: XmlContent): string {
  return xmlDocument(element(name, content, { xmlns: S3_XMLNS }));
}

function ownerElement(name: string, owner: Owner): XmlElement {
  return element(name, [
    element("ID", owner.id),
    owner.displayName !== undefined && element("DisplayName", owner.displayName),
  ]);
}

/** `ListAllMyBucketsResult`: the buckets, each with its creation time (ms since the epoch). */
export function listAllMyBucketsXml(
  result: { owner: Owner; buckets: readonly { name: string; created: number }[] },
): string {
  return root("ListAllMyBucketsResult", [
    ownerElement("Owner", result.owner),
    element(
      "Buckets",
      result.buckets.map((b) =>
        element("Bucket", [
          element("Name", b.name),
          element("CreationDate", xmlTime(b.created)),
        ])
      ),
    ),
  ]);
}

/**
 * `ListBucketResult` of ListObjectsV2 or ListObjects (v1), from what `listObjectsResult` made of a
 * page: every string in it is already URL-encoded when the request asked for it. Contents carry an
 * `Owner` when `result.owner` is set (always in v1, with `fetch-owner=true` in v2).
 */
export function listBucketResultXml(result: ListObjectsResult): string {
  const v2 = result.version === 2;
  return root("ListBucketResult", [
    element("Name", result.bucket),
    element("Prefix", result.prefix),
    !v2 && element("Marker", result.marker ?? ""),
    !v2 && result.nextMarker !== undefined && element("NextMarker", result.nextMarker),
    v2 && result.continuationToken !== undefined &&
    element("ContinuationToken", result.continuationToken),
    v2 && result.nextContinuationToken !== undefined &&
    element("NextContinuationToken", result.nextContinuationToken),
    v2 && result.startAfter !== undefined && element("StartAfter", result.startAfter),
    v2 && element("KeyCount", result.keyCount),
    element("MaxKeys", result.maxKeys),
    result.delimiter !== undefined && element("Delimiter", result.delimiter),
    result.encodingType !== undefined && element("EncodingType", result.encodingType),
    element("IsTruncated", result.isTruncated),
    ...result.contents.map((c) =>
      element("Contents", [
        element("Key", c.key),
        element("LastModified", xmlTime(c.modified)),
        c.etag !== undefined && element("ETag", quoteEtag(c.etag)),
        element("Size", c.size),
        element("StorageClass", "STANDARD"),
        result.owner !== undefined && ownerElement("Owner", result.owner),
      ])
    ),
    ...result.commonPrefixes.map((p) => element("CommonPrefixes", [element("Prefix", p)])),
  ]);
}

/**
 * `LocationConstraint`: the bucket's region. S3 answers an empty element for `us-east-1`, so pass
 * `""` for it.
 */
export function locationConstraintXml(region: string): string {
  return root("LocationConstraint", region);
}

/** `CopyObjectResult`: the copy's ETag (without quotes) and modification time. */
export function copyObjectResultXml(result: { etag: string; modified: number }): string {
  return root("CopyObjectResult", [
    element("ETag", quoteEtag(result.etag)),
    element("LastModified", xmlTime(result.modified)),
  ]);
}

/** `InitiateMultipartUploadResult`: where the upload goes and its id. */
export function initiateMultipartUploadXml(
  result: { bucket: string; key: string; uploadId: string },
): string {
  return root("InitiateMultipartUploadResult", [
    element("Bucket", result.bucket),
    element("Key", result.key),
    element("UploadId", result.uploadId),
  ]);
}

/**
 * `CompleteMultipartUploadResult`: the object's URL, bucket, key and ETag (without quotes; S3's
 * is the MD5 of the parts' MD5s, a dash and the part count).
 */
export function completeMultipartUploadXml(
  result: { location: string; bucket: string; key: string; etag: string },
): string {
  return root("CompleteMultipartUploadResult", [
    element("Location", result.location),
    element("Bucket", result.bucket),
    element("Key", result.key),
    element("ETag", quoteEtag(result.etag)),
  ]);
}

/** One uploaded part, as `ListParts` lists it. */
export interface ListedPart {
  partNumber: number;
  modified: number;
  /** Without quotes. */
  etag: string;
  size: number;
}

/** `ListPartsResult`: one page of an upload's parts, after `partNumberMarker`. */
export function listPartsXml(result: {
  bucket: string;
  key: string;
  uploadId: string;
  owner?: Owner;
  partNumberMarker: number;
  nextPartNumberMarker?: number;
  maxParts: number;
  isTruncated: boolean;
  parts: readonly ListedPart[];
}): string {
  return root("ListPartsResult", [
    element("Bucket", result.bucket),
    element("Key", result.key),
    element("UploadId", result.uploadId),
    result.owner !== undefined && ownerElement("Initiator", result.owner),
    result.owner !== undefined && ownerElement("Owner", result.owner),
    element("StorageClass", "STANDARD"),
    element("PartNumberMarker", result.partNumberMarker),
    result.nextPartNumberMarker !== undefined &&
    element("NextPartNumberMarker", result.nextPartNumberMarker),
    element("MaxParts", result.maxParts),
    element("IsTruncated", result.isTruncated),
    ...result.parts.map((p) =>
      element("Part", [
        element("PartNumber", p.partNumber),
        element("LastModified", xmlTime(p.modified)),
        element("ETag", quoteEtag(p.etag)),
        element("Size", p.size),
      ])
    ),
  ]);
}

/** One upload in progress, as `ListMultipartUploads` lists it. */
export interface ListedUpload {
  key: string;
  uploadId: string;
  initiated: number;
}

/**
 * `ListMultipartUploadsResult`: one page of the uploads in progress. Keys, prefixes, the
 * delimiter and key markers are written as given: with `encodingType: "url"`, pass them through
 * `listing.ts`'s `encodeListingValue` first.
 */
export function listMultipartUploadsXml(result: {
  bucket: string;
  owner?: Owner;
  keyMarker: string;
  uploadIdMarker: string;
  nextKeyMarker?: string;
  nextUploadIdMarker?: string;
  prefix: string;
  delimiter?: string;
  maxUploads: number;
  isTruncated: boolean;
  encodingType?: "url";
  uploads: readonly ListedUpload[];
  commonPrefixes: readonly string[];
}): string {
  return root("ListMultipartUploadsResult", [
    element("Bucket", result.bucket),
    element("KeyMarker", result.keyMarker),
    element("UploadIdMarker", result.uploadIdMarker),
    result.nextKeyMarker !== undefined && element("NextKeyMarker", result.nextKeyMarker),
    result.nextUploadIdMarker !== undefined &&
    element("NextUploadIdMarker", result.nextUploadIdMarker),
    element("Prefix", result.prefix),
    result.delimiter !== undefined && element("Delimiter", result.delimiter),
    element("MaxUploads", result.maxUploads),
    result.encodingType !== undefined && element("EncodingType", result.encodingType),
    element("IsTruncated", result.isTruncated),
    ...result.uploads.map((u) =>
      element("Upload", [
        element("Key", u.key),
        element("UploadId", u.uploadId),
        result.owner !== undefined && ownerElement("Initiator", result.owner),
        result.owner !== undefined && ownerElement("Owner", result.owner),
        element("StorageClass", "STANDARD"),
        element("Initiated", xmlTime(u.initiated)),
      ])
    ),
    ...result.commonPrefixes.map((p) => element("CommonPrefixes", [element("Prefix", p)])),
  ]);
}

/**
 * `DeleteResult` of DeleteObjects: a `Deleted` per key removed (left out when `quiet`, as S3
 * does) and an `Error` per key that could not be.
 */
export function deleteResultXml(result: {
  quiet: boolean;
  deleted: readonly { key: string; versionId?: string }[];
  errors: readonly { key: string; versionId?: string; code: string; message: string }[];
}): string {
  return root("DeleteResult", [
    ...(result.quiet ? [] : result.deleted).map((d) =>
      element("Deleted", [
        element("Key", d.key),
        d.versionId !== undefined && element("VersionId", d.versionId),
      ])
    ),
    ...result.errors.map((e) =>
      element("Error", [
        element("Key", e.key),
        e.versionId !== undefined && element("VersionId", e.versionId),
        element("Code", e.code),
        element("Message", e.message),
      ])
    ),
  ]);
}
