import assert from "node:assert/strict";
import { ChunkIdSet } from "../common/chunk_id_set.ts";
import { manifestBytes, manifestsIn, smallFile } from "../testing/manifests.ts";
import { crc32 } from "node:zlib";
import { chunkIdOf, newBlobId } from "../common/chunk_id.ts";
import { denoEnv } from "../env/deno_env.ts";
import type { Env, FileSystem } from "../env/env.ts";
import { MemoryFileSystem } from "../env/memory_fs.ts";
import { type DataNode, LOG_FILE } from "./data_node.ts";
import { openDataNode } from "./open_node.ts";
import { parseRecords } from "./record_frame.ts";
import { type Manifest, tombstoneOf } from "../common/manifest.ts";
import { TEST_FILE_SYSTEMS } from "./_test_fs.ts";
import { readManifests } from "../common/manifest_codec.ts";
import { SUMMARY_PAGE_BYTES } from "../common/node_protocol.ts";
import { DfsError } from "../../protocol/errors.ts";
import { summarize } from "../testing/summaries.ts";

const RANK = 1;

/** A data node in `dir` on `fs`, replaying what its log holds. */
async function openNode(
  dir: string,
  options: { fs: FileSystem; compactBytesMin?: number; log?: Env["log"] },
) {
  const { fs, compactBytesMin, log } = options;
  const node = await openDataNode(RANK, dir, {
    env: denoEnv({ fs, ...log && { log } }),
    compactBytesMin,
  });
  return { node, [Symbol.asyncDispose]: () => node.close() };
}

/** The blobs a node holds (chunks kept in its log are not among them). */
async function blobsOf(node: DataNode): Promise<[string, number][]> {
  return (await node.scan()).blobs;
}

const bytesOf = (n: number, seed: number) => new Uint8Array(n).map((_, i) => (i * seed) & 0xff);
/** The file a read names, through which the node finds a small file's chunk. */
const fileOf = (m: Manifest) => ({ name: m.name, version: m.version });

for (const testFs of TEST_FILE_SYSTEMS) {
  Deno.test(`DataNode keeps a small file's chunk in its log, through reopen, repair and restore${testFs.suffix}`, async () => {
    await using root = await testFs.newRoot();
    const { fs, dir } = root;
    const first = bytesOf(4096, 7);
    const m = smallFile("a", 1, first);
    const [chunk] = m.chunks;
    const read = (node: DataNode) =>
      node.handle({ op: "read", id: chunk.id, size: chunk.size, crc32: chunk.crc32, ...fileOf(m) });
    {
      await using opened = await openNode(dir, { fs });
      const { node } = opened;
      assert.equal(await node.handle({ op: "commit", manifest: m, data: first.slice() }), true);
      assert.deepEqual(await read(node), first);
      assert.deepEqual(await blobsOf(node), [], "no blob was written");
      const scan = await node.scan();
      assert.deepEqual(scan.blobs, []);
      assert.deepEqual(ChunkIdSet.decode(scan.inLog).has(chunk.id), true);
      assert.deepEqual(ChunkIdSet.decode(scan.inLog).size, 1);
    }
    const other = smallFile("b", 2, bytesOf(100, 3));
    {
      await using opened = await openNode(dir, { fs });
      const { node } = opened;
      assert.deepEqual(await read(node), first, "replayed from the log");
      await node.handle({ op: "commit", manifest: other, data: bytesOf(100, 3) });
      // A repair rewrites the log to the kept manifests and carries their bytes over.
      await node.handle({
        op: "repair",
        repair: { keep: manifestBytes([other, m]), deleteBlobs: [], bytesHeld: 0 },
      });
      assert.deepEqual(await read(node), first);
      // A restore of a chunk kept in the log appends its new bytes to the log.
      const fixed = first.slice();
      await node.handle({ op: "restore", id: chunk.id, bytes: fixed, crc32: chunk.crc32 });
      assert.deepEqual(await read(node), first);
    }
    {
      await using opened = await openNode(dir, { fs });
      const { node } = opened;
      assert.deepEqual(await read(node), first, "replayed after the repair and the restore");
      const b = other.chunks[0];
      assert.deepEqual(
        await node.handle({ op: "read", id: b.id, size: 100, ...fileOf(other) }),
        bytesOf(100, 3),
      );
      assert.deepEqual(await blobsOf(node), [], "still no blob");
      await node.handle({ op: "release", name: "a", version: 1 });
      await assert.rejects(read(node), { code: "NOT_FOUND" });
    }
  });

  Deno.test(`DataNode refuses a small file's bytes that do not match its CRC32${testFs.suffix}`, async () => {
    await using root = await testFs.newRoot();
    const { fs, dir } = root;
    {
      await using opened = await openNode(dir, { fs });
      const m = smallFile("a", 1, bytesOf(10, 1));
      await assert.rejects(
        opened.node.handle({ op: "commit", manifest: m, data: bytesOf(10, 2) }),
        {
          code: "CORRUPTED",
          message: /arrived damaged/,
        },
      );
      assert.deepEqual(manifestsIn(await opened.node.scan()), []);
    }
  });

  Deno.test(`DataNode keeps a restored small chunk it never had in its log, not in a blob${testFs.suffix}`, async () => {
    await using root = await testFs.newRoot();
    const { fs, dir } = root;
    {
      await using opened = await openNode(dir, { fs });
      const { node } = opened;
      const bytes = bytesOf(500, 5);
      const m = smallFile("r", 1, bytes);
      const [chunk] = m.chunks;
      await node.handle({ op: "restore", id: chunk.id, bytes: bytes.slice(), crc32: chunk.crc32 });
      assert.deepEqual(await blobsOf(node), []);
      assert.deepEqual(await node.handle({ op: "read", id: chunk.id, size: 500 }), bytes);
    }
  });

  Deno.test(`DataNode: bit rot in a small file's bytes in the log is caught and restored${testFs.suffix}`, async () => {
    await using root = await testFs.newRoot();
    const { fs, dir } = root;
    const good = bytesOf(3000, 11);
    const m = smallFile("rot", 1, good);
    const [chunk] = m.chunks;
    const after = smallFile("after", 2, bytesOf(50, 13));
    const read = (node: DataNode) =>
      node.handle({ op: "read", id: chunk.id, size: chunk.size, crc32: chunk.crc32, ...fileOf(m) });
    {
      await using opened = await openNode(dir, { fs });
      const { node } = opened;
      await node.handle({ op: "commit", manifest: m, data: good.slice() });
      await node.handle({ op: "commit", manifest: after, data: bytesOf(50, 13) });
      // Flip a bit in the middle of the file's bytes in the log.
      const log = await fs.readFile(`${dir}/${LOG_FILE}`);
      const at = indexOf(log, good.subarray(1000, 1064)) + 20;
      assert.ok(at > 20, "the bytes are in the log");
      using file = await fs.open(`${dir}/${LOG_FILE}`, { read: true, write: true });
      await file.seek(at, Deno.SeekMode.Start);
      await file.write(Uint8Array.of(log[at] ^ 0x08));
      await assert.rejects(read(node), { code: "CORRUPTED", message: /CRC32 does not match/ });
      await node.handle({ op: "restore", id: chunk.id, bytes: good.slice(), crc32: chunk.crc32 });
      assert.deepEqual(await read(node), good);
    }
    {
      // The damaged record is skipped at replay, and said so in the env's log; the restored bytes
      // and later records are there.
      const messages: string[] = [];
      const log = { error: (message: string) => void messages.push(message) };
      await using opened = await openNode(dir, { fs, log });
      assert.deepEqual(messages.map((message) => message.replace(/\d+ bytes/, "N bytes")), [
        `dfs: log "${dir}/${LOG_FILE}": skipped 1 damaged region(s), N bytes in all; kept 2 intact record(s) after the damage`,
      ]);
      assert.deepEqual(await read(opened.node), good);
      const [b] = after.chunks;
      assert.deepEqual(
        await opened.node.handle({ op: "read", id: b.id, size: 50, ...fileOf(after) }),
        bytesOf(50, 13),
      );
    }
  });

  Deno.test(`DataNode: compactions racing overwrites keep every small file's bytes${testFs.suffix}`, async () => {
    await using root = await testFs.newRoot();
    const { fs, dir } = root;
    const NAMES = 24;
    const VERSIONS = 30;
    const content = (n: number, v: number) => bytesOf(2000 + n, n * 31 + v);
    const latest = new Map<string, Manifest>();
    const read = (node: DataNode, m: Manifest) => {
      const [chunk] = m.chunks;
      const { id, size, crc32 } = chunk;
      return node.handle({ op: "read", id, size, crc32, ...fileOf(m) });
    };
    {
      // Compacting from 16 KiB on: every round of overwrites rewrites the log while commits of the
      // next versions are still being appended.
      await using opened = await openNode(dir, { fs, compactBytesMin: 16 * 1024 });
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
        // Every manifest read back from where the table says its record is, after compactions.
        const byName = (a: Manifest, b: Manifest) => a.name < b.name ? -1 : 1;
        assert.deepEqual(
          [...readManifests((await node.scan()).manifests)].sort(byName),
          [...latest.values()].sort(byName),
          `the manifests held after round ${v}`,
        );
      }
      // Where its records end: the zeros the log keeps written after them do not count.
      const { intactBytes } = parseRecords(await fs.readFile(`${dir}/${LOG_FILE}`));
      assert.ok(
        intactBytes < NAMES * VERSIONS * 2000,
        `the log was compacted (${intactBytes} bytes)`,
      );
    }
    {
      await using opened = await openNode(dir, { fs });
      const { node } = opened;
      assert.equal(manifestsIn(await node.scan()).length, NAMES);
      for (const [name, m] of latest) {
        assert.deepEqual(await read(node, m), content(Number(name.slice(1)), VERSIONS), name);
      }
    }
  });
}

Deno.test("DataNode answers statfs from its env's file system", async () => {
  const fs = new MemoryFileSystem({ capacityBytes: 1 << 30, device: 9 });
  await using opened = await openNode("/data/rank-1", { fs });
  const stats = await opened.node.handle({ op: "statfs" });
  assert.deepEqual(stats, {
    totalBytes: 1 << 30,
    availableBytes: (1 << 30) - fs.usedBytes,
    device: 9,
  });
});

Deno.test("DataNode after a crash holds every commit that was answered", async () => {
  const fs = new MemoryFileSystem();
  const dir = "/data/rank-1";
  await fs.mkdir("/data");
  fs.syncAll();
  const small = smallFile("small", 1, bytesOf(100, 3));
  const blob = newBlobId();
  const big: Manifest = {
    name: "big",
    version: 2,
    size: 100_000,
    sha256: "0".repeat(64),
    modified: 1,
    chunks: [{
      id: chunkIdOf(blob, 0),
      size: 100_000,
      ranks: [RANK],
      crc32: crc32(bytesOf(100_000, 5)),
    }],
  };
  {
    const { node } = await openNode(dir, { fs });
    await node.handle({ op: "commit", manifest: small, data: bytesOf(100, 3) });
    await node.handle({ op: "write", id: big.chunks[0].id, bytes: bytesOf(100_000, 5) });
    await node.handle({ op: "commit", manifest: big });
    await node.handle({ op: "write", id: chunkIdOf(newBlobId(), 0), bytes: bytesOf(10, 1) });
    fs.crash();
  }
  await using opened = await openNode(dir, { fs });
  const { node } = opened;
  const scan = await node.scan();
  assert.deepEqual(manifestsIn(scan).map((m) => m.name).sort(), ["big", "small"]);
  assert.deepEqual(scan.blobs, [[blob, 100_000]], "the uncommitted write is gone");
  assert.deepEqual(
    await node.handle({ op: "read", id: big.chunks[0].id, size: 100_000 }),
    bytesOf(100_000, 5),
  );
  assert.deepEqual(
    await node.handle({ op: "read", id: small.chunks[0].id, size: 100, ...fileOf(small) }),
    bytesOf(100, 3),
  );
});

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

Deno.test("DataNode sums up what it holds in pages that add up, and drops the summary when it changes", async () => {
  const fs = new MemoryFileSystem();
  await using opened = await openNode("/n", { fs });
  const { node } = opened;
  // Enough manifests first held here for several pages of SUMMARY_PAGE_BYTES.
  const files = Array.from({ length: 25_000 }, (_, i) => smallFile(`s/${i}`, 1, bytesOf(8, i)));
  for (let i = 0; i < files.length; i += 500) {
    await Promise.all(
      files.slice(i, i + 500).map((manifest, j) =>
        node.handle({ op: "commit", manifest, data: bytesOf(8, i + j) })
      ),
    );
  }
  const first = await node.summary(9);
  const pages = [first];
  while (!pages.at(-1)!.totals) pages.push(node.summaryPage());
  assert.ok(pages.length >= 2, `${pages.length} pages`);
  for (const page of pages) {
    assert.ok(page.manifests.length <= SUMMARY_PAGE_BYTES + 1024, `${page.manifests.length} B`);
  }
  // Each manifest whole, as committed: copied from its commit record into the page.
  const byName = (a: Manifest, b: Manifest) => a.name < b.name ? -1 : 1;
  const sent = pages.flatMap((page) => [...readManifests(page.manifests)]);
  assert.deepEqual(sent.sort(byName), files.toSorted(byName));
  // One page or many, the same summary.
  const whole = summarize({
    rank: RANK,
    manifests: files,
    inLog: ChunkIdSet.of(files.map((m) => m.chunks[0].id)),
    blobs: new Map(),
    opened: pages.at(-1)!.totals!.opened,
  }, 9);
  const { rank: _, manifests: __, ...totals } = whole;
  assert.deepEqual(pages.at(-1)!.totals, totals);
  assert.throws(
    () => node.summaryPage(),
    (error: unknown) =>
      error instanceof DfsError && error.code === "NOT_FOUND" &&
      /Rank 1 has no summary being made/.test(error.message),
  );
  // A change between pages: the pages would not add up, so the next one is refused.
  await node.summary(10);
  await node.handle({ op: "release", name: "s/0", version: 1 });
  assert.throws(
    () => node.summaryPage(),
    (error: unknown) =>
      error instanceof DfsError && error.code === "NOT_FOUND" &&
      /what it holds changed since the summary began/.test(error.message),
  );
});

Deno.test("DataNode sends a scan larger than a piece in pieces that join up, and drops it when it changes", async () => {
  const fs = new MemoryFileSystem();
  const node = await openDataNode(RANK, "/n", { env: denoEnv({ fs }), scanPageBytes: 50 });
  try {
    for (let i = 0; i < 5; i++) {
      await node.handle({ op: "commit", manifest: smallFile(`p/${i}`, 1, bytesOf(8, i)) });
    }
    const scan = await node.scan();
    assert.equal(scan.manifests.length, 50);
    const pieces = [scan.manifests];
    for (let more = scan.more; more;) {
      const piece = await node.scanPage();
      pieces.push(piece.manifests);
      more = piece.more;
    }
    assert.ok(pieces.length > 2, `${pieces.length} pieces`);
    assert.ok(pieces.slice(0, -1).every((piece) => piece.length === 50), "all but the last whole");
    const joined = new Uint8Array(pieces.reduce((n, piece) => n + piece.length, 0));
    pieces.reduce((at, piece) => (joined.set(piece, at), at + piece.length), 0);
    assert.deepEqual(
      [...readManifests(joined)].map((m) => m.name).sort(),
      ["p/0", "p/1", "p/2", "p/3", "p/4"],
    );
    const notSent = (pattern: RegExp) => (error: unknown) =>
      error instanceof DfsError && error.code === "NOT_FOUND" && pattern.test(error.message);
    await assert.rejects(() => node.scanPage(), notSent(/Rank 1 has no scan being sent/));
    await node.scan();
    await node.handle({ op: "release", name: "p/0", version: 1 });
    await assert.rejects(
      () => node.scanPage(),
      notSent(/what it holds changed since the scan began/),
    );
  } finally {
    await node.close();
  }
});

for (const testFs of TEST_FILE_SYSTEMS) {
  Deno.test(`DataNode finds a small file's chunk through its commit record, and by its id once another version, a rename or a compose leaves it there${testFs.suffix}`, async () => {
    await using root = await testFs.newRoot();
    const { fs, dir } = root;
    const bytes = new Map<string, Uint8Array>();
    const commit = async (node: DataNode, name: string, version: number) => {
      const data = bytesOf(100 + version, name.length + version);
      const m = smallFile(name, version, data);
      bytes.set(m.chunks[0].id, data);
      await node.handle({ op: "commit", manifest: m, data: data.slice() });
      return m;
    };
    const read = (node: DataNode, m: Manifest, file = fileOf(m)) => {
      const [{ id, size, crc32 }] = m.chunks;
      return node.handle({ op: "read", id, size, crc32, ...file });
    };
    const assertReads = async (node: DataNode, m: Manifest, file = fileOf(m)) =>
      assert.deepEqual(await read(node, m, file), bytes.get(m.chunks[0].id), m.name);
    let [a1, a2, b, c, d] = [] as Manifest[];
    {
      await using opened = await openNode(dir, { fs });
      const { node } = opened;
      a1 = await commit(node, "a", 1);
      b = await commit(node, "b", 1);
      c = await commit(node, "c", 1);
      d = await commit(node, "d", 1);
      assert.equal(node.chunksPlacedById, 0, "each found through its commit record");
      await assertReads(node, a1);
      // Named by its id alone, such a chunk is not found: reads name the file.
      await assert.rejects(
        node.handle({ op: "read", id: a1.chunks[0].id, size: a1.size }),
        { code: "NOT_FOUND" },
      );
      // A newer version: the older one's chunk is found by its id, until released.
      a2 = await commit(node, "a", 2);
      assert.equal(node.chunksPlacedById, 1);
      await assertReads(node, a1);
      await assertReads(node, a2);
      // Renamed: the chunk stays in b's commit record, found by its id under the new name.
      const renamed = { ...b, name: "b2", version: 3 };
      await node.handle({
        op: "rename",
        fromVersion: 1,
        tombstone: tombstoneOf("b", 3, 9),
        manifest: renamed,
      });
      await assertReads(node, b, fileOf(renamed));
      // Composed: the parts' chunks are found by their ids under the composed file.
      const composed = {
        ...c,
        name: "cd",
        version: 4,
        size: c.size + d.size,
        chunks: [...c.chunks, ...d.chunks],
      };
      await node.handle({ op: "compose", sources: [fileOf(c), fileOf(d)], manifest: composed });
      await assertReads(node, c, fileOf(composed));
      await assertReads(node, d, fileOf(composed));
      assert.equal(node.chunksPlacedById, 4);
      // Every chunk is counted present, by a scan and by a summary.
      const scan = await node.scan();
      const ids = ChunkIdSet.decode(scan.inLog);
      for (const m of [a1, a2, b, c, d]) assert.ok(ids.has(m.chunks[0].id), m.name);
      assert.equal(ids.size, 5);
      const pages = [await node.summary(7)];
      while (!pages.at(-1)!.totals) pages.push(node.summaryPage());
      const totals = pages.at(-1)!.totals!;
      assert.equal(totals.allPresent, true);
      assert.equal(totals.bytesHeld, [a1, a2, b, c, d].reduce((n, m) => n + m.size, 0));
      await node.handle({ op: "release", name: "a", version: 1 });
      await assert.rejects(read(node, a1), { code: "NOT_FOUND" });
      assert.equal(node.chunksPlacedById, 3);
    }
    {
      // Replayed, then compacted.
      await using opened = await openNode(dir, { fs });
      const { node } = opened;
      assert.equal(node.chunksPlacedById, 3);
      await assertReads(node, a2);
      await node.handle({
        op: "repair",
        repair: { drop: [{ name: "zz", version: 1 }], deleteBlobs: [], bytesHeld: 0 },
      });
      // The renamed file's commit record now carries its chunk: only the composed file's are
      // found by their ids.
      assert.equal(node.chunksPlacedById, 2);
      await assertReads(node, a2);
      await assertReads(node, b, { name: "b2", version: 3 });
      await assertReads(node, c, { name: "cd", version: 4 });
      await node.handle({ op: "release", name: "a", version: 2 });
      await assert.rejects(read(node, a2), { code: "NOT_FOUND" });
      assert.equal(node.chunksPlacedById, 2);
    }
  });
}
