import assert from "node:assert/strict";
import { forEachParallel } from "./parallel.ts";

Deno.test("forEachParallel() runs every item, never more than parallelMax at once", async () => {
  let running = 0;
  let peak = 0;
  const seen: number[] = [];
  await forEachParallel([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
    running++;
    peak = Math.max(peak, running);
    await Promise.resolve();
    await Promise.resolve();
    seen.push(n);
    running--;
  });
  assert.deepEqual(seen.sort(), [1, 2, 3, 4, 5, 6, 7]);
  assert.equal(peak, 3);
});

Deno.test("forEachParallel() rejects with the first error and starts nothing after it", async () => {
  const started: number[] = [];
  await assert.rejects(
    forEachParallel([1, 2, 3, 4, 5], 2, async (n) => {
      started.push(n);
      await Promise.resolve();
      if (n === 2) throw new Error("two failed");
    }),
    /two failed/,
  );
  assert.ok(!started.includes(5), `started ${started}`);
});

Deno.test("forEachParallel() of nothing resolves at once", async () => {
  await forEachParallel([], 4, () => Promise.reject(new Error("never called")));
});
