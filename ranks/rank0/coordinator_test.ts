import assert from "node:assert/strict";
import { SCRUB_READ_COST_BYTES_MIN, scrubCostBytes } from "./coordinator.ts";
import type { Manifest } from "../common/manifest.ts";

const MiB = 1024 * 1024;

function manifestOf(chunks: { size: number; ranks: number[] }[]): Manifest {
  return {
    name: "f",
    size: chunks.reduce((sum, c) => sum + c.size, 0),
    version: 1,
    sha256: "",
    modified: 0,
    chunks: chunks.map((c, i) => ({ id: `c${i}`, size: c.size, crc32: 0, ranks: c.ranks })),
  };
}

Deno.test("scrubCostBytes charges every replica, small chunks at SCRUB_READ_COST_BYTES_MIN", () => {
  assert.equal(
    scrubCostBytes(manifestOf([{ size: 4096, ranks: [1, 2] }])),
    2 * SCRUB_READ_COST_BYTES_MIN,
  );
  assert.equal(scrubCostBytes(manifestOf([{ size: 4 * MiB, ranks: [1, 2] }])), 8 * MiB);
  assert.equal(
    scrubCostBytes(manifestOf([{ size: 4 * MiB, ranks: [1, 2, 3] }, { size: 10, ranks: [3] }])),
    12 * MiB + SCRUB_READ_COST_BYTES_MIN,
  );
  assert.equal(scrubCostBytes(manifestOf([])), 0);
});
