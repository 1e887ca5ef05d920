/**
 * A small HTTP/1.1 server over a `Deno.Listener`, for the S3 gateway: it hands each request to a
 * handler as a Fetch `Request` and writes its `Response` back, keeping connections alive.
 *
 * Why not `Deno.serve`: it runs each request in a task of its own, so the calls the gateway makes
 * to the data nodes leave one message per request, while connections read here complete together
 * and their calls go out together, as the CBOR port's do (measured: ~7 calls per message against
 * 1). It also costs the server less per small request. What it serves is what S3 clients send:
 *
 * - a request head of at most `HTTP_HEAD_BYTES_MAX`, whole within `HTTP_HEAD_TIMEOUT_MS` of its
 *   first byte (a connection idle between requests is closed after `HTTP_IDLE_TIMEOUT_MS`);
 * - a body framed by `Content-Length` or `Transfer-Encoding: chunked`, streamed to the handler
 *   (never buffered whole), with `Expect: 100-continue` answered when the handler first reads it;
 * - one request at a time per connection (pipelined ones wait their turn), `Connection: close`,
 *   HTTP/1.0 without keep-alive;
 * - a response with its `Content-Length` when it has one or its body is short, chunked otherwise;
 *   none for HEAD, 204 and 304. A write that makes no progress for `HTTP_WRITE_STALL_MS` closes
 *   the connection.
 *
 * Bad input (a malformed head, a bad length, an unsupported transfer coding) gets a 400, 431 or
 * 501 and the connection closed; at most `HTTP_CONNECTIONS_MAX` connections are served at once.
 *
 * @module
 */

import { concatBytes } from "../../protocol/bytes.ts";
import type { Log } from "../env/env.ts";

/** Bytes of a request head (request line and headers) at most. */
export const HTTP_HEAD_BYTES_MAX = 64 * 1024;
/** A request head must arrive whole within this long of its first byte. */
export const HTTP_HEAD_TIMEOUT_MS = 30_000;
/** A connection with no request for this long is closed. */
export const HTTP_IDLE_TIMEOUT_MS = 120_000;
/** A response write that makes no progress for this long closes its connection. */
export const HTTP_WRITE_STALL_MS = 60_000;
/** Connections served at once; more are closed at once. */
export const HTTP_CONNECTIONS_MAX = 1024;
/** Bytes read from a connection at a time. */
export const HTTP_READ_BUFFER_BYTES = 64 * 1024;
/** A response body without a length is gathered up to this many bytes to be sent with one. */
export const HTTP_GATHER_BYTES_MAX = 64 * 1024;
/** Bytes of a chunk-size line of a chunked body (with extensions) at most. */
const CHUNK_LINE_BYTES_MAX = 4096;
/** Bytes of a chunked body's trailer section at most. */
const TRAILER_BYTES_MAX = 16 * 1024;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/1\.([01])$/;
const REASONS: Record<number, string> = {
  100: "Continue",
  200: "OK",
  204: "No Content",
  206: "Partial Content",
  304: "Not Modified",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Content Too Large",
  416: "Range Not Satisfiable",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
};

const latin1 = new TextDecoder("latin1");
const encoder = new TextEncoder();

/** The timeouts and bounds of a server; tests shorten them. */
export interface HttpLimits {
  headTimeoutMs: number;
  idleTimeoutMs: number;
  writeStallMs: number;
  connectionsMax: number;
  /** How often a connection's deadline is looked at (the timeouts' precision). */
  watchdogMs: number;
}

/** What `dfs serve` runs with. */
export const HTTP_LIMITS: Readonly<HttpLimits> = {
  headTimeoutMs: HTTP_HEAD_TIMEOUT_MS,
  idleTimeoutMs: HTTP_IDLE_TIMEOUT_MS,
  writeStallMs: HTTP_WRITE_STALL_MS,
  connectionsMax: HTTP_CONNECTIONS_MAX,
  watchdogMs: 1000,
};

/** Answers one request. */
export type HttpHandler = (request: Request) => Response | Promise<Response>;

/** A running server. */
export interface HttpServer {
  readonly addr: Deno.NetAddr;
  /** Stops accepting, closes every connection (requests under way fail), and waits for them. */
  shutdown(): Promise<void>;
}

/** An error that answers with `status` and closes the connection. */
class HttpFault extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Serves `handler` on `listener` until `shutdown()`. */
export function serveHttp(
  listener: Deno.Listener,
  handler: HttpHandler,
  options: { log: Log; scheme?: "http" | "https"; limits?: Partial<HttpLimits> },
): HttpServer {
  const limits = { ...HTTP_LIMITS, ...options.limits };
  const connections = new Set<Connection>();
  const served = new Set<Promise<void>>();
  const scheme = options.scheme ?? "http";
  const accepting = (async () => {
    for await (const conn of listener) {
      if (connections.size >= limits.connectionsMax) {
        conn.close();
        continue;
      }
      const connection = new Connection(conn, handler, { log: options.log, scheme, limits });
      connections.add(connection);
      const done = connection.serve().finally(() => {
        connections.delete(connection);
        served.delete(done);
      });
      served.add(done);
    }
  })().catch(() => {}); // the listener closed
  return {
    addr: listener.addr as Deno.NetAddr,
    async shutdown() {
      try {
        listener.close();
      } catch { /* closed already */ }
      await accepting;
      for (const connection of connections) connection.close();
      await Promise.all(served);
    },
  };
}

/** One client connection: requests in turn. */
class Connection {
  #conn: Deno.Conn;
  #handler: HttpHandler;
  #log: Log;
  #scheme: string;
  #buffer = new Uint8Array(HTTP_READ_BUFFER_BYTES);
  /** Bytes read and not yet used: `#buffer[#start, #end)`. */
  #start = 0;
  #end = 0;
  #closed = false;
  /**
   * When the head being read or the write under way must be done (`Date.now()` ms), else
   * Infinity; one watchdog per connection looks every `watchdogMs` and closes it then.
   */
  #deadline = Infinity;
  #timedOut = false;
  #watchdog: ReturnType<typeof setInterval>;
  #limits: HttpLimits;

  constructor(
    conn: Deno.Conn,
    handler: HttpHandler,
    options: { log: Log; scheme: string; limits: HttpLimits },
  ) {
    this.#conn = conn;
    this.#handler = handler;
    this.#log = options.log;
    this.#scheme = options.scheme;
    this.#limits = options.limits;
    this.#watchdog = setInterval(() => {
      if (Date.now() < this.#deadline) return;
      this.#timedOut = true;
      this.close();
    }, options.limits.watchdogMs);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#watchdog);
    try {
      this.#conn.close();
    } catch { /* closed already */ }
  }

  async serve(): Promise<void> {
    try {
      while (!this.#closed) {
        const head = await this.#readHead();
        if (head === undefined) break;
        if (!await this.#answer(head)) break;
      }
    } catch (error) {
      if (error instanceof HttpFault) await this.#fault(error);
      // Anything else: the client went away or broke the connection; nothing to answer.
    } finally {
      this.close();
    }
  }

  /** Reads and parses the next request head; undefined when the client closed between requests. */
  async #readHead(): Promise<Head | undefined> {
    this.#deadline = Date.now() +
      (this.#end > this.#start ? this.#limits.headTimeoutMs : this.#limits.idleTimeoutMs);
    try {
      // How far past `#start` the head's end was looked for (`#fill` may move the bytes).
      let scanned = 0;
      while (true) {
        const at = indexOfHeadEnd(this.#buffer, this.#start + scanned, this.#end);
        if (at >= 0) {
          const text = latin1.decode(this.#buffer.subarray(this.#start, at));
          this.#start = at + 4;
          return parseHead(text);
        }
        scanned = Math.max(0, this.#end - this.#start - 3);
        if (this.#end - this.#start >= HTTP_HEAD_BYTES_MAX) {
          throw new HttpFault(431, `The request head is over ${HTTP_HEAD_BYTES_MAX} bytes`);
        }
        const wasEmpty = this.#end === this.#start;
        const n = await this.#fill();
        if (n === null) {
          if (wasEmpty) return undefined;
          throw new HttpFault(400, "The connection ended inside a request head");
        }
        if (wasEmpty) this.#deadline = Date.now() + this.#limits.headTimeoutMs;
      }
    } catch (error) {
      if (this.#timedOut) return undefined;
      throw error;
    } finally {
      this.#deadline = Infinity;
    }
  }

  /** Reads more bytes into the buffer (compacting or growing it); null at the end. */
  async #fill(): Promise<number | null> {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buffer.length) {
      if (this.#start > 0) {
        this.#buffer.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else {
        const grown = new Uint8Array(Math.min(this.#buffer.length * 2, HTTP_HEAD_BYTES_MAX + 4));
        grown.set(this.#buffer);
        this.#buffer = grown;
      }
    }
    const n = await this.#conn.read(this.#buffer.subarray(this.#end));
    if (n === null) return null;
    this.#end += n;
    return n;
  }

  /** Answers one request; false when the connection is to be closed after it. */
  async #answer(head: Head): Promise<boolean> {
    const body = this.#bodyOf(head);
    const host = head.headers.get("host") ?? "localhost";
    const hasBody = body !== null && head.method !== "GET" && head.method !== "HEAD";
    let request: Request;
    try {
      request = new Request(`${this.#scheme}://${host}${head.target}`, {
        method: head.method,
        headers: head.headers,
        body: hasBody ? body.stream : null,
      });
    } catch {
      throw new HttpFault(400, "The request target or headers are malformed");
    }
    let response: Response;
    try {
      response = await this.#handler(request);
    } catch (error) {
      this.#log.error("dfs: an HTTP request failed:", error);
      response = new Response(null, { status: 500 });
    }
    const keepAlive = head.keepAlive && (body === null || body.ended());
    await this.#respond(head, response, keepAlive);
    return keepAlive;
  }

  /** The request's body as a stream, or null for none. */
  #bodyOf(head: Head): Body | null {
    const length = head.headers.get("content-length");
    const coding = head.headers.get("transfer-encoding");
    if (coding !== null) {
      if (length !== null) {
        throw new HttpFault(400, "A request has both Content-Length and Transfer-Encoding");
      }
      if (coding.trim().toLowerCase() !== "chunked") {
        throw new HttpFault(501, `Transfer-Encoding ${coding} is not supported`);
      }
      return this.#chunkedBody(head);
    }
    if (length === null) return null;
    if (!/^\d{1,16}$/.test(length.trim())) {
      throw new HttpFault(400, `Content-Length ${JSON.stringify(length)} is not a length`);
    }
    const size = Number(length.trim());
    return size === 0 ? null : this.#sizedBody(head, size);
  }

  /** Sends `100 Continue` once, if the client waits for it. */
  #continuer(head: Head): () => Promise<void> {
    let sent = !head.expectsContinue;
    return async () => {
      if (sent) return;
      sent = true;
      await this.#write(encoder.encode("HTTP/1.1 100 Continue\r\n\r\n"));
    };
  }

  #sizedBody(head: Head, size: number): Body {
    let left = size;
    const goOn = this.#continuer(head);
    const stream = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        await goOn();
        if (this.#start === this.#end && await this.#fill() === null) {
          controller.error(new Error(`The body ended ${left} bytes short of its length`));
          return;
        }
        const n = Math.min(left, this.#end - this.#start);
        controller.enqueue(this.#buffer.slice(this.#start, this.#start + n));
        this.#start += n;
        left -= n;
        if (left === 0) controller.close();
      },
    }, { highWaterMark: 0 });
    return { stream, ended: () => left === 0 };
  }

  #chunkedBody(head: Head): Body {
    let left = 0; // bytes of the current chunk still to come
    let done = false;
    const goOn = this.#continuer(head);
    const line = async (max: number, what: string): Promise<string> => {
      let scanned = 0; // past `#start`, as for a head
      while (true) {
        const at = this.#buffer.subarray(this.#start + scanned, this.#end).indexOf(10);
        if (at >= 0) {
          const end = this.#start + scanned + at;
          const text = latin1.decode(this.#buffer.subarray(this.#start, end)).replace(/\r$/, "");
          this.#start = end + 1;
          return text;
        }
        scanned = this.#end - this.#start;
        if (this.#end - this.#start > max) throw new Error(`A chunked body's ${what} is too long`);
        if (await this.#fill() === null) throw new Error("The connection ended inside a body");
      }
    };
    const stream = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        await goOn();
        if (left === 0) {
          const size = (await line(CHUNK_LINE_BYTES_MAX, "chunk size")).split(";")[0].trim();
          if (!/^[0-9a-fA-F]{1,12}$/.test(size)) {
            controller.error(new Error(`A chunk size ${JSON.stringify(size)} is not hex`));
            return;
          }
          left = parseInt(size, 16);
          if (left === 0) {
            let trailers = 0;
            while (true) {
              const trailer = await line(TRAILER_BYTES_MAX, "trailer");
              trailers += trailer.length;
              if (trailers > TRAILER_BYTES_MAX) throw new Error("The trailers are too long");
              if (trailer === "") break;
            }
            done = true;
            controller.close();
            return;
          }
        }
        if (this.#start === this.#end && await this.#fill() === null) {
          controller.error(new Error("The connection ended inside a chunk"));
          return;
        }
        const n = Math.min(left, this.#end - this.#start);
        controller.enqueue(this.#buffer.slice(this.#start, this.#start + n));
        this.#start += n;
        left -= n;
        if (left === 0 && (await line(2, "chunk end")) !== "") {
          controller.error(new Error("A chunk does not end where its size says"));
        }
      },
    }, { highWaterMark: 0 });
    return { stream, ended: () => done };
  }

  /** Writes a response; its body is cancelled if the client goes away first. */
  async #respond(head: Head, response: Response, keepAlive: boolean): Promise<void> {
    const reader = response.body?.getReader();
    try {
      await this.#writeResponse(head, response, reader, keepAlive);
    } catch (error) {
      await reader?.cancel().catch(() => {});
      throw error;
    }
  }

  /** Writes a response: its head, then its body sized, gathered or chunked. */
  async #writeResponse(
    head: Head,
    response: Response,
    reader: ReadableStreamDefaultReader<Uint8Array> | undefined,
    keepAlive: boolean,
  ): Promise<void> {
    const status = response.status;
    const noBody = head.method === "HEAD" || status === 204 || status === 304 ||
      (status >= 100 && status < 200);
    let lines = `HTTP/1.1 ${status} ${REASONS[status] ?? "Status"}\r\n`;
    let declared: string | null = null;
    for (const [name, value] of response.headers) {
      if (name === "content-length") declared = value;
      else if (name !== "transfer-encoding" && name !== "connection") {
        lines += `${name}: ${value}\r\n`;
      }
    }
    if (!keepAlive) lines += "connection: close\r\n";
    if (noBody) {
      if (declared !== null) lines += `content-length: ${declared}\r\n`;
      await this.#write(encoder.encode(lines + "\r\n"));
      await reader?.cancel();
      return;
    }
    // Gather a short body (or one whose length is known and short) to send with its length.
    const gathered: Uint8Array[] = [];
    let bytes = 0;
    let ended = reader === undefined;
    while (!ended && bytes <= HTTP_GATHER_BYTES_MAX) {
      const next = await reader!.read();
      if (next.done) ended = true;
      else {
        gathered.push(next.value);
        bytes += next.value.length;
      }
    }
    if (ended) {
      if (declared !== null && Number(declared) !== bytes) {
        throw new Error(`A response declared ${declared} bytes but has ${bytes}`);
      }
      const headBytes = encoder.encode(lines + `content-length: ${bytes}\r\n\r\n`);
      await this.#write(concatBytes([headBytes, ...gathered], headBytes.length + bytes));
      return;
    }
    if (declared !== null) {
      await this.#write(encoder.encode(lines + `content-length: ${declared}\r\n\r\n`));
      let sent = 0;
      for (const piece of gathered) await this.#write(piece), sent += piece.length;
      while (true) {
        const next = await reader!.read();
        if (next.done) break;
        await this.#write(next.value);
        sent += next.value.length;
      }
      if (sent !== Number(declared)) {
        throw new Error(`A response declared ${declared} bytes but sent ${sent}`);
      }
      return;
    }
    await this.#write(encoder.encode(lines + "transfer-encoding: chunked\r\n\r\n"));
    const chunk = (piece: Uint8Array) =>
      this.#write(concatBytes([encoder.encode(`${piece.length.toString(16)}\r\n`), piece, CRLF]));
    for (const piece of gathered) if (piece.length > 0) await chunk(piece);
    while (true) {
      const next = await reader!.read();
      if (next.done) break;
      if (next.value.length > 0) await chunk(next.value);
    }
    await this.#write(encoder.encode("0\r\n\r\n"));
  }

  /** Writes all of `bytes`; the watchdog closes the connection if the client stops reading. */
  async #write(bytes: Uint8Array): Promise<void> {
    let written = 0;
    try {
      while (written < bytes.length) {
        this.#deadline = Date.now() + this.#limits.writeStallMs;
        written += await this.#conn.write(bytes.subarray(written));
      }
    } finally {
      this.#deadline = Infinity;
    }
  }

  /** Answers a fault (before the request reached the handler) and lets the connection close. */
  async #fault(fault: HttpFault): Promise<void> {
    const body = encoder.encode(fault.message + "\n");
    const head = `HTTP/1.1 ${fault.status} ${REASONS[fault.status] ?? "Error"}\r\n` +
      `content-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`;
    await this.#write(concatBytes([encoder.encode(head), body])).catch(() => {});
  }
}

/** A parsed request head. */
interface Head {
  method: string;
  target: string;
  headers: Headers;
  keepAlive: boolean;
  expectsContinue: boolean;
}

/** A request body being read. */
interface Body {
  stream: ReadableStream<Uint8Array>;
  /** Whether it was read to its end (else the connection cannot carry another request). */
  ended(): boolean;
}

const CRLF = new Uint8Array([13, 10]);

/** Parses a request head (without its final empty line). */
export function parseHead(text: string): Head {
  const lines = text.split("\r\n");
  // A client may send empty lines before a request.
  while (lines.length > 0 && lines[0] === "") lines.shift();
  const match = REQUEST_LINE.exec(lines[0] ?? "");
  if (!match) throw new HttpFault(400, "The request line is malformed");
  const [, method, target, minor] = match;
  if (!target.startsWith("/")) throw new HttpFault(400, "The request target must be a path");
  const headers = new Headers();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    const value = line.slice(colon + 1).trim();
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) {
      throw new HttpFault(400, "A request header is malformed");
    }
    try {
      headers.append(name, value);
    } catch {
      throw new HttpFault(400, "A request header is malformed");
    }
  }
  if (minor === "1" && !headers.has("host")) throw new HttpFault(400, "The request has no Host");
  const connection = (headers.get("connection") ?? "").toLowerCase();
  const keepAlive = minor === "1"
    ? !/\bclose\b/.test(connection)
    : /\bkeep-alive\b/.test(connection);
  const expectsContinue = minor === "1" &&
    (headers.get("expect") ?? "").toLowerCase() === "100-continue";
  return { method, target, headers, keepAlive, expectsContinue };
}

function indexOfHeadEnd(buffer: Uint8Array, from: number, end: number): number {
  for (let i = Math.max(from, 0); i + 3 < end; i++) {
    if (buffer[i] === 13 && buffer[i + 1] === 10 && buffer[i + 2] === 13 && buffer[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}
