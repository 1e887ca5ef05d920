/**
 * An assertion the tests of the direct data path share: what `assert.throws` and
 * `assert.rejects` take to check a `DfsError`'s code (and message).
 *
 * @module
 */

import assert from "node:assert/strict";
import { DfsError, type ErrorCode } from "../../protocol/errors.ts";

/** A thrown `DfsError` with `code` (and, if given, a message matching `message`). */
export function fails(code: ErrorCode, message?: RegExp): (error: unknown) => true {
  return (error: unknown) => {
    assert.ok(error instanceof DfsError, `a DfsError, not ${error}`);
    assert.equal(error.code, code, error.message);
    if (message) assert.match(error.message, message);
    return true;
  };
}
