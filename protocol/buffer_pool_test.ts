import assert from "node:assert/strict";
import { BufferPool } from "./buffer_pool.ts";

Deno.test("BufferPool.take() reuses a given buffer instead of allocating", () => {
  const pool = new BufferPool(1024, { buffersMax: 4 });
  const a = pool.take();
  assert.equal(a.length, 1024);
  assert.equal(pool.allocated, 1);
  pool.give(a.buffer);
  const b = pool.take();
  assert.equal(b.buffer, a.buffer);
  assert.equal(pool.allocated, 1);
});

Deno.test("BufferPool.give() keeps at most buffersMax idle buffers", () => {
  const pool = new BufferPool(16, { buffersMax: 2 });
  const taken = [pool.take(), pool.take(), pool.take()];
  for (const t of taken) pool.give(t.buffer);
  assert.equal(pool.idle, 2);
});

Deno.test("BufferPool.give() ignores detached, foreign-sized and missing buffers", () => {
  const pool = new BufferPool(16, { buffersMax: 8 });
  const detached = new ArrayBuffer(16);
  structuredClone(detached, { transfer: [detached] });
  pool.give(detached);
  pool.give(new ArrayBuffer(32));
  pool.give(undefined);
  assert.equal(pool.idle, 0);
});

Deno.test("BufferPool.trim() lets go of idle buffers beyond keep only after idleMs without a take", async () => {
  const pool = new BufferPool(16, { buffersMax: 8 });
  const taken = Array.from({ length: 6 }, () => pool.take());
  for (const bytes of taken) pool.give(bytes.buffer);
  assert.equal(pool.idle, 6);
  assert.equal(pool.trim({ keep: 2, idleMs: 60_000 }), 0, "taken just now");
  assert.equal(pool.idle, 6);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(pool.trim({ keep: 2, idleMs: 10 }), 4);
  assert.equal(pool.idle, 2);
  assert.equal(pool.trim({ keep: 2, idleMs: 10 }), 0, "nothing beyond keep");
});
