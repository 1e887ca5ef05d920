import assert from "node:assert/strict";
import { manifest } from "../testing/manifests.ts";
import { Membership, type NodeInfo } from "./membership.ts";

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

Deno.test("Membership says why a node is down: restarting, then down once a restart fails", () => {
  const members = new Membership([1, 2]);
  assert.equal(members.stateOf(1), "up");
  members.markDown(1, "its disk failed: folder is gone", 500);
  assert.equal(members.stateOf(1), "restarting");
  assert.deepEqual(members.reasonOf(1), {
    reason: "its disk failed: folder is gone",
    sinceMs: 500,
    restartFailed: false,
  });
  members.restartFailed(1, "Cannot open node folder");
  assert.equal(members.stateOf(1), "down");
  assert.equal(members.reasonOf(1)?.reason, "Cannot open node folder");
  members.markUp(1);
  assert.equal(members.stateOf(1), "up");
  assert.equal(members.reasonOf(1), undefined);
});

Deno.test("Membership takes a rank outside the data ranks for gone, and gone for lost", () => {
  const members = new Membership([1, 2]);
  assert.ok(members.isGone(3));
  assert.ok(members.isLost(3));
  assert.ok(!members.isGone(2));
  assert.ok(!members.isLost(2));
  members.markDown(2);
  assert.ok(members.isLost(2));
});

Deno.test("dataPortOf() gives a node's data port only if it speaks TLS exactly when clients do", () => {
  const info = new Map<number, NodeInfo>([
    [1, { kind: "remote", zone: "a", dataAddress: "10.0.0.1:7081" }],
    [2, { kind: "remote", zone: "b", dataAddress: "10.0.0.2:7081", dataTls: true }],
    [3, { kind: "remote", zone: "c" }],
  ]);
  const membership = new Membership([1, 2, 3], { info });
  assert.deepEqual([1, 2, 3].map((r) => membership.dataPortOf(r)), [
    "10.0.0.1:7081",
    undefined,
    undefined,
  ]);
  membership.dataTls = true; // clients speak TLS to rank 0: never a plain data port
  assert.deepEqual([1, 2, 3].map((r) => membership.dataPortOf(r)), [
    undefined,
    "10.0.0.2:7081",
    undefined,
  ]);
});
