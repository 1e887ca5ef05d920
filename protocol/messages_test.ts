import assert from "node:assert/strict";
import { DfsError } from "./errors.ts";
import {
  CHUNK_SIZE_BYTES,
  DATA_BYTES_MAX,
  DOCTOR_TARGET_BYTES_MAX,
  FILE_SIZE_BYTES_MAX,
  LIST_LIMIT_ENTRIES_MAX,
  NAME_BYTES_MAX,
  PROTOCOL_VERSION,
} from "./limits.ts";
import { parseHello, parseRequest } from "./messages.ts";

function assertRefused(value: unknown, code: string, pattern: RegExp) {
  assert.throws(() => parseRequest(value), (e: unknown) => {
    assert.ok(e instanceof DfsError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("parseRequest() accepts each well-formed request", () => {
  assert.deepEqual(parseRequest({ op: "put", id: 1, name: "a" }), { op: "put", id: 1, name: "a" });
  assert.deepEqual(parseRequest({ op: "put", id: 1, name: "a", size: 5 }), {
    op: "put",
    id: 1,
    name: "a",
    size: 5,
  });
  const bytes = new Uint8Array(3);
  assert.deepEqual(parseRequest({ op: "data", id: 2, bytes }), { op: "data", id: 2, bytes });
  assert.deepEqual(parseRequest({ op: "end", id: 3 }), { op: "end", id: 3 });
  assert.deepEqual(parseRequest({ op: "get", id: 4, name: "x/y" }), {
    op: "get",
    id: 4,
    name: "x/y",
  });
  assert.deepEqual(parseRequest({ op: "list", id: 5 }), { op: "list", id: 5, prefix: "" });
});

Deno.test("parseRequest() refuses wrong shapes and types as INVALID_REQUEST", () => {
  assertRefused(null, "INVALID_REQUEST", /CBOR map/);
  assertRefused([1, 2], "INVALID_REQUEST", /CBOR map/);
  assertRefused("put", "INVALID_REQUEST", /CBOR map/);
  assertRefused({ op: "get", name: "a" }, "INVALID_REQUEST", /id must be/);
  assertRefused({ op: "get", id: -1, name: "a" }, "INVALID_REQUEST", /id must be/);
  assertRefused({ op: "get", id: 1.5, name: "a" }, "INVALID_REQUEST", /id must be/);
  assertRefused({ op: "chmod", id: 1 }, "INVALID_REQUEST", /unknown operation "chmod"/);
  assertRefused({ op: "get", id: 1, name: "../a" }, "INVALID_REQUEST", /"\.\." segment/);
  assertRefused({ op: "data", id: 1, bytes: "text" }, "INVALID_REQUEST", /byte string/);
  assertRefused({ op: "put", id: 1, name: "a", size: -1 }, "INVALID_REQUEST", /size/);
  assertRefused({ op: "end", id: 1, sha256: "XYZ" }, "INVALID_REQUEST", /sha256/);
});

Deno.test("parseRequest() refuses an oversized payload or declared size as TOO_LARGE", () => {
  assertRefused(
    { op: "data", id: 1, bytes: new Uint8Array(DATA_BYTES_MAX + 1) },
    "TOO_LARGE",
    /over the limit/,
  );
  assertRefused(
    { op: "put", id: 1, name: "a", size: FILE_SIZE_BYTES_MAX + 1 },
    "TOO_LARGE",
    /File/,
  );
});

Deno.test("parseHello() refuses a wrong version with VERSION_MISMATCH", () => {
  assert.deepEqual(parseHello({ op: "hello", version: PROTOCOL_VERSION }, PROTOCOL_VERSION), {
    op: "hello",
    version: PROTOCOL_VERSION,
  });
  assert.throws(
    () => parseHello({ op: "hello", version: 99 }, PROTOCOL_VERSION),
    (e: unknown) => e instanceof DfsError && e.code === "VERSION_MISMATCH" && /99/.test(e.message),
  );
  assert.throws(
    () => parseHello({ op: "get", id: 1 }, PROTOCOL_VERSION),
    (e: unknown) => e instanceof DfsError && e.code === "INVALID_REQUEST",
  );
});

Deno.test("parseRequest() accepts rm, mv, du, df, a ranged get and per-file replicas", () => {
  assert.deepEqual(parseRequest({ op: "rm", id: 1, name: "a" }), { op: "rm", id: 1, name: "a" });
  assert.deepEqual(parseRequest({ op: "rm", id: 1, prefix: "d/" }), {
    op: "rm",
    id: 1,
    prefix: "d/",
  });
  assert.deepEqual(parseRequest({ op: "mv", id: 2, from: "a", to: "b" }), {
    op: "mv",
    id: 2,
    from: "a",
    to: "b",
    force: false,
  });
  assert.deepEqual(parseRequest({ op: "du", id: 3 }), { op: "du", id: 3, prefix: "" });
  assert.deepEqual(parseRequest({ op: "df", id: 4 }), { op: "df", id: 4 });
  assert.deepEqual(parseRequest({ op: "get", id: 5, name: "a", start: 10, end: 20 }), {
    op: "get",
    id: 5,
    name: "a",
    start: 10,
    end: 20,
  });
  assert.deepEqual(parseRequest({ op: "put", id: 6, name: "a", replicas: 3 }), {
    op: "put",
    id: 6,
    name: "a",
    replicas: 3,
  });
});

Deno.test("parseRequest() refuses bad rm, mv, range and replicas fields", () => {
  assertRefused(
    { op: "rm", id: 1, name: "a", prefix: "b" },
    "INVALID_REQUEST",
    /rm takes a name or a prefix$/,
  );
  assertRefused({ op: "rm", id: 1 }, "INVALID_REQUEST", /rm takes a name or a prefix$/);
  assertRefused({ op: "rm", id: 1, prefix: null }, "INVALID_REQUEST", /prefix must be a string/);
  assertRefused({ op: "mv", id: 1, from: "a", to: "../b" }, "INVALID_REQUEST", /"\.\." segment/);
  assertRefused({ op: "get", id: 1, name: "a", start: -1 }, "INVALID_REQUEST", /start must be/);
  assertRefused({ op: "get", id: 1, name: "a", end: "x" }, "INVALID_REQUEST", /end must be/);
  assertRefused(
    { op: "put", id: 1, name: "a", replicas: 0 },
    "INVALID_REQUEST",
    /replicas must be/,
  );
});

Deno.test("parseRequest() and parseHello() describe odd values without throwing", () => {
  assertRefused(new Uint8Array(8), "INVALID_REQUEST", /CBOR map/);
  assertRefused(new Map([["op", "get"]]), "INVALID_REQUEST", /CBOR map/);
  assertRefused(
    { op: { toString: 1 }, id: 1 },
    "INVALID_REQUEST",
    /unknown operation of type object/,
  );
  assertRefused({ op: "x".repeat(1000), id: 1 }, "INVALID_REQUEST", /unknown operation "x{40}"$/);
  assert.throws(
    () => parseHello({ op: "hello", version: { toString: 1 } }, PROTOCOL_VERSION),
    (e: unknown) =>
      e instanceof DfsError && e.code === "VERSION_MISMATCH" && /of type object/.test(e.message),
  );
});

Deno.test("parseRequest() takes a put's checksums promise and a data frame's CRC32", () => {
  assert.deepEqual(parseRequest({ op: "put", id: 1, name: "a", checksums: true }), {
    op: "put",
    id: 1,
    name: "a",
    checksums: true,
  });
  const bytes = new Uint8Array(3);
  for (const crc32 of [0, 1, 0xffff_ffff]) {
    assert.deepEqual(parseRequest({ op: "data", id: 2, bytes, crc32 }), {
      op: "data",
      id: 2,
      bytes,
      crc32,
    });
  }
  assertRefused({ op: "put", id: 1, name: "a", checksums: 1 }, "INVALID_REQUEST", /checksums/);
  for (const crc32 of [-1, 2 ** 32, 1.5, "5", [1]]) {
    assertRefused({ op: "data", id: 2, bytes, crc32 }, "INVALID_REQUEST", /crc32 must be/);
  }
});

Deno.test("parseRequest() takes a doctor's target as given: a rank or a zone, resolved later", () => {
  for (const target of ["1", "local", "zone b", "é".repeat(DOCTOR_TARGET_BYTES_MAX / 2)]) {
    assert.deepEqual(parseRequest({ op: "doctor", id: 7, target }), {
      op: "doctor",
      id: 7,
      target,
    });
  }
});

Deno.test("parseRequest() refuses a doctor without a target, or an empty, odd or long one", () => {
  for (const target of [undefined, null, 1, ["a"]]) {
    assertRefused(
      { op: "doctor", id: 1, target },
      "INVALID_REQUEST",
      /^Invalid request: target must be a string \(a rank or a zone\)$/,
    );
  }
  assertRefused(
    { op: "doctor", id: 1, target: "" },
    "INVALID_REQUEST",
    /^Invalid request: target must not be empty$/,
  );
  assertRefused(
    { op: "doctor", id: 1, target: "\uD800" },
    "INVALID_REQUEST",
    /^Invalid request: target is not valid UTF-8$/,
  );
  assertRefused(
    { op: "doctor", id: 1, target: "z".repeat(DOCTOR_TARGET_BYTES_MAX + 1) },
    "INVALID_REQUEST",
    new RegExp(
      `^Invalid request: target is ${
        DOCTOR_TARGET_BYTES_MAX + 1
      } bytes, over the limit of ${DOCTOR_TARGET_BYTES_MAX}$`,
    ),
  );
});

Deno.test("parseRequest() takes a list's cursor and limit, and leaves them out when absent", () => {
  assert.deepEqual(parseRequest({ op: "list", id: 1, prefix: "d/" }), {
    op: "list",
    id: 1,
    prefix: "d/",
  });
  assert.deepEqual(parseRequest({ op: "list", id: 1, after: null, limit: null }), {
    op: "list",
    id: 1,
    prefix: "",
  });
  assert.deepEqual(parseRequest({ op: "list", id: 2, prefix: "d/", after: "d/b", limit: 1 }), {
    op: "list",
    id: 2,
    prefix: "d/",
    after: "d/b",
    limit: 1,
  });
  // A cursor need not be a valid name, nor under the prefix: entries strictly after it come.
  assert.deepEqual(parseRequest({ op: "list", id: 3, after: "", limit: LIST_LIMIT_ENTRIES_MAX }), {
    op: "list",
    id: 3,
    prefix: "",
    after: "",
    limit: LIST_LIMIT_ENTRIES_MAX,
  });
  assert.deepEqual(parseRequest({ op: "list", id: 4, after: "d/" }), {
    op: "list",
    id: 4,
    prefix: "",
    after: "d/",
  });
});

Deno.test("parseRequest() refuses a bad list cursor or limit as INVALID_REQUEST", () => {
  const list = { op: "list", id: 1, prefix: "d/" };
  for (const after of [5, true, new Uint8Array(2), ["a"]]) {
    assertRefused(
      { ...list, after },
      "INVALID_REQUEST",
      /^Invalid request: after must be a string$/,
    );
  }
  assertRefused(
    { ...list, after: "a\uFFFDb" },
    "INVALID_REQUEST",
    /^Invalid request: after is not valid UTF-8$/,
  );
  assertRefused(
    { ...list, after: "a\uD800" },
    "INVALID_REQUEST",
    /^Invalid request: after is not valid UTF-8$/,
  );
  assertRefused(
    { ...list, after: "é".repeat(NAME_BYTES_MAX / 2 + 1) },
    "INVALID_REQUEST",
    new RegExp(
      `^Invalid request: after is ${
        NAME_BYTES_MAX + 2
      } bytes, over the limit of ${NAME_BYTES_MAX}$`,
    ),
  );
  assertRefused(
    { ...list, after: "a\0b" },
    "INVALID_REQUEST",
    /^Invalid request: after contains a NUL character$/,
  );
  const range = `from 1 to ${LIST_LIMIT_ENTRIES_MAX}`;
  for (
    const [limit, shown] of [
      [0, "0"],
      [-1, "-1"],
      [1.5, "1.5"],
      [LIST_LIMIT_ENTRIES_MAX + 1, String(LIST_LIMIT_ENTRIES_MAX + 1)],
      [2 ** 53, String(2 ** 53)],
      ["10", '"10"'],
      [[1], "of type array"],
    ] as const
  ) {
    assertRefused(
      { ...list, limit },
      "INVALID_REQUEST",
      new RegExp(
        `^Invalid request: limit must be an integer ${range}, got ${RegExp.escape(shown)}$`,
      ),
    );
  }
});

Deno.test("parseRequest() applies the NFC and control-character rules to every name a request names", () => {
  const nfd = "cafe\u0301.txt";
  const notNfc = /^Invalid name: name is not in Unicode NFC \(normalize it with/;
  const newline = /^Invalid name: name contains a control character \(U\+000A\)$/;
  for (const [bad, why] of [[nfd, notNfc], ["two\nlines", newline]] as const) {
    for (const op of ["put", "get", "meta", "rm"]) {
      assertRefused({ op, id: 1, name: bad }, "INVALID_REQUEST", why);
    }
    assertRefused({ op: "mv", id: 1, from: bad, to: "b" }, "INVALID_REQUEST", why);
    assertRefused({ op: "mv", id: 1, from: "a", to: bad }, "INVALID_REQUEST", why);
  }
  // The NFC spelling of the same text is accepted everywhere.
  const nfc = nfd.normalize("NFC");
  assert.equal((parseRequest({ op: "put", id: 1, name: nfc }) as { name: string }).name, nfc);
  assert.deepEqual(parseRequest({ op: "mv", id: 1, from: nfc, to: `x/${nfc}` }), {
    op: "mv",
    id: 1,
    from: nfc,
    to: `x/${nfc}`,
    force: false,
  });
  // Prefixes may not hold a control character either; one outside NFC matches nothing but passes.
  const prefixWhy = /^Invalid name: prefix contains a control character \(U\+001B\)$/;
  for (const op of ["list", "du", "rm"]) {
    assertRefused({ op, id: 1, prefix: "logs/\u001b" }, "INVALID_REQUEST", prefixWhy);
    assert.deepEqual(parseRequest({ op, id: 1, prefix: nfd }), { op, id: 1, prefix: nfd });
  }
});

Deno.test("parseRequest() takes a put's ask for a direct plan, and only a true one", () => {
  assert.deepEqual(
    parseRequest({
      op: "put",
      id: 1,
      name: "a",
      size: 5 * 1024 * 1024,
      checksums: true,
      direct: true,
    }),
    { op: "put", id: 1, name: "a", size: 5 * 1024 * 1024, checksums: true, direct: true },
  );
  // Anything but true asks for none (a client that does not know the field sends nothing).
  for (const direct of [false, null, undefined, 1, "true"]) {
    const parsed = parseRequest({ op: "put", id: 1, name: "a", direct });
    assert.deepEqual(parsed, { op: "put", id: 1, name: "a" }, String(direct));
  }
});

Deno.test("parseRequest() takes a direct upload's end with a CRC32 per chunk", () => {
  const sha256 = "ab".repeat(32);
  const crc32s = [0, 1, 0xffff_ffff, 12345];
  assert.deepEqual(parseRequest({ op: "end", id: 3, sha256, crc32s }), {
    op: "end",
    id: 3,
    sha256,
    crc32s,
  });
  assert.deepEqual(parseRequest({ op: "end", id: 3, crc32s: [] }), {
    op: "end",
    id: 3,
    crc32s: [],
  });
  assert.deepEqual(parseRequest({ op: "end", id: 3, sha256, crc32s: null }), {
    op: "end",
    id: 3,
    sha256,
  });
  for (const crc32s of [[-1], [2 ** 32], [1.5], ["5"], [null], [[1]], [1, 2, undefined]]) {
    assertRefused({ op: "end", id: 3, sha256, crc32s }, "INVALID_REQUEST", /each of crc32s/);
  }
  for (const crc32s of [5, "1,2", { 0: 1 }, new Uint8Array(4)]) {
    assertRefused({ op: "end", id: 3, sha256, crc32s }, "INVALID_REQUEST", /crc32s must be a list/);
  }
  // No more CRC32s than the largest file has chunks.
  const most = FILE_SIZE_BYTES_MAX / CHUNK_SIZE_BYTES;
  assertRefused(
    { op: "end", id: 3, sha256, crc32s: new Array(most + 1).fill(0) },
    "INVALID_REQUEST",
    /crc32s must be a list/,
  );
  assert.equal(
    (parseRequest({ op: "end", id: 3, crc32s: new Array(most).fill(7) }) as {
      crc32s: number[];
    }).crc32s.length,
    most,
  );
  assertRefused({ op: "end", id: 3, sha256: "AB".repeat(32), crc32s }, "INVALID_REQUEST", /sha256/);
});

Deno.test("parseRequest() takes a direct upload's replace and progress", () => {
  assert.deepEqual(parseRequest({ op: "replace", id: 4, index: 0, rank: 3 }), {
    op: "replace",
    id: 4,
    index: 0,
    rank: 3,
  });
  assert.deepEqual(parseRequest({ op: "replace", id: 4, index: 1023, rank: 1, extra: "x" }), {
    op: "replace",
    id: 4,
    index: 1023,
    rank: 1,
  });
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ index: -1 }, /index must be a whole number/],
    [{ index: 1.5 }, /index/],
    [{ index: "0" }, /index/],
    [{ index: undefined }, /index/],
    [{ index: 2 ** 53 }, /index/],
    [{ rank: 0 }, /rank must be a positive integer/],
    [{ rank: -2 }, /rank/],
    [{ rank: 2.5 }, /rank/],
    [{ rank: null }, /rank/],
    [{ id: -1 }, /id must be/],
  ];
  for (const [change, pattern] of bad) {
    assertRefused(
      { op: "replace", id: 4, index: 0, rank: 3, ...change },
      "INVALID_REQUEST",
      pattern,
    );
  }
  assert.deepEqual(parseRequest({ op: "progress", id: 5 }), { op: "progress", id: 5 });
  assert.deepEqual(parseRequest({ op: "progress", id: 5, bytes: 10 }), { op: "progress", id: 5 });
  assertRefused({ op: "progress" }, "INVALID_REQUEST", /id must be/);
  assertRefused({ op: "progress", id: "5" }, "INVALID_REQUEST", /id must be/);
});
