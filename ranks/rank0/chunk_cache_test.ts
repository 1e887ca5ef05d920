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

/** A chunk id named by `name` (up to 16 bytes): its UTF-8 in hex as the blob, at offset 0. */
function cid(name: string): string {
  const hex = [...new TextEncoder().encode(name)].map((b) => b.toString(16).padStart(2, "0"));
  return `${hex.join("").padStart(32, "0")}-0`;
}

Deno.test("ChunkCache gives back a copy of what it holds, and counts hits and misses", () => {
  const cache = new ChunkCache();
  const bytes = Uint8Array.of(1, 2, 3);
  cache.put(cid("a"), bytes);
  bytes[0] = 9;
  const got = cache.get(cid("a"))!;
  assert.deepEqual(got, Uint8Array.of(1, 2, 3), "kept a copy");
  got[1] = 9;
  assert.deepEqual(cache.get(cid("a")), Uint8Array.of(1, 2, 3), "handed out a copy");
  assert.equal(got.byteOffset, 0);
  assert.equal(got.buffer.byteLength, 3, "a buffer of its own, to transfer");
  assert.equal(cache.get(cid("b")), undefined);
  assert.deepEqual(cache.stats, { hits: 2, misses: 1 });
});

Deno.test("ChunkCache evicts the least recently used chunks beyond entriesMax", () => {
  const cache = new ChunkCache({ entriesMax: 2 });
  cache.put(cid("a"), new Uint8Array(4));
  cache.put(cid("b"), new Uint8Array(4));
  assert.ok(cache.get(cid("a")), "a is now the most recently used");
  cache.put(cid("c"), new Uint8Array(4));
  assert.equal(cache.get(cid("b")), undefined, "b went first");
  assert.ok(cache.get(cid("a")) && cache.get(cid("c")));
  cache.put(cid("a"), Uint8Array.of(7, 7));
  assert.deepEqual(cache.get(cid("a")), Uint8Array.of(7, 7), "replaced");
  assert.ok(cache.get(cid("c")), "replacing an entry evicts nothing");
  cache.delete(cid("c"));
  assert.equal(cache.size, 1);
  assert.equal(cache.get(cid("c")), undefined);
});

Deno.test("ChunkCache counts its slabs and each entry's overhead, within bytesMax", () => {
  const cache = new ChunkCache({ bytesMax: 2 * 16 + 3 * OVERHEAD, slabBytes: 16 });
  assert.equal(cache.bytes, 0, "no slab until a chunk comes");
  cache.put(cid("a"), new Uint8Array(10));
  assert.equal(cache.bytes, 16 + OVERHEAD);
  cache.put(cid("b"), new Uint8Array(10));
  assert.equal(cache.bytes, 2 * 16 + 2 * OVERHEAD, "b took a second slab");
  cache.put(cid("c"), new Uint8Array(6));
  assert.equal(cache.size, 3, "c fitted beside b");
  cache.put(cid("d"), new Uint8Array(6));
  assert.equal(cache.size, 3, "no room for a fourth entry's overhead");
  assert.equal(cache.get(cid("a")), undefined, "a went");
  assert.ok(cache.bytes <= cache.bytesMax);
  cache.put(cid("e"), new Uint8Array(16));
  assert.deepEqual(cache.get(cid("e")), new Uint8Array(16));
  assert.ok(cache.bytes <= cache.bytesMax);
});

Deno.test("ChunkCache holds at most CHUNK_CACHE_ENTRIES_MAX chunks, however small", () => {
  const cache = new ChunkCache();
  for (let i = 0; i <= CHUNK_CACHE_ENTRIES_MAX; i++) cache.put(cid(`c${i}`), new Uint8Array(1));
  assert.equal(cache.size, CHUNK_CACHE_ENTRIES_MAX);
  assert.equal(cache.get(cid("c0")), undefined, "the oldest went");
  assert.ok(cache.get(cid(`c${CHUNK_CACHE_ENTRIES_MAX}`)));
});

Deno.test("ChunkCache full of tiny chunks takes slabs for about twice their bytes at most", () => {
  const cache = new ChunkCache();
  const chunkBytes = 64;
  for (let i = 0; i < 8 * CHUNK_CACHE_ENTRIES_MAX; i++) {
    cache.put(cid(`t${i}`), new Uint8Array(chunkBytes).fill(i & 0xff));
    if (i % 3 === 0) cache.get(cid(`t${i >> 1}`));
  }
  assert.equal(cache.size, CHUNK_CACHE_ENTRIES_MAX);
  const slabBytes = cache.bytes - cache.size * OVERHEAD;
  assert.ok(
    slabBytes <= 2 * CHUNK_CACHE_ENTRIES_MAX * chunkBytes + 2 * CHUNK_CACHE_SLAB_BYTES,
    `${slabBytes} bytes of slabs`,
  );
  const last = 8 * CHUNK_CACHE_ENTRIES_MAX - 1;
  assert.deepEqual(cache.get(cid(`t${last}`)), new Uint8Array(chunkBytes).fill(last & 0xff));
});

Deno.test("ChunkCache keeps nothing larger than an entry may be, or with bytesMax 0", () => {
  const cache = new ChunkCache();
  cache.put(cid("big"), new Uint8Array(CHUNK_CACHE_ENTRY_BYTES_MAX + 1));
  assert.equal(cache.size, 0);
  const off = new ChunkCache({ bytesMax: 0 });
  off.put(cid("a"), new Uint8Array(1));
  assert.equal(off.get(cid("a")), undefined);
  const small = new ChunkCache({ bytesMax: 8 * 1024 + OVERHEAD, slabBytes: 1024 });
  small.put(cid("b"), new Uint8Array(1025));
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
    const id = cid(`c${pick(80)}`);
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

Deno.test("ChunkCache tells chunks of one blob apart by offset, and caches nothing under an id that is not a chunk id", () => {
  const cache = new ChunkCache();
  const blob = "0123456789abcdef0123456789abcdef";
  cache.put(`${blob}-0`, Uint8Array.of(1));
  cache.put(`${blob}-100000`, Uint8Array.of(2));
  assert.deepEqual(cache.get(`${blob}-0`), Uint8Array.of(1));
  assert.deepEqual(cache.get(`${blob}-100000`), Uint8Array.of(2));
  assert.equal(cache.get(`${blob}-1`), undefined);
  cache.put("not-a-chunk", Uint8Array.of(3));
  cache.put(`${blob.toUpperCase()}-0`, Uint8Array.of(4));
  assert.equal(cache.get("not-a-chunk"), undefined);
  assert.equal(cache.size, 2);
  cache.delete(`${blob}-0`);
  assert.equal(cache.get(`${blob}-0`), undefined);
  assert.deepEqual(cache.get(`${blob}-100000`), Uint8Array.of(2));
  assert.equal(cache.size, 1);
});
