/**
 * Waiting in tests and the benchmark: a pause, and a time limit on any awaited work so that a
 * server that hangs fails the run instead of stalling it.
 *
 * @module
 */

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Resolves as `promise` does, or rejects after `timeoutMs` (the work itself is not cancelled: the
 * caller stops waiting and fails).
 *
 * @throws {Error} `"Timed out after TIMEOUT ms waiting for WHAT"` when the time is up.
 */
export async function withTimeout<T>(
  promise: Promise<T>,
  options: { timeoutMs: number; what: string },
): Promise<T> {
  const { timeoutMs, what } = options;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
