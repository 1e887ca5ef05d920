/**
 * Hostile clients: whatever a client sends, the server answers with a precise error or closes that
 * one connection, memory stays bounded, nothing is left on disk, and every other client and stored
 * file is untouched. Each step keeps a stored file and a healthy second client and checks both
 * afterwards (plus no stray chunk file and the server's resident memory).
 *
 * 1. Malformed frames, bad fields, bad names, oversized data, clients that vanish or read slowly.
 * 2. Handshake and idle timeouts, `--connections-max` and `--requests-inflight-max`.
 * 3. Requests held open by clients that stop reading or writing (memory bound).
 * 4. A fuzz test: at least 100,000 generated malformed frames on thousands of connections (seeded,
 *    bounded in count and time), after which the server still serves and its memory is back.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { DfsClient, DfsError, type FileMeta } from "../client.ts";
import { Encoder } from "../protocol/cbor.ts";
import { FrameReader } from "../protocol/conn.ts";
import { ERROR_CODES } from "../protocol/errors.ts";
import { decodeFrameBody, encodeDataHeader, encodeFrame } from "../protocol/frame.ts";
import {
  CHUNK_SIZE_BYTES,
  FILE_SIZE_BYTES_MAX,
  FRAME_SIZE_BYTES_MAX,
  NAME_BYTES_MAX,
  PROTOCOL_VERSION,
} from "../protocol/limits.ts";
import {
  assertNoStrayChunks,
  pseudoRandomBytes,
  type RawConnection,
  rawConnection,
  TestServer,
} from "./_server.ts";

const MiB = 1024 * 1024;
/** Longest wait for one reply or one close; a server that hangs fails the test instead. */
const REPLY_TIMEOUT_MS = 10_000;
/**
 * Resident memory the server may use at any check of these tests. It idles near 90 MiB; its pool
 * keeps up to 64 idle 1 MiB chunk buffers; V8 grows its heaps under load and frees dead buffers only
 * at its next collection (it lets up to 64 MiB of them pile up). 320 MiB covers all that, and is
 * far below what buffering a whole file, or a frame per connection, would cost.
 */
const SERVER_RSS_BYTES_MAX = 320 * MiB;

const STORED_NAME = "keep/stored.bin";
const STORED = pseudoRandomBytes(2 * MiB + 3, 0x5707ed);

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Rejects if `promise` takes longer than `ms`, naming what was awaited. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---- hand-made frames ----

/** A length prefix and `body`: a frame with any bytes at all in it. */
function frameOf(body: Uint8Array | readonly number[]): Uint8Array {
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, 4);
  return frame;
}

/** A lone length prefix claiming `length` bytes. */
function lengthPrefix(length: number): Uint8Array {
  const prefix = new Uint8Array(4);
  new DataView(prefix.buffer).setUint32(0, length);
  return prefix;
}

/** The CBOR head of major type `major` with argument `value` (below 2^32). */
function cborHead(major: number, value: number): number[] {
  const type = major << 5;
  if (value < 24) return [type | value];
  if (value < 0x100) return [type | 24, value];
  if (value < 0x10000) return [type | 25, value >> 8, value & 0xff];
  return [type | 26, value >>> 24, (value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff];
}

/** A CBOR text string made of exactly `bytes`, valid UTF-8 or not. */
function cborText(bytes: Uint8Array | readonly number[]): number[] {
  return [...cborHead(3, bytes.length), ...bytes];
}

const utf8 = new TextEncoder();

/** `{ op, id, [key]: <text string of raw bytes> }` as a frame, built byte by byte. */
function requestWithRawText(
  op: string,
  id: number,
  key: string,
  bytes: readonly number[],
): Uint8Array {
  return frameOf([
    0xa3,
    ...cborText(utf8.encode("op")),
    ...cborText(utf8.encode(op)),
    ...cborText(utf8.encode("id")),
    ...cborHead(0, id),
    ...cborText(utf8.encode(key)),
    ...cborText(bytes),
  ]);
}

// ---- expectations ----

interface ExpectedError {
  id: number;
  code: string;
  message: RegExp;
}

/** Longest error message a reply may carry, whatever the client sent (it may quote a name). */
const ERROR_MESSAGE_CHARS_MAX = NAME_BYTES_MAX + 200;

/** The next frame is an error with this id, code and message (and the message is short). */
async function expectError(raw: RawConnection, expected: ExpectedError): Promise<void> {
  const reply = await within(REPLY_TIMEOUT_MS, `error ${expected.code}`, raw.next());
  assert.equal(reply.op, "error", `expected an error, got ${describe(reply)}`);
  assert.deepEqual(
    { id: reply.id, code: reply.code },
    { id: expected.id, code: expected.code },
    `error ${describe(reply)}`,
  );
  assert.match(String(reply.message), expected.message);
  assert.ok(String(reply.message).length <= ERROR_MESSAGE_CHARS_MAX, "the message is short");
}

/** The server closes the connection (end of stream or reset) with no further frame. */
async function expectClosed(raw: RawConnection, timeoutMs = REPLY_TIMEOUT_MS): Promise<void> {
  const outcome = await within(
    timeoutMs,
    "the server to close the connection",
    raw.next().then((frame) => ({ frame }), (error: Error) => ({ error })),
  );
  if ("frame" in outcome) assert.fail(`expected a close, got ${describe(outcome.frame)}`);
}

/** The connection still serves: a `meta` of the stored file with `id` is answered. */
async function expectServes(raw: RawConnection, id: number, stored: FileMeta): Promise<void> {
  await raw.send({ op: "meta", id, name: STORED_NAME });
  const reply = await within(REPLY_TIMEOUT_MS, "a meta reply", raw.next());
  assert.equal(reply.op, "ok", `expected ok, got ${describe(reply)}`);
  assert.equal(reply.id, id);
  assert.deepEqual(reply.result, stored);
}

function describe(frame: Record<string, unknown>): string {
  return JSON.stringify(frame, (_, v) => v instanceof Uint8Array ? `<${v.length} bytes>` : v);
}

async function assertDfsError(promise: Promise<unknown>, code: string, pattern: RegExp) {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof DfsError, `expected a DfsError, got ${e}`);
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
}

/**
 * What every step must leave as it was: the stored file (same metadata, same bytes), a healthy
 * client that still works, no chunk file that metadata does not reference, memory under the bound.
 */
async function checkBystanders(
  server: TestServer,
  healthy: DfsClient,
  stored: FileMeta,
): Promise<void> {
  await within(
    30_000,
    "the bystander checks",
    (async () => {
      assert.deepEqual(await healthy.meta(STORED_NAME), stored, "the stored file is unchanged");
      assert.equal(sha256(await healthy.getBytes(STORED_NAME)), stored.sha256);
      await assertNoStrayChunks(server, healthy);
      const rss = await server.rssBytes();
      assert.ok(rss < SERVER_RSS_BYTES_MAX, `server resident memory ${mib(rss)} MiB`);
    })(),
  );
}

function mib(bytes: number): string {
  return (bytes / MiB).toFixed(1);
}

/** Nothing is stored under `name`. */
async function assertNotStored(healthy: DfsClient, name: string): Promise<void> {
  await assertDfsError(healthy.meta(name), "NOT_FOUND", /file does not exist/);
}

// ---- bad names ----

/** Names every request must refuse with INVALID_REQUEST, and the reason the message must give. */
const BAD_NAMES: [label: string, name: string, why: RegExp][] = [
  ["empty", "", /Invalid name: name is empty/],
  ["1025 bytes", "x".repeat(NAME_BYTES_MAX + 1), /name is 1025 bytes, over the limit of 1024/],
  ["1026 bytes in 513 characters", "é".repeat(513), /name is 1026 bytes, over the limit/],
  ["with NUL", "a\0b", /name contains a NUL character/],
  ["a leading /", "/etc/passwd", /name starts with "\/"/],
  ["an empty segment", "a//b", /name has an empty segment/],
  ["a trailing /", "a/", /name has an empty segment/],
  [".", ".", /name has a "\." segment/],
  ["a . segment", "a/./b", /name has a "\." segment/],
  ["..", "..", /name has a "\.\." segment/],
  ["a leading .. segment", "../etc/passwd", /name has a "\.\." segment/],
  ["a trailing .. segment", "a/..", /name has a "\.\." segment/],
];

/** Text strings whose bytes are not UTF-8, sent as CBOR text (major type 3) byte by byte. */
const INVALID_UTF8_NAMES: [label: string, bytes: number[]][] = [
  ["a lone continuation byte", [0x61, 0x80, 0x62]],
  ["an overlong /", [0x61, 0xc0, 0xaf]],
  ["a UTF-16 surrogate", [0x61, 0xed, 0xa0, 0x80]],
  ["a cut-off sequence", [0x61, 0xe2, 0x82]],
  ["a code point over U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
  ["a 0xff byte in a 101-byte name", [...utf8.encode("a".repeat(100)), 0xff]],
];

// ---- a raw connection that reads slowly ----

/** A connection whose bytes the test reads itself, as slowly as it likes. */
class SlowReader {
  readonly conn: Deno.TcpConn;
  #pending: Uint8Array[] = [];

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  static async open(address: string): Promise<SlowReader> {
    const [hostname, port] = address.split(":");
    const conn = await Deno.connect({ hostname, port: Number(port) });
    return new SlowReader(conn);
  }

  /** Reads up to `bytes` raw bytes; returns how many arrived (0 at end of stream). */
  async readRaw(bytes: number): Promise<number> {
    const buffer = new Uint8Array(bytes);
    const n = await this.conn.read(buffer);
    if (n === null) return 0;
    this.#pending.push(buffer.slice(0, n));
    return n;
  }

  /** A frame reader that first replays the bytes read raw so far. */
  frames(): FrameReader {
    const pending = this.#pending;
    const conn = this.conn;
    return new FrameReader({
      read(p: Uint8Array): Promise<number | null> {
        const head = pending[0];
        if (!head) return conn.read(p);
        const n = Math.min(p.length, head.length);
        p.set(head.subarray(0, n));
        if (n === head.length) pending.shift();
        else pending[0] = head.subarray(n);
        return Promise.resolve(n);
      },
      write: (p: Uint8Array) => conn.write(p),
    });
  }
}

/** Reads a get's data frames up to its `end`, hashing them; fails on any other frame. */
async function readGet(reader: FrameReader): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  while (true) {
    const body = await reader.read();
    assert.ok(body, "the server closed the connection before the end of the get");
    const frame = decodeFrameBody(body) as Record<string, unknown>;
    if (frame.op === "end") return { sha256: hash.digest("hex"), bytes };
    assert.equal(frame.op, "data", `expected data, got ${describe(frame)}`);
    hash.update(frame.bytes as Uint8Array);
    bytes += (frame.bytes as Uint8Array).length;
  }
}

Deno.test("a hostile client gets a precise error and disturbs nobody", async (t) => {
  await using server = await TestServer.start();
  await using healthy = await DfsClient.connect(server.address);
  const stored = await healthy.put(STORED_NAME, STORED);
  const bystanders = () => checkBystanders(server, healthy, stored);
  await bystanders();

  await t.step(
    "a length prefix over FRAME_SIZE_BYTES_MAX: TOO_LARGE, then the connection is closed",
    async () => {
      const rssBefore = await server.rssBytes();
      for (const length of [FRAME_SIZE_BYTES_MAX + 1, 0x7fff_ffff, 0xffff_ffff]) {
        using raw = await rawConnection(server.address, { hello: true });
        await raw.sendBytes(lengthPrefix(length));
        await expectError(raw, {
          id: 0,
          code: "TOO_LARGE",
          message: new RegExp(
            `^Frame of ${length} bytes is over the limit of ${FRAME_SIZE_BYTES_MAX}$`,
          ),
        });
        await expectClosed(raw);
      }
      // Before the handshake too, and many at once: nothing is allocated for the claimed length.
      const raws = await Promise.all(
        Array.from({ length: 32 }, () => rawConnection(server.address)),
      );
      await Promise.all(raws.map((raw) => raw.sendBytes(lengthPrefix(0xffff_ffff))));
      for (const raw of raws) {
        await expectError(raw, { id: 0, code: "TOO_LARGE", message: /^Frame of 4294967295 bytes/ });
        await expectClosed(raw);
        raw.close();
      }
      const grown = (await server.rssBytes()) - rssBefore;
      assert.ok(grown < 16 * MiB, `server grew by ${mib(grown)} MiB for 35 oversized prefixes`);
      await bystanders();
    },
  );

  await t.step(
    "an oversized frame in the middle of an upload closes the connection and stores nothing",
    async () => {
      using raw = await rawConnection(server.address, { hello: true });
      await raw.send({ op: "put", id: 1, name: "oversized/mid-upload" });
      await raw.sendBytes(encodeDataHeader(1, CHUNK_SIZE_BYTES));
      await raw.sendBytes(pseudoRandomBytes(CHUNK_SIZE_BYTES, 1));
      // A data frame with a 2 MiB payload: its length prefix is over the frame limit.
      const header = encodeDataHeader(1, 2 * MiB);
      const length = new DataView(header.buffer).getUint32(0);
      await raw.sendBytes(header);
      await expectError(raw, {
        id: 0,
        code: "TOO_LARGE",
        message: new RegExp(`^Frame of ${length} bytes is over the limit`),
      });
      await expectClosed(raw);
      await assertNotStored(healthy, "oversized/mid-upload");
      await bystanders();
    },
  );

  await t.step(
    "a frame cut off by a half-close: INVALID_REQUEST naming where, then closed",
    async () => {
      const meta = encodeFrame({ op: "meta", id: 3, name: STORED_NAME });
      const cases: [Uint8Array, RegExp][] = [
        [meta.subarray(0, 2), /^Connection ended inside a frame header$/],
        [meta.subarray(0, meta.length - 1), /^Connection ended inside a frame body$/],
      ];
      for (const [bytes, message] of cases) {
        using raw = await rawConnection(server.address, { hello: true });
        await raw.sendBytes(bytes);
        await raw.closeWrite();
        await expectError(raw, { id: 0, code: "INVALID_REQUEST", message });
        await expectClosed(raw);
      }
      await bystanders();
    },
  );

  await t.step(
    "a client that vanishes mid-frame of an upload, or mid-upload of a stored name, leaves nothing",
    async () => {
      {
        const raw = await rawConnection(server.address, { hello: true });
        await raw.send({ op: "put", id: 1, name: "vanished/mid-frame" });
        for (let i = 0; i < 3; i++) {
          await raw.sendBytes(encodeDataHeader(1, CHUNK_SIZE_BYTES));
          await raw.sendBytes(pseudoRandomBytes(CHUNK_SIZE_BYTES, 10 + i));
        }
        await raw.sendBytes(encodeDataHeader(1, CHUNK_SIZE_BYTES));
        await raw.sendBytes(pseudoRandomBytes(CHUNK_SIZE_BYTES / 2, 13));
        raw.close();
      }
      {
        // Overwriting the stored file, then gone: the stored version must stay.
        const raw = await rawConnection(server.address, { hello: true });
        await raw.send({ op: "put", id: 2, name: STORED_NAME, size: 4 * MiB });
        await raw.sendBytes(encodeDataHeader(2, CHUNK_SIZE_BYTES));
        await raw.sendBytes(pseudoRandomBytes(CHUNK_SIZE_BYTES, 14));
        raw.close();
      }
      await sleep(200);
      await assertNotStored(healthy, "vanished/mid-frame");
      await bystanders();
    },
  );

  await t.step("bytes that are not CBOR: INVALID_REQUEST, and the connection goes on", async () => {
    using raw = await rawConnection(server.address, { hello: true });
    const bodies: [label: string, body: number[]][] = [
      ["an empty frame", []],
      ["a break byte", [0xff]],
      ["reserved additional information", [0x1c]],
      ["a cut-off map", [0xa3, 0x62, 0x6f, 0x70]],
      ["a byte string claiming 2^64-1 bytes", [0x5b, ...new Array<number>(8).fill(0xff)]],
      ["an array claiming 2^32-16 items", [0x9b, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xf0]],
      ["two items in one frame", [0xa0, 0xa0]],
      ["random bytes", [...pseudoRandomBytes(64, 99)].map((b) => b | 0x1c)],
      ["100,000 nested arrays", [...new Array(100_000).fill(0x81), 0x00]],
    ];
    for (const [label, body] of bodies) {
      await raw.sendBytes(frameOf(body));
      await expectError(raw, { id: 0, code: "INVALID_REQUEST", message: /^Malformed frame: ./ })
        .catch((e) => assert.fail(`${label}: ${e.message}`));
    }
    await expectServes(raw, 100, stored);
    await bystanders();
  });

  await t.step(
    "CBOR of the wrong shape or types: INVALID_REQUEST (TOO_LARGE for sizes) naming the field",
    async () => {
      using raw = await rawConnection(server.address, { hello: true });
      const notMap = /^Invalid request: a message must be a CBOR map$/;
      const badId = /^Invalid request: id must be an integer from 0 to 4294967295$/;
      const cases: [message: unknown, expected: ExpectedError][] = [
        [[1, 2, 3], { id: 0, code: "INVALID_REQUEST", message: notMap }],
        [42, { id: 0, code: "INVALID_REQUEST", message: notMap }],
        ["meta", { id: 0, code: "INVALID_REQUEST", message: notMap }],
        [null, { id: 0, code: "INVALID_REQUEST", message: notMap }],
        [new Uint8Array(8), { id: 0, code: "INVALID_REQUEST", message: notMap }],
        [new Map<string, unknown>([["op", "meta"], ["id", 9], ["name", STORED_NAME]]), {
          id: 0,
          code: "INVALID_REQUEST",
          message: notMap,
        }],
        [{ op: "meta", name: STORED_NAME }, { id: 0, code: "INVALID_REQUEST", message: badId }],
        [{ op: "meta", id: -1, name: "x" }, { id: 0, code: "INVALID_REQUEST", message: badId }],
        [{ op: "meta", id: 1.5, name: "x" }, { id: 0, code: "INVALID_REQUEST", message: badId }],
        [{ op: "meta", id: 2 ** 32, name: "x" }, {
          id: 0,
          code: "INVALID_REQUEST",
          message: badId,
        }],
        [{ op: "meta", id: "7", name: "x" }, { id: 0, code: "INVALID_REQUEST", message: badId }],
        [{ op: "meta", id: [7], name: "x" }, { id: 0, code: "INVALID_REQUEST", message: badId }],
        [
          { op: "meta", id: 10, name: 5 },
          { id: 10, code: "INVALID_REQUEST", message: /^Invalid name: name must be a string$/ },
        ],
        [
          { op: "get", id: 11, name: utf8.encode(STORED_NAME) },
          { id: 11, code: "INVALID_REQUEST", message: /^Invalid name: name must be a string$/ },
        ],
        [
          { op: "put", id: 12, name: "typed/a", size: -1 },
          { id: 12, code: "INVALID_REQUEST", message: /size must be a non-negative integer/ },
        ],
        [
          { op: "put", id: 13, name: "typed/b", size: 1.5 },
          { id: 13, code: "INVALID_REQUEST", message: /size must be a non-negative integer/ },
        ],
        [
          { op: "put", id: 14, name: "typed/c", size: "10" },
          { id: 14, code: "INVALID_REQUEST", message: /size must be a non-negative integer/ },
        ],
        [
          { op: "put", id: 15, name: "typed/d", size: FILE_SIZE_BYTES_MAX + 1 },
          {
            id: 15,
            code: "TOO_LARGE",
            message: /^File of 1099511627777 bytes is over the limit of 1099511627776$/,
          },
        ],
        [
          { op: "get", id: 25, name: STORED_NAME, start: -1 },
          { id: 25, code: "INVALID_REQUEST", message: /start must be a non-negative integer/ },
        ],
        [
          { op: "get", id: 26, name: STORED_NAME, end: "9" },
          { id: 26, code: "INVALID_REQUEST", message: /end must be a non-negative integer/ },
        ],
        [
          { op: "put", id: 27, name: "typed/e", replicas: 0 },
          { id: 27, code: "INVALID_REQUEST", message: /replicas must be a positive integer/ },
        ],
        [
          { op: "data", id: 16, bytes: "not bytes" },
          { id: 16, code: "INVALID_REQUEST", message: /data bytes must be a byte string/ },
        ],
        [
          { op: "data", id: 17, bytes: [1, 2, 3] },
          { id: 17, code: "INVALID_REQUEST", message: /data bytes must be a byte string/ },
        ],
        [
          { op: "data", id: 18, bytes: new Uint8Array(3) },
          { id: 18, code: "INVALID_REQUEST", message: /^No upload in progress with id 18$/ },
        ],
        [
          { op: "end", id: 19, sha256: "F".repeat(64) },
          { id: 19, code: "INVALID_REQUEST", message: /sha256 must be 64 lowercase hex digits/ },
        ],
        [
          { op: "end", id: 20, sha256: 12 },
          { id: 20, code: "INVALID_REQUEST", message: /sha256 must be 64 lowercase hex digits/ },
        ],
        [
          { op: "end", id: 21 },
          { id: 21, code: "INVALID_REQUEST", message: /^No upload in progress with id 21$/ },
        ],
        [
          { op: "list", id: 22, prefix: 5 },
          { id: 22, code: "INVALID_REQUEST", message: /^Invalid name: prefix must be a string$/ },
        ],
        [
          { op: "list", id: 23, prefix: "x".repeat(NAME_BYTES_MAX + 1) },
          { id: 23, code: "INVALID_REQUEST", message: /prefix is over the limit of 1024 bytes/ },
        ],
        [
          { op: "list", id: 24, prefix: "a\0" },
          { id: 24, code: "INVALID_REQUEST", message: /prefix contains a NUL character/ },
        ],
      ];
      for (const [message, expected] of cases) {
        await raw.send(message);
        await expectError(raw, expected).catch((e) =>
          assert.fail(`${describe({ message })}: ${e.message}`)
        );
      }
      // A refused put drops the frames that follow it quietly: no reply, nothing stored.
      await raw.send({ op: "data", id: 12, bytes: new Uint8Array(10) });
      await raw.send({ op: "end", id: 12 });
      for (const id of [13, 14, 15, 27]) await raw.send({ op: "abort", id });
      await expectServes(raw, 101, stored);
      for (const name of ["typed/a", "typed/b", "typed/c", "typed/d", "typed/e"]) {
        await assertNotStored(healthy, name);
      }
      await bystanders();
    },
  );

  await t.step(
    "an op whose value cannot be printed is an unknown operation, not an internal error",
    async () => {
      using raw = await rawConnection(server.address, { hello: true });
      // cbor-x decodes this map to { toString: 1 }, which String() cannot convert.
      await raw.send({ op: { toString: 1 }, id: 30 });
      await expectError(raw, { id: 30, code: "INVALID_REQUEST", message: /unknown operation/ });
      await expectServes(raw, 102, stored);
      await bystanders();
    },
  );

  await t.step("an unknown operation: INVALID_REQUEST with its id", async () => {
    using raw = await rawConnection(server.address, { hello: true });
    const cases: [unknown, number, RegExp][] = [
      [
        { op: "delete", id: 31, name: STORED_NAME },
        31,
        /^Invalid request: unknown operation "delete"$/,
      ],
      [{ op: "PUT", id: 32, name: "x" }, 32, /unknown operation "PUT"/],
      [{ op: "hello", id: 33, version: PROTOCOL_VERSION }, 33, /unknown operation "hello"/],
      [{ op: 7, id: 34 }, 34, /^Invalid request: unknown operation 7$/],
      [{ id: 35 }, 35, /^Invalid request: unknown operation undefined$/],
      // A long value is cut short in the message.
      [{ op: "x".repeat(10_000), id: 36 }, 36, /^Invalid request: unknown operation "x{40}"$/],
      [{ op: ["get"], id: 37 }, 37, /^Invalid request: unknown operation of type array$/],
    ];
    for (const [message, id, pattern] of cases) {
      await raw.send(message);
      await expectError(raw, { id, code: "INVALID_REQUEST", message: pattern });
    }
    await expectServes(raw, 103, stored);
    await bystanders();
  });

  await t.step("a wrong protocol version: VERSION_MISMATCH, then closed", async () => {
    const versions: [unknown, RegExp][] = [
      [PROTOCOL_VERSION + 1, /^Protocol version 2 is not supported \(server speaks 1\)$/],
      [0, /^Protocol version 0 is not supported/],
      [undefined, /^Protocol version undefined is not supported/],
      ["x".repeat(5000), /^Protocol version "x{40}" is not supported \(server speaks 1\)$/],
      [{ toString: 1 }, /^Protocol version of type object is not supported \(server speaks 1\)$/],
    ];
    for (const [version, message] of versions) {
      using raw = await rawConnection(server.address);
      await raw.send({ op: "hello", version });
      await expectError(raw, { id: 0, code: "VERSION_MISMATCH", message })
        .catch((e) => assert.fail(`version ${describe({ version })}: ${e.message}`));
      await expectClosed(raw);
    }
    await assertDfsError(
      (async () => {
        // The client library reports it too.
        using raw = await rawConnection(server.address);
        await raw.send({ op: "hello", version: 99 });
        const reply = await raw.next();
        throw DfsError.fromWire(reply);
      })(),
      "VERSION_MISMATCH",
      /Protocol version 99/,
    );
    await bystanders();
  });

  await t.step("no hello first: INVALID_REQUEST, then closed", async () => {
    const firsts: [Uint8Array, RegExp][] = [
      [
        encodeFrame({ op: "meta", id: 1, name: STORED_NAME }),
        /^Invalid request: the first frame must be a hello$/,
      ],
      [encodeFrame({ op: "put", id: 1, name: "no-hello" }), /the first frame must be a hello/],
      [encodeFrame([1, 2]), /^Invalid request: a message must be a CBOR map$/],
      [frameOf([0xff]), /^Malformed frame: /],
    ];
    for (const [frame, message] of firsts) {
      using raw = await rawConnection(server.address);
      await raw.sendBytes(frame);
      await expectError(raw, { id: 0, code: "INVALID_REQUEST", message });
      await expectClosed(raw);
    }
    await assertNotStored(healthy, "no-hello");
    await bystanders();
  });

  await t.step(
    "a request id reused while in flight: INVALID_REQUEST, the first request unharmed",
    async () => {
      using raw = await rawConnection(server.address, { hello: true });
      const inUse = /^Request id 1 is already in use on this connection$/;
      const first = pseudoRandomBytes(1000, 40);
      await raw.send({ op: "put", id: 1, name: "reuse/first" });
      await raw.send({ op: "data", id: 1, bytes: first.subarray(0, 500) });
      await raw.send({ op: "put", id: 1, name: "reuse/second" });
      await expectError(raw, { id: 1, code: "INVALID_REQUEST", message: inUse });
      for (const op of ["get", "meta"]) {
        await raw.send({ op, id: 1, name: STORED_NAME });
        await expectError(raw, { id: 1, code: "INVALID_REQUEST", message: inUse });
      }
      await raw.send({ op: "list", id: 1, prefix: "" });
      await expectError(raw, { id: 1, code: "INVALID_REQUEST", message: inUse });
      await raw.send({ op: "data", id: 1, bytes: first.subarray(500) });
      await raw.send({ op: "end", id: 1, sha256: sha256(first) });
      const ok = await within(REPLY_TIMEOUT_MS, "the put's answer", raw.next());
      assert.equal(ok.op, "ok", describe(ok));
      assert.equal((ok.result as FileMeta).sha256, sha256(first));
      assert.deepEqual(await healthy.getBytes("reuse/first"), first);
      await assertNotStored(healthy, "reuse/second");
      await bystanders();
    },
  );

  await t.step(
    "bad names are INVALID_REQUEST for meta, get, put and list, and nothing is stored",
    async () => {
      using raw = await rawConnection(server.address, { hello: true });
      let id = 200;
      const names = (await healthy.list()).map((e) => e.name);
      const check = async (label: string, frames: Uint8Array[], why: RegExp) => {
        // meta and get answer with one error; a refused put answers once and drops its
        // data and end quietly, so the meta after it must be the next reply.
        for (const frame of frames) await raw.sendBytes(frame);
        await expectError(raw, { id, code: "INVALID_REQUEST", message: why })
          .catch((e) => assert.fail(`${label}: ${e.message}`));
        id++;
      };
      for (const [label, name, why] of BAD_NAMES) {
        for (const op of ["meta", "get"]) {
          await check(`${op} of a name ${label}`, [encodeFrame({ op, id, name })], why);
        }
        await check(`put of a name ${label}`, [
          encodeFrame({ op: "put", id, name }),
          encodeFrame({ op: "data", id, bytes: new Uint8Array(10) }),
          encodeFrame({ op: "end", id }),
        ], why);
      }
      const badUtf8 = /^Invalid name: name is not valid UTF-8$/;
      for (const [label, bytes] of INVALID_UTF8_NAMES) {
        for (const op of ["meta", "get"]) {
          await check(
            `${op} of a name with ${label}`,
            [requestWithRawText(op, id, "name", bytes)],
            badUtf8,
          );
        }
        await check(`put of a name with ${label}`, [
          requestWithRawText("put", id, "name", bytes),
          encodeFrame({ op: "data", id, bytes: new Uint8Array(10) }),
          encodeFrame({ op: "end", id }),
        ], badUtf8);
        await check(
          `list of a prefix with ${label}`,
          [requestWithRawText("list", id, "prefix", bytes)],
          /^Invalid name: prefix is not valid UTF-8$/,
        );
      }
      await expectServes(raw, id++, stored);
      // The limits are exact: these are valid names (of files that do not exist).
      for (
        const name of ["x".repeat(NAME_BYTES_MAX), "é".repeat(512), "日本/語 ✓", "a/.b/..c/..."]
      ) {
        await raw.send({ op: "meta", id, name });
        await expectError(raw, { id: id++, code: "NOT_FOUND", message: /file does not exist/ });
      }
      assert.deepEqual((await healthy.list()).map((e) => e.name), names, "nothing was stored");
      await bystanders();
    },
  );

  await t.step(
    "a data frame bigger than the chunk size: TOO_LARGE for that upload, the connection goes on",
    async () => {
      using raw = await rawConnection(server.address, { hello: true });
      await raw.send({ op: "put", id: 5, name: "too-large/chunk" });
      await raw.send({ op: "data", id: 5, bytes: pseudoRandomBytes(1000, 50) });
      await raw.sendBytes(encodeDataHeader(5, CHUNK_SIZE_BYTES + 1));
      await raw.sendBytes(new Uint8Array(CHUNK_SIZE_BYTES + 1));
      await expectError(raw, {
        id: 5,
        code: "TOO_LARGE",
        message: /^Data frame of 1048577 bytes is over the limit of 1048576$/,
      });
      await raw.send({ op: "data", id: 5, bytes: pseudoRandomBytes(1000, 51) });
      await raw.send({ op: "end", id: 5 });
      await expectServes(raw, 6, stored);
      await assertNotStored(healthy, "too-large/chunk");
      await bystanders();
    },
  );

  await t.step(
    "more data than the declared size, or less: INVALID_REQUEST and nothing committed",
    async () => {
      using raw = await rawConnection(server.address, { hello: true });
      await raw.send({ op: "put", id: 7, name: "declared/over", size: MiB + 10 });
      await raw.sendBytes(encodeDataHeader(7, CHUNK_SIZE_BYTES));
      await raw.sendBytes(pseudoRandomBytes(CHUNK_SIZE_BYTES, 60));
      await raw.send({ op: "data", id: 7, bytes: new Uint8Array(11) });
      await expectError(raw, {
        id: 7,
        code: "INVALID_REQUEST",
        message: /^Upload of "declared\/over" sent more than its declared 1048586 bytes$/,
      });
      await raw.send({ op: "data", id: 7, bytes: new Uint8Array(5) });
      await raw.send({ op: "end", id: 7 });
      await raw.send({ op: "put", id: 8, name: "declared/under", size: 100 });
      await raw.send({ op: "data", id: 8, bytes: new Uint8Array(60) });
      await raw.send({ op: "end", id: 8 });
      await expectError(raw, {
        id: 8,
        code: "INVALID_REQUEST",
        message: /^Upload of "declared\/under" ended after 60 of its declared 100 bytes$/,
      });
      await expectServes(raw, 9, stored);
      await assertNotStored(healthy, "declared/over");
      await assertNotStored(healthy, "declared/under");
      await bystanders();
    },
  );

  const big = pseudoRandomBytes(64 * MiB, 0xb16);
  const bigMeta = await healthy.put("big.bin", big);

  await t.step(
    "a client that vanishes mid-get releases the version it read: overwritten, its chunks go",
    async () => {
      for (const readFrames of [0, 1, 5]) {
        const raw = await rawConnection(server.address, { hello: true });
        await raw.send({ op: "get", id: 1, name: "big.bin" });
        for (let i = 0; i < readFrames; i++) {
          await within(REPLY_TIMEOUT_MS, "a get frame", raw.next());
        }
        raw.close();
      }
      await sleep(200);
      // Rewriting big.bin retires the version those readers had pinned; its chunks must be freed.
      const again = await healthy.put("big.bin", big);
      assert.ok(again.version > bigMeta.version);
      await bystanders();
    },
  );

  await t.step(
    "a client reading a 64 MiB get at a trickle does not grow the server's memory",
    async () => {
      const rssBefore = await server.rssBytes();
      const slow = await SlowReader.open(server.address);
      try {
        await slow.conn.write(encodeFrame({ op: "hello", version: PROTOCOL_VERSION }));
        await slow.conn.write(encodeFrame({ op: "get", id: 1, name: "big.bin" }));
        let rssPeak = rssBefore;
        let trickled = 0;
        const started = Date.now();
        while (Date.now() - started < 2500) {
          trickled += await slow.readRaw(16 * 1024);
          await sleep(25);
          rssPeak = Math.max(rssPeak, await server.rssBytes());
        }
        // Meanwhile other clients are served as usual.
        assert.equal(sha256(await healthy.getBytes(STORED_NAME)), stored.sha256);
        const grown = rssPeak - rssBefore;
        console.log(
          `slow reader: ${mib(trickled)} MiB read in 2.5 s; server RSS ${mib(rssBefore)} MiB, ` +
            `peak ${mib(rssPeak)} MiB (+${mib(grown)})`,
        );
        assert.ok(trickled < 32 * MiB, "the reader really was slow");
        // Buffering the unread rest of the file would cost over 32 MiB more.
        assert.ok(grown < 24 * MiB, `server grew by ${mib(grown)} MiB for one slow reader`);
        const frames = slow.frames();
        const hello = decodeFrameBody((await frames.read())!) as Record<string, unknown>;
        assert.equal(hello.op, "hello");
        const ok = decodeFrameBody((await frames.read())!) as Record<string, unknown>;
        assert.equal(ok.op, "ok", describe(ok));
        const got = await within(30_000, "the rest of the get", readGet(frames));
        assert.deepEqual(got, { sha256: sha256(big), bytes: big.length });
      } finally {
        slow.conn.close();
      }
      await bystanders();
    },
  );

  await t.step(
    "rm and mv with missing or bad fields are INVALID_REQUEST and remove nothing",
    async () => {
      using raw = await rawConnection(server.address, { hello: true });
      const names = (await healthy.list()).map((e) => e.name);
      const cases: [unknown, number, RegExp][] = [
        // Neither a name nor a prefix: not "remove everything".
        [{ op: "rm", id: 40 }, 40, /^Invalid request: rm takes a name or a prefix$/],
        [
          { op: "rm", id: 41, name: STORED_NAME, prefix: "keep/" },
          41,
          /rm takes a name or a prefix/,
        ],
        [{ op: "rm", id: 42, name: null }, 42, /^Invalid name: name must be a string$/],
        [{ op: "rm", id: 43, name: "../keep" }, 43, /name has a "\.\." segment/],
        [{ op: "rm", id: 44, prefix: 5 }, 44, /prefix must be a string$/],
        [{ op: "mv", id: 45, from: STORED_NAME }, 45, /^Invalid name: name must be a string$/],
        [{ op: "mv", id: 46, from: STORED_NAME, to: "/abs" }, 46, /name starts with "\/"/],
        [{ op: "mv", id: 47, from: "", to: "x" }, 47, /^Invalid name: name is empty$/],
      ];
      for (const [message, id, pattern] of cases) {
        await raw.send(message);
        await expectError(raw, { id, code: "INVALID_REQUEST", message: pattern })
          .catch((e) => assert.fail(`${describe({ message })}: ${e.message}`));
      }
      assert.deepEqual((await healthy.list()).map((e) => e.name), names, "nothing was removed");
      await bystanders();
    },
  );

  await t.step("no error was internal: the server logged no internal error", async () => {
    await server.stop("SIGTERM");
    const log = await server.stderr;
    const internal = log.split("\n").filter((line) => line.includes("internal error"));
    assert.deepEqual(internal, [], `internal errors logged:\n${log.slice(0, 3000)}`);
  });
});

Deno.test("timeouts and connection limits close or refuse only the offending client", async (t) => {
  const HANDSHAKE_MS = 500;
  const IDLE_MS = 1000;
  const CONNECTIONS_MAX = 8;
  const INFLIGHT_MAX = 4;
  await using server = await TestServer.start({
    extraArgs: [
      "--handshake-timeout-ms",
      String(HANDSHAKE_MS),
      "--idle-timeout-ms",
      String(IDLE_MS),
      "--connections-max",
      String(CONNECTIONS_MAX),
      "--requests-inflight-max",
      String(INFLIGHT_MAX),
    ],
  });
  await using healthy = await DfsClient.connect(server.address);
  const stored = await healthy.put(STORED_NAME, STORED);
  // The healthy client is never idle for the idle timeout: it asks for the stored file's metadata
  // every IDLE_MS / 4 on its one connection, which must never fail.
  let healthyRequests = 0;
  const keepAlive = new AbortController();
  const healthyLoop = (async () => {
    while (!keepAlive.signal.aborted) {
      assert.deepEqual(await healthy.meta(STORED_NAME), stored);
      healthyRequests++;
      await sleep(IDLE_MS / 4);
    }
  })();
  healthyLoop.catch(() => keepAlive.abort());
  const bystanders = async () => {
    assert.ok(!keepAlive.signal.aborted, "the healthy client's requests all succeeded");
    await checkBystanders(server, healthy, stored);
  };

  /** Milliseconds until the server closes `raw`, which must send no frame first. */
  const closedAfter = async (raw: RawConnection) => {
    const started = Date.now();
    await expectClosed(raw, 5_000);
    return Date.now() - started;
  };

  await t.step(
    `connections that send nothing are closed silently after the handshake timeout`,
    async () => {
      const raws = await Promise.all(
        Array.from({ length: 5 }, () => rawConnection(server.address)),
      );
      const times = await Promise.all(raws.map(closedAfter));
      for (const raw of raws) raw.close();
      for (const ms of times) {
        assert.ok(ms >= HANDSHAKE_MS - 50 && ms < HANDSHAKE_MS + 2000, `closed after ${ms} ms`);
      }
      await bystanders();
    },
  );

  await t.step("half a hello, trickled, is closed after the handshake timeout", async () => {
    using raw = await rawConnection(server.address);
    const started = Date.now();
    const hello = encodeFrame({ op: "hello", version: PROTOCOL_VERSION });
    const closed = closedAfter(raw);
    for (let i = 0; i < hello.length - 1; i++) {
      try {
        await raw.sendBytes(hello.subarray(i, i + 1));
      } catch {
        break; // already closed
      }
      await sleep(100);
      if (Date.now() - started > HANDSHAKE_MS + 2000) break;
    }
    const ms = await closed;
    assert.ok(ms >= HANDSHAKE_MS - 50 && ms < HANDSHAKE_MS + 2000, `closed after ${ms} ms`);
    await bystanders();
  });

  await t.step(
    "after the hello, silence or a trickled frame is closed after the idle timeout",
    async () => {
      {
        using raw = await rawConnection(server.address, { hello: true });
        const ms = await closedAfter(raw);
        assert.ok(
          ms >= IDLE_MS - 50 && ms < IDLE_MS + 2000,
          `idle connection closed after ${ms} ms`,
        );
      }
      {
        using raw = await rawConnection(server.address, { hello: true });
        const started = Date.now();
        const closed = closedAfter(raw);
        const meta = encodeFrame({ op: "meta", id: 1, name: STORED_NAME });
        for (let i = 0; i < meta.length - 1; i++) {
          try {
            await raw.sendBytes(meta.subarray(i, i + 1));
          } catch {
            break;
          }
          await sleep(150);
          if (Date.now() - started > IDLE_MS + 2000) break;
        }
        const ms = await closed;
        assert.ok(
          ms >= IDLE_MS - 50 && ms < IDLE_MS + 2000,
          `trickling connection closed after ${ms} ms`,
        );
      }
      await bystanders();
    },
  );

  await t.step(
    `one connection over --connections-max ${CONNECTIONS_MAX} is refused with UNAVAILABLE`,
    async () => {
      // The healthy client holds one connection; fill the rest.
      const held = await Promise.all(
        Array.from(
          { length: CONNECTIONS_MAX - 1 },
          () => rawConnection(server.address, { hello: true }),
        ),
      );
      try {
        const full = /^Server is at its limit of 8 connections$/;
        for (let i = 0; i < 3; i++) {
          using extra = await rawConnection(server.address);
          await expectError(extra, { id: 0, code: "UNAVAILABLE", message: full });
          await expectClosed(extra);
        }
        await assertDfsError(DfsClient.connect(server.address), "UNAVAILABLE", full);
        // The connections already open are not disturbed.
        for (const [i, raw] of held.entries()) await expectServes(raw, i + 1, stored);
        assert.deepEqual(await healthy.meta(STORED_NAME), stored);
        // A slot freed is a slot usable again.
        held.pop()!.close();
        await sleep(100);
        await using late = await within(
          REPLY_TIMEOUT_MS,
          "a connection",
          DfsClient.connect(server.address),
        );
        assert.deepEqual(await late.meta(STORED_NAME), stored);
      } finally {
        for (const raw of held) raw.close();
      }
      await sleep(100);
      await bystanders();
    },
  );

  await t.step(
    `one request over --requests-inflight-max ${INFLIGHT_MAX} is refused with UNAVAILABLE`,
    async () => {
      using raw = await rawConnection(server.address, { hello: true });
      for (let id = 1; id <= INFLIGHT_MAX; id++) {
        await raw.send({ op: "put", id, name: `inflight/${id}` });
        await raw.send({ op: "data", id, bytes: pseudoRandomBytes(100, id) });
      }
      const busy = /^Connection is at its limit of 4 requests in flight$/;
      await raw.send({ op: "meta", id: 10, name: STORED_NAME });
      await expectError(raw, { id: 10, code: "UNAVAILABLE", message: busy });
      await raw.send({ op: "put", id: 11, name: "inflight/over" });
      await expectError(raw, { id: 11, code: "UNAVAILABLE", message: busy });
      // A refused put is closed by the client with abort, as the client library does: the
      // server drops its data frames until then.
      await raw.send({ op: "data", id: 11, bytes: new Uint8Array(10) });
      await raw.send({ op: "abort", id: 11 });
      // Other connections have their own budget.
      assert.deepEqual(await healthy.meta(STORED_NAME), stored);
      // Finishing one request frees its slot.
      await raw.send({ op: "end", id: 1 });
      const ok = await within(REPLY_TIMEOUT_MS, "the put's answer", raw.next());
      assert.deepEqual([ok.op, ok.id], ["ok", 1], describe(ok));
      await sleep(50);
      await expectServes(raw, 12, stored);
      raw.close();
      await sleep(200);
      await assertNotStored(healthy, "inflight/over");
      await assertNotStored(healthy, "inflight/2");
      await bystanders();
    },
  );

  keepAlive.abort();
  await healthyLoop;
  assert.ok(healthyRequests > 10, `the healthy client made ${healthyRequests} requests`);
});

/** The default `--requests-inflight-max`: how many requests one connection may hold open. */
const REQUESTS_INFLIGHT_DEFAULT = 64;

/** The highest resident memory of the server seen over `ms`, sampled every 100 ms. */
async function rssPeakOver(server: TestServer, ms: number): Promise<number> {
  let peak = await server.rssBytes();
  for (const end = Date.now() + ms; Date.now() < end;) {
    await sleep(100);
    peak = Math.max(peak, await server.rssBytes());
  }
  return peak;
}

Deno.test("requests that clients hold open without reading or writing cost bounded memory", async (t) => {
  await t.step(
    `${REQUESTS_INFLIGHT_DEFAULT} unread gets on each of 2 connections stay under the memory bound`,
    async () => {
      await using server = await TestServer.start();
      await using healthy = await DfsClient.connect(server.address);
      const stored = await healthy.put(STORED_NAME, STORED);
      await healthy.put("big.bin", pseudoRandomBytes(16 * MiB, 3));
      const rssBefore = await server.rssBytes();
      const raws: RawConnection[] = [];
      try {
        for (let c = 0; c < 2; c++) {
          const raw = await rawConnection(server.address, { hello: true });
          raws.push(raw);
          for (let id = 1; id <= REQUESTS_INFLIGHT_DEFAULT; id++) {
            await raw.send({ op: "get", id, name: "big.bin" });
          }
        }
        const peak = await rssPeakOver(server, 3000);
        assert.deepEqual(await healthy.meta(STORED_NAME), stored);
        console.log(
          `unread gets: server RSS ${mib(rssBefore)} MiB before, ${mib(peak)} MiB peak`,
        );
        assert.ok(
          peak < SERVER_RSS_BYTES_MAX,
          `server RSS reached ${mib(peak)} MiB for 2 clients that read nothing`,
        );
      } finally {
        for (const raw of raws) raw.close();
      }
    },
  );

  await t.step(
    `${REQUESTS_INFLIGHT_DEFAULT} stalled uploads on each of 8 connections stay under the memory bound`,
    async () => {
      await using server = await TestServer.start();
      await using healthy = await DfsClient.connect(server.address);
      const stored = await healthy.put(STORED_NAME, STORED);
      const rssBefore = await server.rssBytes();
      const raws: RawConnection[] = [];
      // Each upload sends one byte short of a chunk, so its chunk buffer is never sent on.
      const almostChunk = pseudoRandomBytes(CHUNK_SIZE_BYTES - 1, 4);
      try {
        for (let c = 0; c < 8; c++) {
          const raw = await rawConnection(server.address, { hello: true });
          raws.push(raw);
          for (let id = 1; id <= REQUESTS_INFLIGHT_DEFAULT; id++) {
            await raw.send({ op: "put", id, name: `stalled/${c}/${id}` });
            await raw.sendBytes(encodeDataHeader(id, almostChunk.length));
            await raw.sendBytes(almostChunk);
          }
        }
        const peak = await rssPeakOver(server, 1000);
        assert.deepEqual(await healthy.meta(STORED_NAME), stored);
        console.log(
          `stalled uploads: server RSS ${mib(rssBefore)} MiB before, ${mib(peak)} MiB peak`,
        );
        assert.ok(
          peak < SERVER_RSS_BYTES_MAX,
          `server RSS reached ${mib(peak)} MiB for 8 clients that stopped mid-upload`,
        );
      } finally {
        for (const raw of raws) raw.close();
      }
      await sleep(300);
      await assertNoStrayChunks(server, healthy);
    },
  );
});

// ---- fuzz ----

/** Frames the fuzz test must send, and the time it may take to send them. */
const FUZZ_FRAMES_MIN = 100_000;
const FUZZ_TIME_MS_MAX = 120_000;
const FUZZ_SEED = 0xdf5_f022;
const FUZZ_CONNECTIONS = 8;
/** Frames sent before the starting memory is measured (not counted): the heaps reach working size. */
const FUZZ_PRELUDE_FRAMES = 10_000;
/**
 * How far above its starting point (measured after a warm-up that fills the buffer pool and a
 * fuzz prelude) the server's resident memory may be once the fuzz is over. Measured: 34 to 48 MiB,
 * then flat over further rounds of 100,000 frames (283 MiB after 410,000): V8 frees dead buffers
 * only at its next collection, letting up to 64 MiB of them pile up, and its heaps and malloc's
 * arenas keep some of the space they grew to. 64 MiB allows that; a leak of a 64 KiB read buffer
 * per connection (the fuzz opens about 8,000) or of 700 bytes per frame would not fit.
 */
const FUZZ_RSS_GROWTH_BYTES_MAX = 64 * MiB;

/** mulberry32: a small, fast, seedable PRNG. */
class Prng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0);
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.next() / 2 ** 32) * n);
  }
  chance(p: number): boolean {
    return this.next() / 2 ** 32 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}

const NOISE = pseudoRandomBytes(4 * MiB, 0x5eed);
const encoder = new Encoder({ useRecords: false, mapsAsObjects: true });

function noise(rng: Prng, bytes: number): Uint8Array {
  const at = rng.int(NOISE.length - bytes);
  return NOISE.subarray(at, at + bytes);
}

/** A body length: mostly small, sometimes up to the frame limit. */
function fuzzLength(rng: Prng): number {
  const roll = rng.next() / 2 ** 32;
  if (roll < 0.7) return rng.int(33);
  if (roll < 0.9) return rng.int(1024);
  if (roll < 0.995) return rng.int(64 * 1024);
  return rng.int(FRAME_SIZE_BYTES_MAX + 1);
}

const KEYS = [
  "op",
  "id",
  "name",
  "size",
  "bytes",
  "sha256",
  "prefix",
  "version",
  "toString",
  "valueOf",
  "__proto__",
  "constructor",
  "x",
];
/** Not "rm": a random `rm {prefix: ""}` would rightly remove the stored file. */
const OPS = [
  "hello",
  "put",
  "data",
  "end",
  "abort",
  "get",
  "meta",
  "list",
  "mv",
  "du",
  "df",
  "ok",
  "error",
  "",
  "PUT",
];
const FUZZ_NAMES = [
  "fuzz/a",
  "fuzz/b",
  "fuzz/c/d",
  "fuzz/é",
  "\uFFFD",
  "",
  "/x",
  "a//b",
  "..",
  "a\0b",
];
const NUMBERS = [
  0,
  1,
  -1,
  7,
  23,
  24,
  255,
  256,
  65535,
  65536,
  2 ** 31,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 53,
  -(2 ** 53),
  FILE_SIZE_BYTES_MAX,
  FILE_SIZE_BYTES_MAX + 1,
  0.5,
  NaN,
  Infinity,
  -Infinity,
  -0,
];
const TAGS = [
  0,
  1,
  2,
  3,
  4,
  5,
  6,
  14,
  15,
  27,
  28,
  29,
  51,
  64,
  72,
  85,
  105,
  258,
  259,
  55799,
  0xdff9,
  0xdffe,
  0xdfff,
];

/** A random JS value for cbor-x to encode: plausible request-like maps and anything else. */
function randomValue(rng: Prng, depth: number): unknown {
  switch (rng.int(depth >= 3 ? 7 : 11)) {
    case 0:
      return rng.pick(NUMBERS);
    case 1:
      return rng.int(2 ** 32) - 2 ** 16;
    case 2:
      return rng.pick(OPS);
    case 3:
      return rng.pick(FUZZ_NAMES);
    case 4:
      return new TextDecoder().decode(noise(rng, rng.int(40)));
    case 5:
      return noise(rng, rng.int(100)).slice();
    case 6:
      return rng.pick([true, false, null, undefined]);
    case 7:
      return Array.from({ length: rng.int(5) }, () => randomValue(rng, depth + 1));
    case 8: {
      const map = new Map<unknown, unknown>();
      for (let i = rng.int(6); i > 0; i--) {
        map.set(
          rng.chance(0.8) ? rng.pick(KEYS) : randomValue(rng, depth + 1),
          randomValue(rng, depth + 1),
        );
      }
      return map;
    }
    case 9:
      // An object that String() cannot print: { toString: 1 } and the like.
      return new Map([[rng.pick(["toString", "valueOf"]), randomValue(rng, depth + 1)]]);
    default: {
      const map = new Map<unknown, unknown>([["op", rng.pick(OPS)], ["id", rng.int(8)]]);
      for (let i = rng.int(4); i > 0; i--) map.set(rng.pick(KEYS), randomValue(rng, depth + 1));
      return map;
    }
  }
}

/** Random CBOR built head by head: any major type, reserved and indefinite lengths, any tag. */
function randomCbor(rng: Prng, out: number[], depth: number): void {
  const major = rng.int(8);
  const roll = rng.int(20);
  if (roll < 14) {
    const value = major === 6 ? rng.pick(TAGS) : rng.int(depth > 4 ? 4 : 24);
    out.push(...cborHead(major, value));
    if (major === 2 || major === 3) out.push(...noise(rng, value));
    if (major === 4 || major === 5 || major === 6) {
      const items = major === 6 ? 1 : major === 5 ? 2 * value : value;
      for (let i = 0; i < items && depth < 6; i++) randomCbor(rng, out, depth + 1);
    }
  } else if (roll < 17) {
    // An 8-, 16-, 32- or 64-bit argument, maybe claiming far more than follows.
    const width = rng.int(4);
    out.push((major << 5) | (24 + width), ...noise(rng, 1 << width));
  } else if (roll < 19) {
    // Indefinite length, sometimes left open.
    out.push((major << 5) | 31);
    for (let i = rng.int(4); i > 0 && depth < 6; i--) randomCbor(rng, out, depth + 1);
    if (rng.chance(0.7)) out.push(0xff);
  } else {
    out.push((major << 5) | (28 + rng.int(3))); // reserved
  }
}

/** A well-formed request of any kind, with ids and names that collide across frames. */
function validRequest(rng: Prng): Record<string, unknown> {
  const id = rng.chance(0.95) ? rng.int(8) : rng.next();
  switch (rng.int(13)) {
    case 9:
      return { op: "rm", id, name: rng.pick(FUZZ_NAMES) };
    case 10:
      return {
        op: "mv",
        id,
        from: rng.pick(FUZZ_NAMES),
        to: rng.pick(FUZZ_NAMES),
        force: rng.chance(0.5),
      };
    case 11:
      return rng.chance(0.5) ? { op: "du", id, prefix: "fuzz/" } : { op: "df", id };
    case 12:
      return {
        op: "get",
        id,
        name: rng.pick(FUZZ_NAMES),
        start: rng.pick(NUMBERS),
        end: rng.pick(NUMBERS),
      };
    case 0:
      return { op: "hello", version: PROTOCOL_VERSION };
    case 1:
      return rng.chance(0.5)
        ? { op: "put", id, name: rng.pick(FUZZ_NAMES) }
        : { op: "put", id, name: rng.pick(FUZZ_NAMES), size: rng.int(5000) };
    case 2:
    case 3:
      return { op: "data", id, bytes: noise(rng, rng.int(3000)) };
    case 4:
      return rng.chance(0.5) ? { op: "end", id } : { op: "end", id, sha256: sha256(noise(rng, 8)) };
    case 5:
      return { op: "abort", id };
    case 6:
      return { op: "get", id, name: rng.pick(FUZZ_NAMES) };
    case 7:
      return { op: "meta", id, name: rng.pick(FUZZ_NAMES) };
    default:
      return { op: "list", id, prefix: rng.pick(["", "fuzz/", "\0", "x"]) };
  }
}

/** Flips, overwrites, inserts, deletes or repeats bytes of `body`. */
function mutate(rng: Prng, body: Uint8Array): Uint8Array {
  const bytes = [...body];
  for (let n = 1 + rng.int(4); n > 0; n--) {
    const at = rng.int(bytes.length + 1);
    switch (rng.int(6)) {
      case 0:
        if (at < bytes.length) bytes[at] ^= 1 << rng.int(8);
        break;
      case 1:
        if (at < bytes.length) bytes[at] = rng.int(256);
        break;
      case 2:
        bytes.splice(at, 0, ...noise(rng, 1 + rng.int(8)));
        break;
      case 3:
        bytes.splice(at, 1 + rng.int(8));
        break;
      case 4:
        bytes.splice(at, 0, ...bytes.slice(at, at + 1 + rng.int(16)));
        break;
      default:
        bytes.splice(
          at,
          0,
          ...cborHead(
            rng.int(8),
            rng.pick(NUMBERS.filter((v) => v >= 0 && v < 2 ** 32 && Number.isInteger(v))),
          ),
        );
    }
  }
  return Uint8Array.from(bytes);
}

interface FuzzItem {
  bytes: Uint8Array;
  /** After sending it, this connection is done (truncated frame, raw noise). */
  ends: boolean;
}

/** The next thing to send: the mix the issue asks for. */
function fuzzItem(rng: Prng): FuzzItem {
  const roll = rng.int(100);
  if (roll < 28) {
    // Random bytes behind a valid length prefix.
    return { bytes: frameOf(noise(rng, fuzzLength(rng))), ends: false };
  }
  if (roll < 48) {
    // Valid CBOR of random shape.
    return { bytes: frameOf(encoder.encode(randomValue(rng, 0))), ends: false };
  }
  if (roll < 58) {
    // Hand-built CBOR: reserved values, indefinite lengths, lengths that lie, odd tags.
    const out: number[] = [];
    randomCbor(rng, out, 0);
    return { bytes: frameOf(out), ends: false };
  }
  if (roll < 70) {
    // Well-formed requests keep uploads and reads open for the malformed frames to hit.
    return { bytes: encodeFrame(validRequest(rng)), ends: false };
  }
  if (roll < 92) {
    // A mutated valid request; its length prefix is usually fixed up, sometimes left to lie.
    const body = mutate(rng, encodeFrame(validRequest(rng)).subarray(4));
    if (rng.chance(0.9)) return { bytes: frameOf(body), ends: false };
    const frame = frameOf(body);
    new DataView(frame.buffer).setUint32(
      0,
      rng.chance(0.5) ? rng.int(body.length * 2 + 8) : rng.next(),
    );
    return { bytes: frame, ends: false };
  }
  if (roll < 97) {
    // A frame cut off at a random point, then the connection ends.
    const whole = rng.chance(0.5)
      ? encodeFrame(validRequest(rng))
      : frameOf(noise(rng, fuzzLength(rng)));
    return { bytes: whole.subarray(0, rng.int(whole.length)), ends: true };
  }
  // A raw random byte stream with no framing at all.
  return { bytes: noise(rng, 1 + rng.int(4096)), ends: true };
}

interface FuzzStats {
  sent: number;
  connections: number;
  replies: number;
  codes: Map<string, number>;
  /** Replies that are not a well-formed frame the protocol allows. */
  bad: string[];
}

/** Reads and checks every reply on `conn` until it closes. */
async function drainReplies(conn: Deno.Conn, stats: FuzzStats): Promise<void> {
  const reader = new FrameReader(conn);
  try {
    while (true) {
      const body = await reader.read();
      if (body === null) return;
      stats.replies++;
      let reply: Record<string, unknown>;
      try {
        reply = decodeFrameBody(body) as Record<string, unknown>;
      } catch (error) {
        stats.bad.push(`undecodable reply: ${(error as Error).message}`);
        continue;
      }
      if (reply.op === "error") {
        const code = String(reply.code);
        stats.codes.set(code, (stats.codes.get(code) ?? 0) + 1);
        if (!(ERROR_CODES as readonly string[]).includes(code) || code === "INTERNAL") {
          stats.bad.push(`error reply ${describe(reply)}`);
        }
      } else if (
        reply.op === "ok" && ((reply.result as { removed?: number })?.removed ?? 0) > 1
      ) {
        // The fuzz sends rm only with a name (mutated or not): one file at most may go.
        stats.bad.push(`an rm without a prefix removed files: ${describe(reply)}`);
      } else if (!["hello", "ok", "data", "end", "entries"].includes(String(reply.op))) {
        stats.bad.push(`unexpected reply ${describe(reply)}`);
      }
    }
  } catch {
    // reset by the server, or closed by us
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let at = 0;
  while (at < bytes.length) at += await conn.write(bytes.subarray(at));
}

/** One fuzzing client: connects, sends batches of fuzz items, reconnects when a connection ends. */
async function fuzzWorker(
  address: string,
  rng: Prng,
  stats: FuzzStats,
  until: { frames: number; deadline: number },
): Promise<void> {
  const [hostname, port] = address.split(":");
  const more = () => stats.sent < until.frames && Date.now() < until.deadline;
  while (more()) {
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname, port: Number(port) });
    } catch (error) {
      throw new Error(`Cannot reach the server after ${stats.sent} fuzz frames: ${error}`);
    }
    stats.connections++;
    const drained = drainReplies(conn, stats);
    try {
      if (rng.chance(0.95)) {
        await writeAll(conn, encodeFrame({ op: "hello", version: PROTOCOL_VERSION }));
      }
      let budget = 1 + rng.int(600);
      let ends = false;
      while (!ends && budget > 0 && more()) {
        const batch: Uint8Array[] = [];
        while (batch.length < 32 && !ends) {
          const item = fuzzItem(rng);
          batch.push(item.bytes);
          ends = item.ends;
        }
        budget -= batch.length;
        try {
          await writeAll(conn, await new Blob(batch as BlobPart[]).bytes());
        } catch {
          break; // the server closed this connection: next one
        }
        stats.sent += batch.length;
      }
      if (!ends || rng.chance(0.5)) {
        // Half-close: the server sees the stream end (mid-frame after a cut-off item), answers
        // what it read, then closes; every reply is checked. The rest are closed abruptly.
        await conn.closeWrite().catch(() => {});
        await within(REPLY_TIMEOUT_MS, "the server to close a fuzz connection", drained).catch(
          () => {},
        );
      }
    } finally {
      try {
        conn.close();
      } catch { /* already closed */ }
      await drained;
    }
  }
}

/** Runs the fuzz clients until `until`; a healthy client reads the stored file meanwhile. */
async function fuzz(
  server: TestServer,
  healthy: DfsClient,
  options: { seed: number; frames: number; deadline: number },
): Promise<FuzzStats & { seconds: number; bystanderReads: number; bystanderErrors: string[] }> {
  const stats: FuzzStats = { sent: 0, connections: 0, replies: 0, codes: new Map(), bad: [] };
  const started = Date.now();
  let bystanderReads = 0;
  const bystanderErrors: string[] = [];
  let fuzzing = true;
  const bystander = (async () => {
    while (fuzzing) {
      try {
        assert.equal(sha256(await healthy.getBytes(STORED_NAME)), sha256(STORED));
        bystanderReads++;
      } catch (error) {
        bystanderErrors.push(String(error));
      }
      await sleep(250);
    }
  })();
  try {
    await within(
      options.deadline - started + 30_000,
      "the fuzz clients",
      Promise.all(
        Array.from(
          { length: FUZZ_CONNECTIONS },
          (_, i) =>
            fuzzWorker(server.address, new Prng(options.seed + i), stats, {
              frames: options.frames,
              deadline: options.deadline,
            }),
        ),
      ),
    );
  } finally {
    fuzzing = false;
    await bystander;
  }
  return { ...stats, seconds: (Date.now() - started) / 1000, bystanderReads, bystanderErrors };
}

Deno.test(
  `the server survives ${FUZZ_FRAMES_MIN} fuzzed frames (seed ${FUZZ_SEED}) and still serves`,
  async () => {
    await using server = await TestServer.start();
    await using healthy = await DfsClient.connect(server.address);
    const stored = await healthy.put(STORED_NAME, STORED);
    // Warm up: 8 readers of a 16 MiB file at once (8 chunk reads in flight each) bring the buffer
    // pool to its 64 idle buffers, and a fuzz prelude grows the heaps to their working size.
    await healthy.put("warm.bin", pseudoRandomBytes(16 * MiB, 1));
    const readers = await Promise.all(
      Array.from({ length: 8 }, () => DfsClient.connect(server.address)),
    );
    try {
      await Promise.all(readers.map((c) => c.getBytes("warm.bin")));
    } finally {
      for (const c of readers) c.close();
    }
    const prelude = await fuzz(server, healthy, {
      seed: FUZZ_SEED + 1000,
      frames: FUZZ_PRELUDE_FRAMES,
      deadline: Date.now() + FUZZ_TIME_MS_MAX,
    });
    await sleep(500);
    const rssBefore = await server.rssBytes();

    const run = await fuzz(server, healthy, {
      seed: FUZZ_SEED,
      frames: FUZZ_FRAMES_MIN,
      deadline: Date.now() + FUZZ_TIME_MS_MAX,
    });
    const rssPeak = await server.peakRssBytes();
    const namesLeft = (await healthy.list()).map((e) => e.name);

    // Still serves puts and gets, byte for byte, on a fresh connection and the old one.
    await using after = await DfsClient.connect(server.address);
    for (const size of [0, 1, CHUNK_SIZE_BYTES + 1, 3 * MiB]) {
      const data = pseudoRandomBytes(size, 0xaf7e + size);
      const meta = await after.put(`after/${size}`, data);
      assert.equal(meta.sha256, sha256(data));
      assert.deepEqual(await healthy.getBytes(`after/${size}`), data);
    }
    // Memory back near where it started (dead buffers go at V8's next collection: allow 5 s).
    let rssAfter = await server.rssBytes();
    for (let i = 0; i < 20 && rssAfter - rssBefore >= FUZZ_RSS_GROWTH_BYTES_MAX; i++) {
      await sleep(250);
      rssAfter = await server.rssBytes();
    }
    console.log(
      `fuzz: ${run.sent} frames on ${run.connections} connections in ${
        run.seconds.toFixed(1)
      } s; ` +
        `${run.replies} replies ${JSON.stringify(Object.fromEntries(run.codes))}; ` +
        `${run.bystanderReads} bystander reads; server RSS ${mib(rssBefore)} MiB before, ` +
        `${mib(rssPeak)} MiB peak, ${mib(rssAfter)} MiB after`,
    );
    assert.ok(
      run.sent >= FUZZ_FRAMES_MIN,
      `only ${run.sent} frames sent in ${FUZZ_TIME_MS_MAX / 1000} s`,
    );
    // The prelude is fuzz too: its replies and bystander reads count.
    const bad = [...prelude.bad, ...run.bad];
    assert.deepEqual(bad.slice(0, 10), [], `${bad.length} bad replies`);
    const bystanderErrors = [...prelude.bystanderErrors, ...run.bystanderErrors];
    if (bystanderErrors.length > 0) {
      const first = bystanderErrors[0];
      const left = JSON.stringify(namesLeft.slice(0, 10));
      assert.fail(
        `${bystanderErrors.length} reads of the stored file failed, first: ${first}; ` +
          `${namesLeft.length} files were left after the fuzz: ${left}`,
      );
    }
    assert.ok(
      rssAfter - rssBefore < FUZZ_RSS_GROWTH_BYTES_MAX,
      `server RSS grew from ${mib(rssBefore)} to ${mib(rssAfter)} MiB`,
    );
    await checkBystanders(server, healthy, stored);
    await server.stop("SIGTERM");
    const log = await server.stderr;
    const internal = log.split("\n").filter((line) => line.includes("internal error"));
    assert.deepEqual(
      internal.slice(0, 10),
      [],
      `${internal.length} internal errors logged, first:\n${log.slice(0, 1500)}`,
    );
  },
);
