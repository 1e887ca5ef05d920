import assert from "node:assert/strict";
import { DfsError } from "./errors.ts";
import { NAME_BYTES_MAX } from "./limits.ts";
import { utf8ByteLength, validateName, validatePrefix } from "./names.ts";

function assertInvalid(name: unknown, pattern: RegExp) {
  assert.throws(() => validateName(name), (error: unknown) => {
    assert.ok(error instanceof DfsError);
    assert.equal(error.code, "INVALID_REQUEST");
    assert.match(error.message, pattern);
    return true;
  });
}

Deno.test("validateName() accepts plain, nested and non-ASCII names", () => {
  for (
    const name of ["a.txt", "dir/sub/file", "été/日本.bin", "a".repeat(NAME_BYTES_MAX), "..a/b.."]
  ) {
    assert.equal(validateName(name), name);
  }
});

Deno.test("validateName() rejects an empty name and a non-string", () => {
  assertInvalid("", /empty/);
  assertInvalid(42, /must be a string/);
  assertInvalid(undefined, /must be a string/);
});

Deno.test("validateName() rejects a name over NAME_BYTES_MAX UTF-8 bytes", () => {
  assertInvalid("a".repeat(NAME_BYTES_MAX + 1), /1025 bytes/);
  // 342 three-byte characters are 1026 bytes though only 342 UTF-16 units.
  assertInvalid("€".repeat(342), /over the limit/);
});

Deno.test("validateName() rejects NUL, a lone surrogate, a leading slash and dot segments", () => {
  assertInvalid("a\0b", /NUL/);
  assertInvalid("a\uD800b", /UTF-8/);
  assertInvalid("/etc/passwd", /starts with/);
  assertInvalid("a//b", /empty segment/);
  assertInvalid("a/", /empty segment/);
  assertInvalid("../x", /"\.\." segment/);
  assertInvalid("a/./b", /"\." segment/);
  assertInvalid("..", /"\.\." segment/);
  assertInvalid("a/..", /"\.\." segment/);
  assertInvalid(".", /"\." segment/);
  assertInvalid("a/.", /"\." segment/);
  for (const fine of ["...", "a/.b", "a/b./c", ".hidden/x", "a/...b"]) {
    assert.equal(validateName(fine), fine);
  }
});

Deno.test("validatePrefix() allows an empty or partial prefix and rejects NUL", () => {
  assert.equal(validatePrefix(undefined), "");
  assert.equal(validatePrefix("dir/pa"), "dir/pa");
  assert.throws(() => validatePrefix("a\0"), /NUL/);
  assert.throws(() => validatePrefix(7), /must be a string/);
});

Deno.test("validateName() refuses U+FFFD, which stands for invalid UTF-8 after decoding", () => {
  assertInvalid("a\uFFFDb", /not valid UTF-8/);
  assert.throws(() => validatePrefix("\uFFFD"), /not valid UTF-8/);
});

Deno.test("utf8ByteLength matches TextEncoder for ASCII, 2-, 3- and 4-byte characters", () => {
  const encoder = new TextEncoder();
  for (
    const text of [
      "",
      "a",
      "photos/2024/img.jpg",
      "é",
      "ü/ß",
      "日本語",
      "€",
      "😀",
      "a😀b€é",
      "\u07ff\u0800\uffff",
    ]
  ) {
    assert.equal(utf8ByteLength(text), encoder.encode(text).length, text);
  }
});
