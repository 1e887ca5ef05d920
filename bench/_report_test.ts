import assert from "node:assert/strict";
import { figureTable, formatValue, gridTable } from "./_report.ts";
import { figureOf } from "./_stats.ts";

Deno.test("formatValue() keeps about three significant digits", () => {
  assert.equal(formatValue(1234.5), "1235");
  assert.equal(formatValue(12.34), "12.3");
  assert.equal(formatValue(1.234), "1.23");
  assert.equal(formatValue(0.01234), "0.012");
  assert.equal(formatValue(0), "0");
});

Deno.test("figureTable() shows min and max only for several runs", () => {
  const table = figureTable([
    figureOf("put", [100, 300, 200], { unit: "MB/s" }),
    figureOf("memory", [229], { unit: "MiB" }),
  ]);
  assert.equal(
    table,
    [
      "| what | median | min | max |",
      "| --- | --- | --- | --- |",
      "| put (MB/s) | 200 | 100 | 300 |",
      "| memory (MiB) | 229 |  |  |",
    ].join("\n"),
  );
});

Deno.test("gridTable() puts each setup on a row and each measurement in a column", () => {
  const table = gridTable([
    figureOf("2 ranks: put", [10, 30, 20], { unit: "MB/s" }),
    figureOf("2 ranks: get", [5], { unit: "MB/s" }),
    figureOf("4 ranks: put", [40], { unit: "MB/s" }),
  ]);
  assert.equal(
    table,
    [
      "| setup | put (MB/s) | get (MB/s) |",
      "| --- | --- | --- |",
      "| 2 ranks | 20.0 (10.0-30.0) | 5.00 |",
      "| 4 ranks | 40.0 |  |",
    ].join("\n"),
  );
});
