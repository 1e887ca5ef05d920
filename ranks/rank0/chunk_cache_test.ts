import assert from "node:assert/strict";
import { CHUNK_CACHE_ENTRY_BYTES_MAX, ChunkCache } from "./chunk_cache.ts";

Deno.test("ChunkCache gives back a copy of what it holds, and counts hits and misses", () => {
  const cache = new ChunkCache();
  const bytes = Uint8Array.of(1, 2, 3);
  cache.put("a-0", bytes);
  bytes[0] = 9;
  const got = cache.get("a-0")!;
  assert.deepEqual(got, Uint8Array.of(1, 2, 3), "kept a copy");
  got[1] = 9;
  assert.deepEqual(cache.get("a-0"), Uint8Array.of(1, 2, 3), "handed out a copy");
  assert.equal(cache.get("b-0"), undefined);
  assert.deepEqual(cache.stats, { hits: 2, misses: 1 });
});

Deno.test("ChunkCache evicts the least recently used chunks beyond bytesMax", () => {
  const cache = new ChunkCache({ bytesMax: 10 });
  cache.put("a-0", new Uint8Array(4));
  cache.put("b-0", new Uint8Array(4));
  assert.ok(cache.get("a-0"), "a is now the most recently used");
  cache.put("c-0", new Uint8Array(4));
  assert.equal(cache.get("b-0"), undefined, "b went first");
  assert.ok(cache.get("a-0") && cache.get("c-0"));
  assert.equal(cache.bytes, 8);
  cache.put("a-0", new Uint8Array(2));
  assert.equal(cache.bytes, 6, "replacing an entry counts its new size only");
  cache.delete("c-0");
  assert.equal(cache.bytes, 2);
  assert.equal(cache.size, 1);
});

Deno.test("ChunkCache keeps nothing larger than an entry may be, or with bytesMax 0", () => {
  const cache = new ChunkCache();
  cache.put("big-0", new Uint8Array(CHUNK_CACHE_ENTRY_BYTES_MAX + 1));
  assert.equal(cache.size, 0);
  const off = new ChunkCache({ bytesMax: 0 });
  off.put("a-0", new Uint8Array(1));
  assert.equal(off.get("a-0"), undefined);
});
