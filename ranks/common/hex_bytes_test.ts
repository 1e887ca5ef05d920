import assert from "node:assert/strict";
import { hashOf, HEX_BYTES_MAX, hexOf, parseHex } from "./hex_bytes.ts";

Deno.test("parseHex() and hexOf() round-trip lower-case hex, and parseHex() refuses the rest", () => {
  const bytes = new Uint8Array(HEX_BYTES_MAX + 2);
  const text = "00ff7a10" + "0123456789abcdef".repeat(3) + "c3d4e5f6";
  assert.ok(parseHex(text, HEX_BYTES_MAX, bytes, 1));
  assert.equal(hexOf(bytes, 1, HEX_BYTES_MAX), text);
  assert.equal(bytes[0], 0, "nothing before `at` written");
  assert.equal(parseHex("0A", 1, bytes, 0), false, "upper case");
  assert.equal(parseHex("0g", 1, bytes, 0), false, "not a digit");
  assert.equal(parseHex("0", 1, bytes, 0), false, "too short");
});

Deno.test("hashOf() depends on every byte and only on the first `length`", () => {
  const a = Uint8Array.of(1, 2, 3, 4, 9);
  const b = Uint8Array.of(1, 2, 3, 5, 9);
  assert.notEqual(hashOf(a, 4), hashOf(b, 4));
  assert.equal(hashOf(a, 3), hashOf(b, 3));
  assert.ok(Number.isInteger(hashOf(a, 5)) && hashOf(a, 5) >= 0 && hashOf(a, 5) < 2 ** 32);
});

Deno.test("hashOf() from `at` hashes the `length` bytes there as if they began the array", () => {
  const name = new TextEncoder().encode("photos/2026/é/IMG_0001.jpg");
  const within = new Uint8Array(7 + name.length + 5).fill(0xaa);
  within.set(name, 7);
  assert.equal(hashOf(within, name.length, 7), hashOf(name, name.length));
  assert.notEqual(hashOf(within, name.length, 6), hashOf(name, name.length));
});
