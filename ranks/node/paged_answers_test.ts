import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { ManifestWriter } from "../common/manifest_codec.ts";
import { PagedAnswers, ScanPieces } from "./paged_answers.ts";
import { Summarizer } from "./summary.ts";
import { manifest } from "../testing/manifests.ts";

const CLEAN = { damagedRegions: 0, damagedBytes: 0, tailCutBytes: 0, created: false };
const refused = (pattern: RegExp) => (error: unknown) =>
  error instanceof DfsError && error.code === "NOT_FOUND" && pattern.test(error.message);

/** Manifests `n` files of one chunk each, and their bytes back to back. */
function filesOf(n: number) {
  const files = Array.from(
    { length: n },
    (_, i) => manifest(`f${i}`, 1, [[`${"a".repeat(31)}${i % 10}-0`, 1, [3]]]),
  );
  const writer = new ManifestWriter();
  for (const m of files) writer.add(m);
  return { files, bytes: writer.bytes() };
}

/** Pieces of `pieces` until the last, each checked to be `pageBytes` but the last. */
async function allPieces(pieces: ScanPieces, pageBytes: number): Promise<Uint8Array> {
  const all: number[] = [];
  while (!pieces.done) {
    const piece = await pieces.next(() => {});
    if (!pieces.done) assert.equal(piece.length, pageBytes, "a piece but the last is whole");
    all.push(...piece);
  }
  return Uint8Array.from(all);
}

Deno.test("ScanPieces cuts a scan into pieces of exactly its size, made as asked for, giving way every step", async () => {
  const { files, bytes } = filesOf(9);
  let gaveWay = 0;
  let taken = 0;
  const counted = function* () {
    for (const m of files) (taken++, yield m);
  };
  const giveWay = () => (gaveWay++, Promise.resolve());
  // Pieces smaller than a manifest: each manifest spans two or three of them.
  const pieces = new ScanPieces(counted(), { pageBytes: 7, giveWay, stepManifests: 2 });
  const first = await pieces.next(() => {});
  assert.equal(first.length, 7);
  assert.ok(taken <= 2, `the first piece took ${taken} manifests, not all`);
  assert.deepEqual(await allPieces(pieces, 7), bytes.subarray(7));
  // A piece of many manifests gives way every step, and checks after each time.
  let checks = 0;
  const steps = new ScanPieces(files, { pageBytes: 1000, giveWay, stepManifests: 2 });
  gaveWay = 0;
  assert.deepEqual(await steps.next(() => void checks++), bytes);
  assert.deepEqual([gaveWay, checks], [4, 4], "9 manifests in steps of 2");
  await assert.rejects(() => pieces.next(() => {}), /one after another/);
  // Larger pieces, and a size that the manifests fill exactly: the full piece is the last.
  for (const pageBytes of [bytes.length - 1, bytes.length, bytes.length + 1, 64]) {
    const again = new ScanPieces(files, { pageBytes, giveWay });
    assert.deepEqual(await allPieces(again, pageBytes), bytes, `pieces of ${pageBytes} bytes`);
  }
  const whole = new ScanPieces(files, { pageBytes: bytes.length, giveWay });
  assert.deepEqual(await whole.next(() => {}), bytes);
  assert.equal(whole.done, true, "the look-ahead found nothing more");
  const none = new ScanPieces([], { giveWay });
  assert.deepEqual(await none.next(() => {}), new Uint8Array(0));
  assert.equal(none.done, true);
});

Deno.test("PagedAnswers sends a scan in pieces that say whether more follow, and drops it when the node changes, even while a piece is made", async () => {
  const paged = new PagedAnswers(2);
  const { files, bytes } = filesOf(6);
  let ended = 0;
  const giveWay = () => Promise.resolve();
  const pieces = new ScanPieces(files, { pageBytes: 40, giveWay, whenDone: () => ended++ });
  const first = await paged.beginScan(pieces, () => 7);
  const joined = [...first.manifests];
  assert.equal(first.more, true);
  for (let more = true; more;) {
    const piece = await paged.nextScanPiece(() => 7);
    joined.push(...piece.manifests);
    more = piece.more;
    assert.equal(ended, more ? 0 : 1, "told once the last piece is on its way");
  }
  assert.deepEqual(Uint8Array.from(joined), bytes);
  await assert.rejects(
    () => paged.nextScanPiece(() => 7),
    refused(/^Rank 2 has no scan being sent$/),
  );
  const small = await paged.beginScan(new ScanPieces(files, { giveWay }), () => 7);
  assert.deepEqual(small, { manifests: bytes, more: false });
  await assert.rejects(() => paged.nextScanPiece(() => 7), refused(/no scan being sent/));
  // A change between pieces, and one while a piece is made (as it gives way).
  await paged.beginScan(new ScanPieces(files, { pageBytes: 40, giveWay }), () => 1);
  await assert.rejects(
    () => paged.nextScanPiece(() => 2),
    refused(/^Rank 2 dropped its scan: what it holds changed since the scan began$/),
  );
  await assert.rejects(() => paged.nextScanPiece(() => 2), refused(/no scan being sent/));
  let changes = 1;
  const changing = () => (changes++, Promise.resolve());
  const steps = { pageBytes: 1000, giveWay: changing, stepManifests: 2 };
  await assert.rejects(
    () => paged.beginScan(new ScanPieces(files, steps), () => changes),
    refused(/what it holds changed since the scan began/),
  );
  await assert.rejects(() => paged.nextScanPiece(() => changes), refused(/no scan being sent/));
});

Deno.test("PagedAnswers refuses a summary page once the node changed, and a scan ends a summary", async () => {
  const paged = new PagedAnswers(3, { summaryPageBytes: 1 });
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
  await paged.beginScan(new ScanPieces([], { giveWay: () => Promise.resolve() }), () => 1);
  assert.throws(() => paged.nextSummaryPage(1), refused(/^Rank 3 has no summary being made$/));
});
