/**
 * Assertions the tests share.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DfsError } from "../protocol/errors.ts";

/** Asserts that `promise` rejects with a `DfsError` of `code` whose message matches `pattern`. */
export async function assertDfsError(
  promise: Promise<unknown>,
  code: string,
  pattern: RegExp,
): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof DfsError, `expected a DfsError, got ${e}`);
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
}
