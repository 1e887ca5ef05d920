import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import type { Manifest } from "../common/manifest.ts";
import { tombstoneOf } from "../common/manifest.ts";
import { manifest } from "../testing/manifests.ts";
import type { KeptManifest } from "./log_rewrite.ts";
import { decodeRecord, encodeRecord, type LogRecord } from "./log_record.ts";
import { tableOnModelLog } from "./_model_log.ts";
import { manifestIn } from "./manifest_table.ts";

/** Where the model's new log starts: every offset at or past it is in the new file. */
const NEW_LOG = 1_000_000;

/**
 * A table over a model of the log (offsets to encoded records), which notes every offset read;
 * `apply` appends a record to the old log and applies it there.
 */
function onLog() {
  const { table, log, reads } = tableOnModelLog();
  let next = 100;
  const append = (record: LogRecord) => {
    const where = next;
    next += 10;
    log.set(where, encodeRecord(record));
    return where;
  };
  const apply = (record: LogRecord) => table.apply(record, append(record));
  const read = (name: string, version: number, where: number): KeptManifest => {
    const bytes = log.get(where);
    if (!bytes) throw new DfsError("CORRUPTED", `No record at ${where}`);
    return { manifest: manifestIn(decodeRecord(bytes), name, version, where) };
  };
  return { table, log, reads, append, apply, read };
}

const file = (name: string, version: number) => manifest(name, version, [[`c-${name}`, 1, [1]]]);
const key = (m: { name: string; version: number }) => `${m.name}@${m.version}`;
const keys = (ms: Iterable<{ name: string; version: number }>) => [...ms].map(key).sort();

Deno.test("TableSnapshot writes exactly what the table held at the freeze while it changes between steps, places what stayed, and moves what was appended meanwhile", async () => {
  const { table, log, reads, append, apply, read } = onLog();
  for (const name of "abcdefghij") apply({ kind: "commit", manifest: file(name, 1) });
  apply({ kind: "commit", manifest: file("o", 1) });
  apply({ kind: "commit", manifest: file("o", 2) }); // o@1 is held whole, as an older version
  const moved = { ...file("r-new", 5), chunks: file("r-old", 1).chunks };
  apply({ kind: "commit", manifest: file("r-old", 1) });
  // One record holds two manifests: the tombstone and the file renamed.
  apply({ kind: "rename", fromVersion: 1, tombstone: tombstoneOf("r-old", 5, 9), manifest: moved });
  // Applied, its append not resolved yet: held whole.
  const w: LogRecord = { kind: "commit", manifest: file("w", 3) };
  table.apply(w);
  const held = keys(table.versions());
  // The record of h is damaged since it was read.
  const hWhere = 100 + 10 * 7;
  log.set(hWhere, new Uint8Array([0x10]));

  const snapshot = table.freeze();
  assert.throws(() => table.freeze(), /one snapshot at a time/);
  const damaged: string[] = [];
  let steps = 0;
  // The rewrite starts once w's append, called before the freeze, is in the old log: records
  // appended after that (the tail) are copied after the rewritten ones.
  let tailFrom = Infinity;
  const giveWay = () => {
    steps++;
    if (steps === 1) {
      // Before the walk reaches any slot (the two held whole came first). What is applied now
      // is appended after the rewrite: held whole until then.
      table.apply({ kind: "release", name: "j", version: 1 }); // handed over, then released
      table.apply({ kind: "commit", manifest: file("i", 2) }); // i@1 handed over, kept as older
      table.apply({ kind: "commit", manifest: file("n", 1) }); // a new slot: left out
      // w's append, called before the freeze, resolved: in the old log.
      const wAt = append(w);
      table.placed(w, wAt);
      tailFrom = wAt + 1;
    } else if (steps === 3) {
      table.apply({ kind: "release", name: "a", version: 1 }); // reached already: not placed
      // b@1 becomes an older version; b@2's append resolves into the old log's tail.
      const b2: LogRecord = { kind: "commit", manifest: file("b", 2) };
      table.apply(b2);
      table.placed(b2, append(b2));
    }
    return Promise.resolve();
  };
  const written: Manifest[] = [];
  let at = NEW_LOG;
  for await (
    const kept of snapshot.manifests(read, {
      giveWay,
      damaged: (name, version, where) => {
        damaged.push(`${name}@${version}`);
        assert.equal(table.dropDamaged(name, version, where), true);
      },
      stepManifests: 2,
    })
  ) {
    written.push(kept.manifest);
    log.set(at, encodeRecord({ kind: "commit", manifest: kept.manifest }));
    snapshot.placed(at);
    at += 10;
  }
  assert.ok(steps >= 5, `gave way ${steps} times`);
  assert.deepEqual(damaged, ["h@1"]);
  assert.deepEqual(
    keys(written),
    held.filter((k) => k !== "h@1"),
    "what the table held at the freeze, each once, but the damaged one",
  );
  // The tail follows the rewritten records in the new log, each record `shift` bytes on.
  const shift = at - tailFrom;
  const tail = [...log.keys()].filter((where) => where >= tailFrom && where < NEW_LOG);
  assert.equal(tail.length, 1, "b@2");
  for (const where of tail) log.set(where + shift, log.get(where)!);
  table.thaw(snapshot, { tailFrom, shift });
  // The old log is gone: what still points into it can no longer be read.
  for (const where of [...log.keys()]) if (where < NEW_LOG) log.delete(where);
  const now = keys(table.versions());
  assert.deepEqual(
    now,
    [
      "b@2",
      ...["b@1", "c@1", "d@1", "e@1", "f@1", "g@1"],
      "i@1",
      "i@2",
      "n@1",
      "o@1",
      "o@2",
      "r-new@5",
      "r-old@5",
      "w@3",
    ].sort(),
  );
  const whereRead = (name: string, version: number) => {
    reads.length = 0;
    assert.equal(key(table.get(name, version)!), `${name}@${version}`);
    return reads.at(-1);
  };
  // Unchanged since they were written: read from the new log.
  for (const name of "cdefg") assert.ok(whereRead(name, 1)! >= NEW_LOG, name);
  for (const [name, version] of [["o", 2], ["r-new", 5], ["r-old", 5], ["w", 3]] as const) {
    assert.ok(whereRead(name, version)! >= NEW_LOG, `${name}@${version}`);
  }
  // Appended meanwhile: read from where the tail went.
  assert.equal(whereRead("b", 2), tail[0] + shift);
  // Held whole: no read (i@2 and n@1 wait for their appends, i@1 and o@1 are older versions,
  // b@1 was pushed out by b@2 after it was written).
  for (const [name, version] of [["i", 2], ["n", 1], ["i", 1], ["o", 1], ["b", 1]] as const) {
    assert.equal(whereRead(name, version), undefined, `${name}@${version}`);
  }
  // Replayed from the new log (the rewritten records, then the tail, then what still waits for its
  // append: j's release, i@2, a's release), the table holds the same, less what still waits (n).
  const replayed = onLog();
  for (const m of written) replayed.apply({ kind: "commit", manifest: m });
  for (const where of tail) replayed.apply(decodeRecord(log.get(where + shift)!));
  replayed.apply({ kind: "release", name: "j", version: 1 });
  replayed.apply({ kind: "commit", manifest: file("i", 2) });
  replayed.apply({ kind: "release", name: "a", version: 1 });
  assert.deepEqual(keys(replayed.table.versions()), now.filter((k) => k !== "n@1"));
});

Deno.test("TableSnapshot thawed unplaced (a rewrite that failed) leaves the table where it was", async () => {
  const { table, reads, apply, read } = onLog();
  for (const name of "abc") apply({ kind: "commit", manifest: file(name, 1) });
  const snapshot = table.freeze();
  const walk = snapshot.manifests(read, { giveWay: () => Promise.resolve(), damaged: () => {} });
  const first = await walk.next();
  assert.equal(first.done, false);
  snapshot.placed(NEW_LOG);
  await assert.rejects(() =>
    snapshot.manifests(read, {
      giveWay: () => Promise.resolve(),
      damaged: () => {},
    }).next(), /walked once/);
  table.thaw(snapshot);
  assert.throws(() => table.thaw(snapshot), /the one frozen/);
  reads.length = 0;
  assert.deepEqual(keys([...table.all()]), ["a@1", "b@1", "c@1"]);
  assert.deepEqual(reads, [100, 110, 120], "read where they were");
  table.freeze(); // a new one may begin
});
