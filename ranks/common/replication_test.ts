import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { checkReplicas, isDamaged } from "./replication.ts";

function refusal(fn: () => void): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof DfsError && error.code === "INVALID_REQUEST", String(error));
    return error.message;
  }
  assert.fail("no error");
}

Deno.test("checkReplicas() takes 1 to the number of data nodes", () => {
  checkReplicas(1, 3);
  checkReplicas(3, 3);
  assert.equal(
    refusal(() => checkReplicas(4, 3)),
    "Cannot keep 4 replicas: there are 3 data nodes",
  );
  assert.equal(refusal(() => checkReplicas(0, 3)), "replicas must be a positive integer, got 0");
  assert.equal(
    refusal(() => checkReplicas(1.5, 3)),
    "replicas must be a positive integer, got 1.5",
  );
});

Deno.test("checkReplicas() names the serve options when given --ranks", () => {
  assert.equal(
    refusal(() => checkReplicas(2, 1, { ranks: 2 })),
    "--replicas 2 needs at least 2 data nodes, but --ranks 2 gives 1",
  );
  assert.equal(
    refusal(() => checkReplicas(-1, 1, { ranks: 2 })),
    "--replicas must be a positive integer, got -1",
  );
});

Deno.test("isDamaged() is true for CORRUPTED and NOT_FOUND only", () => {
  assert.ok(isDamaged(new DfsError("CORRUPTED", "bad")));
  assert.ok(isDamaged(new DfsError("NOT_FOUND", "gone")));
  assert.ok(!isDamaged(new DfsError("UNAVAILABLE", "down")));
  assert.ok(!isDamaged(new Error("other")));
});
