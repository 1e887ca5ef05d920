/**
 * Timing helpers for the benchmark: wall time, a time limit on any awaited work, and the CPU time
 * a process has used (Linux `/proc`).
 *
 * @module
 */

/** Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`, 100 on Linux x86-64). */
export const CLOCK_TICKS_PER_SECOND = 100;

/** Seconds `work` takes, with the value it resolves to. */
export async function timed<T>(work: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const start = performance.now();
  const value = await work();
  return { seconds: (performance.now() - start) / 1000, value };
}

/**
 * Resolves as `promise` does, or rejects after `timeoutMs` (the work itself is not cancelled: the
 * caller stops waiting and fails the benchmark).
 *
 * @throws {Error} `"WHAT took longer than TIMEOUT ms"` when the time is up.
 */
export async function withTimeout<T>(
  promise: Promise<T>,
  options: { timeoutMs: number; what: string },
): Promise<T> {
  const { timeoutMs, what } = options;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} took longer than ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** CPU seconds (user + system, every thread) process `pid` has used so far. Linux only. */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the command name, which is in parentheses and may itself hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const [utime, stime] = [Number(fields[11]), Number(fields[12])];
  return (utime + stime) / CLOCK_TICKS_PER_SECOND;
}

const started = performance.now();

/** Prints a progress line on stderr with the seconds since the benchmark started. */
export function progress(message: string): void {
  const seconds = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
  console.error(`[${seconds} s] ${message}`);
}
