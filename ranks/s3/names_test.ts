import assert from "node:assert/strict";
import { assertS3Error } from "../../tests/_assert.ts";
import { Prng } from "../../tests/_bytes.ts";
import { NAME_BYTES_MAX } from "../../protocol/limits.ts";
import { utf8ByteLength, validateName } from "../../protocol/names.ts";
import {
  dfsCursorOf,
  dfsNameOf,
  dfsPrefixOf,
  KEY_BYTES_MAX,
  keyBytesMax,
  keyOf,
  validateBucketName,
} from "./names.ts";
import { S3Error } from "./s3_error.ts";

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Buckets

Deno.test("validateBucketName() accepts S3's general purpose bucket names", () => {
  for (const name of ["abc", "my-bucket", "logs.2024.example", "a1b", "0x0", "a".repeat(63)]) {
    assert.equal(validateBucketName(name), name);
  }
});

Deno.test("validateBucketName() refuses each broken rule as InvalidBucketName, naming it", () => {
  const refused: [string, RegExp][] = [
    ["ab", /"ab" is 2 characters long, not 3 to 63/],
    ["a".repeat(64), /64 characters long/],
    ["", /0 characters long/],
    ["My-Bucket", /other than lower-case letters, digits, dots and hyphens/],
    ["my_bucket", /other than lower-case/],
    ["a/b", /other than lower-case/],
    ["-abc", /begin and end with a letter or digit/],
    ["abc-", /begin and end/],
    [".abc", /begin and end/],
    ["a..b", /two adjacent dots/],
    ["192.168.5.4", /formatted as an IP address/],
    ["xn--abc", /reserved prefix xn--/],
    ["sthree-abc", /reserved prefix sthree-/],
    ["amzn-s3-demo-abc", /reserved prefix amzn-s3-demo-/],
    ["abc-s3alias", /reserved suffix -s3alias/],
    ["abc--ol-s3", /reserved suffix --ol-s3/],
    ["abc.mrap", /reserved suffix \.mrap/],
    ["abc--x-s3", /reserved suffix --x-s3/],
    ["abc--table-s3", /reserved suffix --table-s3/],
  ];
  for (const [name, pattern] of refused) {
    assertS3Error(() => validateBucketName(name), "InvalidBucketName", pattern);
  }
  assert.throws(() => validateBucketName("ab"), (e: unknown) => (e as S3Error).resource === "/ab");
});

// ---------------------------------------------------------------------------------------------
// Keys

Deno.test("dfsNameOf() stores a key under its bucket as bucket/key", () => {
  const keys = [
    "a.txt",
    "dir/sub/file",
    "été/日本.bin",
    "...",
    "a/.b/c..",
    " ",
    "spaces at the end ",
    "a+b=c&d?e#f%20",
    "\u{1F600}",
  ];
  for (const key of keys) {
    assert.equal(dfsNameOf("bucket", key), `bucket/${key}`);
    assert.equal(keyOf("bucket", `bucket/${key}`), key);
  }
});

Deno.test("dfsNameOf() stores a folder marker with a space after its final slash", () => {
  assert.equal(dfsNameOf("b1b", "photos/"), "b1b/photos/ ");
  assert.equal(dfsNameOf("b1b", "a/b/c/"), "b1b/a/b/c/ ");
  assert.equal(dfsNameOf("b1b", "a /"), "b1b/a / ");
  assert.equal(keyOf("b1b", "b1b/photos/ "), "photos/");
  assert.equal(keyOf("b1b", "b1b/a/b/c/ "), "a/b/c/");
  // "dir" and "dir/" are two objects, as in S3.
  assert.notEqual(dfsNameOf("b1b", "dir"), dfsNameOf("b1b", "dir/"));
});

Deno.test("dfsNameOf() refuses a key ending in '/ ', which a folder marker's name would be", () => {
  assertS3Error(
    () => dfsNameOf("b1b", "photos/ "),
    "InvalidArgument",
    /^Cannot store key "photos\/ ": it ends in "\/ ", the dfs name of the folder marker/,
  );
});

Deno.test("dfsNameOf() refuses keys dfs cannot hold with InvalidArgument naming the rule", () => {
  const refused: [string, RegExp][] = [
    ["", /the key is empty/],
    ["/leading", /empty segment \(a leading "\/" or "\/\/"\)/],
    ["a//b", /empty segment/],
    ["a//", /empty segment/],
    ["/", /empty segment/],
    ["//", /empty segment/],
    [".", /a "\." segment/],
    ["..", /a "\.\." segment/],
    ["a/./b", /a "\." segment/],
    ["a/../b", /a "\.\." segment/],
    ["./", /a "\." segment/],
    ["a/../", /a "\.\." segment/],
    ["line\nbreak", /control character U\+000A, which dfs names cannot hold/],
    ["nul\u0000", /U\+0000/],
    ["del\u007f", /U\+007F/],
    ["c1\u0085", /U\+0085/],
    ["cafe\u0301", /not in Unicode NFC/],
    ["\u212B", /not in Unicode NFC/],
    ["a\uFFFDb", /not valid UTF-8/],
    ["a\uD800b", /not valid UTF-8/],
  ];
  for (const [key, pattern] of refused) {
    assertS3Error(() => dfsNameOf("b1b", key), "InvalidArgument", pattern);
    assert.throws(
      () => dfsNameOf("b1b", key),
      (e: unknown) => (e as S3Error).resource === `/b1b/${key}`,
    );
  }
});

Deno.test("dfsNameOf() refuses a key over 1024 bytes, or over what fits beside its bucket", () => {
  assertS3Error(
    () => dfsNameOf("b1b", "€".repeat(342)),
    "KeyTooLongError",
    /^The key is 1026 bytes, over the limit of 1024$/,
  );
  // bucket "b1b" and "/" take 4 of the dfs name's 1024 bytes.
  assert.equal(keyBytesMax("b1b"), 1020);
  assert.equal(keyBytesMax("b1b", true), 1019);
  assert.equal(dfsNameOf("b1b", "k".repeat(1020)).length, NAME_BYTES_MAX);
  assertS3Error(
    () => dfsNameOf("b1b", "k".repeat(1021)),
    "KeyTooLongError",
    /1021 bytes; in bucket b1b a key may have at most 1020 \(dfs names, bucket\/key, are at most 1024 bytes\)/,
  );
  assert.equal(dfsNameOf("b1b", `${"k".repeat(1018)}/`).length, NAME_BYTES_MAX);
  assertS3Error(
    () => dfsNameOf("b1b", `${"k".repeat(1019)}/`),
    "KeyTooLongError",
    /key ending in \/ may have at most 1019/,
  );
  assert.equal(KEY_BYTES_MAX, 1024);
});

Deno.test("dfsNameOf() checks the bucket name", () => {
  assertS3Error(() => dfsNameOf("Bad_Bucket", "k"), "InvalidBucketName", /Bad_Bucket/);
});

Deno.test("dfsNameOf() returns only names validateName accepts, for any key it does not refuse", () => {
  const prng = new Prng(7);
  const next = () => prng.float();
  const alphabet = ["a", "b", "/", ".", " ", "é", "e\u0301", "\n", "日", "\u{1F600}", "\uFFFD"];
  let stored = 0;
  for (let i = 0; i < 20_000; i++) {
    const length = 1 + Math.floor(next() * 8);
    let key = "";
    for (let j = 0; j < length; j++) key += alphabet[Math.floor(next() * alphabet.length)];
    let name: string;
    try {
      name = dfsNameOf("bkt", key);
    } catch (error) {
      assert.ok(error instanceof S3Error, `${error}`);
      continue;
    }
    stored++;
    assert.equal(validateName(name), name);
    assert.equal(keyOf("bkt", name), key);
  }
  assert.ok(stored > 1000, `${stored}`);
});

Deno.test("dfsNameOf() keeps the order of keys, so listings page in key order", () => {
  const prng = new Prng(11);
  const next = () => prng.float();
  const alphabet = ["a", "/", " ", "!", ".", "0", "~", "é", "\uFFFF", "\u{10000}"];
  const keys = new Set<string>();
  while (keys.size < 3000) {
    const length = 1 + Math.floor(next() * 6);
    let key = "";
    for (let j = 0; j < length; j++) key += alphabet[Math.floor(next() * alphabet.length)];
    try {
      dfsNameOf("bkt", key);
      keys.add(key);
    } catch {
      // refused keys are not stored
    }
  }
  const byKey = [...keys].sort(compare);
  const byName = [...keys].sort((a, b) => compare(dfsNameOf("bkt", a), dfsNameOf("bkt", b)));
  assert.deepEqual(byName, byKey);
});

// ---------------------------------------------------------------------------------------------
// Names back to keys, prefixes and cursors

Deno.test("keyOf() is undefined for names outside the bucket", () => {
  assert.equal(keyOf("abc", "abcd/x"), undefined);
  assert.equal(keyOf("abc", "abc"), undefined);
  assert.equal(keyOf("abc", "xyz/abc/k"), undefined);
  assert.equal(keyOf("abc", "abc/ "), " ");
});

Deno.test("dfsPrefixOf() prefixes the bucket, or says no name can start with the prefix", () => {
  assert.equal(dfsPrefixOf("abc", ""), "abc/");
  assert.equal(dfsPrefixOf("abc", "dir/"), "abc/dir/");
  assert.equal(dfsPrefixOf("abc", "a//"), "abc/a//");
  assert.equal(dfsPrefixOf("abc", "x\ny"), undefined);
  assert.equal(dfsPrefixOf("abc", "x\uFFFD"), undefined);
  assert.equal(dfsPrefixOf("abc", "x\uD800"), undefined);
  assert.equal(dfsPrefixOf("abc", "k".repeat(1020)), `abc/${"k".repeat(1020)}`);
  assert.equal(dfsPrefixOf("abc", "k".repeat(1021)), undefined);
  assertS3Error(() => dfsPrefixOf("A", ""), "InvalidBucketName", /"A"/);
});

Deno.test("dfsCursorOf() maps a key cursor to the name cursor, a marker's space included", () => {
  assert.equal(dfsCursorOf("abc", ""), "abc/");
  assert.equal(dfsCursorOf("abc", "dir"), "abc/dir");
  assert.equal(dfsCursorOf("abc", "dir/"), "abc/dir/ ");
  assert.equal(dfsCursorOf("abc", "dir/\nx"), "abc/dir/ ");
  assert.equal(dfsCursorOf("abc", "a\u0000b"), "abc/a");
  assert.equal(dfsCursorOf("abc", "a\uD800b"), "abc/a");
  const long = dfsCursorOf("abc", "€".repeat(400));
  assert.ok(utf8ByteLength(long) <= NAME_BYTES_MAX);
  assert.ok(long.isWellFormed());
  assert.ok(utf8ByteLength(dfsCursorOf("abc", "\u{1F600}".repeat(300))) <= NAME_BYTES_MAX);
  assert.ok(dfsCursorOf("abc", "\u{1F600}".repeat(300)).isWellFormed());
});

Deno.test("dfsCursorOf() never skips a stored key after the cursor, whatever the cursor", () => {
  const prng = new Prng(5);
  const next = () => prng.float();
  const alphabet = ["a", "/", " ", "\n", "\u0000", "!", "é", "\uD800", "\uFFFF"];
  const word = (max: number) => {
    let text = "";
    const length = Math.floor(next() * max);
    for (let j = 0; j < length; j++) text += alphabet[Math.floor(next() * alphabet.length)];
    return text;
  };
  const keys: string[] = [];
  while (keys.length < 400) {
    const key = word(6);
    try {
      dfsNameOf("bkt", key);
      keys.push(key);
    } catch {
      // refused keys are not stored
    }
  }
  for (let i = 0; i < 400; i++) {
    const after = word(7);
    const cursor = dfsCursorOf("bkt", after);
    for (const key of keys) {
      if (key > after) assert.ok(dfsNameOf("bkt", key) > cursor, `${JSON.stringify([key, after])}`);
    }
  }
});
