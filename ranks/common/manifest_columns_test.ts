import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { NAME_BYTES_MAX } from "../../protocol/limits.ts";
import { Prng } from "../../tests/_bytes.ts";
import { type ChunkRef, type Manifest, replicasOf, tombstoneOf } from "./manifest.ts";
import {
  MANIFEST_SLOTS_MIN,
  ManifestColumns,
  type ManifestSummary,
  NAMES_SLAB_BYTES,
  RANKS_INLINE_MAX,
  REPLICAS_COUNTED_MAX,
} from "./manifest_columns.ts";

const SHA = "0123456789abcdef".repeat(4);
const BLOB = "00112233445566778899aabbccddeeff";

/** A small file as rank 0 commits it: one chunk `<blob>-0` on two ranks, with a CRC32. */
function small(name: string, version = 1, size = 4096): Manifest {
  return {
    name,
    version,
    size,
    sha256: SHA,
    modified: 1_780_000_000_000 + version,
    chunks: [{ id: `${BLOB}-0`, size, ranks: [3, 1], crc32: 0xdeadbeef }],
  };
}

function withChunks(name: string, chunks: ChunkRef[], extra: Partial<Manifest> = {}): Manifest {
  const size = chunks.reduce((n, c) => n + c.size, 0);
  return { ...small(name), size, chunks, ...extra };
}

function roundTrip(m: Manifest): Manifest {
  const columns = new ManifestColumns();
  columns.set(m);
  const got = columns.get(m.name);
  assert.deepEqual(got, m);
  assert.notEqual(got, m);
  assert.deepEqual([...columns.values()], [m]);
  return got!;
}

const byName = (a: { name: string }, b: { name: string }) =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

Deno.test("ManifestColumns gives back an equal copy of a small file's manifest", () => {
  roundTrip(small("tiny/000123456"));
  roundTrip(small("photos/2026/IMG_001234.jpg", 7, 4));
});

Deno.test("ManifestColumns gives back every odd manifest as it was set", () => {
  const cases: Manifest[] = [
    tombstoneOf("removed", 9, 1234),
    withChunks("empty", [], { size: 0 }),
    withChunks("zero bytes", [{ id: `${BLOB}-0`, size: 0, ranks: [1, 2] }]),
    withChunks("no crc32", [{ id: `${BLOB}-0`, size: 10, ranks: [1, 2] }]),
    withChunks("one rank", [{ id: `${BLOB}-0`, size: 10, ranks: [5] }]),
    withChunks("no rank", [{ id: `${BLOB}-0`, size: 10, ranks: [] }]),
    withChunks("crc32 zero and max", [{ id: `${BLOB}-0`, size: 1, ranks: [0], crc32: 0 }]),
    withChunks("crc32 max", [{ id: `${BLOB}-0`, size: 1, ranks: [255], crc32: 2 ** 32 - 1 }]),
    withChunks("at an offset", [{ id: `${BLOB}-100000`, size: 10, ranks: [1, 2] }]),
    withChunks("many chunks", [
      { id: `${BLOB}-0`, size: 1 << 20, ranks: [1, 2], crc32: 1 },
      { id: `${BLOB}-100000`, size: 1 << 20, ranks: [2, 3], crc32: 2 },
      { id: `${BLOB}-200000`, size: 7, ranks: [3, 1] },
    ]),
    withChunks("many ranks", [{ id: `${BLOB}-0`, size: 10, ranks: [1, 2, 3, 4, 5] }]),
    withChunks("high rank", [{ id: `${BLOB}-0`, size: 10, ranks: [1, 256], crc32: 3 }]),
    withChunks("odd crc32", [{ id: `${BLOB}-0`, size: 10, ranks: [1], crc32: -1 }]),
    withChunks("odd blob", [{ id: `${BLOB.toUpperCase()}-0`, size: 10, ranks: [1] }]),
    withChunks("short id", [{ id: "abc-0", size: 10, ranks: [1] }]),
    withChunks("id not ending -0", [{ id: `${BLOB}-00`, size: 10, ranks: [1] }]),
    { ...small("chunk size is not the file's"), size: 11 },
    { ...small("upper-case sha256"), sha256: SHA.toUpperCase() },
    { ...small("long sha256"), sha256: SHA + "0" },
    { ...small("short sha256"), sha256: "abc" },
    { ...small("no sha256"), sha256: "" },
    { ...small("attrs"), attrs: { "content-type": "text/plain", etag: '"x"' } },
    { ...small("big numbers", 2 ** 53 - 1, 2 ** 40), modified: -1.5 },
    withChunks("everything at once", [
      { id: `${BLOB}-5`, size: 1, ranks: [1, 2, 3, 4, 5, 6], crc32: 9 },
      { id: `${BLOB}-6`, size: 2, ranks: [300] },
    ], { sha256: "x", attrs: { a: "b" } }),
  ];
  for (const m of cases) roundTrip(m);
});

Deno.test("ManifestColumns keeps names of any script, up to NAME_BYTES_MAX bytes", () => {
  const names = [
    "café/naïve.txt",
    "写真/二〇二六/画像.jpg",
    "emoji/😀🎉.png",
    "a",
    "x".repeat(NAME_BYTES_MAX),
    "é".repeat(NAME_BYTES_MAX / 2),
    "😀".repeat(NAME_BYTES_MAX / 4),
  ];
  const columns = new ManifestColumns();
  for (const [i, name] of names.entries()) columns.set(small(name, i + 1));
  for (const [i, name] of names.entries()) assert.deepEqual(columns.get(name), small(name, i + 1));
  assert.deepEqual([...columns.names()].sort(), [...names].sort());
  assert.equal(columns.get("cafe/naive.txt"), undefined);
  assert.equal(columns.get("café/naïve.txt".normalize("NFD")), undefined);
  assert.deepEqual([...columns.names({ prefix: "写真/" })], ["写真/二〇二六/画像.jpg"]);
  assert.deepEqual([...columns.names({ prefix: "emoji/😀" })], ["emoji/😀🎉.png"]);
});

Deno.test("ManifestColumns.set() refuses an empty, ill-formed or too long name", () => {
  const columns = new ManifestColumns();
  const refused = [
    ["", /the name is empty/],
    ["x".repeat(NAME_BYTES_MAX + 1), /over the limit of 1024 bytes/],
    ["é".repeat(NAME_BYTES_MAX / 2 + 1), /over the limit of 1024 bytes/],
    ["a\uD800b", /not well-formed/],
  ] as const;
  for (const [name, message] of refused) {
    assert.throws(() => columns.set(small(name)), (error: unknown) => {
      assert.ok(error instanceof DfsError);
      assert.equal(error.code, "INVALID_REQUEST");
      assert.match(error.message, /^Cannot hold a manifest of ".*": /);
      assert.match(error.message, message);
      return true;
    });
    assert.equal(columns.get(name), undefined);
    assert.equal(columns.has(name), false);
    assert.equal(columns.delete(name), false);
  }
  assert.equal(columns.size, 0);
});

Deno.test("ManifestColumns copies: changing a manifest set or got changes nothing held", () => {
  const columns = new ManifestColumns();
  const m = withChunks("a", [
    { id: `${BLOB}-0`, size: 1, ranks: [1, 2], crc32: 1 },
    { id: `${BLOB}-1`, size: 1, ranks: [1, 2] },
  ], { attrs: { k: "v" } });
  const copy = structuredClone(m);
  columns.set(m);
  m.chunks[0].ranks.push(3);
  m.chunks.pop();
  (m.attrs as Record<string, string>).k = "changed";
  assert.deepEqual(columns.get("a"), copy);
  const got = columns.get("a")!;
  got.chunks[1].ranks[0] = 9;
  got.version = 99;
  assert.deepEqual(columns.get("a"), copy);
  const inline = small("b");
  columns.set(inline);
  columns.get("b")!.chunks[0].ranks.push(7);
  assert.deepEqual(columns.get("b"), small("b"));
});

Deno.test("ManifestColumns.set() replaces the manifest of the same name", () => {
  const columns = new ManifestColumns();
  columns.set(small("a", 1));
  columns.set({ ...small("a", 2), attrs: { k: "v" } });
  assert.deepEqual(columns.get("a"), { ...small("a", 2), attrs: { k: "v" } });
  columns.set(small("a", 3)); // back inline: the side entry goes
  assert.deepEqual(columns.get("a"), small("a", 3));
  columns.set(tombstoneOf("a", 4, 5));
  assert.deepEqual(columns.get("a"), tombstoneOf("a", 4, 5));
  assert.equal(columns.size, 1);
  assert.equal(columns.versionOf("a"), 4);
  assert.equal(columns.versionOf("b"), undefined);
});

Deno.test("ManifestColumns holds every manifest through several doublings", () => {
  const columns = new ManifestColumns();
  const count = MANIFEST_SLOTS_MIN * 2 ** 10;
  const bytes = [columns.bytes];
  for (let i = 0; i < count; i++) {
    columns.set(small(`photos/${i % 7}/IMG_${i}.jpg`, i + 1, i + 1));
    if ((i & (i - 1)) === 0) bytes.push(columns.bytes);
  }
  assert.equal(columns.size, count);
  for (let i = 0; i < count; i++) {
    assert.deepEqual(
      columns.get(`photos/${i % 7}/IMG_${i}.jpg`),
      small(`photos/${i % 7}/IMG_${i}.jpg`, i + 1, i + 1),
    );
  }
  assert.equal(columns.get("photos/0/IMG_-1.jpg"), undefined);
  assert.ok(bytes.every((b, i) => i === 0 || b >= bytes[i - 1]), "bytes only grow");
  // ~130 bytes a file at most, slack of the doublings included.
  assert.ok(columns.bytes / count < 2 * 130, `${columns.bytes / count} bytes a file`);
});

Deno.test("ManifestColumns.delete() frees the slot for the next name", () => {
  const columns = new ManifestColumns();
  for (let i = 0; i < 1000; i++) columns.set(small(`n${i}`));
  assert.equal(columns.delete("n5"), true);
  assert.equal(columns.delete("n5"), false);
  assert.equal(columns.has("n5"), false);
  assert.equal(columns.size, 999);
  let most = 0;
  for (let round = 0; round < 100; round++) {
    for (let i = 0; i < 500; i++) columns.delete(`n${i}`);
    for (let i = 0; i < 500; i++) columns.set(small(`n${i}`, round + 2));
    if (round < 5) most = Math.max(most, columns.bytes);
    else assert.ok(columns.bytes <= most, `round ${round}: ${columns.bytes} > ${most} bytes`);
  }
  assert.equal(columns.size, 1000);
  for (let i = 0; i < 1000; i++) assert.equal(columns.versionOf(`n${i}`), i < 500 ? 101 : 1);
});

Deno.test("ManifestColumns compacts its names once most were freed, and keeps the rest", () => {
  const columns = new ManifestColumns();
  const name = (i: number) => `${"long-folder-name/".repeat(8)}${i}`;
  const count = Math.ceil((4 * NAMES_SLAB_BYTES) / name(0).length);
  for (let i = 0; i < count; i++) columns.set(small(name(i), i + 1));
  const full = columns.bytes;
  for (let i = 0; i < count; i++) if (i % 10 !== 0) columns.delete(name(i));
  assert.ok(columns.bytes < full - 3 * NAMES_SLAB_BYTES, `${columns.bytes} of ${full} bytes`);
  for (let i = 0; i < count; i++) {
    assert.deepEqual(columns.get(name(i)), i % 10 === 0 ? small(name(i), i + 1) : undefined);
  }
  assert.equal(columns.size, Math.ceil(count / 10));
});

Deno.test("ManifestColumns gives back all its memory once empty", () => {
  const columns = new ManifestColumns();
  const empty = columns.bytes;
  for (let i = 0; i < 5000; i++) columns.set(small(`n${i}`));
  for (let i = 0; i < 5000; i++) columns.delete(`n${i}`);
  assert.equal(columns.bytes, empty);
  for (let i = 0; i < 5000; i++) columns.set(small(`n${i}`));
  columns.clear();
  assert.equal(columns.bytes, empty);
  assert.equal(columns.size, 0);
  assert.deepEqual([...columns.values()], []);
});

Deno.test("ManifestColumns.forEachSummary() gives the listing fields without the manifests", () => {
  const columns = new ManifestColumns();
  const ms = [
    small("b/one"),
    withChunks("b/two", [
      { id: `${BLOB}-0`, size: 1, ranks: [1, 2, 3] },
      { id: `${BLOB}-1`, size: 1, ranks: [1] },
    ]),
    withChunks("b/three", [], { size: 0 }),
    tombstoneOf("b/gone", 5, 6),
    small("c/other"),
  ];
  for (const m of ms) columns.set(m);
  const summaries: ManifestSummary[] = [];
  columns.forEachSummary((s) => summaries.push(s), { prefix: "b/" });
  const expected = ms.filter((m) => m.name.startsWith("b/")).map((m) => ({
    name: m.name,
    version: m.version,
    size: m.size,
    modified: m.modified,
    deleted: m.deleted === true,
    replicas: replicasOf(m),
  }));
  assert.deepEqual(summaries.sort(byName), expected.sort(byName));
  const live: string[] = [];
  columns.forEachSummary((s) => live.push(s.name), { tombstones: false });
  assert.deepEqual(live.sort(), ["b/one", "b/three", "b/two", "c/other"]);
  assert.deepEqual([...columns.values({ prefix: "b/t", tombstones: false })].sort(byName), [
    ms[2],
    ms[1],
  ]);
});

Deno.test("ManifestColumns.values() sees each entry once while entries come and go", () => {
  const columns = new ManifestColumns();
  for (let i = 0; i < 100; i++) columns.set(small(`n${i}`));
  const seen: string[] = [];
  for (const m of columns.values()) {
    seen.push(m.name);
    const i = Number(m.name.slice(1));
    if (i < 100) {
      columns.delete(`n${99 - i}`); // maybe not visited yet
      columns.set(small(`n${1000 + i}`)); // may or may not be visited
      columns.set(small(m.name, 2)); // replacing the one visited does not bring it back
    }
  }
  assert.equal(new Set(seen).size, seen.length, "no name seen twice");
  for (let i = 0; i < 50; i++) assert.ok(seen.includes(`n${i}`), `n${i} seen`);
});

Deno.test("ManifestColumns matches a Map of manifests over random operations", () => {
  const prng = new Prng(20260501);
  const columns = new ManifestColumns();
  const model = new Map<string, Manifest>();
  const stems = ["tiny/", "photos/2026/IMG_", "café/", "写真/", "😀/", "a/b/c/d/"];
  const nameOf = (n: number) => `${stems[n % stems.length]}${n}`;
  const chunkOf = (size: number): ChunkRef => {
    const ranks = Array.from(
      { length: 1 + prng.int(RANKS_INLINE_MAX + 1) },
      () => prng.chance(0.05) ? 256 + prng.int(1000) : prng.int(16),
    );
    const offset = prng.chance(0.8) ? 0 : prng.int(1 << 30);
    const blob = Array.from({ length: 4 }, () => prng.next().toString(16).padStart(8, "0")).join(
      "",
    );
    const chunk: ChunkRef = { id: `${blob}-${offset.toString(16)}`, size, ranks };
    if (prng.chance(0.7)) chunk.crc32 = prng.next();
    return chunk;
  };
  const manifestOf = (name: string, version: number): Manifest => {
    if (prng.chance(0.1)) return tombstoneOf(name, version, prng.next());
    const count = prng.chance(0.8) ? 1 : prng.int(5);
    const chunks = Array.from({ length: count }, () => chunkOf(prng.int(1 << 20)));
    const m: Manifest = {
      name,
      version,
      size: chunks.reduce((n, c) => n + c.size, 0),
      sha256: prng.chance(0.95)
        ? Array.from({ length: 8 }, () => prng.next().toString(16).padStart(8, "0")).join("")
        : "",
      modified: 1_700_000_000_000 + prng.int(1e9),
      chunks,
    };
    if (prng.chance(0.1)) m.attrs = { "content-type": "application/octet-stream" };
    return m;
  };
  const check = () => {
    assert.equal(columns.size, model.size);
    assert.deepEqual([...columns.values()].sort(byName), [...model.values()].sort(byName));
  };
  let version = 0;
  // Grow, shrink to a few, grow again: doublings, halvings, slot reuse and compaction.
  for (const [steps, names, deletes] of [[6000, 4000, 0.1], [6000, 4000, 0.9], [6000, 300, 0.3]]) {
    for (let step = 0; step < steps; step++) {
      const name = nameOf(prng.int(names));
      if (prng.chance(deletes)) {
        assert.equal(columns.delete(name), model.delete(name), `delete ${name}`);
      } else if (prng.chance(0.5)) {
        const m = manifestOf(name, ++version);
        columns.set(m);
        model.set(name, structuredClone(m));
      } else {
        assert.deepEqual(columns.get(name), model.get(name), `get ${name}`);
        assert.equal(columns.has(name), model.has(name));
        assert.equal(columns.versionOf(name), model.get(name)?.version);
      }
      if (step % 1000 === 0) check();
    }
    check();
  }
});

/** Every page of `columns` under `prefix`, `limit` names each, one `between()` call after each. */
function pagesOf(
  columns: ManifestColumns,
  prefix: string,
  limit: number,
  between: () => void = () => {},
): string[][] {
  const pages: string[][] = [];
  let after: string | undefined;
  for (let more = true; more;) {
    const page: string[] = [];
    more = columns.forEachSummaryInOrder((s) => page.push(s.name), { prefix, after, limit });
    pages.push(page);
    after = page.at(-1) ?? after;
    between();
  }
  return pages;
}

Deno.test("ManifestColumns.forEachSummaryInOrder() pages names under a prefix in UTF-16 order", () => {
  const columns = new ManifestColumns();
  const names = ["b/😀", "b/\uE000", "b/a", "b/", "a", "b0", "b/é", "b", "c/x", "b/a/deep"];
  for (const name of names) columns.set(small(name));
  columns.set(tombstoneOf("b/gone", 3, 4));
  const under = [...names, "b/gone"].filter((n) => n.startsWith("b/")).sort();
  assert.deepEqual(under, ["b/", "b/a", "b/a/deep", "b/gone", "b/é", "b/😀", "b/\uE000"]);
  for (const limit of [1, 2, 3, 100]) {
    const pages = pagesOf(columns, "b/", limit);
    assert.deepEqual(pages.flat(), under, `pages of ${limit}`);
    assert.ok(pages.slice(0, -1).every((p) => p.length === limit), "only the last page is short");
  }
  const summaries: ManifestSummary[] = [];
  const more = columns.forEachSummaryInOrder((s) => summaries.push(s), {
    prefix: "b/",
    after: "b/a/deep",
    limit: 1,
  });
  assert.equal(more, true);
  assert.deepEqual(summaries, [{
    name: "b/gone",
    version: 3,
    size: 0,
    modified: 4,
    deleted: true,
    replicas: 0,
  }]);
  const last: string[] = [];
  const after = "b/😀";
  assert.equal(columns.forEachSummaryInOrder((s) => last.push(s.name), { after, limit: 5 }), false);
  assert.deepEqual(last, ["b/\uE000", "b0", "c/x"]);
  // A cursor before the prefix starts at the prefix.
  const first: string[] = [];
  columns.forEachSummaryInOrder((s) => first.push(s.name), { prefix: "b/", after: "a", limit: 1 });
  assert.deepEqual(first, ["b/"]);
});

Deno.test("ManifestColumns pages stay sorted and skip nothing present while names come and go", () => {
  const columns = new ManifestColumns();
  const random = new Prng(5);
  const kept = new Set<string>();
  for (let i = 0; i < 3000; i++) {
    const name = `d/${random.int(1_000_000)}`;
    columns.set(small(name));
    if (i % 3 === 0) kept.add(name); // never removed
  }
  let added = 0;
  const pages = pagesOf(columns, "d/", 3, () => {
    // Between pages: new names, and removals of others (their slots are reused at once).
    for (let k = 0; k < 5; k++) columns.set(small(`d/${random.int(1_000_000)}-new${added++}`));
    for (const name of columns.names({ prefix: "d/" })) {
      if (!kept.has(name) && random.chance(0.01)) columns.delete(name);
    }
  });
  const listed = pages.flat();
  for (let i = 1; i < listed.length; i++) assert.ok(listed[i - 1] < listed[i], "sorted, once");
  const missing = [...kept].filter((name) => !listed.includes(name));
  assert.deepEqual(missing, []);
});

Deno.test("ManifestColumns.insert() adds a name not held and leaves a held one as it is", () => {
  const columns = new ManifestColumns();
  const slot = columns.insert(small("a", 3));
  assert.equal(columns.slotOf("a"), slot);
  assert.equal(columns.versionAt(slot), 3);
  assert.equal(columns.insert(small("a", 9)), -1);
  assert.equal(columns.get("a")?.version, 3);
  assert.equal(columns.set(small("a", 9)), slot, "set() replaces in the same slot");
  assert.equal(columns.get("a")?.version, 9);
  assert.equal(columns.slotOf("b"), -1);
});

Deno.test("ManifestColumns with details elsewhere keeps the listing fields and a where per slot, and makes no manifest", () => {
  const columns = new ManifestColumns({ details: "elsewhere" });
  const many = Array.from({ length: 200 }, (_, i) => i);
  const ms = [
    small("b/one"),
    withChunks("b/two", [
      { id: `${BLOB}-0`, size: 1, ranks: [1, 2, 3] },
      { id: `${BLOB}-1`, size: 1, ranks: [1] },
    ]),
    withChunks("b/wide", [{ id: `${BLOB}-0`, size: 1, ranks: many }]),
    withChunks("b/three", [], { size: 0 }),
    tombstoneOf("b/gone", 5, 6),
  ];
  ms.forEach((m, i) => {
    const slot = columns.set(m);
    assert.equal(columns.whereAt(slot), -1, "none until set");
    columns.setWhere(slot, 1000 * i);
  });
  const summaries: ManifestSummary[] = [];
  columns.forEachSummary((s) => summaries.push(s));
  assert.deepEqual(
    summaries.sort(byName),
    ms.map((m) => ({
      name: m.name,
      version: m.version,
      size: m.size,
      modified: m.modified,
      deleted: m.deleted === true,
      replicas: Math.min(replicasOf(m), REPLICAS_COUNTED_MAX),
    })).sort(byName),
  );
  assert.deepEqual(
    [...columns.places()].sort(byName),
    ms.map((m, i) => ({ name: m.name, version: m.version, where: 1000 * i })).sort(byName),
  );
  // A new version keeps the slot and its where until the owner sets another.
  const slot = columns.set(small("b/one", 9));
  assert.equal(columns.whereAt(slot), 0);
  assert.throws(() => columns.get("b/one"), /details elsewhere/);
  assert.throws(() => new ManifestColumns().whereAt(0), /details inline/);
  const inline = new ManifestColumns();
  for (const m of ms) inline.set(m);
  assert.ok(columns.bytes < inline.bytes, `${columns.bytes} bytes against ${inline.bytes}`);
});
