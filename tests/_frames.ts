/**
 * The wire as a hostile client sees it: frames built byte by byte, a bare protocol connection that
 * sends what the client library never would, and the expectations on what the server answers.
 *
 * @module
 */

import assert from "node:assert/strict";
import { FrameReader } from "../protocol/conn.ts";
import { decodeFrameBody, encodeFrame } from "../protocol/frame.ts";
import { NAME_BYTES_MAX, PROTOCOL_VERSION } from "../protocol/limits.ts";
import { withTimeout } from "./_wait.ts";

/** Longest wait for one reply or one close; a server that hangs fails the test instead. */
export const REPLY_TIMEOUT_MS = 10_000;
/** Longest error message a reply may carry, whatever the client sent (it may quote a name). */
export const ERROR_MESSAGE_CHARS_MAX = NAME_BYTES_MAX + 200;

const utf8 = new TextEncoder();

/** Writes all of `bytes`, however many writes it takes. */
export async function writeAll(
  writer: { write(p: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await writer.write(bytes.subarray(at));
}

// ---- hand-made frames ----

/** A length prefix and `body`: a frame with any bytes at all in it. */
export function frameOf(body: Uint8Array | readonly number[]): Uint8Array {
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, 4);
  return frame;
}

/** A lone length prefix claiming `length` bytes. */
export function lengthPrefix(length: number): Uint8Array {
  const prefix = new Uint8Array(4);
  new DataView(prefix.buffer).setUint32(0, length);
  return prefix;
}

/** The CBOR head of major type `major` with argument `value` (below 2^32). */
export function cborHead(major: number, value: number): number[] {
  const type = major << 5;
  if (value < 24) return [type | value];
  if (value < 0x100) return [type | 24, value];
  if (value < 0x10000) return [type | 25, value >> 8, value & 0xff];
  return [type | 26, value >>> 24, (value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff];
}

/** A CBOR text string made of exactly `bytes`, valid UTF-8 or not. */
export function cborText(bytes: Uint8Array | readonly number[]): number[] {
  return [...cborHead(3, bytes.length), ...bytes];
}

/** `{ op, id, [key]: <text string of raw bytes> }` as a frame, built byte by byte. */
export function requestWithRawText(
  request: { op: string; id: number },
  field: { key: string; bytes: readonly number[] },
): Uint8Array {
  return frameOf([
    0xa3,
    ...cborText(utf8.encode("op")),
    ...cborText(utf8.encode(request.op)),
    ...cborText(utf8.encode("id")),
    ...cborHead(0, request.id),
    ...cborText(utf8.encode(field.key)),
    ...cborText(field.bytes),
  ]);
}

// ---- a bare connection ----

/** A bare protocol connection for tests that send what the client library never would. */
export interface RawConnection extends Disposable {
  /** Encodes and sends one message as a frame. */
  send(message: unknown): Promise<void>;
  /** Sends raw bytes. */
  sendBytes(bytes: Uint8Array): Promise<void>;
  /** The next frame from the server, decoded. Throws when the server closed the connection. */
  next(): Promise<Record<string, unknown>>;
  /** Ends the sending side only (TCP half-close): the server sees end of stream, replies still arrive. */
  closeWrite(): Promise<void>;
  close(): void;
}

/** Connects to a test server; with `hello`, completes the handshake first. */
export async function rawConnection(
  address: string,
  options: { hello?: boolean } = {},
): Promise<RawConnection> {
  const [hostname, port] = address.split(":");
  const conn = await Deno.connect({ hostname, port: Number(port) });
  const reader = new FrameReader(conn);
  let closed = false;
  const raw: RawConnection = {
    send: (message) => raw.sendBytes(encodeFrame(message)),
    sendBytes: (bytes) => writeAll(conn, bytes),
    async next() {
      const body = await reader.read();
      if (body === null) throw new Error("Server closed the connection");
      return decodeFrameBody(body) as Record<string, unknown>;
    },
    closeWrite: () => conn.closeWrite(),
    close() {
      if (closed) return;
      closed = true;
      conn.close();
    },
    [Symbol.dispose]() {
      raw.close();
    },
  };
  if (options.hello) {
    await raw.send({ op: "hello", version: PROTOCOL_VERSION });
    const hello = await raw.next();
    if (hello.op !== "hello") throw new Error(`Handshake refused: ${JSON.stringify(hello)}`);
  }
  return raw;
}

// ---- expectations ----

/** A decoded frame as one line of JSON, byte strings shown by their length. */
export function describeFrame(frame: Record<string, unknown>): string {
  return JSON.stringify(frame, (_, v) => v instanceof Uint8Array ? `<${v.length} bytes>` : v);
}

export interface ExpectedError {
  id: number;
  code: string;
  message: RegExp;
}

/** The next frame is an error with this id, code and message (and the message is short). */
export async function expectError(raw: RawConnection, expected: ExpectedError): Promise<void> {
  const reply = await withTimeout(raw.next(), {
    timeoutMs: REPLY_TIMEOUT_MS,
    what: `error ${expected.code}`,
  });
  assert.equal(reply.op, "error", `expected an error, got ${describeFrame(reply)}`);
  assert.deepEqual(
    { id: reply.id, code: reply.code },
    { id: expected.id, code: expected.code },
    `error ${describeFrame(reply)}`,
  );
  assert.match(String(reply.message), expected.message);
  assert.ok(String(reply.message).length <= ERROR_MESSAGE_CHARS_MAX, "the message is short");
}

/** The server closes the connection (end of stream or reset) with no further frame. */
export async function expectClosed(
  raw: RawConnection,
  options: { timeoutMs?: number } = {},
): Promise<void> {
  const outcome = await withTimeout(
    raw.next().then((frame) => ({ frame }), (error: Error) => ({ error })),
    {
      timeoutMs: options.timeoutMs ?? REPLY_TIMEOUT_MS,
      what: "the server to close the connection",
    },
  );
  if ("frame" in outcome) assert.fail(`expected a close, got ${describeFrame(outcome.frame)}`);
}
