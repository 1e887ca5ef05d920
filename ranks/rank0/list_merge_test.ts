import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import type { ListEntry } from "../../protocol/messages.ts";
import { toListing, type VersionedEntry } from "../common/manifest.ts";
import { type ListSource, type MergeOptions, mergePages } from "./list_merge.ts";

type Held = [name: string, version: number, deleted?: "deleted"];

/** A source holding these entries, answering pages as a data node does; it counts its calls. */
function sourceOf(held: Held[], calls: { count: number } = { count: 0 }): ListSource {
  const entries: VersionedEntry[] = held.map(([name, version, deleted]) => ({
    name,
    version,
    size: version * 10,
    modified: version * 100,
    replicas: 2,
    ...(deleted ? { deleted: true as const } : {}),
  })).sort((a, b) => (a.name < b.name ? -1 : 1));
  return (after, limit) => {
    calls.count++;
    const rest = entries.filter((e) => after === undefined || e.name > after);
    const page = rest.slice(0, limit);
    return Promise.resolve({ listing: toListing(page), more: rest.length > page.length });
  };
}

/** What a merge must give: each name's highest version, tombstones dropped, in order. */
function expected(sets: Held[][], options: MergeOptions): ListEntry[] {
  const best = new Map<string, Held>();
  for (const held of sets.flat()) {
    if ((best.get(held[0])?.[1] ?? 0) < held[1]) best.set(held[0], held);
  }
  return [...best.values()]
    .filter(([name, , deleted]) =>
      !deleted && (options.after === undefined || name > options.after)
    )
    .sort((a, b) => (a[0] < b[0] ? -1 : 1))
    .slice(0, options.limit ?? Infinity)
    .map(([name, version]) => ({ name, size: version * 10, modified: version * 100, replicas: 2 }));
}

async function pagesOf(sources: ListSource[], options: MergeOptions): Promise<ListEntry[][]> {
  const pages: ListEntry[][] = [];
  for await (const page of mergePages(sources, options)) pages.push(page);
  return pages;
}

// Three nodes: names held on two of them, versions that differ, tombstones that hide an older
// live version held elsewhere (and live versions newer than a tombstone elsewhere).
const HELD: Held[][] = [
  [["a", 1], ["b", 5], ["c", 2], ["d", 9, "deleted"], ["f", 3], ["h", 4], ["i", 1], ["k", 2]],
  [["a", 1], ["b", 3], ["d", 7], ["e", 6], ["f", 8, "deleted"], ["g", 2], ["i", 5], ["j", 1]],
  [["c", 2], ["e", 6], ["f", 10], ["g", 2], ["h", 11, "deleted"], ["j", 4], ["k", 2], ["l", 1]],
];

Deno.test("mergePages() keeps each name's highest version across nodes and page boundaries", async () => {
  const limits = [undefined, 1, 2, 5];
  const afters = [undefined, "c", "d", "h", "z"];
  for (const fetchEntries of [1, 2, 3]) {
    for (const pageEntries of [1, 2, 3]) {
      for (const limit of limits) {
        for (const after of afters) {
          const options = { fetchEntries, pageEntries, limit, after };
          const pages = await pagesOf(HELD.map((held) => sourceOf(held)), options);
          const what = JSON.stringify(options);
          assert.deepEqual(pages.flat(), expected(HELD, options), what);
          assert.ok(pages.every((p) => p.length > 0), `no empty page: ${what}`);
          const full = pages.slice(0, -1).every((p) => p.length === pageEntries);
          assert.ok(full, `only the last page is short: ${what}`);
        }
      }
    }
  }
  const all = await pagesOf(HELD.map((held) => sourceOf(held)), {});
  assert.deepEqual(all.flat().map((e) => e.name), [
    "a",
    "b",
    "c",
    "e",
    "f",
    "g",
    "i",
    "j",
    "k",
    "l",
  ]);
  assert.deepEqual(all.flat()[1], { name: "b", size: 50, modified: 500, replicas: 2 });
});

Deno.test("mergePages() with no sources or none holding anything yields no page", async () => {
  assert.deepEqual(await pagesOf([], {}), []);
  assert.deepEqual(await pagesOf([sourceOf([]), sourceOf([["x", 2, "deleted"]])], {}), []);
  assert.deepEqual(await pagesOf([sourceOf([["x", 1]])], { limit: 0 }), []);
});

Deno.test("mergePages() asks each node once for a short listing, then for a page ahead", async () => {
  const calls = [{ count: 0 }, { count: 0 }, { count: 0 }];
  const sources = HELD.map((held, i) => sourceOf(held, calls[i]));
  assert.equal((await pagesOf(sources, { limit: 2 })).flat().length, 2);
  assert.deepEqual(calls.map((c) => c.count), [1, 1, 1]);
  // Stopped after its first page of one entry: a node asked for its second page may have been
  // asked for its third ahead, and nothing more is asked after the stop.
  for (const c of calls) c.count = 0;
  for await (const page of mergePages(sources, { fetchEntries: 1, pageEntries: 1 })) {
    assert.deepEqual(page.map((e) => e.name), ["a"]);
    break;
  }
  const asked = calls.map((c) => c.count);
  assert.ok(asked.every((n) => n <= 3), `asked ${asked}`);
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(calls.map((c) => c.count), asked);
});

Deno.test("mergePages() refuses a page out of order, or empty with more to come", async () => {
  const backwards: ListSource = () =>
    Promise.resolve({
      listing: { names: "b\0a", numbers: new Float64Array(10) },
      more: false,
    });
  const empty: ListSource = () =>
    Promise.resolve({ listing: { names: "", numbers: new Float64Array(0) }, more: true });
  const repeats: ListSource = (after) =>
    Promise.resolve({
      listing: toListing([{ name: after ?? "a", size: 1, modified: 1, version: 1, replicas: 1 }]),
      more: true,
    });
  for (const source of [backwards, empty, repeats]) {
    await assert.rejects(
      pagesOf([source], {}),
      (error) =>
        error instanceof DfsError && error.code === "INTERNAL" &&
        /out of order/.test(error.message),
    );
  }
});

Deno.test("mergePages() fails with a node's error and leaves no rejection unhandled", async () => {
  let asked = 0;
  const failing: ListSource = (after, limit) => {
    if (++asked > 2) return Promise.reject(new DfsError("UNAVAILABLE", "Rank 2 is down"));
    return sourceOf(HELD[1])(after, limit);
  };
  await assert.rejects(
    pagesOf([sourceOf(HELD[0]), failing], { fetchEntries: 1 }),
    (error) => error instanceof DfsError && error.code === "UNAVAILABLE",
  );
  // Stopped before the page asked for ahead (which fails) is taken: nothing is left unhandled.
  asked = 0;
  for await (const _ of mergePages([failing], { fetchEntries: 1, pageEntries: 1 })) {
    if (asked >= 3) break;
  }
  await new Promise((resolve) => setTimeout(resolve, 10));
});

Deno.test("mergePages() frees each source page once merged, and a page it does not own is left", async () => {
  const numbersSeen: Float64Array[] = [];
  const source = sourceOf(HELD[0]);
  const seen: ListSource = async (after, limit) => {
    const answer = await source(after, limit);
    numbersSeen.push(answer.listing.numbers);
    return answer;
  };
  // Pages whose numbers view a larger buffer (as decoded from a socket's frame) are not freed.
  const views: Float64Array[] = [];
  const viewing: ListSource = async (after, limit) => {
    const { listing, more } = await sourceOf(HELD[1])(after, limit);
    const length = listing.numbers.length;
    const numbers = new Float64Array(length + 16).subarray(8, 8 + length);
    numbers.set(listing.numbers);
    views.push(numbers);
    return { listing: { names: listing.names, numbers }, more };
  };
  const options = { fetchEntries: 2, pageEntries: 3 };
  const pages = await pagesOf([seen, viewing], options);
  assert.deepEqual(pages.flat(), expected([HELD[0], HELD[1]], options));
  assert.ok(numbersSeen.length >= 4, `${numbersSeen.length} pages`);
  // Every page but the last was used up and freed (its buffer detached).
  for (const numbers of numbersSeen.slice(0, -1)) assert.equal(numbers.length, 0);
  assert.ok(views.length >= 4 && views.every((numbers) => numbers.buffer.byteLength > 0));
});
