/**
 * A clock whose time moves only when a test says so: `advance(ms)`, `advanceToNext()`,
 * `runUntilIdle()`, or `autoAdvance()` for an in-process cluster test that just awaits operations.
 *
 * What is deterministic: timers run in deadline order, then in the order they were set; `now()` and
 * `monotonic()` change only when this clock runs a timer or ends an `advance()`, and then read the
 * timer's deadline (or the target of the advance), never the real time. So a program whose only
 * asynchrony is promises and this clock's timers (an in-process cluster over a `LoopbackNetwork`)
 * runs the same way, to the microtask, every time:
 * - `advance()` and friends let SETTLE_MICROTASK_TURNS microtask turns pass before and after each
 *   timer and never yield to the event loop, so nothing outside the microtask queue (real timers,
 *   I/O, Workers, MessagePorts) runs meanwhile. Work that takes more turns than that after a timer
 *   is not lost: it goes on after `advance()` returns, in the same order every run.
 * - `autoAdvance()` runs the next timer only once the microtask queue is empty (from a real
 *   `setImmediate`, which the event loop runs after the microtasks), one timer per turn of the
 *   event loop. Real time spent is about a microsecond a timer while fake time jumps.
 *
 * The limit: fake time knows nothing of real I/O. Under `autoAdvance()` a program waiting for a
 * Worker, a socket or a real timer looks idle, and fake time jumps to its next timer (a 60 s call
 * timeout fires at once). Use it with in-process transports only.
 *
 * @module
 */

import { clearImmediate, setImmediate } from "node:timers";
import { assert } from "../../protocol/errors.ts";
import type { Clock, TimerHandle } from "./env.ts";

/** Where `now()` starts unless told: 2024-01-01T00:00:00Z, in ms since the Unix epoch. */
export const FAKE_CLOCK_EPOCH_MS = Date.UTC(2024, 0, 1);
/** Microtask turns `advance()` lets pass before it looks for timers and after each timer it runs. */
export const SETTLE_MICROTASK_TURNS = 100;
/** Timers pending at once; more means a runaway loop in the code under test. */
export const FAKE_TIMERS_PENDING_MAX = 1_000_000;
/**
 * Timers one `runUntilIdle()` or one `autoAdvance()` session runs before it asserts: a timer that
 * sets itself again forever would otherwise never let it end.
 */
export const FAKE_TIMERS_RUN_MAX = 100_000;

/** Options of `new FakeClock()`. */
export interface FakeClockOptions {
  /** What `now()` reads at the start, in ms since the Unix epoch; default FAKE_CLOCK_EPOCH_MS. */
  epochMs?: number;
}

/** Options of `runUntilIdle()` and `autoAdvance()`. */
export interface FakeRunOptions {
  /** Timers run before asserting; default FAKE_TIMERS_RUN_MAX. */
  timersMax?: number;
}

interface Timer {
  /** Handle and creation order. */
  id: number;
  /** Deadline on the monotonic clock, ms. */
  at: number;
  callback: () => void;
}

interface AutoAdvance {
  ran: number;
  timersMax: number;
  immediate: ReturnType<typeof setImmediate> | undefined;
}

/** A `Clock` for tests and the simulator: time moves only when told (see the module doc). */
export class FakeClock implements Clock {
  #epochMs: number;
  #elapsedMs = 0;
  #nextId = 1;
  /** Pending timers by handle; `#heap` may still hold cleared ones, skipped when they surface. */
  #timers = new Map<number, Timer>();
  #heap: Timer[] = [];
  #advancing = false;
  #auto: AutoAdvance | null = null;

  /** A clock at `epochMs` (default FAKE_CLOCK_EPOCH_MS) whose monotonic time starts at 0. */
  constructor(options: FakeClockOptions = {}) {
    const epochMs = options.epochMs ?? FAKE_CLOCK_EPOCH_MS;
    assert(Number.isFinite(epochMs), `epochMs ${epochMs} must be finite`);
    this.#epochMs = epochMs;
  }

  /** The fake wall clock: the start epoch plus the fake time elapsed, ms. */
  now(): number {
    return this.#epochMs + this.#elapsedMs;
  }

  /** The fake time elapsed since the clock was made, ms. */
  monotonic(): number {
    return this.#elapsedMs;
  }

  /**
   * Calls `callback` once `ms` of fake time have passed (a negative or NaN `ms` counts as 0).
   * Asserts `ms` is not infinite and fewer than FAKE_TIMERS_PENDING_MAX timers are pending.
   */
  setTimeout(callback: () => void, ms: number): TimerHandle {
    assert(ms !== Infinity, "a fake timer's ms must be finite");
    assert(this.#timers.size < FAKE_TIMERS_PENDING_MAX, "too many fake timers pending");
    const timer: Timer = { id: this.#nextId++, at: this.#elapsedMs + (ms > 0 ? ms : 0), callback };
    this.#timers.set(timer.id, timer);
    heapPush(this.#heap, timer);
    this.#poke();
    return timer.id;
  }

  /** Cancels a pending timer; an unknown, fired or undefined handle is ignored. */
  clearTimeout(handle: TimerHandle | undefined): void {
    if (typeof handle !== "number" || !this.#timers.delete(handle)) return;
    if (this.#heap.length > 2 * this.#timers.size + 64) this.#heap = heapOf(this.#timers.values());
  }

  /** How many timers are pending. */
  get pending(): number {
    return this.#timers.size;
  }

  /** The monotonic deadline of the earliest pending timer, or undefined when none is pending. */
  nextDeadline(): number | undefined {
    return this.#peek()?.at;
  }

  /**
   * Moves time forward by `ms`, running every timer due by then in deadline order, then creation
   * order (timers that these set are included if due), with SETTLE_MICROTASK_TURNS microtask turns
   * before the first and after each. Resolves with the number of timers run. Rejects with what a
   * timer threw, time then standing at that timer's deadline. Asserts `ms` is finite and not
   * negative and that no other advance or autoAdvance() is running.
   */
  async advance(ms: number): Promise<number> {
    assert(Number.isFinite(ms) && ms >= 0, `ms ${ms} must be finite and not negative`);
    return await this.#drive(() => this.#elapsedMs + ms, Infinity);
  }

  /**
   * Moves time to the earliest pending timer's deadline and runs every timer due then; resolves
   * with the number run (0, time unchanged, when none is pending after settling).
   */
  async advanceToNext(): Promise<number> {
    return await this.#drive(() => this.#peek()?.at ?? this.#elapsedMs, Infinity);
  }

  /**
   * Runs timers, moving time to each deadline, until none is pending; resolves with the number
   * run. Asserts after `timersMax` (default FAKE_TIMERS_RUN_MAX) timers: a timer that keeps
   * setting itself again is a bug.
   */
  async runUntilIdle(options: FakeRunOptions = {}): Promise<number> {
    return await this.#drive(() => Infinity, options.timersMax ?? FAKE_TIMERS_RUN_MAX);
  }

  /**
   * Runs each timer as soon as the program is idle: whenever the microtask queue is empty and a
   * timer is pending, time jumps to the earliest deadline and that one timer runs. Stops when the
   * returned object is disposed. What a timer throws is uncaught, as with real timers. Asserts
   * after `timersMax` (default FAKE_TIMERS_RUN_MAX) timers and when already auto-advancing or
   * advancing.
   */
  autoAdvance(options: FakeRunOptions = {}): Disposable {
    assert(this.#auto === null && !this.#advancing, "the fake clock is already being advanced");
    const auto: AutoAdvance = {
      ran: 0,
      timersMax: options.timersMax ?? FAKE_TIMERS_RUN_MAX,
      immediate: undefined,
    };
    this.#auto = auto;
    this.#poke();
    return {
      [Symbol.dispose]: () => {
        if (this.#auto !== auto) return;
        if (auto.immediate !== undefined) clearImmediate(auto.immediate);
        this.#auto = null;
      },
    };
  }

  /** Runs timers due by `target()` (read after each settle), at most `timersMax` of them. */
  async #drive(target: () => number, timersMax: number): Promise<number> {
    assert(this.#auto === null && !this.#advancing, "the fake clock is already being advanced");
    this.#advancing = true;
    let ran = 0;
    try {
      await settle();
      const until = target();
      for (
        let timer = this.#peek();
        timer !== undefined && timer.at <= until;
        timer = this.#peek()
      ) {
        assert(ran < timersMax, `the fake clock ran ${timersMax} timers and more are pending`);
        ran++;
        this.#fire(timer);
        await settle();
      }
      if (until !== Infinity) this.#elapsedMs = Math.max(this.#elapsedMs, until);
      return ran;
    } finally {
      this.#advancing = false;
    }
  }

  /** Moves time to `timer`'s deadline, forgets it and calls it. */
  #fire(timer: Timer): void {
    heapPop(this.#heap);
    this.#timers.delete(timer.id);
    this.#elapsedMs = Math.max(this.#elapsedMs, timer.at);
    timer.callback();
  }

  /** The earliest pending timer; drops cleared ones from the top of the heap. */
  #peek(): Timer | undefined {
    while (this.#heap.length > 0 && !this.#timers.has(this.#heap[0].id)) heapPop(this.#heap);
    return this.#heap[0];
  }

  /** Under autoAdvance(), schedules a step after the microtasks unless one is scheduled or idle. */
  #poke(): void {
    const auto = this.#auto;
    if (auto === null || auto.immediate !== undefined || this.#timers.size === 0) return;
    auto.immediate = setImmediate(() => {
      auto.immediate = undefined;
      if (this.#auto !== auto) return;
      const timer = this.#peek();
      if (timer === undefined) return; // idle: the next setTimeout() pokes again
      assert(auto.ran < auto.timersMax, `auto-advance ran ${auto.timersMax} timers, more pending`);
      auto.ran++;
      try {
        this.#fire(timer);
      } finally {
        this.#poke();
      }
    });
  }
}

async function settle(): Promise<void> {
  for (let turn = 0; turn < SETTLE_MICROTASK_TURNS; turn++) await Promise.resolve();
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.id < b.id);
}

function heapOf(timers: Iterable<Timer>): Timer[] {
  const heap: Timer[] = [];
  for (const timer of timers) heapPush(heap, timer);
  return heap;
}

function heapPush(heap: Timer[], timer: Timer): void {
  let i = heap.push(timer) - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!before(heap[i], heap[parent])) break;
    [heap[i], heap[parent]] = [heap[parent], heap[i]];
    i = parent;
  }
}

function heapPop(heap: Timer[]): void {
  const last = heap.pop()!;
  if (heap.length === 0) return;
  heap[0] = last;
  let i = 0;
  for (;;) {
    const left = 2 * i + 1;
    const right = left + 1;
    let least = i;
    if (left < heap.length && before(heap[left], heap[least])) least = left;
    if (right < heap.length && before(heap[right], heap[least])) least = right;
    if (least === i) return;
    [heap[i], heap[least]] = [heap[least], heap[i]];
    i = least;
  }
}
