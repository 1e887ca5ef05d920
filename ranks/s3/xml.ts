/**
 * The S3 gateway's XML, both ways. Out: a tiny builder (`element` makes a tree, `xmlDocument`
 * renders it once, escaping every text) and the response documents S3 clients parse. In: a strict,
 * bounded parser for the few request bodies S3 clients send (`Delete`, `CompleteMultipartUpload`,
 * `CreateBucketConfiguration`). Pure: no I/O.
 *
 * The parser reads XML 1.0 in UTF-8: the declaration, comments, namespaces (prefixes are resolved;
 * elements must be in no namespace or S3's), the five predefined entities, character references
 * and CDATA. It refuses a DOCTYPE (so no entity can be declared, and none expanded: no XXE, no
 * billion laughs), processing instructions, text mixed with elements, and anything not
 * well-formed, all as `MalformedXML`; and it stops at `XML_BODY_BYTES_MAX`, `XML_DEPTH_MAX` and
 * `XML_ELEMENTS_MAX`.
 *
 * @module
 */

import { utf8ByteLength } from "../../protocol/names.ts";
import type { ListObjectsResult } from "./listing.ts";
import { S3Error } from "./s3_error.ts";

/** The namespace of every S3 document. */
export const S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/";

/**
 * Largest request body the parser reads (8 MiB); a larger one is `MaxMessageLengthExceeded`. The
 * worst legal bodies: a `Delete` of 1000 keys of 1024 bytes is 1 MiB of key text, but a client
 * may escape every byte (a key of 1024 `"` sent as `&quot;` by an SDK that escapes quotes is
 * 6 KiB), so 1000 × (6 KiB + 2 KiB of tags, version id and indentation) = 8,192,000 bytes; a
 * `CompleteMultipartUpload` of 10,000 parts, each with a quoted ETag and all five checksums,
 * indented, is about 5 MB. The gateway should stop reading a body at this size plus one byte.
 */
export const XML_BODY_BYTES_MAX = 8 * 1024 * 1024;
/** Deepest element nesting accepted; S3 request bodies nest three deep. */
export const XML_DEPTH_MAX = 16;
/**
 * Most elements in one body: a `CompleteMultipartUpload` of 10,000 parts with a part number, an
 * ETag and five checksums each has 80,001.
 */
export const XML_ELEMENTS_MAX = 100_000;
/** Longest entity or character reference, `&` to `;` (`&#x10FFFF;` is 10). */
const REFERENCE_CHARS_MAX = 32;
/** Most objects one `DeleteObjects` may name (S3's limit). */
export const DELETE_OBJECTS_MAX = 1000;
/** Most parts one `CompleteMultipartUpload` may list, and the highest part number (S3's). */
export const PARTS_MAX = 10_000;

// ---------------------------------------------------------------------------------------------
// Building

/** An element to render: a name, optional attributes, and text or child elements. */
export interface XmlElement {
  readonly name: string;
  readonly attributes?: Readonly<Record<string, string>>;
  readonly content: string | readonly XmlElement[];
}

/**
 * What an element holds: text (numbers and booleans are written as JavaScript prints them), or
 * child elements, among which `false`, `null` and `undefined` are skipped so that optional ones
 * can be written `value !== undefined && element(...)`.
 */
export type XmlContent =
  | string
  | number
  | boolean
  | readonly (XmlElement | false | null | undefined)[];

/** An XML name as S3 documents use them: ASCII, no namespace prefix. */
const ELEMENT_NAME = /^[A-Za-z_][A-Za-z0-9._-]*$/;
const ATTRIBUTE_NAME = /^[A-Za-z_][A-Za-z0-9._-]*(?::[A-Za-z_][A-Za-z0-9._-]*)?$/;

/**
 * An element of `name` holding `content` (nothing by default). Nothing is escaped yet: text is
 * escaped when the tree is rendered, so no content can inject markup.
 *
 * @throws {Error} if `name` or an attribute name is not a plain XML name, or a number is not
 *   finite (programmer errors).
 */
export function element(
  name: string,
  content: XmlContent = [],
  attributes?: Record<string, string>,
): XmlElement {
  if (!ELEMENT_NAME.test(name)) throw new Error(`Not an XML element name: ${JSON.stringify(name)}`);
  for (const attribute of Object.keys(attributes ?? {})) {
    if (!ATTRIBUTE_NAME.test(attribute)) {
      throw new Error(`Not an XML attribute name: ${JSON.stringify(attribute)}`);
    }
  }
  if (typeof content === "number" && !Number.isFinite(content)) {
    throw new Error(`Not a finite number in <${name}>: ${content}`);
  }
  const body = typeof content === "object"
    ? content.filter((child): child is XmlElement => typeof child === "object" && child !== null)
    : String(content);
  return attributes === undefined ? { name, content: body } : { name, attributes, content: body };
}

/** Renders an element and everything in it, escaping text and attribute values. */
export function renderXml(root: XmlElement): string {
  const out: string[] = [];
  renderInto(root, out);
  return out.join("");
}

/** `<?xml version="1.0" encoding="UTF-8"?>` and the rendered `root`. */
export function xmlDocument(root: XmlElement): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${renderXml(root)}`;
}

function renderInto(node: XmlElement, out: string[]): void {
  out.push("<", node.name);
  for (const [name, value] of Object.entries(node.attributes ?? {})) {
    out.push(" ", name, '="', escapeXml(value), '"');
  }
  if (typeof node.content === "string") {
    out.push(">", escapeXml(node.content), "</", node.name, ">");
  } else if (node.content.length === 0) {
    out.push("/>");
  } else {
    out.push(">");
    for (const child of node.content) renderInto(child, out);
    out.push("</", node.name, ">");
  }
}

/** Characters XML 1.0 cannot carry at all, even as references: most C0 controls, U+FFFE, U+FFFF. */
// deno-lint-ignore no-control-regex -- finding control characters is the point
const NOT_XML_CHAR = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g;
const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&apos;",
  "\t": "&#9;",
  "\n": "&#10;",
  "\r": "&#13;",
};

/**
 * Escapes text for an element or a double- or single-quoted attribute: `& < > " '` become
 * entities; tab, newline and carriage return become character references (so a parser's
 * line-end and attribute normalization keeps them); characters XML 1.0 cannot carry at all
 * (other C0 controls, U+FFFE, U+FFFF, lone surrogates) become U+FFFD.
 */
export function escapeXml(text: string): string {
  const whole = text.isWellFormed() ? text : text.toWellFormed();
  return whole.replace(NOT_XML_CHAR, "\uFFFD").replace(/[&<>"'\t\n\r]/g, (c) => ESCAPES[c]);
}

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

// ---------------------------------------------------------------------------------------------
// Parsing

/** A parsed element: its local name, its namespace (`""` for none), and its children or text. */
export interface ParsedElement {
  name: string;
  namespace: string;
  children: ParsedElement[];
  /** The element's text, entities decoded; `""` when it has children. */
  text: string;
}

/** Bounds `parseXml` enforces; the defaults are the named limits above. */
export interface XmlLimits {
  bytesMax?: number;
  depthMax?: number;
  elementsMax?: number;
}

/**
 * Parses an XML 1.0 document in UTF-8 (a byte array, or text already decoded) into its root
 * element; see the module comment for what it reads and refuses.
 *
 * @throws {S3Error} `MaxMessageLengthExceeded` for a body over `XML_BODY_BYTES_MAX` bytes;
 *   `MalformedXML`, saying what and where, for anything else it refuses.
 */
export function parseXml(body: Uint8Array | string, limits: XmlLimits = {}): ParsedElement {
  const bytesMax = limits.bytesMax ?? XML_BODY_BYTES_MAX;
  const bytes = typeof body === "string" ? utf8ByteLength(body) : body.byteLength;
  if (bytes > bytesMax) {
    throw new S3Error(
      "MaxMessageLengthExceeded",
      `The XML body is ${bytes} bytes, over the limit of ${bytesMax}`,
    );
  }
  return new XmlParser(decode(body), limits).document();
}

function decode(body: Uint8Array | string): string {
  let text: string;
  if (typeof body === "string") {
    if (!body.isWellFormed()) throw malformed("the text is not valid Unicode");
    text = body.startsWith("\uFEFF") ? body.slice(1) : body;
  } else {
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(body); // drops a leading BOM
    } catch {
      throw malformed("the body is not valid UTF-8");
    }
  }
  const bad = INVALID_CHAR.exec(text);
  if (bad) throw malformed(`it contains ${codePoint(bad[0])}, which XML does not allow`);
  return text.replace(/\r\n?/g, "\n"); // XML's end-of-line handling
}

/** Any character outside XML 1.0's `Char` production (lone surrogates are refused before). */
// deno-lint-ignore no-control-regex -- finding control characters is the point
const INVALID_CHAR = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;
const NAME =
  /[A-Za-z_\u00c0-\ufffd][A-Za-z0-9._\-\u00b7\u00c0-\ufffd]*(?::[A-Za-z_\u00c0-\ufffd][A-Za-z0-9._\-\u00b7\u00c0-\ufffd]*)?/y;
const WHITESPACE = /[ \t\n]*/y;
const PREDEFINED: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function malformed(why: string): S3Error {
  return new S3Error("MalformedXML", `The XML you provided is not well-formed: ${why}`);
}

function codePoint(character: string): string {
  return `U+${character.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
}

/** An element being read: its node, its in-scope namespaces, and whether it has text yet. */
interface OpenElement {
  node: ParsedElement;
  qname: string;
  namespaces: ReadonlyMap<string, string>;
  /** Its text so far; dropped once it has a child, as it must then be whitespace. */
  text: string[];
  /** Whether any of its text so far is not whitespace. */
  hasText: boolean;
}

const XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace";
const ROOT_NAMESPACES: ReadonlyMap<string, string> = new Map([["xml", XML_NAMESPACE], ["", ""]]);

class XmlParser {
  #text: string;
  #pos = 0;
  #depthMax: number;
  #elementsMax: number;
  #elements = 0;

  constructor(text: string, limits: XmlLimits) {
    this.#text = text;
    this.#depthMax = limits.depthMax ?? XML_DEPTH_MAX;
    this.#elementsMax = limits.elementsMax ?? XML_ELEMENTS_MAX;
  }

  document(): ParsedElement {
    if (this.#text.startsWith("<?xml") && /[ \t\n?]/.test(this.#text[5] ?? "")) {
      this.#declaration();
    }
    this.#misc();
    if (this.#pos >= this.#text.length) throw this.#error("there is no root element");
    if (this.#text[this.#pos] !== "<") throw this.#error("expected the root element");
    const root = this.#rootElement();
    this.#misc();
    if (this.#pos < this.#text.length) throw this.#error("there is content after the root element");
    return root;
  }

  /** `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>`, the last two optional. */
  #declaration(): void {
    this.#pos = 5;
    const attributes = this.#attributes();
    if (!this.#text.startsWith("?>", this.#pos)) throw this.#error("the declaration is not closed");
    this.#pos += 2;
    const names = [...attributes.keys()];
    const order = ["version", "encoding", "standalone"];
    if (names[0] !== "version" || names.some((n, i) => order.indexOf(n) < i)) {
      throw this.#error("the declaration must be version, then encoding and standalone");
    }
    if (attributes.get("version") !== "1.0") throw this.#error("only XML version 1.0 is read");
    const encoding = attributes.get("encoding");
    if (encoding !== undefined && !/^(utf-8|us-ascii)$/i.test(encoding)) {
      throw this.#error(`the encoding must be UTF-8, not ${encoding}`);
    }
    const standalone = attributes.get("standalone");
    if (standalone !== undefined && standalone !== "yes" && standalone !== "no") {
      throw this.#error("standalone must be yes or no");
    }
  }

  /** Whitespace and comments between the declaration, the root element and the end. */
  #misc(): void {
    for (;;) {
      this.#whitespace();
      if (this.#text.startsWith("<!--", this.#pos)) this.#comment();
      else if (this.#text.startsWith("<!", this.#pos)) {
        throw this.#error("a DOCTYPE or other declaration is not accepted");
      } else if (this.#text.startsWith("<?", this.#pos)) {
        throw this.#error("processing instructions are not accepted");
      } else return;
    }
  }

  #rootElement(): ParsedElement {
    const stack: OpenElement[] = [];
    const rootNode = this.#startTag(stack);
    while (stack.length > 0) {
      const open = stack[stack.length - 1];
      const lt = this.#text.indexOf("<", this.#pos);
      if (lt === -1) throw this.#error(`<${open.qname}> is not closed`);
      if (lt > this.#pos) this.#addText(open, this.#decodeText(this.#pos, lt));
      this.#pos = lt;
      if (this.#text.startsWith("</", lt)) this.#endTag(stack);
      else if (this.#text.startsWith("<!--", lt)) this.#comment();
      else if (this.#text.startsWith("<![CDATA[", lt)) this.#addText(open, this.#cdata());
      else if (this.#text.startsWith("<!", lt)) throw this.#error("declarations are not accepted");
      else if (this.#text.startsWith("<?", lt)) {
        throw this.#error("processing instructions are not accepted");
      } else this.#startTag(stack);
    }
    return rootNode;
  }

  /** Reads a start tag (or an empty-element tag), adds its element and returns it. */
  #startTag(stack: OpenElement[]): ParsedElement {
    this.#pos++; // "<"
    const qname = this.#name("an element name");
    const attributes = this.#attributes();
    const empty = this.#text.startsWith("/>", this.#pos);
    if (!empty && this.#text[this.#pos] !== ">") throw this.#error(`<${qname}> is not closed`);
    this.#pos += empty ? 2 : 1;

    if (++this.#elements > this.#elementsMax) {
      throw this.#error(`there are more than ${this.#elementsMax} elements`);
    }
    if (stack.length + 1 > this.#depthMax) {
      throw this.#error(`elements nest deeper than ${this.#depthMax}`);
    }
    const parent = stack[stack.length - 1];
    const namespaces = this.#scope(parent?.namespaces ?? ROOT_NAMESPACES, attributes);
    const [prefix, local] = splitName(qname);
    const namespace = namespaces.get(prefix);
    if (namespace === undefined) throw this.#error(`the prefix "${prefix}" is not declared`);
    for (const name of attributes.keys()) {
      const [attributePrefix] = splitName(name);
      if (
        attributePrefix !== "" && attributePrefix !== "xmlns" && !namespaces.has(attributePrefix)
      ) {
        throw this.#error(`the prefix "${attributePrefix}" is not declared`);
      }
    }

    const node: ParsedElement = { name: local, namespace, children: [], text: "" };
    if (parent !== undefined) {
      if (parent.hasText) {
        throw this.#error(`<${parent.qname}> mixes text and elements`);
      }
      parent.node.children.push(node);
    }
    if (parent !== undefined) parent.text = [];
    if (!empty) stack.push({ node, qname, namespaces, text: [], hasText: false });
    return node;
  }

  #endTag(stack: OpenElement[]): void {
    const open = stack.pop()!;
    const at = this.#pos;
    this.#pos += 2; // "</"
    const qname = this.#name("an end tag name");
    this.#whitespace();
    if (this.#text[this.#pos] !== ">") throw this.#error(`</${qname}> is not closed`);
    if (qname !== open.qname) {
      throw this.#error(`</${qname}> does not match <${open.qname}>`, at);
    }
    this.#pos++;
    if (open.node.children.length === 0) open.node.text = open.text.join("");
  }

  #addText(open: OpenElement, text: string): void {
    if (isWhitespace(text)) {
      if (open.node.children.length === 0) open.text.push(text);
      return;
    }
    if (open.node.children.length > 0) throw this.#error(`<${open.qname}> mixes text and elements`);
    open.hasText = true;
    open.text.push(text);
  }

  /** The in-scope namespaces of an element with these attributes. */
  #scope(
    inherited: ReadonlyMap<string, string>,
    attributes: ReadonlyMap<string, string>,
  ): ReadonlyMap<string, string> {
    let scope: Map<string, string> | undefined;
    for (const [name, value] of attributes) {
      const [prefix, local] = splitName(name);
      if (name !== "xmlns" && prefix !== "xmlns") continue;
      const declared = prefix === "" ? "" : local;
      if (declared === "xmlns" || (declared === "xml") !== (value === XML_NAMESPACE)) {
        throw this.#error(`the namespace declaration ${name} is not allowed`);
      }
      if (declared !== "" && value === "") {
        throw this.#error(`the prefix "${declared}" is declared empty`);
      }
      scope ??= new Map(inherited);
      scope.set(declared, value);
    }
    return scope ?? inherited;
  }

  /** Attributes up to `>`, `/>` or `?>`: whitespace-separated `name="value"` or `name='value'`. */
  #attributes(): Map<string, string> {
    const attributes = new Map<string, string>();
    for (;;) {
      const spaced = this.#whitespace();
      const next = this.#text[this.#pos];
      if (next === ">" || next === "/" || next === "?" || next === undefined) return attributes;
      if (!spaced) throw this.#error("attributes must be separated by whitespace");
      const name = this.#name("an attribute name");
      if (attributes.has(name)) throw this.#error(`the attribute ${name} appears twice`);
      this.#whitespace();
      if (this.#text[this.#pos] !== "=") throw this.#error(`the attribute ${name} has no value`);
      this.#pos++;
      this.#whitespace();
      const quote = this.#text[this.#pos];
      if (quote !== '"' && quote !== "'") throw this.#error(`the attribute ${name} is not quoted`);
      const end = this.#text.indexOf(quote, this.#pos + 1);
      if (end === -1) throw this.#error(`the attribute ${name} is not closed`);
      const raw = this.#text.slice(this.#pos + 1, end);
      if (raw.includes("<")) throw this.#error(`the attribute ${name} contains "<"`);
      // Literal tabs and newlines become spaces; ones written as references stay.
      attributes.set(name, this.#decodeReferences(raw.replace(/[\t\n]/g, " "), this.#pos + 1));
      this.#pos = end + 1;
    }
  }

  /** `<!-- ... -->`, which may not contain `--`. */
  #comment(): void {
    const end = this.#text.indexOf("--", this.#pos + 4);
    if (end === -1) throw this.#error("a comment is not closed");
    if (this.#text[end + 2] !== ">") throw this.#error('a comment contains "--"');
    this.#pos = end + 3;
  }

  /** `<![CDATA[ ... ]]>`: its text as it is. */
  #cdata(): string {
    const start = this.#pos + 9;
    const end = this.#text.indexOf("]]>", start);
    if (end === -1) throw this.#error("a CDATA section is not closed");
    this.#pos = end + 3;
    return this.#text.slice(start, end);
  }

  /** Character data from `start` to `end` with its references decoded. */
  #decodeText(start: number, end: number): string {
    const raw = this.#text.slice(start, end);
    if (raw.includes("]]>")) throw this.#error('text contains "]]>"', start);
    return this.#decodeReferences(raw, start);
  }

  /** `raw` (found at `start`) with its entity and character references decoded. */
  #decodeReferences(raw: string, start: number): string {
    if (!raw.includes("&")) return raw;
    let out = "";
    let from = 0;
    for (let amp = raw.indexOf("&"); amp !== -1; amp = raw.indexOf("&", from)) {
      const semicolon = raw.indexOf(";", amp);
      if (semicolon === -1 || semicolon - amp + 1 > REFERENCE_CHARS_MAX) {
        throw this.#error('"&" does not start a reference', start + amp);
      }
      out += raw.slice(from, amp) + this.#reference(raw.slice(amp + 1, semicolon), start + amp);
      from = semicolon + 1;
    }
    return out + raw.slice(from);
  }

  /** The character a reference (`amp`, `#38`, `#x26`) stands for. */
  #reference(body: string, at: number): string {
    if (body in PREDEFINED) return PREDEFINED[body];
    const numeric = /^#(?:([0-9]{1,20})|x([0-9a-fA-F]{1,20}))$/.exec(body);
    if (!numeric) throw this.#error(`&${body}; is not a predefined entity`, at);
    const value = numeric[1] !== undefined ? parseInt(numeric[1], 10) : parseInt(numeric[2], 16);
    const ok = value === 0x9 || value === 0xa || value === 0xd ||
      (value >= 0x20 && value <= 0xd7ff) || (value >= 0xe000 && value <= 0xfffd) ||
      (value >= 0x10000 && value <= 0x10ffff);
    if (!ok) throw this.#error(`&${body}; is not a character XML allows`, at);
    return String.fromCodePoint(value);
  }

  #name(what: string): string {
    NAME.lastIndex = this.#pos;
    const match = NAME.exec(this.#text);
    if (!match) throw this.#error(`expected ${what}`);
    this.#pos = NAME.lastIndex;
    return match[0];
  }

  /** Skips whitespace; whether there was any. */
  #whitespace(): boolean {
    WHITESPACE.lastIndex = this.#pos;
    WHITESPACE.exec(this.#text);
    const moved = WHITESPACE.lastIndex > this.#pos;
    this.#pos = WHITESPACE.lastIndex;
    return moved;
  }

  #error(why: string, at = this.#pos): S3Error {
    return malformed(`${why} (at character ${at})`);
  }
}

function splitName(qname: string): [prefix: string, local: string] {
  const colon = qname.indexOf(":");
  return colon === -1 ? ["", qname] : [qname.slice(0, colon), qname.slice(colon + 1)];
}

function isWhitespace(text: string): boolean {
  return /^[ \t\n\r]*$/.test(text);
}

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
