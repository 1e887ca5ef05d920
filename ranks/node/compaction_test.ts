import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { type Manifest, tombstoneOf } from "../common/manifest.ts";
import { denoEnv } from "../env/deno_env.ts";
import type { Clock, Random } from "../env/env.ts";
import { MemoryFileSystem } from "../env/memory_fs.ts";
import { manifestsIn, smallFile } from "../testing/manifests.ts";
import type { DataNode } from "./data_node.ts";
import { openDataNode } from "./open_node.ts";
import { TABLE_STEP_MANIFESTS } from "./table_snapshot.ts";
import { COMPACT_SLACK_MAX, CompactionTrigger } from "./compaction.ts";

const RANK = 1;
/** Files held: several steps' worth. */
const FILES = 3 * TABLE_STEP_MANIFESTS + 100;

const bytesOf = (n: number, seed: number) => new Uint8Array(n).map((_, i) => (i * seed) & 0xff);
const keyOf = (m: { name: string; version: number }) => `${m.name}@${m.version}`;
const byKey = (a: Manifest, b: Manifest) => (keyOf(a) < keyOf(b) ? -1 : 1);

/**
 * A data node on a memory disk whose clock calls `between()` each time the node asks for a timer
 * of 0 ms (gives way), before the timer is set, and counts those times; and what it should hold
 * (every version) and the bytes of each small file.
 */
async function steppedNode(fs: MemoryFileSystem) {
  const env = denoEnv({ fs });
  const watch = { gaveWay: 0, between: undefined as (() => void) | undefined };
  const clock: Clock = {
    now: () => env.clock.now(),
    monotonic: () => env.clock.monotonic(),
    setTimeout: (callback, ms) => {
      if (ms === 0) {
        watch.gaveWay++;
        watch.between?.();
      }
      return env.clock.setTimeout(callback, ms);
    },
    clearTimeout: (handle) => env.clock.clearTimeout(handle),
  };
  const open = () => openDataNode(RANK, "/n", { env: { ...env, clock } });
  const node = await open();
  const held = new Map<string, Manifest>();
  const bytes = new Map<string, Uint8Array>();
  /** Commits a small file (kept in the log), noting it held. */
  const commit = (name: string, version: number) => {
    const data = bytesOf(8 + version % 7 + name.length, name.length * 31 + version);
    const m = smallFile(name, version, data, [RANK, 2]);
    held.set(keyOf(m), m);
    bytes.set(m.chunks[0].id, data);
    return node.handle({ op: "commit", manifest: m, data: data.slice() });
  };
  const release = (name: string, version: number) => {
    held.delete(`${name}@${version}`);
    return node.handle({ op: "release", name, version });
  };
  /** Commits `FILES` small files, `f/0` on. */
  const fill = async () => {
    for (let i = 0; i < FILES; i += 1000) {
      const batch = Array.from({ length: Math.min(1000, FILES - i) }, (_, j) => i + j);
      await Promise.all(batch.map((j) => commit(`f/${j}`, 1)));
    }
  };
  return { node, open, watch, held, bytes, commit, release, fill };
}

/** Checks that `node` holds exactly `held`, and reads back a sample of its small files' bytes. */
async function assertHolds(
  node: DataNode,
  held: Map<string, Manifest>,
  bytes: Map<string, Uint8Array>,
  what: string,
) {
  const scan = await node.scan();
  assert.equal(scan.more, false);
  assert.deepEqual(manifestsIn(scan).sort(byKey), [...held.values()].sort(byKey), what);
  let i = 0;
  for (const m of held.values()) {
    if (m.deleted || m.chunks.length !== 1 || (i++ % 97 !== 0 && !m.name.startsWith("x"))) {
      continue;
    }
    const [{ id, size, crc32 }] = m.chunks;
    const read = await node.handle({
      op: "read",
      id,
      size,
      crc32,
      name: m.name,
      version: m.version,
    });
    assert.deepEqual(read, bytes.get(id), `${what}: ${keyOf(m)}`);
  }
}

Deno.test("DataNode: a compaction of several steps gives way, and writes exactly what it held while commits, releases and reads go on and finish between steps", async () => {
  const fs = new MemoryFileSystem();
  const { node, open, watch, held, bytes, commit, release, fill } = await steppedNode(fs);
  /** Reads the bytes of a small file held. */
  const read = async (key: string) => {
    const [{ id, size, crc32 }] = held.get(key)!.chunks;
    const { name, version } = held.get(key)!;
    assert.deepEqual(
      await node.handle({ op: "read", id, size, crc32, name, version }),
      bytes.get(id),
      key,
    );
  };
  // Versions held whole (an older one), a record of two manifests (a rename), a file of several
  // chunks kept in the log (a compose), each a case of its own for a rewrite; in the first slots
  // of the table, which the compaction reaches in its first step.
  await commit("x/older", 1);
  await commit("x/older", 2);
  await commit("x/old", 1);
  const old = held.get("x/old@1")!;
  const renamed = { ...old, name: "x/new", version: 2 };
  await node.handle({
    op: "rename",
    fromVersion: 1,
    tombstone: tombstoneOf("x/old", 2, 9),
    manifest: renamed,
  });
  held.delete("x/old@1");
  held.set("x/old@2", tombstoneOf("x/old", 2, 9));
  held.set("x/new@2", renamed);
  await commit("x/a", 1);
  await commit("x/b", 1);
  const parts = [held.get("x/a@1")!, held.get("x/b@1")!];
  const composed = {
    ...parts[0],
    name: "x/ab",
    version: 3,
    size: parts[0].size + parts[1].size,
    chunks: parts.flatMap((m) => m.chunks),
  };
  await node.handle({ op: "compose", sources: parts, manifest: composed });
  for (const { name } of parts) {
    held.delete(`${name}@1`);
    held.set(`${name}@3`, tombstoneOf(name, 3, composed.modified));
  }
  held.set("x/ab@3", composed);
  await fill();

  // Between steps (the node asks for a timer of 0 ms), what rank 0 sends meanwhile arrives.
  let compacting = true;
  let pings = 0;
  let finished = 0;
  const meanwhile: Promise<unknown>[] = [];
  const during = (...calls: Promise<unknown>[]) => {
    for (const call of calls) meanwhile.push(call.then(() => finished++));
  };
  const at = watch.gaveWay;
  watch.between = () => {
    if (!compacting) return;
    assert.equal(node.ping(), true, "a heartbeat is answered");
    pings++;
    const step = watch.gaveWay - at;
    if (step === 1) {
      during(
        read("f/7@1"), // read from the old log while it is rewritten
        release("f/1", 1), // its slot was written already
        release(`f/${FILES - 1}`, 1), // not reached yet: handed over, written, then released
        commit(`f/${FILES - 2}`, 2), // not reached yet: version 1 handed over, kept as older
        commit("x/during", 1),
        commit("x/tail", 1), // carried by its record in the old log's tail
        release("x/older", 1), // an older version, held whole
      );
    } else if (step === 2) {
      during(
        read(`f/${FILES - 2}@2`), // committed at the step before: in the old log's tail
        // Written already, carrying its bytes: version 2 is kept as older, found by its chunk's
        // id where the new log holds it.
        commit("x/older", 3),
        // Version 1, in the old log's tail, is kept as older: found by its chunk's id, which moves
        // with the tail.
        commit("x/tail", 2),
        release("x/ab", 3), // its chunks carried in data records already: they leave the new places
        commit("x/late", 1),
        release("x/during", 1),
        commit("x/during", 2),
      );
    }
  };
  // A start-up repair that drops a version: the table less it is rewritten.
  const compaction = node.handle({
    op: "repair",
    repair: { drop: [{ name: "f/2", version: 1 }], deleteBlobs: [], bytesHeld: 0 },
  });
  held.delete("f/2@1");
  // Commits and releases are appended to the old log, reads are answered from it, while the
  // compaction runs: none waits for it.
  await compaction.then(() => assert.equal(finished, 14, "every call meanwhile finished first"));
  compacting = false;
  await Promise.all(meanwhile);
  const steps = watch.gaveWay - at;
  assert.ok(steps >= 3, `gave way ${steps} times over ${FILES} files`);
  assert.equal(pings, steps);
  assert.equal(meanwhile.length, 14);
  await assertHolds(node, held, bytes, "after the compaction");
  await assert.rejects(
    () => node.handle({ op: "read", id: composed.chunks[0].id, size: composed.chunks[0].size }),
    (error: unknown) => error instanceof DfsError && error.code === "NOT_FOUND",
    "a chunk released during the compaction is gone",
  );
  await node.close();
  // The log holds exactly that: the version dropped (by the table alone) is gone for good.
  const reopened = await open();
  try {
    await assertHolds(reopened, held, bytes, "replayed from the rewritten log");
  } finally {
    await reopened.close();
  }
});

Deno.test("DataNode: a scan of several steps gives way while it makes a piece, and drops the scan when what it holds changes between steps", async () => {
  const fs = new MemoryFileSystem();
  const { node, watch, held, bytes, commit, fill } = await steppedNode(fs);
  try {
    await fill();
    let pings = 0;
    const at = watch.gaveWay;
    watch.between = () => void (pings += node.ping() ? 1 : 0);
    await assertHolds(node, held, bytes, "a scan in one piece");
    const steps = watch.gaveWay - at;
    assert.ok(steps >= 3, `gave way ${steps} times over ${FILES} files`);
    assert.equal(pings, steps, "a heartbeat answered each time");
    // A commit between steps: the piece would not add up with what the node holds.
    let late: Promise<unknown> | undefined;
    watch.between = () => void (late ??= commit("late", 1));
    await assert.rejects(
      () => node.scan(),
      (error: unknown) =>
        error instanceof DfsError && error.code === "NOT_FOUND" &&
        /what it holds changed since the scan began/.test(error.message),
    );
    await late;
    watch.between = undefined;
    await assertHolds(node, held, bytes, "a scan after the commit");
  } finally {
    await node.close();
  }
});

Deno.test("CompactionTrigger: a large log whose dead records outnumber its live ones by the node's slack; after a failure, once it grew", () => {
  const random = (byte: number): Random => ({
    fill: <T extends Uint8Array>(bytes: T) => bytes.fill(byte),
  });
  const none = new CompactionTrigger(1000, random(0));
  assert.equal(none.slack, 0);
  assert.equal(none.due(999, 10, 100), false, "too small");
  assert.equal(none.due(1000, 10, 10), false, "as many dead as live");
  assert.equal(none.due(1000, 10, 11), true);
  const most = new CompactionTrigger(1000, random(0xff));
  assert.ok(most.slack > 0.49 && most.slack < COMPACT_SLACK_MAX, `${most.slack}`);
  assert.equal(most.due(1000, 100, 149), false);
  assert.equal(most.due(1000, 100, 151), true);
  none.failed(5000);
  assert.equal(none.due(5999, 10, 100), false, "not again before the log grew");
  assert.equal(none.due(6000, 10, 100), true);
});
