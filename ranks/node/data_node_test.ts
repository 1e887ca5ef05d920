import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { chunkIdOf, newBlobId } from "../common/chunk_id.ts";
import { MemoryChunkStore } from "./chunk_store.ts";
import { type DataNode, openDataNode } from "./data_node.ts";
import type { Manifest } from "../common/manifest.ts";

const RANK = 1;

/** A data node on a memory chunk store and a real log in `dir`, replaying what the log holds. */
async function openNode(dir: string, store = new MemoryChunkStore(), compactBytesMin?: number) {
  const node = await openDataNode(RANK, {
    store,
    logPath: `${dir}/meta.log`,
    dir,
    compactBytesMin,
  });
  return { node, store, [Symbol.asyncDispose]: () => node.close() };
}

/** A one-chunk manifest of `bytes` on ranks 1 and 2. */
function smallFile(name: string, version: number, bytes: Uint8Array): Manifest {
  const chunk = { id: chunkIdOf(newBlobId(), 0), size: bytes.length, ranks: [1, 2] };
  return {
    name,
    version,
    size: bytes.length,
    sha256: "0".repeat(64),
    modified: 1,
    chunks: [{ ...chunk, crc32: crc32(bytes) }],
  };
}

const bytesOf = (n: number, seed: number) => new Uint8Array(n).map((_, i) => (i * seed) & 0xff);

Deno.test("DataNode keeps a small file's chunk in its log, through reopen, repair and restore", async () => {
  const dir = await Deno.makeTempDir();
  const first = bytesOf(4096, 7);
  const m = smallFile("a", 1, first);
  const [chunk] = m.chunks;
  const read = (node: DataNode) =>
    node.handle({ op: "read", id: chunk.id, size: chunk.size, crc32: chunk.crc32 });
  {
    await using opened = await openNode(dir);
    const { node, store } = opened;
    assert.equal(await node.handle({ op: "commit", manifest: m, data: first.slice() }), true);
    assert.deepEqual(await read(node), first);
    assert.deepEqual(await store.scan(), new Map(), "no blob was written");
    const scan = await node.scan();
    assert.deepEqual([scan.blobs, scan.inLog], [[], chunk.id]);
  }
  const other = smallFile("b", 2, bytesOf(100, 3));
  {
    await using opened = await openNode(dir);
    const { node } = opened;
    assert.deepEqual(await read(node), first, "replayed from the log");
    await node.handle({ op: "commit", manifest: other, data: bytesOf(100, 3) });
    // A repair rewrites the log to the kept manifests and carries their bytes over.
    await node.handle({
      op: "repair",
      repair: { keep: [other, m], deleteBlobs: [], bytesHeld: 0 },
    });
    assert.deepEqual(await read(node), first);
    // A restore of a chunk kept in the log appends its new bytes to the log.
    const fixed = first.slice();
    await node.handle({ op: "restore", id: chunk.id, bytes: fixed, crc32: chunk.crc32 });
    assert.deepEqual(await read(node), first);
  }
  {
    await using opened = await openNode(dir);
    const { node, store } = opened;
    assert.deepEqual(await read(node), first, "replayed after the repair and the restore");
    const b = other.chunks[0];
    assert.deepEqual(await node.handle({ op: "read", id: b.id, size: 100 }), bytesOf(100, 3));
    assert.deepEqual(await store.scan(), new Map(), "still no blob");
    await node.handle({ op: "release", name: "a", version: 1 });
    await assert.rejects(read(node), { code: "NOT_FOUND" });
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("DataNode refuses a small file's bytes that do not match its CRC32", async () => {
  const dir = await Deno.makeTempDir();
  {
    await using opened = await openNode(dir);
    const m = smallFile("a", 1, bytesOf(10, 1));
    await assert.rejects(opened.node.handle({ op: "commit", manifest: m, data: bytesOf(10, 2) }), {
      code: "CORRUPTED",
      message: /arrived damaged/,
    });
    assert.deepEqual((await opened.node.scan()).manifests, []);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("DataNode keeps a restored small chunk it never had in its log, not in a blob", async () => {
  const dir = await Deno.makeTempDir();
  {
    await using opened = await openNode(dir);
    const { node, store } = opened;
    const bytes = bytesOf(500, 5);
    const m = smallFile("r", 1, bytes);
    const [chunk] = m.chunks;
    await node.handle({ op: "restore", id: chunk.id, bytes: bytes.slice(), crc32: chunk.crc32 });
    assert.deepEqual(await store.scan(), new Map());
    assert.deepEqual(await node.handle({ op: "read", id: chunk.id, size: 500 }), bytes);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("DataNode: bit rot in a small file's bytes in the log is caught and restored", async () => {
  const dir = await Deno.makeTempDir();
  const good = bytesOf(3000, 11);
  const m = smallFile("rot", 1, good);
  const [chunk] = m.chunks;
  const after = smallFile("after", 2, bytesOf(50, 13));
  const read = (node: DataNode) =>
    node.handle({ op: "read", id: chunk.id, size: chunk.size, crc32: chunk.crc32 });
  {
    await using opened = await openNode(dir);
    const { node } = opened;
    await node.handle({ op: "commit", manifest: m, data: good.slice() });
    await node.handle({ op: "commit", manifest: after, data: bytesOf(50, 13) });
    // Flip a bit in the middle of the file's bytes in the log.
    const log = await Deno.readFile(`${dir}/meta.log`);
    const at = indexOf(log, good.subarray(1000, 1064)) + 20;
    assert.ok(at > 20, "the bytes are in the log");
    using file = await Deno.open(`${dir}/meta.log`, { read: true, write: true });
    await file.seek(at, Deno.SeekMode.Start);
    await file.write(Uint8Array.of(log[at] ^ 0x08));
    await assert.rejects(read(node), { code: "CORRUPTED", message: /CRC32 does not match/ });
    await node.handle({ op: "restore", id: chunk.id, bytes: good.slice(), crc32: chunk.crc32 });
    assert.deepEqual(await read(node), good);
  }
  {
    // The damaged record is skipped at replay; the restored bytes and later records are there.
    await using opened = await openNode(dir);
    assert.deepEqual(await read(opened.node), good);
    const [b] = after.chunks;
    assert.deepEqual(await opened.node.handle({ op: "read", id: b.id, size: 50 }), bytesOf(50, 13));
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("DataNode: compactions racing overwrites keep every small file's bytes", async () => {
  const dir = await Deno.makeTempDir();
  const NAMES = 24;
  const VERSIONS = 30;
  const content = (n: number, v: number) => bytesOf(2000 + n, n * 31 + v);
  const latest = new Map<string, Manifest>();
  const read = (node: DataNode, m: Manifest) => {
    const [chunk] = m.chunks;
    return node.handle({ op: "read", id: chunk.id, size: chunk.size, crc32: chunk.crc32 });
  };
  {
    // Compacting from 16 KiB on: every round of overwrites rewrites the log while commits of the
    // next versions are still being appended.
    await using opened = await openNode(dir, new MemoryChunkStore(), 16 * 1024);
    const { node } = opened;
    for (let v = 1; v <= VERSIONS; v++) {
      await Promise.all(Array.from({ length: NAMES }, async (_, n) => {
        const name = `f${n}`;
        const m = smallFile(name, v, content(n, v));
        const older = latest.get(name);
        latest.set(name, m);
        // Staggered, with reads of the older version in flight: a compaction waits for reads, and
        // commits arrive while it waits and while it runs.
        await new Promise((resolve) => setTimeout(resolve, n % 4));
        if (older) await read(node, older);
        await Promise.all([
          node.handle({ op: "commit", manifest: m, data: content(n, v) }),
          older && node.handle({ op: "release", name, version: older.version }),
        ]);
      }));
      for (const [name, m] of latest) {
        assert.deepEqual(await read(node, m), content(Number(name.slice(1)), v), `${name} v${v}`);
      }
    }
    const log = await Deno.stat(`${dir}/meta.log`);
    assert.ok(log.size < NAMES * VERSIONS * 2000, `the log was compacted (${log.size} bytes)`);
  }
  {
    await using opened = await openNode(dir);
    const { node } = opened;
    assert.equal((await node.scan()).manifests.length, NAMES);
    for (const [name, m] of latest) {
      assert.deepEqual(await read(node, m), content(Number(name.slice(1)), VERSIONS), name);
    }
  }
  await Deno.remove(dir, { recursive: true });
});

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
