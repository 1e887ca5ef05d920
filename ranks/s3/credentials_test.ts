import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { parseCredentials } from "./credentials.ts";

Deno.test("parseCredentials() reads one ACCESS_KEY_ID:SECRET per line, skipping blanks and comments", () => {
  const text =
    "# dfs S3 keys\nAKIAEXAMPLE123:wJalrXUtnFEMI/K7MDENG+bPxRfiCY\r\n\nminio:minio:admin\n";
  assert.deepEqual(
    parseCredentials(text),
    new Map([["AKIAEXAMPLE123", "wJalrXUtnFEMI/K7MDENG+bPxRfiCY"], ["minio", "minio:admin"]]),
  );
});

Deno.test("parseCredentials() names the line that is not usable", () => {
  const cases: [string, RegExp][] = [
    ["", /holds no ACCESS_KEY_ID:SECRET line/],
    ["key-without-colon", /line 1 is not ACCESS_KEY_ID:SECRET/],
    ["okay:12345678\nbad id:12345678", /line 2 is not ACCESS_KEY_ID:SECRET/],
    ["short:1234567", /line 1: the secret of short must be 8 to 128 bytes/],
    ["spaced:1234 5678", /without white space/],
    ["twice:12345678\ntwice:87654321", /line 2: access key id twice is given twice/],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => parseCredentials(text),
      (e) => e instanceof DfsError && e.code === "INVALID_REQUEST" && message.test(e.message),
    );
  }
});
