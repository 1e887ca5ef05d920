import assert from "node:assert/strict";
import { DfsError } from "../../protocol/errors.ts";
import { encodeFrame } from "../../protocol/frame.ts";
import { FRAME_HEADER_BYTES, FRAME_SIZE_BYTES_MAX, NAME_BYTES_MAX } from "../../protocol/limits.ts";
import type { DoctorReport } from "../../protocol/messages.ts";
import { chunk, manifest } from "../testing/manifests.ts";
import { DOCTOR_NAMES_MAX, FirstNames, planLoss, resolveTarget } from "./loss.ts";
import { Membership } from "./membership.ts";

const NONE = { files: 0, chunks: 0, bytes: 0 };
const NO_LOSS = { files: 0, bytes: 0, names: [] };

/** Ranks 1 to 4: 1 and 2 in zone "a", 3 and 4 in zone "b". */
function twoZones(): Membership {
  const zone = (z: string) => ({ kind: "worker" as const, zone: z });
  return new Membership([1, 2, 3, 4], {
    info: new Map([[1, zone("a")], [2, zone("a")], [3, zone("b")], [4, zone("b")]]),
  });
}

function assertRefused(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DfsError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("resolveTarget() takes an integer that is a data rank as that rank, with its zone", () => {
  assert.deepEqual(resolveTarget("3", twoZones()), {
    target: "3",
    kind: "rank",
    ranks: [3],
    zones: ["b"],
  });
});

Deno.test("resolveTarget() takes a zone name as every data rank in that zone", () => {
  assert.deepEqual(resolveTarget("a", twoZones()), {
    target: "a",
    kind: "zone",
    ranks: [1, 2],
    zones: ["a"],
  });
  // Every node of a server's Workers is in the default zone: losing it loses them all.
  assert.deepEqual(resolveTarget("local", new Membership([1, 2, 3])).ranks, [1, 2, 3]);
});

Deno.test("resolveTarget() takes an integer that is no data rank as a zone name", () => {
  const zone = (z: string) => ({ kind: "worker" as const, zone: z });
  const nodes = new Membership([1, 2], { info: new Map([[1, zone("7")], [2, zone("2")]]) });
  assert.deepEqual(resolveTarget("7", nodes), {
    target: "7",
    kind: "zone",
    ranks: [1],
    zones: ["7"],
  });
  // A data rank wins over a zone of the same name.
  assert.equal(resolveTarget("2", nodes).kind, "rank");
});

Deno.test("resolveTarget() refuses a target that is neither, listing the data ranks and zones", () => {
  for (const target of ["c", "0", "5", "1.5", " 1"]) {
    assertRefused(
      () => resolveTarget(target, twoZones()),
      "NOT_FOUND",
      new RegExp(
        `^Cannot find ${
          RegExp.escape(JSON.stringify(target))
        }: it is neither a data rank nor a zone \\(data ranks 1, 2, 3, 4; zones "a", "b"\\)$`,
      ),
    );
  }
});

Deno.test("resolveTarget() refuses an empty target as INVALID_REQUEST", () => {
  assertRefused(
    () => resolveTarget("", twoZones()),
    "INVALID_REQUEST",
    /^Invalid request: target must not be empty$/,
  );
});

Deno.test("planLoss() counts a 1-replica file on the lost rank as lost, a 2-replica one as under-replicated", () => {
  const files = [
    manifest("one", 1, [[chunk(1), 100, [1]]]),
    manifest("two", 2, [[chunk(2), 200, [1, 2]]]),
    manifest("elsewhere", 3, [[chunk(3), 300, [2, 3]]]),
  ];
  assert.deepEqual(planLoss(files, new Set([1])), {
    files: 3,
    chunks: 3,
    now: { underReplicated: NONE, lost: NO_LOSS },
    wouldBe: {
      underReplicated: { files: 1, chunks: 1, bytes: 200 },
      lost: { files: 1, bytes: 100, names: ["one"] },
    },
  });
});

Deno.test("planLoss() counts only a file's chunks that lose a replica, and their bytes", () => {
  const files = [
    manifest("mixed", 1, [
      [chunk(1, 0), 1000, [1, 2]],
      [chunk(1, 1000), 1000, [2, 3]],
      [chunk(1, 2000), 5, [3, 1]],
    ]),
  ];
  const plan = planLoss(files, new Set([1]));
  assert.deepEqual(plan.wouldBe.underReplicated, { files: 1, chunks: 2, bytes: 1005 });
  assert.deepEqual(plan.wouldBe.lost, NO_LOSS);
});

Deno.test("planLoss() counts a file with one chunk left with no replica as lost, not under-replicated", () => {
  const files = [
    manifest("half", 1, [[chunk(1, 0), 1000, [1, 2]], [chunk(1, 1000), 10, [1]]]),
  ];
  const plan = planLoss(files, new Set([1]));
  assert.deepEqual(plan.wouldBe, {
    underReplicated: NONE,
    lost: { files: 1, bytes: 1010, names: ["half"] },
  });
});

Deno.test("planLoss() of a zone takes all its ranks away: a chunk on two of them is lost", () => {
  const files = [
    manifest("in-zone", 1, [[chunk(1), 10, [1, 2]]]),
    manifest("across", 2, [[chunk(2), 20, [2, 3]]]),
    manifest("outside", 3, [[chunk(3), 30, [3, 4]]]),
  ];
  const ranks = resolveTarget("a", twoZones()).ranks;
  const plan = planLoss(files, new Set(ranks));
  assert.deepEqual(plan.wouldBe, {
    underReplicated: { files: 1, chunks: 1, bytes: 20 },
    lost: { files: 1, bytes: 10, names: ["in-zone"] },
  });
});

Deno.test("planLoss() reports replicas on ranks down now as degraded now, not as the loss's doing", () => {
  const files = [
    manifest("under-now", 1, [[chunk(1), 10, [2, 3]]]), // rank 2 is down: one live replica
    manifest("lost-now", 2, [[chunk(2), 20, [2]]]),
    manifest("last-copy", 3, [[chunk(3), 30, [1, 2]]]), // its one live replica is on rank 1
    manifest("fine", 4, [[chunk(4), 40, [3, 4]]]),
  ];
  const plan = planLoss(files, new Set([1, 2]), { alreadyLost: (r) => r === 2 });
  assert.deepEqual(plan.now, {
    underReplicated: { files: 2, chunks: 2, bytes: 40 },
    lost: { files: 1, bytes: 20, names: ["lost-now"] },
  });
  // Losing rank 2 again changes nothing; losing rank 1 loses the last copy of "last-copy".
  assert.deepEqual(plan.wouldBe, {
    underReplicated: NONE,
    lost: { files: 1, bytes: 30, names: ["last-copy"] },
  });
});

Deno.test("planLoss() counts a gone rank's replicas as gone now, and a replica known missing", () => {
  const files = [
    manifest("on-gone", 1, [[chunk(1), 10, [1, 9]]]),
    manifest("missing", 2, [[chunk(2), 20, [1, 3]]]),
  ];
  const plan = planLoss(files, new Set([1]), {
    alreadyLost: (r) => r === 9,
    replicaMissing: (id, r) => id === chunk(2) && r === 3,
  });
  assert.deepEqual(plan.now.underReplicated, { files: 2, chunks: 2, bytes: 30 });
  assert.deepEqual(plan.wouldBe.lost, { files: 2, bytes: 30, names: ["missing", "on-gone"] });
});

Deno.test("planLoss() keeps the first namesMax lost names in byte order and counts them all", () => {
  const names = ["e", "b", "d", "a", "c", "f", "g"];
  const files = names.map((name, i) => manifest(name, i + 1, [[chunk(i), 1, [1]]]));
  const plan = planLoss(files, new Set([1]), { namesMax: 3 });
  assert.deepEqual(plan.wouldBe.lost, { files: 7, bytes: 7, names: ["a", "b", "c"] });
  assert.equal(planLoss(files, new Set([1])).wouldBe.lost.names.length, 7);
});

Deno.test("planLoss() of a rank holding nothing changes nothing; an empty index counts zero", () => {
  const files = [manifest("x", 1, [[chunk(1), 10, [2, 3]]])];
  assert.deepEqual(planLoss(files, new Set([1])).wouldBe, { underReplicated: NONE, lost: NO_LOSS });
  assert.deepEqual(planLoss([], new Set([1])), {
    files: 0,
    chunks: 0,
    now: { underReplicated: NONE, lost: NO_LOSS },
    wouldBe: { underReplicated: NONE, lost: NO_LOSS },
  });
});

Deno.test("FirstNames keeps the first names of many, whatever order they come in", () => {
  const all = Array.from({ length: 1000 }, (_, i) => `n${String(i).padStart(4, "0")}`);
  for (
    const order of [
      all,
      [...all].reverse(),
      all.filter((_, i) => i % 2).concat(all.filter((_, i) => !(i % 2))),
    ]
  ) {
    const first = new FirstNames(10);
    for (const name of order) first.add(name);
    assert.deepEqual(first.result(), all.slice(0, 10));
  }
  const none = new FirstNames(0);
  none.add("a");
  assert.deepEqual(none.result(), []);
});

Deno.test("a report with two full lists of the longest names fits one frame", () => {
  const longest = (i: number) => String(i).padStart(NAME_BYTES_MAX, "x");
  const names = Array.from({ length: DOCTOR_NAMES_MAX }, (_, i) => longest(i));
  const big = Number.MAX_SAFE_INTEGER;
  const loss = { files: big, bytes: big, names };
  const under = { files: big, chunks: big, bytes: big };
  const report: DoctorReport = {
    target: "z".repeat(256),
    kind: "zone",
    ranks: Array.from({ length: 64 }, (_, i) => i + 1),
    zones: ["z".repeat(256)],
    ranksDown: Array.from({ length: 64 }, (_, i) => i + 1),
    files: big,
    chunks: big,
    wouldBe: { underReplicated: under, lost: loss },
    now: { underReplicated: under, lost: loss },
  };
  const body = encodeFrame({ op: "ok", id: 0xffff_ffff, result: report }).length -
    FRAME_HEADER_BYTES;
  assert.ok(body <= FRAME_SIZE_BYTES_MAX, `${body} bytes`);
});
