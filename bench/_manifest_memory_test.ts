import assert from "node:assert/strict";
import { checkManifest } from "../ranks/common/manifest.ts";
import { ManifestColumns } from "../ranks/common/manifest_columns.ts";
import { Prng } from "../tests/_bytes.ts";
import {
  FILE_SIZE_BYTES_MAX,
  FILE_SIZE_BYTES_MIN,
  manifestOf,
  nameOf,
} from "./_manifest_memory.ts";

Deno.test("nameOf() names every file apart, half tiny/ and half photos/", () => {
  const names = Array.from({ length: 10_000 }, (_, i) => nameOf(i));
  assert.equal(new Set(names).size, names.length);
  assert.equal(nameOf(123456), "tiny/000123456");
  assert.equal(nameOf(1235), "photos/2023/IMG_001235.jpg");
});

Deno.test("manifestOf() makes valid small-file manifests that ManifestColumns gives back", () => {
  const prng = new Prng(1);
  const columns = new ManifestColumns();
  for (let i = 0; i < 1000; i++) {
    const m = manifestOf(i, prng, "0123456789abcdef");
    checkManifest(m);
    assert.ok(FILE_SIZE_BYTES_MIN <= m.size && m.size <= FILE_SIZE_BYTES_MAX);
    assert.equal(m.chunks.length, 1);
    assert.notEqual(m.chunks[0].ranks[0], m.chunks[0].ranks[1]);
    columns.set(m);
    assert.deepEqual(columns.get(m.name), m);
  }
});
