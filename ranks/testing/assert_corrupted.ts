/**
 * The assertion of the codec tests: a decode that fails says `CORRUPTED`, and why.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";

/** Asserts `fn` throws a `DfsError` `CORRUPTED` whose message matches `pattern`. */
export function assertCorrupted(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof DfsError, `a DfsError, not ${error}`);
    assert.equal(error.code, "CORRUPTED");
    assert.match(error.message, pattern);
    return true;
  });
}
