/**
 * A strict, bounded XML parser for the few request bodies S3 clients send. It reads XML 1.0 in
 * UTF-8: the declaration, comments, namespaces (prefixes are resolved; elements must be in no
 * namespace or S3's), the five predefined entities, character references and CDATA. It refuses a
 * DOCTYPE (so no entity can be declared, and none expanded: no XXE, no billion laughs),
 * processing instructions, text mixed with elements, and anything not well-formed, all as
 * `MalformedXML`; and it stops at `XML_BODY_BYTES_MAX`, `XML_DEPTH_MAX` and `XML_ELEMENTS_MAX`.
 * Pure.
 *
 * @module
 */

import { utf8ByteLength } from "../../protocol/names.ts";
import { S3Error } from "./s3_error.ts";

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

export function isWhitespace(text: string): boolean {
  return /^[ \t\n\r]*$/.test(text);
}
