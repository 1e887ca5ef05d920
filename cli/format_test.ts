import assert from "node:assert/strict";
import type { DoctorReport } from "../client.ts";
import {
  formatBytes,
  formatCapacity,
  formatDoctor,
  formatLongList,
  formatMeta,
  formatStatus,
  formatUsage,
  parseRange,
  table,
} from "./format.ts";
import { Progress, progressLine } from "./progress.ts";

Deno.test("formatBytes() uses binary units with one decimal", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(3 * 2 ** 30), "3.0 GiB");
});

Deno.test("table() aligns columns and leaves no trailing spaces", () => {
  assert.equal(table([["a", "bb"], ["ccc", "d"]]), "a    bb\nccc  d");
  assert.equal(table([["1", "x"], ["100", "y"]], new Set([0])), "  1  x\n100  y");
});

Deno.test("formatLongList() shows size, UTC time, replicas and name in columns", () => {
  const text = formatLongList([
    { name: "a", size: 10, modified: Date.UTC(2026, 10, 24, 6, 5), replicas: 2 },
    { name: "dir/b", size: 3 * 2 ** 20, modified: Date.UTC(2026, 0, 2, 3, 4), replicas: 3 },
  ]);
  assert.equal(text, "   10 B  2026-11-24 06:05  2  a\n3.0 MiB  2026-01-02 03:04  3  dir/b");
});

Deno.test("formatUsage() and formatCapacity() count shared file systems once", () => {
  assert.equal(
    formatUsage({ files: 2, bytes: 2048, storedBytes: 4096 }, "d/"),
    "2.0 KiB  4.0 KiB stored  2 files  d/",
  );
  const text = formatCapacity([
    { rank: 1, bytesHeld: 1024, totalBytes: 4096, availableBytes: 1024, device: 7 },
    { rank: 2, bytesHeld: 2048, totalBytes: 4096, availableBytes: 1024, device: 7 },
  ]);
  const lines = text.split("\n");
  assert.equal(lines.length, 4);
  assert.match(lines[0], /^rank\s+held\s+size\s+available\s+use%$/);
  assert.match(lines[3], /^total\s+3\.0 KiB\s+4\.0 KiB\s+1\.0 KiB\s+75%$/);
});

Deno.test("formatDoctor() says what losing the target would do, what is degraded now, and the names", () => {
  const report: DoctorReport = {
    target: "b",
    kind: "zone",
    ranks: [3, 4],
    zones: ["b"],
    ranksDown: [2],
    files: 200,
    chunks: 400,
    wouldBe: {
      underReplicated: { files: 120, chunks: 300, bytes: 1.2 * 2 ** 30 },
      lost: { files: 3, bytes: 3 * 2 ** 20, names: ["a.txt", "b.txt"] },
    },
    now: {
      underReplicated: { files: 1, chunks: 1, bytes: 2 ** 20 },
      lost: { files: 0, bytes: 0, names: [] },
    },
  };
  assert.equal(
    formatDoctor(report),
    [
      'Losing zone "b" (ranks 3, 4): 120 files (1.2 GiB in 300 chunks) would be under-replicated, ' +
      "3 files (3.0 MiB) would be lost",
      "Now, before losing anything: 1 file (1.0 MiB in 1 chunk) under-replicated, 0 files lost; " +
      "rank 2 down",
      "would be lost: a.txt",
      "would be lost: b.txt",
      "would be lost: ... and 1 more",
    ].join("\n"),
  );
  const none = { files: 0, chunks: 0, bytes: 0 };
  const quiet: DoctorReport = {
    ...report,
    target: "1",
    kind: "rank",
    ranks: [1],
    zones: ["local"],
    ranksDown: [],
    wouldBe: { underReplicated: none, lost: { files: 0, bytes: 0, names: [] } },
    now: { underReplicated: none, lost: { files: 1, bytes: 5, names: ["gone"] } },
  };
  assert.equal(
    formatDoctor(quiet),
    'Losing rank 1 (zone "local"): 0 files would be under-replicated, 0 files would be lost\n' +
      "Now, before losing anything: 0 files under-replicated, 1 file (5 B) lost; " +
      "no data rank down\nlost now: gone",
  );
});

Deno.test("parseRange() reads inclusive START-END and open START-", () => {
  assert.deepEqual(parseRange("0-99"), { start: 0, end: 100 });
  assert.deepEqual(parseRange("5-"), { start: 5 });
  assert.throws(() => parseRange("9-3"), /ends before it starts/);
  assert.throws(() => parseRange("x-3"), /START-END/);
});

Deno.test("progressLine() shows done, total, percent, rate and time left", () => {
  assert.equal(
    progressLine(2 ** 20, 4 * 2 ** 20, 1000),
    "1.0 MiB / 4.0 MiB  25%  1.0 MiB/s  3 s left",
  );
  assert.equal(progressLine(2048, undefined, 2000), "2.0 KiB  1.0 KiB/s");
});

Deno.test("Progress redraws at most every PROGRESS_REDRAW_MS and ends with a newline", () => {
  const written: string[] = [];
  let now = 0;
  const out = { writeSync: (p: Uint8Array) => written.push(new TextDecoder().decode(p)) };
  const progress = new Progress(100, { out, now: () => now });
  for (let i = 0; i < 10; i++) {
    now += 10;
    progress.add(10);
  }
  progress.finish();
  assert.equal(written.length, 3); // the first add, the final line, the newline
  assert.equal(written.at(-1), "\n");
  assert.ok(written.at(-2)!.startsWith("\r100 B / 100 B  100%"), written.at(-2)!);
});

Deno.test("formatStatus() shows each data node's kind, zone, address, state and last heartbeat", () => {
  const text = formatStatus({
    files: 3,
    ranks: [
      {
        rank: 1,
        kind: "worker",
        zone: "a",
        state: "up",
        bytesHeld: 2048,
        chunks: 2,
        heartbeatAgeMs: 400,
      },
      {
        rank: 4,
        kind: "remote",
        zone: "b",
        address: "10.0.0.2:40000",
        state: "down",
        bytesHeld: 0,
        chunks: 1,
        reason: "Lost the link to rank 4",
      },
    ],
    repairs: 0,
    scrub: { passes: 0, bytes: 0 },
    underReplicatedChunks: 1,
    corruptReplicasFound: 0,
    lostFiles: 0,
  });
  const [header, one, four] = text.split("\n");
  assert.match(header, /^rank +kind +zone +address +state +held +chunks +missing +heard$/);
  assert.match(one, /^1 +worker +a +- +up +2\.0 KiB +2 +0 +0\.4s ago$/);
  assert.match(four, /^4 +remote +b +10\.0\.0\.2:40000 +down +0 B +1 +0 +-$/);
  assert.match(text, /rank 4 down: Lost the link to rank 4/);
});

Deno.test("formatStatus() shows a data column, each node's data port, when some node has one", () => {
  const node = {
    kind: "remote" as const,
    zone: "b",
    state: "up" as const,
    bytesHeld: 0,
    chunks: 0,
  };
  const text = formatStatus({
    files: 0,
    ranks: [
      { rank: 1, ...node, address: "10.0.0.2:40000", dataAddress: "10.0.0.2:7081" },
      { rank: 2, ...node, address: "10.0.0.3:40001" },
    ],
    repairs: 0,
    scrub: { passes: 0, bytes: 0 },
    underReplicatedChunks: 0,
    corruptReplicasFound: 0,
    lostFiles: 0,
  });
  const [header, one, two] = text.split("\n");
  assert.match(header, /^rank +kind +zone +address +data +state +held +chunks +missing +heard$/);
  assert.match(one, /^1 +remote +b +10\.0\.0\.2:40000 +10\.0\.0\.2:7081 +up +0 B +0 +0 +-$/);
  assert.match(two, /^2 +remote +b +10\.0\.0\.3:40001 +- +up +0 B +0 +0 +-$/);
});

Deno.test("formatMeta() names each replica's rank and its zone", () => {
  const text = formatMeta({
    name: "a",
    size: 3,
    sha256: "0".repeat(64),
    modified: 0,
    version: 1,
    replicas: 2,
    chunks: [{ size: 3, ranks: [4, 1], zones: ["b", "a"] }, { size: 0, ranks: [2] }],
  });
  assert.match(text, /^ {2}0 {2}3 bytes on ranks 4 \(b\), 1 \(a\)$/m);
  assert.match(text, /^ {2}1 {2}0 bytes on ranks 2$/m);
});
