import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { PagedAnswers } from "./paged_answers.ts";
import { Summarizer } from "./summary.ts";
import { manifest } from "../testing/manifests.ts";

const CLEAN = { damagedRegions: 0, damagedBytes: 0, tailCutBytes: 0, created: false };
const refused = (pattern: RegExp) => (error: unknown) =>
  error instanceof DfsError && error.code === "NOT_FOUND" && pattern.test(error.message);

Deno.test("PagedAnswers sends a scan in pieces that join up, whole when it fits one", () => {
  const paged = new PagedAnswers(2, { scanPageBytes: 4 });
  const bytes = Uint8Array.from({ length: 10 }, (_, i) => i);
  const pieces = [paged.beginScan(bytes, 7), paged.nextScanPiece(7), paged.nextScanPiece(7)];
  assert.deepEqual(pieces.map((p) => [...p]), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
  assert.throws(() => paged.nextScanPiece(7), refused(/^Rank 2 has no scan being sent$/));
  const small = Uint8Array.of(1, 2);
  assert.equal(paged.beginScan(small, 7), small);
  assert.throws(() => paged.nextScanPiece(7), refused(/no scan being sent/));
});

Deno.test("PagedAnswers refuses a piece once the node changed, and a scan ends a summary", () => {
  const paged = new PagedAnswers(3, { scanPageBytes: 4, summaryPageBytes: 1 });
  paged.beginScan(new Uint8Array(10), 1);
  assert.throws(
    () => paged.nextScanPiece(2),
    refused(/^Rank 3 dropped its scan: what it holds changed since the scan began$/),
  );
  assert.throws(() => paged.nextScanPiece(2), refused(/no scan being sent/));
  const files = Array.from(
    { length: 3 },
    (_, i) => manifest(`f${i}`, 1, [[`${"a".repeat(31)}${i}-0`, 1, [3]]]),
  );
  const held = {
    rank: 3,
    manifests: files,
    inLog: { has: () => true },
    blobs: new Map(),
    opened: CLEAN,
  };
  // Pages of one manifest: three, the last with the totals.
  const pages = [paged.beginSummary(new Summarizer(held, 5), 1), paged.nextSummaryPage(1)];
  assert.deepEqual(pages.map((page) => page.totals), [undefined, undefined]);
  assert.equal(paged.nextSummaryPage(1).totals?.count, 3);
  assert.throws(() => paged.nextSummaryPage(1), refused(/^Rank 3 has no summary being made$/));
  paged.beginSummary(new Summarizer(held, 5), 1);
  assert.throws(
    () => paged.nextSummaryPage(4),
    refused(/^Rank 3 dropped its summary: what it holds changed since the summary began$/),
  );
  // A scan begun ends the summary being made: rank 0 reads everything instead.
  paged.beginSummary(new Summarizer(held, 5), 1);
  paged.beginScan(new Uint8Array(1), 1);
  assert.throws(() => paged.nextSummaryPage(1), refused(/^Rank 3 has no summary being made$/));
});
