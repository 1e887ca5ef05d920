import assert from "node:assert/strict";
import { FileIndex } from "./file_index.ts";
import { LISTING_FIELDS, tombstoneOf } from "../common/manifest.ts";
import type { ManifestSummary } from "../common/manifest_columns.ts";
import { SORT_STEP_NAMES } from "../common/sorted_slots.ts";
import { chunk, manifest } from "../testing/manifests.ts";
import { Prng } from "../../tests/_bytes.ts";

Deno.test("FileIndex hides removed names and refuses older versions after a tombstone", () => {
  const index = new FileIndex();
  const v1 = manifest("a", 1, [["c1", 1, [1]]]);
  index.install(v1);
  assert.deepEqual(index.install(tombstoneOf("a", 2, 0)), { installed: true, superseded: v1 });
  assert.equal(index.get("a"), undefined);
  assert.equal(index.size, 0);
  assert.equal(index.install(manifest("a", 1, [["c9", 1, [1]]])).installed, false);
  const v3 = manifest("a", 3, [["c3", 1, [1]]]);
  assert.deepEqual(index.install(v3), { installed: true, superseded: undefined });
  assert.deepEqual(index.get("a"), v3);
  assert.equal(index.size, 1);
});

Deno.test("FileIndex.install() lets the higher version win whatever the arrival order", () => {
  const index = new FileIndex();
  const v2 = manifest("a", 2, []);
  const v1 = manifest("a", 1, []);
  assert.deepEqual(index.install(v2), { installed: true, superseded: undefined });
  const lost = index.install(v1);
  assert.deepEqual(lost, { installed: false, superseded: v1 });
  assert.equal(lost.superseded, v1, "the manifest that lost is the one given");
  assert.deepEqual(index.get("a"), v2);
  assert.equal(index.nextVersion(), 3);
});

Deno.test("FileIndex gives out copies: changing one changes nothing in the index", () => {
  const index = new FileIndex();
  const m = manifest("a", 1, [[chunk(1), 5, [1, 2]]]);
  index.install(m);
  const got = index.get("a")!;
  assert.notEqual(got, m);
  got.chunks[0].ranks.push(3);
  m.chunks[0].ranks.pop();
  assert.deepEqual(index.get("a"), manifest("a", 1, [[chunk(1), 5, [1, 2]]]));
  const { superseded } = index.install(manifest("a", 2, [[chunk(2), 5, [1, 2]]]));
  assert.deepEqual(superseded, manifest("a", 1, [[chunk(1), 5, [1, 2]]]));
});

Deno.test("FileIndex.values(), names() and forEachSummary() skip tombstones and filter by prefix", () => {
  const index = new FileIndex();
  const files = [
    manifest("docs/a", 1, [[chunk(1), 3, [1, 2]]]),
    manifest("docs/é", 2, [[chunk(2), 4, [2]], [chunk(2, 4), 1, [1, 2]]]),
    manifest("photos/b", 3, [[chunk(3), 5, [1, 2]]]),
  ];
  for (const m of files) index.install(m);
  index.install(manifest("docs/gone", 4, [[chunk(4), 1, [1]]]));
  index.install(tombstoneOf("docs/gone", 5, 0));
  const byName = (a: { name: string }, b: { name: string }) => a.name < b.name ? -1 : 1;
  assert.deepEqual([...index.values()].sort(byName), files);
  assert.deepEqual([...index.values("docs/")].sort(byName), files.slice(0, 2));
  assert.deepEqual([...index.names("photos/")], ["photos/b"]);
  const summaries: ManifestSummary[] = [];
  index.forEachSummary((s) => summaries.push(s), "docs/");
  assert.deepEqual(summaries.sort(byName), [
    { name: "docs/a", version: 1, size: 3, modified: 1001, deleted: false, replicas: 2 },
    { name: "docs/é", version: 2, size: 5, modified: 1002, deleted: false, replicas: 1 },
  ]);
  assert.equal(index.size, 3);
});

Deno.test("FileIndex.page() pages names in order with tombstones marked, as a data node does", () => {
  const index = new FileIndex();
  for (const name of ["d/b", "d/a", "e", "d/c"]) {
    index.install(manifest(name, index.nextVersion(), []));
  }
  index.install(tombstoneOf("d/b", index.nextVersion(), 1));
  const first = index.page("d/", { limit: 2 });
  assert.deepEqual([first.listing.names, first.more], ["d/a\0d/b", true]);
  assert.equal(first.listing.numbers[LISTING_FIELDS + 4], 1, "d/b is a tombstone");
  const rest = index.page("d/", { after: "d/b", limit: 2 });
  assert.deepEqual([rest.listing.names, rest.more], ["d/c", false]);
});

Deno.test("FileIndex.sortNames() of more than one step gives way, and pages come in order while files come and go", async () => {
  const index = new FileIndex();
  const random = new Prng(5);
  const installed = new Set<string>();
  const install = (name: string) => {
    index.install(manifest(name, index.nextVersion(), []));
    installed.add(name);
  };
  const removed = new Set<string>();
  const remove = (name: string) => {
    index.install(tombstoneOf(name, index.nextVersion(), 0));
    removed.add(name);
  };
  // Random names, not in insertion order; a few with characters past U+FFFF and past U+E000.
  for (let i = 0; i < 2 * SORT_STEP_NAMES + 1000; i++) install(`f/${random.int(1e9)}-${i}`);
  for (const name of ["f/\u{1F600}", "f/\uE000", "f/\uFFFD", "f/é"]) install(name);
  let turns = 0;
  let timerRan = false;
  setTimeout(() => timerRan = true, 0);
  const giveWay = async () => {
    turns++;
    await new Promise((resolve) => setTimeout(resolve, 0));
    // Between steps a client adds a file and removes one (a tombstone on rank 0).
    install(`f/added-${turns}`);
    remove([...installed][random.int(installed.size)]);
  };
  await index.sortNames(giveWay);
  assert.ok(timerRan, "a timer ran while it sorted");
  assert.ok(turns >= 3, `it gave way ${turns} times`);
  const listed: { name: string; deleted: boolean }[] = [];
  let after: string | undefined;
  for (let more = true; more;) {
    const page = index.page("f/", { after, limit: 10_000 });
    const names = page.listing.names.split("\0");
    names.forEach((name, i) => {
      const deleted = page.listing.numbers[i * LISTING_FIELDS + 4] === 1;
      listed.push({ name, deleted });
    });
    after = names[names.length - 1];
    more = page.more;
  }
  const expected = [...installed].sort().map((name) => ({ name, deleted: removed.has(name) }));
  assert.equal(listed.length, expected.length);
  assert.deepEqual(listed, expected, "every name once, in UTF-16 order, tombstones marked");
  // Sorted: a later call gives no way.
  const before = turns;
  await index.sortNames(giveWay);
  assert.equal(turns, before);
});

Deno.test("FileIndex.namePages() gives each file present throughout once while files come and go between pages", () => {
  const index = new FileIndex();
  const names = Array.from({ length: 50 }, (_, i) => `p/${String(i).padStart(2, "0")}`);
  for (const name of [...names, "q/other"]) {
    index.install(manifest(name, index.nextVersion(), []));
  }
  index.install(tombstoneOf("p/03", index.nextVersion(), 0));
  assert.throws(() => index.namePages(0).next(), /a page of 0 names/);
  const seen: string[] = [];
  let pages = 0;
  for (const page of index.namePages(7, "p/")) {
    pages++;
    assert.ok(page.length > 0 && page.length <= 7, `a page of ${page.length}`);
    seen.push(...page);
    if (pages === 2) {
      // Between pages: files not yet given are removed, one is put back, new ones are added.
      for (const name of ["p/40", "p/41", "p/42"]) {
        index.install(tombstoneOf(name, index.nextVersion(), 0));
      }
      index.install(manifest("p/41", index.nextVersion(), []));
      index.install(manifest("p/new", index.nextVersion(), []));
      index.install(manifest("p/01", index.nextVersion(), [])); // given already: a new version
    }
  }
  assert.equal(new Set(seen).size, seen.length, "no name twice");
  const throughout = names.filter((name) => !["p/03", "p/40", "p/42"].includes(name));
  assert.deepEqual(throughout.filter((name) => !seen.includes(name)), [], "none skipped");
  assert.ok(!seen.includes("p/40") && !seen.includes("p/42"), "removed before their page");
  assert.ok(!seen.includes("p/03") && !seen.includes("q/other"));
  assert.ok(pages >= 7, `${pages} pages`);
});
