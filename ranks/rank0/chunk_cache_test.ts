import assert from "node:assert/strict";
import {
  CHUNK_CACHE_BYTES_MAX,
  CHUNK_CACHE_ENTRIES_MAX,
  CHUNK_CACHE_ENTRY_BYTES_MAX,
  CHUNK_CACHE_ENTRY_OVERHEAD_BYTES,
  CHUNK_CACHE_SLAB_BYTES,
  ChunkCache,
} from "./chunk_cache.ts";
import { SeededRandom } from "../env/seeded_random.ts";

const OVERHEAD = CHUNK_CACHE_ENTRY_OVERHEAD_BYTES;

Deno.test("ChunkCache gives back a copy of what it holds, and counts hits and misses", () => {
  const cache = new ChunkCache();
  const bytes = Uint8Array.of(1, 2, 3);
  cache.put("a-0", bytes);
  bytes[0] = 9;
  const got = cache.get("a-0")!;
  assert.deepEqual(got, Uint8Array.of(1, 2, 3), "kept a copy");
  got[1] = 9;
  assert.deepEqual(cache.get("a-0"), Uint8Array.of(1, 2, 3), "handed out a copy");
  assert.equal(got.byteOffset, 0);
  assert.equal(got.buffer.byteLength, 3, "a buffer of its own, to transfer");
  assert.equal(cache.get("b-0"), undefined);
  assert.deepEqual(cache.stats, { hits: 2, misses: 1 });
});

Deno.test("ChunkCache evicts the least recently used chunks beyond entriesMax", () => {
  const cache = new ChunkCache({ entriesMax: 2 });
  cache.put("a-0", new Uint8Array(4));
  cache.put("b-0", new Uint8Array(4));
  assert.ok(cache.get("a-0"), "a is now the most recently used");
  cache.put("c-0", new Uint8Array(4));
  assert.equal(cache.get("b-0"), undefined, "b went first");
  assert.ok(cache.get("a-0") && cache.get("c-0"));
  cache.put("a-0", Uint8Array.of(7, 7));
  assert.deepEqual(cache.get("a-0"), Uint8Array.of(7, 7), "replaced");
  assert.ok(cache.get("c-0"), "replacing an entry evicts nothing");
  cache.delete("c-0");
  assert.equal(cache.size, 1);
  assert.equal(cache.get("c-0"), undefined);
});

Deno.test("ChunkCache counts its slabs and each entry's overhead, within bytesMax", () => {
  const cache = new ChunkCache({ bytesMax: 2 * 16 + 3 * OVERHEAD, slabBytes: 16 });
  assert.equal(cache.bytes, 0, "no slab until a chunk comes");
  cache.put("a-0", new Uint8Array(10));
  assert.equal(cache.bytes, 16 + OVERHEAD);
  cache.put("b-0", new Uint8Array(10));
  assert.equal(cache.bytes, 2 * 16 + 2 * OVERHEAD, "b took a second slab");
  cache.put("c-0", new Uint8Array(6));
  assert.equal(cache.size, 3, "c fitted beside b");
  cache.put("d-0", new Uint8Array(6));
  assert.equal(cache.size, 3, "no room for a fourth entry's overhead");
  assert.equal(cache.get("a-0"), undefined, "a went");
  assert.ok(cache.bytes <= cache.bytesMax);
  cache.put("e-0", new Uint8Array(16));
  assert.deepEqual(cache.get("e-0"), new Uint8Array(16));
  assert.ok(cache.bytes <= cache.bytesMax);
});

Deno.test("ChunkCache holds at most CHUNK_CACHE_ENTRIES_MAX chunks, however small", () => {
  const cache = new ChunkCache();
  for (let i = 0; i <= CHUNK_CACHE_ENTRIES_MAX; i++) cache.put(`c${i}-0`, new Uint8Array(1));
  assert.equal(cache.size, CHUNK_CACHE_ENTRIES_MAX);
  assert.equal(cache.get("c0-0"), undefined, "the oldest went");
  assert.ok(cache.get(`c${CHUNK_CACHE_ENTRIES_MAX}-0`));
});

Deno.test("ChunkCache full of tiny chunks takes slabs for about twice their bytes at most", () => {
  const cache = new ChunkCache();
  const chunkBytes = 64;
  for (let i = 0; i < 8 * CHUNK_CACHE_ENTRIES_MAX; i++) {
    cache.put(`t${i}-0`, new Uint8Array(chunkBytes).fill(i & 0xff));
    if (i % 3 === 0) cache.get(`t${i >> 1}-0`);
  }
  assert.equal(cache.size, CHUNK_CACHE_ENTRIES_MAX);
  const slabBytes = cache.bytes - cache.size * OVERHEAD;
  assert.ok(
    slabBytes <= 2 * CHUNK_CACHE_ENTRIES_MAX * chunkBytes + 2 * CHUNK_CACHE_SLAB_BYTES,
    `${slabBytes} bytes of slabs`,
  );
  const last = 8 * CHUNK_CACHE_ENTRIES_MAX - 1;
  assert.deepEqual(cache.get(`t${last}-0`), new Uint8Array(chunkBytes).fill(last & 0xff));
});

Deno.test("ChunkCache keeps nothing larger than an entry may be, or with bytesMax 0", () => {
  const cache = new ChunkCache();
  cache.put("big-0", new Uint8Array(CHUNK_CACHE_ENTRY_BYTES_MAX + 1));
  assert.equal(cache.size, 0);
  const off = new ChunkCache({ bytesMax: 0 });
  off.put("a-0", new Uint8Array(1));
  assert.equal(off.get("a-0"), undefined);
  const small = new ChunkCache({ bytesMax: 8 * 1024 + OVERHEAD, slabBytes: 1024 });
  small.put("b-0", new Uint8Array(1025));
  assert.equal(small.size, 0, "nothing larger than a slab");
  assert.equal(
    new ChunkCache({ bytesMax: CHUNK_CACHE_BYTES_MAX }).slabBytes,
    CHUNK_CACHE_SLAB_BYTES,
  );
});

/**
 * Random puts, gets and deletes against a model of least-recently-used order. The cache may hold
 * fewer chunks than the model (holes in its slabs), but always the most recently used ones: after
 * each step the model drops its least recently used ids down to the cache's size, and every get
 * must hit exactly when the model holds the id, with the bytes last put.
 */
function checkAgainstModel(
  seed: number,
  options: { bytesMax: number; slabBytes: number; entriesMax: number; lengthMax: number },
): { trimmed: number } {
  const random = new SeededRandom(seed);
  const pick = (n: number) => new DataView(random.fill(new Uint8Array(4)).buffer).getUint32(0) % n;
  const cache = new ChunkCache(options);
  let order: string[] = [];
  const content = new Map<string, Uint8Array>();
  let trimmed = 0;
  for (let step = 0; step < 20_000; step++) {
    const id = `c${pick(80)}-0`;
    const op = pick(7);
    if (op < 3) {
      const bytes = random.fill(new Uint8Array(pick(options.lengthMax + 1)));
      cache.put(id, bytes);
      content.set(id, bytes);
      order = [...order.filter((o) => o !== id), id].slice(-options.entriesMax);
      assert.ok(cache.size > 0, `step ${step}: the chunk just put is held`);
    } else if (op < 6) {
      const got = cache.get(id);
      assert.equal(got !== undefined, order.includes(id), `step ${step}: get ${id}`);
      if (got !== undefined) {
        assert.deepEqual(got, content.get(id), `step ${step}: bytes of ${id}`);
        order = [...order.filter((o) => o !== id), id];
      }
    } else {
      cache.delete(id);
      order = order.filter((o) => o !== id);
    }
    assert.ok(cache.size <= order.length, `step ${step}: holds no more than the model`);
    assert.ok(cache.size <= options.entriesMax);
    assert.ok(cache.bytes <= options.bytesMax, `step ${step}: ${cache.bytes} bytes`);
    if (cache.size < order.length) {
      trimmed++;
      order = order.slice(order.length - cache.size);
    }
  }
  return { trimmed };
}

Deno.test("ChunkCache evicts in least-recently-used order through any mix of puts, gets and deletes", () => {
  const countBound = { bytesMax: 64 * 1024, slabBytes: 1024, entriesMax: 20, lengthMax: 100 };
  assert.equal(checkAgainstModel(3, countBound).trimmed, 0, "only entriesMax evicts");
  for (let seed = 4; seed < 8; seed++) {
    const slabBound = { bytesMax: 6 * 256 + 20 * OVERHEAD, slabBytes: 256, entriesMax: 40 };
    const { trimmed } = checkAgainstModel(seed, { ...slabBound, lengthMax: 120 });
    assert.ok(trimmed > 100, `slabs bound the cache (${trimmed} steps)`);
  }
});
