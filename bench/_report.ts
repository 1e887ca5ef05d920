/**
 * Formats benchmark figures as Markdown tables. Pure: no I/O.
 *
 * @module
 */

import type { Figure } from "./_stats.ts";

/** A number with about three significant digits: 1234, 123, 12.3, 1.23, 0.123. */
export function formatValue(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const size = Math.abs(value);
  if (size >= 100 || value === 0) return value.toFixed(0);
  if (size >= 10) return value.toFixed(1);
  if (size >= 1) return value.toFixed(2);
  return value.toPrecision(2);
}

/** A table with one row per figure: `| what (unit) | median | min | max |`. */
export function figureTable(figures: readonly Figure[]): string {
  const rows = figures.map((f) => {
    const spread = f.samples.length > 1 ? `${formatValue(f.min)} | ${formatValue(f.max)}` : " | ";
    return `| ${f.name} (${f.unit}) | ${formatValue(f.median)} | ${spread} |`;
  });
  return ["| what | median | min | max |", "| --- | --- | --- | --- |", ...rows].join("\n");
}

/** A cell: `median (min-max)`, or the value alone for one run. */
export function cellOf(figure: Figure | undefined): string {
  if (!figure) return "";
  const median = formatValue(figure.median);
  if (figure.samples.length === 1) return median;
  return `${median} (${formatValue(figure.min)}-${formatValue(figure.max)})`;
}

/**
 * A table with one row per setup and one column per measurement. `figures` are named
 * `SETUP: MEASUREMENT`; a missing combination leaves its cell empty.
 */
export function gridTable(figures: readonly Figure[]): string {
  const setups: string[] = [];
  const columns: { name: string; unit: string }[] = [];
  const cells = new Map<string, Figure>();
  for (const f of figures) {
    const [setup, measurement] = splitName(f.name);
    if (!setups.includes(setup)) setups.push(setup);
    if (!columns.some((c) => c.name === measurement)) {
      columns.push({ name: measurement, unit: f.unit });
    }
    cells.set(`${setup}\n${measurement}`, f);
  }
  const header = `| setup | ${columns.map((c) => `${c.name} (${c.unit})`).join(" | ")} |`;
  const rule = `| --- | ${columns.map(() => "---").join(" | ")} |`;
  const rows = setups.map((setup) =>
    `| ${setup} | ${columns.map((c) => cellOf(cells.get(`${setup}\n${c.name}`))).join(" | ")} |`
  );
  return [header, rule, ...rows].join("\n");
}

function splitName(name: string): [string, string] {
  const at = name.indexOf(": ");
  return at < 0 ? ["", name] : [name.slice(0, at), name.slice(at + 2)];
}
