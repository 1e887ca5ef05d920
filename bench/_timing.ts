/**
 * Timing helpers for the benchmark: wall time and the CPU time a process has used (Linux `/proc`).
 * The time limit on awaited work is `withTimeout` in `tests/_wait.ts`, shared with the tests.
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
