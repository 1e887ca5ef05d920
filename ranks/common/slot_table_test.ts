import assert from "node:assert/strict";
import { Prng } from "../../tests/_bytes.ts";
import { freeNow, SlotTable } from "./slot_table.ts";

/** A table of integer keys, one per slot, with the slot lookups a store makes through it. */
function integerStore(buckets: number, hashOf: (key: number) => number) {
  const keys: number[] = [];
  let sought = 0;
  const table = new SlotTable({
    hashAt: (slot) => hashOf(keys[slot]),
    holdsSought: (slot) => keys[slot] === sought,
  }, buckets);
  const bucketOf = (key: number) => (sought = key, table.find(hashOf(key)));
  return {
    table,
    get: (key: number) => table.slotIn(bucketOf(key)),
    add: (key: number) => {
      const bucket = bucketOf(key);
      if (table.slotIn(bucket) >= 0) return;
      keys.push(key);
      table.put(bucket, keys.length - 1, hashOf(key));
    },
    remove: (key: number) => {
      const bucket = bucketOf(key);
      if (table.slotIn(bucket) >= 0) table.remove(bucket);
    },
  };
}

// Few distinct buckets, so that probe runs are long and wrap around the end; in the second, keys
// of a bucket differ in their hash's top bits (the tag a bucket keeps), some alike.
for (
  const [how, hashOf] of [
    ["one tag", (key: number) => (key * 7) % 5 + 60],
    ["tags", (key: number) => (((key % 6) << 27) | ((key * 7) % 5 + 60)) >>> 0],
  ] as const
) {
  Deno.test(`SlotTable finds every key after removals in the middle of probe runs, and after resize() (${how})`, () => {
    const store = integerStore(64, hashOf);
    const prng = new Prng(3);
    const held = new Set<number>();
    for (let step = 0; step < 5_000; step++) {
      const key = prng.int(40);
      if (prng.float() < 0.4) {
        store.remove(key);
        held.delete(key);
      } else {
        store.add(key);
        held.add(key);
      }
      for (let k = 0; k < 40; k++) assert.equal(store.get(k) >= 0, held.has(k), `key ${k}`);
    }
    store.table.resize(128);
    assert.equal(store.table.length, 128);
    for (let k = 0; k < 40; k++) assert.equal(store.get(k) >= 0, held.has(k), `key ${k}`);
    assert.equal([...store.table.slots()].length, held.size);
  });
}

Deno.test("SlotTable wants a power of two of buckets", () => {
  assert.throws(() => new SlotTable({ hashAt: () => 0, holdsSought: () => true }, 48), /power/);
});

Deno.test("freeNow() frees an array's memory at once, and refuses a view of a larger buffer", () => {
  const array = new Float64Array(1024).fill(1);
  const { buffer } = array;
  freeNow(array);
  assert.equal(buffer.detached, true);
  assert.equal(array.length, 0);
  const whole = new Uint8Array(64);
  assert.throws(() => freeNow(whole.subarray(8)), /its buffer to itself/);
  assert.throws(() => freeNow(whole.subarray(0, 8)), /its buffer to itself/);
  assert.equal(whole.buffer.detached, false);
});
