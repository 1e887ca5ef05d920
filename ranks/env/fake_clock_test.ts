import { deepEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { FAKE_CLOCK_EPOCH_MS, FakeClock } from "./fake_clock.ts";
import { SeededRandom } from "./seeded_random.ts";

function sleep(clock: FakeClock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimeout(resolve, ms));
}

Deno.test("FakeClock starts at its epoch and monotonic 0 and moves only when advanced", async () => {
  const clock = new FakeClock();
  equal(clock.now(), FAKE_CLOCK_EPOCH_MS);
  equal(clock.monotonic(), 0);
  await new Promise((resolve) => setTimeout(resolve, 5));
  equal(clock.monotonic(), 0);
  equal(await clock.advance(1500), 0);
  deepEqual([clock.now(), clock.monotonic()], [FAKE_CLOCK_EPOCH_MS + 1500, 1500]);
  equal(new FakeClock({ epochMs: 7 }).now(), 7);
});

Deno.test("FakeClock.advance() runs due timers in deadline order, then creation order, each at its deadline", async () => {
  const clock = new FakeClock();
  const ran: string[] = [];
  const at = (name: string) => () => ran.push(`${name}@${clock.monotonic()}`);
  clock.setTimeout(at("c"), 30);
  clock.setTimeout(at("a"), 10);
  clock.setTimeout(at("b1"), 20);
  clock.setTimeout(at("b2"), 20);
  clock.setTimeout(at("negative"), -5);
  clock.setTimeout(at("late"), 31);
  equal(await clock.advance(30), 5);
  deepEqual(ran, ["negative@0", "a@10", "b1@20", "b2@20", "c@30"]);
  equal(clock.pending, 1);
  equal(clock.nextDeadline(), 31);
  equal(await clock.advance(1), 1);
  deepEqual(ran.at(-1), "late@31");
  equal(clock.nextDeadline(), undefined);
});

Deno.test("FakeClock.advance() lets microtasks settle after each timer, so their timers run too", async () => {
  const clock = new FakeClock();
  const ran: string[] = [];
  async function worker(name: string): Promise<void> {
    await sleep(clock, 10);
    ran.push(`${name} woke@${clock.monotonic()}`);
    await Promise.resolve(); // some async work after the wake-up
    await sleep(clock, 5);
    ran.push(`${name} done@${clock.monotonic()}`);
  }
  const done = Promise.all([worker("x"), worker("y")]);
  clock.setTimeout(() => ran.push(`other@${clock.monotonic()}`), 12);
  equal(await clock.advance(20), 5);
  await done;
  deepEqual(ran, ["x woke@10", "y woke@10", "other@12", "x done@15", "y done@15"]);
  equal(clock.monotonic(), 20);
});

Deno.test("FakeClock runs a timer set by a timer for 0 ms in the same advance, after those due then", async () => {
  const clock = new FakeClock();
  const ran: string[] = [];
  clock.setTimeout(() => {
    ran.push("first");
    clock.setTimeout(() => ran.push("zero"), 0);
  }, 10);
  clock.setTimeout(() => ran.push("second"), 10);
  equal(await clock.advance(10), 3);
  deepEqual(ran, ["first", "second", "zero"]);
});

Deno.test("FakeClock.clearTimeout() cancels a pending timer and ignores other handles", async () => {
  const clock = new FakeClock();
  const ran: number[] = [];
  const handles = [1, 2, 3].map((n) => clock.setTimeout(() => ran.push(n), n));
  clock.clearTimeout(handles[1]);
  clock.clearTimeout(undefined);
  clock.clearTimeout(12345);
  clock.clearTimeout("junk");
  equal(clock.pending, 2);
  await clock.runUntilIdle();
  deepEqual(ran, [1, 3]);
  clock.clearTimeout(handles[0]); // already fired
  equal(clock.pending, 0);
});

Deno.test("FakeClock keeps deadline order through many timers set and cleared at random", async () => {
  const clock = new FakeClock();
  const random = new SeededRandom(1);
  const next = (n: number) => random.nextUint32() % n;
  const expected: [number, number][] = [];
  const ran: [number, number][] = [];
  const live = new Map<unknown, [number, number]>();
  for (let i = 0; i < 5_000; i++) {
    const ms = next(1000);
    const entry: [number, number] = [ms, i];
    live.set(clock.setTimeout(() => ran.push(entry), ms), entry);
    if (next(3) === 0) {
      const handle = [...live.keys()][next(live.size)];
      live.delete(handle);
      clock.clearTimeout(handle);
    }
  }
  expected.push(...live.values());
  expected.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  equal(await clock.runUntilIdle(), expected.length);
  deepEqual(ran, expected);
});

Deno.test("FakeClock.advanceToNext() jumps to the earliest deadline and runs every timer due then", async () => {
  const clock = new FakeClock();
  const ran: string[] = [];
  clock.setTimeout(() => ran.push("b"), 500);
  clock.setTimeout(() => ran.push("a1"), 200);
  clock.setTimeout(() => ran.push("a2"), 200);
  equal(await clock.advanceToNext(), 2);
  deepEqual([ran, clock.monotonic()], [["a1", "a2"], 200]);
  equal(await clock.advanceToNext(), 1);
  equal(await clock.advanceToNext(), 0);
  equal(clock.monotonic(), 500);
});

Deno.test("FakeClock.runUntilIdle() asserts after timersMax timers when a timer keeps setting itself", async () => {
  const clock = new FakeClock();
  const again = () => void clock.setTimeout(again, 1_000);
  again();
  await rejects(
    clock.runUntilIdle({ timersMax: 50 }),
    /Assertion failed: the fake clock ran 50 timers and more are pending/,
  );
  equal(clock.monotonic(), 50_000);
});

Deno.test("FakeClock.advance() rejects with what a timer threw, time standing at its deadline", async () => {
  const clock = new FakeClock();
  const ran: number[] = [];
  clock.setTimeout(() => {
    throw new Error("timer failed");
  }, 10);
  clock.setTimeout(() => ran.push(20), 20);
  await rejects(clock.advance(100), /timer failed/);
  deepEqual([clock.monotonic(), clock.pending, ran], [10, 1, []]);
  equal(await clock.advance(90), 1);
  equal(clock.monotonic(), 100);
});

Deno.test("FakeClock rejects bad durations and overlapping advances as programmer errors", async () => {
  const clock = new FakeClock();
  await rejects(clock.advance(-1), /Assertion failed: ms -1 must be finite and not negative/);
  await rejects(clock.advance(NaN), /Assertion failed: ms NaN/);
  await rejects(clock.advance(Infinity), /Assertion failed: ms Infinity/);
  throws(() => clock.setTimeout(() => {}, Infinity), /Assertion failed: a fake timer's ms/);
  const first = clock.advance(10);
  await rejects(clock.advance(10), /Assertion failed: the fake clock is already being advanced/);
  throws(() => clock.autoAdvance(), /already being advanced/);
  await first;
  using _auto = clock.autoAdvance();
  await rejects(clock.runUntilIdle(), /already being advanced/);
});

Deno.test("FakeClock.autoAdvance() runs each timer once the program is idle, in no real time", async () => {
  const clock = new FakeClock();
  using _auto = clock.autoAdvance();
  const started = performance.now();
  const ran: string[] = [];
  async function step(name: string, ms: number) {
    await sleep(clock, ms);
    ran.push(`${name}@${clock.monotonic()}`);
  }
  await Promise.all([step("hour", 3_600_000), step("second", 1_000), step("day", 86_400_000)]);
  for (let i = 0; i < 1_000; i++) await sleep(clock, 60_000);
  deepEqual(ran, ["second@1000", "hour@3600000", "day@86400000"]);
  equal(clock.monotonic(), 86_400_000 + 60_000_000);
  ok(performance.now() - started < 1_000, "fake time should not cost real time");
});

Deno.test("FakeClock.autoAdvance() runs no timer while microtasks are pending", async () => {
  const clock = new FakeClock();
  using _auto = clock.autoAdvance();
  const ran: string[] = [];
  clock.setTimeout(() => ran.push("timer"), 0);
  let chain = Promise.resolve();
  for (let i = 0; i < 10_000; i++) chain = chain.then(() => {});
  await chain.then(() => ran.push("chain"));
  await sleep(clock, 0);
  deepEqual(ran, ["chain", "timer"]);
});

Deno.test("FakeClock.autoAdvance() stops when disposed and is idle while no timer is pending", async () => {
  const clock = new FakeClock();
  const auto = clock.autoAdvance();
  await sleep(clock, 10);
  auto[Symbol.dispose]();
  auto[Symbol.dispose](); // idempotent
  let fired = false;
  clock.setTimeout(() => fired = true, 10);
  await new Promise((resolve) => setTimeout(resolve, 5));
  equal(fired, false);
  equal(clock.monotonic(), 10);
  await clock.advance(10);
  equal(fired, true);
});

Deno.test("FakeClock runs a program of timers and promises the same way every time", async () => {
  async function run(auto: boolean): Promise<string[]> {
    const clock = new FakeClock();
    const log: string[] = [];
    async function worker(id: number) {
      for (let i = 0; i < 5; i++) {
        await sleep(clock, (id * 7 + i * 3) % 10);
        log.push(`${id}.${i}@${clock.monotonic()}`);
        await Promise.resolve();
        if (i % 2 === 0) log.push(`${id} half@${clock.monotonic()}`);
      }
    }
    const done = Promise.all([1, 2, 3, 4].map(worker));
    if (auto) {
      using _auto = clock.autoAdvance();
      await done;
    } else {
      await clock.runUntilIdle();
      await done;
    }
    return log;
  }
  const first = await run(false);
  equal(first.length, 32);
  deepEqual(await run(false), first);
  deepEqual(await run(true), first);
  deepEqual(await run(true), first);
});
