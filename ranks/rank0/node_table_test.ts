import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { denoFileSystem } from "../env/deno_env.ts";
import { CLUSTER_FILE, NodeTable } from "./node_table.ts";

Deno.test("NodeTable makes a cluster id once, and keeps nodes and forgotten nodes across opens", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const table = await NodeTable.open(dir, denoFileSystem);
    assert.match(table.clusterId, /^[0-9a-f]{32}$/);
    await Promise.all([
      table.remember({ nodeId: "a".repeat(32), rank: 2, zone: "x" }),
      table.remember({ nodeId: "b".repeat(32), rank: 1, zone: "y" }),
    ]);
    await table.remember({ nodeId: "a".repeat(32), rank: 2, zone: "z" });
    const again = await NodeTable.open(dir, denoFileSystem);
    assert.equal(again.clusterId, table.clusterId);
    assert.deepEqual(again.nodes.map((n) => [n.rank, n.zone]), [[1, "y"], [2, "z"]]);
    assert.equal(await again.forget(1), "b".repeat(32));
    await assert.rejects(
      again.forget(7),
      (e) => e instanceof DfsError && /no remote data node has rank 7/.test(e.message),
    );
    const third = await NodeTable.open(dir, denoFileSystem);
    assert.deepEqual(third.nodes.map((n) => n.rank), [2]);
    assert.deepEqual(third.forgotten.map((n) => n.rank), [1]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("NodeTable.open() refuses a cluster file that is not one, as CORRUPTED", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (
      const text of [
        "{",
        '{"clusterId":"x","nodes":[]}',
        '{"clusterId":"' + "c".repeat(32) + '","nodes":[{"rank":1}]}',
      ]
    ) {
      await Deno.writeTextFile(`${dir}/${CLUSTER_FILE}`, text);
      await assert.rejects(
        NodeTable.open(dir, denoFileSystem),
        (e) => e instanceof DfsError && e.code === "CORRUPTED",
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
