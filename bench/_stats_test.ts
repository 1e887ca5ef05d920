import assert from "node:assert/strict";
import { figureOf, median, percentile, sliceRate } from "./_stats.ts";

Deno.test("median() takes the middle value of an odd count, in any order", () => {
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([7]), 7);
});

Deno.test("median() averages the two middle values of an even count", () => {
  assert.equal(median([4, 1, 3, 2]), 2.5);
});

Deno.test("percentile() uses the nearest rank", () => {
  const values = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
  assert.equal(percentile(values, 50), 50);
  assert.equal(percentile(values, 99), 99);
  assert.equal(percentile(values, 100), 100);
  assert.equal(percentile(values, 0), 1);
  assert.equal(percentile([10, 20, 30], 50), 20);
  assert.equal(percentile([10, 20, 30], 99), 30);
});

Deno.test("percentile() rejects a percentile outside 0..100", () => {
  assert.throws(() => percentile([1], 101), {
    name: "RangeError",
    message: "Percentile must be from 0 to 100, got 101",
  });
});

Deno.test("median() and percentile() reject an empty list", () => {
  const expected = { name: "RangeError", message: "Cannot summarize an empty list of values" };
  assert.throws(() => median([]), expected);
  assert.throws(() => percentile([], 50), expected);
});

Deno.test("figureOf() keeps the samples in run order with their median, min and max", () => {
  assert.deepEqual(figureOf("put", [3, 1, 2], { unit: "MB/s" }), {
    name: "put",
    unit: "MB/s",
    median: 2,
    min: 1,
    max: 3,
    samples: [3, 1, 2],
  });
});

Deno.test("sliceRate() counts the first slice from the phase's start", () => {
  // 2 operations done by 500 ms: 4 per second, whatever came later.
  assert.equal(sliceRate([100, 500, 600, 2000], { which: "first", count: 2 }), 4);
});

Deno.test("sliceRate() counts the last slice from the completion before it", () => {
  // The last 2 took from 600 to 1100 ms: 4 per second, not 2000/1100.
  assert.equal(sliceRate([100, 500, 600, 900, 1100], { which: "last", count: 2 }), 4);
  // The whole phase as its last slice starts at 0.
  assert.equal(sliceRate([250, 500], { which: "last", count: 2 }), 4);
});

Deno.test("sliceRate() rejects a slice of no operations or more than were done", () => {
  for (const count of [0, 3, 1.5]) {
    assert.throws(() => sliceRate([1, 2], { which: "first", count }), {
      name: "RangeError",
      message: `A slice must be from 1 to 2 operations, got ${count}`,
    });
  }
});
