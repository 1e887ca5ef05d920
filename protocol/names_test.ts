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
  assertInvalid("a\0b", /^Invalid name: name contains a control character \(U\+0000\)$/);
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
  assert.throws(() => validatePrefix("a\0"), /prefix contains a control character \(U\+0000\)/);
  assert.throws(() => validatePrefix(7), /must be a string/);
});

Deno.test("validateName() refuses U+FFFD, which stands for invalid UTF-8 after decoding", () => {
  assertInvalid("a\uFFFDb", /not valid UTF-8/);
  assert.throws(() => validatePrefix("\uFFFD"), /not valid UTF-8/);
});

Deno.test("validateName() refuses a name not in Unicode NFC and says how to normalize it", () => {
  const why =
    /^Invalid name: name is not in Unicode NFC \(normalize it with String\.prototype\.normalize\("NFC"\)\)$/;
  // "café" spelt with a combining acute accent (NFD, as macOS file names come), the Ångström sign
  // (whose NFC is Å), and Hangul in conjoining jamo: each has another, NFC spelling.
  for (const name of ["cafe\u0301.txt", "dir/\u212B", "\u1100\u1161.txt", "a/e\u0301/b"]) {
    assertInvalid(name, why);
    assert.equal(validateName(name.normalize("NFC")), name.normalize("NFC"));
  }
  // Already NFC: precomposed letters, and a combining mark with no precomposed form.
  for (const name of ["caf\u00e9.txt", "\u00c5", "\uac00.txt", "q\u0307", "\u{1F600}"]) {
    assert.equal(validateName(name), name);
  }
});

Deno.test("validateName() refuses every control character, U+0000 to U+001F and U+007F to U+009F", () => {
  const controls = [];
  for (let code = 0; code <= 0x1f; code++) controls.push(code);
  for (let code = 0x7f; code <= 0x9f; code++) controls.push(code);
  for (const code of controls) {
    const hex = code.toString(16).toUpperCase().padStart(4, "0");
    const why = new RegExp(`^Invalid name: name contains a control character \\(U\\+${hex}\\)$`);
    assertInvalid(`a${String.fromCharCode(code)}b`, why);
    assertInvalid(`${String.fromCharCode(code)}`, why);
  }
  assertInvalid("two\nlines", /control character \(U\+000A\)/);
  assertInvalid("tab\there", /control character \(U\+0009\)/);
  // The characters around the two ranges are not control characters.
  for (const name of ["a b", "~", "\u00a0", "\u00ff", "\u200b", "\u2028"]) {
    assert.equal(validateName(name), name);
  }
});

Deno.test("validatePrefix() refuses control characters but not a prefix outside NFC", () => {
  assert.throws(() => validatePrefix("logs/\n"), (error: unknown) => {
    assert.ok(error instanceof DfsError);
    assert.equal(error.code, "INVALID_REQUEST");
    assert.equal(error.message, "Invalid name: prefix contains a control character (U+000A)");
    return true;
  });
  assert.throws(() => validatePrefix("\u009b"), /control character \(U\+009B\)/);
  // A prefix is any start of a name; one outside NFC simply matches no (NFC) name.
  assert.equal(validatePrefix("cafe\u0301"), "cafe\u0301");
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
