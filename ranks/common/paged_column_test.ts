import assert from "node:assert/strict";
import { PAGE_SLOTS, PagedColumn } from "./paged_column.ts";

Deno.test("PagedColumn keeps every slot's values as it grows past its first page", () => {
  const column = new PagedColumn((n) => new Float64Array(n), { width: 3, slots: 16 });
  const slots = 3 * PAGE_SLOTS + 5;
  for (let slot = 0; slot < slots; slot++) {
    if (slot === column.slots) column.grow();
    for (let i = 0; i < 3; i++) column.set(slot, slot * 10 + i, i);
  }
  for (let slot = 0; slot < slots; slot++) {
    for (let i = 0; i < 3; i++) assert.equal(column.get(slot, i), slot * 10 + i);
    assert.equal(column.page(slot)[column.at(slot) + 2], slot * 10 + 2);
  }
  assert.equal(column.slots, 4 * PAGE_SLOTS);
});

Deno.test("PagedColumn doubles its first page up to a whole page, then adds pages", () => {
  const column = new PagedColumn((n) => new Uint8Array(n), { width: 32, slots: 16 });
  const sizes = [column.slots];
  while (column.slots < 3 * PAGE_SLOTS) {
    column.grow();
    sizes.push(column.slots);
  }
  const doublings = Math.log2(PAGE_SLOTS / 16);
  assert.deepEqual(sizes, [
    ...Array.from({ length: doublings + 1 }, (_, i) => 16 * 2 ** i),
    2 * PAGE_SLOTS,
    3 * PAGE_SLOTS,
  ]);
  assert.equal(column.byteLength, 3 * PAGE_SLOTS * 32);
  // A slot's values never straddle two pages.
  assert.equal(column.at(PAGE_SLOTS - 1) + 32, PAGE_SLOTS * 32);
  assert.equal(column.at(PAGE_SLOTS), 0);
});

Deno.test("PagedColumn refuses a first page that is not a power of two up to a page", () => {
  for (const slots of [0, 3, 2 * PAGE_SLOTS]) {
    assert.throws(
      () => new PagedColumn((n) => new Uint8Array(n), { width: 1, slots }),
      { name: "Error", message: /^Assertion failed: a column starts with a power of two of slots/ },
    );
  }
  assert.throws(
    () => new PagedColumn((n) => new Uint8Array(n), { width: 0, slots: 16 }),
    { name: "Error", message: "Assertion failed: width 0 must be a positive integer" },
  );
});
