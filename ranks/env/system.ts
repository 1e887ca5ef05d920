/**
 * The system's clock and timers, its randomness, and stderr: the parts of the real environment
 * that need no file system (the rank library and every Worker load them).
 *
 * @module
 */

import type { Clock, Log, Random, TimerHandle } from "./env.ts";

/** The system clock and timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle: TimerHandle) => clearTimeout(handle as number | undefined),
};

/** Cryptographically strong random bytes. */
export const systemRandom: Random = {
  fill: (bytes) => crypto.getRandomValues(bytes),
};

/** Lines on stderr. */
export const stderrLog: Log = {
  error: (message, ...details) => console.error(message, ...details),
};
