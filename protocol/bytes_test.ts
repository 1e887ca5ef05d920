import assert from "node:assert/strict";
import { concatBytes } from "./bytes.ts";

Deno.test("concatBytes() puts the parts one after another in a new array", () => {
  const a = Uint8Array.of(1, 2);
  const whole = concatBytes([a, new Uint8Array(0), Uint8Array.of(3)]);
  assert.deepEqual(whole, Uint8Array.of(1, 2, 3));
  whole[0] = 9;
  assert.equal(a[0], 1, "a copy, not a view");
  assert.deepEqual(concatBytes([]), new Uint8Array(0));
  assert.deepEqual(concatBytes([a, a], 4), Uint8Array.of(1, 2, 1, 2));
});
