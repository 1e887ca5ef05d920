import assert from "node:assert/strict";
import { LOG_FILE_BYTES_MAX } from "../common/chunk_id.ts";
import { LOG_PLACE_OFFSET_LIMIT, LogPlaces } from "./log_places.ts";
import { Prng } from "../../tests/_bytes.ts";

Deno.test("LogPlaces gives back each offset and size exactly, up to their limits", () => {
  const places = new LogPlaces();
  const cases = [
    { offset: 0, size: 0 },
    { offset: 1, size: 1 },
    { offset: 123_456_789, size: 4096 },
    { offset: LOG_PLACE_OFFSET_LIMIT - 1, size: LOG_FILE_BYTES_MAX },
  ];
  cases.forEach((place, i) => places.set(`c${i}`, place));
  cases.forEach((place, i) => assert.deepEqual(places.get(`c${i}`), place));
  assert.equal(places.size, 4);
  assert.ok(places.delete("c0") && !places.has("c0") && places.get("c0") === undefined);
  assert.deepEqual([...places.keys()].sort(), ["c1", "c2", "c3"]);
});

Deno.test("LogPlaces refuses an offset or size it cannot pack", () => {
  const places = new LogPlaces();
  assert.throws(() => places.set("a", { offset: LOG_PLACE_OFFSET_LIMIT, size: 1 }), /log offset/);
  assert.throws(() => places.set("a", { offset: 0, size: LOG_FILE_BYTES_MAX + 1 }), /small/);
  assert.throws(() => places.set("a", { offset: 0.5, size: 1 }), /log offset/);
});

Deno.test("LogPlaces agrees with a Map through random sets, overwrites and deletes", () => {
  const prng = new Prng(15);
  const places = new LogPlaces();
  const model = new Map<string, { offset: number; size: number }>();
  const hex = (n: number) => n.toString(16).padStart(16, "0");
  // Blob ids as the server makes them: a random half, then a counter; a few odd ids beside.
  const idOf = (n: number) =>
    n % 97 === 0 ? `${hex(7)}${hex(n)}-${n.toString(16)}` : `${hex(7)}${hex(n)}-0`;
  for (let step = 0; step < 60_000; step++) {
    const id = idOf(prng.int(step < 30_000 ? 20_000 : 2_000));
    if (prng.float() < 0.3) {
      assert.equal(places.delete(id), model.delete(id), `delete ${id}`);
    } else {
      const place = {
        offset: prng.int(2 ** 30),
        size: prng.int(4097),
      };
      places.set(id, place);
      model.set(id, place);
    }
    if (step % 5_000 === 0) {
      assert.equal(places.size, model.size);
      for (const [key, place] of model) assert.deepEqual(places.get(key), place);
    }
  }
  assert.equal(places.size, model.size);
  assert.deepEqual([...places.keys()].sort(), [...model.keys()].sort());
  for (const [key, place] of model) assert.deepEqual(places.get(key), place);
  for (const key of model.keys()) places.delete(key);
  assert.equal(places.size, 0);
  assert.deepEqual([...places.keys()], []);
});

Deno.test("LogPlaces.takeTail() takes the chunks at or past the tail, moved, over what it holds", () => {
  const hex = (n: number) => n.toString(16).padStart(32, "0");
  const old = new LogPlaces();
  const rewritten = new LogPlaces();
  const model = new Map<string, { offset: number; size: number }>();
  for (let n = 0; n < 5000; n++) {
    const id = n % 500 === 0 ? `odd-${n}` : `${hex(n)}-0`;
    const offset = 100 + 40 * n;
    old.set(id, { offset, size: 10 + (n % 30) });
    // Rewritten: the first half, which were in the old log before the tail began.
    if (offset < 100_000) {
      rewritten.set(id, { offset: offset / 2, size: 10 + (n % 30) });
      model.set(id, { offset: offset / 2, size: 10 + (n % 30) });
    }
  }
  // Released while the rewrite ran: gone from both.
  for (const n of [3, 2600, 4999]) {
    old.delete(`${hex(n)}-0`);
    rewritten.delete(`${hex(n)}-0`);
    model.delete(`${hex(n)}-0`);
  }
  // A chunk written again in the tail: the tail's place wins.
  old.set(`${hex(7)}-0`, { offset: 300_000, size: 9 });
  const [tailFrom, shift] = [100_000, -60_000];
  for (const id of old.keys()) {
    const place = old.get(id)!;
    if (place.offset >= tailFrom) model.set(id, { offset: place.offset + shift, size: place.size });
  }
  rewritten.takeTail(old, tailFrom, shift);
  assert.equal(rewritten.size, model.size);
  for (const [id, place] of model) assert.deepEqual(rewritten.get(id), place, id);
  assert.equal(rewritten.get(`${hex(7)}-0`)?.offset, 240_000);
});
