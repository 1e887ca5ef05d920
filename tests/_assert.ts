/**
 * Assertions the tests share.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DfsError } from "../protocol/errors.ts";
import { S3Error } from "../ranks/s3/s3_error.ts";

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

/** Asserts that `fn` throws an `S3Error` of `code` whose message matches `pattern`. */
export function assertS3Error(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof S3Error, `expected an S3Error, got ${error}`);
    assert.equal(error.code, code);
    assert.match(error.message, pattern);
    return true;
  });
}
