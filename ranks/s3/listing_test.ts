import assert from "node:assert/strict";
import { Prng } from "../../tests/_bytes.ts";
import {
  commonPrefixOf,
  CONTINUATION_TOKEN_CHARS_MAX,
  cursorPast,
  decodeContinuationToken,
  encodeContinuationToken,
  encodeListingValue,
  fetchFromStore,
  LIST_FETCH_ENTRIES_MAX,
  type ListingEntry,
  type ListingFetch,
  type ListingPage,
  listObjectsResult,
  listPage,
  type ListQuery,
  MAX_KEYS_MAX,
  parseListQuery,
  type StoreList,
} from "./listing.ts";
import { S3Error } from "./s3_error.ts";
import { type ParsedElement, parseXml } from "./xml_parser.ts";
import { listBucketResultXml } from "./xml_responses.ts";

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A fetch over sorted keys, as the store answers: under `prefix`, after `after`, `limit`. */
function fakeFetch(keys: readonly string[], prefix = "") {
  const sorted = [...new Set(keys)].sort(compare).filter((k) => k.startsWith(prefix));
  const calls: { after: string | undefined; limit: number; returned: number }[] = [];
  const fetch: ListingFetch = (after, limit) => {
    const from = after === undefined ? 0 : sorted.findIndex((k) => k > after);
    const page = (from === -1 ? [] : sorted.slice(from, from + limit))
      .map((key): ListingEntry => ({ key, size: key.length, modified: 1000 }));
    calls.push({ after, limit, returned: page.length });
    return Promise.resolve(page);
  };
  return { fetch, calls };
}

function query(params: Record<string, string>): ListQuery {
  return parseListQuery(new URLSearchParams(params));
}

/** A page as [keys, common prefixes, truncated, next]. */
function summary(page: ListingPage): [string[], string[], boolean, string | undefined] {
  return [page.contents.map((c) => c.key), page.commonPrefixes, page.isTruncated, page.next];
}

async function list(keys: readonly string[], params: Record<string, string>) {
  const q = query({ "list-type": "2", ...params });
  return summary(await listPage(fakeFetch(keys, q.prefix).fetch, q));
}

const KEYS = ["a/b", "a/c", "b", "c/d/e"];

// ---------------------------------------------------------------------------------------------
// Delimiters, prefixes and start positions (hand-computed S3 answers)

Deno.test("listPage() rolls keys holding the delimiter into common prefixes", async () => {
  assert.deepEqual(await list(KEYS, { delimiter: "/" }), [["b"], ["a/", "c/"], false, undefined]);
  assert.deepEqual(await list(KEYS, {}), [KEYS, [], false, undefined]);
  assert.deepEqual(await list(KEYS, { delimiter: "/", prefix: "a/" }), [
    ["a/b", "a/c"],
    [],
    false,
    undefined,
  ]);
  assert.deepEqual(await list(KEYS, { delimiter: "/", prefix: "c/" }), [
    [],
    ["c/d/"],
    false,
    undefined,
  ]);
  assert.deepEqual(await list(KEYS, { delimiter: "/", prefix: "c" }), [
    [],
    ["c/"],
    false,
    undefined,
  ]);
  assert.deepEqual(await list(KEYS, { delimiter: "/", prefix: "x" }), [[], [], false, undefined]);
  // A delimiter of several characters, and one that is not "/".
  assert.deepEqual(await list(["a--b", "a-b", "a--c--d"], { delimiter: "--" }), [
    ["a-b"],
    ["a--"],
    false,
    undefined,
  ]);
  assert.deepEqual(await list(KEYS, { delimiter: "d" }), [
    ["a/b", "a/c", "b"],
    ["c/d"],
    false,
    undefined,
  ]);
});

Deno.test("listPage() counts each common prefix once toward max-keys and pages across them", async () => {
  assert.deepEqual(await list(KEYS, { delimiter: "/", "max-keys": "1" }), [[], ["a/"], true, "a/"]);
  assert.deepEqual(await list(KEYS, { delimiter: "/", "max-keys": "2" }), [
    ["b"],
    ["a/"],
    true,
    "b",
  ]);
  assert.deepEqual(await list(KEYS, { delimiter: "/", "max-keys": "3" }), [
    ["b"],
    ["a/", "c/"],
    false,
    undefined,
  ]);
  // Resuming after a common prefix skips every key under it.
  const token = encodeContinuationToken("a/");
  assert.deepEqual(
    await list(KEYS, { delimiter: "/", "max-keys": "1", "continuation-token": token }),
    [
      ["b"],
      [],
      true,
      "b",
    ],
  );
  const after = encodeContinuationToken("b");
  assert.deepEqual(
    await list(KEYS, { delimiter: "/", "max-keys": "1", "continuation-token": after }),
    [
      [],
      ["c/"],
      false,
      undefined,
    ],
  );
});

Deno.test("listPage() starts after start-after, skipping a common prefix it falls in", async () => {
  const from = (startAfter: string) => list(KEYS, { delimiter: "/", "start-after": startAfter });
  assert.deepEqual(await from("a"), [["b"], ["a/", "c/"], false, undefined]);
  assert.deepEqual(await from("a/"), [["b"], ["c/"], false, undefined]);
  assert.deepEqual(await from("a/b"), [["b"], ["c/"], false, undefined]);
  assert.deepEqual(await from("a/zzz"), [["b"], ["c/"], false, undefined]);
  assert.deepEqual(await from("b"), [[], ["c/"], false, undefined]);
  assert.deepEqual(await from("c/d/e"), [[], [], false, undefined]);
  assert.deepEqual(await from("0"), [["b"], ["a/", "c/"], false, undefined]);
  // Without a delimiter, plainly the keys after it.
  assert.deepEqual(await list(KEYS, { "start-after": "a/b" }), [
    ["a/c", "b", "c/d/e"],
    [],
    false,
    undefined,
  ]);
  // With a prefix: start-after before the prefix lists all of it.
  assert.deepEqual(await list(KEYS, { prefix: "a/", "start-after": "0" }), [
    ["a/b", "a/c"],
    [],
    false,
    undefined,
  ]);
});

Deno.test("listPage() says truncated only when another item follows the page", async () => {
  assert.deepEqual(await list(KEYS, { "max-keys": "4" }), [KEYS, [], false, undefined]);
  assert.deepEqual(await list(KEYS, { "max-keys": "3" }), [KEYS.slice(0, 3), [], true, "b"]);
  // The last item is a common prefix swallowing the rest: nothing follows it.
  assert.deepEqual(await list(["a", "b/1", "b/2", "b/3"], { delimiter: "/", "max-keys": "2" }), [
    ["a"],
    ["b/"],
    false,
    undefined,
  ]);
});

Deno.test("listPage() lists nothing and fetches nothing for max-keys=0", async () => {
  const { fetch, calls } = fakeFetch(KEYS);
  const page = await listPage(fetch, query({ "max-keys": "0" }));
  assert.deepEqual(summary(page), [[], [], false, undefined]);
  assert.equal(calls.length, 0);
});

// ---------------------------------------------------------------------------------------------
// Fetching no more than needed

Deno.test("listPage() without a delimiter fetches the page and one more entry, once", async () => {
  const keys = Array.from({ length: 10_000 }, (_, i) => `k${String(i).padStart(5, "0")}`);
  const small = fakeFetch(keys);
  const page = await listPage(small.fetch, query({ "list-type": "2", "max-keys": "10" }));
  assert.deepEqual(summary(page).slice(2), [true, "k00009"]);
  assert.deepEqual(small.calls, [{ after: undefined, limit: 11, returned: 11 }]);

  const full = fakeFetch(keys);
  const next = await listPage(full.fetch, query({ "list-type": "2", "start-after": "k00009" }));
  assert.equal(next.contents.length, MAX_KEYS_MAX);
  assert.equal(next.contents[0].key, "k00010");
  assert.deepEqual(full.calls, [{
    after: "k00009",
    limit: LIST_FETCH_ENTRIES_MAX,
    returned: 1001,
  }]);
});

Deno.test("listPage() jumps past a common prefix instead of reading every key under it", async () => {
  const keys = [
    ...Array.from({ length: 5000 }, (_, i) => `a/${String(i).padStart(5, "0")}`),
    "b",
    "c/x",
  ];
  const { fetch, calls } = fakeFetch(keys);
  const page = await listPage(fetch, query({ delimiter: "/" }));
  assert.deepEqual(summary(page), [["b"], ["a/", "c/"], false, undefined]);
  assert.equal(calls.length, 2);
  assert.equal(calls[1].after, cursorPast("a/"));
  assert.equal(calls[1].returned, 2);
});

Deno.test("listPage() stops at fetchesMax with a token that resumes where it stopped", async () => {
  // 12 folders of 1500 keys: every fetch of 1001 entries finds one folder.
  const keys = Array.from(
    { length: 12 * 1500 },
    (_, i) =>
      `d${String(Math.floor(i / 1500)).padStart(2, "0")}/${String(i % 1500).padStart(4, "0")}`,
  );
  const { fetch, calls } = fakeFetch(keys);
  const pages: ListingPage[] = [];
  let params: Record<string, string> = { "list-type": "2", delimiter: "/" };
  for (;;) {
    const page = await listPage(fetch, query(params), { fetchesMax: 4 });
    pages.push(page);
    if (!page.isTruncated) break;
    params = { ...params, "continuation-token": encodeContinuationToken(page.next!) };
  }
  const prefixes = pages.flatMap((p) => p.commonPrefixes);
  assert.deepEqual(
    prefixes,
    Array.from({ length: 12 }, (_, i) => `d${String(i).padStart(2, "0")}/`),
  );
  assert.ok(pages.length >= 3, `${pages.length} pages`);
  for (const page of pages) assert.ok(page.commonPrefixes.length <= 4);
  assert.ok(calls.length <= pages.length * 4);
});

// ---------------------------------------------------------------------------------------------
// Against a model of S3 listing

/** Every item of a listing, in order: keys under the prefix, rolled up by the delimiter. */
function modelItems(keys: readonly string[], prefix: string, delimiter?: string): string[] {
  const items: string[] = [];
  for (const key of [...new Set(keys)].sort(compare)) {
    if (!key.startsWith(prefix)) continue;
    const item = commonPrefixOf(key, prefix, delimiter) ?? key;
    if (items[items.length - 1] !== item) items.push(item);
  }
  return items;
}

Deno.test("listPage() pages through exactly the items after the start, v1 and v2, any bounds", async () => {
  const prng = new Prng(3);
  const next = () => prng.float();
  const pick = <T>(choices: readonly T[]): T => choices[Math.floor(next() * choices.length)];
  const word = (max: number) => {
    let text = "";
    for (let i = Math.floor(next() * max); i > 0; i--) text += pick(["a", "b", "/", "-", "é"]);
    return text;
  };
  for (let round = 0; round < 300; round++) {
    const keys = Array.from({ length: Math.floor(next() * 60) }, () => word(6)).filter((k) => k);
    const prefix = pick(["", "", "a", "a/", "b-", "/"]);
    const delimiter = pick([undefined, "/", "-", "a/"]);
    const maxKeys = pick([1, 2, 3, 7, 1000]);
    const start = pick([undefined, word(4)]);
    const fetchesMax = pick([1, 2, 16]);
    const version = pick([1, 2] as const);
    const expected = modelItems(keys, prefix, delimiter).filter((item) =>
      start === undefined || item > start
    );

    const params: Record<string, string> = { prefix, "max-keys": String(maxKeys) };
    if (delimiter !== undefined) params.delimiter = delimiter;
    if (version === 2) params["list-type"] = "2";
    if (start !== undefined) params[version === 2 ? "start-after" : "marker"] = start;
    const listed: string[] = [];
    for (let pages = 0;; pages++) {
      assert.ok(pages <= keys.length + 2, "the listing makes progress");
      const q = query(params);
      const page = await listPage(fakeFetch(keys, prefix).fetch, q, { fetchesMax });
      assert.ok(page.contents.length + page.commonPrefixes.length <= maxKeys);
      const items = [...page.contents.map((c) => c.key), ...page.commonPrefixes].sort(compare);
      listed.push(...items);
      if (!page.isTruncated) break;
      const result = listObjectsResult("bkt", q, page);
      if (version === 2) params["continuation-token"] = result.nextContinuationToken!;
      else params.marker = result.nextMarker!;
    }
    assert.deepEqual(listed, expected, JSON.stringify({ keys, prefix, delimiter, maxKeys, start }));
  }
});

// ---------------------------------------------------------------------------------------------
// Query parameters and tokens

Deno.test("parseListQuery() reads ListObjectsV2 and v1 parameters with S3's defaults", () => {
  assert.deepEqual(query({}), { version: 1, prefix: "", maxKeys: 1000, fetchOwner: true });
  assert.deepEqual(query({ "list-type": "2" }), {
    version: 2,
    prefix: "",
    maxKeys: 1000,
    fetchOwner: false,
  });
  assert.deepEqual(
    query({
      "list-type": "2",
      prefix: "p/",
      delimiter: "/",
      "max-keys": "5000",
      "encoding-type": "url",
      "fetch-owner": "true",
      "start-after": "p/a",
    }),
    {
      version: 2,
      prefix: "p/",
      delimiter: "/",
      maxKeys: 1000,
      encodingType: "url",
      fetchOwner: true,
      startAfter: "p/a",
      after: "p/a",
    },
  );
  assert.deepEqual(query({ marker: "m", delimiter: "" }), {
    version: 1,
    prefix: "",
    maxKeys: 1000,
    fetchOwner: true,
    marker: "m",
    after: "m",
  });
  assert.equal(query({ "max-keys": "0" }).maxKeys, 0);
  // The continuation token wins over start-after, which is still echoed.
  const q = query({
    "list-type": "2",
    "start-after": "a",
    "continuation-token": encodeContinuationToken("z"),
  });
  assert.deepEqual([q.after, q.startAfter], ["z", "a"]);
});

Deno.test("parseListQuery() refuses bad parameters with InvalidArgument", () => {
  const refused: [Record<string, string>, RegExp][] = [
    [{ "list-type": "3" }, /list-type must be 2, not 3/],
    [{ "max-keys": "-1" }, /max-keys must be a whole number from 0 to 2147483647, not -1/],
    [{ "max-keys": "1.5" }, /not 1\.5/],
    [{ "max-keys": "ten" }, /not ten/],
    [{ "max-keys": "" }, /max-keys/],
    [{ "max-keys": "2147483648" }, /not 2147483648/],
    [{ "encoding-type": "gzip" }, /Invalid encoding-type gzip/],
    [{ "list-type": "2", "fetch-owner": "yes" }, /fetch-owner must be true or false/],
    [{ "list-type": "2", "continuation-token": "" }, /continuation token provided is incorrect/],
    [{ "list-type": "2", "continuation-token": "not a token" }, /continuation token/],
  ];
  for (const [params, pattern] of refused) {
    assert.throws(() => query(params), (error: unknown) => {
      assert.ok(error instanceof S3Error);
      assert.equal(error.code, "InvalidArgument");
      assert.match(error.message, pattern);
      return true;
    });
  }
});

Deno.test("continuation tokens round-trip any position and refuse what they did not make", () => {
  for (
    const position of ["a", "dir/", "été/日本 \u{1F600}", " ", "k".repeat(1024), "€".repeat(341)]
  ) {
    const token = encodeContinuationToken(position);
    assert.match(token, /^[A-Za-z0-9_-]+$/);
    assert.ok(token.length <= CONTINUATION_TOKEN_CHARS_MAX);
    assert.equal(decodeContinuationToken(token), position);
  }
  const bad = [
    "",
    "abc",
    "ZDE=", // padding is not ours
    btoa("xx-other"), // valid base64 without the tag
    encodeContinuationToken("a").slice(0, -1) + "+",
    "Z".repeat(CONTINUATION_TOKEN_CHARS_MAX + 4),
    encodeContinuationToken("k".repeat(1025)),
    // The tag, then bytes that are not UTF-8.
    btoa(String.fromCharCode(0x64, 0x31, 0xff)).replace(/=+$/, ""),
  ];
  for (const token of bad) {
    assert.throws(
      () => decodeContinuationToken(token),
      /^S3Error: The continuation token provided is incorrect$/,
    );
  }
});

Deno.test("encodeListingValue() percent-encodes as S3 does, keeping slashes", () => {
  assert.equal(encodeListingValue("a b+c/ü*~", "url"), "a%20b%2Bc/%C3%BC%2A~");
  assert.equal(encodeListingValue("x&y=z?#%", "url"), "x%26y%3Dz%3F%23%25");
  assert.equal(encodeListingValue("(it's)!", "url"), "%28it%27s%29%21");
  assert.equal(encodeListingValue("a b"), "a b");
  assert.equal(
    decodeURIComponent(encodeListingValue("é/日本 \u{1F600}", "url")),
    "é/日本 \u{1F600}",
  );
});

// ---------------------------------------------------------------------------------------------
// The ListBucketResult

function fields(doc: ParsedElement): Record<string, string> {
  return Object.fromEntries(
    doc.children.filter((c) => c.children.length === 0).map((c) => [c.name, c.text]),
  );
}

Deno.test("listObjectsResult() makes ListObjectsV2's result with a token and a key count", async () => {
  const q = query({ "list-type": "2", delimiter: "/", "max-keys": "2", "start-after": "0" });
  const page = await listPage(fakeFetch(KEYS).fetch, q);
  const result = listObjectsResult("bkt", q, page, { id: "owner" });
  assert.equal(result.owner, undefined); // only with fetch-owner=true
  const doc = parseXml(listBucketResultXml(result));
  assert.deepEqual(fields(doc), {
    Name: "bkt",
    Prefix: "",
    NextContinuationToken: encodeContinuationToken("b"),
    StartAfter: "0",
    KeyCount: "2",
    MaxKeys: "2",
    Delimiter: "/",
    IsTruncated: "true",
  });
  const contents = doc.children.filter((c) => c.name === "Contents");
  assert.deepEqual(contents.map((c) => fields(c)), [{
    Key: "b",
    LastModified: "1970-01-01T00:00:01.000Z",
    Size: "1",
    StorageClass: "STANDARD",
  }]);
  const prefixes = doc.children.filter((c) => c.name === "CommonPrefixes");
  assert.deepEqual(prefixes.map((c) => fields(c)), [{ Prefix: "a/" }]);
});

Deno.test("listObjectsResult() makes ListObjects v1's result with markers and owners", async () => {
  const q = query({ marker: "a/b", "max-keys": "1" });
  const page = await listPage(fakeFetch(KEYS).fetch, q);
  const result = listObjectsResult("bkt", q, page, { id: "o1", displayName: "me" });
  const doc = parseXml(listBucketResultXml(result));
  assert.deepEqual(fields(doc), {
    Name: "bkt",
    Prefix: "",
    Marker: "a/b",
    NextMarker: "a/c",
    MaxKeys: "1",
    IsTruncated: "true",
  });
  const [contents] = doc.children.filter((c) => c.name === "Contents");
  assert.deepEqual(contents.children.map((c) => c.name), [
    "Key",
    "LastModified",
    "Size",
    "StorageClass",
    "Owner",
  ]);
});

Deno.test("listObjectsResult() URL-encodes keys, prefixes, delimiter and start-after when asked", async () => {
  const keys = ["p q/a+b", "p q/ü/x", "p q/z z"];
  const q = query({
    "list-type": "2",
    prefix: "p q/",
    delimiter: "/",
    "encoding-type": "url",
    "start-after": "p q/a",
  });
  const result = listObjectsResult("bkt", q, await listPage(fakeFetch(keys, q.prefix).fetch, q));
  assert.deepEqual(result.contents.map((c) => c.key), ["p%20q/a%2Bb", "p%20q/z%20z"]);
  assert.deepEqual(result.commonPrefixes, ["p%20q/%C3%BC/"]);
  assert.deepEqual([result.prefix, result.delimiter, result.startAfter, result.encodingType], [
    "p%20q/",
    "/",
    "p%20q/a",
    "url",
  ]);
  assert.match(listBucketResultXml(result), /<EncodingType>url<\/EncodingType>/);
});

// ---------------------------------------------------------------------------------------------
// Over the store's names

/** `FileStore.list` over dfs names, as rank 0 answers it. */
function fakeStore(names: readonly string[]) {
  const sorted = [...names].sort(compare);
  const calls: { prefix: string; after?: string; limit?: number }[] = [];
  const list: StoreList = (prefix, options) => {
    calls.push({ prefix, ...options });
    let all = sorted.filter((n) => n.startsWith(prefix));
    if (options.after !== undefined) all = all.filter((n) => n > options.after!);
    return Promise.resolve(
      all.slice(0, options.limit).map((name) => ({ name, size: 7, modified: 5, replicas: 2 })),
    );
  };
  return { list, calls };
}

const NAMES = [
  "bkt/a/b",
  "bkt/dir/ ",
  "bkt/dir/ y",
  "bkt/dir/x",
  "bkt/dir/x/ ",
  "bkt2/dir/x",
  "bk/x",
  "other",
];

Deno.test("fetchFromStore() lists a bucket's keys, folder markers as keys ending in /", async () => {
  const run = async (params: Record<string, string>) => {
    const q = query({ "list-type": "2", ...params });
    const { list } = fakeStore(NAMES);
    return summary(await listPage(fetchFromStore(list, "bkt", q.prefix), q));
  };
  assert.deepEqual(await run({}), [
    ["a/b", "dir/", "dir/ y", "dir/x", "dir/x/"],
    [],
    false,
    undefined,
  ]);
  assert.deepEqual(await run({ delimiter: "/" }), [[], ["a/", "dir/"], false, undefined]);
  assert.deepEqual(await run({ delimiter: "/", prefix: "dir/" }), [
    ["dir/", "dir/ y", "dir/x"],
    ["dir/x/"],
    false,
    undefined,
  ]);
  // "dir/ " lists the marker's name "bkt/dir/ " too, whose key "dir/" is not under it.
  assert.deepEqual(await run({ prefix: "dir/ " }), [["dir/ y"], [], false, undefined]);
  assert.deepEqual(await run({ "start-after": "dir/" }), [
    ["dir/ y", "dir/x", "dir/x/"],
    [],
    false,
    undefined,
  ]);
  assert.deepEqual(await run({ "start-after": "dir/\n" }), [
    ["dir/ y", "dir/x", "dir/x/"],
    [],
    false,
    undefined,
  ]);
  assert.deepEqual(await run({ "start-after": "dir/x/" }), [[], [], false, undefined]);
});

Deno.test("fetchFromStore() pages through markers one key at a time", async () => {
  const { list } = fakeStore(NAMES);
  const keys: string[] = [];
  let params: Record<string, string> = { "list-type": "2", "max-keys": "1" };
  for (;;) {
    const q = query(params);
    const page = await listPage(fetchFromStore(list, "bkt", q.prefix), q);
    keys.push(...page.contents.map((c) => c.key));
    if (!page.isTruncated) break;
    params = { ...params, "continuation-token": encodeContinuationToken(page.next!) };
  }
  assert.deepEqual(keys, ["a/b", "dir/", "dir/ y", "dir/x", "dir/x/"]);
});

Deno.test("fetchFromStore() passes sizes and times and asks nothing for an impossible prefix", async () => {
  const { list, calls } = fakeStore(NAMES);
  const q = query({ prefix: "a" });
  const page = await listPage(fetchFromStore(list, "bkt", q.prefix), q);
  assert.deepEqual(page.contents, [{ key: "a/b", size: 7, modified: 5 }]);
  assert.deepEqual(calls, [{ prefix: "bkt/a", after: undefined, limit: 1001 }]);

  const none = fakeStore(NAMES);
  const bad = query({ prefix: "a\u0001" });
  assert.deepEqual(summary(await listPage(fetchFromStore(none.list, "bkt", bad.prefix), bad)), [
    [],
    [],
    false,
    undefined,
  ]);
  assert.equal(none.calls.length, 0);
});
