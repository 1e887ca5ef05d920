import assert from "node:assert/strict";
import { manifest } from "../testing/manifests.ts";
import { Membership } from "./membership.ts";

Deno.test("Membership marks a node down once and hands back the releases it missed", () => {
  const members = new Membership([1, 2, 3]);
  assert.ok(members.markDown(2));
  assert.ok(!members.markDown(2), "already down");
  assert.deepEqual([...members.down], [2]);
  const m = manifest("a", 1, []);
  assert.ok(members.missRelease(2, m));
  assert.ok(!members.missRelease(1, m), "an up node misses nothing");
  assert.deepEqual(members.markUp(2), [m]);
  assert.ok(!members.isDown(2));
  assert.deepEqual(members.markUp(2), [], "handed back once");
});

Deno.test("Membership keeps at most missedReleasesMax releases per node", () => {
  const members = new Membership([1, 2], { missedReleasesMax: 2 });
  members.markDown(1);
  const kept = [1, 2, 3].map((v) => members.missRelease(1, manifest("a", v, [])));
  assert.deepEqual(kept, [true, true, false]);
  assert.equal(members.markUp(1).length, 2);
});
