import assert from "node:assert/strict";
import { assertCorrupted } from "../testing/assert_corrupted.ts";
import {
  BYTE_WRITER_KEPT_BYTES_MAX,
  ByteReader,
  ByteWriter,
  isWhole,
  VARINT_BYTES_MAX,
} from "./byte_codec.ts";

Deno.test("ByteReader reads back every primitive ByteWriter writes", () => {
  const writer = new ByteWriter(1);
  const numbers = [0, 1, 127, 128, 300, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1];
  for (const n of numbers) writer.addVarint(n);
  const varintBytes = writer.byteLength;
  assert.equal(varintBytes, 1 + 1 + 1 + 2 + 2 + 5 + 5 + 5 + 8);
  writer.addByte(0xff);
  writer.addU32(0xfedcba98);
  for (const n of [-0, 0.5, -1, 2 ** 60, NaN, Infinity]) writer.addFloat64(n);
  const strings = ["", "x".repeat(200), "ü".repeat(100), "\ufeffbom", "🎉 emoji"];
  for (const text of strings) writer.addString(text);
  assert.ok(writer.addHex("00ff7a", 3));
  assert.equal(writer.addHex("00FF7A", 3), false, "upper case is not taken");
  const bytes = writer.bytes();
  assert.equal(bytes.length, writer.byteLength);
  const reader = new ByteReader(bytes);
  assert.deepEqual(numbers.map(() => reader.varint()), numbers);
  assert.equal(reader.at, varintBytes);
  assert.equal(reader.byte(), 0xff);
  assert.equal(reader.u32(), 0xfedcba98);
  assert.deepEqual(Array.from({ length: 6 }, () => reader.float64()), [
    -0,
    0.5,
    -1,
    2 ** 60,
    NaN,
    Infinity,
  ]);
  assert.deepEqual(strings.map(() => reader.string()), strings);
  const at = reader.skip(3, "hex");
  const codes: number[] = [];
  reader.hexCodes(at, 3, codes);
  assert.equal(String.fromCharCode(...codes), "00ff7a");
  assert.equal(reader.left, 0);
});

Deno.test("ByteWriter refuses what would not come back the same", () => {
  const writer = new ByteWriter();
  assert.throws(() => writer.addVarint(-1), /-1 is a safe non-negative integer/);
  assert.throws(() => writer.addVarint(2 ** 53), /is a safe non-negative integer/);
  assert.throws(() => writer.addVarint(0.5), /0.5 is a safe non-negative integer/);
  assert.throws(() => writer.addByte(256), /a byte is 0 to 255/);
  assert.throws(() => writer.addU32(2 ** 32), /a u32 is 0 to 2\^32 - 1/);
  assert.throws(() => writer.addString("lone \ud800"), /well-formed UTF-16/);
  assert.equal(writer.byteLength, 0);
  assert.equal(isWhole(-0), false);
});

Deno.test("ByteWriter doubles as it fills, and a reset lets a large buffer go", () => {
  const writer = new ByteWriter(1);
  const text = "y".repeat(BYTE_WRITER_KEPT_BYTES_MAX);
  writer.addString(text);
  writer.setByte(4, 0x7a);
  const bytes = writer.bytes();
  assert.equal(bytes.length, 3 + text.length);
  assert.equal(bytes[4], 0x7a);
  const target = new Uint8Array(bytes.length + 2);
  writer.copyTo(target, 2);
  assert.deepEqual(target.subarray(2), bytes);
  assert.throws(() => writer.copyTo(target, 3), /room/);
  writer.truncate(1);
  assert.deepEqual(writer.bytes(), bytes.subarray(0, 1));
  writer.reset();
  assert.equal(writer.byteLength, 0);
  writer.addByte(1);
  assert.deepEqual(writer.bytes(), Uint8Array.of(1));
});

Deno.test("ByteReader refuses malformed and truncated bytes with the reason and the place", () => {
  const read = (bytes: number[], fn: (r: ByteReader) => unknown) => () =>
    fn(new ByteReader(Uint8Array.from(bytes), { subject: "a thing" }));
  assertCorrupted(
    read([], (r) => r.byte()),
    /^Cannot decode a thing at byte 0: it ends inside a byte$/,
  );
  assertCorrupted(read([0x81], (r) => r.varint()), /byte 0: it ends inside a number/);
  assertCorrupted(read([7, 0x81, 0], (r) => [r.byte(), r.varint()]), /byte 1: .* needless 0 byte/);
  const long = new Array(VARINT_BYTES_MAX).fill(0x81);
  assertCorrupted(read([...long, 1], (r) => r.varint()), /a number runs over 8 bytes/);
  const big = [...new Array(VARINT_BYTES_MAX - 1).fill(0xff), 0x10];
  assertCorrupted(read(big, (r) => r.varint()), /a number is over 2\^53 - 1/);
  assertCorrupted(read([1, 2, 3], (r) => r.u32()), /it ends inside a u32/);
  assertCorrupted(read([1, 2, 3], (r) => r.float64()), /it ends inside a float64/);
  assertCorrupted(read([3, 0x61, 0x62], (r) => r.string()), /byte 1: it ends inside a string/);
  assertCorrupted(read([2, 0xc3, 0x28], (r) => r.string()), /byte 1: a string is not UTF-8/);
  assertCorrupted(read([1, 2], (r) => r.skip(3, "a blob id")), /it ends inside a blob id/);
  const reader = new ByteReader(Uint8Array.of(1, 2), { at: 2 });
  assert.equal(reader.left, 0);
  assert.throws(() => new ByteReader(Uint8Array.of(1), { at: 2 }), /starts within its bytes/);
});
