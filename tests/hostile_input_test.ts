/**
 * A hostile client gets a precise error or has its one connection closed, whatever it sends:
 * malformed frames, bad fields, bad names, oversized data, clients that vanish or read slowly.
 * Memory stays bounded, nothing is left on disk, and every other client and stored file is
 * untouched: each step keeps a stored file and a healthy second client and checks both afterwards
 * (plus no stray chunk file and the server's resident memory).
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { DfsClient, DfsError, type FileMeta } from "../client.ts";
import { FrameReader } from "../protocol/conn.ts";
import { decodeFrameBody, encodeDataHeader, encodeFrame } from "../protocol/frame.ts";
import {
  CHUNK_SIZE_BYTES,
  FILE_SIZE_BYTES_MAX,
  FRAME_SIZE_BYTES_MAX,
  NAME_BYTES_MAX,
  PROTOCOL_VERSION,
} from "../protocol/limits.ts";
import { pseudoRandomBytes, sha256 } from "./_bytes.ts";
import {
  assertNotStored,
  checkBystanders,
  expectServes,
  mib,
  STORED,
  STORED_NAME,
} from "./_bystanders.ts";
import {
  describeFrame,
  expectClosed,
  type ExpectedError,
  expectError,
  frameOf,
  lengthPrefix,
  rawConnection,
  REPLY_TIMEOUT_MS,
  requestWithRawText,
} from "./_frames.ts";
import { TestServer } from "./_server.ts";
import { assertDfsError } from "./_assert.ts";
import { sleep, withTimeout } from "./_wait.ts";

const MiB = 1024 * 1024;
const utf8 = new TextEncoder();

// ---- bad names ----

/** Names every request must refuse with INVALID_REQUEST, and the reason the message must give. */
const BAD_NAMES: [label: string, name: string, why: RegExp][] = [
  ["empty", "", /Invalid name: name is empty/],
  ["1025 bytes", "x".repeat(NAME_BYTES_MAX + 1), /name is 1025 bytes, over the limit of 1024/],
  ["1026 bytes in 513 characters", "é".repeat(513), /name is 1026 bytes, over the limit/],
  ["with NUL", "a\0b", /name contains a control character \(U\+0000\)/],
  ["with a newline", "a\nb", /name contains a control character \(U\+000A\)/],
  ["with a C1 control", "a\u0085b", /name contains a control character \(U\+0085\)/],
  ["not in NFC", "cafe\u0301", /name is not in Unicode NFC \(normalize it with/],
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
    assert.equal(frame.op, "data", `expected data, got ${describeFrame(frame)}`);
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
          {
            id: 24,
            code: "INVALID_REQUEST",
            message: /prefix contains a control character \(U\+0000\)/,
          },
        ],
      ];
      for (const [message, expected] of cases) {
        await raw.send(message);
        await expectError(raw, expected).catch((e) =>
          assert.fail(`${describeFrame({ message })}: ${e.message}`)
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
        .catch((e) => assert.fail(`version ${describeFrame({ version })}: ${e.message}`));
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
      const ok = await withTimeout(raw.next(), {
        timeoutMs: REPLY_TIMEOUT_MS,
        what: "the put's answer",
      });
      assert.equal(ok.op, "ok", describeFrame(ok));
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
            [requestWithRawText({ op, id }, { key: "name", bytes })],
            badUtf8,
          );
        }
        await check(`put of a name with ${label}`, [
          requestWithRawText({ op: "put", id }, { key: "name", bytes }),
          encodeFrame({ op: "data", id, bytes: new Uint8Array(10) }),
          encodeFrame({ op: "end", id }),
        ], badUtf8);
        await check(
          `list of a prefix with ${label}`,
          [requestWithRawText({ op: "list", id }, { key: "prefix", bytes })],
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
          await withTimeout(raw.next(), { timeoutMs: REPLY_TIMEOUT_MS, what: "a get frame" });
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
        assert.equal(ok.op, "ok", describeFrame(ok));
        const got = await withTimeout(readGet(frames), {
          timeoutMs: 30_000,
          what: "the rest of the get",
        });
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
          .catch((e) => assert.fail(`${describeFrame({ message })}: ${e.message}`));
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
