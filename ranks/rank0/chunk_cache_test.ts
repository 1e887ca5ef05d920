import assert from "node:assert/strict";
import {
  CHUNK_CACHE_ENTRIES_MAX,
  CHUNK_CACHE_ENTRY_BYTES_MAX,
  CHUNK_CACHE_ENTRY_OVERHEAD_BYTES,
  ChunkCache,
} from "./chunk_cache.ts";
import { SeededRandom } from "../env/seeded_random.ts";

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

Deno.test("ChunkCache evicts the least recently used chunks beyond bytesMax, overhead counted", () => {
  const entry = (bytes: number) => bytes + CHUNK_CACHE_ENTRY_OVERHEAD_BYTES;
  const cache = new ChunkCache({ bytesMax: 2 * entry(4) + 3 });
  cache.put("a-0", new Uint8Array(4));
  cache.put("b-0", new Uint8Array(4));
  assert.ok(cache.get("a-0"), "a is now the most recently used");
  cache.put("c-0", new Uint8Array(4));
  assert.equal(cache.get("b-0"), undefined, "b went first");
  assert.ok(cache.get("a-0") && cache.get("c-0"));
  assert.equal(cache.bytes, 2 * entry(4));
  cache.put("a-0", new Uint8Array(2));
  assert.equal(cache.bytes, entry(2) + entry(4), "replacing an entry counts its new size only");
  cache.delete("c-0");
  assert.equal(cache.bytes, entry(2));
  assert.equal(cache.size, 1);
  const tiny = new ChunkCache({ bytesMax: 100 * entry(1) });
  for (let i = 0; i < 1000; i++) tiny.put(`t${i}-0`, new Uint8Array(1));
  assert.equal(tiny.size, 100, "many tiny chunks are bounded by their overhead");
});

Deno.test("ChunkCache holds at most CHUNK_CACHE_ENTRIES_MAX chunks, however small", () => {
  const cache = new ChunkCache();
  for (let i = 0; i <= CHUNK_CACHE_ENTRIES_MAX; i++) cache.put(`c${i}-0`, new Uint8Array(1));
  assert.equal(cache.size, CHUNK_CACHE_ENTRIES_MAX);
  assert.equal(cache.get("c0-0"), undefined, "the oldest went");
  assert.ok(cache.get(`c${CHUNK_CACHE_ENTRIES_MAX}-0`));
});

Deno.test("ChunkCache keeps nothing larger than an entry may be, or with bytesMax 0", () => {
  const cache = new ChunkCache();
  cache.put("big-0", new Uint8Array(CHUNK_CACHE_ENTRY_BYTES_MAX + 1));
  assert.equal(cache.size, 0);
  const off = new ChunkCache({ bytesMax: 0 });
  off.put("a-0", new Uint8Array(1));
  assert.equal(off.get("a-0"), undefined);
});

Deno.test("ChunkCache evicts in least-recently-used order through any mix of puts, gets and deletes", () => {
  const random = new SeededRandom(3);
  const pick = (n: number) => random.fill(new Uint8Array(1))[0] % n;
  const entryBytes = 10;
  const held = 20; // entries that fit
  const cache = new ChunkCache({
    bytesMax: held * (entryBytes + CHUNK_CACHE_ENTRY_OVERHEAD_BYTES),
  });
  /** The model: ids from least to most recently used. */
  let order: string[] = [];
  for (let step = 0; step < 20_000; step++) {
    const id = `c${pick(60)}-0`;
    const op = pick(3);
    if (op === 0) {
      cache.put(id, new Uint8Array(entryBytes).fill(step & 0xff));
      order = [...order.filter((o) => o !== id), id].slice(-held);
    } else if (op === 1) {
      const hit = cache.get(id) !== undefined;
      assert.equal(hit, order.includes(id), `step ${step}: get ${id}`);
      if (hit) order = [...order.filter((o) => o !== id), id];
    } else {
      cache.delete(id);
      order = order.filter((o) => o !== id);
    }
    assert.equal(cache.size, order.length, `step ${step}`);
  }
});
