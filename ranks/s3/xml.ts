/**
 * The S3 gateway's XML out: a tiny builder (`element` makes a tree, `xmlDocument` renders it once,
 * escaping every text). The documents S3 answers with are in `xml_responses.ts`; what it reads
 * is parsed by `xml_parser.ts` and `xml_requests.ts`. Pure: no I/O.
 *
 * @module
 */

/** The namespace of every S3 document. */
export const S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/";

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
