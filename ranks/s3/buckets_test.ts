import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { denoFileSystem } from "../env/deno_env.ts";
import { Buckets, BUCKETS_FILE } from "./buckets.ts";

Deno.test("Buckets keeps created buckets across opens, each once, until deleted", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const buckets = await Buckets.open(dir, denoFileSystem);
    assert.deepEqual(buckets.list(), []);
    assert.deepEqual(
      await Promise.all([buckets.create("b", 2), buckets.create("a", 1), buckets.create("b", 3)]),
      [true, true, false],
    );
    const again = await Buckets.open(dir, denoFileSystem);
    assert.deepEqual(again.list(), [{ name: "a", created: 1 }, { name: "b", created: 2 }]);
    assert.equal(await again.delete("a"), true);
    assert.equal(await again.delete("a"), false);
    assert.deepEqual((await Buckets.open(dir, denoFileSystem)).list(), [{ name: "b", created: 2 }]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Buckets.open() refuses a file that is not a list of buckets, as CORRUPTED", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const text of ["{", '{"buckets":{}}', '{"buckets":[{"name":1}]}']) {
      await Deno.writeTextFile(`${dir}/${BUCKETS_FILE}`, text);
      await assert.rejects(
        Buckets.open(dir, denoFileSystem),
        (e) => e instanceof DfsError && e.code === "CORRUPTED",
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
