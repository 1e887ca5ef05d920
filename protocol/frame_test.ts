import assert from "node:assert/strict";
import { concatBytes } from "./bytes.ts";
import { DfsError } from "./errors.ts";
import { decodeFrameBody, encodeDataHeader, encodeFrame, readFrameLength } from "./frame.ts";
import { FRAME_HEADER_BYTES, FRAME_SIZE_BYTES_MAX } from "./limits.ts";

Deno.test("encodeFrame() prefixes the CBOR body with its u32 length", () => {
  const frame = encodeFrame({ op: "meta", id: 7, name: "a/b" });
  const length = readFrameLength(frame);
  assert.equal(length, frame.length - FRAME_HEADER_BYTES);
  assert.deepEqual(decodeFrameBody(frame.subarray(FRAME_HEADER_BYTES)), {
    op: "meta",
    id: 7,
    name: "a/b",
  });
});

Deno.test("encodeFrame() writes each map with a header of its own size, nested ones too", () => {
  const wide = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`k${i}`, i]));
  const message = { op: "meta", id: 7, inner: { a: 1 }, wide };
  const body = encodeFrame(message).subarray(FRAME_HEADER_BYTES);
  assert.equal(body[0], 0xa4); // a map of 4 entries, not cbor-x's default map16 (0xb9 0x00 0x04)
  const utf8 = new TextEncoder();
  const after = (key: string) => {
    const at = indexOf(body, utf8.encode(key));
    assert.ok(at > 0, `${key} is in the frame`);
    return body[at + key.length];
  };
  assert.equal(after("inner"), 0xa1);
  assert.equal(after("wide"), 0xb8); // map8: 30 entries
  assert.deepEqual(decodeFrameBody(body), message);
});

function indexOf(bytes: Uint8Array, sought: Uint8Array): number {
  outer: for (let at = 0; at + sought.length <= bytes.length; at++) {
    for (let i = 0; i < sought.length; i++) if (bytes[at + i] !== sought[i]) continue outer;
    return at;
  }
  return -1;
}

Deno.test("encodeFrame() returns independent buffers across calls", () => {
  const a = encodeFrame({ op: "a" });
  const b = encodeFrame({ op: "b" });
  assert.deepEqual(decodeFrameBody(a.subarray(4)), { op: "a" });
  assert.deepEqual(decodeFrameBody(b.subarray(4)), { op: "b" });
});

Deno.test("encodeFrame() refuses a message over FRAME_SIZE_BYTES_MAX", () => {
  assert.throws(
    () => encodeFrame({ bytes: new Uint8Array(FRAME_SIZE_BYTES_MAX) }),
    (e: unknown) =>
      e instanceof DfsError && e.code === "TOO_LARGE" && /frame limit/.test(e.message),
  );
});

Deno.test("readFrameLength() rejects a length over the limit before allocation", () => {
  const header = Uint8Array.of(0xff, 0xff, 0xff, 0xff);
  assert.throws(
    () => readFrameLength(header),
    (e: unknown) => e instanceof DfsError && e.code === "TOO_LARGE" && /4294967295/.test(e.message),
  );
  assert.equal(readFrameLength(Uint8Array.of(0, 0, 1, 0), 256), 256);
  assert.throws(() => readFrameLength(Uint8Array.of(0, 0, 1, 1), 256), /over the limit of 256/);
});

Deno.test("decodeFrameBody() turns non-CBOR bytes into INVALID_REQUEST", () => {
  assert.throws(
    () => decodeFrameBody(Uint8Array.of(0xff, 0xff, 0x1c)),
    (e: unknown) =>
      e instanceof DfsError && e.code === "INVALID_REQUEST" && /Malformed/.test(e.message),
  );
});

Deno.test("encodeDataHeader() plus payload decodes as a data message for every size class", () => {
  for (const size of [0, 1, 23, 24, 255, 256, 65535, 65536, 1024 * 1024]) {
    for (const id of [0, 23, 24, 300, 70000, 0xffff_ffff]) {
      for (const crc32 of [undefined, 0, 24, 0xffff_ffff]) {
        const payload = new Uint8Array(size).map((_, i) => i * 7);
        const frame = concatBytes([encodeDataHeader(id, size, crc32), payload]);
        assert.equal(readFrameLength(frame), frame.length - FRAME_HEADER_BYTES);
        const message = decodeFrameBody(frame.subarray(FRAME_HEADER_BYTES)) as Record<
          string,
          unknown
        >;
        assert.equal(message.op, "data");
        assert.equal(message.id, id);
        assert.equal(message.crc32, crc32);
        assert.deepEqual(message.bytes, payload);
        assert.equal(Object.keys(message).length, crc32 === undefined ? 3 : 4);
      }
    }
  }
});
