/**
 * Summary statistics for the benchmark: median, percentiles and the median/min/max of a set of
 * runs. Pure: no I/O.
 *
 * @module
 */

/** One measured figure: the median of its runs, with the smallest and largest run. */
export interface Figure {
  name: string;
  unit: string;
  median: number;
  min: number;
  max: number;
  /** Every run's value, in the order measured. */
  samples: number[];
}

/**
 * The median of `values` (the mean of the two middle values when there is an even number).
 *
 * @throws {RangeError} if `values` is empty.
 */
export function median(values: readonly number[]): number {
  const sorted = sortedCopy(values);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * The `p`-th percentile of `values` by the nearest-rank method: the smallest value that at least
 * `p` percent of the values are less than or equal to. `p` is from 0 to 100.
 *
 * @throws {RangeError} if `values` is empty or `p` is outside 0..100.
 */
export function percentile(values: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`Percentile must be from 0 to 100, got ${p}`);
  const sorted = sortedCopy(values);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

/**
 * A figure from the values of several runs.
 *
 * @throws {RangeError} if `samples` is empty.
 */
export function figureOf(
  name: string,
  samples: readonly number[],
  options: { unit: string },
): Figure {
  const sorted = sortedCopy(samples);
  return {
    name,
    unit: options.unit,
    median: median(sorted),
    min: sorted[0],
    max: sorted[sorted.length - 1],
    samples: [...samples],
  };
}

function sortedCopy(values: readonly number[]): number[] {
  if (values.length === 0) throw new RangeError("Cannot summarize an empty list of values");
  return [...values].sort((a, b) => a - b);
}

/**
 * Operations per second over a slice of a phase, from `doneAtMs` (when each operation completed,
 * in milliseconds since the phase began, in completion order): the first `count` (from the phase's
 * start to the `count`-th completion) or the last `count` (from the completion before them to the
 * last).
 *
 * @throws {RangeError} unless `count` is a whole number from 1 to `doneAtMs.length`.
 */
export function sliceRate(
  doneAtMs: readonly number[],
  options: { which: "first" | "last"; count: number },
): number {
  const { which, count } = options;
  if (!(Number.isInteger(count) && count >= 1 && count <= doneAtMs.length)) {
    throw new RangeError(`A slice must be from 1 to ${doneAtMs.length} operations, got ${count}`);
  }
  const from = which === "first" || count === doneAtMs.length
    ? 0
    : doneAtMs[doneAtMs.length - count - 1];
  const to = which === "first" ? doneAtMs[count - 1] : doneAtMs[doneAtMs.length - 1];
  return (1000 * count) / (to - from);
}
