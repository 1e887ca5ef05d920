/**
 * The request bodies the S3 gateway reads (`Delete`, `CompleteMultipartUpload`,
 * `CreateBucketConfiguration`), parsed with `xml_parser.ts` and checked. Pure.
 *
 * @module
 */

import { S3Error } from "./s3_error.ts";
import { isWhitespace, type ParsedElement, parseXml } from "./xml_parser.ts";
import { S3_XMLNS } from "./xml.ts";

/** Most objects one `DeleteObjects` may name (S3's limit). */
export const DELETE_OBJECTS_MAX = 1000;
/** Most parts one `CompleteMultipartUpload` may list, and the highest part number (S3's). */
export const PARTS_MAX = 10_000;

// ---------------------------------------------------------------------------------------------
// Request bodies

/** One object of a DeleteObjects request. */
export interface DeleteObjectsEntry {
  key: string;
  versionId?: string;
  /** Conditional deletes (`ETag`, `LastModifiedTime`, `Size`), as sent; the gateway decides. */
  etag?: string;
  lastModifiedTime?: string;
  size?: number;
}

/** A DeleteObjects request: the objects in the order given, and whether to answer quietly. */
export interface DeleteObjectsRequest {
  quiet: boolean;
  objects: DeleteObjectsEntry[];
}

/**
 * Parses the body of DeleteObjects:
 * `<Delete><Quiet>true</Quiet><Object><Key>k</Key><VersionId>v</VersionId></Object>...</Delete>`,
 * 1 to `DELETE_OBJECTS_MAX` objects, each with exactly one `Key` (taken as it is, spaces and
 * all: the gateway checks it and reports a bad key in the `DeleteResult`).
 *
 * @throws {S3Error} `MalformedXML` for a body that is not such a document, names no object or
 *   more than `DELETE_OBJECTS_MAX`; `MaxMessageLengthExceeded` over `XML_BODY_BYTES_MAX`.
 */
export function parseDeleteObjects(body: Uint8Array | string): DeleteObjectsRequest {
  const doc = expectRoot(parseXml(body), "Delete");
  const fields = fieldsOf(doc, { Quiet: 1, Object: DELETE_OBJECTS_MAX });
  const objects = (fields.get("Object") ?? []).map((object): DeleteObjectsEntry => {
    const f = fieldsOf(object, { Key: 1, VersionId: 1, ETag: 1, LastModifiedTime: 1, Size: 1 });
    const key = single(f, "Key", "Object");
    if (key === undefined) throw invalid("an <Object> has no <Key>");
    const entry: DeleteObjectsEntry = { key };
    const versionId = single(f, "VersionId", "Object");
    if (versionId !== undefined) entry.versionId = versionId;
    const etag = single(f, "ETag", "Object");
    if (etag !== undefined) entry.etag = unquoteEtag(etag);
    const lastModifiedTime = single(f, "LastModifiedTime", "Object");
    if (lastModifiedTime !== undefined) entry.lastModifiedTime = lastModifiedTime.trim();
    const size = single(f, "Size", "Object");
    if (size !== undefined) entry.size = integer(size, "Size");
    return entry;
  });
  if (objects.length === 0) throw invalid("<Delete> names no <Object>");
  const quiet = single(fields, "Quiet", "Delete");
  return { quiet: quiet === undefined ? false : boolean(quiet, "Quiet"), objects };
}

/** The checksums a part of CompleteMultipartUpload may carry, base64 as sent. */
export interface PartChecksums {
  crc32?: string;
  crc32c?: string;
  crc64nvme?: string;
  sha1?: string;
  sha256?: string;
}

/** One part of a CompleteMultipartUpload request; `etag` without its quotes. */
export interface CompletedPart {
  partNumber: number;
  etag: string;
  checksums: PartChecksums;
}

const CHECKSUM_ELEMENTS = {
  ChecksumCRC32: "crc32",
  ChecksumCRC32C: "crc32c",
  ChecksumCRC64NVME: "crc64nvme",
  ChecksumSHA1: "sha1",
  ChecksumSHA256: "sha256",
} as const;

/**
 * Parses the body of CompleteMultipartUpload: `<CompleteMultipartUpload><Part><PartNumber>1
 * </PartNumber><ETag>"..."</ETag><ChecksumCRC32>...</ChecksumCRC32></Part>...`, 1 to `PARTS_MAX`
 * parts in ascending part number, each with one `PartNumber` (1 to `PARTS_MAX`) and one `ETag`
 * (quotes removed), and optionally one of each checksum.
 *
 * @throws {S3Error} `InvalidPartOrder` if the part numbers do not ascend; `InvalidArgument` for a
 *   part number out of range; `MalformedXML` for anything else that is not such a document;
 *   `MaxMessageLengthExceeded` over `XML_BODY_BYTES_MAX`.
 */
export function parseCompleteMultipartUpload(body: Uint8Array | string): CompletedPart[] {
  const doc = expectRoot(parseXml(body), "CompleteMultipartUpload");
  const parts = (fieldsOf(doc, { Part: PARTS_MAX }).get("Part") ?? []).map((part) => {
    const f = fieldsOf(part, {
      PartNumber: 1,
      ETag: 1,
      ChecksumCRC32: 1,
      ChecksumCRC32C: 1,
      ChecksumCRC64NVME: 1,
      ChecksumSHA1: 1,
      ChecksumSHA256: 1,
    });
    const number = single(f, "PartNumber", "Part");
    const etag = single(f, "ETag", "Part");
    if (number === undefined) throw invalid("a <Part> has no <PartNumber>");
    if (etag === undefined) throw invalid("a <Part> has no <ETag>");
    const partNumber = integer(number, "PartNumber");
    if (partNumber < 1 || partNumber > PARTS_MAX) {
      throw new S3Error(
        "InvalidArgument",
        `Part number must be an integer between 1 and ${PARTS_MAX}, not ${partNumber}`,
      );
    }
    const checksums: PartChecksums = {};
    for (const [name, field] of Object.entries(CHECKSUM_ELEMENTS)) {
      const value = single(f, name, "Part");
      if (value !== undefined) checksums[field] = value.trim();
    }
    return { partNumber, etag: unquoteEtag(etag), checksums };
  });
  if (parts.length === 0) throw invalid("<CompleteMultipartUpload> lists no <Part>");
  for (let i = 1; i < parts.length; i++) {
    if (parts[i].partNumber <= parts[i - 1].partNumber) {
      throw new S3Error(
        "InvalidPartOrder",
        `The list of parts was not in ascending order: part ${parts[i].partNumber} follows part ${
          parts[i - 1].partNumber
        }`,
      );
    }
  }
  return parts;
}

/**
 * Parses the body of CreateBucket: nothing (or only whitespace), or
 * `<CreateBucketConfiguration><LocationConstraint>region</LocationConstraint>
 * </CreateBucketConfiguration>`. The region is returned as sent (trimmed); the gateway checks it.
 *
 * @throws {S3Error} `NotImplemented` for the directory-bucket and tag elements (`Location`,
 *   `Bucket`, `Tags`); `MalformedXML` for anything else that is not such a document;
 *   `MaxMessageLengthExceeded` over `XML_BODY_BYTES_MAX`.
 */
export function parseCreateBucketConfiguration(
  body: Uint8Array | string,
): { locationConstraint?: string } {
  const empty = typeof body === "string"
    ? isWhitespace(body)
    : body.every((b) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d);
  if (empty) return {};
  const doc = expectRoot(parseXml(body), "CreateBucketConfiguration");
  for (const child of doc.children) {
    if (child.name === "Location" || child.name === "Bucket" || child.name === "Tags") {
      throw new S3Error(
        "NotImplemented",
        `CreateBucketConfiguration with <${child.name}> is not implemented`,
      );
    }
  }
  const fields = fieldsOf(doc, { LocationConstraint: 1 });
  const region = single(fields, "LocationConstraint", "CreateBucketConfiguration");
  return region === undefined ? {} : { locationConstraint: region.trim() };
}

function invalid(why: string): S3Error {
  return new S3Error(
    "MalformedXML",
    `The XML you provided does not match the S3 schema: ${why}`,
  );
}

function expectRoot(doc: ParsedElement, name: string): ParsedElement {
  if (doc.name !== name || !inS3Namespace(doc)) {
    throw invalid(`the root element is <${doc.name}>, not <${name}>`);
  }
  return doc;
}

function inS3Namespace(node: ParsedElement): boolean {
  return node.namespace === "" || node.namespace === S3_XMLNS;
}

/**
 * The children of `node` by name, each name allowed up to its count; an element of another name
 * or namespace, text where elements belong, or one too many of a name is malformed.
 */
function fieldsOf(
  node: ParsedElement,
  allowed: Record<string, number>,
): Map<string, ParsedElement[]> {
  if (!isWhitespace(node.text)) throw invalid(`<${node.name}> holds text, not elements`);
  const fields = new Map<string, ParsedElement[]>();
  for (const child of node.children) {
    const max = Object.hasOwn(allowed, child.name) ? allowed[child.name] : 0;
    if (max === 0 || !inS3Namespace(child)) {
      throw invalid(`<${node.name}> does not take <${child.name}>`);
    }
    const list = fields.get(child.name) ?? [];
    if (list.length === max) {
      throw invalid(
        max === 1
          ? `<${node.name}> has more than one <${child.name}>`
          : `<${node.name}> has more than ${max} <${child.name}> elements`,
      );
    }
    list.push(child);
    fields.set(child.name, list);
  }
  return fields;
}

/** The text of the one `name` child, if any; it must hold no elements. */
function single(
  fields: Map<string, ParsedElement[]>,
  name: string,
  parent: string,
): string | undefined {
  const node = fields.get(name)?.[0];
  if (node === undefined) return undefined;
  if (node.children.length > 0) throw invalid(`<${name}> in <${parent}> holds elements`);
  return node.text;
}

function integer(text: string, name: string): number {
  const trimmed = text.trim();
  if (!/^[0-9]{1,15}$/.test(trimmed)) throw invalid(`<${name}> is not a whole number`);
  return Number(trimmed);
}

function boolean(text: string, name: string): boolean {
  const trimmed = text.trim().toLowerCase();
  if (trimmed === "true") return true;
  if (trimmed === "false") return false;
  throw invalid(`<${name}> is neither true nor false`);
}

/** An ETag as clients send it, `"abc"` or `abc`, without the quotes. */
function unquoteEtag(text: string): string {
  const trimmed = text.trim();
  const bare = trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"')
    ? trimmed.slice(1, -1)
    : trimmed;
  if (bare === "") throw invalid("an <ETag> is empty");
  return bare;
}
