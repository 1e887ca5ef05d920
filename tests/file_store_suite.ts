/**
 * One behaviour suite for every `FileStore` (`ranks/common/file_store.ts`): the client over a
 * socket, rank 0's store in-process, whatever comes next. It uses nothing but the interface, so
 * it never assumes a socket; each step works under a prefix of its own, so steps do not depend on
 * each other or on the store being empty.
 *
 * ```ts
 * fileStoreSuite("DfsClient passes the FileStore suite", async () => ({
 *   store, dataNodes: 3, replicas: 2, [Symbol.asyncDispose]: () => server.stop(),
 * }));
 * ```
 *
 * @module
 */

import assert from "node:assert/strict";
import { CHUNK_SIZE_BYTES, LIST_LIMIT_ENTRIES_MAX } from "../protocol/limits.ts";
import type { ByteSource, FileMeta, FileStore } from "../ranks/common/file_store.ts";
import { LOG_FILE_BYTES_MAX } from "../ranks/common/chunk_id.ts";
import { assertDfsError } from "./_assert.ts";
import { pseudoRandomBytes, sha256 } from "./_bytes.ts";
import { expectedLoss } from "./_loss.ts";

const MiB = 1024 * 1024;

/** A store to run the suite against, and what the suite must know of the cluster behind it. */
export interface FileStoreFixture extends AsyncDisposable {
  readonly store: FileStore;
  /** Data nodes behind the store, ranks 1 to `dataNodes`: the most replicas a file may have. */
  readonly dataNodes: number;
  /** Replicas a put keeps when it asks for no number. */
  readonly replicas: number;
}

/** Registers the suite as one test, `name`, over a fixture from `makeStore` disposed after it. */
export function fileStoreSuite(name: string, makeStore: () => Promise<FileStoreFixture>): void {
  Deno.test(name, async (t) => {
    await using fixture = await makeStore();
    await runFileStoreSuite(t, fixture);
  });
}

/** Runs every check of the suite as a step of `t`, over `fixture`'s store. */
export async function runFileStoreSuite(
  t: Deno.TestContext,
  fixture: FileStoreFixture,
): Promise<void> {
  for (const [name, check] of Object.entries(CHECKS)) {
    await t.step(name, () => check(fixture));
  }
}

type Check = (fixture: FileStoreFixture) => Promise<void>;

const CHECKS: Record<string, Check> = {
  "put then open and meta give back the bytes and metadata of every size": async (f) => {
    const sizes = [0, 1, 1000, LOG_FILE_BYTES_MAX, LOG_FILE_BYTES_MAX + 1, 3 * MiB + 12345];
    for (const size of sizes) {
      const name = `suite/roundtrip/${size}`;
      const data = pseudoRandomBytes(size, size + 11);
      const before = Date.now();
      const put = await f.store.put(name, data);
      assertMeta(put, { name, data, replicas: f.replicas, dataNodes: f.dataNodes, before });
      assert.deepEqual(await f.store.meta(name), put);
      const { meta, stream } = await f.store.open(name);
      assert.deepEqual(meta, put);
      assert.deepEqual(await readAll(stream), data, `${size} bytes come back byte for byte`);
    }
  },

  "put takes a stream, an async iterable or an iterable, in pieces across chunks": async (f) => {
    const data = pseudoRandomBytes(2 * MiB + 777, 5);
    const pieces = () => splitEvery(data, 300_001);
    const sources: [string, () => ByteSource][] = [
      ["stream", () => ReadableStream.from(pieces())],
      ["async", () =>
        (async function* () {
          yield* pieces();
        })()],
      ["iterable", () => pieces()],
    ];
    for (const [kind, source] of sources) {
      const name = `suite/sources/${kind}`;
      const meta = await f.store.put(name, source());
      assertMeta(meta, { name, data, replicas: f.replicas, dataNodes: f.dataNodes });
      assert.deepEqual(await readAll((await f.store.open(name)).stream), data);
    }
  },

  "put with a declared size refuses more or fewer bytes and stores nothing": async (f) => {
    const name = "suite/declared/file";
    const data = pseudoRandomBytes(20, 1);
    await assertDfsError(
      f.store.put(name, [data], { size: 10 }),
      "INVALID_REQUEST",
      /^Upload of "suite\/declared\/file" sent more than its declared 10 bytes$/,
    );
    await assertDfsError(
      f.store.put(name, [data], { size: 30 }),
      "INVALID_REQUEST",
      /^Upload of "suite\/declared\/file" ended after 20 of its declared 30 bytes$/,
    );
    await assertNotFound(f.store.meta(name), name);
    assert.equal((await f.store.put(name, [data], { size: 20 })).size, 20);
  },

  "open reads a byte range: start only, end only, within a chunk, across chunks": async (f) => {
    const name = "suite/range/file";
    const size = 2 * MiB + 300_000;
    const data = pseudoRandomBytes(size, 42);
    const put = await f.store.put(name, data);
    const ranges = [
      {},
      { start: 1000 },
      { end: 5000 },
      { start: 100, end: 200 },
      { start: MiB + 5, end: MiB + 6 },
      { start: MiB - 10, end: 2 * MiB + 10 },
      { start: 0, end: size },
      { start: size },
      { start: 7, end: 7 },
    ];
    for (const range of ranges) {
      const { meta, stream } = await f.store.open(name, range);
      assert.deepEqual(meta, put, "a ranged open still gives the whole file's metadata");
      const expected = data.subarray(range.start ?? 0, range.end ?? size);
      assert.deepEqual(await readAll(stream), expected, `range ${JSON.stringify(range)}`);
    }
    for (const [start, end] of [[0, size + 1], [10, 5], [size + 1, size + 1]]) {
      await assertDfsError(
        f.store.open(name, { start, end }),
        "INVALID_REQUEST",
        new RegExp(
          `^Cannot read bytes ${start} to ${end} of "suite/range/file": it has ${size} bytes$`,
        ),
      );
    }
  },

  "put over an existing name gives a higher version and the new bytes": async (f) => {
    const name = "suite/overwrite/file";
    const first = await f.store.put(name, pseudoRandomBytes(5000, 1));
    const data = pseudoRandomBytes(MiB + 3, 2);
    const second = await f.store.put(name, data);
    assert.ok(second.version > first.version, `${second.version} > ${first.version}`);
    assert.equal(second.sha256, sha256(data));
    assert.deepEqual(await f.store.meta(name), second);
    assert.deepEqual(await readAll((await f.store.open(name)).stream), data);
    const entries = await f.store.list("suite/overwrite/");
    assert.deepEqual(entries.map((e) => [e.name, e.size]), [[name, MiB + 3]]);
  },

  "meta, open and remove of a missing name fail with NOT_FOUND": async (f) => {
    const name = "suite/missing/file";
    await assertNotFound(f.store.meta(name), name);
    await assertNotFound(f.store.open(name), name);
    await assertNotFound(f.store.remove(name), name);
    await assertNotFound(f.store.rename(name, "suite/missing/other"), name);
  },

  "list gives the names under a prefix, sorted, with size and replicas": async (f) => {
    const prefix = "suite/list/";
    const names = ["b", "a/y", "é", "a", "c", "a/x", "B"].map((n) => prefix + n);
    for (const [i, name] of names.entries()) {
      await f.store.put(name, pseudoRandomBytes(i * 10, i), { replicas: 1 + (i % 2) });
    }
    for (const decoy of ["suite/lis", "suite/list-other", "suite/listx/a"]) {
      await f.store.put(decoy, new Uint8Array(1));
    }
    const sorted = names.toSorted();
    const entries = await f.store.list(prefix);
    assert.deepEqual(entries.map((e) => e.name), sorted);
    for (const entry of entries) {
      const i = names.indexOf(entry.name);
      assert.equal(entry.size, i * 10, entry.name);
      assert.equal(entry.replicas, 1 + (i % 2), entry.name);
      assert.equal(entry.modified, (await f.store.meta(entry.name)).modified, entry.name);
    }
    assert.deepEqual(
      (await f.store.list(`${prefix}a`)).map((e) => e.name),
      [`${prefix}a`, `${prefix}a/x`, `${prefix}a/y`],
    );
    assert.deepEqual(await f.store.list(`${prefix}zzz`), []);
    assert.ok((await f.store.list()).length >= names.length + 3, "no prefix lists everything");
  },

  "list after a name gives the names strictly after it; limit bounds the count": async (f) => {
    const prefix = "suite/cursor/";
    const names = ["a", "b", "c", "d", "e"].map((n) => prefix + n);
    for (const name of names) await f.store.put(name, new Uint8Array(3));
    const listed = async (options: { after?: string; limit?: number }) =>
      (await f.store.list(prefix, options)).map((e) => e.name);
    assert.deepEqual(await listed({}), names);
    assert.deepEqual(await listed({ after: `${prefix}b` }), names.slice(2));
    assert.deepEqual(await listed({ after: `${prefix}bb` }), names.slice(2), "a name not stored");
    assert.deepEqual(await listed({ after: "suite/" }), names, "a cursor before the prefix");
    assert.deepEqual(await listed({ after: "" }), names);
    assert.deepEqual(await listed({ after: `${prefix}e` }), []);
    assert.deepEqual(await listed({ after: "suite/z" }), []);
    assert.deepEqual(await listed({ limit: 2 }), names.slice(0, 2));
    assert.deepEqual(await listed({ limit: 1, after: `${prefix}c` }), [`${prefix}d`]);
    assert.deepEqual(await listed({ limit: LIST_LIMIT_ENTRIES_MAX }), names);
  },

  "paging with after and limit visits every name exactly once, in order": async (f) => {
    const prefix = "suite/paging/";
    const names = Array.from({ length: 23 }, (_, i) => `${prefix}${String(i).padStart(2, "0")}`);
    for (const name of names.toReversed()) await f.store.put(name, new Uint8Array(1));
    for (const limit of [1, 4, 23, 50]) {
      const seen: string[] = [];
      let after: string | undefined;
      for (let page = 0; page <= names.length; page++) {
        const entries = await f.store.list(prefix, { after, limit });
        assert.ok(entries.length <= limit, `page of ${entries.length} within ${limit}`);
        seen.push(...entries.map((e) => e.name));
        if (entries.length < limit) break;
        after = entries.at(-1)!.name;
      }
      assert.deepEqual(seen, names, `pages of ${limit}`);
    }
  },

  "remove and removePrefix take names away for good": async (f) => {
    const name = "suite/rm/one";
    await f.store.put(name, pseudoRandomBytes(100, 1));
    await f.store.remove(name);
    await assertNotFound(f.store.meta(name), name);
    await assertNotFound(f.store.open(name), name);
    await assertNotFound(f.store.remove(name), name);

    const inside = ["suite/rm/d/a", "suite/rm/d/b/c", "suite/rm/d/e"];
    for (const n of inside) await f.store.put(n, pseudoRandomBytes(MiB + 1, 2));
    await f.store.put("suite/rm/dx", new Uint8Array(5));
    assert.equal(await f.store.removePrefix("suite/rm/d/"), 3);
    for (const n of inside) await assertNotFound(f.store.meta(n), n);
    assert.deepEqual(await f.store.list("suite/rm/d/"), []);
    assert.deepEqual(await f.store.usage("suite/rm/d/"), { files: 0, bytes: 0, storedBytes: 0 });
    assert.deepEqual((await f.store.list("suite/rm/")).map((e) => e.name), ["suite/rm/dx"]);
    assert.equal(await f.store.removePrefix("suite/rm/d/"), 0);
  },

  "rename moves the bytes at once and replaces an existing name only with force": async (f) => {
    const [a, b, c] = ["suite/mv/a", "suite/mv/b", "suite/mv/c"];
    const dataA = pseudoRandomBytes(MiB + 100, 1);
    const dataC = pseudoRandomBytes(100, 2);
    const putA = await f.store.put(a, dataA);
    const moved = await f.store.rename(a, b);
    assert.equal(moved.name, b);
    assert.equal(moved.sha256, putA.sha256);
    assert.ok(moved.version > putA.version, "a rename is a new version");
    assert.deepEqual(await f.store.meta(b), moved);
    await assertNotFound(f.store.meta(a), a);
    assert.deepEqual(await readAll((await f.store.open(b)).stream), dataA);
    assert.deepEqual((await f.store.list("suite/mv/")).map((e) => e.name), [b]);

    await f.store.put(c, dataC);
    await assertDfsError(
      f.store.rename(b, c),
      "ALREADY_EXISTS",
      /^Cannot move "suite\/mv\/b" to "suite\/mv\/c": "suite\/mv\/c" exists/,
    );
    assert.deepEqual(await readAll((await f.store.open(b)).stream), dataA, "b is untouched");
    assert.deepEqual(await readAll((await f.store.open(c)).stream), dataC, "c is untouched");

    const forced = await f.store.rename(b, c, { force: true });
    assert.equal(forced.name, c);
    assert.deepEqual(await readAll((await f.store.open(c)).stream), dataA);
    await assertNotFound(f.store.meta(b), b);
    assert.deepEqual(await f.store.usage("suite/mv/"), {
      files: 1,
      bytes: dataA.length,
      storedBytes: dataA.length * f.replicas,
    });
  },

  "usage counts files, bytes, and bytes stored on every replica": async (f) => {
    const files = [
      { name: "suite/du/a", size: 0, replicas: undefined },
      { name: "suite/du/b", size: 1000, replicas: 1 },
      { name: "suite/du/c/d", size: 3 * MiB + 5, replicas: f.dataNodes },
      { name: "suite/du/e", size: 70_000, replicas: undefined },
    ];
    for (const { name, size, replicas } of files) {
      await f.store.put(name, pseudoRandomBytes(size, size), { replicas });
    }
    const sum = (of: (file: typeof files[number]) => number) =>
      files.reduce((total, file) => total + of(file), 0);
    assert.deepEqual(await f.store.usage("suite/du/"), {
      files: files.length,
      bytes: sum((file) => file.size),
      storedBytes: sum((file) => file.size * (file.replicas ?? f.replicas)),
    });
    assert.deepEqual(await f.store.usage("suite/du/c/"), {
      files: 1,
      bytes: 3 * MiB + 5,
      storedBytes: (3 * MiB + 5) * f.dataNodes,
    });
    assert.deepEqual(await f.store.usage("suite/du/none/"), { files: 0, bytes: 0, storedBytes: 0 });
  },

  "put keeps 1 to dataNodes replicas of every chunk and refuses more": async (f) => {
    const data = pseudoRandomBytes(2 * MiB + 1, 9);
    for (const replicas of new Set([1, f.replicas, f.dataNodes])) {
      const name = `suite/replicas/${replicas}`;
      const meta = await f.store.put(name, data, { replicas });
      assertMeta(meta, { name, data, replicas, dataNodes: f.dataNodes });
    }
    const name = "suite/replicas/too-many";
    await assertDfsError(
      f.store.put(name, data, { replicas: f.dataNodes + 1 }),
      "INVALID_REQUEST",
      new RegExp(
        `^Cannot keep ${f.dataNodes + 1} replicas: there are ${f.dataNodes} data nodes$`,
      ),
    );
    // The wire refuses 0 before the store sees it; both say what is wrong with `replicas`.
    await assertDfsError(f.store.put(name, data, { replicas: 0 }), "INVALID_REQUEST", /replicas/);
    await assertNotFound(f.store.meta(name), name);
  },

  "capacity lists every data node with its file system's size": async (f) => {
    await f.store.put("suite/df/file", pseudoRandomBytes(MiB, 3));
    const capacity = await f.store.capacity();
    assert.deepEqual(capacity.map((c) => c.rank), dataRanks(f));
    for (const c of capacity) {
      assert.ok(c.totalBytes > 0, `rank ${c.rank} has a file system`);
      assert.ok(c.availableBytes >= 0 && c.availableBytes <= c.totalBytes, `rank ${c.rank}`);
      assert.ok(Number.isSafeInteger(c.bytesHeld) && c.bytesHeld >= 0, `rank ${c.rank}`);
    }
    const held = capacity.reduce((total, c) => total + c.bytesHeld, 0);
    assert.ok(held >= MiB * f.replicas, `${held} bytes held hold the file's replicas`);
  },

  "fsck finds every file healthy": async (f) => {
    await f.store.put("suite/fsck/file", pseudoRandomBytes(MiB + 1, 4));
    const { files, storedBytes } = await f.store.usage();
    const report = await f.store.fsck();
    assert.equal(report.files, files);
    assert.equal(report.healthy, files);
    assert.equal(report.bytesChecked, storedBytes, "every replica of every chunk read");
    assert.deepEqual(
      [report.repaired, report.underReplicated, report.lost],
      [[], [], []],
    );
  },

  "status shows every data node up and nothing under-replicated or lost": async (f) => {
    await f.store.put("suite/status/file", pseudoRandomBytes(10, 5));
    const { files } = await f.store.usage();
    const status = await f.store.status();
    assert.equal(status.files, files);
    assert.deepEqual(
      status.ranks.map((r) => [r.rank, r.state]),
      dataRanks(f).map((r) => [r, "up"]),
    );
    assert.equal(status.underReplicatedChunks, 0);
    assert.equal(status.lostFiles, 0);
  },

  "doctor counts what losing a data rank would leave under-replicated and lost": async (f) => {
    const one = await f.store.put("suite/doctor/one", pseudoRandomBytes(MiB + 1, 6), {
      replicas: 1,
    });
    await f.store.put("suite/doctor/two", pseudoRandomBytes(10, 7), { replicas: 2 });
    const rank = one.chunks[0].ranks[0];
    const report = await f.store.doctor(String(rank));
    const expected = expectedLossOf(await metasOf(f.store), rank);
    assert.deepEqual(
      [report.target, report.kind, report.ranks, report.zones.length, report.ranksDown],
      [String(rank), "rank", [rank], 1, []],
    );
    assert.equal(report.files, expected.files);
    assert.deepEqual(report.wouldBe, expected.wouldBe);
    assert.ok(report.wouldBe.lost.names.includes("suite/doctor/one"));
    const nothing = { files: 0, chunks: 0, bytes: 0 };
    assert.deepEqual(report.now, {
      underReplicated: nothing,
      lost: { files: 0, bytes: 0, names: [] },
    });
    const zone = await f.store.doctor(report.zones[0]);
    assert.equal(zone.kind, "zone");
    assert.ok(zone.ranks.includes(rank), `zone ${report.zones[0]} covers rank ${rank}`);
  },

  "doctor refuses an empty target and one that is neither a data rank nor a zone": async (f) => {
    await assertDfsError(f.store.doctor(""), "INVALID_REQUEST", /target must not be empty$/);
    for (const target of ["no such zone", "0", String(f.dataNodes + 1)]) {
      await assertDfsError(
        f.store.doctor(target),
        "NOT_FOUND",
        /^Cannot find ".*": it is neither a data rank nor a zone \(data ranks .*; zones .*\)$/,
      );
    }
  },
};

/** The metadata of every file in the store. */
async function metasOf(store: FileStore): Promise<FileMeta[]> {
  const entries = await store.list();
  return await Promise.all(entries.map((e) => store.meta(e.name)));
}

/** What losing `rank` would do to `metas` with every data node up (written apart from `loss.ts`). */
function expectedLossOf(metas: FileMeta[], rank: number) {
  return { files: metas.length, wouldBe: expectedLoss(metas, new Set([rank])) };
}

/** Checks a put's metadata against the bytes it stored and the replicas it asked for. */
function assertMeta(
  meta: FileMeta,
  expected: {
    name: string;
    data: Uint8Array;
    replicas: number;
    dataNodes: number;
    before?: number;
  },
): void {
  const { name, data, replicas, dataNodes, before } = expected;
  assert.equal(meta.name, name);
  assert.equal(meta.size, data.length);
  assert.equal(meta.sha256, sha256(data));
  assert.equal(meta.replicas, replicas);
  assert.ok(Number.isSafeInteger(meta.version) && meta.version > 0, `version ${meta.version}`);
  if (before !== undefined) {
    assert.ok(meta.modified >= before - 1000 && meta.modified <= Date.now() + 1000, "modified");
  }
  assert.deepEqual(meta.chunks.map((c) => c.size), chunkSizes(data.length), `chunks of ${name}`);
  for (const chunk of meta.chunks) {
    assert.equal(new Set(chunk.ranks).size, replicas, `${replicas} distinct ranks per chunk`);
    for (const rank of chunk.ranks) {
      assert.ok(rank >= 1 && rank <= dataNodes, `rank ${rank} is a data node`);
    }
  }
}

/** A file's chunk sizes: whole chunks, then the rest (an empty file has one empty chunk). */
function chunkSizes(size: number): number[] {
  const sizes = Array.from({ length: Math.floor(size / CHUNK_SIZE_BYTES) }, () => CHUNK_SIZE_BYTES);
  if (size % CHUNK_SIZE_BYTES > 0 || size === 0) sizes.push(size % CHUNK_SIZE_BYTES);
  return sizes;
}

function dataRanks(f: FileStoreFixture): number[] {
  return Array.from({ length: f.dataNodes }, (_, i) => i + 1);
}

function splitEvery(data: Uint8Array, size: number): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  for (let at = 0; at < data.length; at += size) pieces.push(data.slice(at, at + size));
  return pieces;
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function assertNotFound(promise: Promise<unknown>, name: string): Promise<void> {
  const quoted = RegExp.escape(name);
  await assertDfsError(
    promise,
    "NOT_FOUND",
    new RegExp(`^Cannot find "${quoted}": file does not exist$`),
  );
}
