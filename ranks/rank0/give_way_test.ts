import assert from "node:assert/strict";
import { FakeClock } from "../env/fake_clock.ts";
import { forEachInSteps, giveWayOn } from "./give_way.ts";

Deno.test("giveWayOn() resolves only once its clock has run a 0 ms timer", async () => {
  const clock = new FakeClock();
  let done = false;
  const giving = giveWayOn(clock)().then(() => done = true);
  await Promise.resolve();
  assert.equal(done, false, "no timer has run");
  assert.equal(clock.pending, 1);
  await clock.advance(0);
  await giving;
  assert.equal(done, true);
  assert.equal(clock.monotonic(), 0, "no time passed");
});

Deno.test("forEachInSteps() visits every item in order, giving way after every step, and goes on through changes", async () => {
  const items = Array.from({ length: 25 }, (_, i) => i);
  const visited: number[] = [];
  const turnsAt: number[] = [];
  await forEachInSteps(items, (item) => visited.push(item), () => {
    turnsAt.push(visited.length);
    items.push(100 + turnsAt.length); // work meanwhile adds items the iteration reaches
    return Promise.resolve();
  }, 10);
  assert.deepEqual(turnsAt, [10, 20]);
  assert.deepEqual(visited, [...Array.from({ length: 25 }, (_, i) => i), 101, 102]);
  // Fewer items than a step: no way is given.
  await forEachInSteps([1, 2], () => {}, () => Promise.reject(new Error("gave way")), 10);
});
