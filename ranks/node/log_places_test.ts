import assert from "node:assert/strict";
import { LOG_FILE_BYTES_MAX } from "../common/chunk_id.ts";
import { LOG_PLACE_OFFSET_LIMIT, LogPlaces } from "./log_places.ts";

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
  assert.deepEqual([...places.keys()], ["c1", "c2", "c3"]);
});

Deno.test("LogPlaces refuses an offset or size it cannot pack", () => {
  const places = new LogPlaces();
  assert.throws(() => places.set("a", { offset: LOG_PLACE_OFFSET_LIMIT, size: 1 }), /log offset/);
  assert.throws(() => places.set("a", { offset: 0, size: LOG_FILE_BYTES_MAX + 1 }), /small/);
  assert.throws(() => places.set("a", { offset: 0.5, size: 1 }), /log offset/);
});
