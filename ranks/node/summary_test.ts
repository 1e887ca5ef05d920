import assert from "node:assert/strict";
import type { Manifest } from "../common/manifest.ts";
import { ManifestWriter, readManifests } from "../common/manifest_codec.ts";
import { smallFile } from "../testing/manifests.ts";
import type { EncodedManifest } from "./manifest_table.ts";
import { Summarizer } from "./summary.ts";

const CLEAN = { damagedRegions: 0, damagedBytes: 0, tailCutBytes: 0, created: false };

Deno.test("Summarizer copies encodings into its pages, the one it reads ahead of a page too", () => {
  const files = Array.from(
    { length: 40 },
    (_, i) => smallFile(`f${i}`, 1, new Uint8Array([i]), [1, 2]),
  );
  // As a table yields them: each encoding a view of one buffer, which the next read overwrites.
  const scratch = new Uint8Array(1024);
  function* held(): Generator<Manifest | EncodedManifest> {
    for (const [i, m] of files.entries()) {
      if (i % 3 === 0) {
        yield m; // held whole: encoded by the page
        continue;
      }
      scratch.fill(0);
      const writer = new ManifestWriter();
      writer.add(m);
      writer.copyTo(scratch);
      yield { manifest: m, encoded: scratch.subarray(0, writer.byteLength) };
    }
  }
  const summarizer = new Summarizer({
    rank: 1,
    manifests: held(),
    inLog: { has: () => true },
    blobs: new Map(),
    opened: CLEAN,
  }, 5);
  const pages = [];
  while (!summarizer.done) {
    pages.push(summarizer.next(200));
    scratch.fill(0); // the node reads another record between pages
  }
  assert.ok(pages.length >= 5, `${pages.length} pages`);
  const sent = pages.flatMap((page) => [...readManifests(page.manifests)]);
  assert.deepEqual(sent, files);
  assert.equal(pages.at(-1)!.totals!.count, files.length);
});
