import assert from "node:assert/strict";
import { DIRECT_IO_ALIGN_BYTES } from "../env/env.ts";
import { SharedSlots } from "./shared_slots.ts";

Deno.test("SharedSlots hands out distinct page-aligned shared slots up to slotsMax", () => {
  const slots = new SharedSlots(2 * DIRECT_IO_ALIGN_BYTES, { slotsMax: 3 });
  assert.equal(slots.free, 3);
  const taken = [slots.take()!, slots.take()!, slots.take()!];
  assert.equal(slots.take(), undefined, "none left");
  for (const slot of taken) {
    assert.ok(slot.buffer instanceof SharedArrayBuffer);
    assert.equal(slot.length, 2 * DIRECT_IO_ALIGN_BYTES);
    assert.equal(slot.byteOffset % DIRECT_IO_ALIGN_BYTES, 0);
  }
  taken[0].fill(1);
  assert.ok(taken[1].every((b) => b === 0), "slots do not overlap");
  slots.give(taken[1]);
  assert.equal(slots.take(), taken[1], "a given slot is taken again");
});

Deno.test("SharedSlots: a slot set aside never comes back, and slotsMax 0 gives none", () => {
  const slots = new SharedSlots(DIRECT_IO_ALIGN_BYTES, { slotsMax: 1 });
  const slot = slots.take()!;
  slots.setAside(slot);
  assert.equal(slots.setAsideCount, 1);
  assert.equal(slots.take(), undefined);
  assert.equal(new SharedSlots(DIRECT_IO_ALIGN_BYTES, { slotsMax: 0 }).take(), undefined);
});

Deno.test("SharedSlots: a slot is shared with a Worker, not copied", async () => {
  const slots = new SharedSlots(DIRECT_IO_ALIGN_BYTES, { slotsMax: 1 });
  const slot = slots.take()!;
  slot.fill(5);
  const code = "self.onmessage = (e) => { e.data.fill(9); self.postMessage(null); };";
  const url = `data:application/javascript,${encodeURIComponent(code)}`;
  const worker = new Worker(url, { type: "module" });
  try {
    await new Promise((resolve) => {
      worker.onmessage = resolve;
      worker.postMessage(slot);
    });
    assert.ok(slot.every((b) => b === 9), "the Worker wrote into this thread's slot");
  } finally {
    worker.terminate();
  }
});
