import { deepEqual, equal, notDeepEqual, ok, throws } from "node:assert/strict";
import { SeededRandom } from "./seeded_random.ts";

function bytesOf(seed: number, length: number): Uint8Array {
  return new SeededRandom(seed).fill(new Uint8Array(length));
}

Deno.test("SeededRandom gives xoshiro128**'s published outputs from state 1, 2, 3, 4", () => {
  const random = SeededRandom.fromState([1, 2, 3, 4]);
  const outputs = Array.from({ length: 6 }, () => random.nextUint32());
  deepEqual(outputs, [11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
});

Deno.test("SeededRandom gives the same bytes for the same seed and other bytes for another", () => {
  deepEqual(bytesOf(42, 1000), bytesOf(42, 1000));
  notDeepEqual(bytesOf(42, 1000), bytesOf(43, 1000));
  // Seeds that differ only above 32 bits, or in sign, differ too.
  notDeepEqual(bytesOf(1, 64), bytesOf(1 + 2 ** 32, 64));
  notDeepEqual(bytesOf(1, 64), bytesOf(-1, 64));
  notDeepEqual(bytesOf(0, 64), new Uint8Array(64));
});

Deno.test("SeededRandom's bytes for a seed never change (seeded runs replay across versions)", () => {
  equal(hex(bytesOf(0, 8)), GOLDEN_SEED_0);
  equal(hex(bytesOf(2 ** 53 - 1, 8)), GOLDEN_SEED_MAX);
  const firsts = new Set(Array.from({ length: 10_000 }, (_, seed) => hex(bytesOf(seed, 8))));
  equal(firsts.size, 10_000);
});

Deno.test("SeededRandom.fill() gives one stream however the calls slice it", () => {
  const whole = bytesOf(7, 64);
  const random = new SeededRandom(7);
  const parts = [1, 3, 0, 5, 4, 2, 7, 8, 34].map((n) => random.fill(new Uint8Array(n)));
  deepEqual(new Uint8Array(parts.flatMap((part) => [...part])), whole);
});

Deno.test("SeededRandom.fill() gives every byte value about equally often, half the bits set", () => {
  const bytes = bytesOf(2024, 256 * 1000);
  const counts = new Array(256).fill(0);
  for (const byte of bytes) counts[byte]++;
  ok(counts.every((count) => count > 850 && count < 1150), `counts ${counts}`);
  const ones = bytes.reduce((sum, byte) => sum + popcount(byte), 0);
  ok(Math.abs(ones / (bytes.length * 8) - 0.5) < 0.005);
});

Deno.test("SeededRandom.fill() returns the array it was given, subarrays included", () => {
  const backing = new Uint8Array(16);
  const view = backing.subarray(4, 12);
  equal(new SeededRandom(1).fill(view), view);
  deepEqual([...backing.subarray(0, 4), ...backing.subarray(12)], new Array(8).fill(0));
  deepEqual(view, bytesOf(1, 8));
});

Deno.test("SeededRandom rejects seeds and states it cannot use as programmer errors", () => {
  throws(() => new SeededRandom(1.5), /Assertion failed: seed 1.5 must be a safe integer/);
  throws(() => new SeededRandom(2 ** 53), /Assertion failed: seed/);
  throws(() => SeededRandom.fromState([0, 0, 0, 0]), /Assertion failed: state must not be all/);
  throws(() => SeededRandom.fromState([-1, 0, 0, 1]), /Assertion failed: state words/);
});

function hex(bytes: Uint8Array): string {
  return [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

function popcount(byte: number): number {
  let count = 0;
  for (let b = byte; b > 0; b >>= 1) count += b & 1;
  return count;
}

const GOLDEN_SEED_0 = "5d04c9de759d089a";
const GOLDEN_SEED_MAX = "33a180496689b64c";
