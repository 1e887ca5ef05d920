import assert from "node:assert/strict";
import { ChunkIdSet } from "../common/chunk_id_set.ts";
import { type Manifest, tombstoneOf } from "../common/manifest.ts";
import { Summarizer } from "../node/summary.ts";
import { blob, chunk, manifest } from "../testing/manifests.ts";
import { ReconcileCheck } from "./reconcile_check.ts";

const SEED = 0x1234_5678;
const CLEAN = { damagedRegions: 0, damagedBytes: 0, tailCutBytes: 0, created: false };

/** What a node holds: manifests, chunks kept in its log, and its blob files with their sizes. */
interface Node {
  rank: number;
  manifests: Manifest[];
  inLog: string[];
  blobs: [string, number][];
}

/**
 * The check of `node`'s summary (made by the node's own `Summarizer`, in pages of `pageBytes`)
 * against `index` and the releases it `missed`: the repair, or undefined.
 */
function check(node: Node, index: Manifest[], missed: Manifest[] = [], pageBytes = 1) {
  const summarizer = new Summarizer({
    rank: node.rank,
    manifests: node.manifests,
    inLog: ChunkIdSet.of(node.inLog),
    blobs: new Map(node.blobs),
    opened: CLEAN,
  }, SEED);
  const check = new ReconcileCheck(node.rank, SEED);
  let totals;
  while (!summarizer.done) {
    const page = summarizer.next(pageBytes);
    if (!check.add(page.manifests)) return undefined;
    totals = page.totals;
  }
  for (const m of index) check.expect(m);
  for (const m of missed) check.expectMissed(m);
  return check.repair(totals!);
}

// Rank 2 is the first holder of a and c, and a second holder of b (first on rank 1); d is a
// large file in a blob; e is on ranks 1 and 3 only.
const a = manifest("a", 5, [[chunk(1), 10, [2, 3]]]);
const b = manifest("b", 6, [[chunk(2), 20, [1, 2]]]);
const c = manifest("c", 7, [[chunk(3), 30, [2]]]);
const d = manifest("d", 8, [[chunk(4), 1000, [3, 2]], [chunk(4, 1000), 500, [2, 1]]]);
const e = manifest("e", 9, [[chunk(5), 40, [1, 3]]]);
const INDEX = [a, b, c, d, e];

/** Rank 2 holding exactly what the index places on it. */
function exact(): Node {
  return {
    rank: 2,
    manifests: [a, b, c, d],
    inLog: [chunk(1), chunk(2), chunk(3)],
    blobs: [[blob(4), 1500]],
  };
}

Deno.test("a node holding exactly what the index places on it agrees: nothing is copied or kept anew", () => {
  for (const pageBytes of [1, 64, 1 << 20]) {
    assert.deepEqual(check(exact(), INDEX, [], pageBytes), {
      drop: [],
      deleteBlobs: [],
      bytesHeld: 10 + 20 + 30 + 1000 + 500,
    });
  }
});

Deno.test("the node's tombstones are dropped and its stray blobs deleted", () => {
  const node = exact();
  node.manifests.push(tombstoneOf("gone", 3, 1));
  node.blobs.push([blob(9), 100]);
  assert.deepEqual(check(node, INDEX), {
    drop: [{ name: "gone", version: 3 }],
    deleteBlobs: [blob(9)],
    bytesHeld: 1560,
  });
});

Deno.test("versions whose release the node missed while down are counted as held, not as kept", () => {
  const node = exact();
  // b was overwritten (version 11, on ranks 1 and 3) and c removed while rank 2 was down.
  const b11 = manifest("b", 11, [[chunk(6), 20, [1, 3]]]);
  const index = [a, b11, d, e];
  assert.equal(check(node, index), undefined, "without the missed releases the node holds more");
  assert.deepEqual(check(node, index, [b, c]), { drop: [], deleteBlobs: [], bytesHeld: 1510 });
});

Deno.test("a node that differs from the index in any way does not agree", () => {
  const cases: [string, Node, Manifest[]][] = [];
  const lacking = exact();
  lacking.manifests = [a, b, d];
  cases.push(["it lacks a file it is the first holder of", lacking, INDEX]);
  const lackingOther = exact();
  lackingOther.manifests = [a, c, d];
  cases.push(["it lacks a file it is a second holder of", lackingOther, INDEX]);
  const older = exact();
  older.manifests = [manifest("a", 4, [[chunk(1), 10, [2, 3]]]), b, c, d];
  cases.push(["it holds another version of a file it holds first", older, INDEX]);
  const olderOther = exact();
  olderOther.manifests = [a, manifest("b", 2, [[chunk(2), 20, [1, 2]]]), c, d];
  cases.push(["it holds another version of a file it holds second", olderOther, INDEX]);
  const extra = exact();
  extra.manifests.push(manifest("x", 3, [[chunk(7), 5, [2]]]));
  extra.inLog.push(chunk(7));
  cases.push(["it holds a file the index does not have", extra, INDEX]);
  const notFirst = exact();
  notFirst.manifests = [manifest("a", 5, [[chunk(1), 10, [1, 2]]]), b, c, d];
  cases.push(["its copy of a manifest places it otherwise", notFirst, INDEX]);
  const missingChunk = exact();
  missingChunk.inLog = [chunk(1), chunk(2)];
  cases.push(["a chunk kept in its log is missing", missingChunk, INDEX]);
  const shortBlob = exact();
  shortBlob.blobs = [[blob(4), 1200]];
  cases.push(["a blob is cut short", shortBlob, INDEX]);
  cases.push(["the index has a file more on it", exact(), [
    ...INDEX,
    manifest("y", 1, [[chunk(8), 1, [3, 2]]]),
  ]]);
  for (const [why, node, index] of cases) {
    for (const pageBytes of [1, 1 << 20]) {
      assert.equal(check(node, index, [], pageBytes), undefined, why);
    }
  }
});
