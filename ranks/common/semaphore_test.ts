import assert from "node:assert/strict";
import { Semaphore } from "./semaphore.ts";

Deno.test("Semaphore lets at most `permits` in and wakes waiters in order", async () => {
  const s = new Semaphore(2);
  assert.ok(s.tryAcquire());
  await s.acquire();
  assert.equal(s.tryAcquire(), false);
  const order: number[] = [];
  const a = s.acquire().then(() => order.push(1));
  const b = s.acquire().then(() => order.push(2));
  s.release();
  s.release();
  await Promise.all([a, b]);
  assert.deepEqual(order, [1, 2]);
  assert.equal(s.free, 0);
  s.release();
  s.release();
  assert.equal(s.free, 2);
  assert.throws(() => s.release(), /matches an acquire/);
});
