import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { FRAME_SIZE_BYTES_MAX, FRAME_SIZE_BYTES_MIN } from "../../protocol/limits.ts";
import { DEFAULT_LIMITS } from "../config.ts";
import { resolveLimits } from "./limits.ts";

Deno.test("resolveLimits() keeps the defaults for limits not given or undefined", () => {
  assert.deepEqual(resolveLimits(), DEFAULT_LIMITS);
  assert.deepEqual(resolveLimits({ connectionsMax: 2, idleTimeoutMs: undefined }), {
    ...DEFAULT_LIMITS,
    connectionsMax: 2,
  });
  assert.equal(resolveLimits({ frameSizeBytesMax: FRAME_SIZE_BYTES_MIN }).frameSizeBytesMax, 65536);
});

Deno.test("resolveLimits() refuses a frame limit outside its range as INVALID_REQUEST", () => {
  for (const frameSizeBytesMax of [FRAME_SIZE_BYTES_MIN - 1, FRAME_SIZE_BYTES_MAX + 1]) {
    assert.throws(() => resolveLimits({ frameSizeBytesMax }), (e: unknown) => {
      assert.ok(e instanceof DfsError);
      assert.equal(e.code, "INVALID_REQUEST");
      assert.equal(
        e.message,
        `--frame-size-bytes-max must be from ${FRAME_SIZE_BYTES_MIN} to ${FRAME_SIZE_BYTES_MAX}, ` +
          `got ${frameSizeBytesMax}`,
      );
      return true;
    });
  }
});

Deno.test("resolveLimits() refuses a per-connection or per-address share below 1 as INVALID_REQUEST", () => {
  const cases = [
    [{ connectionsPerAddressMax: 0 }, "--connections-per-address-max must be at least 1, got 0"],
    [{ uploadsPerConnectionMax: 0 }, "--uploads-per-connection-max must be at least 1, got 0"],
    [{ uploadsPerAddressMax: 0 }, "--uploads-per-address-max must be at least 1, got 0"],
  ] as const;
  for (const [given, message] of cases) {
    assert.throws(() => resolveLimits(given), (e: unknown) => {
      assert.ok(e instanceof DfsError);
      assert.equal(e.code, "INVALID_REQUEST");
      assert.equal(e.message, message);
      return true;
    });
  }
});
