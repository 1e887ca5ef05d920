import assert from "node:assert/strict";
import type { ListEntry, ListOptions } from "../common/file_store.ts";
import { type FolderPage, listFolder } from "./listing.ts";

/** A store's `list` over `names` (UTF-16 order, as the store's), counting its calls. */
function storeOf(names: string[]) {
  const entries: ListEntry[] = names.toSorted().map((name, i) => ({
    name,
    size: i,
    modified: 0,
    replicas: 2,
  }));
  const calls: ListOptions[] = [];
  const fetch = (prefix: string, options: ListOptions) => {
    calls.push(options);
    const under = entries.filter((e) =>
      e.name.startsWith(prefix) && (options.after === undefined || e.name > options.after)
    );
    return Promise.resolve(under.slice(0, options.limit));
  };
  return { fetch, calls };
}

/** Each row as `name` for a file and `name` (ending in /) for a folder. */
const keys = (page: FolderPage) => page.rows.map((row) => row.name);

const NAMES = [
  "a.txt",
  "b/1",
  "b/2",
  "b/c/3",
  "b!",
  "b",
  "c/x",
  "d.txt",
  "e/f/g/h",
];

Deno.test("listFolder() folds the next segment into folders, in name order", async () => {
  const { fetch } = storeOf(NAMES);
  const top = await listFolder(fetch, "", { limit: 100 });
  assert.deepEqual(keys(top), ["a.txt", "b", "b!", "b/", "c/", "d.txt", "e/"]);
  assert.equal(top.next, undefined);
  assert.deepEqual(top.rows[0], { type: "file", name: "a.txt", size: 0, modified: 0, replicas: 2 });
  assert.deepEqual(top.rows[3], { type: "folder", name: "b/" });
  assert.deepEqual(keys(await listFolder(fetch, "b/", { limit: 100 })), ["b/1", "b/2", "b/c/"]);
  assert.deepEqual(keys(await listFolder(fetch, "e/", { limit: 100 })), ["e/f/"]);
  assert.deepEqual(keys(await listFolder(fetch, "zzz/", { limit: 100 })), []);
});

Deno.test("listFolder() pages with the last row's key, skipping a folder it ended on", async () => {
  const { fetch } = storeOf(NAMES);
  const seen: string[] = [];
  let after: string | undefined;
  for (let pages = 0; pages < 10; pages++) {
    const page = await listFolder(fetch, "", { after, limit: 2 });
    assert.ok(page.rows.length <= 2);
    seen.push(...keys(page));
    if (page.next === undefined) break;
    assert.equal(page.next, page.rows.at(-1)!.name);
    after = page.next;
  }
  assert.deepEqual(seen, ["a.txt", "b", "b!", "b/", "c/", "d.txt", "e/"]);
});

Deno.test("listFolder() skips a folder's names in the store, not row by row", async () => {
  const many = Array.from({ length: 50 }, (_, i) => `big/${String(i).padStart(3, "0")}`);
  const { fetch, calls } = storeOf([...many, "after.txt", "zed"]);
  const page = await listFolder(fetch, "", { limit: 10, scanEntries: 5 });
  assert.deepEqual(keys(page), ["after.txt", "big/", "zed"]);
  assert.deepEqual(calls.map((c) => c.after), [undefined, "big/\uffff"]);
  // The cursor of a folder skips it too.
  const rest = await listFolder(fetch, "", { after: "big/", limit: 10, scanEntries: 5 });
  assert.deepEqual(keys(rest), ["zed"]);
});

Deno.test("listFolder() stops after its scans with a cursor to go on from", async () => {
  // Every row is a folder of 3 names, and a scan takes 2: each scan finds one row.
  const names = Array.from({ length: 20 }, (_, i) => i).flatMap((i) =>
    [1, 2, 3].map((j) => `f${String(i).padStart(2, "0")}/${j}`)
  );
  const { fetch, calls } = storeOf(names);
  const page = await listFolder(fetch, "", { limit: 100, scanEntries: 2 });
  assert.equal(calls.length, 8, "UI_LIST_SCANS_MAX");
  assert.equal(page.rows.length, 8);
  assert.equal(page.next, "f07/");
  const rest = await listFolder(fetch, "", { after: page.next, limit: 100, scanEntries: 2 });
  assert.equal(rest.rows[0].name, "f08/");
});

Deno.test("listFolder() refuses a page of no rows", async () => {
  const { fetch } = storeOf(NAMES);
  await assert.rejects(() => listFolder(fetch, "", { limit: 0 }), /at least one row/);
});
