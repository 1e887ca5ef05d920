/**
 * A lean S3 client for the benchmark: HTTP/1.1 over one `Deno.connect` socket per connection,
 * kept alive, one request at a time, each signed with AWS Signature V4 (`UNSIGNED-PAYLOAD`,
 * headers `host;x-amz-content-sha256;x-amz-date`) with `node:crypto`. A request goes out as one
 * write (head and body in one buffer) unless its body is large; a response is parsed just enough
 * to be correct: the status line, the headers, and a body sized by `Content-Length`, sent
 * `Transfer-Encoding: chunked`, or running to the end of the connection. A body is gathered, or
 * handed piece by piece to `onBody` and only counted (for a large GET).
 *
 * It exists because `fetch` and `@smithy/signature-v4` cost the bench process more CPU per small
 * request than the server spends answering it, on a machine whose 2 cores both share: what the
 * bench measured was the client as much as the gateway.
 *
 * @module
 */

import { concatBytes } from "../protocol/bytes.ts";
import {
  amzDateOf,
  canonicalQuery,
  encodePath,
  type S3Credentials,
  S3Signer,
  UNSIGNED_PAYLOAD,
} from "./_s3_sign.ts";

export type { S3Credentials };
export { S3Signer };

const encoder = new TextEncoder();

/** Bytes read from the socket at a time (and the first size of the buffer a head must fit). */
export const READ_BUFFER_BYTES = 256 * 1024;
/** Largest response head (status line and headers) read. */
export const RESPONSE_HEAD_BYTES_MAX = 64 * 1024;
/** Largest body gathered in memory; larger ones must go to `onBody`. */
export const GATHERED_BODY_BYTES_MAX = 256 * 1024 * 1024;
/** Bodies up to this size are copied beside the head and written at once; larger ones follow it. */
export const ONE_WRITE_BODY_BYTES_MAX = 1024 * 1024;

/** One request of `S3Connection.send`. */
export interface S3Request {
  method: string;
  /** `/bucket/key`, not encoded: `encodePath` encodes it. */
  path: string;
  query?: Readonly<Record<string, string>>;
  body?: Uint8Array;
  /** More headers, sent but not signed (so none may be `x-amz-*`: the gateway refuses those). */
  headers?: Readonly<Record<string, string>>;
  /** Takes the body piece by piece instead of gathering it; a piece is valid only in the call. */
  onBody?: (piece: Uint8Array) => void;
}

/** A response: its status, headers (lower-case names) and body (empty when given to `onBody`). */
export interface S3Response {
  status: number;
  headers: Map<string, string>;
  body: Uint8Array;
  /** Bytes of the body, gathered or handed to `onBody`. */
  bodyBytes: number;
}

/** A response whose status is not 2xx. */
export class S3HttpError extends Error {
  constructor(readonly request: string, readonly status: number, readonly body: string) {
    super(`S3 ${request}: HTTP ${status}${body === "" ? "" : `: ${body.slice(0, 2000)}`}`);
    this.name = "S3HttpError";
  }
}

/** The connection's options. */
export interface S3ConnectionOptions {
  /** `READ_BUFFER_BYTES` unless given (tests give tiny ones to split every boundary). */
  readBufferBytes?: number;
  /** The clock, ms since the epoch; `Date.now` unless given. */
  now?: () => number;
}

/**
 * One kept-alive HTTP/1.1 connection to an S3 endpoint, one request at a time. When the server
 * closes it (or says `Connection: close`), the next request opens a new one.
 */
export class S3Connection {
  readonly #hostname: string;
  readonly #port: number;
  readonly #host: string;
  readonly #signer: S3Signer;
  readonly #now: () => number;
  #conn: Deno.TcpConn | undefined;
  #buffer: Uint8Array;
  /** Unread bytes are `#buffer[#start, #end)`. */
  #start = 0;
  #end = 0;
  #busy = false;
  #dateSecond = -1;
  #amzDate = "";

  private constructor(
    address: { hostname: string; port: number },
    signer: S3Signer,
    options: S3ConnectionOptions,
  ) {
    this.#hostname = address.hostname;
    this.#port = address.port;
    this.#host = `${address.hostname}:${address.port}`;
    this.#signer = signer;
    this.#now = options.now ?? Date.now;
    this.#buffer = new Uint8Array(options.readBufferBytes ?? READ_BUFFER_BYTES);
  }

  /** Opens a connection to `host:port`. */
  static async open(
    address: string,
    credentials: S3Credentials | S3Signer,
    options: S3ConnectionOptions = {},
  ): Promise<S3Connection> {
    const colon = address.lastIndexOf(":");
    const hostname = address.slice(0, colon);
    const port = Number(address.slice(colon + 1));
    if (colon < 0 || !Number.isInteger(port)) throw new RangeError(`Not host:port: ${address}`);
    const signer = credentials instanceof S3Signer ? credentials : new S3Signer(credentials);
    const connection = new S3Connection({ hostname, port }, signer, options);
    await connection.#connect();
    return connection;
  }

  /**
   * Sends a signed request and reads its response.
   *
   * @throws {S3HttpError} for a status that is not 2xx; an `Error` for a malformed response or a
   *   connection closed early (the connection is then closed, and reopened by the next request).
   */
  async send(request: S3Request): Promise<S3Response> {
    if (this.#busy) throw new Error("S3Connection: one request at a time");
    this.#busy = true;
    const what = `${request.method} ${request.path}`;
    try {
      if (this.#conn === undefined) await this.#connect();
      await this.#write(request);
      const response = await this.#read(request);
      if (response.status < 200 || response.status > 299) {
        throw new S3HttpError(what, response.status, new TextDecoder().decode(response.body));
      }
      return response;
    } catch (error) {
      if (!(error instanceof S3HttpError)) {
        this.close();
        if (error instanceof Error) error.message = `S3 ${what}: ${error.message}`;
      }
      throw error;
    } finally {
      this.#busy = false;
    }
  }

  close(): void {
    try {
      this.#conn?.close();
    } catch {
      // closed already
    }
    this.#conn = undefined;
    this.#start = this.#end = 0;
  }

  async #connect(): Promise<void> {
    const conn = await Deno.connect({ hostname: this.#hostname, port: this.#port });
    conn.setNoDelay(true);
    this.#conn = conn;
    this.#start = this.#end = 0;
  }

  #date(): string {
    const now = this.#now();
    const second = Math.floor(now / 1000);
    if (second !== this.#dateSecond) {
      this.#dateSecond = second;
      this.#amzDate = amzDateOf(new Date(second * 1000));
    }
    return this.#amzDate;
  }

  async #write(request: S3Request): Promise<void> {
    const path = encodePath(request.path);
    const query = canonicalQuery(request.query ?? {});
    const amzDate = this.#date();
    const authorization = this.#signer.sign({
      method: request.method,
      path,
      query,
      host: this.#host,
      amzDate,
    });
    const body = request.body;
    let head = `${request.method} ${path}${query === "" ? "" : `?${query}`} HTTP/1.1\r\n` +
      `host: ${this.#host}\r\nx-amz-content-sha256: ${UNSIGNED_PAYLOAD}\r\n` +
      `x-amz-date: ${amzDate}\r\nauthorization: ${authorization}\r\n`;
    if (body !== undefined || request.method === "PUT" || request.method === "POST") {
      head += `content-length: ${body?.length ?? 0}\r\n`;
    }
    for (const [name, value] of Object.entries(request.headers ?? {})) {
      head += `${name}: ${value}\r\n`;
    }
    head += "\r\n";
    const conn = this.#conn!;
    if (body === undefined || body.length > ONE_WRITE_BODY_BYTES_MAX) {
      await writeAll(conn, encoder.encode(head));
      if (body !== undefined) await writeAll(conn, body);
    } else {
      const out = new Uint8Array(head.length * 3 + body.length);
      const { written } = encoder.encodeInto(head, out);
      out.set(body, written);
      await writeAll(conn, out.subarray(0, written + body.length));
    }
  }

  async #read(request: S3Request): Promise<S3Response> {
    let head = await this.#readHead();
    while (head.status >= 100 && head.status <= 199) head = await this.#readHead();
    const { status, headers } = head;
    const noBody = request.method === "HEAD" || status === 204 || status === 304;
    // An error's body is gathered, whatever `onBody` was given, to be shown.
    const sink = status >= 200 && status <= 299 ? request.onBody : undefined;
    const pieces: Uint8Array[] = [];
    let bodyBytes = 0;
    const take = (piece: Uint8Array) => {
      bodyBytes += piece.length;
      if (sink) sink(piece);
      else {
        if (bodyBytes > GATHERED_BODY_BYTES_MAX) {
          throw new Error(`A body over ${GATHERED_BODY_BYTES_MAX} bytes with no onBody`);
        }
        pieces.push(piece.slice());
      }
    };
    const encoding = headers.get("transfer-encoding");
    const lengthText = headers.get("content-length");
    let reusable = !/(^|,)\s*close\s*(,|$)/i.test(headers.get("connection") ?? "");
    let body: Uint8Array | undefined;
    if (noBody) {
      // nothing follows the head
    } else if (encoding !== undefined) {
      if (!/(^|,)\s*chunked\s*$/i.test(encoding)) {
        throw new Error(`Unsupported Transfer-Encoding: ${encoding}`);
      }
      await this.#readChunked(take);
    } else if (lengthText !== undefined) {
      if (!/^\d+$/.test(lengthText.trim())) throw new Error(`Bad Content-Length: ${lengthText}`);
      const length = Number(lengthText.trim());
      if (!sink && length <= GATHERED_BODY_BYTES_MAX) {
        body = await this.#readExactly(length);
        bodyBytes = length;
      } else await this.#readLength(length, take);
    } else {
      // Neither: the body runs to the end of the connection.
      while (true) {
        if (this.#start < this.#end) {
          take(this.#buffer.subarray(this.#start, this.#end));
          this.#start = this.#end;
        }
        if (!(await this.#fill())) break;
      }
      reusable = false;
    }
    if (!reusable) this.close();
    if (body === undefined) {
      body = pieces.length === 1 ? pieces[0] : concatBytes(pieces, sink ? 0 : bodyBytes);
    }
    return { status, headers, body, bodyBytes };
  }

  /** The status line and headers, up to the empty line. */
  async #readHead(): Promise<{ status: number; headers: Map<string, string> }> {
    let searchFrom = this.#start;
    let end: number;
    while (true) {
      end = indexOfHeadEnd(this.#buffer, searchFrom, this.#end);
      if (end >= 0) break;
      searchFrom = Math.max(this.#start, this.#end - 3);
      const before = this.#start;
      if (this.#end - this.#start >= RESPONSE_HEAD_BYTES_MAX) {
        throw new Error(`A response head over ${RESPONSE_HEAD_BYTES_MAX} bytes`);
      }
      if (!(await this.#fill(true))) {
        throw new Error(
          this.#end === this.#start
            ? "The server closed the connection before answering"
            : "The connection closed in a response head",
        );
      }
      searchFrom += this.#start - before; // the buffer may have been compacted
    }
    const text = latin1(this.#buffer, this.#start, end);
    this.#start = end + 4;
    const lines = text.split("\r\n");
    const match = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0]);
    if (!match) throw new Error(`Bad status line: ${JSON.stringify(lines[0].slice(0, 200))}`);
    const headers = new Map<string, string>();
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(":");
      if (colon <= 0) throw new Error(`Bad header line: ${JSON.stringify(lines[i].slice(0, 200))}`);
      const name = lines[i].slice(0, colon).trim().toLowerCase();
      const value = lines[i].slice(colon + 1).trim();
      const seen = headers.get(name);
      headers.set(name, seen === undefined ? value : `${seen}, ${value}`);
    }
    return { status: Number(match[1]), headers };
  }

  /** `length` bytes of body, in one new buffer, read straight into it past what is buffered. */
  async #readExactly(length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    const buffered = Math.min(length, this.#end - this.#start);
    out.set(this.#buffer.subarray(this.#start, this.#start + buffered));
    this.#start += buffered;
    let filled = buffered;
    while (filled < length) {
      const n = await this.#conn!.read(out.subarray(filled));
      if (n === null) throw new Error(`The connection closed ${length - filled} bytes early`);
      filled += n;
    }
    return out;
  }

  /** `length` bytes of body, handed to `take` as they come. */
  async #readLength(length: number, take: (piece: Uint8Array) => void): Promise<void> {
    let left = length;
    while (left > 0) {
      if (this.#start === this.#end && !(await this.#fill())) {
        throw new Error(`The connection closed ${left} bytes early`);
      }
      const n = Math.min(left, this.#end - this.#start);
      take(this.#buffer.subarray(this.#start, this.#start + n));
      this.#start += n;
      left -= n;
    }
  }

  /** A chunked body: `SIZE[;ext]\r\n DATA \r\n` ... `0\r\n` trailers `\r\n`. */
  async #readChunked(take: (piece: Uint8Array) => void): Promise<void> {
    while (true) {
      const line = await this.#readLine();
      const match = /^([0-9a-fA-F]{1,15})[ \t]*(;.*)?$/.exec(line);
      if (!match) throw new Error(`Bad chunk size line: ${JSON.stringify(line.slice(0, 200))}`);
      const size = parseInt(match[1], 16);
      if (size === 0) break;
      await this.#readLength(size, take);
      if ((await this.#readLine()) !== "") throw new Error("A chunk not followed by CRLF");
    }
    while ((await this.#readLine()) !== "") {
      // trailers, dropped
    }
  }

  /** One CRLF-ended line (without it), of at most `RESPONSE_HEAD_BYTES_MAX` bytes. */
  async #readLine(): Promise<string> {
    let from = this.#start;
    while (true) {
      for (let i = from; i + 1 < this.#end; i++) {
        if (this.#buffer[i] === 13 && this.#buffer[i + 1] === 10) {
          const line = latin1(this.#buffer, this.#start, i);
          this.#start = i + 2;
          return line;
        }
      }
      if (this.#end - this.#start >= RESPONSE_HEAD_BYTES_MAX) throw new Error("A line too long");
      const scanned = Math.max(0, this.#end - 1 - this.#start);
      if (!(await this.#fill(true))) throw new Error("The connection closed in a chunked body");
      from = this.#start + scanned;
    }
  }

  /**
   * Reads more from the socket into the buffer; false at the end of the stream. With `keep`, the
   * unread bytes stay (moved to the front, the buffer grown when full); otherwise, with nothing
   * unread, the read starts at the front.
   */
  async #fill(keep = false): Promise<boolean> {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (keep && this.#end === this.#buffer.length) {
      if (this.#start > 0) {
        this.#buffer.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else {
        const grown = new Uint8Array(this.#buffer.length * 2);
        grown.set(this.#buffer);
        this.#buffer = grown;
      }
    } else if (this.#end === this.#buffer.length) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    const n = await this.#conn!.read(this.#buffer.subarray(this.#end));
    if (n === null) return false;
    this.#end += n;
    return true;
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await conn.write(bytes.subarray(done));
}

/** Index of the `\r\n\r\n` ending a head in `buffer[from, end)`, or -1. */
function indexOfHeadEnd(buffer: Uint8Array, from: number, end: number): number {
  for (let i = from; i + 3 < end; i++) {
    if (
      buffer[i] === 13 && buffer[i + 1] === 10 && buffer[i + 2] === 13 && buffer[i + 3] === 10
    ) return i;
  }
  return -1;
}

function latin1(bytes: Uint8Array, start: number, end: number): string {
  let out = "";
  for (let i = start; i < end; i += 4096) {
    out += String.fromCharCode(...bytes.subarray(i, Math.min(end, i + 4096)));
  }
  return out;
}

/** What `putMultipart` did. */
export interface MultipartResult {
  uploadId: string;
  parts: number;
  /** The object's ETag as `CompleteMultipartUpload` answered it, without quotes. */
  etag: string;
}

/**
 * Puts `bytes` at `path` as a multipart upload: parts of `partBytes` (the last one shorter),
 * sent over `connections` at once, each connection taking the next part not yet sent; then
 * `CompleteMultipartUpload`. `connections[0]` also creates and completes the upload.
 *
 * @throws {S3HttpError} for a refused request; an `Error` when an answer lacks what it must hold.
 */
export async function putMultipart(
  connections: readonly S3Connection[],
  path: string,
  bytes: Uint8Array,
  partBytes: number,
): Promise<MultipartResult> {
  const created = await connections[0].send({ method: "POST", path, query: { uploads: "" } });
  const uploadId = xmlField(created.body, "UploadId");
  if (uploadId === undefined) throw new Error(`No UploadId in ${decode(created.body)}`);
  const parts = Math.max(1, Math.ceil(bytes.length / partBytes));
  const etags: string[] = new Array(parts);
  let next = 0;
  const lane = async (connection: S3Connection) => {
    while (next < parts) {
      const i = next++;
      const response = await connection.send({
        method: "PUT",
        path,
        query: { partNumber: String(i + 1), uploadId },
        body: bytes.subarray(i * partBytes, Math.min(bytes.length, (i + 1) * partBytes)),
      });
      const etag = response.headers.get("etag");
      if (etag === undefined) throw new Error(`Part ${i + 1} answered without an ETag`);
      etags[i] = etag;
    }
  };
  await Promise.all(connections.slice(0, parts).map(lane));
  const xml = "<CompleteMultipartUpload>" +
    etags.map((etag, i) =>
      `<Part><PartNumber>${i + 1}</PartNumber><ETag>${escapeXml(etag)}</ETag></Part>`
    ).join("") +
    "</CompleteMultipartUpload>";
  const completed = await connections[0].send({
    method: "POST",
    path,
    query: { uploadId },
    body: encoder.encode(xml),
  });
  // S3 may answer 200 and still fail, with an <Error> in the body.
  const etag = xmlField(completed.body, "ETag");
  if (!decode(completed.body).includes("<CompleteMultipartUploadResult") || etag === undefined) {
    throw new Error(`CompleteMultipartUpload failed: ${decode(completed.body).slice(0, 2000)}`);
  }
  return { uploadId, parts, etag: etag.replace(/^"|"$/g, "") };
}

function decode(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/** The text of the first `<name>` element of an XML body, entities decoded. */
function xmlField(body: Uint8Array, name: string): string | undefined {
  const match = new RegExp(`<${name}>([^<]*)</${name}>`).exec(decode(body));
  return match?.[1]
    .replaceAll("&quot;", '"').replaceAll("&apos;", "'").replaceAll("&lt;", "<")
    .replaceAll("&gt;", ">").replaceAll("&#34;", '"').replaceAll("&amp;", "&");
}

function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}
